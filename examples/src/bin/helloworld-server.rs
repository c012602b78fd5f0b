//! A Greeter server. Without `--cert`/`--key` it makes a development
//! certificate and writes its PEM where `helloworld-client` looks for it.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use grpc_h3::server::Server;
use grpc_h3_examples::greeter::MyGreeter;
use grpc_h3_examples::helloworld::greeter_server::GreeterServer;

/// Serves helloworld.Greeter over HTTP/3 until Ctrl-C.
#[derive(Parser)]
struct Args {
    /// UDP address to listen on.
    #[arg(long, default_value = "127.0.0.1:50051")]
    addr: SocketAddr,
    /// PEM certificate chain; omit for a development certificate.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// PEM private key.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Where to write the development certificate for clients to trust.
    #[arg(long, default_value_os_t = std::env::temp_dir().join("grpc-h3-dev-cert.pem"))]
    dev_cert_out: PathBuf,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let builder = Server::builder().add_service(GreeterServer::new(MyGreeter));
    let builder = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => builder.tls_identity(std::fs::read(cert)?, std::fs::read(key)?),
        _ => builder.dev_certificate(),
    };
    let server = builder.bind(args.addr)?;
    if let Some(pem) = server.dev_certificate_pem() {
        std::fs::write(&args.dev_cert_out, pem)?;
        println!(
            "development certificate written to {}",
            args.dev_cert_out.display()
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
