//! Runs a server on an ephemeral loopback port with a development
//! certificate, and a channel that trusts it: what the in-process examples
//! and their tests share.

use grpc_h3::server::ServerBuilder;
use grpc_h3::tls::ClientTlsConfig;
use grpc_h3::Channel;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server running in this process.
#[derive(Debug)]
pub struct LocalServer {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// A channel to it, trusting its development certificate.
    pub channel: Channel,
    stop: oneshot::Sender<()>,
    serving: JoinHandle<Result<(), grpc_h3::Error>>,
}

/// Binds `builder` (services added, no TLS identity) on `127.0.0.1:0` with
/// a development certificate and starts serving. Call inside a tokio runtime.
pub fn start(builder: ServerBuilder) -> Result<LocalServer, grpc_h3::Error> {
    let server = builder.dev_certificate().bind(([127, 0, 0, 1], 0).into())?;
    let addr = server.local_addr()?;
    let ca = server.dev_certificate_pem().unwrap_or_default().to_owned();
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve_with_shutdown(async {
        let _ = stopped.await;
    }));
    // The development certificate names 127.0.0.1 itself.
    let channel = Channel::builder(format!("https://127.0.0.1:{}", addr.port()))
        .tls_config(ClientTlsConfig::new().ca_certificate(ca))
        .build()?;
    Ok(LocalServer {
        addr,
        channel,
        stop,
        serving,
    })
}

impl LocalServer {
    /// Shuts the server down gracefully and waits until it has stopped.
    pub async fn stop(self) -> Result<(), Box<dyn std::error::Error>> {
        let _ = self.stop.send(());
        self.serving.await??;
        Ok(())
    }
}
