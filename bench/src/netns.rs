//! A two-host lab for packet-loss scenarios: network namespaces joined by a
//! veth pair, offloads off (one drop is one packet), and nftables dropping
//! a random share of packets on input in both namespaces, so both
//! directions lose. With a round-trip time, the namespaces are joined by
//! two TUN devices and a [delay line](crate::delay) instead of the veth
//! pair. Created and removed by the harness; needs root, `ip`, `ethtool`
//! and `nft` (Debian: `apt-get install iproute2 ethtool nftables`), and
//! `ping` (iputils-ping) to check a round-trip time.

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::delay::{self, DelayLine};

pub(crate) const SERVER_NS: &str = "gh3b-srv";
pub(crate) const CLIENT_NS: &str = "gh3b-cli";
pub(crate) const SERVER_IP: &str = "10.203.0.1";
const CLIENT_IP: &str = "10.203.0.2";
const TABLE: &str = "gh3b_loss";

/// The TCP congestion controller the lab's namespaces use, if the run
/// chose one (otherwise they inherit the host's).
static TCP_CONGESTION: OnceLock<String> = OnceLock::new();

/// Makes every lab from now on use `controller` for TCP (a name from
/// `net.ipv4.tcp_available_congestion_control`, e.g. cubic or bbr).
pub(crate) fn set_tcp_congestion(controller: String) {
    let _ = TCP_CONGESTION.set(controller);
}

