//! Fallback: the time to a first successful call when the server's UDP
//! port does not answer (a network that drops UDP), for grpc-h3 choosing
//! its transport by itself, grpc-h3 on HTTP/3 only, and tonic (HTTP/2
//! only). The server is grpc-h3's, serving HTTP/2 with TLS and no HTTP/3.

use std::time::{Duration, Instant};

use crate::client::Client;
use crate::harness::{Certificate, ServerProcess};
use crate::scenarios::{small, LOCALHOST};
use crate::Stack;

/// Connect + first call, `samples` times each; prints a table.
pub(crate) async fn run(samples: usize) -> Result<(), String> {
    let cert = Certificate::generate()?;
    let server = ServerProcess::start(
        Stack::GrpcH3H2,
        &cert,
        LOCALHOST.parse().expect("addr"),
        None,
        None,
    )?;
    let addr = server.addr;
    let connect_timeout = Duration::from_secs(20);

    // The first automatic channel of the process races: QUIC alone for
    // the race delay, then TCP.
    let t0 = Instant::now();
    let (client, channel) = Client::automatic(addr, &cert.cert_pem, None, connect_timeout)?;
    client.unary(&small()).await?;
    let first_race = t0.elapsed();
    let chosen = channel.current_transport();

    // Later channels: HTTP/3 is remembered as broken for this address.
    let mut remembered = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t0 = Instant::now();
        let (client, _) = Client::automatic(addr, &cert.cert_pem, None, connect_timeout)?;
        client.unary(&small()).await?;
        remembered.push(t0.elapsed());
    }
    let mut tonic = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t0 = Instant::now();
        let client = Client::connect(Stack::Tonic, addr, &cert.cert_pem).await?;
        client.unary(&small()).await?;
        tonic.push(t0.elapsed());
    }
    // HTTP/3 only: nothing but the connect timeout ends the wait.
    let t0 = Instant::now();
    let (client, _) = Client::automatic(
        addr,
        &cert.cert_pem,
        Some(grpc_h3::Transport::Http3),
        connect_timeout,
    )?;
    let http3_only = client.unary(&small()).await;
    let http3_only_time = t0.elapsed();

    let median = |times: &mut Vec<Duration>| {
        times.sort();
        times[times.len() / 2].as_secs_f64() * 1e3
    };
    let tonic_ms = median(&mut tonic);
    println!("| client (server: HTTP/2 + TLS, UDP port silent) | connect + first call | ratio to tonic |");
    println!("|---|---:|---:|");
    println!(
        "| grpc-h3 automatic, first channel of the process (race delay 300 ms) | {:.1} ms ({}) | {:.2} |",
        first_race.as_secs_f64() * 1e3,
        chosen.map_or("none", |t| t.as_str()),
        first_race.as_secs_f64() * 1e3 / tonic_ms
    );
    let remembered_ms = median(&mut remembered);
    println!(
        "| grpc-h3 automatic, later channels (HTTP/3 remembered broken), p50 of {samples} | {remembered_ms:.2} ms | {:.2} |",
        remembered_ms / tonic_ms
    );
    println!("| tonic (HTTP/2 only), p50 of {samples} | {tonic_ms:.2} ms | 1.00 |");
    println!(
        "| grpc-h3 HTTP/3 only | {} after {:.1} s | n/a |",
        match http3_only {
            Ok(()) => "succeeded (unexpected)".to_owned(),
            Err(e) => format!("failed: {}", e.lines().next().unwrap_or_default()),
        },
        http3_only_time.as_secs_f64()
    );
    Ok(())
}
