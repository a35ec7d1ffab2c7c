//! The sender: one thread per socket, each with its own stream id, sequence numbers, pacer
//! and quota; frames come from a shared [`Template`].
//!
//! - AF_XDP: one XSK (copy mode on veth) per thread, thread `i` on queue `i`; frames are copied
//!   into tx chunks, published in batches and kicked with `sendto(MSG_DONTWAIT)` until the
//!   kernel consumed them (copy mode moves at most 32 per kick). A kick that moves nothing
//!   (`EAGAIN`/`EBUSY`/`ENOBUFS`, or no progress) is counted in `eagain` and retried later.
//! - AF_PACKET: one socket per thread with `PACKET_QDISC_BYPASS`, frames written in place into
//!   a block of slots and sent with one `sendmmsg` per batch; a full device (`EAGAIN`,
//!   `ENOBUFS`) is counted and retried.
//! - AF_PACKET TX ring: the same sockets, each with an mmap'ed `PACKET_TX_RING`
//!   ([`TxRing`]); frames written in place into ring slots, one `send(MSG_DONTWAIT)` kick per
//!   batch, slots reclaimed (and counted sent) when the kernel marks them available again.
//! - kernel: drives `/proc/net/pktgen` where the kernel has it.
//! - xdplive: the kernel sends: an XDP program run by `BPF_PROG_TEST_RUN` with live frames
//!   redirects copies of flow 0's frame out of the device, rewriting the UDP source port, the
//!   sequence number and timestamp (and the checksum) for each frame; no socket, no skb on the sending side (the private `live` module).

use std::io;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use datapath::sys::netdev;
use datapath::sys::packet::{MmsgSlots, PacketSocket, SockBuf};
use datapath::sys::tpacket::{RingGeometry, TxRing};
use datapath::sys::xsk::{self, Xsk, XskConfig};

use crate::frame::{Cursor, Template};
use crate::pace::Pacer;
use crate::sys::monotonic_ns;

/// Frames queued per batch (per clock read, per pacer call).
pub const BATCH: usize = 64;
/// Frames queued per AF_XDP batch: half the TX ring, so one kick (with a raised budget) moves
/// them all while the kernel still completes the previous batch's chunks.
const XDP_BATCH: u64 = 256;
/// How long a sender keeps retrying to push out what it queued after its deadline.
const DRAIN_NS: u64 = 1_000_000_000;

/// How frames are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// AF_XDP sockets.
    Afxdp,
    /// AF_PACKET sockets with `sendmmsg`.
    Afpacket,
    /// AF_PACKET sockets with an mmap'ed `PACKET_TX_RING`.
    Txring,
    /// The kernel's pktgen (`/proc/net/pktgen`).
    Kernel,
    /// An XDP program sending from inside the kernel (`BPF_PROG_TEST_RUN`, live frames).
    Xdplive,
}

impl Mode {
    /// Name as on the command line and in the summary.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Afxdp => "afxdp",
            Self::Afpacket => "afpacket",
            Self::Txring => "txring",
            Self::Kernel => "kernel",
            Self::Xdplive => "xdplive",
        }
    }
}

/// What to send, how and for how long.
#[derive(Debug, Clone)]
pub struct TxOptions {
    /// Device to send on.
    pub dev: String,
    /// Backend; `None`: AF_XDP when it works, else AF_PACKET.
    pub mode: Option<Mode>,
    /// Sending threads (sockets).
    pub threads: usize,
    /// Frames to send in total; `None`: until the duration is over.
    pub count: Option<u64>,
    /// Longest run.
    pub duration: Duration,
    /// Frames per second in total; `None`: as fast as possible.
    pub rate: Option<u64>,
    /// Pick flows pseudo-randomly instead of in order.
    pub random: bool,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct TxReport {
    /// Frames the kernel took (AF_XDP: consumed from the TX ring; `sendmmsg`: accepted; TX
    /// ring: reported sent, slot status back to available).
    pub sent: u64,
    /// Seconds from start to the last thread's end.
    pub secs: f64,
    /// Kicks/sends that moved nothing and were retried.
    pub eagain: u64,
    /// Backend used.
    pub mode: Mode,
    /// Threads used.
    pub threads: usize,
}

impl TxReport {
    /// Frames per second.
    pub fn pps(&self) -> f64 {
        if self.secs > 0.0 {
            self.sent as f64 / self.secs
        } else {
            0.0
        }
    }

