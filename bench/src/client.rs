//! One client type over every stack, so every scenario drives them through
//! identical code.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::{pb, Stack};

/// tonic-h3's channel over a quinn endpoint.
type TonicH3Channel = tonic_h3::H3Channel<tonic_h3::quinn::H3QuinnConnector>;

#[derive(Clone)]
pub(crate) enum Client {
    H3(pb::h3::bench_client::BenchClient),
    Tonic(pb::tonic::bench_client::BenchClient<tonic::transport::Channel>),
    TonicH3(pb::tonic::bench_client::BenchClient<TonicH3Channel>),
}

/// What tonic's generated client needs of its transport.
trait TonicTransport:
    tonic::client::GrpcService<
        tonic::body::Body,
        Error: Into<tonic::codegen::StdError>,
        ResponseBody: tonic::codegen::Body<
            Data = Bytes,
            Error: Into<tonic::codegen::StdError> + Send,
        > + Send
                          + 'static,
    > + Clone
    + Send
    + 'static
{
}

impl<T> TonicTransport for T where
    T: tonic::client::GrpcService<
            tonic::body::Body,
            Error: Into<tonic::codegen::StdError>,
            ResponseBody: tonic::codegen::Body<
                Data = Bytes,
                Error: Into<tonic::codegen::StdError> + Send,
            > + Send
                              + 'static,
        > + Clone
        + Send
        + 'static
{
}

/// An open `Hold` call: kept open by holding both directions.
pub(crate) struct Held {
    _requests: Box<dyn std::any::Any + Send>,
    _responses: Box<dyn std::any::Any + Send>,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Every stack's TLS client configuration, trusting one CA. Clients
/// connected with the same credentials may resume their TLS sessions
/// (grpc-h3 then sends idempotent calls in 0-RTT; the others still make
/// every round trip of their handshake).
#[derive(Clone)]
pub(crate) struct Credentials {
    grpc_h3: grpc_h3::tls::ClientTlsConfig,
    tcp: std::sync::Arc<rustls::ClientConfig>,
    quic: quinn::ClientConfig,
}

impl Credentials {
    pub(crate) fn new(ca_pem: &[u8]) -> Result<Credentials, String> {
        Ok(Credentials {
            grpc_h3: grpc_h3::tls::ClientTlsConfig::new()
                .ca_certificate(ca_pem)
                .server_name("localhost")
                .crypto_provider(crate::tls::provider()),
            tcp: crate::tls::tcp_client(ca_pem),
            quic: crate::tls::quic_client(ca_pem)?,
        })
    }
}

impl Client {
    /// A client with its own connection. grpc-h3 connects on the first
    /// call; tonic here connects at once.
    pub(crate) async fn connect(
        stack: Stack,
        addr: SocketAddr,
        ca_pem: &[u8],
    ) -> Result<Client, String> {
        Client::connect_with(stack, addr, &Credentials::new(ca_pem)?).await
    }

    /// A client with its own connection, with these credentials.
    pub(crate) async fn connect_with(
        stack: Stack,
        addr: SocketAddr,
        credentials: &Credentials,
    ) -> Result<Client, String> {
        match stack {
            Stack::GrpcH3 | Stack::GrpcH3H2 => {
                let tls = credentials.grpc_h3.clone();
                let transport = if stack == Stack::GrpcH3 {
                    grpc_h3::Transport::Http3
                } else {
                    grpc_h3::Transport::Http2
                };
                let channel = grpc_h3::Channel::builder(format!("https://{addr}"))
                    .tls_config(tls)
                    .transport(transport)
                    .idle_timeout(crate::tls::IDLE_TIMEOUT)
                    .build()
                    .map_err(err)?;
                Ok(Client::H3(
                    pb::h3::bench_client::BenchClient::new(channel)
                        .max_decoding_message_size(8 << 20),
                ))
            }
            Stack::Tonic => {
                let config = credentials.tcp.clone();
                let connector = tower::service_fn(move |_: tonic::transport::Uri| {
                    let config = config.clone();
                    async move {
                        let tcp = tokio::net::TcpStream::connect(addr).await?;
                        tcp.set_nodelay(true)?;
                        let name = rustls::pki_types::ServerName::try_from("localhost")
                            .expect("a DNS name");
                        let tls = tokio_rustls::TlsConnector::from(config)
                            .connect(name, tcp)
                            .await?;
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
                    }
                });
                let channel = tonic::transport::Endpoint::from_shared(format!(
                    "https://localhost:{}",
                    addr.port()
                ))
                .map_err(err)?
                .connect_with_connector(connector)
                .await
                .map_err(err)?;
                Ok(Client::Tonic(
                    pb::tonic::bench_client::BenchClient::new(channel)
                        .max_decoding_message_size(8 << 20),
                ))
            }
            Stack::TonicH3 => {
                let bind: SocketAddr = if addr.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                }
                .parse()
                .expect("an address");
                let mut endpoint = quinn::Endpoint::client(bind).map_err(err)?;
                endpoint.set_default_client_config(credentials.quic.clone());
                let uri: tonic::transport::Uri = format!("https://{addr}").parse().map_err(err)?;
                let connector = tonic_h3::quinn::H3QuinnConnector::new(
                    uri.clone(),
                    "localhost".to_owned(),
                    endpoint,
                );
                let channel = tonic_h3::H3Channel::new(connector, uri, None);
                Ok(Client::TonicH3(
                    pb::tonic::bench_client::BenchClient::new(channel)
                        .max_decoding_message_size(8 << 20),
                ))
            }
            Stack::TonicH2c => {
                let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                    .map_err(err)?
                    .tcp_nodelay(true)
                    .connect()
                    .await
                    .map_err(err)?;
                Ok(Client::Tonic(
                    pb::tonic::bench_client::BenchClient::new(channel)
                        .max_decoding_message_size(8 << 20),
                ))
            }
        }
    }

