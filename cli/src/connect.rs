//! A channel from the TLS and transport flags.

use std::time::Duration;

use grpc_h3::tls::{ClientTlsConfig, Identity};
use grpc_h3::{Channel, Transport};

use crate::args::Args;
use crate::Failure;

/// `host:port` becomes `https://host:port` (or `http://` with
/// `--plaintext`); a URI is taken as it is.
pub(crate) fn uri(address: &str, plaintext: bool) -> String {
    if address.contains("://") {
        address.to_owned()
    } else if plaintext {
        format!("http://{address}")
    } else {
        format!("https://{address}")
    }
}

fn read(path: &std::path::Path, what: &str) -> Result<Vec<u8>, Failure> {
    std::fs::read(path)
        .map_err(|e| Failure::usage(format!("reading the {what} {}: {e}", path.display())))
}

fn tls(args: &Args) -> Result<ClientTlsConfig, Failure> {
    let mut tls = ClientTlsConfig::new();
    if args.insecure {
        eprintln!(
            "warning: --insecure: the server's certificate is not verified; anyone on the path can read and change these calls"
        );
        tls = tls.dangerous_skip_server_verification_for_development();
    } else if let Some(path) = &args.cacert {
        tls = tls.ca_certificate(read(path, "CA certificate file (--cacert)")?);
    } else if args.pin.is_empty() {
        tls = tls.with_system_roots();
    }
    if args.dev_cert {
        tls = tls.trust_dev_certificate();
    }
    for pin in &args.pin {
        let path = std::path::Path::new(pin);
        tls = if path.exists() {
            tls.pin_certificate(read(path, "pinned certificate (--pin)")?)
        } else {
            tls.pin_sha256(pin.clone())
        };
    }
    if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
        tls = tls.identity(Identity::from_pem(
            read(cert, "client certificate (--cert)")?,
            read(key, "client key (--key)")?,
        ));
    }
    if let Some(name) = &args.servername {
        tls = tls.server_name(name.clone());
    }
    Ok(tls)
}

fn seconds(value: f64, flag: &str) -> Result<Duration, Failure> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| Failure::usage(format!("{flag} {value}: expected a number of seconds")))
}

/// The channel the flags describe.
pub(crate) fn channel(address: &str, args: &Args) -> Result<Channel, Failure> {
    let mut builder = Channel::builder(uri(address, args.plaintext))
        .connect_timeout(seconds(args.connect_timeout, "--connect-timeout")?);
    if args.plaintext {
        builder = builder.transport(Transport::H2c);
    } else {
        builder = builder.tls_config(tls(args)?);
        if args.http3 {
            builder = builder.transport(Transport::Http3);
        } else if args.http2 {
            builder = builder.transport(Transport::Http2);
        }
    }
    builder
        .build()
        .map_err(|e| Failure::usage(format!("cannot use {address:?}: {e}")))
}

/// `--max-time` as a duration.
pub(crate) fn max_time(args: &Args) -> Result<Option<Duration>, Failure> {
    args.max_time.map(|s| seconds(s, "--max-time")).transpose()
}