    /// The one-line summary (`key=value`, space separated) or a JSON object with the same keys.
    pub fn summary(&self, json: bool) -> String {
        if json {
            format!(
                "{{\"sent\":{},\"secs\":{:.3},\"pps\":{:.0},\"eagain\":{},\"mode\":\"{}\",\"threads\":{}}}",
                self.sent,
                self.secs,
                self.pps(),
                self.eagain,
                self.mode.as_str(),
                self.threads
            )
        } else {
            format!(
                "sent={} secs={:.3} pps={:.0} eagain={} mode={} threads={}",
                self.sent,
                self.secs,
                self.pps(),
                self.eagain,
                self.mode.as_str(),
                self.threads
            )
        }
    }
}

/// Share `i` of `total` split over `n` (the first `total % n` get one more).
fn share(total: u64, n: usize, i: usize) -> u64 {
    let n = n as u64;
    total / n + u64::from((i as u64) < total % n)
}

/// The high byte of this run's stream ids: differs between runs (process id and clock), so a
/// receiver that sees two runs keeps their sequence numbers apart.
fn run_nonce() -> u16 {
    let x = u64::from(std::process::id()) ^ monotonic_ns().rotate_left(17);
    let b = (x ^ (x >> 8) ^ (x >> 16) ^ (x >> 24) ^ (x >> 32)) as u8;
    u16::from(b) << 8
}

/// One thread's part of the run.
#[derive(Debug, Clone)]
struct Part {
    cursor: Cursor,
    count: Option<u64>,
    rate: Option<u64>,
    duration_ns: u64,
}

/// Counters of one thread.
#[derive(Debug, Default, Clone, Copy)]
struct Done {
    sent: u64,
    eagain: u64,
}

/// A socket ready to send.
enum Sender {
    Xdp(Box<Xsk>),
    Packet(Box<PacketSocket>),
    Ring(Box<TxRing>),
}

/// Runs a transmission and returns its summary.
///
/// # Errors
/// Unknown device, a backend that cannot be opened (explicit `--mode`), or a send error other
/// than a full device.
pub fn run(opts: &TxOptions, template: &Arc<Template>) -> Result<TxReport> {
    let ifindex = netdev::ifindex(&opts.dev).with_context(|| format!("device {}", opts.dev))?;
    if opts.mode == Some(Mode::Kernel) {
        return kernel::run(opts, template);
    }
    check_mtu(&opts.dev, template)?;
    if opts.mode == Some(Mode::Xdplive) {
        return live::run(opts, template, ifindex);
    }
    let want = opts.threads.max(1);
    let (mode, senders) = match opts.mode {
        Some(Mode::Afpacket) => (Mode::Afpacket, open_packet(ifindex, want)?),
        Some(Mode::Txring) => (Mode::Txring, open_ring(ifindex, want, template)?),
        Some(Mode::Afxdp | Mode::Kernel | Mode::Xdplive) => {
            (Mode::Afxdp, open_xdp(&opts.dev, ifindex, want, template)?)
        }
        None => match open_xdp(&opts.dev, ifindex, want, template) {
            Ok(s) => (Mode::Afxdp, s),
            Err(e) => {
                eprintln!("pktgen: AF_XDP unavailable ({e:#}); using AF_PACKET");
                (Mode::Afpacket, open_packet(ifindex, want)?)
            }
        },
    };
    let threads = senders.len();
    let barrier = Arc::new(Barrier::new(threads + 1));
    let duration_ns = u64::try_from(opts.duration.as_nanos()).unwrap_or(u64::MAX);
    let nonce = run_nonce();
    let mut handles = Vec::with_capacity(threads);
    for (i, sender) in senders.into_iter().enumerate() {
        let part = Part {
            cursor: Cursor::new(nonce | i as u16, i as u16, template.flows(), opts.random),
            count: opts.count.map(|c| share(c, threads, i)),
            rate: opts.rate.map(|r| share(r, threads, i).max(1)),
            duration_ns,
        };
        let t = Arc::clone(template);
        let b = Arc::clone(&barrier);
        handles.push(
            std::thread::Builder::new()
                .name(format!("pktgen-tx{i}"))
                .spawn(move || {
                    b.wait();
                    match sender {
                        Sender::Xdp(x) => send_xdp(*x, &t, part),
                        Sender::Packet(s) => send_packet(&s, &t, part),
                        Sender::Ring(r) => send_ring(*r, &t, part),
                    }
                })
                .context("spawn sender thread")?,
        );
    }
    let (total, secs) = start_and_join(&barrier, handles)?;
    Ok(TxReport {
        sent: total.sent,
        secs,
        eagain: total.eagain,
        mode,
        threads,
    })
}

/// Lets the sender threads waiting at `barrier` go, waits for all of them, and returns their
/// counters added up and the seconds from the start to the last one's end; the first error
/// (or panic) of any thread otherwise.
fn start_and_join(
    barrier: &Barrier,
    handles: Vec<std::thread::JoinHandle<Result<Done>>>,
) -> Result<(Done, f64)> {
    barrier.wait();
    let start = monotonic_ns();
    let mut total = Done::default();
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(d)) => {
                total.sent += d.sent;
                total.eagain += d.eagain;
            }
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(_) => {
                first_err.get_or_insert_with(|| anyhow!("a sender thread panicked"));
            }
        }
    }
    let secs = monotonic_ns().saturating_sub(start) as f64 / 1e9;
    match first_err {
        Some(e) => Err(e),
        None => Ok((total, secs)),
    }
}

/// UMEM chunks per sending socket (half of them transmit).
const XSK_FRAMES: u32 = 1024;
/// TX ring entries per sending socket.
const XSK_TX_RING: u32 = 512;

/// Binds one XSK per thread on queues `0..want`; stops at the first queue that cannot be
/// bound (a veth made without `numtxqueues`) and goes on with fewer threads, saying so. Frames
/// longer than a UMEM chunk go out as several descriptors (multi-buffer, `XDP_USE_SG`).
fn open_xdp(dev: &str, ifindex: u32, want: usize, t: &Template) -> Result<Vec<Sender>> {
    let len = t.len();
    if len > xsk::MAX_SG_FRAME_LEN {
        bail!(
            "AF_XDP sends frames of at most {} bytes; --size {len} needs --mode txring",
            xsk::MAX_SG_FRAME_LEN
        );
    }
    let multi_buffer = len > xsk::CHUNK_SIZE as usize;
    let cfg = XskConfig {
        frames: XSK_FRAMES,
        rx_ring: 8,
        tx_ring: XSK_TX_RING,
        need_wakeup: false,
        zero_copy: false,
        multi_buffer,
    };
    let budget = std::env::var("PKTGEN_XSK_BUDGET")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(XSK_TX_RING);
    let mut out = Vec::with_capacity(want);
    for q in 0..want {
        match Xsk::new(ifindex, q as u32, &cfg) {
            Ok(x) => {
                // Fewer, larger kicks where the kernel allows it (6.17+); else 32 per kick.
                if budget > xsk::TX_KICK_BATCH
                    && let Err(e) = x.set_tx_budget(budget.min(XSK_TX_RING))
                    && e.raw_os_error() != Some(libc::ENOPROTOOPT)
                {
                    eprintln!("pktgen: warning: XDP_MAX_TX_SKB_BUDGET {budget}: {e}");
                }
                out.push(Sender::Xdp(Box::new(x)));
            }
            Err(e) if q == 0 => {
                let why = if multi_buffer {
                    format!(
                        "AF_XDP socket on {dev} queue 0, multi-buffer for {len}-byte frames \
                         (XDP_USE_SG: Linux 6.6+)"
                    )
                } else {
                    format!("AF_XDP socket on {dev} queue 0")
                };
                return Err(anyhow!(e)).context(why);
            }
            Err(e) => {
                eprintln!(
                    "pktgen: warning: cannot bind an AF_XDP socket to {dev} queue {q} ({e}); \
                     sending with {q} thread(s). On veth, create the pair with \
                     `numtxqueues N numrxqueues N` for N threads."
                );
                break;
            }
        }
    }
    Ok(out)
}

/// An AF_PACKET socket bound to `ifindex` with the qdisc bypassed, set up for sending only
/// (both AF_PACKET modes).
fn packet_socket(ifindex: u32) -> Result<PacketSocket> {
    let s = PacketSocket::open().context("AF_PACKET socket (needs CAP_NET_RAW)")?;
    if let Err(e) = s.set_qdisc_bypass() {
        eprintln!("pktgen: warning: PACKET_QDISC_BYPASS: {e}");
    }
    s.set_ignore_outgoing().ok();
    s.set_buffer(SockBuf::Snd, 4 << 20).ok();
    // Receive as little as possible: this socket only sends.
    s.set_buffer(SockBuf::Rcv, 4096).ok();
    s.bind(ifindex).context("bind AF_PACKET socket")?;
    Ok(s)
}

/// Opens `want` AF_PACKET sockets for `sendmmsg`.
fn open_packet(ifindex: u32, want: usize) -> Result<Vec<Sender>> {
    (0..want)
        .map(|_| Ok(Sender::Packet(Box::new(packet_socket(ifindex)?))))
        .collect()
}

/// Most bytes of one socket's TX ring.
pub const RING_BYTES: usize = 4 << 20;
/// Most slots of one socket's TX ring.
pub const RING_FRAMES: u32 = 4096;
/// Most frames queued per TX ring kick.
pub const RING_BATCH: u32 = 256;

