//! Calls a Greeter server.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use grpc_h3::tls::ClientTlsConfig;
use grpc_h3::{Channel, Request};
use grpc_h3_examples::helloworld::greeter_client::GreeterClient;
use grpc_h3_examples::helloworld::HelloRequest;

/// Says hello to helloworld.Greeter over HTTP/3.
#[derive(Parser)]
struct Args {
    /// Server address.
    #[arg(long, default_value = "https://127.0.0.1:50051")]
    addr: String,
    /// PEM certificate to trust (the server's development certificate by default).
    #[arg(long, default_value_os_t = std::env::temp_dir().join("grpc-h3-dev-cert.pem"))]
    ca: PathBuf,
    /// Who to greet.
    #[arg(long, default_value = "world")]
    name: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let ca = std::fs::read(&args.ca).map_err(|e| {
        format!(
            "reading {}: {e}; start helloworld-server first or pass --ca",
            args.ca.display()
        )
    })?;
    let channel = Channel::builder(&args.addr)
        .tls_config(ClientTlsConfig::new().ca_certificate(ca))
        .build()?;
    let client = GreeterClient::new(channel);
    let mut request = Request::new(HelloRequest { name: args.name });
    request.set_timeout(Duration::from_secs(5));
    let reply = client.say_hello(request).await?;
    println!("{}", reply.get_ref().message);
    Ok(())
}
