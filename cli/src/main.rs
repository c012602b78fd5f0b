//! `grpc-h3`: a command-line gRPC client over HTTP/3 and HTTP/2, in the
//! habits of grpcurl. `grpc-h3 --help` lists the commands and flags;
//! `docs/cli.md` is the reference.

mod args;
mod call;
mod connect;
mod describe;
mod schema;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use grpc_h3::{Metadata, Request, Status};
use grpc_h3_health::pb::health_client::HealthClient;
use grpc_h3_health::pb::HealthCheckRequest;
use grpc_h3_health::ServingStatus;

use args::{Args, Command};
use schema::Schema;

/// Why the tool stops, and its exit status.
#[derive(Debug)]
pub(crate) struct Failure {
    message: String,
    exit: u8,
    /// Already printed in full (a call's status with its details).
    printed: bool,
}

impl Failure {
    /// Anything but a gRPC status: exit 1.
    pub(crate) fn usage(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            exit: 1,
            printed: false,
        }
    }

    /// A call that ended with `status`: exit 64 + its code.
    pub(crate) fn from_status(status: &Status) -> Failure {
        let mut message = format!("{:?}: {}", status.code(), status.message());
        if status.code() == grpc_h3::Code::Unavailable && status.message().contains("certificate") {
            message.push_str(
                "\n(on this command line: --cacert FILE trusts a CA, --dev-cert this user's development certificate, --pin FILE|SHA256 one certificate)",
            );
        }
        Failure {
            message,
            exit: 64 + status.code() as u8,
            printed: false,
        }
    }

    /// Marks the failure as already reported.
    pub(crate) fn printed(mut self) -> Failure {
        self.printed = true;
        self
    }

    /// Says what was being done.
    pub(crate) fn context(mut self, doing: &str) -> Failure {
        self.message = format!("{doing}: {}", self.message);
        self
    }
}

/// `-H 'key: value'` flags as metadata; `-bin` values are base64, padded
/// or not.
fn metadata(headers: &[String]) -> Result<Metadata, Failure> {
    let mut metadata = Metadata::new();
    for header in headers {
        let (key, value) = header
            .split_once(':')
            .ok_or_else(|| Failure::usage(format!("-H {header:?}: expected 'key: value'")))?;
        let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
        let added = metadata.append_wire(&key, value);
        added.map_err(|e| Failure::usage(format!("-H {header:?}: {e}")))?;
    }
    Ok(metadata)
}

async fn run(args: Args) -> Result<(), Failure> {
    let (address, command) = args.parse_words().map_err(Failure::usage)?;
    if let Command::Completions(shell) = &command {
        let shell: clap_complete::Shell = shell.parse().map_err(|_| {
            Failure::usage(format!(
                "unknown shell {shell:?}: bash, zsh, fish, elvish or powershell"
            ))
        })?;
        clap_complete::generate(
            shell,
            &mut Args::command(),
            "grpc-h3",
            &mut std::io::stdout(),
        );
        return Ok(());
    }
    let address = address.expect("every other command names an address");
    let channel = connect::channel(&address, &args)?;
    let metadata = metadata(&args.headers)?;
    let timeout = connect::max_time(&args)?;
    if let Command::Health(service) = &command {
        return health(
            &channel,
            service.clone().unwrap_or_default(),
            metadata,
            &args,
        )
        .await;
    }
    let mut schema = Schema::from_args(&args, &channel, &metadata, timeout)?;
    match command {
        Command::List(None) => {
            for service in schema.services().await? {
                println!("{service}");
            }
        }
        Command::List(Some(service)) => {
            let pool = schema.pool_for(std::slice::from_ref(&service)).await?;
            let found = pool
                .get_service_by_name(service.trim_start_matches('.'))
                .ok_or_else(|| {
                    Failure::usage(format!("{address} has no service named {service:?}"))
                })?;
            for method in found.methods() {
                println!("{}", method.full_name());
            }
        }
        Command::Describe(None) => {
            let services = schema.services().await?;
            let pool = schema.pool_for(&services).await?;
            for service in services {
                if let Some(found) = pool.get_service_by_name(&service) {
                    println!(
                        "{service} is a service:\n{}",
                        describe::service_text(&found)
                    );
                }
            }
        }
        Command::Describe(Some(symbol)) => {
            let pool = schema.pool_for(std::slice::from_ref(&symbol)).await?;
            let text = describe::symbol(&pool, &symbol)
                .ok_or_else(|| Failure::usage(format!("no symbol named {symbol:?}")))?;
            print!("{text}");
        }
        Command::Call(name) => {
            let service = name
                .trim_start_matches('/')
                .rsplit_once(['/', '.'])
                .map(|(service, _)| service.to_owned())
                .ok_or_else(|| {
                    Failure::usage(format!(
                        "method {name:?}: expected pkg.Service/Method or pkg.Service.Method"
                    ))
                })?;
            let started = std::time::Instant::now();
            let pool = schema.pool_for(&[service]).await?;
            // With reflection, connecting happened while fetching the schema.
            let connect = matches!(schema, Schema::Reflection(_)).then(|| started.elapsed());
            let method = describe::method(&pool, &name)
                .ok_or_else(|| Failure::usage(format!("the schema has no method {name:?}")))?;
            call::call(&channel, &pool, &method, metadata, &args, connect).await?;
        }
        Command::Health(_) | Command::Completions(_) => unreachable!("handled above"),
    }
    Ok(())
}

async fn health(
    channel: &grpc_h3::Channel,
    service: String,
    metadata: Metadata,
    args: &Args,
) -> Result<(), Failure> {
    let mut request = Request::new(HealthCheckRequest {
        service: service.clone(),
    });
    *request.metadata_mut() = metadata;
    if let Some(timeout) = connect::max_time(args)? {
        request.set_timeout(timeout);
    }
    let response = HealthClient::new(channel.clone())
        .check(request)
        .await
        .map_err(|status| Failure::from_status(&status).context("health check"))?;
    let status = response.into_inner().status();
    println!("{}", status.as_str_name());
    if status == ServingStatus::Serving {
        Ok(())
    } else {
        let name = if service.is_empty() {
            "the server"
        } else {
            &service
        };
        Err(Failure::usage(format!(
            "{name} is {}",
            status.as_str_name()
        )))
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("starting the tokio runtime");
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if !failure.printed {
                eprintln!("grpc-h3: {}", failure.message);
            }
            ExitCode::from(failure.exit)
        }
    }
}