/// The TX ring of one socket for `len`-byte frames: at most [`RING_FRAMES`] slots and
/// [`RING_BYTES`] bytes (60-byte frames: 4096 slots of 128 bytes, 512 KiB; 1500: 2048 × 2 KiB,
/// 4 MiB; 9000: 341 × 12 KiB, 4 MiB).
///
/// # Errors
/// A frame length the ring cannot be built for (not with `--size` in range).
pub fn ring_geometry(len: usize) -> io::Result<RingGeometry> {
    RingGeometry::new(len, RING_BYTES, RING_FRAMES)
}

/// Frames queued per kick: [`RING_BATCH`], or half the ring when that is smaller, so the next
/// batch is being written while the kernel still sends the previous one.
pub fn ring_batch(geo: &RingGeometry) -> u32 {
    RING_BATCH.min(geo.frame_nr() / 2).max(1)
}

/// The longest frame the kernel sends through a packet socket on a device with `mtu`: the MTU
/// plus the Ethernet header, plus 4 bytes when the frame carries a VLAN tag.
pub fn max_frame_len(mtu: u32, vlan: bool) -> usize {
    mtu as usize + 14 + if vlan { 4 } else { 0 }
}

/// Fails, naming the MTU, when `t`'s frames are longer than the kernel lets a packet socket
/// send on `dev` (MTU + 14, + 18 with a VLAN tag), in every mode but `kernel`. That is
/// pktgen's rule for all of them: the TX ring's virtio-net header turns the kernel's check
/// off, AF_XDP has none, and what a device does with a longer frame varies (veth forwards up
/// to MTU + 18 whether tagged or not, measured against the receiving end's MTU; a NIC may drop
/// it without a word), so a run could send frames that arrive nowhere.
fn check_mtu(dev: &str, t: &Template) -> Result<()> {
    let len = t.len();
    let mtu = netdev::mtu(dev).with_context(|| format!("MTU of {dev}"))?;
    let vlan = t.spec().vlan.is_some();
    let max = max_frame_len(mtu, vlan);
    if len > max {
        bail!(
            "--size {len} does not fit the MTU {mtu} of {dev}: frames of at most {max} bytes go \
             out{}; raise the MTU (ip link set {dev} mtu N) or lower --size",
            if vlan { " with --vlan" } else { "" }
        );
    }
    Ok(())
}

/// Opens `want` AF_PACKET sockets on `ifindex`, each with a TX ring for `t`'s frames (whose
/// length [`check_mtu`] checked: a frame the device dropped for its length would be retried
/// until the deadline).
fn open_ring(ifindex: u32, want: usize, t: &Template) -> Result<Vec<Sender>> {
    let len = t.len();
    let geo = ring_geometry(len).context("PACKET_TX_RING size")?;
    (0..want)
        .map(|_| {
            let r = TxRing::new(packet_socket(ifindex)?, geo)
                .context("PACKET_TX_RING setup (setsockopt, mmap)")?;
            Ok(Sender::Ring(Box::new(r)))
        })
        .collect()
}

/// Errors that mean "the device or socket is full, try again".
fn transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Kicks until the kernel consumed every queued descriptor or a kick moves nothing (counted).
fn kick(x: &mut Xsk, eagain: &mut u64) -> Result<()> {
    let mut left = x.tx_outstanding();
    while left > 0 {
        let now = match x.flush(1) {
            Ok(n) => n,
            Err(e) if transient(&e) => left,
            Err(e) => return Err(anyhow!(e).context("AF_XDP kick (sendto)")),
        };
        if now >= left {
            *eagain += 1;
            return Ok(());
        }
        left = now;
    }
    Ok(())
}

fn send_xdp(mut x: Xsk, t: &Template, mut p: Part) -> Result<Done> {
    let mut buf = vec![0u8; t.len()];
    let mut d = Done::default();
    let mut queued = 0u64;
    let start = monotonic_ns();
    let deadline = start.saturating_add(p.duration_ns);
    let mut pacer = Pacer::new(p.rate, XDP_BATCH, start);
    let limit = p.count.unwrap_or(u64::MAX);
    while queued < limit {
        let now = monotonic_ns();
        if now >= deadline {
            break;
        }
        let n = pacer.allow(now, (limit - queued).min(XDP_BATCH));
        if n == 0 {
            pacer.wait();
            continue;
        }
        let mut k = 0;
        while k < n {
            let c = &p.cursor;
            t.write(&mut buf, c.flow(), c.stream, c.seq, now);
            if !x.send(&buf) {
                break;
            }
            p.cursor.advance();
            k += 1;
        }
        pacer.spend(k);
        queued += k;
        kick(&mut x, &mut d.eagain)?;
    }
    let end = monotonic_ns().saturating_add(DRAIN_NS);
    while x.tx_outstanding() > 0 && monotonic_ns() < end {
        kick(&mut x, &mut d.eagain)?;
    }
    // Descriptors the kernel has not taken, in frames (a frame is one or more descriptors; a
    // frame taken in part is not sent).
    let parts = t.len().div_ceil(xsk::CHUNK_SIZE as usize) as u64;
    d.sent = queued - u64::from(x.tx_outstanding()).div_ceil(parts);
    Ok(d)
}

fn send_packet(s: &PacketSocket, t: &Template, mut p: Part) -> Result<Done> {
    let len = t.len();
    let mut slots = MmsgSlots::new(BATCH, len, 0);
    let lens = [len as u32; BATCH];
    let mut d = Done::default();
    let start = monotonic_ns();
    let deadline = start.saturating_add(p.duration_ns);
    let give_up = deadline.saturating_add(DRAIN_NS);
    let mut pacer = Pacer::new(p.rate, BATCH as u64, start);
    let limit = p.count.unwrap_or(u64::MAX);
    'run: while d.sent < limit {
        let now = monotonic_ns();
        if now >= deadline {
            break;
        }
        let n = pacer.allow(now, (limit - d.sent).min(BATCH as u64)) as usize;
        if n == 0 {
            pacer.wait();
            continue;
        }
        for k in 0..n {
            let c = &p.cursor;
            let slot = slots.slot_mut(k).context("slot")?;
            t.write(&mut slot[..len], c.flow(), c.stream, c.seq, now);
            p.cursor.advance();
        }
        pacer.spend(n as u64);
        let mut off = 0;
        let mut retries = 0u32;
        while off < n {
            match slots.send(s, off, &lens[off..n]) {
                Ok(k) if k > 0 => {
                    off += k;
                    retries = 0;
                }
                Ok(_) => d.eagain += 1,
                Err(e) if transient(&e) => d.eagain += 1,
                Err(e) => return Err(anyhow!(e).context("sendmmsg on AF_PACKET socket")),
            }
            if off < n {
                retries += 1;
                if retries.is_multiple_of(64) {
                    if monotonic_ns() > give_up {
                        d.sent += off as u64;
                        break 'run;
                    }
                    std::thread::yield_now();
                }
            }
        }
        d.sent += n as u64;
    }
    Ok(d)
}

/// Why a TX ring thread stops on a refused frame: the kernel will not send past it.
fn refused(len: usize, sent: u64, why: Option<&io::Error>) -> anyhow::Error {
    let why = why.map_or_else(String::new, |e| format!(", send: {e}"));
    anyhow!(
        "the kernel refused a {len}-byte frame (TP_STATUS_WRONG_FORMAT{why}) after {sent} were \
         sent; the ring cannot go on"
    )
}

