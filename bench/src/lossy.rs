//! S7 and S8: latency under random packet loss, across the namespace lab.
//! The load runs in a client process inside the client namespace; loss is
//! switched on only after it has connected and warmed up.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::client::{Client, Credentials};
use crate::harness::{Certificate, ServerProcess};
use crate::netns::{Lab, CLIENT_NS, SERVER_IP, SERVER_NS};
use crate::scenarios::Metrics;
use crate::{load, Stack};

/// One loss run's latencies in µs: p50, p99, p99.9.
type Latencies = (f64, f64, f64);

/// One measurement's load and loss.
#[derive(Clone, Copy)]
pub(crate) struct Load {
    pub(crate) per_mille: u32,
    pub(crate) work: Work,
    pub(crate) run: Duration,
}

/// What the client process measures.
#[derive(Clone, Copy)]
pub(crate) enum Work {
    /// Unary calls in a closed loop at this concurrency; `bulk` adds a
    /// download on the same connection. Prints RESULT p50 p99 p99.9 calls
    /// errors (latencies in µs).
    Calls { concurrency: usize, bulk: bool },
    /// This many new connections, one after another, each timed to the end
    /// of its first call; `resumed`: all with the same credentials, after
    /// an untimed first one, so each may resume a TLS session (and grpc-h3
    /// send its call in 0-RTT). Prints RESULT like `Calls`, one call per
    /// connection.
    Connects { count: usize, resumed: bool },
    /// One download of 1 MiB messages for the run. Prints RESULT bytes
    /// seconds.
    Download,
}

impl Work {
    /// The client process's arguments for this work.
    fn args(self) -> Vec<String> {
        match self {
            Work::Calls { concurrency, bulk } => {
                let mut args = vec!["--concurrency".to_owned(), concurrency.to_string()];
                args.extend(bulk.then(|| "--bulk".to_owned()));
                args
            }
            Work::Connects { count, resumed } => {
                let mut args = vec!["--connects".to_owned(), count.to_string()];
                args.extend(resumed.then(|| "--resumed".to_owned()));
                args
            }
            Work::Download => vec!["--download".to_owned()],
        }
    }
}

/// What one run under loss measured.
pub(crate) struct LossRun {
    pub(crate) latencies: Latencies,
    pub(crate) calls: u64,
    pub(crate) errors: u64,
}

/// Runs the client process for one measurement; every call must succeed.
fn measure(
    lab: &Lab,
    stack: Stack,
    server: SocketAddr,
    ca: &Path,
    load: Load,
) -> Result<Latencies, String> {
    let run = run_client(lab, stack, server, ca, load)?;
    match run.errors {
        0 => Ok(run.latencies),
        errors => Err(format!("{errors} calls failed")),
    }
}

/// Runs the client process for one measurement of calls or connections.
pub(crate) fn run_client(
    lab: &Lab,
    stack: Stack,
    server: SocketAddr,
    ca: &Path,
    load: Load,
) -> Result<LossRun, String> {
    match run_client_fields(lab, stack, server, ca, load)?[..] {
        [p50, p99, p999, calls, errors] => Ok(LossRun {
            latencies: (p50, p99, p999),
            calls: calls as u64,
            errors: errors as u64,
        }),
        ref other => Err(format!("unreadable result {other:?}")),
    }
}

/// Runs the client process for one measurement; the numbers of its RESULT
/// line.
pub(crate) fn run_client_fields(
    lab: &Lab,
    stack: Stack,
    server: SocketAddr,
    ca: &Path,
    load: Load,
) -> Result<Vec<f64>, String> {
    let Load {
        per_mille,
        work,
        run,
    } = load;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new("ip")
        .args(["netns", "exec", CLIENT_NS])
        .arg(exe)
        .args([
            "net-client",
            "--stack",
            stack.name(),
            "--addr",
            &server.to_string(),
        ])
        .arg("--ca")
        .arg(ca)
        .args(["--seconds", &run.as_secs_f64().to_string()])
        .args(work.args())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    let ready = lines
        .next()
        .ok_or("the client exited")?
        .map_err(|e| e.to_string())?;
    if ready != "READY" {
        let _ = child.kill();
        return Err(format!("the client said {ready:?}"));
    }
    lab.set_loss(per_mille)?;
    let go = child.stdin.as_mut().ok_or("no stdin")?.write_all(b"GO\n");
    let result = lines
        .next()
        .ok_or("the client exited")?
        .map_err(|e| e.to_string());
    lab.set_loss(0)?;
    let _ = child.wait();
    go.map_err(|e| e.to_string())?;
    let result = result?;
    Ok(result
        .strip_prefix("RESULT ")
        .ok_or_else(|| format!("the client said {result:?}"))?
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect())
}

pub(crate) fn with_server<T>(
    stack: Stack,
    cert: &Certificate,
    f: impl FnOnce(SocketAddr) -> Result<T, String>,
) -> Result<T, String> {
    let bind: SocketAddr = format!("{SERVER_IP}:0").parse().expect("addr");
    let server = ServerProcess::start(stack, cert, bind, Some(SERVER_NS), None)?;
    f(server.addr)
}

