//! The crate's only `unsafe`: reading `CLOCK_MONOTONIC` as nanoseconds, the clock the payload
//! timestamps use (`std::time::Instant` reads the same clock but does not expose its value, and
//! a sender and a receiver in different processes must agree on it).
#![allow(unsafe_code)]

/// `CLOCK_MONOTONIC` in nanoseconds (vDSO, no syscall with the tsc clocksource).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call; the clock id is
    // a constant every Linux kernel has, so the call cannot fail (it would leave `ts` zero).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nsec = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.wrapping_mul(1_000_000_000).wrapping_add(nsec)
}

/// `CLOCK_REALTIME` in nanoseconds since the epoch (the clock of the kernel pktgen's
/// timestamps); 0 for a clock set before 1970.
pub fn realtime_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_monotonic_clock_moves_forward() {
        let a = monotonic_ns();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = monotonic_ns();
        assert!(b >= a + 2_000_000, "{a} -> {b}");
    }
}
