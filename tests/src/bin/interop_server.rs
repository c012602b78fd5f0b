//! grpc's interop `TestService` over HTTP/3, and HTTP/2 on the same port,
//! with the health and reflection services.
//!
//! `interop_server --port 10000` listens on 127.0.0.1 and ::1 (UDP for
//! HTTP/3, TCP for HTTP/2 with TLS), or on `--host`; `--use_tls=false`
//! serves plaintext HTTP/2 (h2c) on TCP only. Without `--tls_cert_file/--tls_key_file` it uses the current
//! user's development certificate and prints where it is (for
//! `interop_client --ca_file`, which also trusts it by default). SIGTERM or
//! Ctrl-C drains gracefully.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use clap::Parser;
use grpc_h3::server::Listen;
use grpc_h3::tls::DevCertificate;
use grpc_h3::CancellationToken;

/// Serves grpc.testing.TestService over HTTP/3 and HTTP/2.
#[derive(Parser)]
#[command(about, long_about = None)]
struct Args {
    /// UDP and TCP port (0 picks one).
    #[arg(long, default_value_t = 10000)]
    port: u16,
    /// Listen on this address only, instead of 127.0.0.1 and ::1.
    #[arg(long)]
    host: Option<IpAddr>,
    /// PEM certificate chain.
    #[arg(long = "tls_cert_file", requires = "tls_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// PEM private key.
    #[arg(long = "tls_key_file", requires = "tls_cert_file")]
    tls_key_file: Option<PathBuf>,
    /// `false`: plaintext HTTP/2 (h2c) only, for clients that cannot use
    /// TLS; HTTP/3 always runs over TLS.
    #[arg(long = "use_tls", default_value = "true", action = clap::ArgAction::Set)]
    use_tls: bool,
    /// `false`: no HTTP/3, only HTTP/2 with TLS on TCP (what a client on a
    /// network that drops UDP sees), for testing fallback.
    #[arg(long = "http3", default_value = "true", action = clap::ArgAction::Set)]
    http3: bool,
    /// When response headers go out: `eager` (as soon as a handler
    /// returns) or `lazy` (with the first message; calls that end before
    /// one are answered Trailers-Only). Both are legal; clients must
    /// accept either.
    #[arg(long = "response_headers", default_value = "eager", value_parser = ["eager", "lazy"])]
    response_headers: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let (cert, key) = match (&args.tls_cert_file, &args.tls_key_file) {
        (Some(cert), Some(key)) => {
            let read = |path: &PathBuf| {
                std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))
            };
            (read(cert)?, read(key)?)
        }
        _ => {
            let dev = DevCertificate::for_this_user()?;
            println!(
                "development certificate PEM: {}",
                DevCertificate::user_path()?.display()
            );
            (
                dev.cert_pem().as_bytes().to_vec(),
                dev.key_pem().as_bytes().to_vec(),
            )
        }
    };
    let hosts = match args.host {
        Some(host) => vec![host],
        None => vec![
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ],
    };
    let mut port = args.port;
    let mut servers = Vec::new();
    // grpc.health.v1, as load balancers and probes expect; NOT_SERVING as
    // soon as the server starts draining.
    let health = grpc_h3_health::HealthReporter::new();
    health.set_service_status(
        "grpc.testing.TestService",
        grpc_h3_health::ServingStatus::Serving,
    );
    // Reflection, so that grpcurl and grpc-h3 work without a schema.
    let reflection = grpc_h3_reflection::Builder::new()
        .register_encoded_file_descriptor_set(grpc_h3_tests::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(grpc_h3_health::pb::FILE_DESCRIPTOR_SET)
        .build()?;
    for host in hosts {
        let mut builder = grpc_h3_tests::server::builder()
            .add_service(health.service())
            .add_service(reflection.v1())
            .add_service(reflection.v1alpha())
            .on_drain(health.drain_hook())
            .tls_identity(&cert, &key)
            .lazy_response_headers(args.response_headers == "lazy");
        if !args.use_tls {
            builder = builder.listen(Listen::H2c);
        } else if !args.http3 {
            builder = builder.listen(Listen::Http2Only);
        }
        match builder.bind(SocketAddr::new(host, port)) {
            Ok(server) => {
                port = server.local_addr()?.port();
                servers.push(server);
            }
            // IPv6 may be unavailable; the first address is required.
            Err(e) if !servers.is_empty() => eprintln!("not listening on {host}: {e}"),
            Err(e) => return Err(e.into()),
        }
    }
    let addrs: Vec<String> = servers
        .iter()
        .filter_map(|s| s.local_addr().ok())
        .map(|a| a.to_string())
        .collect();
    let transports = if args.use_tls && args.http3 {
        "HTTP/3 on UDP, HTTP/2 with TLS on TCP"
    } else if args.use_tls {
        "HTTP/2 with TLS on TCP, no HTTP/3"
    } else {
        "h2c on TCP"
    };
    println!(
        "interop_server listening on {} ({transports})",
        addrs.join(" and ")
    );

    let stop = CancellationToken::new();
    let signals = stop.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        signals.cancel();
    });
    let running: Vec<_> = servers
        .into_iter()
        .map(|server| {
            let stop = stop.clone();
            tokio::spawn(server.serve_with_shutdown(async move { stop.cancelled().await }))
        })
        .collect();
    for server in running {
        server.await??;
    }
    println!("interop_server stopped");
    Ok(())
}
