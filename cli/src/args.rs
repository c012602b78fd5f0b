//! The command line, in grpcurl's habits.

use std::path::PathBuf;

use clap::Parser;

const EXAMPLES: &str = "\
Commands:
  grpc-h3 [FLAGS] ADDRESS list [SERVICE]        services, or a service's methods
  grpc-h3 [FLAGS] ADDRESS describe [SYMBOL]     a service, method, message or enum
  grpc-h3 [FLAGS] ADDRESS METHOD                call pkg.Service/Method (or pkg.Service.Method)
  grpc-h3 [FLAGS] health ADDRESS [SERVICE]      grpc.health.v1 Check; exit 0 only when SERVING
  grpc-h3 completions SHELL                     bash, zsh, fish, elvish or powershell

ADDRESS is host:port (https, HTTP/3 or HTTP/2 chosen automatically; http
with --plaintext) or a full https:// or http:// URI.

Examples:
  grpc-h3 --dev-cert localhost:10000 list
  grpc-h3 localhost:10000 describe grpc.testing.SimpleRequest
  grpc-h3 -d '{\"response_size\": 3}' localhost:10000 grpc.testing.TestService/UnaryCall
  echo '{} {}' | grpc-h3 -d @ localhost:10000 grpc.testing.TestService/StreamingInputCall
  grpc-h3 --proto route_guide.proto -d '{\"latitude\": 1}' api.example.com:443 routeguide.RouteGuide/GetFeature
  grpc-h3 --cacert ca.pem -H 'authorization: Bearer t0k3n' -v localhost:50051 helloworld.Greeter/SayHello
  grpc-h3 health localhost:10000

