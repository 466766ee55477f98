//! Options for outbound connections: the limits that [`ListenOptions`](crate::ListenOptions)
//! gives accepted ones.

use super::limits::Limits;

/// Limits for an outbound connection, for
/// [`Reactor::connect_with`](crate::Reactor::connect_with) and
/// [`Context::connect_with`](crate::Context::connect_with). Plain `connect` uses the defaults
/// (those of [`ListenOptions`](crate::ListenOptions)).
///
/// # Examples
///
/// ```
/// use sockloop::ConnectOptions;
///
/// // A proxy's upstream side: its two directions are independent, so it keeps reading while
/// // the upstream server is slow to take what it is sent.
/// let options = ConnectOptions::new().pause_reading_over_high(false).max_output(4 << 20);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectOptions {
    pub(crate) limits: Limits,
}

impl ConnectOptions {
    /// The defaults: watermarks 64 KiB / 256 KiB, output cap 16 MiB, input bound 1 MiB,
    /// reading paused over the high watermark.
    ///
    /// # Examples
    ///
    /// ```
    /// let _options = sockloop::ConnectOptions::new();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the output watermarks; see
    /// [`ListenOptions::output_watermarks`](crate::ListenOptions::output_watermarks).
    ///
    /// # Examples
    ///
    /// ```
    /// let options = sockloop::ConnectOptions::new().output_watermarks(1 << 10, 8 << 10);
    /// ```
    pub fn output_watermarks(mut self, low: usize, high: usize) -> Self {
        self.limits.set_watermarks(low, high);
        self
    }

    /// Caps the queued output; see
    /// [`ListenOptions::max_output`](crate::ListenOptions::max_output).
    ///
    /// # Examples
    ///
    /// ```
    /// let _options = sockloop::ConnectOptions::new().max_output(1 << 20);
    /// ```
    pub fn max_output(mut self, bytes: usize) -> Self {
        self.limits.max_output = bytes;
        self
    }

    /// Bounds the unconsumed input; see
    /// [`ListenOptions::max_input`](crate::ListenOptions::max_input).
    ///
    /// # Examples
    ///
    /// ```
    /// let _options = sockloop::ConnectOptions::new().max_input(4096);
    /// ```
    pub fn max_input(mut self, bytes: usize) -> Self {
        self.limits.max_input = bytes.max(1);
        self
    }

    /// Whether the connection stops reading while its output is over the high watermark; see
    /// [`ListenOptions::pause_reading_over_high`](crate::ListenOptions::pause_reading_over_high).
    ///
    /// # Examples
    ///
    /// ```
    /// let options = sockloop::ConnectOptions::new().pause_reading_over_high(false);
    /// ```
    pub fn pause_reading_over_high(mut self, pause: bool) -> Self {
        self.limits.pause_reads = pause;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::ConnectOptions;

    #[test]
    fn options_set_the_limits() {
        let limits = ConnectOptions::new()
            .max_input(4096)
            .max_output(1 << 20)
            .limits;
        assert_eq!((limits.max_input, limits.max_output), (4096, 1 << 20));
        assert!(ConnectOptions::new().limits.pause_reads);
    }
}
