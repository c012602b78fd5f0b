//! One QUIC connection on the server: the h3 accept loop and GOAWAY.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;

use super::{request, ConnectionContext, Shared};
use crate::message::PeerInfo;
use crate::transport::quic::{self, StopSignals};

fn peer_info(conn: &quinn::Connection) -> PeerInfo {
    let certificates = conn
        .peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
        .map(|certs| Arc::new(*certs));
    PeerInfo {
        addr: conn.remote_address(),
        certificates,
    }
}

/// Runs one connection until it closes or the server aborts.
pub(super) async fn serve(incoming: quinn::Incoming, shared: Arc<Shared>) {
    if shared.drain.is_cancelled() {
        incoming.refuse();
        return;
    }
    let conn = match incoming.await {
        Ok(conn) => conn,
        Err(e) => {
            tracing::debug!(error = %e, "handshake failed");
            return;
        }
    };
    let signals = StopSignals::default();
    let built = h3::server::builder()
        .max_field_section_size(shared.config.max_header_list_size)
        .build(quic::Connection::server(conn.clone(), signals.clone()))
        .await;
    let mut h3_conn = match built {
        Ok(h3_conn) => h3_conn,
        Err(e) => {
            tracing::debug!(error = %e, "HTTP/3 setup failed");
            return;
        }
    };
    let ctx = Arc::new(ConnectionContext {
        shared: shared.clone(),
        peer: peer_info(&conn),
        stop_signals: signals,
        goaway_boundary: AtomicU64::new(u64::MAX),
    });
    let mut accepted: u64 = 0;
    let mut draining = false;
    loop {
        tokio::select! {
            result = h3_conn.accept() => match result {
                Ok(Some(resolver)) => {
                    accepted += 1;
                    tokio::spawn(request::handle(resolver, ctx.clone()));
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "connection ended");
                    break;
                }
            },
            () = shared.drain.cancelled(), if !draining => {
                draining = true;
                // Client bidi stream ids are 0, 4, 8...: the first one we
                // have not accepted is 4 * accepted. h3's shutdown(1)
                // announces exactly that id; h3 itself would still accept
                // it, so request::handle refuses it.
                ctx.goaway_boundary.store(accepted * 4, Ordering::Release);
                if let Err(e) = h3_conn.shutdown(1).await {
                    tracing::debug!(error = %e, "could not send GOAWAY");
                    break;
                }
            }
            () = shared.abort.cancelled() => break,
        }
    }
    conn.close(
        quinn::VarInt::from_u32(0x100), // H3_NO_ERROR
        b"",
    );
}
