//! How c10k's connections are secured: plain, or TLS against the server it starts (with a
//! throwaway PKI in a temporary directory) or against `--addr` (with `--cacert`).

use std::path::PathBuf;

use sockloop::ConnectOptions;

use crate::{tls, Args};

/// How the clients connect, and what the servers c10k starts serve: TLS or not.
pub(crate) struct Secure {
    /// The clients' connect options.
    pub(crate) options: ConnectOptions,
    /// What makes a worker process connect the same way (`--tls --cacert FILE ...`).
    pub(crate) worker_args: Vec<String>,
    /// What makes a started server serve TLS (`--tls --cert FILE --key FILE`).
    pub(crate) server_args: Vec<String>,
    /// The throwaway PKI's directory, removed when this is dropped.
    dir: Option<PathBuf>,
}

impl Secure {
    /// Plain connections, or TLS: against the server c10k starts, with a throwaway PKI written
    /// to a temporary directory; against `--addr`, with the CA of `--cacert`.
    pub(crate) fn new(args: &Args) -> Result<Secure, String> {
        let mut secure = Secure {
            options: ConnectOptions::new(),
            worker_args: Vec::new(),
            server_args: Vec::new(),
            dir: None,
        };
        if !args.tls.tls {
            return Ok(secure);
        }
        let mut client = args.tls.clone();
        if args.addr.is_none() {
            let dir = std::env::temp_dir().join(format!("sockloop-c10k-{}", std::process::id()));
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            secure.dir = Some(dir.clone());
            let files = tls::write_throwaway_pki(&dir, "c10k")?;
            client.cacert = Some(files.ca);
            secure.server_args = vec![
                "--tls".into(),
                "--cert".into(),
                files.cert.display().to_string(),
                "--key".into(),
                files.key.display().to_string(),
            ];
        }
        let Some(tls) = tls::client(&client, "c10k", &[])? else {
            return Ok(secure);
        };
        secure.worker_args = vec![
            "--tls".into(),
            "--cacert".into(),
            tls.ca_file.display().to_string(),
        ];
        if let Some(name) = &client.server_name {
            secure
                .worker_args
                .extend(["--server-name".into(), name.clone()]);
        }
        // The churn measures handshakes: a resumed session would skip most of the work.
        let tls = if args.churn {
            tls.without_resumption()
        } else {
            tls
        };
        secure.options = tls.connect_options(ConnectOptions::new());
        Ok(secure)
    }
}

impl Drop for Secure {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
