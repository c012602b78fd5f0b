//! A two-host lab for packet-loss scenarios: network namespaces joined by a
//! veth pair, offloads off (one drop is one packet), and nftables dropping
//! a random share of packets on input in both namespaces, so both
//! directions lose. Created and removed by the harness; needs root, `ip`,
//! `ethtool` and `nft` (Debian: `apt-get install iproute2 ethtool nftables`).

use std::process::Command;

pub(crate) const SERVER_NS: &str = "gh3b-srv";
pub(crate) const CLIENT_NS: &str = "gh3b-cli";
pub(crate) const SERVER_IP: &str = "10.203.0.1";
const CLIENT_IP: &str = "10.203.0.2";
const TABLE: &str = "gh3b_loss";

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
pub(crate) struct Lab;

impl Lab {
    pub(crate) fn create() -> Result<Lab, String> {
        for tool in ["ip", "nft", "ethtool"] {
            if Command::new(tool).arg("--version").output().is_err() {
                return Err(format!(
                    "the loss scenarios need `{tool}` (Debian: apt-get install iproute2 ethtool nftables) and root"
                ));
            }
        }
        Lab::remove();
        let lab = Lab;
        run(&["ip", "netns", "add", SERVER_NS])?;
        run(&["ip", "netns", "add", CLIENT_NS])?;
        run(&[
            "ip", "link", "add", "gh3b-s", "type", "veth", "peer", "name", "gh3b-c",
        ])?;
        run(&["ip", "link", "set", "gh3b-s", "netns", SERVER_NS])?;
        run(&["ip", "link", "set", "gh3b-c", "netns", CLIENT_NS])?;
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

    fn remove() {
        // Deleting a namespace deletes its end of the veth pair, and so both.
        for ns in [SERVER_NS, CLIENT_NS] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        Lab::remove();
    }
}
