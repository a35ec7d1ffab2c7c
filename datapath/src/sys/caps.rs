//! The process's effective capabilities, read from `/proc/self/status` (no system call of its
//! own, no `unsafe`): what vswitchd needs to start, and whether it may load XDP programs.
//!
//! | capability | needed for |
//! |---|---|
//! | `CAP_NET_ADMIN` | tap devices, links up, socket buffers beyond the sysctl limits, attaching XDP |
//! | `CAP_NET_RAW` | AF_PACKET and AF_XDP sockets |
//! | `CAP_BPF` (or `CAP_SYS_ADMIN`) | AF_XDP ports only: their XSKMAP and XDP program |
//!
//! Kernels before 5.8 have no `CAP_BPF` (root's set there ends at bit 37): `CAP_SYS_ADMIN`
//! stands in for it, as the kernel itself lets it.

use std::io;

/// A capability: its bit in `CapEff` and its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap {
    /// Bit number (`linux/capability.h`).
    pub bit: u32,
    /// Name as in `capabilities(7)`.
    pub name: &'static str,
}

/// `CAP_NET_ADMIN`.
pub const NET_ADMIN: Cap = Cap {
    bit: 12,
    name: "CAP_NET_ADMIN",
};
/// `CAP_NET_RAW`.
pub const NET_RAW: Cap = Cap {
    bit: 13,
    name: "CAP_NET_RAW",
};
/// `CAP_SYS_ADMIN`.
pub const SYS_ADMIN: Cap = Cap {
    bit: 21,
    name: "CAP_SYS_ADMIN",
};
/// `CAP_BPF` (Linux 5.8 and later).
pub const BPF: Cap = Cap {
    bit: 39,
    name: "CAP_BPF",
};

/// What the daemon needs whatever its ports: tap devices, links and packet sockets.
pub const NEEDED: [Cap; 2] = [NET_ADMIN, NET_RAW];

/// The effective capability set of a `/proc/PID/status` text.
///
/// # Errors
/// `InvalidData` when the text has no parsable `CapEff:` line.
pub fn parse_effective(status: &str) -> io::Result<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no CapEff line"))
}

/// This process's effective capability set.
///
/// # Errors
/// `/proc/self/status` unreadable or without a `CapEff:` line.
pub fn effective() -> io::Result<u64> {
    parse_effective(&std::fs::read_to_string("/proc/self/status")?)
}

/// True when `set` holds `cap`.
pub fn has(set: u64, cap: Cap) -> bool {
    cap.bit < 64 && set & (1u64 << cap.bit) != 0
}

/// The capabilities of `NEEDED` missing from `set`.
pub fn missing(set: u64) -> Vec<Cap> {
    NEEDED.iter().copied().filter(|c| !has(set, *c)).collect()
}

/// True when `set` may create BPF maps and load XDP programs: `CAP_BPF`, or `CAP_SYS_ADMIN`
/// (which also covers kernels before 5.8).
pub fn may_load_bpf(set: u64) -> bool {
    has(set, BPF) || has(set, SYS_ADMIN)
}

/// True when this process may load XDP programs (an unreadable set counts as yes: the
/// kernel's own answer then decides).
pub fn process_may_load_bpf() -> bool {
    effective().map_or(true, may_load_bpf)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT_618: &str = "Name:\tvswitchd\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\n";

    #[test]
    fn root_has_everything() {
        let set = parse_effective(ROOT_618).unwrap();
        assert!(missing(set).is_empty());
        assert!(may_load_bpf(set));
    }

    #[test]
    fn without_bpf_and_sys_admin_packet_sockets_remain() {
        // `setpriv --bounding-set=-bpf,-sys_admin` as root on 6.18.
        let set = parse_effective("CapEff:\t0000017ffedfffff\n").unwrap();
        assert!(missing(set).is_empty());
        assert!(!may_load_bpf(set));
    }

    #[test]
    fn a_kernel_before_5_8_has_no_cap_bpf_but_sys_admin_stands_in() {
        // Root on 5.4: bits 0..=37.
        let set = parse_effective("CapEff:\t0000003fffffffff\n").unwrap();
        assert!(!has(set, BPF));
        assert!(may_load_bpf(set));
        assert!(missing(set).is_empty());
    }

    #[test]
    fn an_unprivileged_user_lacks_both_needed() {
        let set = parse_effective("CapEff:\t0000000000000000\n").unwrap();
        assert_eq!(missing(set), vec![NET_ADMIN, NET_RAW]);
        assert!(!may_load_bpf(set));
    }

    #[test]
    fn a_status_without_cap_eff_is_an_error() {
        assert!(parse_effective("Name:\tx\n").is_err());
        assert!(parse_effective("CapEff:\tzz\n").is_err());
    }

    #[test]
    fn this_process_can_be_read() {
        effective().unwrap();
    }
}