    /// A grpc-h3 client whose channel chooses its transport by itself
    /// (the default for `https://`), with this connect timeout; the
    /// channel comes back too, to ask which transport it chose.
    pub(crate) fn automatic(
        addr: SocketAddr,
        ca_pem: &[u8],
        transport: Option<grpc_h3::Transport>,
        connect_timeout: Duration,
    ) -> Result<(Client, grpc_h3::Channel), String> {
        let tls = grpc_h3::tls::ClientTlsConfig::new()
            .ca_certificate(ca_pem)
            .server_name("localhost")
            .crypto_provider(crate::tls::provider());
        let mut builder = grpc_h3::Channel::builder(format!("https://{addr}"))
            .tls_config(tls)
            .connect_timeout(connect_timeout);
        if let Some(transport) = transport {
            builder = builder.transport(transport);
        }
        let channel = builder.build().map_err(err)?;
        let client = Client::H3(pb::h3::bench_client::BenchClient::new(channel.clone()));
        Ok((client, channel))
    }

    /// One unary echo of `body`.
    pub(crate) async fn unary(&self, body: &Bytes) -> Result<(), String> {
        match self {
            Client::H3(c) => c
                .unary(pb::h3::Payload {
                    body: body.to_vec(),
                })
                .await
                .map(drop)
                .map_err(err),
            Client::Tonic(c) => tonic_unary(c, body).await,
            Client::TonicH3(c) => tonic_unary(c, body).await,
        }
    }

    /// Receives `size`-byte messages for `duration`; returns (messages, bytes).
    pub(crate) async fn stream_out_for(
        &self,
        size: u32,
        duration: Duration,
    ) -> Result<(u64, u64), String> {
        let deadline = Instant::now() + duration;
        match self {
            Client::H3(c) => {
                let request = pb::h3::StreamRequest {
                    message_size: size,
                    count: 0,
                };
                let mut stream = c.stream_out(request).await.map_err(err)?.into_inner();
                let (mut messages, mut bytes) = (0u64, 0u64);
                while Instant::now() < deadline {
                    let message = stream
                        .message()
                        .await
                        .map_err(err)?
                        .ok_or("stream ended early")?;
                    messages += 1;
                    bytes += message.body.len() as u64;
                }
                Ok((messages, bytes))
            }
            Client::Tonic(c) => Ok(tonic_stream_out_for(c, size, deadline).await?.0),
            Client::TonicH3(c) => {
                let (counts, stream) = tonic_stream_out_for(c, size, deadline).await?;
                // h3-quinn 0.0.10 panics when a response is dropped while
                // h3 has a read in flight (`RecvStream::stop_sending`
                // unwraps the stream the read has taken): drop it on a
                // task of its own, so that the panic ends that task and
                // not the bench. What was measured is already counted.
                if let Err(e) = tokio::spawn(async move { drop(stream) }).await {
                    eprintln!("  tonic-h3: dropping a response stream mid-read panicked: {e}");
                }
                Ok(counts)
            }
        }
    }

    /// Opens a `Hold` call that stays open until the result is dropped.
    pub(crate) async fn hold(&self) -> Result<Held, String> {
        match self {
            Client::H3(c) => {
                let (tx, rx) = mpsc::channel::<pb::h3::Payload>(1);
                let responses = c
                    .hold(ReceiverStream::new(rx))
                    .await
                    .map_err(err)?
                    .into_inner();
                Ok(Held {
                    _requests: Box::new(tx),
                    _responses: Box::new(responses),
                })
            }
            Client::Tonic(c) => tonic_hold(c).await,
            Client::TonicH3(c) => tonic_hold(c).await,
        }
    }
}

async fn tonic_unary<T: TonicTransport>(
    client: &pb::tonic::bench_client::BenchClient<T>,
    body: &Bytes,
) -> Result<(), String> {
    let mut client = client.clone();
    client
        .unary(pb::tonic::Payload {
            body: body.to_vec(),
        })
        .await
        .map(drop)
        .map_err(err)
}

/// Counts what arrives until `deadline`; the stream comes back open, for
/// the caller to drop.
async fn tonic_stream_out_for<T: TonicTransport>(
    client: &pb::tonic::bench_client::BenchClient<T>,
    size: u32,
    deadline: Instant,
) -> Result<((u64, u64), tonic::Streaming<pb::tonic::Payload>), String> {
    let mut client = client.clone();
    let request = pb::tonic::StreamRequest {
        message_size: size,
        count: 0,
    };
    let mut stream = client.stream_out(request).await.map_err(err)?.into_inner();
    let (mut messages, mut bytes) = (0u64, 0u64);
    while Instant::now() < deadline {
        let message = stream
            .message()
            .await
            .map_err(err)?
            .ok_or("stream ended early")?;
        messages += 1;
        bytes += message.body.len() as u64;
    }
    Ok(((messages, bytes), stream))
}

async fn tonic_hold<T: TonicTransport>(
    client: &pb::tonic::bench_client::BenchClient<T>,
) -> Result<Held, String> {
    let mut client = client.clone();
    let (tx, rx) = mpsc::channel::<pb::tonic::Payload>(1);
    let responses = client
        .hold(ReceiverStream::new(rx))
        .await
        .map_err(err)?
        .into_inner();
    Ok(Held {
        _requests: Box::new(tx),
        _responses: Box::new(responses),
    })
}
