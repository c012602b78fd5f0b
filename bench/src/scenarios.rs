//! S1-S6 on loopback. Each returns `(metric, value)` pairs for one stack.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::client::Client;
use crate::harness::{Certificate, ServerProcess};
use crate::load;
use crate::procfs;
use crate::Stack;

/// How long and how big the scenarios run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scale {
    pub(crate) run: Duration,
    pub(crate) warmup: Duration,
    pub(crate) handshakes: usize,
    pub(crate) idle_connections: usize,
    pub(crate) open_streams: usize,
}

impl Scale {
    pub(crate) fn full() -> Scale {
        Scale {
            run: Duration::from_secs(5),
            warmup: Duration::from_secs(1),
            handshakes: 100,
            idle_connections: 1_000,
            open_streams: 10_000,
        }
    }

    pub(crate) fn quick() -> Scale {
        Scale {
            run: Duration::from_millis(700),
            warmup: Duration::from_millis(200),
            handshakes: 20,
            idle_connections: 100,
            open_streams: 1_000,
        }
    }
}

pub(crate) type Metrics = Vec<(&'static str, f64)>;

pub(crate) const LOCALHOST: &str = "127.0.0.1:0";

pub(crate) fn small() -> Bytes {
    Bytes::from(vec![1u8; 100])
}

async fn warm(clients: &[Client], scale: &Scale) {
    let _ = load::closed_loop(clients, clients.len().max(8), scale.warmup, small()).await;
}

async fn connect_all(
    stack: Stack,
    server: &ServerProcess,
    cert: &Certificate,
    n: usize,
) -> Result<Vec<Client>, String> {
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        clients.push(Client::connect(stack, server.addr, &cert.cert_pem).await?);
    }
    Ok(clients)
}

/// S1: unary ping-pong, one call at a time, 100-byte messages.
pub(crate) async fn s1(stack: Stack, cert: &Certificate, scale: Scale) -> Result<Metrics, String> {
    let server = ServerProcess::start(stack, cert, LOCALHOST.parse().expect("addr"), None, None)?;
    let clients = connect_all(stack, &server, cert, 1).await?;
    warm(&clients, &scale).await;
    let result = load::closed_loop(&clients, 1, scale.run, small()).await;
    Ok(vec![
        ("p50_us", result.percentile_us(0.5)),
        ("p99_us", result.percentile_us(0.99)),
    ])
}

/// S2: 64 concurrent unary callers on one connection, then on four.
pub(crate) async fn s2(stack: Stack, cert: &Certificate, scale: Scale) -> Result<Metrics, String> {
    let mut metrics = Metrics::new();
    for (connections, qps_name, cpu_name) in [
        (1, "qps_1conn", "cpu_us_per_rpc_1conn"),
        (4, "qps_4conn", "cpu_us_per_rpc_4conn"),
    ] {
        let server =
            ServerProcess::start(stack, cert, LOCALHOST.parse().expect("addr"), None, None)?;
        let clients = connect_all(stack, &server, cert, connections).await?;
        warm(&clients, &scale).await;
        let (server_cpu, client_cpu) =
            (procfs::cpu_time(Some(server.pid())), procfs::cpu_time(None));
        let result = load::closed_loop(&clients, 64, scale.run, small()).await;
        let cpu = (procfs::cpu_time(Some(server.pid())) - server_cpu)
            + (procfs::cpu_time(None) - client_cpu);
        if result.errors > 0 {
            return Err(format!("{} calls failed", result.errors));
        }
        metrics.push((qps_name, result.qps()));
        metrics.push((
            cpu_name,
            cpu.as_secs_f64() * 1e6 / result.calls.max(1) as f64,
        ));
    }
    Ok(metrics)
}

/// S3: server streaming of 100-byte messages.
pub(crate) async fn s3(stack: Stack, cert: &Certificate, scale: Scale) -> Result<Metrics, String> {
    let server = ServerProcess::start(stack, cert, LOCALHOST.parse().expect("addr"), None, None)?;
    let clients = connect_all(stack, &server, cert, 1).await?;
    warm(&clients, &scale).await;
    let (server_cpu, client_cpu) = (procfs::cpu_time(Some(server.pid())), procfs::cpu_time(None));
    let started = Instant::now();
    let (messages, _) = clients[0].stream_out_for(100, scale.run).await?;
    let elapsed = started.elapsed();
    let cpu =
        (procfs::cpu_time(Some(server.pid())) - server_cpu) + (procfs::cpu_time(None) - client_cpu);
    Ok(vec![
        ("msgs_per_s", messages as f64 / elapsed.as_secs_f64()),
        (
            "cpu_ns_per_msg",
            cpu.as_secs_f64() * 1e9 / messages.max(1) as f64,
        ),
    ])
}

