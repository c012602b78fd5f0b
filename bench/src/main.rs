//! `grpc-h3-bench`: grpc-h3 against tonic over HTTP/2 with TLS (and plain
//! h2c as a reference), on the same proto, payloads, tokio settings and TLS
//! (rustls, TLS 1.3, TLS_AES_128_GCM_SHA256).
//!
//! `cargo run --release -p grpc-h3-bench -- all` runs every scenario with
//! repeats interleaved across stacks; `-- quick` runs a short version. Both
//! print a markdown table and write `target/bench/latest.json`.

mod client;
mod delay;
mod failover;
mod fallback;
mod harness;
mod load;
mod lossy;
mod netns;
mod pb;
mod procfs;
mod report;
mod rtt;
mod scenarios;
mod server;
mod soak;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// A gRPC stack under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum Stack {
    /// grpc-h3: gRPC over HTTP/3 (QUIC + TLS 1.3).
    GrpcH3,
    /// grpc-h3's gRPC layer over its HTTP/2 transport (hyper, TLS 1.3):
    /// the same hyper/h2 as tonic underneath, so the difference is ours.
    #[value(name = "grpc-h3-h2")]
    GrpcH3H2,
    /// tonic over HTTP/2 with TLS 1.3: the baseline.
    Tonic,
    /// tonic over plain HTTP/2 (h2c): a reference line, no encryption.
    TonicH2c,
    /// tonic-h3: tonic's generated code over HTTP/3 (h3 + quinn, TLS 1.3),
    /// the other Rust gRPC over HTTP/3 and the direct competitor.
    #[value(name = "tonic-h3")]
    TonicH3,
}

impl Stack {
    const ALL: [Stack; 5] = [
        Stack::GrpcH3,
        Stack::Tonic,
        Stack::TonicH3,
        Stack::GrpcH3H2,
        Stack::TonicH2c,
    ];

    fn name(self) -> &'static str {
        match self {
            Stack::GrpcH3 => "grpc-h3",
            Stack::GrpcH3H2 => "grpc-h3-h2",
            Stack::Tonic => "tonic",
            Stack::TonicH2c => "tonic-h2c",
            Stack::TonicH3 => "tonic-h3",
        }
    }
}

