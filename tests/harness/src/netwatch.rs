//! Watches the sockets of the control plane's processes and records every one whose remote end
//! is not a loopback address (`logs/non-loopback.log`). The loopback-only test fails on any line.
//!
//! Sampling reads `/proc/<pid>/fd` and `/proc/net/tcp{,6}`; a connection attempt that fails
//! before a socket is ever listed can slip between two samples, which is why the egress proxy's
//! own log (every CONNECT, mapped or refused) is the exhaustive half of the proof.

use std::collections::{BTreeSet, HashSet};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One socket seen in `/proc/net/tcp*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    pub remote: String,
    pub remote_is_loopback_or_unset: bool,
    pub inode: u64,
}

/// Parses `/proc/net/tcp` or `/proc/net/tcp6` text.
pub fn parse_proc_net_tcp(text: &str) -> Vec<Socket> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let remote = *cols.get(2)?;
            let inode = cols.get(9)?.parse().ok()?;
            let (addr, port) = remote.split_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            let (text, quiet) = decode_address(addr)?;
            Some(Socket { remote: format!("{text}:{port}"), remote_is_loopback_or_unset: quiet, inode })
        })
        .collect()
}

/// `(printable address, loopback or unset)` from the kernel's little-endian-per-word hex.
fn decode_address(hex: &str) -> Option<(String, bool)> {
    let bytes: Vec<u8> =
        (0..hex.len() / 2).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)).collect::<Result<_, _>>().ok()?;
    // Each 32-bit word is stored in host (little-endian) order.
    let ordered: Vec<u8> = bytes.chunks(4).flat_map(|w| w.iter().rev().copied()).collect();
    match ordered.len() {
        4 => {
            let ip = std::net::Ipv4Addr::new(ordered[0], ordered[1], ordered[2], ordered[3]);
            Some((ip.to_string(), ip.is_loopback() || ip.is_unspecified()))
        }
        16 => {
            let array: [u8; 16] = ordered.try_into().ok()?;
            let ip = std::net::Ipv6Addr::from(array);
            let v4_loopback = ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback() || v4.is_unspecified());
            Some((ip.to_string(), ip.is_loopback() || ip.is_unspecified() || v4_loopback))
        }
        _ => None,
    }
}

fn socket_inodes(pid: u32) -> HashSet<u64> {
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/fd")) else { return HashSet::new() };
    entries
        .flatten()
        .filter_map(|e| fs::read_link(e.path()).ok())
        .filter_map(|link| {
            let text = link.to_string_lossy().into_owned();
            text.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// Samples forever: the pids in `pids_file` plus those `extra` returns.
pub fn watch(pids_file: PathBuf, log: PathBuf, extra: impl Fn() -> Vec<u32> + Send + 'static) {
    std::thread::spawn(move || {
        let mut seen = BTreeSet::new();
        loop {
            let mut pids: Vec<u32> = fs::read_to_string(&pids_file)
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect();
            pids.extend(extra());
            pids.push(std::process::id());
            sample(&pids, &log, &mut seen);
            std::thread::sleep(Duration::from_millis(250));
        }
    });
}

fn sample(pids: &[u32], log: &Path, seen: &mut BTreeSet<String>) {
    let mut sockets = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        sockets.extend(parse_proc_net_tcp(&fs::read_to_string(file).unwrap_or_default()));
    }
    let outside: Vec<&Socket> = sockets.iter().filter(|s| !s.remote_is_loopback_or_unset).collect();
    if outside.is_empty() {
        return;
    }
    for &pid in pids {
        let inodes = socket_inodes(pid);
        for socket in outside.iter().filter(|s| inodes.contains(&s.inode)) {
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let line = format!("pid {pid} ({}) connected to {}", comm.trim(), socket.remote);
            if seen.insert(line.clone())
                && let Ok(mut f) = OpenOptions::new().create(true).append(true).open(log)
            {
                let _ = writeln!(f, "{line}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_loopback_from_everything_else() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
                  0: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 1111 1\n\
                  1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2222 1\n\
                  2: 0100007F:9C40 9100000A:01BB 02 00000000:00000000 00:00000000 00000000     0        0 3333 1\n";
        let sockets = parse_proc_net_tcp(v4);
        assert_eq!(sockets.len(), 3);
        assert!(sockets[0].remote_is_loopback_or_unset && sockets[0].remote == "127.0.0.1:54321");
        assert!(sockets[1].remote_is_loopback_or_unset, "listening");
        assert_eq!(sockets[2].remote, "10.0.0.145:443");
        assert!(!sockets[2].remote_is_loopback_or_unset);
        let v6 = "header\n 0: 00000000000000000000000001000000:1F90 00000000000000000000000001000000:D431 01 0 0 0 0 0 0 4444 1\n \
                  1: 00000000000000000000000001000000:1F90 0000000000000000FFFF00000100007F:D431 01 0 0 0 0 0 0 5555 1\n \
                  2: 00000000000000000000000001000000:1F90 0000000000000000FFFF00009100000A:01BB 01 0 0 0 0 0 0 6666 1\n";
        let sockets = parse_proc_net_tcp(v6);
        assert!(sockets[0].remote_is_loopback_or_unset && sockets[1].remote_is_loopback_or_unset);
        assert!(!sockets[2].remote_is_loopback_or_unset, "{:?}", sockets[2]);
    }
}
