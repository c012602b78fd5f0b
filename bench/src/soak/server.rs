//! `grpc-h3-bench soak-server`: a grpc-h3 server in its own process that
//! counts its handlers and reports its own counters on request, so the
//! soak can check that nothing leaked and nothing was lost.
//!
//! Protocol on stdio: it prints `LISTENING <addr>`; each `stats` line read
//! is answered with `STATS key=value ...`; `drain` (or the end of stdin)
//! starts a graceful shutdown, after which it prints `DRAINED key=value ...`
//! and exits.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncBufReadExt;
use tokio_stream::wrappers::ReceiverStream;

use crate::pb;
use crate::procfs;

/// Handler runs, counted by the service itself.
#[derive(Default)]
struct Handlers {
    started: AtomicU64,
    finished: AtomicU64,
}

struct Counted(Arc<Handlers>);

impl pb::h3::bench_server::Bench for Counted {
    async fn unary(
        &self,
        request: grpc_h3::Request<pb::h3::Payload>,
    ) -> Result<grpc_h3::Response<pb::h3::Payload>, grpc_h3::Status> {
        self.0.started.fetch_add(1, Ordering::Relaxed);
        let response = grpc_h3::Response::new(request.into_inner());
        self.0.finished.fetch_add(1, Ordering::Relaxed);
        Ok(response)
    }

    type StreamOutStream = ReceiverStream<Result<pb::h3::Payload, grpc_h3::Status>>;

    async fn stream_out(
        &self,
        _request: grpc_h3::Request<pb::h3::StreamRequest>,
    ) -> Result<grpc_h3::Response<Self::StreamOutStream>, grpc_h3::Status> {
        Err(grpc_h3::Status::unimplemented("not used by the soak"))
    }

    type HoldStream = grpc_h3::Streaming<pb::h3::Payload>;

    async fn hold(
        &self,
        request: grpc_h3::Request<grpc_h3::Streaming<pb::h3::Payload>>,
    ) -> Result<grpc_h3::Response<Self::HoldStream>, grpc_h3::Status> {
        // Echoes each message back as it arrives.
        Ok(grpc_h3::Response::new(request.into_inner()))
    }
}

fn report(handle: &grpc_h3::server::ServerHandle, handlers: &Handlers) -> String {
    let s = handle.stats();
    let pid = std::process::id();
    format!(
        "live_calls={} running_calls={} connections={} tasks={} stop_watchers={} \
         connections_accepted={} handlers_started={} handlers_finished={} rss_kib={} hwm_kib={} \
         handshake_timeouts={} early_reset_closes={} idle_closes={} header_timeouts={} \
         refused_frames={} connections_refused={}",
        s.live_calls,
        s.running_calls,
        s.connections,
        s.tasks,
        s.stop_watchers,
        s.connections_accepted,
        handlers.started.load(Ordering::Relaxed),
        handlers.finished.load(Ordering::Relaxed),
        procfs::status_kib(pid, "VmRSS"),
        procfs::status_kib(pid, "VmHWM"),
        s.handshake_timeouts,
        s.early_reset_closes,
        s.idle_closes,
        s.header_timeouts,
        s.refused_frames,
        s.connections_refused,
    )
}

/// Runs the soak server until drained.
pub(crate) async fn serve(
    addr: SocketAddr,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
) -> Result<(), Box<dyn std::error::Error>> {
    let handlers = Arc::new(Handlers::default());
    let server = grpc_h3::server::Server::builder()
        .tls_identity(&cert_pem, &key_pem)
        .crypto_provider(crate::tls::provider())
        .grace_period(Duration::from_secs(30))
        .add_service(pb::h3::bench_server::BenchServer::new(Counted(
            handlers.clone(),
        )))
        .bind(addr)?;
    let handle = server.handle();
    println!("LISTENING {}", server.local_addr()?);
    let (drain_tx, drain_rx) = tokio::sync::oneshot::channel::<()>();
    let (reporter, counts) = (handle.clone(), handlers.clone());
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            match line.trim() {
                "stats" => println!("STATS {}", report(&reporter, &counts)),
                "drain" => break,
                _ => {}
            }
        }
        let _ = drain_tx.send(());
    });
    server
        .serve_with_shutdown(async {
            let _ = drain_rx.await;
        })
        .await?;
    println!("DRAINED {}", report(&handle, &handlers));
    Ok(())
}
