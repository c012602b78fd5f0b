//! A Greeter server. Without `--cert`/`--key` it uses the current user's
//! development certificate, which `helloworld-client` (run by the same
//! user) trusts without being told where it is.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use grpc_h3::server::Server;
use grpc_h3_examples::greeter::MyGreeter;
use grpc_h3_examples::helloworld::greeter_server::GreeterServer;

/// Serves helloworld.Greeter over HTTP/3 until Ctrl-C.
///
/// Try it with `helloworld-client` in another terminal.
#[derive(Parser)]
#[command(about, long_about = None)]
struct Args {
    /// UDP address to listen on.
    #[arg(long, default_value = "127.0.0.1:50051")]
    addr: SocketAddr,
    /// PEM certificate chain; omit for the development certificate.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// PEM private key.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let builder = Server::builder().add_service(GreeterServer::new(MyGreeter));
    let builder = match (args.cert, args.key) {
        (Some(cert), Some(key)) => builder.tls_identity_files(cert, key),
        _ => builder.dev_certificate(),
    };
    let server = builder.bind(args.addr)?;
    if server.dev_certificate_pem().is_some() {
        println!(
            "using the development certificate in {}",
            grpc_h3::tls::DevCertificate::user_path()?.display()
        );
    }
    println!(
        "Greeter listening on udp://{}; Ctrl-C stops it gracefully",
        server.local_addr()?
    );
    server
        .serve_with_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
