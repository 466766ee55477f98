//! Options for outbound connections: the limits that [`ListenOptions`](crate::ListenOptions)
//! gives accepted ones.

use crate::limits::Limits;

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
/// assert_eq!(options.get_max_output(), 4 << 20);
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
    /// assert!(sockloop::ConnectOptions::new().get_pause_reading_over_high());
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
    /// assert_eq!(options.get_output_watermarks(), (1 << 10, 8 << 10));
    /// ```
    pub fn output_watermarks(mut self, low: usize, high: usize) -> Self {
        self.limits.set_watermarks(low, high);
        self
    }

    /// The output watermarks (low, high) in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(sockloop::ConnectOptions::new().get_output_watermarks(), (64 << 10, 256 << 10));
    /// ```
    pub fn get_output_watermarks(&self) -> (usize, usize) {
        (self.limits.low_water, self.limits.high_water)
    }

    /// Caps the queued output; see
    /// [`ListenOptions::max_output`](crate::ListenOptions::max_output).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(sockloop::ConnectOptions::new().max_output(1 << 20).get_max_output(), 1 << 20);
    /// ```
    pub fn max_output(mut self, bytes: usize) -> Self {
        self.limits.max_output = bytes;
        self
    }

    /// The output cap in bytes, as it will apply (at least the high watermark).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(sockloop::ConnectOptions::new().get_max_output(), 16 << 20);
    /// ```
    pub fn get_max_output(&self) -> usize {
        self.limits.normalized().max_output
    }

    /// Bounds the unconsumed input; see
    /// [`ListenOptions::max_input`](crate::ListenOptions::max_input).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(sockloop::ConnectOptions::new().max_input(4096).get_max_input(), 4096);
    /// ```
    pub fn max_input(mut self, bytes: usize) -> Self {
        self.limits.max_input = bytes.max(1);
        self
    }

    /// The input bound in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(sockloop::ConnectOptions::new().get_max_input(), 1 << 20);
    /// ```
    pub fn get_max_input(&self) -> usize {
        self.limits.max_input
    }

    /// Whether the connection stops reading while its output is over the high watermark; see
    /// [`ListenOptions::pause_reading_over_high`](crate::ListenOptions::pause_reading_over_high).
    ///
    /// # Examples
    ///
    /// ```
    /// let options = sockloop::ConnectOptions::new().pause_reading_over_high(false);
    /// assert!(!options.get_pause_reading_over_high());
    /// ```
    pub fn pause_reading_over_high(mut self, pause: bool) -> Self {
        self.limits.pause_reads = pause;
        self
    }

    /// Whether reading pauses over the high watermark.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(sockloop::ConnectOptions::default().get_pause_reading_over_high());
    /// ```
    pub fn get_pause_reading_over_high(&self) -> bool {
        self.limits.pause_reads
    }
}
