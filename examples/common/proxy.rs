//! `--proxy-protocol` for the example servers: behind a load balancer (HAProxy's `send-proxy` or
//! `send-proxy-v2`), every connection starts with a PROXY protocol header that names the real
//! client. Built with or without the `proxy-protocol` feature; without it, asking for the
//! protocol is a clear error at startup.
//!
//! Included with `#[path = "../common/proxy.rs"] mod proxy;` by the servers that take it.

use sockloop::{Context, ListenOptions};

/// The servers' `--proxy-protocol` flag, flattened into their arguments.
#[derive(clap::Args, Debug, Default)]
pub struct ProxyArgs {
    /// Expect a PROXY protocol header (v1 or v2) at the start of every connection, as a load
    /// balancer such as HAProxy sends with send-proxy / send-proxy-v2: the logs then show the
    /// real client's address. Only for a port that nothing but the balancer can reach.
    #[arg(long)]
    pub proxy_protocol: bool,
}

impl ProxyArgs {
    /// `options`, with the PROXY protocol required if the flag was given.
    pub fn apply(&self, options: ListenOptions, example: &str) -> Result<ListenOptions, String> {
        if !self.proxy_protocol {
            return Ok(options);
        }
        #[cfg(feature = "proxy-protocol")]
        return {
            let _ = example;
            Ok(options.proxy_protocol(sockloop::ProxyProtocol::Required))
        };
        #[cfg(not(feature = "proxy-protocol"))]
        return {
            let _ = options;
            Err(format!(
                "--proxy-protocol needs the proxy-protocol feature: \
                 cargo run --features proxy-protocol --example {example} -- --proxy-protocol"
            ))
        };
    }
}

/// Who is on the other end, for the connection log line: `ADDR` for a direct client, `ADDR via
/// BALANCER` for one that came through a load balancer with a PROXY header.
pub fn peer(cx: &Context<'_>) -> String {
    match (cx.peer_addr(), cx.socket_peer_addr()) {
        (Ok(client), Ok(socket)) if client != socket => format!("{client} via {socket}"),
        (Ok(client), _) => client.to_string(),
        (Err(e), _) => format!("(peer address unknown: {e})"),
    }
}