Exit status: 0 when the call succeeds; 64 + the gRPC status code when it
fails (grpcurl's convention: NOT_FOUND exits 69); 1 for anything else
(bad arguments, no schema, a NOT_SERVING health answer).";

/// A command-line gRPC client for HTTP/3 and HTTP/2.
#[derive(Debug, Parser)]
#[command(name = "grpc-h3", version, about, after_help = EXAMPLES)]
pub(crate) struct Args {
    /// ADDRESS then `list`, `describe` or a METHOD; or `health ADDRESS`;
    /// or `completions SHELL`.
    #[arg(required = true, num_args = 1..=3, value_name = "ARGS")]
    pub(crate) words: Vec<String>,

    /// Request data as JSON; `@` reads it from stdin. Streaming calls take
    /// several messages, concatenated or one per line.
    #[arg(short = 'd', long = "data", value_name = "JSON")]
    pub(crate) data: Option<String>,

    /// Prints fields with default values too.
    #[arg(long)]
    pub(crate) emit_defaults: bool,

    /// Takes the schema from this .proto file instead of reflection
    /// (repeatable); protoc comes with the tool.
    #[arg(long, value_name = "FILE")]
    pub(crate) proto: Vec<PathBuf>,

    /// Where --proto files find their imports (repeatable; default: each
    /// proto's directory).
    #[arg(long = "import-path", short = 'I', value_name = "DIR")]
    pub(crate) import_path: Vec<PathBuf>,

    /// Takes the schema from this encoded FileDescriptorSet (repeatable),
    /// e.g. from `protoc --include_imports -o`.
    #[arg(long, value_name = "FILE")]
    pub(crate) protoset: Vec<PathBuf>,

    /// Request metadata as 'key: value' (repeatable); values of `-bin`
    /// keys are base64.
    #[arg(short = 'H', long = "header", value_name = "'KEY: VALUE'")]
    pub(crate) headers: Vec<String>,

    /// Fails a call (and the reflection before it) after this many
    /// seconds, sent as grpc-timeout.
    #[arg(long, value_name = "SECONDS")]
    pub(crate) max_time: Option<f64>,

    /// Gives up connecting after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub(crate) connect_timeout: f64,

    /// Largest response message accepted, in bytes. Default: 4 MiB.
    #[arg(long = "max-msg-sz", value_name = "BYTES")]
    pub(crate) max_msg_sz: Option<usize>,

    /// Trusts the CA certificates in this PEM file instead of the
    /// system's roots.
    #[arg(long, value_name = "FILE")]
    pub(crate) cacert: Option<PathBuf>,

    /// Trusts this user's grpc-h3 development certificate too: the one
    /// servers on this machine use with `.dev_certificate()` (e.g.
    /// `interop_server`).
    #[arg(long, conflicts_with = "insecure")]
    pub(crate) dev_cert: bool,

    /// Client certificate chain (PEM) for mutual TLS.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub(crate) cert: Option<PathBuf>,

    /// Client private key (PEM) for mutual TLS.
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub(crate) key: Option<PathBuf>,

    /// The name to verify the server's certificate against (and send as
    /// SNI). Default: the host in ADDRESS.
    #[arg(long, value_name = "NAME")]
    pub(crate) servername: Option<String>,

    /// Trusts only this certificate: a PEM file, or its SHA-256 in hex
    /// (repeatable).
    #[arg(long, value_name = "FILE|SHA256")]
    pub(crate) pin: Vec<String>,

    /// Skips verifying the server's certificate. Anyone on the path can
    /// read and change the calls: for local development only.
    #[arg(long, conflicts_with_all = ["cacert", "pin"])]
    pub(crate) insecure: bool,

    /// Plaintext HTTP/2 (h2c), no TLS.
    #[arg(long, conflicts_with_all = ["http3", "insecure", "cacert", "pin", "cert", "dev_cert"])]
    pub(crate) plaintext: bool,

    /// HTTP/3 only.
    #[arg(long, conflicts_with = "http2")]
    pub(crate) http3: bool,

    /// HTTP/2 (TLS) only.
    #[arg(long)]
    pub(crate) http2: bool,

    /// Prints to stderr the transport, the response headers and
    /// trailers, and timings.
    #[arg(short = 'v', long)]
    pub(crate) verbose: bool,
}

/// What the words ask for.
#[derive(Debug, PartialEq)]
pub(crate) enum Command {
    List(Option<String>),
    Describe(Option<String>),
    Call(String),
    Health(Option<String>),
    Completions(String),
}

impl Args {
    /// The address (if any) and the command.
    pub(crate) fn parse_words(&self) -> Result<(Option<String>, Command), String> {
        let words: Vec<&str> = self.words.iter().map(String::as_str).collect();
        let command = match words.as_slice() {
            ["completions", shell] => return Ok((None, Command::Completions(shell.to_string()))),
            ["health", address, rest @ ..] if rest.len() <= 1 => {
                return Ok((
                    Some(address.to_string()),
                    Command::Health(rest.first().map(|s| s.to_string())),
                ))
            }
            [_, "list", rest @ ..] => Command::List(rest.first().map(|s| s.to_string())),
            [_, "describe", rest @ ..] => Command::Describe(rest.first().map(|s| s.to_string())),
            [_, method] => Command::Call(method.to_string()),
            [_] => return Err("missing a command after the address: list, describe or a method such as pkg.Service/Method".into()),
            _ => return Err(format!("cannot read {:?}: expected ADDRESS list|describe [SYMBOL], ADDRESS METHOD, or health ADDRESS [SERVICE]", self.words.join(" "))),
        };
        Ok((Some(words[0].to_owned()), command))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<(Option<String>, Command), String> {
        let args = Args::try_parse_from(std::iter::once("grpc-h3").chain(line.split(' ')))
            .map_err(|e| e.to_string())?;
        args.parse_words()
    }

    #[test]
    fn reads_grpcurl_style_words() {
        let addr = Some("h:1".to_owned());
        assert_eq!(
            parse("h:1 list").unwrap(),
            (addr.clone(), Command::List(None))
        );
        assert_eq!(
            parse("-v h:1 describe a.B").unwrap(),
            (addr.clone(), Command::Describe(Some("a.B".into())))
        );
        assert_eq!(
            parse("h:1 a.B/C").unwrap(),
            (addr.clone(), Command::Call("a.B/C".into()))
        );
        assert_eq!(parse("health h:1").unwrap(), (addr, Command::Health(None)));
        assert_eq!(
            parse("completions bash").unwrap(),
            (None, Command::Completions("bash".into()))
        );
        assert!(parse("h:1").unwrap_err().contains("missing a command"));
        assert!(parse("h:1 a.B/C extra")
            .unwrap_err()
            .contains("cannot read"));
        assert!(parse("--plaintext --http3 h:1 list").is_err());
    }
}
