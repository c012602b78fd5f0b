//! The round-trip scenarios: S4, S5, S7 and S8 again across the delay-line
//! lab, at each round-trip time in [`RTTS`], where a handshake's round
//! trips and a loss's recovery cost what they cost on a real network.

use std::time::Duration;

use crate::harness::Certificate;
use crate::lossy::{self, Load, Work};
use crate::netns::Lab;
use crate::report::Results;
use crate::scenarios::{Metrics, Scale};
use crate::Stack;

/// The round-trip times the scenarios run at.
pub(crate) const RTTS: [Duration; 2] = [Duration::from_millis(20), Duration::from_millis(80)];

/// New connections timed per stack in S5 at a round trip.
const CONNECTS: usize = 20;

/// S5 at a round trip: new connections, one after another, each timed to
/// the end of its first call; `resumed`: each resuming the TLS session of
/// an earlier one (grpc-h3 sends the call, idempotent, in 0-RTT).
fn s5(
    lab: &Lab,
    stack: Stack,
    cert: &Certificate,
    connects: usize,
    resumed: bool,
) -> Result<Metrics, String> {
    lossy::with_server(stack, cert, |addr| {
        let run = lossy::run_client(
            lab,
            stack,
            addr,
            cert.path(),
            Load {
                per_mille: 0,
                work: Work::Connects {
                    count: connects,
                    resumed,
                },
                run: Duration::ZERO,
            },
        )?;
        if run.errors > 0 {
            return Err(format!("{} of {connects} connections failed", run.errors));
        }
        let (p50, p99, _) = run.latencies;
        Ok(vec![
            ("connect_and_first_rpc_p50_ms", p50 / 1e3),
            ("connect_and_first_rpc_p99_ms", p99 / 1e3),
        ])
    })
}

/// S4 at a round trip and `per_mille` loss: one download of 1 MiB
/// messages, where the congestion controller sets the pace.
fn s4(
    lab: &Lab,
    stack: Stack,
    cert: &Certificate,
    per_mille: u32,
    run: Duration,
) -> Result<Metrics, String> {
    lossy::with_server(stack, cert, |addr| {
        let load = Load {
            per_mille,
            work: Work::Download,
            run,
        };
        match lossy::run_client_fields(lab, stack, addr, cert.path(), load)?[..] {
            [bytes, seconds] if seconds > 0.0 => Ok(vec![("mb_per_s", bytes / 1e6 / seconds)]),
            ref other => Err(format!("unreadable download result {other:?}")),
        }
    })
}

/// Records what one measurement gave, or reports why it failed.
fn record(results: &mut Results, name: &str, stack: Stack, measured: Result<Metrics, String>) {
    match measured {
        Ok(metrics) => metrics
            .into_iter()
            .for_each(|(metric, value)| results.record(name, metric, stack, value)),
        Err(e) => eprintln!("  {name} {} failed: {e}", stack.name()),
    }
}

/// The bottleneck of the `BOTTLENECK` scenarios: Mbit/s each way.
const BOTTLENECK_MBIT: u32 = 50;
/// Their round trip.
const BOTTLENECK_RTT: Duration = Duration::from_millis(20);

/// S4 and S8 through a bottleneck of [`BOTTLENECK_MBIT`] with a deep
/// buffer (100 ms) at [`BOTTLENECK_RTT`], no random loss: the download's
/// throughput, and how long unary calls wait behind the download's queue
/// (a congestion controller that fills the buffer adds up to 100 ms).
pub(crate) fn bottleneck(
    cert: &Certificate,
    scale: Scale,
    stacks: &[Stack],
    results: &mut Results,
) {
    let (ms, mbit) = (BOTTLENECK_RTT.as_millis(), BOTTLENECK_MBIT);
    let names = [
        format!("S4 RTT {ms}ms {mbit} Mbit/s"),
        format!("S8 RTT {ms}ms {mbit} Mbit/s bulk + unary"),
    ];
    let lab = match Lab::with_rtt(BOTTLENECK_RTT).and_then(|lab| lab.set_rate(mbit).map(|()| lab)) {
        Ok(lab) => lab,
        Err(e) => {
            eprintln!("the bottleneck scenarios skipped: {e}");
            for name in &names {
                results.skip(name, &e);
            }
            return;
        }
    };
    for &stack in stacks {
        let mut record = |name: &str, measured| record(results, name, stack, measured);
        eprintln!("{} {}", names[0], stack.name());
        record(&names[0], s4(&lab, stack, cert, 0, loss_run(scale)));
        eprintln!("{} {}", names[1], stack.name());
        record(&names[1], lossy::s8(&lab, stack, cert, 0, loss_run(scale)));
    }
}

/// How long each loss run lasts at a round trip: long enough for a few
/// thousand calls at c=16 at 80 ms, so that p99 means something.
fn loss_run(scale: Scale) -> Duration {
    if scale.run < Duration::from_secs(1) {
        Duration::from_secs(2)
    } else {
        scale.run * 4
    }
}

/// Every round-trip scenario the selection `wants` (`S4-RTT`, `S5-RTT`,
/// `S7-RTT`, `S8-RTT`, or `RTT` for all), at each of [`RTTS`], once per stack
/// (a repeat at 80 ms takes minutes).
pub(crate) fn run(
    cert: &Certificate,
    scale: Scale,
    stacks: &[Stack],
    wants: &dyn Fn(&str) -> bool,
    results: &mut Results,
) {
    for rtt in RTTS {
        let ms = rtt.as_millis();
        let names = [
            format!("S4 RTT {ms}ms 1% loss"),
            format!("S5 RTT {ms}ms"),
            format!("S7 RTT {ms}ms 1% loss"),
            format!("S8 RTT {ms}ms bulk + unary, 1% loss"),
            format!("S5 RTT {ms}ms 0-RTT"),
        ];
        let wanted =
            ["S4-RTT", "S5-RTT", "S7-RTT", "S8-RTT"].map(|name| wants(name) || wants("RTT"));
        let [s4_wanted, s5_wanted, s7_wanted, s8_wanted] = wanted;
        if !wanted.contains(&true) {
            return;
        }
        let lab = match Lab::with_rtt(rtt) {
            Ok(lab) => lab,
            Err(e) => {
                eprintln!("the {ms} ms round-trip scenarios skipped: {e}");
                for (name, _) in names.iter().zip(wanted).filter(|(_, w)| *w) {
                    results.skip(name, &e);
                }
                if s5_wanted {
                    results.skip(&names[4], &e);
                }
                continue;
            }
        };
        for &stack in stacks {
            let mut record = |name: &str, measured| record(results, name, stack, measured);
            if s4_wanted {
                eprintln!("{} {}", names[0], stack.name());
                record(&names[0], s4(&lab, stack, cert, 10, loss_run(scale)));
            }
            if s5_wanted {
                eprintln!("{} {}", names[1], stack.name());
                record(&names[1], s5(&lab, stack, cert, CONNECTS, false));
                eprintln!("{} {}", names[4], stack.name());
                record(&names[4], s5(&lab, stack, cert, CONNECTS, true));
            }
            if s7_wanted {
                eprintln!("{} {}", names[2], stack.name());
                record(&names[2], lossy::s7(&lab, stack, cert, 10, loss_run(scale)));
            }
            if s8_wanted {
                eprintln!("{} {}", names[3], stack.name());
                record(&names[3], lossy::s8(&lab, stack, cert, 10, loss_run(scale)));
            }
        }
    }
}
