//! `grpc-h3-bench serve`: one stack's server in its own process, so its CPU
//! time and memory are measured apart from the load generator.

use std::net::SocketAddr;
use std::pin::Pin;

use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;

use crate::pb;
use crate::Stack;

type BoxStream<T, S> = Pin<Box<dyn Stream<Item = Result<T, S>> + Send>>;

/// Sends `count` messages (0 = until the call ends) through a channel.
fn stream_out<T: Send + 'static, S: Send + 'static>(
    size: u32,
    count: u64,
    make: fn(Bytes) -> T,
) -> ReceiverStream<Result<T, S>> {
    let (tx, rx) = mpsc::channel(16);
    let body = Bytes::from(vec![7u8; size as usize]);
    tokio::spawn(async move {
        let mut sent = 0u64;
        while count == 0 || sent < count {
            if tx.send(Ok(make(body.clone()))).await.is_err() {
                return;
            }
            sent += 1;
        }
    });
    ReceiverStream::new(rx)
}

struct H3Bench;

impl pb::h3::bench_server::Bench for H3Bench {
    async fn unary(
        &self,
        request: grpc_h3::Request<pb::h3::Payload>,
    ) -> Result<grpc_h3::Response<pb::h3::Payload>, grpc_h3::Status> {
        Ok(grpc_h3::Response::new(request.into_inner()))
    }

    type StreamOutStream = ReceiverStream<Result<pb::h3::Payload, grpc_h3::Status>>;

    async fn stream_out(
        &self,
        request: grpc_h3::Request<pb::h3::StreamRequest>,
    ) -> Result<grpc_h3::Response<Self::StreamOutStream>, grpc_h3::Status> {
        let r = request.into_inner();
        Ok(grpc_h3::Response::new(stream_out(
            r.message_size,
            r.count,
            |body| pb::h3::Payload {
                body: body.to_vec(),
            },
        )))
    }

    type HoldStream = BoxStream<pb::h3::Payload, grpc_h3::Status>;

    async fn hold(
        &self,
        request: grpc_h3::Request<grpc_h3::Streaming<pb::h3::Payload>>,
    ) -> Result<grpc_h3::Response<Self::HoldStream>, grpc_h3::Status> {
        Ok(grpc_h3::Response::new(Box::pin(request.into_inner())))
    }
}

struct TonicBench;

#[tonic::async_trait]
impl pb::tonic::bench_server::Bench for TonicBench {
    async fn unary(
        &self,
        request: tonic::Request<pb::tonic::Payload>,
    ) -> Result<tonic::Response<pb::tonic::Payload>, tonic::Status> {
        Ok(tonic::Response::new(request.into_inner()))
    }

    type StreamOutStream = ReceiverStream<Result<pb::tonic::Payload, tonic::Status>>;

    async fn stream_out(
        &self,
        request: tonic::Request<pb::tonic::StreamRequest>,
    ) -> Result<tonic::Response<Self::StreamOutStream>, tonic::Status> {
        let r = request.into_inner();
        Ok(tonic::Response::new(stream_out(
            r.message_size,
            r.count,
            |body| pb::tonic::Payload {
                body: body.to_vec(),
            },
        )))
    }

    type HoldStream = BoxStream<pb::tonic::Payload, tonic::Status>;

    async fn hold(
        &self,
        request: tonic::Request<tonic::Streaming<pb::tonic::Payload>>,
    ) -> Result<tonic::Response<Self::HoldStream>, tonic::Status> {
        Ok(tonic::Response::new(Box::pin(request.into_inner())))
    }
}

/// Serves until stdin closes. `max_streams` raises the per-connection
/// stream limit on either stack (S6); otherwise each keeps its default.
/// `congestion` sets grpc-h3's QUIC congestion controller.
pub(crate) async fn serve(
    stack: Stack,
    addr: SocketAddr,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    max_streams: Option<u32>,
    congestion: Option<grpc_h3::CongestionControl>,
) -> Result<(), Box<dyn std::error::Error>> {
    let stop = async {
        let mut sink = [0u8; 64];
        let mut stdin = tokio::io::stdin();
        while matches!(stdin.read(&mut sink).await, Ok(n) if n > 0) {}
    };
    match stack {
        Stack::GrpcH3 | Stack::GrpcH3H2 => {
            let listen = if stack == Stack::GrpcH3 {
                grpc_h3::server::Listen::Http3Only
            } else {
                grpc_h3::server::Listen::Http2Only
            };
            let mut builder = grpc_h3::server::Server::builder().listen(listen);
            if let Some(limit) = max_streams {
                builder = builder.max_concurrent_streams(limit);
            }
            if let Some(controller) = congestion {
                builder = builder.congestion_control(controller);
            }
            let server = builder
                .tls_identity(&cert_pem, &key_pem)
                .crypto_provider(crate::tls::provider())
                .idle_timeout(crate::tls::IDLE_TIMEOUT)
                .max_decoding_message_size(8 << 20)
                .add_service(pb::h3::bench_server::BenchServer::new(H3Bench))
                .bind(addr)?;
            println!("LISTENING {}", server.local_addr()?);
            server.serve_with_shutdown(stop).await?;
        }
        Stack::Tonic | Stack::TonicH2c => {
            let listener = TcpListener::bind(addr).await?;
            println!("LISTENING {}", listener.local_addr()?);
            let tls = (stack == Stack::Tonic).then(|| crate::tls::tcp_server(&cert_pem, &key_pem));
            let router = tonic::transport::Server::builder()
                .max_concurrent_streams(max_streams)
                .add_service(tonic_service());
            match tls {
                None => {
                    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
                    router.serve_with_incoming_shutdown(incoming, stop).await?;
                }
                Some(tls) => {
                    let (tx, rx) = mpsc::channel(128);
                    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
                    tokio::spawn(async move {
                        while let Ok((tcp, _)) = listener.accept().await {
                            let _ = tcp.set_nodelay(true);
                            let (acceptor, tx) = (acceptor.clone(), tx.clone());
                            // Handshakes run in parallel, as in any TLS server.
                            tokio::spawn(async move {
                                if let Ok(stream) = acceptor.accept(tcp).await {
                                    let _ = tx.send(Ok::<_, std::io::Error>(stream)).await;
                                }
                            });
                        }
                    });
                    router
                        .serve_with_incoming_shutdown(ReceiverStream::new(rx), stop)
                        .await?;
                }
            }
        }
        Stack::TonicH3 => {
            let config = crate::tls::quic_server(&cert_pem, &key_pem, max_streams)?;
            let endpoint = quinn::Endpoint::server(config, addr)?;
            println!("LISTENING {}", endpoint.local_addr()?);
            let routes = tonic::service::Routes::new(tonic_service());
            let acceptor = tonic_h3::quinn::H3QuinnAcceptor::new(endpoint.clone());
            tonic_h3::server::H3Router::new(routes)
                .serve_with_shutdown(acceptor, stop)
                .await
                .map_err(|e| e.to_string())?;
            endpoint.close(0u32.into(), b"");
            endpoint.wait_idle().await;
        }
    }
    Ok(())
}

/// The bench service as tonic serves it, over HTTP/2 or (tonic-h3) HTTP/3.
fn tonic_service() -> pb::tonic::bench_server::BenchServer<TonicBench> {
    pb::tonic::bench_server::BenchServer::new(TonicBench).max_decoding_message_size(8 << 20)
}