/// Takes back the slots the kernel is done with, adding them to `sent`.
fn reclaim(r: &mut TxRing, len: usize, sent: &mut u64) -> Result<()> {
    let got = r.reclaim();
    *sent += u64::from(got.sent);
    if got.refused {
        return Err(refused(len, *sent, None));
    }
    Ok(())
}

/// Kicks the ring once; a full device or socket (`EAGAIN`, `ENOBUFS`, ...) is counted in
/// `eagain`, and after every 64 such kicks in a row the thread yields (the receiving side of a
/// veth runs on this CPU). Returns whether frames are still waiting for the kernel.
fn kick_ring(r: &mut TxRing, len: usize, d: &mut Done, busy: &mut u32) -> Result<bool> {
    match r.kick() {
        Ok(_) => *busy = 0,
        Err(e) if transient(&e) => {
            d.eagain += 1;
            *busy += 1;
            if busy.is_multiple_of(64) {
                std::thread::yield_now();
            }
        }
        Err(e) => {
            let got = r.reclaim();
            d.sent += u64::from(got.sent);
            let wrong = matches!(e.raw_os_error(), Some(libc::EMSGSIZE | libc::EINVAL));
            return Err(if got.refused || wrong {
                refused(len, d.sent, Some(&e))
            } else {
                anyhow!(e).context("send on PACKET_TX_RING socket")
            });
        }
    }
    Ok(r.waiting())
}

fn send_ring(mut r: TxRing, t: &Template, mut p: Part) -> Result<Done> {
    let len = t.len();
    let batch = u64::from(ring_batch(r.geometry()));
    let mut d = Done::default();
    let mut queued = 0u64;
    let mut waiting = false;
    let mut busy = 0u32;
    let start = monotonic_ns();
    let deadline = start.saturating_add(p.duration_ns);
    let mut pacer = Pacer::new(p.rate, batch, start);
    let limit = p.count.unwrap_or(u64::MAX);
    while queued < limit {
        let now = monotonic_ns();
        if now >= deadline {
            break;
        }
        reclaim(&mut r, len, &mut d.sent)?;
        let room = u64::from(r.free());
        let want = (limit - queued).min(batch).min(room);
        let n = if want == 0 { 0 } else { pacer.allow(now, want) };
        let mut k = 0;
        while k < n {
            let c = &p.cursor;
            if !r.push(len, |buf| t.write(buf, c.flow(), c.stream, c.seq, now)) {
                break;
            }
            p.cursor.advance();
            k += 1;
        }
        if k < n {
            // Cannot happen: the ring was sized for `len` and `n` slots were free.
            bail!(
                "a {len}-byte frame does not fit the TX ring ({:?})",
                r.geometry()
            );
        }
        pacer.spend(k);
        queued += k;
        if k > 0 || waiting {
            waiting = kick_ring(&mut r, len, &mut d, &mut busy)?;
        } else if room == 0 {
            // Every slot is with the device (a NIC completes asynchronously).
            std::thread::yield_now();
        } else {
            pacer.wait();
        }
    }
    let end = monotonic_ns().saturating_add(DRAIN_NS);
    loop {
        reclaim(&mut r, len, &mut d.sent)?;
        if r.in_flight() == 0 || monotonic_ns() >= end {
            break;
        }
        if r.waiting() {
            kick_ring(&mut r, len, &mut d, &mut busy)?;
        } else {
            std::thread::yield_now();
        }
    }
    Ok(d)
}

/// `--mode kernel`: the kernel's own generator, where it exists.
///
/// Each sending thread is one kernel pktgen thread (`kpktgend_<i>`) with one pktgen device
/// `<dev>@<i>` on tx queue `i`, after a `reset` that removes every device of the namespace's
/// pktgen. The frame spec maps onto pktgen's own knobs: each IPv4 address and port range is
/// swept on its own (`*_RND` flags with `--random`); pktgen's port maxima (and its random
/// address maxima) are exclusive, so one more is written. What pktgen cannot express is an
/// error: `--flows` (pktgen's flows pin destination addresses, not 5-tuples), IPv6 address
/// ranges (pktgen only randomizes IPv6 destinations bitwise), a range ending at port 65535.
/// The kernel writes its own payload header (sequence number from 1 per device, wall-clock
/// send time), which `rx` recognizes; with more than one thread, thread `i` marks its frames
/// with DSCP `i` so that `rx` keeps their sequence numbers apart.
mod kernel {
    use std::fs;
    use std::path::Path;
    use std::sync::{Arc, mpsc};

    use anyhow::{Context, Result, bail};

    use super::{Mode, TxOptions, TxReport};
    use crate::args::format_mac;
    use crate::frame::Template;
    use crate::sys::monotonic_ns;

    const ROOT: &str = "/proc/net/pktgen";

