//! The README's demo: starts a Greeter server on an ephemeral UDP port with a
//! development certificate, calls it over HTTP/3, prints the reply, exits.

use grpc_h3::server::Server;
use grpc_h3::tls::ClientTlsConfig;
use grpc_h3::Channel;
use grpc_h3_examples::greeter::MyGreeter;
use grpc_h3_examples::helloworld::greeter_client::GreeterClient;
use grpc_h3_examples::helloworld::greeter_server::GreeterServer;
use grpc_h3_examples::helloworld::HelloRequest;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::builder()
        .dev_certificate()
        .add_service(GreeterServer::new(MyGreeter))
        .bind("127.0.0.1:0".parse()?)?;
    let addr = server.local_addr()?;
    let ca_pem = server.dev_certificate_pem().unwrap_or_default().to_owned();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve_with_shutdown(async {
        let _ = stopped.await;
    }));
    println!("Greeter server listening on udp://{addr} (QUIC, TLS 1.3, ALPN h3, development certificate)");

    let channel = Channel::builder(format!("https://127.0.0.1:{}", addr.port()))
        .tls_config(ClientTlsConfig::new().ca_certificate(&ca_pem))
        .build()?;
    let client = GreeterClient::new(channel);
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

    let _ = stop.send(());
    serving.await??;
    Ok(())
}
