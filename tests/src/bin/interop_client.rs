//! grpc's interop client over HTTP/3, with grpc's flag names.
//!
//! `interop_client --server_port 10000 --ca_file cert.pem --test_case all`
//! prints one line per case and exits non-zero if any fails.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use grpc_h3::tls::ClientTlsConfig;
use grpc_h3::{Channel, Transport};
use grpc_h3_tests::cases::{Runner, ALL};

/// Runs interop test cases against a TestService over HTTP/3.
#[derive(Parser)]
struct Args {
    /// Server host name or address.
    #[arg(long = "server_host", default_value = "localhost")]
    server_host: String,
    /// Server UDP port.
    #[arg(long = "server_port", default_value_t = 10000)]
    server_port: u16,
    /// Name to verify the certificate against (and send as :authority).
    #[arg(long = "server_host_override")]
    server_host_override: Option<String>,
    /// PEM certificate(s) to trust; otherwise the system roots and, if there
    /// is one, the current user's development certificate.
    #[arg(long = "ca_file")]
    ca_file: Option<PathBuf>,
    /// One case, a comma-separated list, or `all`.
    #[arg(long = "test_case", default_value = "all")]
    test_case: String,
    /// `false`: plaintext HTTP/2 (h2c), as grpc's other interop clients
    /// do; HTTP/3 always uses TLS.
    #[arg(long = "use_tls", default_value = "true", action = clap::ArgAction::Set)]
    use_tls: bool,
    /// The transport with TLS: `h3` (HTTP/3 over QUIC), `h2` (HTTP/2 over
    /// TCP, to reach servers of other gRPC stacks) or `auto` (HTTP/3 where
    /// it works, HTTP/2 where it does not, as channels choose by default).
    #[arg(long, default_value = "h3", value_parser = ["h3", "h2", "auto"])]
    transport: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut tls = match &args.ca_file {
        Some(path) => match std::fs::read(path) {
            Ok(pem) => ClientTlsConfig::new().ca_certificate(pem),
            Err(e) => {
                eprintln!("reading --ca_file {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        None => {
            let tls = ClientTlsConfig::new().with_system_roots();
            let has_dev = grpc_h3::tls::DevCertificate::user_path().is_ok_and(|p| p.exists());
            if has_dev {
                tls.trust_dev_certificate()
            } else {
                tls
            }
        }
    };
    if let Some(name) = &args.server_host_override {
        tls = tls.server_name(name);
    }
    let host = if args.server_host.contains(':') {
        format!("[{}]", args.server_host)
    } else {
        args.server_host.clone()
    };
    let builder = if args.use_tls {
        let builder =
            Channel::builder(format!("https://{host}:{}", args.server_port)).tls_config(tls);
        match args.transport.as_str() {
            "h2" => builder.transport(Transport::Http2),
            "h3" => builder.transport(Transport::Http3),
            _ => builder,
        }
    } else {
        Channel::builder(format!("http://{host}:{}", args.server_port))
    };
    let channel = match builder.build() {
        Ok(channel) => channel,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runner = Runner::new(channel.clone());
    let cases: Vec<&str> = if args.test_case == "all" {
        ALL.to_vec()
    } else {
        args.test_case.split(',').map(str::trim).collect()
    };
    let mut failures = 0;
    for case in cases {
        let started = Instant::now();
        let result = runner.run(case).await;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        match result {
            Ok(detail) if detail.is_empty() => println!("PASS {case} ({ms:.1} ms)"),
            Ok(detail) => println!("PASS {case} ({ms:.1} ms): {detail}"),
            Err(reason) => {
                failures += 1;
                println!("FAIL {case} ({ms:.1} ms): {reason}");
            }
        }
    }
    if let Some(transport) = channel.current_transport() {
        println!("transport in use: {transport}");
    }
    if failures == 0 {
        ExitCode::SUCCESS
    } else {
        println!("{failures} case(s) failed");
        ExitCode::FAILURE
    }
}