    /// One kernel thread's share: the pktgen device it gets and that device's commands.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(super) struct Part {
        /// `kpktgend_<i>`.
        pub thread: String,
        /// `<dev>@<i>`.
        pub dev: String,
        /// Commands for the device's file, in order.
        pub cmds: Vec<String>,
    }

    /// A command as `echo` writes it: pktgen's `pgctrl` drops the last byte of a write as its
    /// newline (`"stop"` alone would read as `"sto"` and be refused).
    fn line(cmd: &str) -> String {
        format!("{cmd}\n")
    }

    fn write(root: &Path, file: &str, cmd: &str) -> Result<()> {
        let path = root.join(file);
        fs::write(&path, line(cmd))
            .with_context(|| format!("writing {cmd:?} to {}", path.display()))?;
        // pktgen reports a refused command in the file's Result line.
        if file != "pgctrl"
            && let Ok(s) = fs::read_to_string(&path)
            && let Some(r) = s.lines().map(str::trim).find(|l| l.starts_with("Result:"))
            && !r.starts_with("Result: OK")
        {
            bail!("{}: {cmd:?}: {r}", path.display());
        }
        Ok(())
    }

    fn ip_text(b: &[u8; 16], v6: bool) -> String {
        if v6 {
            std::net::Ipv6Addr::from(*b).to_string()
        } else {
            std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string()
        }
    }

    /// pktgen's exclusive maximum for the inclusive port range `lo..=hi`.
    fn port_max(what: &str, lo: u16, hi: u16) -> Result<u16, String> {
        if lo == hi {
            return Ok(hi);
        }
        hi.checked_add(1).ok_or_else(|| {
            format!(
                "--mode kernel: pktgen's {what} port maximum is exclusive, so a range cannot \
                 end at 65535; end it at 65534"
            )
        })
    }

    /// The kernel threads a run uses and their commands: `--threads`, but never more than
    /// frames to send (a device with `count 0` would send until stopped) nor than frames per
    /// second (each device sends at least one a second); none for `--count 0`.
    ///
    /// # Errors
    /// A spec pktgen cannot send (see the module docs).
    pub(super) fn plan(opts: &TxOptions, t: &Template) -> Result<Vec<Part>, String> {
        let s = t.spec();
        if s.flows.is_some() {
            return Err(
                "--mode kernel: --flows has no pktgen equivalent (pktgen's flows pin \
                        destination addresses, not 5-tuples); give address and port ranges"
                    .into(),
            );
        }
        if s.ipv6 && (s.src_ip.len() > 1 || s.dst_ip.len() > 1) {
            return Err("--mode kernel: pktgen has no IPv6 address ranges (it only \
                        randomizes destinations bit by bit); give one source and one \
                        destination address"
                .into());
        }
        let cap =
            |n: Option<u64>| n.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
        let threads = opts
            .threads
            .max(1)
            .min(cap(opts.count))
            .min(cap(opts.rate).max(1));
        let src_port_max = port_max("source", s.src_port.lo, s.src_port.hi)?;
        let dst_port_max = port_max("destination", s.dst_port.lo, s.dst_port.hi)?;
        let (sl, dl) = (s.src_ip.nth(0), s.dst_ip.nth(0));
        // Sequential address sweeps include their maximum; random picks exclude it.
        let v4_max = |r: &crate::args::IpRange| -> Result<[u8; 16], String> {
            let top = r.nth(r.len() - 1);
            if !opts.random || r.len() == 1 {
                return Ok(top);
            }
            let v = u32::from_be_bytes([top[0], top[1], top[2], top[3]]);
            let v = v.checked_add(1).ok_or(
                "--mode kernel --random: pktgen's random address maximum is exclusive, so a \
                 range cannot end at 255.255.255.255",
            )?;
            let mut out = [0u8; 16];
            out[..4].copy_from_slice(&v.to_be_bytes());
            Ok(out)
        };
        let (sh, dh) = if s.ipv6 {
            (sl, dl)
        } else {
            (v4_max(&s.src_ip)?, v4_max(&s.dst_ip)?)
        };
        Ok((0..threads)
            .map(|i| {
                let count = opts.count.map_or(0, |c| super::share(c, threads, i));
                let mut cmds = vec![
                    format!("count {count}"),
                    format!("pkt_size {}", t.len()),
                    "clone_skb 0".into(),
                    format!("dst_mac {}", format_mac(&s.dst_mac)),
                    format!("src_mac {}", format_mac(&s.src_mac)),
                    format!("udp_src_min {}", s.src_port.lo),
                    format!("udp_src_max {src_port_max}"),
                    format!("udp_dst_min {}", s.dst_port.lo),
                    format!("udp_dst_max {dst_port_max}"),
                    format!("queue_map_min {i}"),
                    format!("queue_map_max {i}"),
                    "flag UDPCSUM".into(),
                ];
                if s.src_macs > 1 {
                    cmds.push(format!("src_mac_count {}", s.src_macs));
                }
                if s.ipv6 {
                    cmds.push(format!("src6 {}", ip_text(&sl, true)));
                    cmds.push(format!("dst6 {}", ip_text(&dl, true)));
                } else {
                    cmds.push(format!("src_min {}", ip_text(&sl, false)));
                    cmds.push(format!("src_max {}", ip_text(&sh, false)));
                    cmds.push(format!("dst_min {}", ip_text(&dl, false)));
                    cmds.push(format!("dst_max {}", ip_text(&dh, false)));
                }
                if opts.random {
                    for (flag, wide) in [
                        ("IPSRC_RND", s.src_ip.len() > 1),
                        ("IPDST_RND", s.dst_ip.len() > 1),
                        ("UDPSRC_RND", s.src_port.len() > 1),
                        ("UDPDST_RND", s.dst_port.len() > 1),
                    ] {
                        if wide {
                            cmds.push(format!("flag {flag}"));
                        }
                    }
                }
                if let Some(v) = s.vlan {
                    cmds.push(format!("vlan_id {v}"));
                }
                if threads > 1 {
                    // DSCP i (threads ≤ 64): the receiver's stream id for this thread.
                    let class = if s.ipv6 { "traffic_class" } else { "tos" };
                    cmds.push(format!("{class} {:02x}", (i & 63) << 2));
                }
                if let Some(r) = opts.rate {
                    cmds.push(format!("ratep {}", super::share(r, threads, i).max(1)));
                }
                Part {
                    thread: format!("kpktgend_{i}"),
                    dev: format!("{}@{i}", opts.dev),
                    cmds,
                }
            })
            .collect())
    }

    /// The number after `name` (say `pkts-sofar:`) in a pktgen device file.
    fn counter(text: &str, name: &str) -> Option<u64> {
        text.split_whitespace()
            .skip_while(|w| *w != name)
            .nth(1)
            .and_then(|n| n.parse().ok())
    }

    /// Frames a pktgen device file says it sent (`pkts-sofar: N`).
    pub(super) fn sent_so_far(text: &str) -> Option<u64> {
        counter(text, "pkts-sofar:")
    }

    /// Frames the device refused (`errors: N`: the driver dropped them, say a veth whose
    /// peer's queue was full); pktgen sends the next frame in their place with the same
    /// sequence number, so they are retries, not losses.
    pub(super) fn refused(text: &str) -> Option<u64> {
        counter(text, "errors:")
    }

    pub(super) fn run(opts: &TxOptions, t: &Arc<Template>) -> Result<TxReport> {
        run_at(Path::new(ROOT), opts, t)
    }

    /// [`run`] with pktgen's control files under `root`.
    pub(super) fn run_at(root: &Path, opts: &TxOptions, t: &Template) -> Result<TxReport> {
        if !root.join("pgctrl").exists() {
            bail!(
                "--mode kernel: this kernel has no pktgen ({} does not exist: \
                 CONFIG_NET_PKTGEN is not built in and no pktgen module is loaded); \
                 use --mode afxdp or --mode afpacket",
                root.display()
            );
        }
        let parts = plan(opts, t).map_err(anyhow::Error::msg)?;
        for p in &parts {
            if !root.join(&p.thread).exists() {
                bail!(
                    "{}/{} missing: the kernel runs fewer pktgen threads than --threads",
                    root.display(),
                    p.thread
                );
            }
        }
        // Devices left from an earlier run on any kernel thread would start with ours.
        write(root, "pgctrl", "reset")?;
        for p in &parts {
            write(root, &p.thread, &format!("add_device {}", p.dev))?;
            for c in &p.cmds {
                write(root, &p.dev, c)?;
            }
        }
        let start = monotonic_ns();
        if !parts.is_empty() {
            // "start" blocks until every device sent its count; "stop" it at the deadline,
            // unless it returned before (a stray "stop" would end a later run).
            let (done, wait) = mpsc::channel::<()>();
            let ctl = root.join("pgctrl");
            let d = opts.duration;
            let stopper = std::thread::spawn(move || {
                if wait.recv_timeout(d) == Err(mpsc::RecvTimeoutError::Timeout) {
                    let _ = fs::write(ctl, line("stop"));
                }
            });
            let started = write(root, "pgctrl", "start");
            drop(done);
            let _ = stopper.join();
            started?;
        }
        let secs = monotonic_ns().saturating_sub(start) as f64 / 1e9;
        let (mut sent, mut eagain) = (0, 0);
        for p in &parts {
            let text = fs::read_to_string(root.join(&p.dev)).unwrap_or_default();
            sent += sent_so_far(&text).unwrap_or(0);
            eagain += refused(&text).unwrap_or(0);
        }
        Ok(TxReport {
            sent,
            secs,
            eagain,
            mode: Mode::Kernel,
            threads: parts.len(),
        })
    }
}

