//! Failover: calls round-robined over three servers when one is killed
//! (SIGKILL: no GOAWAY, no CONNECTION_CLOSE), at a fixed concurrency,
//! each call with a deadline. Per transport of the same balancer, the
//! latency of the calls that succeed and the calls that fail, before and
//! after the kill, and how long after the kill failures go on.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::harness::{Certificate, ServerProcess};
use crate::scenarios::{small, LOCALHOST};
use crate::{pb, Stack};

/// One call's outcome, in time since the run started.
struct Outcome {
    at: Duration,
    latency: Duration,
    ok: bool,
}

fn balanced_client(
    addrs: &[SocketAddr],
    cert: &Certificate,
    transport: grpc_h3::Transport,
) -> Result<pb::h3::bench_client::BenchClient, String> {
    let tls = grpc_h3::tls::ClientTlsConfig::new()
        .ca_certificate(cert.cert_pem.as_slice())
        .server_name("localhost")
        .crypto_provider(crate::tls::provider());
    let channel = grpc_h3::Channel::builder(format!("https://localhost:{}", addrs[0].port()))
        .tls_config(tls)
        .transport(transport)
        .endpoints(addrs.iter().map(ToString::to_string))
        .load_balancing(grpc_h3::client::LoadBalancing::RoundRobin)
        .build()
        .map_err(|e| e.to_string())?;
    Ok(pb::h3::bench_client::BenchClient::new(channel))
}

/// Runs `concurrency` callers for `before + after`, killing one of three
/// servers at `before`; prints a table.
pub(crate) async fn run(
    concurrency: usize,
    before: Duration,
    after: Duration,
    deadline: Duration,
) -> Result<(), String> {
    let cert = Certificate::generate()?;
    println!(
        "| transport | calls after the kill | failed | failures went on for | p50 ok | p99 ok | max ok | p99 before |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for transport in [grpc_h3::Transport::Http3, grpc_h3::Transport::Http2] {
        // The same server; the grpc-h3-h2 stack listens on TCP.
        let stack = match transport {
            grpc_h3::Transport::Http3 => Stack::GrpcH3,
            _ => Stack::GrpcH3H2,
        };
        let mut servers = (0..3)
            .map(|_| {
                ServerProcess::start(stack, &cert, LOCALHOST.parse().expect("addr"), None, None)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
        let client = balanced_client(&addrs, &cert, transport)?;
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let start = Instant::now();
        let end = start + before + after;
        let mut callers = tokio::task::JoinSet::new();
        for _ in 0..concurrency {
            let (client, outcomes) = (client.clone(), outcomes.clone());
            callers.spawn(async move {
                let body = small();
                while Instant::now() < end {
                    let mut request = grpc_h3::Request::new(pb::h3::Payload {
                        body: body.to_vec(),
                    });
                    request.set_timeout(deadline);
                    let t0 = Instant::now();
                    let ok = client.unary(request).await.is_ok();
                    let outcome = Outcome {
                        at: t0 - start,
                        latency: t0.elapsed(),
                        ok,
                    };
                    outcomes.lock().expect("outcomes").push(outcome);
                    if !ok {
                        // A failed call's caller goes on at once, as a
                        // client retrying in a loop would.
                        tokio::task::yield_now().await;
                    }
                }
            });
        }
        tokio::time::sleep(before).await;
        servers[1].kill();
        while callers.join_next().await.is_some() {}
        let outcomes = std::mem::take(&mut *outcomes.lock().expect("outcomes"));
        let histogram = |filter: &dyn Fn(&Outcome) -> bool| {
            let mut h = Histogram::<u64>::new(3).expect("histogram");
            for o in outcomes.iter().filter(|o| filter(o)) {
                let _ = h.record(o.latency.as_micros() as u64);
            }
            h
        };
        let ms = |us: u64| us as f64 / 1e3;
        let after_kill = |o: &Outcome| o.at >= before;
        let ok_after = histogram(&|o| after_kill(o) && o.ok);
        let ok_before = histogram(&|o| !after_kill(o) && o.ok);
        let calls_after = outcomes.iter().filter(|o| after_kill(o)).count();
        let failed: Vec<&Outcome> = outcomes.iter().filter(|o| after_kill(o) && !o.ok).collect();
        let failing_for = failed
            .iter()
            .map(|o| o.at + o.latency - before)
            .max()
            .unwrap_or_default();
        println!(
            "| {} | {calls_after} | {} ({:.1} %) | {:.2} s | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
            transport,
            failed.len(),
            100.0 * failed.len() as f64 / calls_after.max(1) as f64,
            failing_for.as_secs_f64(),
            ms(ok_after.value_at_quantile(0.5)),
            ms(ok_after.value_at_quantile(0.99)),
            ms(ok_after.max()),
            ms(ok_before.value_at_quantile(0.99)),
        );
    }
    Ok(())
}
