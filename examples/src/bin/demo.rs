//! The README's demo: starts a Greeter server on an ephemeral UDP port with a
//! development certificate, calls it over HTTP/3, prints the reply, exits.

use clap::Parser;
use grpc_h3::server::Server;
use grpc_h3_examples::greeter::MyGreeter;
use grpc_h3_examples::helloworld::greeter_client::GreeterClient;
use grpc_h3_examples::helloworld::greeter_server::GreeterServer;
use grpc_h3_examples::helloworld::HelloRequest;
use grpc_h3_examples::local;

/// Starts a Greeter server on an ephemeral UDP port with a development
/// certificate, calls SayHello over HTTP/3, prints the reply and exits.
#[derive(Parser)]
#[command(about)]
struct Args {}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    Args::parse();
    // A server on an ephemeral UDP port with a development certificate, and
    // a channel trusting that certificate (see `grpc_h3_examples::local`).
    let server = local::start(Server::builder().add_service(GreeterServer::new(MyGreeter)))?;
    println!(
        "Greeter server listening on udp://{} (QUIC, TLS 1.3, ALPN h3, development certificate)",
        server.addr
    );

    let client = GreeterClient::new(server.channel.clone());
    let started = std::time::Instant::now();
    let reply = client
        .say_hello(HelloRequest {
            name: "HTTP/3".into(),
        })
        .await?;
    println!(
        "SayHello over HTTP/3 answered in {:.1} ms (handshake included): {}",
        started.elapsed().as_secs_f64() * 1000.0,
        reply.get_ref().message
    );
    server.stop().await
}
