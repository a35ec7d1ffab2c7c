//! The receiver: reads every frame of a device with AF_XDP (the redirect program of
//! [`AfXdpPort`]) or AF_PACKET (`recvmmsg` batches) and accounts it in [`RxStats`].
//! Busy-polls while frames come, sleeps in `epoll` (1 ms) when idle.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use datapath::buf::RxBatch;
use datapath::port::Port;
use datapath::port::afxdp::{AfXdpOptions, AfXdpPort, MAX_QUEUES};
use datapath::sys::packet::{MmsgSlots, PacketSocket, RecvMeta, SockBuf};
use datapath::sys::poller::Poller;
use datapath::sys::{netdev, xsk};

use crate::stats::RxStats;
use crate::sys::monotonic_ns;

/// How frames are received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxMode {
    /// AF_XDP sockets on every rx queue, redirect program attached.
    Afxdp,
    /// One AF_PACKET socket.
    Afpacket,
}

impl RxMode {
    /// Name as on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Afxdp => "afxdp",
            Self::Afpacket => "afpacket",
        }
    }
}

/// What to receive and when to stop.
#[derive(Debug, Clone)]
pub struct RxOptions {
    /// Device.
    pub dev: String,
    /// Backend; `None`: AF_XDP when it works, else AF_PACKET.
    pub mode: Option<RxMode>,
    /// Longest run.
    pub duration: Duration,
    /// Stop after this many generated frames.
    pub count: Option<u64>,
    /// Stop after this long without frames once something arrived.
    pub idle: Duration,
    /// Called once the sockets are ready (e.g. to print "ready" for a harness).
    pub ready: Option<fn()>,
}

/// What a receive run saw.
#[derive(Debug)]
pub struct RxReport {
    /// Counters.
    pub stats: RxStats,
    /// Seconds from the first to the last generated frame (or the whole run when fewer than
    /// two arrived).
    pub secs: f64,
    /// Backend used.
    pub mode: RxMode,
}

fn us(ns: Option<u64>) -> String {
    ns.map_or_else(|| "0.0".into(), |v| format!("{:.1}", v as f64 / 1000.0))
}

impl RxReport {
    /// Frames per second.
    pub fn pps(&self) -> f64 {
        if self.secs > 0.0 {
            self.stats.received as f64 / self.secs
        } else {
            0.0
        }
    }

    /// The one-line summary or a JSON object with the same keys.
    pub fn summary(&self, json: bool) -> String {
        let s = &self.stats;
        let h = &s.latency;
        let fields: [(&str, String); 14] = [
            ("received", s.received.to_string()),
            ("other", s.other.to_string()),
            ("lost", s.lost().to_string()),
            ("reordered", s.reordered.to_string()),
            ("dup", s.dup.to_string()),
            ("pps", format!("{:.0}", self.pps())),
            ("lat_p50_us", us(h.percentile(0.5))),
            ("lat_p99_us", us(h.percentile(0.99))),
            ("lat_p999_us", us(h.percentile(0.999))),
            ("secs", format!("{:.3}", self.secs)),
            ("flows", s.tuples().to_string()),
            ("vlan", s.tagged.to_string()),
            ("kernel", s.kernel.to_string()),
            ("mode", self.mode.as_str().to_string()),
        ];
        if json {
            let body: Vec<String> = fields
                .iter()
                .map(|(k, v)| {
                    if *k == "mode" {
                        format!("\"{k}\":\"{v}\"")
                    } else {
                        format!("\"{k}\":{v}")
                    }
                })
                .collect();
            format!("{{{}}}", body.join(","))
        } else {
            fields
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        }
    }
}

/// Stop conditions and the span of arrivals.
struct Clock {
    start: u64,
    deadline: u64,
    idle_ns: u64,
    count: u64,
    first: Option<u64>,
    last: u64,
    /// `received` at the last arrival of generated frames.
    seen: u64,
}

