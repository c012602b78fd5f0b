//! Calls a Greeter server.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use grpc_h3::tls::ClientTlsConfig;
use grpc_h3::{Channel, Request};
use grpc_h3_examples::helloworld::greeter_client::GreeterClient;
use grpc_h3_examples::helloworld::HelloRequest;

/// Says hello to helloworld.Greeter over HTTP/3.
///
/// Start `helloworld-server` first, as the same user: this client trusts
/// its development certificate unless given `--ca`.
#[derive(Parser)]
#[command(about, long_about = None)]
struct Args {
    /// Server address.
    #[arg(long, default_value = "https://localhost:50051")]
    addr: String,
    /// PEM certificate of the CA to trust, instead of the development
    /// certificate.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Who to greet.
    #[arg(long, default_value = "world")]
    name: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let tls = match args.ca {
        Some(ca) => ClientTlsConfig::new().ca_certificate_file(ca),
        None => ClientTlsConfig::new().trust_dev_certificate(),
    };
    let channel = Channel::builder(&args.addr).tls_config(tls).build()?;
    let client = GreeterClient::new(channel);
    let mut request = Request::new(HelloRequest { name: args.name });
    request.set_timeout(Duration::from_secs(5));
    let reply = client.say_hello(request).await?;
    println!("{}", reply.get_ref().message);
    Ok(())
}
