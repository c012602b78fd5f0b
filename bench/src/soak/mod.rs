//! `grpc-h3-bench soak`: long runs against one grpc-h3 server process that
//! must lose nothing and leak nothing.
//!
//! - **load**: `streams` callers over `connections` connections, unary calls
//!   back to back for `seconds`: every call succeeds, the server's memory
//!   stays bounded (peak reported), and once the clients leave every
//!   counter (calls, tasks, STOP_SENDING watchers, connections) is back to
//!   zero.
//! - **kill**: the server is SIGKILLed under a thousand open streams: every
//!   one ends UNAVAILABLE (time reported), and the channels reconnect by
//!   themselves once it is back.
//! - **loss**: 5 % random loss each way in the namespace lab: every call
//!   completes.
//! - **drain**: a graceful shutdown under full load: every call the server
//!   ran reached its client (no in-flight call lost); calls refused after
//!   the GOAWAY fail as never processed.

mod server;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use grpc_h3::{Code, Request};
use tokio_stream::wrappers::ReceiverStream;

use crate::harness::Certificate;
use crate::pb::h3::bench_client::BenchClient;
use crate::pb::h3::Payload;
use crate::{lossy, netns, procfs, Stack};

pub(crate) use server::serve;

/// Counters the soak server reported.
type Counters = HashMap<String, u64>;

/// The soak server as a child process, driven over its stdio.
struct SoakServer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    addr: SocketAddr,
}

fn parse_counters(line: &str, prefix: &str) -> Result<Counters, String> {
    let rest = line
        .strip_prefix(prefix)
        .ok_or_else(|| format!("the soak server said {line:?}"))?;
    Ok(rest
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect())
}

