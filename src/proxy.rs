//! The PROXY protocol (feature `proxy-protocol`): a load balancer in TCP mode opens its own
//! connection to the backend, so the backend's socket sees the balancer's address; HAProxy's
//! PROXY protocol puts a header at the start of that connection that says who the client was.
//! <https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>
//!
//! On a listener ([`ListenOptions::proxy_protocol`](crate::ListenOptions::proxy_protocol)) the
//! header is read before the handler hears of the connection; on an outbound connection
//! ([`ConnectOptions::proxy_header`](crate::ConnectOptions::proxy_header)) it is sent before
//! anything else. Parsing and building are `ppp`'s.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};

use ppp::v2::{self, Command, Protocol, TypeLengthValues};
use ppp::{v1, PartialResult};

/// Whether a listener's connections start with a PROXY protocol header.
///
/// Only a listener that every client reaches through the balancer may require or accept the
/// header: a client that connects directly could otherwise send one and claim any address.
///
/// # Examples
///
/// ```
/// use sockloop::{ListenOptions, ProxyProtocol};
///
/// // Behind HAProxy with `send-proxy` or `send-proxy-v2` on its server lines.
/// let options = ListenOptions::new().proxy_protocol(ProxyProtocol::Required);
/// # let _ = options;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProxyProtocol {
    /// No header is expected; the first bytes are the handler's (the default).
    #[default]
    Off,
    /// Every connection must start with a v1 or v2 header; one without is closed with
    /// [`CloseReason::ProxyProtocol`](crate::CloseReason::ProxyProtocol).
    Required,
    /// A connection may start with a header; one whose first bytes cannot begin a header is
    /// served as it is, with its socket's addresses. For moving a fleet onto the protocol.
    /// Either way the handler hears `on_open` only once the first bytes came, so this does not
    /// suit protocols in which the server speaks first (SMTP, a banner): a client waiting for
    /// it would wait until the first-bytes timeout.
    Optional,
}

/// Which version of the PROXY protocol a header is written in.
///
/// # Examples
///
/// ```
/// use sockloop::ProxyVersion;
///
/// let version: ProxyVersion = "v2".parse().unwrap();
/// assert_eq!(version, ProxyVersion::V2);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProxyVersion {
    /// The text header: `PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n`.
    V1,
    /// The binary header, which can also carry TLVs (type-length-value extensions).
    V2,
}

impl std::str::FromStr for ProxyVersion {
    type Err = io::Error;

    /// `"v1"`, `"1"`, `"v2"` or `"2"`.
    fn from_str(s: &str) -> io::Result<ProxyVersion> {
        match s.to_ascii_lowercase().as_str() {
            "v1" | "1" => Ok(ProxyVersion::V1),
            "v2" | "2" => Ok(ProxyVersion::V2),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{s:?}: not a PROXY protocol version (v1 or v2)"),
            )),
        }
    }
}

impl fmt::Display for ProxyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProxyVersion::V1 => "v1",
            ProxyVersion::V2 => "v2",
        })
    }
}

/// A PROXY protocol header: the one a connection arrived with
/// ([`Context::proxy_header`](crate::Context::proxy_header)), or one to send
/// ([`ConnectOptions::proxy_header`](crate::ConnectOptions::proxy_header)).
///
/// A header may carry no addresses: a v1 `UNKNOWN` header, or a v2 `LOCAL` one (what a
/// balancer's health checks send). The connection's own addresses stand then.
///
/// # Examples
///
/// ```
/// use sockloop::{ProxyHeader, ProxyVersion};
///
/// let client = "192.0.2.7:50000".parse().unwrap();
/// let front = "198.51.100.1:443".parse().unwrap();
/// let header = ProxyHeader::new(ProxyVersion::V2, client, front).with_tlv(0xE0, b"tenant-42");
/// assert_eq!(header.source(), Some(client));
/// assert_eq!(header.tlv(0xE0), Some(&b"tenant-42"[..]));
///
/// let text = ProxyHeader::new(ProxyVersion::V1, client, front).to_bytes().unwrap();
/// assert_eq!(text, b"PROXY TCP4 192.0.2.7 198.51.100.1 50000 443\r\n");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyHeader {
    version: ProxyVersion,
    source: Option<SocketAddr>,
    destination: Option<SocketAddr>,
    /// The v2 TLV bytes, as they came (or will go): type (1 byte), length (2), value.
    tlvs: Vec<u8>,
    /// A TLV too long for its 16-bit length was given: `to_bytes` refuses the header.
    oversized: bool,
}

