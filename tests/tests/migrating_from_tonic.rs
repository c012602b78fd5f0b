//! The code of docs/migrating-from-tonic.md, run: a tonic service and a
//! tonic client, unchanged, on grpc-h3's server and channel over HTTP/3
//! and HTTP/2. The last test checks that every Rust block of the document
//! appears in this file, so the document shows code that runs.

use std::time::Duration;

#[allow(clippy::all, missing_docs, unreachable_pub)]
mod pb {
    include!(concat!(env!("OUT_DIR"), "/tonic/helloworld.rs"));
}

// -- doc: service --
use pb::greeter_server::{Greeter, GreeterServer};
use pb::{HelloReply, HelloRequest};
use tonic::{Request, Response, Status};

/// Says hello.
#[derive(Default)]
pub struct MyGreeter;

#[tonic::async_trait]
impl Greeter for MyGreeter {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let name = request.into_inner().name;
        Ok(Response::new(HelloReply {
            message: format!("Hello {name}!"),
        }))
    }
}
// -- end --

async fn serve(
    addr: std::net::SocketAddr,
    cert: &grpc_h3::tls::DevCertificate,
    stop: grpc_h3::CancellationToken,
) -> Result<(), grpc_h3::Error> {
    let (cert_pem, key_pem) = (cert.cert_pem(), cert.key_pem());
    // -- doc: server --
    // Before: tonic::transport::Server::builder()
    //     .add_service(GreeterServer::new(MyGreeter))
    //     .serve(addr)
    //     .await?;
    grpc_h3::server::Server::builder()
        .tls_identity(cert_pem, key_pem) // HTTP/3 always runs over TLS
        .add_tonic_service(GreeterServer::new(MyGreeter))
        .serve_with_shutdown(addr, stop.cancelled_owned()) // HTTP/3 on UDP, HTTP/2 on TCP
        .await?;
    // -- end --
    Ok(())
}

async fn call(
    port: u16,
    ca_pem: &str,
    transport: grpc_h3::Transport,
) -> Result<String, Box<dyn std::error::Error>> {
    // -- doc: client --
    use pb::greeter_client::GreeterClient;

    // Before: let channel = tonic::transport::Channel::from_static("http://[::1]:50051")
    //     .connect()
    //     .await?;
    let channel = grpc_h3::Channel::builder(format!("https://localhost:{port}"))
        .tls_config(grpc_h3::tls::ClientTlsConfig::new().ca_certificate(ca_pem))
        .transport(transport) // HTTP/3 unless told otherwise
        .build()?;
    let mut client = GreeterClient::new(channel);
    let reply = client
        .say_hello(HelloRequest {
            name: "Tonic".into(),
        })
        .await?;
    // -- end --
    Ok(reply.into_inner().message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tonic_service_and_client_run_on_grpc_h3_unchanged() {
    let cert = grpc_h3::tls::DevCertificate::localhost().unwrap();
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let stop = grpc_h3::CancellationToken::new();
    let server = tokio::spawn({
        let (cert, stop) = (cert.clone(), stop.clone());
        async move { serve(([127, 0, 0, 1], port).into(), &cert, stop).await }
    });
    for transport in [grpc_h3::Transport::Http3, grpc_h3::Transport::Http2] {
        let mut reply = None;
        // The server binds in its task; the first attempts may come early.
        for _ in 0..50 {
            match call(port, cert.cert_pem(), transport).await {
                Ok(message) => {
                    reply = Some(message);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        assert_eq!(reply.as_deref(), Some("Hello Tonic!"), "{transport}");
    }
    stop.cancel();
    server.await.unwrap().unwrap();
}

#[test]
fn the_document_shows_this_code() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/migrating-from-tonic.md"
    ))
    .unwrap();
    let source = include_str!("migrating_from_tonic.rs");
    let normalize = |text: &str| {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let source = normalize(source);
    let mut blocks = 0;
    let mut rest = doc.as_str();
    while let Some(start) = rest.find("```rust\n") {
        let body = &rest[start + 8..];
        let end = body.find("```").expect("a closed code block");
        let block = normalize(&body[..end]);
        assert!(
            source.contains(&block),
            "this block of docs/migrating-from-tonic.md is not in tests/tests/migrating_from_tonic.rs:\n{block}"
        );
        blocks += 1;
        rest = &body[end..];
    }
    assert!(blocks >= 3, "the document has {blocks} Rust blocks");
}