#[derive(Parser)]
#[command(about = "Benchmarks grpc-h3 against tonic over HTTP/2")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every scenario, 3 interleaved repeats (a few minutes).
    All {
        /// Only these scenarios (e.g. S1,S3).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Only these stacks (e.g. grpc-h3,tonic; default: all).
        #[arg(long, value_delimiter = ',', value_enum)]
        stacks: Vec<Stack>,
        /// Interleaved repeats per scenario and stack; the table shows each
        /// value's median. More repeats steady the ratios on a noisy machine.
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        /// Pin every server process to these CPUs (a `taskset -c` list,
        /// e.g. 0); its runtime then has one worker per CPU. Pin the
        /// harness (the client) apart with `taskset -c 1 grpc-h3-bench ...`.
        #[arg(long)]
        server_cpus: Option<String>,
        /// The congestion controller of grpc-h3's HTTP/3 servers (default:
        /// grpc-h3's, CUBIC).
        #[arg(long, value_enum)]
        quic_congestion: Option<harness::Congestion>,
        /// The TCP congestion controller in the lab's namespaces (e.g.
        /// cubic, bbr; default: the host's net.ipv4.tcp_congestion_control).
        /// Linux lets a namespace choose only controllers listed in the
        /// host's net.ipv4.tcp_allowed_congestion_control.
        #[arg(long)]
        tcp_congestion: Option<String>,
    },
    /// A short run of every scenario (smoke test; asserts nothing about speed).
    Quick {
        /// Only these scenarios (e.g. S1,S3).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Only these stacks (e.g. grpc-h3,tonic; default: all).
        #[arg(long, value_delimiter = ',', value_enum)]
        stacks: Vec<Stack>,
    },
    /// Time to a first call when the server's UDP port is silent (HTTP/2
    /// only): grpc-h3 choosing its transport, on HTTP/3 only, and tonic.
    Fallback {
        /// Connections measured per client kind.
        #[arg(long, default_value_t = 20)]
        samples: usize,
    },
    /// Failover: calls round-robined over three servers, one killed
    /// mid-run; per transport, failures and latency after the kill.
    Failover {
        /// Callers running at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Seconds before the kill.
        #[arg(long, default_value_t = 3)]
        before: u64,
        /// Seconds after the kill.
        #[arg(long, default_value_t = 15)]
        after: u64,
        /// Each call's deadline, in milliseconds.
        #[arg(long, default_value_t = 1000)]
        deadline_ms: u64,
    },
    /// Internal: serve one stack (the harness runs servers as processes).
    Serve {
        #[arg(long, value_enum)]
        stack: Stack,
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long)]
        cert: PathBuf,
        #[arg(long)]
        key: PathBuf,
        /// Per-connection stream limit (default: the stack's own).
        #[arg(long)]
        max_streams: Option<u32>,
        /// grpc-h3 over HTTP/3: the congestion controller (default:
        /// grpc-h3's).
        #[arg(long, value_enum)]
        congestion: Option<harness::Congestion>,
    },
    /// Internal: the client process of the loss scenarios.
    NetClient {
        #[arg(long, value_enum)]
        stack: Stack,
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long)]
        ca: PathBuf,
        /// Callers of the closed loop.
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        #[arg(long)]
        seconds: f64,
        /// A download on the same connection as the closed loop.
        #[arg(long)]
        bulk: bool,
        /// Time this many new connections to the end of their first call
        /// instead of running the closed loop.
        #[arg(long, conflicts_with_all = ["download", "bulk", "concurrency"])]
        connects: Option<usize>,
        /// With --connects: every connection with the same credentials,
        /// after an untimed first one, so each may resume its TLS session.
        #[arg(long, requires = "connects")]
        resumed: bool,
        /// Stream 1 MiB messages for the run and report the throughput
        /// instead of running the closed loop.
        #[arg(long, conflicts_with_all = ["bulk", "concurrency"])]
        download: bool,
    },
    /// Soak runs against one grpc-h3 server process: load (many streams
    /// for a long time), kill (SIGKILL and reconnection), loss (5 % each
    /// way, needs root, ip, nft, ethtool) and drain (graceful shutdown
    /// under load). Prints a report; fails if any run lost or leaked
    /// anything.
    Soak {
        /// Concurrent callers in the load run.
        #[arg(long, default_value_t = 10_000)]
        streams: usize,
        /// Connections they share.
        #[arg(long, default_value_t = 100)]
        connections: usize,
        /// Seconds of the load run (and, up to 30, of the loss run).
        #[arg(long, default_value_t = 60.0)]
        seconds: f64,
        /// Only these runs (load, kill, loss, drain).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Internal: the server process of the soak runs.
    SoakServer {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long)]
        cert: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
    /// Sets up the two-namespace lab (gh3b-srv at 10.203.0.1, gh3b-cli)
    /// and holds it until stdin closes, for experiments by hand (`ip netns
    /// exec gh3b-cli ...`). Needs root, ip, nft, ethtool, ping.
    Lab {
        /// Round-trip time in milliseconds (0: the veth pair, no delay line).
        #[arg(long, default_value_t = 0)]
        rtt_ms: u64,
        /// Packets dropped per thousand, each way.
        #[arg(long, default_value_t = 0)]
        loss_per_mille: u32,
    },
    /// Open-loop load at a fixed rate against a fresh server, latency
    /// corrected for coordinated omission.
    OpenLoop {
        #[arg(long, value_enum)]
        stack: Stack,
        /// Calls per second.
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        /// Seconds.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
}

type Scenario = for<'a> fn(
    Stack,
    &'a harness::Certificate,
    scenarios::Scale,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<scenarios::Metrics, String>> + 'a>,
>;

macro_rules! scenario {
    ($f:path) => {
        |stack, cert, scale| Box::pin($f(stack, cert, scale))
    };
}

/// What UDP segmentation and receive offloads quinn can use here.
fn udp_offloads() -> String {
    let report = || -> std::io::Result<String> {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let state = quinn_udp::UdpSocketState::new((&socket).into())?;
        Ok(format!(
            "UDP offloads available to quinn: GSO up to {} segments per send, GRO up to {} segments per receive",
            state.max_gso_segments(),
            state.gro_segments()
        ))
    };
    report().unwrap_or_else(|e| format!("UDP offloads unknown: {e}"))
}