impl ProxyHeader {
    /// A header that says a client at `source` connected to `destination` (the balancer's
    /// address the client reached). Addresses of two families are both written as IPv6.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{ProxyHeader, ProxyVersion};
    ///
    /// let header = ProxyHeader::new(
    ///     ProxyVersion::V1,
    ///     "[2001:db8::1]:4000".parse().unwrap(),
    ///     "[2001:db8::2]:80".parse().unwrap(),
    /// );
    /// assert_eq!(header.version(), ProxyVersion::V1);
    /// ```
    pub fn new(version: ProxyVersion, source: SocketAddr, destination: SocketAddr) -> ProxyHeader {
        ProxyHeader {
            version,
            source: Some(source),
            destination: Some(destination),
            tlvs: Vec::new(),
            oversized: false,
        }
    }

    /// Adds a TLV (v2 only; a v1 header has none and ignores them). Types `0xE0`-`0xEF` are
    /// for applications' own use. A value over 65,535 bytes cannot be written: it is not added,
    /// and [`to_bytes`](Self::to_bytes) then fails rather than send a cut one.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{ProxyHeader, ProxyVersion};
    ///
    /// let a = "127.0.0.1:1".parse().unwrap();
    /// let header = ProxyHeader::new(ProxyVersion::V2, a, a).with_tlv(0x02, b"example.org");
    /// assert_eq!(header.tlvs().collect::<Vec<_>>(), vec![(0x02, &b"example.org"[..])]);
    /// ```
    pub fn with_tlv(mut self, kind: u8, value: &[u8]) -> ProxyHeader {
        let Ok(len) = u16::try_from(value.len()) else {
            self.oversized = true;
            return self;
        };
        self.tlvs.push(kind);
        self.tlvs.extend_from_slice(&len.to_be_bytes());
        self.tlvs.extend_from_slice(value);
        self
    }

    /// The version the header is written in.
    ///
    /// # Examples
    ///
    /// ```
    /// # let a = "127.0.0.1:1".parse().unwrap();
    /// let header = sockloop::ProxyHeader::new(sockloop::ProxyVersion::V2, a, a);
    /// assert_eq!(header.version(), sockloop::ProxyVersion::V2);
    /// ```
    pub fn version(&self) -> ProxyVersion {
        self.version
    }

    /// The client's address, if the header gives one.
    ///
    /// # Examples
    ///
    /// ```
    /// # let (a, b) = ("192.0.2.7:5".parse().unwrap(), "127.0.0.1:1".parse().unwrap());
    /// let header = sockloop::ProxyHeader::new(sockloop::ProxyVersion::V1, a, b);
    /// assert_eq!(header.source(), Some(a));
    /// ```
    pub fn source(&self) -> Option<SocketAddr> {
        self.source
    }

    /// The address the client connected to (the balancer's front), if the header gives one.
    ///
    /// # Examples
    ///
    /// ```
    /// # let (a, b) = ("192.0.2.7:5".parse().unwrap(), "127.0.0.1:1".parse().unwrap());
    /// let header = sockloop::ProxyHeader::new(sockloop::ProxyVersion::V1, a, b);
    /// assert_eq!(header.destination(), Some(b));
    /// ```
    pub fn destination(&self) -> Option<SocketAddr> {
        self.destination
    }