impl Clock {
    fn new(o: &RxOptions) -> Self {
        let start = monotonic_ns();
        Self {
            start,
            deadline: start
                .saturating_add(u64::try_from(o.duration.as_nanos()).unwrap_or(u64::MAX)),
            idle_ns: u64::try_from(o.idle.as_nanos()).unwrap_or(u64::MAX),
            count: o.count.unwrap_or(u64::MAX),
            first: None,
            last: start,
            seen: 0,
        }
    }

    /// Notes arrivals of generated frames at `now` (other frames do not count: `secs` is
    /// first to last generated frame) and says whether to stop.
    fn tick(&mut self, now: u64, got: usize, st: &RxStats) -> bool {
        if got > 0 && st.received > self.seen {
            self.seen = st.received;
            self.first.get_or_insert(now);
            self.last = now;
        }
        st.received >= self.count
            || now >= self.deadline
            || (self.first.is_some() && now.saturating_sub(self.last) >= self.idle_ns)
    }

    fn secs(&self) -> f64 {
        let ns = match self.first {
            Some(f) if self.last > f => self.last - f,
            _ => monotonic_ns().saturating_sub(self.start),
        };
        ns as f64 / 1e9
    }
}

/// Receives until a stop condition and returns what was seen.
///
/// # Errors
/// Unknown device, a backend that cannot be opened (explicit `--mode`), or a receive error.
pub fn run(o: &RxOptions) -> Result<RxReport> {
    netdev::ifindex(&o.dev).with_context(|| format!("device {}", o.dev))?;
    match o.mode {
        Some(RxMode::Afpacket) => run_packet(o),
        Some(RxMode::Afxdp) => run_xdp(open_xdp(&o.dev)?, o),
        None => match open_xdp(&o.dev) {
            Ok(p) => run_xdp(p, o),
            Err(e) => {
                eprintln!("pktgen: AF_XDP unavailable ({e:#}); using AF_PACKET");
                run_packet(o)
            }
        },
    }
}

fn open_xdp(dev: &str) -> Result<AfXdpPort> {
    // A frame longer than a UMEM chunk less the kernel's headroom never reaches the socket
    // (nor would its parts be put together here): on a device that carries such frames, say
    // so instead of counting nothing.
    let mtu = netdev::mtu(dev).with_context(|| format!("MTU of {dev}"))?;
    let longest = crate::tx::max_frame_len(mtu, true);
    if longest > xsk::MAX_FRAME_LEN as usize {
        bail!(
            "AF_XDP receives frames of at most {} bytes (a UMEM chunk less the kernel's \
             headroom), and the MTU {mtu} of {dev} lets {longest}-byte frames through: use \
             --mode afpacket, or an MTU of at most {}",
            xsk::MAX_FRAME_LEN,
            xsk::MAX_FRAME_LEN as usize - (longest - mtu as usize)
        );
    }
    let queues = netdev::rx_queue_count(dev)
        .unwrap_or(1)
        .clamp(1, MAX_QUEUES);
    let opts = AfXdpOptions {
        frames: 2048,
        rx_ring: 1024,
        ..AfXdpOptions::default()
    };
    AfXdpPort::open(dev, queues, opts).with_context(|| format!("AF_XDP port on {dev}"))
}

fn run_xdp(mut port: AfXdpPort, o: &RxOptions) -> Result<RxReport> {
    let poller = Poller::new().context("epoll")?;
    let queues = port.rx_queues();
    for q in 0..queues {
        if let Some(fd) = port.rx_fd(q) {
            poller.add(fd, q as u64).context("epoll add")?;
        }
    }
    if let Some(f) = o.ready {
        f();
    }
    let mut st = RxStats::new();
    let mut clock = Clock::new(o);
    let mut batch = RxBatch::new();
    let mut idle = Idle::default();
    loop {
        let mut got = 0;
        for q in 0..queues {
            batch.clear();
            let n = port.rx_burst(q, &mut batch).context("AF_XDP receive")?;
            if n == 0 {
                continue;
            }
            let now = monotonic_ns();
            for d in batch.descs() {
                st.frame(port.frame(d), false, now);
            }
            port.rx_release(q, &batch);
            got += n;
        }
        if clock.tick(monotonic_ns(), got, &st) {
            break;
        }
        idle.after(got, &poller);
    }
    Ok(RxReport {
        secs: clock.secs(),
        stats: st,
        mode: RxMode::Afxdp,
    })
}