async fn run_suite(
    scale: scenarios::Scale,
    repeats: usize,
    only: &[String],
    stacks: &[Stack],
) -> Result<(), String> {
    let stacks: Vec<Stack> = if stacks.is_empty() {
        Stack::ALL.to_vec()
    } else {
        stacks.to_vec()
    };
    let cert = harness::Certificate::generate()?;
    eprintln!("{}", udp_offloads());
    let suite: [(&str, Scenario); 6] = [
        ("S1", scenario!(scenarios::s1)),
        ("S2", scenario!(scenarios::s2)),
        ("S3", scenario!(scenarios::s3)),
        ("S4", scenario!(scenarios::s4)),
        ("S5", scenario!(scenarios::s5)),
        ("S6", scenario!(scenarios::s6)),
    ];
    let mut results = report::Results::default();
    for (name, scenario) in suite {
        if !only.is_empty() && !only.iter().any(|o| o.eq_ignore_ascii_case(name)) {
            continue;
        }
        // Interleaved: A, B, C, A, B, C... so drift hits every stack alike.
        for repeat in 0..repeats {
            for &stack in &stacks {
                eprintln!("{name} {} (repeat {}/{repeats})", stack.name(), repeat + 1);
                match scenario(stack, &cert, scale).await {
                    Ok(metrics) => {
                        for (metric, value) in metrics {
                            results.record(name, metric, stack, value);
                        }
                    }
                    Err(e) => eprintln!("  {name} {} failed: {e}", stack.name()),
                }
            }
        }
    }
    let wants = |name: &str| only.is_empty() || only.iter().any(|o| o.eq_ignore_ascii_case(name));
    if wants("S7") || wants("S8") {
        match netns::Lab::create() {
            Err(e) => {
                eprintln!("S7/S8 skipped: {e}");
                for name in ["S7", "S8"].into_iter().filter(|n| wants(n)) {
                    results.skip(name, &e);
                }
            }
            Ok(lab) => run_loss(&lab, &cert, scale, repeats, &stacks, &wants, &mut results),
        }
    }
    rtt::run(&cert, scale, &stacks, &wants, &mut results);
    if wants("BOTTLENECK") {
        rtt::bottleneck(&cert, scale, &stacks, &mut results);
    }
    println!("{}\n", udp_offloads());
    println!("{}", results.markdown());
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let path = dir.join("latest.json");
    std::fs::write(&path, results.json()).map_err(|e| e.to_string())?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// S7 at each loss rate (the 1% point repeated like the other scenarios,
/// the others once, to keep `all` to minutes) and S8.
fn run_loss(
    lab: &netns::Lab,
    cert: &harness::Certificate,
    scale: scenarios::Scale,
    repeats: usize,
    stacks: &[Stack],
    wants: &dyn Fn(&str) -> bool,
    results: &mut report::Results,
) {
    let rates: &[u32] = if scale.run < Duration::from_secs(1) {
        &[10]
    } else {
        &[0, 5, 10, 20, 50]
    };
    let run = scale.run.max(Duration::from_secs(1));
    if wants("S7") {
        for &per_mille in rates {
            let name = format!("S7 {}% loss", per_mille as f64 / 10.0);
            let times = if per_mille == 10 { repeats } else { 1 };
            for repeat in 0..times {
                for &stack in stacks {
                    eprintln!("{name} {} (repeat {}/{times})", stack.name(), repeat + 1);
                    match lossy::s7(lab, stack, cert, per_mille, run) {
                        Ok(metrics) => metrics
                            .into_iter()
                            .for_each(|(m, v)| results.record(&name, m, stack, v)),
                        Err(e) => eprintln!("  {name} {} failed: {e}", stack.name()),
                    }
                }
            }
        }
    }
    if wants("S8") {
        for repeat in 0..repeats {
            for &stack in stacks {
                eprintln!("S8 {} (repeat {}/{repeats})", stack.name(), repeat + 1);
                match lossy::s8(lab, stack, cert, 10, run) {
                    Ok(metrics) => metrics
                        .into_iter()
                        .for_each(|(m, v)| results.record("S8 bulk + unary, 1% loss", m, stack, v)),
                    Err(e) => eprintln!("  S8 {} failed: {e}", stack.name()),
                }
            }
        }
    }
}

async fn open_loop(stack: Stack, rate: f64, seconds: f64) -> Result<(), String> {
    let cert = harness::Certificate::generate()?;
    let server = harness::ServerProcess::start(
        stack,
        &cert,
        "127.0.0.1:0".parse().expect("addr"),
        None,
        None,
    )?;
    let client = client::Client::connect(stack, server.addr, &cert.cert_pem).await?;
    client.unary(&bytes::Bytes::from_static(b"warm")).await?;
    let body = bytes::Bytes::from(vec![1u8; 100]);
    let result = load::open_loop(&client, rate, Duration::from_secs_f64(seconds), body).await;
    println!(
        "{}: {} calls at {rate}/s, {} errors; p50 {} us, p90 {} us, p99 {} us, p99.9 {} us",
        stack.name(),
        result.calls,
        result.errors,
        result.percentile_us(0.5),
        result.percentile_us(0.9),
        result.percentile_us(0.99),
        result.percentile_us(0.999)
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = runtime.block_on(async {
        match args.command {
            Command::All {
                only,
                stacks,
                repeats,
                server_cpus,
                quic_congestion,
                tcp_congestion,
            } => {
                if let Some(controller) = tcp_congestion {
                    println!("the lab's TCP uses {controller} congestion control");
                    netns::set_tcp_congestion(controller);
                }
                if let Some(controller) = quic_congestion {
                    println!("grpc-h3's HTTP/3 servers use {controller:?} congestion control");
                    harness::set_server_congestion(controller);
                }
                if let Some(cpus) = server_cpus {
                    println!("every server process pinned to CPUs {cpus} (taskset -c)");
                    harness::pin_servers(cpus)?;
                }
                run_suite(scenarios::Scale::full(), repeats.max(1), &only, &stacks).await
            }
            Command::Quick { only, stacks } => {
                run_suite(scenarios::Scale::quick(), 1, &only, &stacks).await
            }
            Command::Serve {
                stack,
                addr,
                cert,
                key,
                max_streams,
                congestion,
            } => {
                let (cert, key) = (
                    std::fs::read(cert).map_err(|e| e.to_string())?,
                    std::fs::read(key).map_err(|e| e.to_string())?,
                );
                let congestion = congestion.map(harness::Congestion::controller);
                server::serve(stack, addr, cert, key, max_streams, congestion)
                    .await
                    .map_err(|e| e.to_string())
            }
            Command::Fallback { samples } => fallback::run(samples).await,
            Command::Failover {
                concurrency,
                before,
                after,
                deadline_ms,
            } => {
                failover::run(
                    concurrency,
                    Duration::from_secs(before),
                    Duration::from_secs(after),
                    Duration::from_millis(deadline_ms),
                )
                .await
            }
            Command::Lab {
                rtt_ms,
                loss_per_mille,
            } => {
                let lab = match rtt_ms {
                    0 => netns::Lab::create()?,
                    ms => netns::Lab::with_rtt(Duration::from_millis(ms))?,
                };
                lab.set_loss(loss_per_mille)?;
                println!("lab up: {rtt_ms} ms round trip, {loss_per_mille}/1000 loss each way; close stdin to remove it");
                tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink()))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
                Ok(())
            }
            Command::OpenLoop {
                stack,
                rate,
                seconds,
            } => open_loop(stack, rate, seconds).await,
            Command::Soak {
                streams,
                connections,
                seconds,
                only,
            } => {
                let scale = soak::Scale {
                    streams,
                    connections,
                    seconds,
                };
                soak::run(scale, &only).await
            }
            Command::SoakServer { addr, cert, key } => {
                let (cert, key) = (
                    std::fs::read(&cert).map_err(|e| format!("reading {}: {e}", cert.display()))?,
                    std::fs::read(&key).map_err(|e| format!("reading {}: {e}", key.display()))?,
                );
                soak::serve(addr, cert, key)
                    .await
                    .map_err(|e| e.to_string())
            }
            Command::NetClient {
                stack,
                addr,
                ca,
                concurrency,
                seconds,
                bulk,
                connects,
                resumed,
                download,
            } => {
                let work = match (connects, download) {
                    (Some(count), _) => lossy::Work::Connects { count, resumed },
                    (None, true) => lossy::Work::Download,
                    (None, false) => lossy::Work::Calls { concurrency, bulk },
                };
                lossy::net_client(stack, addr, &ca, work, seconds).await
            }
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("grpc-h3-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