impl SoakServer {
    fn start(cert: &Certificate, bind: SocketAddr) -> Result<SoakServer, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .args(["soak-server", "--addr", &bind.to_string()])
            .arg("--cert")
            .arg(cert.path())
            .arg("--key")
            .arg(cert.key_path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting the soak server: {e}"))?;
        let stdin = child.stdin.take();
        let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        let line = lines
            .next()
            .ok_or("the soak server exited")?
            .map_err(|e| e.to_string())?;
        let addr = line
            .strip_prefix("LISTENING ")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("the soak server said {line:?}"))?;
        Ok(SoakServer {
            child,
            stdin,
            lines,
            addr,
        })
    }

    fn command(&mut self, command: &str, answer: &str) -> Result<Counters, String> {
        let stdin = self.stdin.as_mut().ok_or("the server's stdin is closed")?;
        writeln!(stdin, "{command}").map_err(|e| e.to_string())?;
        let line = self
            .lines
            .next()
            .ok_or("the soak server exited")?
            .map_err(|e| e.to_string())?;
        parse_counters(&line, answer)
    }

    fn stats(&mut self) -> Result<Counters, String> {
        self.command("stats", "STATS ")
    }

    /// Drains gracefully; returns the counters after the drain.
    fn drain(&mut self) -> Result<Counters, String> {
        let counters = self.command("drain", "DRAINED ")?;
        let _ = self.child.wait();
        Ok(counters)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SoakServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Scale of a soak run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scale {
    pub(crate) streams: usize,
    pub(crate) connections: usize,
    pub(crate) seconds: f64,
}

fn channel(cert: &Certificate, addr: SocketAddr) -> Result<BenchClient, String> {
    let tls = grpc_h3::tls::ClientTlsConfig::new()
        .ca_certificate(&cert.cert_pem)
        .server_name("localhost")
        .crypto_provider(crate::tls::provider());
    let channel = grpc_h3::Channel::builder(format!("https://{addr}"))
        .tls_config(tls)
        .build()
        .map_err(|e| e.to_string())?;
    Ok(BenchClient::new(channel))
}

fn payload() -> Payload {
    Payload {
        body: vec![1u8; 100],
    }
}

fn get(counters: &Counters, key: &str) -> u64 {
    counters.get(key).copied().unwrap_or(u64::MAX)
}

/// Polls the server until `done` holds (or 30 s pass); returns the last
/// counters.
async fn settle(
    server: &mut SoakServer,
    done: impl Fn(&Counters) -> bool,
) -> Result<Counters, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let counters = server.stats()?;
        if done(&counters) || Instant::now() > deadline {
            return Ok(counters);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the load soak; returns its report lines and whether it passed.
async fn load(cert: &Certificate, scale: Scale) -> Result<(Vec<String>, bool), String> {
    let mut server = SoakServer::start(cert, "127.0.0.1:0".parse().expect("addr"))?;
    let clients: Vec<BenchClient> = (0..scale.connections)
        .map(|_| channel(cert, server.addr))
        .collect::<Result<_, _>>()?;
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(scale.seconds);
    let callers: Vec<_> = (0..scale.streams)
        .map(|i| {
            let client = clients[i % clients.len()].clone();
            let (ok, failed, first_error) = (ok.clone(), failed.clone(), first_error.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    match client.unary(payload()).await {
                        Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(status) => {
                            first_error
                                .lock()
                                .expect("lock")
                                .get_or_insert(status.to_string());
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            })
        })
        .collect();
    let pid = server.child.id();
    let mut peak_rss = 0;
    while Instant::now() < deadline {
        peak_rss = peak_rss.max(procfs::status_kib(pid, "VmRSS"));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for caller in callers {
        caller.await.map_err(|e| e.to_string())?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let during = server.stats()?;
    let quiet = settle(&mut server, |c| get(c, "live_calls") == 0).await?;
    drop(clients);
    let after = settle(&mut server, |c| {
        get(c, "connections") == 0 && get(c, "tasks") == 0 && get(c, "stop_watchers") == 0
    })
    .await?;
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    let passed = failed == 0
        && get(&quiet, "live_calls") == 0
        && get(&after, "connections") == 0
        && get(&after, "tasks") == 0
        && get(&after, "stop_watchers") == 0;
    let mut lines = vec![
        format!(
            "load: {} callers over {} connections for {:.0} s: {ok} calls ({:.0}/s), {failed} failed{}",
            scale.streams,
            scale.connections,
            scale.seconds,
            ok as f64 / elapsed,
            first_error
                .lock()
                .expect("lock")
                .as_ref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        ),
        format!(
            "load: server RSS peak {} MiB (VmHWM {} MiB), {} MiB once the clients left",
            peak_rss / 1024,
            get(&after, "hwm_kib") / 1024,
            get(&after, "rss_kib") / 1024
        ),
        format!(
            "load: after the run live calls {}, and once the clients left: connections {}, tasks {}, STOP_SENDING watchers {} (during: {} connections, {} tasks)",
            get(&quiet, "live_calls"),
            get(&after, "connections"),
            get(&after, "tasks"),
            get(&after, "stop_watchers"),
            get(&during, "connections"),
            get(&during, "tasks"),
        ),
        format!(
            "load: server counters: {} connections accepted, {} handshake timeouts, {} early-reset closes, {} idle closes, {} header timeouts, {} frames refused, {} connections refused",
            get(&after, "connections_accepted"),
            get(&after, "handshake_timeouts"),
            get(&after, "early_reset_closes"),
            get(&after, "idle_closes"),
            get(&after, "header_timeouts"),
            get(&after, "refused_frames"),
            get(&after, "connections_refused"),
        ),
    ];
    lines.push(format!("load: {}", if passed { "PASS" } else { "FAIL" }));
    Ok((lines, passed))
}

/// The kill soak: open streams, SIGKILL, reconnection.
async fn kill(
    cert: &Certificate,
    streams: usize,
    connections: usize,
) -> Result<(Vec<String>, bool), String> {
    let mut server = SoakServer::start(cert, "127.0.0.1:0".parse().expect("addr"))?;
    let addr = server.addr;
    let clients: Vec<BenchClient> = (0..connections)
        .map(|_| channel(cert, addr))
        .collect::<Result<_, _>>()?;
    let (opened_tx, mut opened_rx) = tokio::sync::mpsc::channel::<()>(streams);
    let killed_at = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let holders: Vec<_> = (0..streams)
        .map(|i| {
            let client = clients[i % clients.len()].clone();
            let (opened, killed_at) = (opened_tx.clone(), killed_at.clone());
            tokio::spawn(async move {
                let (tx, rx) = tokio::sync::mpsc::channel(1);
                tx.send(payload()).await.map_err(|_| "send")?;
                let mut echoes = client
                    .hold(ReceiverStream::new(rx))
                    .await
                    .map_err(|s| s.to_string())?
                    .into_inner();
                echoes.message().await.map_err(|s| s.to_string())?;
                let _ = opened.send(()).await;
                let status = match echoes.message().await {
                    Err(status) => status,
                    Ok(other) => return Err(format!("the stream went on: {other:?}")),
                };
                let since_kill = killed_at.lock().expect("lock").map(|t| t.elapsed());
                drop(tx);
                Ok::<_, String>((status.code(), since_kill))
            })
        })
        .collect();
    drop(opened_tx);
    for _ in 0..streams {
        opened_rx.recv().await.ok_or("a stream failed to open")?;
    }
    *killed_at.lock().expect("lock") = Some(Instant::now());
    server.kill();
    let mut times = Vec::new();
    let mut other_codes = Vec::new();
    for holder in holders {
        match holder.await.map_err(|e| e.to_string())? {
            Ok((Code::Unavailable, Some(t))) => times.push(t),
            Ok((code, _)) => other_codes.push(format!("{code:?}")),
            Err(e) => other_codes.push(e),
        }
    }
    times.sort();
    let restarted = Instant::now();
    let _server = SoakServer::start(cert, addr)?;
    let mut back = Vec::new();
    for client in &clients {
        let mut request = Request::new(payload());
        request.set_wait_for_ready(true);
        request.set_timeout(Duration::from_secs(60));
        client.unary(request).await.map_err(|s| s.to_string())?;
        back.push(restarted.elapsed());
    }
    let passed = other_codes.is_empty() && times.len() == streams;
    let lines = vec![
        format!(
            "kill: {streams} open streams over {connections} connections, server SIGKILLed: {} ended UNAVAILABLE (after {:.1} s at the median, {:.1} s at most; with the default idle timeout of 10 s and keep-alive every 3.3 s, a silent server is declared gone 10 to 13.3 s after its last packet), {} otherwise{}",
            times.len(),
            times.get(times.len() / 2).map_or(0.0, Duration::as_secs_f64),
            times.last().map_or(0.0, Duration::as_secs_f64),
            other_codes.len(),
            other_codes.first().map(|c| format!(" (first: {c})")).unwrap_or_default()
        ),
        format!(
            "kill: server restarted; every channel was calling again {:.1} s later",
            back.iter().max().map_or(0.0, Duration::as_secs_f64)
        ),
        format!("kill: {}", if passed { "PASS" } else { "FAIL" }),
    ];
    Ok((lines, passed))
}

/// The drain soak: a graceful shutdown under full load.
async fn drain(
    cert: &Certificate,
    streams: usize,
    connections: usize,
) -> Result<(Vec<String>, bool), String> {
    let mut server = SoakServer::start(cert, "127.0.0.1:0".parse().expect("addr"))?;
    let clients: Vec<BenchClient> = (0..connections)
        .map(|_| channel(cert, server.addr))
        .collect::<Result<_, _>>()?;
    let ok = Arc::new(AtomicU64::new(0));
    let callers: Vec<_> = (0..streams)
        .map(|i| {
            let client = clients[i % clients.len()].clone();
            let ok = ok.clone();
            // Calls until the first failure, which must be a refusal.
            tokio::spawn(async move {
                loop {
                    match client.unary(payload()).await {
                        Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(status) => return status,
                    };
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let drained = tokio::task::block_in_place(|| server.drain())?;
    let mut refused = 0;
    let mut other = Vec::new();
    for caller in callers {
        let status = caller.await.map_err(|e| e.to_string())?;
        // After GOAWAY a call goes to a new connection, which a draining
        // server refuses: never processed.
        if status.code() == Code::Unavailable
            && (status.message().contains("refused") || status.message().contains("GOAWAY"))
        {
            refused += 1;
        } else {
            other.push(status.to_string());
        }
    }
    let ok = ok.load(Ordering::Relaxed);
    let finished = get(&drained, "handlers_finished");
    let passed = ok == finished && other.is_empty();
    let lines = vec![
        format!(
            "drain: {streams} callers over {connections} connections, graceful shutdown after 5 s: the server ran {finished} calls, clients received {ok} answers ({} lost); {refused} later calls refused as never processed, {} failed otherwise{}",
            finished.saturating_sub(ok),
            other.len(),
            other.first().map(|e| format!(" (first: {e})")).unwrap_or_default()
        ),
        format!("drain: {}", if passed { "PASS" } else { "FAIL" }),
    ];
    Ok((lines, passed))
}

/// The loss soak: 5 % random loss each way, every call must complete.
fn loss(cert: &Certificate, seconds: f64) -> Result<(Vec<String>, bool), String> {
    let lab = netns::Lab::create()?;
    let run = lossy::with_server(Stack::GrpcH3, cert, |addr| {
        lossy::run_client(
            &lab,
            Stack::GrpcH3,
            addr,
            cert.path(),
            lossy::Load {
                per_mille: 50,
                work: lossy::Work::Calls {
                    concurrency: 16,
                    bulk: false,
                },
                run: Duration::from_secs_f64(seconds),
            },
        )
    })?;
    let passed = run.errors == 0 && run.calls > 0;
    let (p50, p99, p999) = run.latencies;
    let lines = vec![
        format!(
            "loss: 5 % random loss each way, 16 callers for {seconds:.0} s: {} calls, {} failed; p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms",
            run.calls,
            run.errors,
            p50 / 1e3,
            p99 / 1e3,
            p999 / 1e3
        ),
        format!("loss: {}", if passed { "PASS" } else { "FAIL" }),
    ];
    Ok((lines, passed))
}

/// Runs the soaks named in `only` (all when empty); prints the report.
pub(crate) async fn run(scale: Scale, only: &[String]) -> Result<(), String> {
    let cert = Certificate::generate()?;
    let wants = |name: &str| only.is_empty() || only.iter().any(|o| o.eq_ignore_ascii_case(name));
    let mut report = Vec::new();
    let mut all_passed = true;
    let mut record = |result: Result<(Vec<String>, bool), String>, name: &str| match result {
        Ok((lines, passed)) => {
            all_passed &= passed;
            for line in lines {
                eprintln!("{line}");
                report.push(line);
            }
        }
        Err(e) => {
            all_passed = false;
            let line = format!("{name}: could not run: {e}");
            eprintln!("{line}");
            report.push(line);
        }
    };
    if wants("load") {
        record(load(&cert, scale).await, "load");
    }
    if wants("kill") {
        record(kill(&cert, 1_000, 10).await, "kill");
    }
    if wants("loss") {
        let seconds = scale.seconds.min(30.0);
        record(tokio::task::block_in_place(|| loss(&cert, seconds)), "loss");
    }
    if wants("drain") {
        record(drain(&cert, 1_000, 10).await, "drain");
    }
    println!("{}", report.join("\n"));
    if all_passed {
        Ok(())
    } else {
        Err("a soak failed".to_owned())
    }
}