/// Back-off of a receive loop: after 1,000 empty polls in a row, each further empty poll waits
/// up to 1 ms for the socket to become readable.
#[derive(Default)]
struct Idle {
    empty: u32,
}

impl Idle {
    fn after(&mut self, received: usize, poller: &Poller) {
        if received > 0 {
            self.empty = 0;
            return;
        }
        self.empty += 1;
        if self.empty > 1000 {
            poller.wait(Duration::from_millis(1));
        }
    }
}

/// Slot size for AF_PACKET receive: the largest frame plus tags.
const SLOT_LEN: usize = 9216;

fn run_packet(o: &RxOptions) -> Result<RxReport> {
    let ifindex = netdev::ifindex(&o.dev).with_context(|| format!("device {}", o.dev))?;
    let s = PacketSocket::open().context("AF_PACKET socket (needs CAP_NET_RAW)")?;
    s.set_auxdata().context("PACKET_AUXDATA")?;
    s.set_ignore_outgoing().ok();
    s.set_buffer(SockBuf::Rcv, 64 << 20).ok();
    s.bind(ifindex).context("bind AF_PACKET socket")?;
    let poller = Poller::new().context("epoll")?;
    poller
        .add(std::os::fd::AsRawFd::as_raw_fd(&s), 0)
        .context("epoll add")?;
    if let Some(f) = o.ready {
        f();
    }
    const N: usize = 64;
    let mut slots = MmsgSlots::new(N, SLOT_LEN, 0);
    let ids: [u16; N] = std::array::from_fn(|i| i as u16);
    let mut meta = [RecvMeta::default(); N];
    let mut st = RxStats::new();
    let mut clock = Clock::new(o);
    let mut idle = Idle::default();
    loop {
        let n = slots
            .recv(&s, &ids, &mut meta)
            .context("AF_PACKET receive (recvmmsg)")?;
        if n > 0 {
            let now = monotonic_ns();
            for (k, m) in meta.iter().enumerate().take(n) {
                let len = (m.len as usize).min(SLOT_LEN);
                let frame = slots.slot(k).map_or(&[][..], |sl| &sl[..len]);
                st.frame(frame, m.vlan.is_some(), now);
            }
        }
        if clock.tick(monotonic_ns(), n, &st) {
            break;
        }
        idle.after(n, &poller);
    }
    Ok(RxReport {
        secs: clock.secs(),
        stats: st,
        mode: RxMode::Afpacket,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_frames_after_the_traffic_do_not_stretch_secs() {
        // docs/pktgen.md: "`secs`: first to last generated frame; `pps = received / secs`".
        let o = RxOptions {
            dev: "unused".into(),
            mode: None,
            duration: Duration::from_secs(100),
            count: None,
            idle: Duration::from_secs(1),
            ready: None,
        };
        let mut c = Clock::new(&o);
        let t0 = c.start;
        let mut st = RxStats::new();
        // Generated frames at +1 s and +2 s.
        st.received = 100;
        assert!(!c.tick(t0 + 1_000_000_000, 100, &st));
        st.received = 200;
        assert!(!c.tick(t0 + 2_000_000_000, 100, &st));
        // Then only foreign frames (ARP, LLDP, other hosts' traffic), every 0.9 s.
        for k in 1..=5u64 {
            st.other += 1;
            let _ = c.tick(t0 + 2_000_000_000 + k * 900_000_000, 1, &st);
        }
        assert!((c.secs() - 1.0).abs() < 1e-9, "secs {}", c.secs());
    }
}