/// S4: bulk transfer of 1 MiB messages.
pub(crate) async fn s4(stack: Stack, cert: &Certificate, scale: Scale) -> Result<Metrics, String> {
    let server = ServerProcess::start(stack, cert, LOCALHOST.parse().expect("addr"), None, None)?;
    let clients = connect_all(stack, &server, cert, 1).await?;
    warm(&clients, &scale).await;
    let (server_cpu, client_cpu) = (procfs::cpu_time(Some(server.pid())), procfs::cpu_time(None));
    let started = Instant::now();
    let (_, bytes) = clients[0].stream_out_for(1 << 20, scale.run).await?;
    let elapsed = started.elapsed();
    let cpu =
        (procfs::cpu_time(Some(server.pid())) - server_cpu) + (procfs::cpu_time(None) - client_cpu);
    Ok(vec![
        ("mb_per_s", bytes as f64 / 1e6 / elapsed.as_secs_f64()),
        (
            "cpu_ms_per_mb",
            cpu.as_secs_f64() * 1e3 / (bytes as f64 / 1e6).max(1e-9),
        ),
        ("cpu_cores_busy", cpu.as_secs_f64() / elapsed.as_secs_f64()),
    ])
}

/// S5: a new connection and its first call, one after another.
pub(crate) async fn s5(stack: Stack, cert: &Certificate, scale: Scale) -> Result<Metrics, String> {
    let server = ServerProcess::start(stack, cert, LOCALHOST.parse().expect("addr"), None, None)?;
    let mut times = Vec::with_capacity(scale.handshakes);
    let started = Instant::now();
    for _ in 0..scale.handshakes {
        let t0 = Instant::now();
        let client = Client::connect(stack, server.addr, &cert.cert_pem).await?;
        client.unary(&small()).await?;
        times.push(t0.elapsed());
        drop(client);
    }
    let total = started.elapsed();
    times.sort();
    Ok(vec![
        (
            "connect_and_first_rpc_p50_ms",
            times[times.len() / 2].as_secs_f64() * 1e3,
        ),
        (
            "handshakes_per_s",
            scale.handshakes as f64 / total.as_secs_f64(),
        ),
    ])
}

/// S6: server memory for idle connections, and for open streams.
pub(crate) async fn s6(stack: Stack, cert: &Certificate, scale: Scale) -> Result<Metrics, String> {
    let server = ServerProcess::start(stack, cert, LOCALHOST.parse().expect("addr"), None, None)?;
    let base = procfs::status_kib(server.pid(), "VmRSS");
    let clients = connect_all(stack, &server, cert, scale.idle_connections).await?;
    for client in &clients {
        client.unary(&small()).await?;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = procfs::status_kib(server.pid(), "VmRSS");
    drop(clients);
    drop(server);

    let per_connection = u32::try_from(scale.open_streams / 10 + 100).unwrap_or(u32::MAX);
    let server = ServerProcess::start(
        stack,
        cert,
        LOCALHOST.parse().expect("addr"),
        None,
        Some(per_connection),
    )?;
    let clients = connect_all(stack, &server, cert, 10).await?;
    let mut held = Vec::with_capacity(scale.open_streams);
    for i in 0..scale.open_streams {
        held.push(clients[i % clients.len()].hold().await?);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let streams = procfs::status_kib(server.pid(), "VmRSS");
    let peak = procfs::status_kib(server.pid(), "VmHWM");
    drop(held);
    Ok(vec![
        ("rss_mib_idle_conns", idle as f64 / 1024.0),
        (
            "kib_per_idle_conn",
            idle.saturating_sub(base) as f64 / scale.idle_connections as f64,
        ),
        ("rss_mib_open_streams", streams as f64 / 1024.0),
        ("peak_rss_mib_open_streams", peak as f64 / 1024.0),
    ])
}
