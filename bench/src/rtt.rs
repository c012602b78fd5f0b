//! The round-trip scenarios: S5, S7 and S8 again across the delay-line
//! lab, at each round-trip time in [`RTTS`], where a handshake's round
//! trips and a loss's recovery cost what they cost on a real network.

use std::time::Duration;

use crate::harness::Certificate;
use crate::lossy::{self, Load};
use crate::netns::Lab;
use crate::report::Results;
use crate::scenarios::{Metrics, Scale};
use crate::Stack;

/// The round-trip times the scenarios run at.
pub(crate) const RTTS: [Duration; 2] = [Duration::from_millis(20), Duration::from_millis(80)];

/// New connections timed per stack in S5 at a round trip.
const CONNECTS: usize = 20;

/// S5 at a round trip: new connections, one after another, each timed to
/// the end of its first call.
fn s5(lab: &Lab, stack: Stack, cert: &Certificate, connects: usize) -> Result<Metrics, String> {
    lossy::with_server(stack, cert, |addr| {
        let run = lossy::run_client(
            lab,
            stack,
            addr,
            cert.path(),
            Load {
                per_mille: 0,
                concurrency: 1,
                bulk: false,
                run: Duration::ZERO,
                connects,
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

/// How long each loss run lasts at a round trip: long enough for a few
/// thousand calls at c=16 at 80 ms, so that p99 means something.
fn loss_run(scale: Scale) -> Duration {
    if scale.run < Duration::from_secs(1) {
        Duration::from_secs(2)
    } else {
        scale.run * 4
    }
}

/// Every round-trip scenario the selection `wants` (`S5-RTT`, `S7-RTT`,
/// `S8-RTT`, or `RTT` for the three), at each of [`RTTS`], once per stack
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
            format!("S5 RTT {ms}ms"),
            format!("S7 RTT {ms}ms 1% loss"),
            format!("S8 RTT {ms}ms bulk + unary, 1% loss"),
        ];
        let [s5_wanted, s7_wanted, s8_wanted] =
            ["S5-RTT", "S7-RTT", "S8-RTT"].map(|name| wants(name) || wants("RTT"));
        if !(s5_wanted || s7_wanted || s8_wanted) {
            return;
        }
        let lab = match Lab::with_rtt(rtt) {
            Ok(lab) => lab,
            Err(e) => {
                eprintln!("the {ms} ms round-trip scenarios skipped: {e}");
                for name in &names {
                    results.skip(name, &e);
                }
                continue;
            }
        };
        for &stack in stacks {
            let mut record = |name: &str, measured: Result<Metrics, String>| match measured {
                Ok(metrics) => metrics
                    .into_iter()
                    .for_each(|(metric, value)| results.record(name, metric, stack, value)),
                Err(e) => eprintln!("  {name} {} failed: {e}", stack.name()),
            };
            if s5_wanted {
                eprintln!("{} {}", names[0], stack.name());
                record(&names[0], s5(&lab, stack, cert, CONNECTS));
            }
            if s7_wanted {
                eprintln!("{} {}", names[1], stack.name());
                record(&names[1], lossy::s7(&lab, stack, cert, 10, loss_run(scale)));
            }
            if s8_wanted {
                eprintln!("{} {}", names[2], stack.name());
                record(&names[2], lossy::s8(&lab, stack, cert, loss_run(scale)));
            }
        }
    }
}