/// `--mode xdplive`: the kernel as the sender. Each thread loads its own program
/// ([`XdpProgram::load_live_tx`]: redirect out of the device, the UDP source port, the
/// sequence number and timestamp, and the checksum rewritten per frame) and runs it with
/// `BPF_PROG_TEST_RUN` and live frames, in calls sized to last ~0.5 s (each has ~25 ms of
/// set-up). The kernel copies flow 0's frame into page-pool pages, sends them through the
/// device's `ndo_xdp_xmit` in batches of 64 and runs the receiving side's NAPI between
/// batches, all on the calling CPU: no socket, no skb, no copy from user space per frame.
/// What it can send: flows that differ only in the UDP source port (in order), frames of one
/// page at most, no pacing; each frame carries its thread's stream id, the next sequence
/// number and the time the program ran (`CLOCK_MONOTONIC`), as in the other modes. A veth
/// sends only while its peer has NAPI (an XDP program or GRO on). `sent` counts the frames the
/// programs handed to the device; what its queue refused (a tap whose reader is behind) shows
/// as loss at the receiver, as at a NIC's full ring: the kernel counts such refusals only in
/// part (a tap at most one per bulk of frames).
mod live {
    use super::*;
    use datapath::sys::bpf::{PortSweep, XdpProgram};
    use datapath::sys::ethtool;

    /// Frames of a thread's first `BPF_PROG_TEST_RUN` call; the next ones are sized from its
    /// rate to last [`CALL_NS`] (or what is left of the run). Each call sets up and tears
    /// down a page pool, ~25 ms here, during which nothing is sent.
    const FIRST_CHUNK: u64 = 100_000;
    /// How long one call should send for.
    const CALL_NS: u64 = 500_000_000;

    /// The sweep of a thread's frame (flow 0, its stream id written in).
    fn sweep(t: &Template, frame: &[u8], first: u16) -> PortSweep {
        let uo = t.udp_offset();
        PortSweep {
            flows: t.flows() as u32,
            first,
            udp_off: uo as u16,
            csum: u16::from_be_bytes([frame[uo + 6], frame[uo + 7]]),
            // The payload after the UDP header: magic (2), stream (2), sequence, timestamp.
            stamp: Some((uo + 8 + 4) as u16),
        }
    }

    /// The error of a kernel that refuses live frames ([`XdpProgram::live_frames_allowed`]).
    pub const LIVE_REFUSED: &str = "this kernel refuses BPF_PROG_TEST_RUN with live frames \
        (EPERM), so --mode xdplive cannot send here; use --mode afxdp, afpacket or txring";

    /// What `--mode xdplive` cannot send, as an error naming the way out.
    pub(super) fn check(opts: &TxOptions, t: &Template) -> Result<u16> {
        if opts.rate.is_some() {
            bail!(
                "--mode xdplive sends as fast as it can (each kernel call costs ~25 ms of set-up, \
                 too coarse to pace); --rate needs --mode afxdp, afpacket or txring"
            );
        }
        if opts.random {
            bail!(
                "--mode xdplive sends its flows in order; --random needs --mode afxdp or afpacket"
            );
        }
        t.source_port_sweep().ok_or_else(|| {
            anyhow!(
                "--mode xdplive varies only the UDP source port: give --flows N with one source \
                 and one destination address and one destination port, or a --src-port range \
                 alone (other flows need --mode afxdp or afpacket)"
            )
        })
    }

    pub(super) fn run(opts: &TxOptions, t: &Arc<Template>, ifindex: u32) -> Result<TxReport> {
        let first = check(opts, t)?;
        if !XdpProgram::live_frames_allowed()
            .context("probing for XDP live frames (needs CAP_BPF or CAP_SYS_ADMIN)")?
        {
            bail!("{LIVE_REFUSED}");
        }
        let threads = opts.threads.max(1);
        let nonce = run_nonce();
        let duration_ns = u64::try_from(opts.duration.as_nanos()).unwrap_or(u64::MAX);
        // Every program is loaded before any thread sends: a refusal stops the run at once.
        let mut senders = Vec::with_capacity(threads);
        for i in 0..threads {
            let mut frame = vec![0u8; t.len()];
            t.write(&mut frame, 0, nonce | i as u16, 0, 0);
            let prog = XdpProgram::load_live_tx(ifindex, sweep(t, &frame, first))
                .context("loading the XDP sender (needs CAP_BPF or CAP_SYS_ADMIN)")?;
            // The program walks the flows itself, and `check` refused --rate: a thread's
            // part is how many frames and for how long.
            let part = LivePart {
                count: opts.count.map(|c| share(c, threads, i)),
                duration_ns,
            };
            senders.push((prog, frame, part));
        }
        // A veth takes frames from XDP only while its peer has NAPI; without it every frame is
        // dropped uncounted, which each thread's first call checks.
        let veth = ethtool::driver(&opts.dev).is_ok_and(|d| d == "veth");
        let barrier = Arc::new(Barrier::new(threads + 1));
        let mut handles = Vec::with_capacity(threads);
        for (i, (prog, frame, part)) in senders.into_iter().enumerate() {
            let b = Arc::clone(&barrier);
            let veth_dev = veth.then(|| opts.dev.clone());
            handles.push(
                std::thread::Builder::new()
                    .name(format!("pktgen-live{i}"))
                    .spawn(move || {
                        b.wait();
                        send(&prog, &frame, part, veth_dev.as_deref())
                    })
                    .context("spawn sender thread")?,
            );
        }
        let (total, secs) = start_and_join(&barrier, handles)?;
        Ok(TxReport {
            sent: total.sent,
            secs,
            eagain: 0,
            mode: Mode::Xdplive,
            threads,
        })
    }

