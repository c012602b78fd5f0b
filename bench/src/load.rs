//! Load generation: closed loop (fixed concurrency) and open loop (fixed
//! rate, latency measured from each call's intended start, so a stalled
//! server is not hidden by a stalled generator: coordinated omission).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;

use crate::client::Client;

/// Latencies (µs) and counts of one run.
pub(crate) struct LoadResult {
    pub(crate) latency_us: Histogram<u64>,
    pub(crate) calls: u64,
    pub(crate) errors: u64,
    pub(crate) elapsed: Duration,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

impl LoadResult {
    pub(crate) fn qps(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64()
    }

    pub(crate) fn percentile_us(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64
    }
}

/// `concurrency` workers calling back to back for `duration`, spread over
/// the clients round-robin.
pub(crate) async fn closed_loop(
    clients: &[Client],
    concurrency: usize,
    duration: Duration,
    body: Bytes,
) -> LoadResult {
    let start = Instant::now();
    let deadline = start + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|i| {
            let client = clients[i % clients.len()].clone();
            let body = body.clone();
            tokio::spawn(async move {
                let mut hist = histogram();
                let (mut calls, mut errors) = (0u64, 0u64);
                while Instant::now() < deadline {
                    let t0 = Instant::now();
                    match client.unary(&body).await {
                        Ok(()) => {
                            calls += 1;
                            let _ = hist.record(t0.elapsed().as_micros() as u64);
                        }
                        Err(_) => errors += 1,
                    }
                }
                (hist, calls, errors)
            })
        })
        .collect();
    let mut result = LoadResult {
        latency_us: histogram(),
        calls: 0,
        errors: 0,
        elapsed: Duration::ZERO,
    };
    for worker in workers {
        let (hist, calls, errors) = worker.await.expect("worker");
        let _ = result.latency_us.add(hist);
        result.calls += calls;
        result.errors += errors;
    }
    result.elapsed = start.elapsed();
    result
}

/// Calls at `rate` per second for `duration`, each on its own task.
pub(crate) async fn open_loop(
    client: &Client,
    rate: f64,
    duration: Duration,
    body: Bytes,
) -> LoadResult {
    let hist = Arc::new(Mutex::new(histogram()));
    let errors = Arc::new(Mutex::new(0u64));
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let mut tasks = Vec::new();
    let mut k = 0u32;
    loop {
        let intended = start + interval * k;
        if intended >= start + duration {
            break;
        }
        tokio::time::sleep_until(intended.into()).await;
        let (client, body, hist, errors) =
            (client.clone(), body.clone(), hist.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            match client.unary(&body).await {
                Ok(()) => {
                    let _ = hist
                        .lock()
                        .expect("hist")
                        .record(intended.elapsed().as_micros() as u64);
                }
                Err(_) => *errors.lock().expect("errors") += 1,
            }
        }));
        k += 1;
    }
    for task in tasks {
        let _ = task.await;
    }
    let latency_us = hist.lock().expect("hist").clone();
    let errors = *errors.lock().expect("errors");
    LoadResult {
        calls: latency_us.len(),
        latency_us,
        errors,
        elapsed: start.elapsed(),
    }
}