    /// The v2 TLVs, raw: `(type, value)` in the order they came. Known types include ALPN
    /// (`0x01`), authority, i.e. the SNI host name (`0x02`), a unique connection id (`0x05`) and
    /// SSL details (`0x20`); `ppp::v2::Type` names them.
    ///
    /// # Examples
    ///
    /// ```
    /// # let a = "127.0.0.1:1".parse().unwrap();
    /// let header = sockloop::ProxyHeader::new(sockloop::ProxyVersion::V2, a, a)
    ///     .with_tlv(0x05, b"id-1")
    ///     .with_tlv(0xE0, b"x");
    /// let kinds: Vec<u8> = header.tlvs().map(|(kind, _)| kind).collect();
    /// assert_eq!(kinds, [0x05, 0xE0]);
    /// ```
    pub fn tlvs(&self) -> impl Iterator<Item = (u8, &[u8])> + '_ {
        TypeLengthValues::from(&self.tlvs[..])
            .map_while(Result::ok)
            .map(|tlv| match tlv.value {
                std::borrow::Cow::Borrowed(value) => (tlv.kind, value),
                // ppp borrows from the slice it iterates; nothing owned comes out.
                std::borrow::Cow::Owned(_) => (tlv.kind, &[][..]),
            })
    }

    /// The value of the first TLV of type `kind`.
    ///
    /// # Examples
    ///
    /// ```
    /// # let a = "127.0.0.1:1".parse().unwrap();
    /// let header = sockloop::ProxyHeader::new(sockloop::ProxyVersion::V2, a, a);
    /// assert_eq!(header.tlv(0x02), None);
    /// ```
    pub fn tlv(&self, kind: u8) -> Option<&[u8]> {
        self.tlvs().find(|(k, _)| *k == kind).map(|(_, v)| v)
    }

    /// The header as it goes on the wire.
    ///
    /// # Examples
    ///
    /// ```
    /// # let a = "127.0.0.1:1".parse().unwrap();
    /// let bytes = sockloop::ProxyHeader::new(sockloop::ProxyVersion::V2, a, a).to_bytes()?;
    /// assert_eq!(&bytes[..12], b"\r\n\r\n\0\r\nQUIT\n");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// `InvalidInput` if the TLVs do not fit a v2 header (64 KiB in all).
    pub fn to_bytes(&self) -> io::Result<Vec<u8>> {
        if self.oversized {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a PROXY v2 TLV value over 65,535 bytes",
            ));
        }
        let (source, destination) = match (self.source, self.destination) {
            (Some(s), Some(d)) => same_family(s, d),
            _ => {
                return Ok(match self.version {
                    ProxyVersion::V1 => b"PROXY UNKNOWN\r\n".to_vec(),
                    ProxyVersion::V2 => v2::Builder::new(
                        v2::Version::Two | Command::Local,
                        v2::AddressFamily::Unspecified | Protocol::Unspecified,
                    )
                    .build()?,
                })
            }
        };
        match self.version {
            ProxyVersion::V1 => {
                let family = if source.is_ipv4() { "TCP4" } else { "TCP6" };
                Ok(format!(
                    "PROXY {family} {} {} {} {}\r\n",
                    source.ip(),
                    destination.ip(),
                    source.port(),
                    destination.port()
                )
                .into_bytes())
            }
            ProxyVersion::V2 => v2::Builder::with_addresses(
                v2::Version::Two | Command::Proxy,
                Protocol::Stream,
                (source, destination),
            )
            .write_payload(&self.tlvs[..])?
            .build(),
        }
    }
}

impl crate::Context<'_> {
    /// The PROXY protocol header this connection came with (feature `proxy-protocol`): `None`
    /// on a listener without the protocol, or when an optional header was not sent. Its
    /// addresses are already what [`peer_addr`](crate::Context::peer_addr) says; this gives
    /// the rest, such as the balancer's front address and the v2 TLVs.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{Context, Handler, Input};
    ///
    /// /// Logs the SNI name the balancer saw (TLV 0x02, "authority"), if it passed it on.
    /// struct Tenant;
    /// impl Handler for Tenant {
    ///     fn on_open(&mut self, cx: &mut Context<'_>) {
    ///         if let Some(header) = cx.proxy_header() {
    ///             let authority = header.tlv(0x02).map(String::from_utf8_lossy);
    ///             log::info!("to {:?} for {authority:?}", header.destination());
    ///         }
    ///     }
    ///     fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         input.consume(input.len());
    ///     }
    /// }
    /// ```
    pub fn proxy_header(&self) -> Option<&ProxyHeader> {
        self.core.slots.conn(self.id)?.proxy_header()
    }
}

