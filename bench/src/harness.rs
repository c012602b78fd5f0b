//! Server processes and certificates shared by every scenario.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use crate::Stack;

/// A congestion controller for grpc-h3's QUIC server, on the command line.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum Congestion {
    /// CUBIC (grpc-h3's default).
    Cubic,
    /// BBR.
    Bbr,
    /// NewReno.
    NewReno,
}

impl Congestion {
    pub(crate) fn controller(self) -> grpc_h3::CongestionControl {
        match self {
            Congestion::Cubic => grpc_h3::CongestionControl::Cubic,
            Congestion::Bbr => grpc_h3::CongestionControl::Bbr,
            Congestion::NewReno => grpc_h3::CongestionControl::NewReno,
        }
    }
}

/// The congestion controller grpc-h3's server processes use, if the run
/// chose one.
static SERVER_CONGESTION: OnceLock<Congestion> = OnceLock::new();

/// Runs grpc-h3's HTTP/3 server processes with `controller`.
pub(crate) fn set_server_congestion(controller: Congestion) {
    let _ = SERVER_CONGESTION.set(controller);
}

/// The CPUs every server process is pinned to (a `taskset -c` list), if
/// the run asked for it.
static SERVER_CPUS: OnceLock<String> = OnceLock::new();

/// Pins every server process started from now on to `cpus` (a `taskset
/// -c` list such as `0` or `0,1`); its tokio runtime then starts one worker
/// per CPU in the list, as on a machine that size.
pub(crate) fn pin_servers(cpus: String) -> Result<(), String> {
    if Command::new("taskset").arg("-V").output().is_err() {
        return Err("--server-cpus needs `taskset` (Debian: apt-get install util-linux)".into());
    }
    SERVER_CPUS
        .set(cpus)
        .map_err(|_| "the server CPUs are already set".to_owned())
}

/// A development certificate on disk, for server processes.
pub(crate) struct Certificate {
    pub(crate) cert_pem: Vec<u8>,
    cert_path: PathBuf,
    key_path: PathBuf,
}

impl Certificate {
    pub(crate) fn generate() -> Result<Certificate, String> {
        let dev = grpc_h3::tls::DevCertificate::localhost().map_err(|e| e.to_string())?;
        let dir = std::env::temp_dir().join(format!("grpc-h3-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert_path, dev.cert_pem()).map_err(|e| e.to_string())?;
        std::fs::write(&key_path, dev.key_pem()).map_err(|e| e.to_string())?;
        Ok(Certificate {
            cert_pem: dev.cert_pem().as_bytes().to_vec(),
            cert_path,
            key_path,
        })
    }
}

impl Certificate {
    /// Where the certificate's PEM is, for processes to trust it.
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.cert_path
    }

    /// Where the private key is.
    pub(crate) fn key_path(&self) -> &std::path::Path {
        &self.key_path
    }
}

impl Drop for Certificate {
    fn drop(&mut self) {
        if let Some(dir) = self.cert_path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// One stack's server, running as a child process.
pub(crate) struct ServerProcess {
    child: Child,
    pub(crate) addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `stack` listening on `bind`, inside network namespace `netns`
    /// if given.
    pub(crate) fn start(
        stack: Stack,
        cert: &Certificate,
        bind: SocketAddr,
        netns: Option<&str>,
        max_streams: Option<u32>,
    ) -> Result<ServerProcess, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut launcher: Vec<String> = Vec::new();
        if let Some(ns) = netns {
            launcher.extend(["ip", "netns", "exec", ns].map(String::from));
        }
        if let Some(cpus) = SERVER_CPUS.get() {
            launcher.extend(["taskset".to_owned(), "-c".to_owned(), cpus.clone()]);
        }
        let mut command = match launcher.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        command
            .args([
                "serve",
                "--stack",
                stack.name(),
                "--addr",
                &bind.to_string(),
            ])
            .arg("--cert")
            .arg(&cert.cert_path)
            .arg("--key")
            .arg(&cert.key_path)
            .args(max_streams.map(|n| format!("--max-streams={n}")))
            .args(
                SERVER_CONGESTION
                    .get()
                    .filter(|_| stack == Stack::GrpcH3)
                    .and_then(clap::ValueEnum::to_possible_value)
                    .map(|c| format!("--congestion={}", c.get_name())),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = command
            .spawn()
            .map_err(|e| format!("starting the {} server: {e}", stack.name()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let addr = line
            .trim()
            .strip_prefix("LISTENING ")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| {
                format!(
                    "the {} server said {line:?} instead of LISTENING",
                    stack.name()
                )
            })?;
        Ok(ServerProcess { child, addr })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server at once (SIGKILL): its connections end without a
    /// word, as when a host crashes.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Closing stdin asks for a graceful stop; kill if that is slow.
        drop(self.child.stdin.take());
        for _ in 0..40 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