    /// One of the device's counters in sysfs (0 when unreadable).
    fn stat(dev: &str, name: &str) -> u64 {
        std::fs::read_to_string(format!("/sys/class/net/{dev}/statistics/{name}"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// What a veth has taken or refused so far: `tx_packets` counts every frame its peer's
    /// NAPI took (run before the call returns, on this CPU), `tx_dropped` what a full ring
    /// refused; a veth whose peer has no NAPI drops without counting.
    fn handled(dev: &str) -> u64 {
        stat(dev, "tx_packets") + stat(dev, "tx_dropped")
    }

    /// Sends `p`'s share; `veth` names the device when it is a veth, whose peer's NAPI the
    /// first call checks.
    /// One thread's share of a live run.
    struct LivePart {
        /// Frames to send (None: until the duration ends).
        count: Option<u64>,
        duration_ns: u64,
    }

    fn send(prog: &XdpProgram, frame: &[u8], p: LivePart, veth: Option<&str>) -> Result<Done> {
        let mut d = Done::default();
        let start = monotonic_ns();
        let deadline = start.saturating_add(p.duration_ns);
        let limit = p.count.unwrap_or(u64::MAX);
        let mut n = FIRST_CHUNK;
        let mut first = veth.map(|dev| (dev, handled(dev)));
        while d.sent < limit {
            let now = monotonic_ns();
            if now >= deadline {
                break;
            }
            let n_now = n.min(limit - d.sent).min(u64::from(u32::MAX));
            prog.send_live(frame, n_now as u32).with_context(|| {
                format!(
                    "BPF_PROG_TEST_RUN with live frames (Linux 5.18+; frames of at most ~3,500 \
                     bytes; {} here)",
                    frame.len()
                )
            })?;
            d.sent += n_now;
            if let Some((dev, before)) = first.take()
                && handled(dev).saturating_sub(before) < n_now / 2
            {
                bail!(
                    "{dev} took {} of the first {n_now} frames: on a veth, the peer needs NAPI \
                     to take frames sent from XDP (`ethtool -K PEER gro on`, or an XDP program \
                     on it)",
                    handled(dev).saturating_sub(before)
                );
            }
            // The next call: CALL_NS at the rate this one had, and no longer than what is
            // left of the run.
            let end = monotonic_ns();
            let rate = n_now as f64 / (end.saturating_sub(now).max(1) as f64);
            let ns = CALL_NS.min(deadline.saturating_sub(end));
            n = ((rate * ns as f64) as u64).max(1);
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel_opts(threads: usize, count: Option<u64>) -> TxOptions {
        TxOptions {
            dev: "veth0".into(),
            mode: Some(Mode::Kernel),
            threads,
            count,
            duration: Duration::from_millis(300),
            rate: None,
            random: false,
        }
    }

    /// A spec with the given ranges (`A-B` or one value each: source address, destination
    /// address, source port, destination port).
    fn kernel_template(
        ipv6: bool,
        ranges: [&str; 4],
        flows: Option<u32>,
        vlan: Option<u16>,
    ) -> Template {
        use crate::args::{parse_ip_range, parse_port_range};
        Template::new(&crate::frame::FrameSpec {
            size: None,
            src_mac: [2, 0, 0, 0, 0, 1],
            src_macs: 1,
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_ip: parse_ip_range(ranges[0], ipv6).unwrap(),
            dst_ip: parse_ip_range(ranges[1], ipv6).unwrap(),
            src_port: parse_port_range(ranges[2]).unwrap(),
            dst_port: parse_port_range(ranges[3]).unwrap(),
            flows,
            vlan,
            ipv6,
        })
        .unwrap()
    }

    const V4_RANGES: [&str; 4] = [
        "198.18.0.1-198.18.0.4",
        "198.18.1.1-198.18.1.2",
        "1000-1099",
        "9",
    ];

    fn has(p: &kernel::Part, c: &str) -> bool {
        p.cmds.iter().any(|x| x == c)
    }

    #[test]
    fn kernel_mode_plans_one_device_per_thread_with_the_spec_in_pktgen_commands() {
        let t = kernel_template(false, V4_RANGES, None, Some(7));
        let parts = kernel::plan(
            &TxOptions {
                rate: Some(1001),
                random: true,
                ..kernel_opts(2, Some(11))
            },
            &t,
        )
        .unwrap();
        assert_eq!(parts.len(), 2);
        for (i, p) in parts.iter().enumerate() {
            assert_eq!(
                (p.thread.as_str(), p.dev.as_str()),
                ([("kpktgend_0", "veth0@0"), ("kpktgend_1", "veth0@1")][i])
            );
            for c in [
                &format!("count {}", [6, 5][i]),
                &format!("ratep {}", [501, 500][i]),
                &format!("queue_map_min {i}"),
                &format!("queue_map_max {i}"),
                &format!("tos {}", ["00", "04"][i]),
                "pkt_size 64",
                "clone_skb 0",
                "dst_mac 02:00:00:00:00:02",
                "src_mac 02:00:00:00:00:01",
                // Random address picks exclude pktgen's maximum: one more is written.
                "src_min 198.18.0.1",
                "src_max 198.18.0.5",
                "dst_min 198.18.1.1",
                "dst_max 198.18.1.3",
                // Port maxima are exclusive in pktgen, random or not; one port stays one.
                "udp_src_min 1000",
                "udp_src_max 1100",
                "udp_dst_min 9",
                "udp_dst_max 9",
                "vlan_id 7",
                "flag UDPCSUM",
                "flag IPSRC_RND",
                "flag IPDST_RND",
                "flag UDPSRC_RND",
            ] {
                assert!(has(p, c), "thread {i} lacks {c:?}: {:?}", p.cmds);
            }
            // One destination port: nothing to randomize.
            assert!(!has(p, "flag UDPDST_RND"), "{:?}", p.cmds);
        }
        // In order, addresses sweep up to and including their maximum.
        let p = &kernel::plan(&kernel_opts(1, None), &t).unwrap()[0];
        assert!(
            has(p, "src_max 198.18.0.4") && has(p, "dst_max 198.18.1.2"),
            "{:?}",
            p.cmds
        );
        assert!(has(p, "udp_src_max 1100") && !p.cmds.iter().any(|c| c.ends_with("_RND")));
        assert!(!p.cmds.iter().any(|c| c.starts_with("src_mac_count")));
        // Several source MACs: pktgen counts the MAC up as the flows do.
        let macs = Template::new(&crate::frame::FrameSpec {
            src_macs: 300,
            ..t.spec().clone()
        })
        .unwrap();
        let p = &kernel::plan(&kernel_opts(1, None), &macs).unwrap()[0];
        assert!(has(p, "src_mac_count 300"), "{:?}", p.cmds);
    }

    #[test]
    fn kernel_mode_never_leaves_a_device_sending_without_end() {
        let t = kernel_template(false, V4_RANGES, None, None);
        // More threads than frames: one thread per frame, none with "count 0" (endless).
        let parts = kernel::plan(&kernel_opts(4, Some(2)), &t).unwrap();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.cmds[0] == "count 1"), "{parts:?}");
        assert!(
            kernel::plan(&kernel_opts(4, Some(0)), &t)
                .unwrap()
                .is_empty()
        );
        // More threads than frames per second: the rate is kept, not rounded up per thread.
        let slow = TxOptions {
            rate: Some(3),
            ..kernel_opts(8, None)
        };
        let parts = kernel::plan(&slow, &t).unwrap();
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| has(p, "ratep 1")), "{parts:?}");
        // No count: every thread sends until the duration's "stop"; one thread: no DSCP.
        let parts = kernel::plan(&kernel_opts(1, None), &t).unwrap();
        assert_eq!(parts[0].cmds[0], "count 0");
        assert!(!parts[0].cmds.iter().any(|c| c.starts_with("tos")));
    }

    #[test]
    fn kernel_mode_refuses_what_pktgen_cannot_send() {
        let one6 = ["2001:db8::1", "2001:db8::10", "1000", "9"];
        let t = kernel_template(true, one6, None, None);
        let parts = kernel::plan(&kernel_opts(2, None), &t).unwrap();
        for c in ["src6 2001:db8::1", "dst6 2001:db8::10", "traffic_class 04"] {
            assert!(has(&parts[1], c), "lacks {c:?}: {:?}", parts[1].cmds);
        }
        let refused = |ipv6, ranges, flows, random: bool| {
            let opts = TxOptions {
                random,
                ..kernel_opts(1, None)
            };
            kernel::plan(&opts, &kernel_template(ipv6, ranges, flows, None)).unwrap_err()
        };
        for (ipv6, ranges, flows, random, why) in [
            (
                true,
                ["2001:db8::1", "2001:db8::10-2001:db8::13", "1000", "9"],
                None,
                false,
                "IPv6 address ranges",
            ),
            (false, V4_RANGES, Some(3), false, "--flows"),
            (
                false,
                ["198.18.0.1", "198.18.1.1", "1000", "65000-65535"],
                None,
                false,
                "65535",
            ),
            (
                false,
                ["198.18.0.1", "255.255.255.254-255.255.255.255", "1000", "9"],
                None,
                true,
                "255.255.255.255",
            ),
        ] {
            let e = refused(ipv6, ranges, flows, random);
            assert!(e.contains(why), "{e}");
        }
        // The same ranges in order, or port 65535 alone, are fine.
        let ok = kernel_template(
            false,
            [
                "198.18.0.1",
                "255.255.255.254-255.255.255.255",
                "65535",
                "9",
            ],
            None,
            None,
        );
        assert!(kernel::plan(&kernel_opts(1, None), &ok).is_ok());
    }

    #[test]
    fn kernel_mode_reads_what_a_device_sent() {
        let text = "Params: count 100000  min_pkt_size: 60  max_pkt_size: 60\n\
                    Current:\n     pkts-sofar: 99871  errors: 0\n     seq_num: 99872\n\
                    Result: OK: 15430(c15405+d25) usec, 99871 (60byte,0frags)\n";
        assert_eq!(kernel::sent_so_far(text), Some(99_871));
        assert_eq!(kernel::refused(text), Some(0));
        assert_eq!(kernel::refused("pkts-sofar: 500  errors: 118\n"), Some(118));
        assert_eq!(kernel::sent_so_far("Result: OK: count=5"), None);
        assert_eq!(kernel::sent_so_far("pkts-sofar: x"), None);
    }

    /// A directory standing in for `/proc/net/pktgen`, removed on drop.
    struct FakeProc(std::path::PathBuf);

    impl FakeProc {
        fn new(files: &[&str]) -> Self {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let d = std::env::temp_dir().join(format!("pktgen-proc-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&d).unwrap();
            for f in files {
                std::fs::write(d.join(f), "").unwrap();
            }
            Self(d)
        }
        fn read(&self, f: &str) -> String {
            std::fs::read_to_string(self.0.join(f)).unwrap_or_default()
        }
    }

    impl Drop for FakeProc {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn kernel_mode_names_what_is_missing_and_cancels_its_stop_when_done() {
        let t = kernel_template(false, V4_RANGES, None, None);
        let none = FakeProc::new(&[]);
        let e = kernel::run_at(&none.0, &kernel_opts(1, Some(5)), &t).unwrap_err();
        assert!(format!("{e:#}").contains("no pktgen"), "{e:#}");
        let one = FakeProc::new(&["pgctrl", "kpktgend_0"]);
        let e = kernel::run_at(&one.0, &kernel_opts(2, Some(5)), &t).unwrap_err();
        assert!(format!("{e:#}").contains("kpktgend_1 missing"), "{e:#}");
        // A plain file takes "start" without blocking, as a run that ended at once: the
        // stopper must not write "stop" later (it would end the next run).
        let r = kernel::run_at(&one.0, &kernel_opts(1, Some(5)), &t).unwrap();
        assert_eq!((r.mode, r.threads, r.sent), (Mode::Kernel, 1, 0));
        // Each command ends as `echo`'s does (pktgen's pgctrl drops a write's last byte).
        assert_eq!(one.read("kpktgend_0"), "add_device veth0@0\n");
        assert_eq!(
            one.read("veth0@0"),
            format!(
                "{}\n",
                kernel::plan(&kernel_opts(1, Some(5)), &t).unwrap()[0]
                    .cmds
                    .last()
                    .unwrap()
            )
        );
        std::thread::sleep(Duration::from_millis(450));
        assert_eq!(one.read("pgctrl"), "start\n");
    }

    #[test]
    fn shares_add_up() {
        for (total, n) in [(10, 3), (2, 4), (1_000_001, 2), (0, 1)] {
            let parts: Vec<u64> = (0..n).map(|i| share(total, n, i)).collect();
            assert_eq!(parts.iter().sum::<u64>(), total);
            assert!(parts.iter().max().unwrap() - parts.iter().min().unwrap() <= 1);
        }
    }

    #[test]
    fn every_size_gets_a_bounded_tx_ring_with_room_for_its_frames() {
        use crate::frame::{MAX_SIZE, MIN_SIZE};
        for len in MIN_SIZE..=MAX_SIZE {
            let g = ring_geometry(len).unwrap();
            assert!(g.room() >= len, "{len}: {g:?}");
            assert!(
                g.bytes() <= RING_BYTES && g.frame_nr() <= RING_FRAMES,
                "{g:?}"
            );
            let b = ring_batch(&g);
            assert!(b >= 1 && 2 * b <= g.frame_nr(), "{len}: batch {b} of {g:?}");
        }
        // The figures in ring_geometry's docs (4 KiB pages).
        let g = ring_geometry(60).unwrap();
        assert_eq!(
            (g.frame_nr(), g.frame_size(), g.bytes()),
            (4096, 128, 512 << 10)
        );
        assert_eq!(ring_batch(&g), 256);
        let g = ring_geometry(1500).unwrap();
        assert_eq!(
            (g.frame_nr(), g.frame_size(), g.bytes()),
            (2048, 2048, 4 << 20)
        );
        let g = ring_geometry(9000).unwrap();
        assert_eq!((g.frame_nr(), g.frame_size()), (341, 12288));
        assert_eq!(ring_batch(&g), 170);
    }

    #[test]
    fn the_mtu_bounds_frames_like_the_kernel() {
        assert_eq!(max_frame_len(1500, false), 1514);
        assert_eq!(max_frame_len(1500, true), 1518);
        assert_eq!(max_frame_len(9000, false), 9014);
    }

    #[test]
    fn the_summary_line_has_the_contract_keys() {
        let r = TxReport {
            sent: 1000,
            secs: 2.0,
            eagain: 3,
            mode: Mode::Afxdp,
            threads: 2,
        };
        assert_eq!(
            r.summary(false),
            "sent=1000 secs=2.000 pps=500 eagain=3 mode=afxdp threads=2"
        );
        assert_eq!(
            r.summary(true),
            "{\"sent\":1000,\"secs\":2.000,\"pps\":500,\"eagain\":3,\"mode\":\"afxdp\",\"threads\":2}"
        );
    }
}