/// Both addresses in one family: IPv4 ones become IPv4-mapped IPv6 beside an IPv6 one.
fn same_family(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    if a.is_ipv4() == b.is_ipv4() {
        return (a, b);
    }
    let v6 = |s: SocketAddr| match s.ip() {
        IpAddr::V4(ip) => SocketAddr::new(ip.to_ipv6_mapped().into(), s.port()),
        IpAddr::V6(_) => s,
    };
    (v6(a), v6(b))
}

/// The two signatures a header starts with.
const V1_SIGNATURE: &[u8] = b"PROXY ";
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 header, `\r\n` included (the specification's worst case).
const V1_MAX: usize = 107;

/// What the first bytes of a connection are.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// The start of a header, not all of it yet.
    Incomplete,
    /// Not a header at all (with `ProxyProtocol::Optional`, the handler's first bytes).
    Absent,
    /// A header of this many bytes.
    Header(usize, ProxyHeader),
    /// A malformed header, or none where one is required.
    Invalid(String),
}

/// Whether `bytes` and `signature` agree as far as both go.
fn could_start(bytes: &[u8], signature: &[u8]) -> bool {
    let n = bytes.len().min(signature.len());
    bytes[..n] == signature[..n]
}

/// Parses the first bytes of a connection, as far as they came.
pub(crate) fn parse(bytes: &[u8], mode: ProxyProtocol) -> Parsed {
    if !could_start(bytes, V1_SIGNATURE) && !could_start(bytes, V2_SIGNATURE) {
        return match mode {
            ProxyProtocol::Optional => Parsed::Absent,
            _ => Parsed::Invalid("no PROXY protocol header".into()),
        };
    }
    if could_start(bytes, V2_SIGNATURE) {
        let result = v2::Header::try_from(bytes);
        if result.is_incomplete() {
            return Parsed::Incomplete;
        }
        return v2_header(result);
    }
    // A v1 header is one line of at most 107 bytes; ppp is given the whole line only, so that
    // a line cut short is never taken for a bad one.
    let Some(end) = bytes.windows(2).position(|w| w == b"\r\n") else {
        return if bytes.len() >= V1_MAX {
            Parsed::Invalid(format!("PROXY v1 header longer than {V1_MAX} bytes"))
        } else {
            Parsed::Incomplete
        };
    };
    if end + 2 > V1_MAX {
        return Parsed::Invalid(format!("PROXY v1 header longer than {V1_MAX} bytes"));
    }
    match v1::Header::try_from(&bytes[..end + 2]) {
        Ok(header) => {
            let (source, destination) = match header.addresses {
                v1::Addresses::Tcp4(a) => ends(
                    a.source_address.into(),
                    a.source_port,
                    a.destination_address.into(),
                    a.destination_port,
                ),
                v1::Addresses::Tcp6(a) => ends(
                    a.source_address.into(),
                    a.source_port,
                    a.destination_address.into(),
                    a.destination_port,
                ),
                v1::Addresses::Unknown => (None, None),
            };
            let header_len = header.header.len();
            Parsed::Header(
                header_len,
                ProxyHeader {
                    version: ProxyVersion::V1,
                    source,
                    destination,
                    tlvs: Vec::new(),
                    oversized: false,
                },
            )
        }
        Err(e) => Parsed::Invalid(format!("PROXY v1 header: {e}")),
    }
}

/// A header's two ends, as socket addresses.
fn ends(
    source: IpAddr,
    source_port: u16,
    destination: IpAddr,
    destination_port: u16,
) -> (Option<SocketAddr>, Option<SocketAddr>) {
    (
        Some(SocketAddr::new(source, source_port)),
        Some(SocketAddr::new(destination, destination_port)),
    )
}