fn run(args: &[&str]) -> Result<(), String> {
    let output = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("running {}: {e}", args.join(" ")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// The two namespaces; removed when dropped.
pub(crate) struct Lab {
    /// Forwards between the namespaces when they are joined by TUN devices.
    delay: Option<DelayLine>,
}

impl Lab {
    /// The namespaces joined by a veth pair: a round trip of microseconds.
    pub(crate) fn create() -> Result<Lab, String> {
        Lab::build(None)
    }

    /// The namespaces joined by a delay line: a round trip of `rtt`, half
    /// of it in each direction. The measured ping time is checked against
    /// it.
    pub(crate) fn with_rtt(rtt: Duration) -> Result<Lab, String> {
        let lab = Lab::build(Some(rtt))?;
        let measured = lab.ping_rtt()?;
        if measured < rtt || measured > rtt + rtt / 4 + Duration::from_millis(2) {
            return Err(format!(
                "the delay line should give a round trip of {rtt:?}, ping measured {measured:?}"
            ));
        }
        let tcp = Command::new("ip")
            .args(["netns", "exec", SERVER_NS, "sysctl", "-n"])
            .arg("net.ipv4.tcp_congestion_control")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        eprintln!(
            "lab round trip: {rtt:?} asked, {measured:?} measured by ping; TCP congestion control {tcp}"
        );
        Ok(lab)
    }

    fn build(rtt: Option<Duration>) -> Result<Lab, String> {
        for tool in ["ip", "nft", "ethtool"] {
            if Command::new(tool).arg("--version").output().is_err() {
                return Err(format!(
                    "the loss scenarios need `{tool}` (Debian: apt-get install iproute2 ethtool nftables) and root"
                ));
            }
        }
        Lab::remove();
        let mut lab = Lab { delay: None };
        run(&["ip", "netns", "add", SERVER_NS])?;
        run(&["ip", "netns", "add", CLIENT_NS])?;
        match rtt {
            None => {
                run(&[
                    "ip", "link", "add", "gh3b-s", "type", "veth", "peer", "name", "gh3b-c",
                ])?;
                run(&["ip", "link", "set", "gh3b-s", "netns", SERVER_NS])?;
                run(&["ip", "link", "set", "gh3b-c", "netns", CLIENT_NS])?;
            }
            Some(rtt) => {
                for (ns, dev) in [(SERVER_NS, "gh3b-s"), (CLIENT_NS, "gh3b-c")] {
                    run(&["ip", "-n", ns, "tuntap", "add", "dev", dev, "mode", "tun"])?;
                }
                let server = delay::open_tun(SERVER_NS, "gh3b-s")?;
                let client = delay::open_tun(CLIENT_NS, "gh3b-c")?;
                lab.delay = Some(DelayLine::start(server, client, rtt / 2)?);
            }
        }
        for (ns, dev, ip) in [
            (SERVER_NS, "gh3b-s", SERVER_IP),
            (CLIENT_NS, "gh3b-c", CLIENT_IP),
        ] {
            run(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{ip}/30"),
                "dev",
                dev,
            ])?;
            run(&["ip", "-n", ns, "link", "set", dev, "up"])?;
            if let Some(controller) = TCP_CONGESTION.get() {
                run(&[
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    "sysctl",
                    "-q",
                    "-w",
                    &format!("net.ipv4.tcp_congestion_control={controller}"),
                ])
                .map_err(|e| {
                    format!(
                        "{e} (a namespace may choose only controllers the host lists in \
                         net.ipv4.tcp_allowed_congestion_control; add {controller} there)"
                    )
                })?;
            }
            run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
            // One drop must be one packet: no segmentation or receive
            // coalescing offloads on either end.
            run(&[
                "ip", "netns", "exec", ns, "ethtool", "-K", dev, "tso", "off", "gso", "off", "gro",
                "off",
            ])?;
            run(&[
                "ip", "netns", "exec", ns, "nft", "add", "table", "inet", TABLE,
            ])?;
            run(&[
                "ip",
                "netns",
                "exec",
                ns,
                "nft",
                "add",
                "chain",
                "inet",
                TABLE,
                "input",
                "{ type filter hook input priority 0; }",
            ])?;
        }
        Ok(lab)
    }

    /// Drops `per_mille` out of every thousand packets in each direction
    /// (0 turns loss off).
    pub(crate) fn set_loss(&self, per_mille: u32) -> Result<(), String> {
        for ns in [SERVER_NS, CLIENT_NS] {
            run(&[
                "ip", "netns", "exec", ns, "nft", "flush", "chain", "inet", TABLE, "input",
            ])?;
            if per_mille > 0 {
                run(&[
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    "nft",
                    "add",
                    "rule",
                    "inet",
                    TABLE,
                    "input",
                    "numgen",
                    "random",
                    "mod",
                    "1000",
                    "<",
                    &per_mille.to_string(),
                    "drop",
                ])?;
            }
        }
        Ok(())
    }

    /// Limits each direction to `mbit` Mbit/s: a token bucket (tc tbf) on
    /// each namespace's device, queueing up to 100 ms of traffic before it
    /// drops, like a bottleneck link with a deep buffer.
    pub(crate) fn set_rate(&self, mbit: u32) -> Result<(), String> {
        for (ns, dev) in [(SERVER_NS, "gh3b-s"), (CLIENT_NS, "gh3b-c")] {
            run(&[
                "ip",
                "netns",
                "exec",
                ns,
                "tc",
                "qdisc",
                "replace",
                "dev",
                dev,
                "root",
                "tbf",
                "rate",
                &format!("{mbit}mbit"),
                "burst",
                "32kb",
                "latency",
                "100ms",
            ])?;
        }
        Ok(())
    }

    /// The average round trip `ping` measures from the client namespace
    /// to the server.
    fn ping_rtt(&self) -> Result<Duration, String> {
        let output = Command::new("ip")
            .args([
                "netns", "exec", CLIENT_NS, "ping", "-q", "-c", "5", "-i", "0.2",
            ])
            .arg(SERVER_IP)
            .output()
            .map_err(|e| format!("running ping (Debian: apt-get install iputils-ping): {e}"))?;
        let text = String::from_utf8_lossy(&output.stdout);
        // "rtt min/avg/max/mdev = 20.1/20.2/20.4/0.1 ms"
        text.lines()
            .find_map(|line| line.split(" = ").nth(1))
            .and_then(|values| values.split('/').nth(1))
            .and_then(|avg| avg.parse::<f64>().ok())
            .map(|ms| Duration::from_secs_f64(ms / 1e3))
            .ok_or_else(|| format!("ping to {SERVER_IP} across the lab failed: {text}"))
    }

    fn remove() {
        // Deleting a namespace deletes its end of the veth pair, and so both.
        for ns in [SERVER_NS, CLIENT_NS] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // The delay line holds the TUN devices open: close them first.
        self.delay = None;
        Lab::remove();
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::time::{Duration, Instant};

    use super::{Lab, CLIENT_IP, CLIENT_NS, SERVER_IP, SERVER_NS};
    use crate::delay::in_namespace;

    /// Datagrams across the delay line arrive complete, in order, and none
    /// sooner than the one-way delay. Needs root, iproute2 and a TUN device
    /// (`.ci/run` runs as root and installs iproute2).
    #[test]
    fn the_delay_line_delays_every_packet_and_keeps_their_order() {
        let rtt = Duration::from_millis(30);
        let one_way = rtt / 2;
        let _lab = Lab::build(Some(rtt)).expect("the lab (needs root, iproute2 and /dev/net/tun)");
        let server =
            in_namespace(SERVER_NS, || UdpSocket::bind((SERVER_IP, 0))).expect("server socket");
        let client =
            in_namespace(CLIENT_NS, || UdpSocket::bind((CLIENT_IP, 0))).expect("client socket");
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let to = server.local_addr().expect("address");
        const COUNT: u32 = 40;
        // Arrivals are timed by a thread of their own while the datagrams
        // are still being sent.
        let receiver = std::thread::spawn(move || {
            let mut buffer = [0u8; 16];
            (0..COUNT)
                .map(|_| {
                    let (n, _) = server
                        .recv_from(&mut buffer)
                        .expect("every datagram arrives");
                    let sequence = u32::from_be_bytes(buffer[..n].try_into().expect("four bytes"));
                    (sequence, Instant::now())
                })
                .collect::<Vec<_>>()
        });
        let mut sent = Vec::new();
        for sequence in 0..COUNT {
            sent.push(Instant::now());
            client.send_to(&sequence.to_be_bytes(), to).expect("send");
            std::thread::sleep(Duration::from_millis(1));
        }
        let arrivals = receiver.join().expect("the receiver");
        for (expected, (sequence, arrived)) in arrivals.into_iter().enumerate() {
            assert_eq!(
                sequence as usize, expected,
                "datagrams arrive in the order sent"
            );
            let took = arrived - sent[expected];
            assert!(
                took >= one_way,
                "datagram {sequence} arrived after {took:?}, sooner than the one-way delay {one_way:?}"
            );
        }
    }
}