/// S7 for one stack at one loss rate: unary at c=1 and c=16.
pub(crate) fn s7(
    lab: &Lab,
    stack: Stack,
    cert: &Certificate,
    per_mille: u32,
    run: Duration,
) -> Result<Metrics, String> {
    with_server(stack, cert, |addr| {
        let mut metrics = Metrics::new();
        for (concurrency, names) in [
            (1, ["c1_p50_us", "c1_p99_us", "c1_p999_us"]),
            (16, ["c16_p50_us", "c16_p99_us", "c16_p999_us"]),
        ] {
            let (p50, p99, p999) = measure(
                lab,
                stack,
                addr,
                cert.path(),
                Load {
                    per_mille,
                    work: Work::Calls {
                        concurrency,
                        bulk: false,
                    },
                    run,
                },
            )?;
            metrics.extend([(names[0], p50), (names[1], p99), (names[2], p999)]);
        }
        Ok(metrics)
    })
}

/// S8: unary calls (c=1) sharing one connection with a bulk stream, at
/// `per_mille` loss (10 in the table's S8).
pub(crate) fn s8(
    lab: &Lab,
    stack: Stack,
    cert: &Certificate,
    per_mille: u32,
    run: Duration,
) -> Result<Metrics, String> {
    with_server(stack, cert, |addr| {
        let (p50, p99, p999) = measure(
            lab,
            stack,
            addr,
            cert.path(),
            Load {
                per_mille,
                work: Work::Calls {
                    concurrency: 1,
                    bulk: true,
                },
                run,
            },
        )?;
        Ok(vec![
            ("unary_p50_us", p50),
            ("unary_p99_us", p99),
            ("unary_p999_us", p999),
        ])
    })
}

/// The client process: connect, warm up, say READY, wait for GO, do
/// `work` for `seconds`, print its RESULT line (see [`Work`]).
pub(crate) async fn net_client(
    stack: Stack,
    addr: SocketAddr,
    ca: &Path,
    work: Work,
    seconds: f64,
) -> Result<(), String> {
    let ca_pem = std::fs::read(ca).map_err(|e| e.to_string())?;
    let (concurrency, bulk) = match work {
        Work::Calls { concurrency, bulk } => (concurrency, bulk),
        Work::Connects { count, resumed } => {
            return connect_times(stack, addr, &ca_pem, count, resumed).await
        }
        Work::Download => return download(stack, addr, &ca_pem, seconds).await,
    };
    let client = Client::connect(stack, addr, &ca_pem).await?;
    let body = bytes::Bytes::from(vec![1u8; 100]);
    let clients = [client.clone()];
    let _ = load::closed_loop(
        &clients,
        concurrency,
        Duration::from_millis(500),
        body.clone(),
    )
    .await;
    if bulk {
        // A bulk download on the same connection for the whole run.
        let bulk_client = client.clone();
        tokio::spawn(async move {
            let _ = bulk_client
                .stream_out_for(1 << 20, Duration::from_secs(3600))
                .await;
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    println!("READY");
    wait_for_go().await?;
    let result = load::closed_loop(
        &clients,
        concurrency,
        Duration::from_secs_f64(seconds),
        body,
    )
    .await;
    println!(
        "RESULT {} {} {} {} {}",
        result.percentile_us(0.5),
        result.percentile_us(0.99),
        result.percentile_us(0.999),
        result.calls,
        result.errors
    );
    Ok(())
}

/// Waits for the harness's GO line.
async fn wait_for_go() -> Result<(), String> {
    let mut line = String::new();
    tokio::task::spawn_blocking(move || std::io::stdin().read_line(&mut line))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// `connects` new connections one after another, each timed from the start
/// of the connection to the end of its first call.
async fn connect_times(
    stack: Stack,
    addr: SocketAddr,
    ca_pem: &[u8],
    connects: usize,
    resumed: bool,
) -> Result<(), String> {
    let body = bytes::Bytes::from(vec![1u8; 100]);
    let shared = Credentials::new(ca_pem)?;
    if resumed {
        // The first connection makes the full handshake that gives the
        // session tickets the timed ones resume.
        Client::connect_with(stack, addr, &shared)
            .await?
            .unary(&body)
            .await?;
    }
    println!("READY");
    wait_for_go().await?;
    let mut times = hdrhistogram::Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    let mut errors = 0;
    for _ in 0..connects {
        let started = std::time::Instant::now();
        let credentials = if resumed {
            shared.clone()
        } else {
            Credentials::new(ca_pem)?
        };
        let called = match Client::connect_with(stack, addr, &credentials).await {
            Ok(client) => client.unary(&body).await.map(|_| ()),
            Err(e) => Err(e),
        };
        match called {
            Ok(()) => times
                .record(started.elapsed().as_micros() as u64)
                .map_err(|e| e.to_string())?,
            Err(_) => errors += 1,
        }
    }
    println!(
        "RESULT {} {} {} {} {errors}",
        times.value_at_quantile(0.5),
        times.value_at_quantile(0.99),
        times.value_at_quantile(0.999),
        times.len(),
    );
    Ok(())
}

/// One download of 1 MiB messages for `seconds`: RESULT bytes seconds.
async fn download(
    stack: Stack,
    addr: SocketAddr,
    ca_pem: &[u8],
    seconds: f64,
) -> Result<(), String> {
    let client = Client::connect(stack, addr, ca_pem).await?;
    client.unary(&bytes::Bytes::from_static(b"warm")).await?;
    println!("READY");
    wait_for_go().await?;
    let started = std::time::Instant::now();
    let (_, bytes) = client
        .stream_out_for(1 << 20, Duration::from_secs_f64(seconds))
        .await?;
    println!("RESULT {bytes} {}", started.elapsed().as_secs_f64());
    Ok(())
}