/// A complete v2 header, or why it is not one.
fn v2_header(result: Result<v2::Header<'_>, v2::ParseError>) -> Parsed {
    match result {
        Ok(header) => {
            if header.tlvs().any(|tlv| tlv.is_err()) {
                return Parsed::Invalid("PROXY v2 header with a malformed TLV".into());
            }
            // LOCAL: the balancer speaking for itself (a health check): the socket's addresses
            // stand. UNSPEC and UNIX addresses say nothing a TCP peer address could hold.
            let (source, destination) = match (header.command, header.addresses) {
                (Command::Proxy, v2::Addresses::IPv4(a)) => ends(
                    a.source_address.into(),
                    a.source_port,
                    a.destination_address.into(),
                    a.destination_port,
                ),
                (Command::Proxy, v2::Addresses::IPv6(a)) => ends(
                    a.source_address.into(),
                    a.source_port,
                    a.destination_address.into(),
                    a.destination_port,
                ),
                _ => (None, None),
            };
            Parsed::Header(
                header.len(),
                ProxyHeader {
                    version: ProxyVersion::V2,
                    source,
                    destination,
                    tlvs: header.tlv_bytes().to_vec(),
                    oversized: false,
                },
            )
        }
        Err(e) => Parsed::Invalid(format!("PROXY v2 header: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn headers_round_trip_through_bytes() {
        for version in [ProxyVersion::V1, ProxyVersion::V2] {
            for (s, d) in [
                ("192.0.2.7:50000", "198.51.100.1:443"),
                ("[2001:db8::1]:1", "[2001:db8::2]:2"),
            ] {
                let header = ProxyHeader::new(version, addr(s), addr(d));
                let bytes = header.to_bytes().unwrap();
                let mut input = bytes.clone();
                input.extend_from_slice(b"GET / HTTP/1.1\r\n");
                match parse(&input, ProxyProtocol::Required) {
                    Parsed::Header(len, parsed) => {
                        assert_eq!(len, bytes.len());
                        assert_eq!(parsed, header);
                    }
                    other => panic!("{version} {s}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn an_oversized_tlv_is_refused_not_cut() {
        let a = addr("1.2.3.4:5");
        let header = ProxyHeader::new(ProxyVersion::V2, a, a).with_tlv(0xE0, &vec![0; 70_000]);
        let e = header.to_bytes().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn tlvs_survive_v2() {
        let header = ProxyHeader::new(ProxyVersion::V2, addr("1.2.3.4:5"), addr("5.6.7.8:9"))
            .with_tlv(0x01, b"h2")
            .with_tlv(0xE1, &[0; 300]);
        let bytes = header.to_bytes().unwrap();
        let Parsed::Header(_, parsed) = parse(&bytes, ProxyProtocol::Required) else {
            panic!("not parsed");
        };
        assert_eq!(parsed.tlv(0x01), Some(&b"h2"[..]));
        assert_eq!(parsed.tlv(0xE1).map(<[u8]>::len), Some(300));
    }

    #[test]
    fn every_prefix_of_a_header_is_incomplete() {
        for version in [ProxyVersion::V1, ProxyVersion::V2] {
            let bytes = ProxyHeader::new(version, addr("1.2.3.4:5"), addr("5.6.7.8:9"))
                .to_bytes()
                .unwrap();
            for end in 1..bytes.len() {
                let got = parse(&bytes[..end], ProxyProtocol::Required);
                assert!(
                    matches!(got, Parsed::Incomplete),
                    "{version} ..{end}: {got:?}"
                );
            }
        }
    }

    #[test]
    fn other_bytes_are_absent_or_invalid_by_mode() {
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\n", ProxyProtocol::Optional),
            Parsed::Absent
        ));
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\n", ProxyProtocol::Required),
            Parsed::Invalid(_)
        ));
        assert!(matches!(
            parse(b"PROXY TCP4 1.2.3.4 nonsense\r\n", ProxyProtocol::Optional),
            Parsed::Invalid(_)
        ));
        assert!(matches!(
            parse(&[b'P'; 200], ProxyProtocol::Required),
            Parsed::Invalid(_)
        ));
    }

    #[test]
    fn local_and_unknown_headers_carry_no_addresses() {
        let local = v2::Builder::new(
            v2::Version::Two | Command::Local,
            v2::AddressFamily::Unspecified | Protocol::Unspecified,
        )
        .build()
        .unwrap();
        for bytes in [&local[..], b"PROXY UNKNOWN\r\n"] {
            let Parsed::Header(len, header) = parse(bytes, ProxyProtocol::Required) else {
                panic!("not parsed");
            };
            assert_eq!(len, bytes.len());
            assert_eq!((header.source(), header.destination()), (None, None));
        }
    }
}
