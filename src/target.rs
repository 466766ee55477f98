//! Where an outbound connection goes: a socket address, a list of them, or a host name to
//! resolve.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Where [`Reactor::connect`](crate::Reactor::connect) goes. Made with `into()` from a
/// [`SocketAddr`], an `(IpAddr, u16)` pair, a list of addresses, or a `"host:port"` string
/// (or a `(host, port)` pair) whose host is an IP literal or a name to resolve.
///
/// A name is resolved off the loop thread by the reactor's resolver threads (the system's
/// resolver: `/etc/hosts`, nsswitch, DNS). With several addresses the connection races them
/// the Happy Eyeballs way (RFC 8305): address families alternate, the next attempt starts after
/// a delay or at once when one fails, the first established wins, and the others are closed
/// unseen by the handler.
///
/// # Resolver threads
///
/// Each reactor starts up to four resolver threads, when the first name needs them, and keeps
/// them for the next lookups; more lookups at once wait in their queue. A lookup is a blocking
/// `getaddrinfo` call and cannot be cancelled: a connect closed or timed out meanwhile just
/// ignores its answer, and a lookup stuck on an unanswering DNS server holds its thread until
/// the system resolver gives up (`timeout` and `attempts` in `/etc/resolv.conf`). Failure to
/// resolve reaches the handler as [`CloseReason::ConnectFailed`](crate::CloseReason) with an
/// error that names the host. Applications that resolve names themselves (with a DNS library
/// of their own) pass the addresses as a list.
///
/// # Examples
///
/// ```
/// use std::net::SocketAddr;
/// use sockloop::Target;
///
/// let by_addr: Target = "127.0.0.1:6379".parse::<SocketAddr>().unwrap().into();
/// let by_name: Target = "localhost:6379".into();
/// let by_pair: Target = ("example.org", 443).into();
/// assert_eq!(by_name.to_string(), "localhost:6379");
/// # let _ = (by_addr, by_pair);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target(pub(crate) Kind);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Addresses to race, in order (one for a plain socket address).
    Addrs(Vec<SocketAddr>),
    /// A host name and port to resolve first.
    Host(String, u16),
    /// A string that is neither `addr:port` nor `host:port`.
    Invalid(String),
}

impl From<SocketAddr> for Target {
    fn from(addr: SocketAddr) -> Target {
        Target(Kind::Addrs(vec![addr]))
    }
}

impl From<(IpAddr, u16)> for Target {
    fn from((ip, port): (IpAddr, u16)) -> Target {
        SocketAddr::new(ip, port).into()
    }
}

impl From<(Ipv4Addr, u16)> for Target {
    fn from((ip, port): (Ipv4Addr, u16)) -> Target {
        SocketAddr::new(ip.into(), port).into()
    }
}

impl From<(Ipv6Addr, u16)> for Target {
    fn from((ip, port): (Ipv6Addr, u16)) -> Target {
        SocketAddr::new(ip.into(), port).into()
    }
}

impl From<Vec<SocketAddr>> for Target {
    /// Addresses already resolved (by a DNS library of the caller's, say), to race in order.
    fn from(addrs: Vec<SocketAddr>) -> Target {
        Target(Kind::Addrs(addrs))
    }
}

impl From<&[SocketAddr]> for Target {
    fn from(addrs: &[SocketAddr]) -> Target {
        addrs.to_vec().into()
    }
}

impl From<(&str, u16)> for Target {
    fn from((host, port): (&str, u16)) -> Target {
        match host.parse::<IpAddr>() {
            Ok(ip) => (ip, port).into(),
            // "[::1]" with brackets, as in a URL.
            Err(_) => match host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .and_then(|h| h.parse::<Ipv6Addr>().ok())
            {
                Some(ip) => (ip, port).into(),
                None => Target(Kind::Host(host.to_string(), port)),
            },
        }
    }
}

impl From<(String, u16)> for Target {
    fn from((host, port): (String, u16)) -> Target {
        (host.as_str(), port).into()
    }
}

impl From<&str> for Target {
    /// `"1.2.3.4:80"`, `"[::1]:80"` or `"host:80"`.
    fn from(s: &str) -> Target {
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return addr.into();
        }
        match s.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && !host.contains(':') => {
                match port.parse::<u16>() {
                    Ok(port) => (host, port).into(),
                    Err(_) => Target(Kind::Invalid(s.to_string())),
                }
            }
            _ => Target(Kind::Invalid(s.to_string())),
        }
    }
}

impl From<String> for Target {
    fn from(s: String) -> Target {
        s.as_str().into()
    }
}

impl From<&String> for Target {
    fn from(s: &String) -> Target {
        s.as_str().into()
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::Addrs(addrs) if addrs.len() == 1 => addrs[0].fmt(f),
            Kind::Addrs(addrs) => write!(f, "{addrs:?}"),
            Kind::Host(host, port) => write!(f, "{host}:{port}"),
            Kind::Invalid(s) => f.write_str(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Kind, Target};

    #[test]
    fn strings_become_addresses_or_names() {
        let t: Target = "127.0.0.1:80".into();
        assert_eq!(t.0, Kind::Addrs(vec!["127.0.0.1:80".parse().unwrap()]));
        let t: Target = "[::1]:80".into();
        assert_eq!(t.0, Kind::Addrs(vec!["[::1]:80".parse().unwrap()]));
        let t: Target = "localhost:80".into();
        assert_eq!(t.0, Kind::Host("localhost".into(), 80));
        let t: Target = ("[::1]", 80).into();
        assert_eq!(t.0, Kind::Addrs(vec!["[::1]:80".parse().unwrap()]));
        for bad in ["localhost", "localhost:http", ":80", "::1:80x"] {
            let t: Target = bad.into();
            assert_eq!(t.0, Kind::Invalid(bad.into()), "{bad}");
        }
    }
}
