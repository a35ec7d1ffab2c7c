//! Receive-side accounting: recognizing generated frames, per-stream loss / reordering /
//! duplicates by sequence number, one-way latency from the timestamp, distinct 5-tuples.
//! Every table is bounded and allocated up front; nothing allocates per frame.
//!
//! Two payloads are recognized: this generator's ([`MAGIC`], see `frame.rs`) and the kernel
//! pktgen's header (`--mode kernel`): 4-byte magic [`KERNEL_MAGIC`], 4-byte sequence number
//! from 1 per device, send time as 4-byte seconds and 4-byte microseconds of
//! `CLOCK_REALTIME` (both zero with the kernel's `NO_TIMESTAMP`), all big-endian. A kernel
//! frame's stream is its IP DSCP (`--mode kernel` gives each kernel thread its own).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use crate::frame::{MAGIC, PAYLOAD_LEN, TS_MASK};
use crate::hist::Histogram;

/// Streams (sending threads, over all runs) tracked; frames of further streams count as
/// `other`.
pub const MAX_STREAMS: usize = 256;
/// Distinct 5-tuples remembered (more are not counted).
pub const MAX_TUPLES: usize = 65536;
/// Sequence numbers behind the highest one for which duplicates are told from late frames.
const WINDOW: u64 = 4096;
/// Sequence numbers of this generator's frames are below this (2^48: 32 days at 100 Mpps);
/// a payload with a larger one is some other UDP datagram that starts with the magic.
const MAX_SEQ: u64 = 1 << 48;
/// Latencies above this (ns) are taken as clock mismatches and not recorded.
const MAX_LATENCY_NS: u64 = 60_000_000_000;
/// The kernel pktgen's payload magic.
pub const KERNEL_MAGIC: u32 = 0xbe9b_e955;
/// Stream ids of kernel pktgen frames: this bit, or'ed with the frame's DSCP (this
/// generator's own streams are 16-bit).
pub const KERNEL_STREAM: u32 = 1 << 16;

/// What [`parse`] found in a generated frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// Sending thread: this generator's stream id, or [`KERNEL_STREAM`] | DSCP.
    pub stream: u32,
    /// Sequence number.
    pub seq: u64,
    /// Low 48 bits of the send time, ns: `CLOCK_MONOTONIC` (this generator's frames) or
    /// `CLOCK_REALTIME` (kernel frames, to the microsecond); `None`: not timestamped.
    pub ts: Option<u64>,
    /// A kernel pktgen frame: its time is `CLOCK_REALTIME`, its sequence numbers start at 1
    /// (this generator's at 0).
    pub kernel: bool,
    /// Hash of (source, destination address, source, destination port).
    pub tuple: u64,
    /// The frame carried an 802.1Q/802.1ad tag inline.
    pub tagged: bool,
}

/// FNV-1a, enough to tell tuples apart.
fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in *p {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Recognizes a generated frame: Ethernet, optional VLAN tags, IPv4 (no fragments) or IPv6
/// (UDP directly after the fixed header), UDP, then [`MAGIC`] or [`KERNEL_MAGIC`]. `None` for
/// anything else.
pub fn parse(frame: &[u8]) -> Option<Parsed> {
    let mut off = 12;
    let mut ethertype = u16::from_be_bytes(frame.get(12..14)?.try_into().ok()?);
    let mut tagged = false;
    while ethertype == 0x8100 || ethertype == 0x88a8 {
        tagged = true;
        off += 4;
        ethertype = u16::from_be_bytes(frame.get(off..off + 2)?.try_into().ok()?);
    }
    let l3 = off + 2;
    let (src, dst, l4, tos) = match ethertype {
        0x0800 => {
            let ip = frame.get(l3..l3 + 20)?;
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let frag = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff;
            if ip[0] >> 4 != 4 || ihl < 20 || ip[9] != 17 || frag != 0 {
                return None;
            }
            (&ip[12..16], &ip[16..20], l3 + ihl, ip[1])
        }
        0x86dd => {
            let ip = frame.get(l3..l3 + 40)?;
            if ip[0] >> 4 != 6 || ip[6] != 17 {
                return None;
            }
            (&ip[8..24], &ip[24..40], l3 + 40, ip[0] << 4 | ip[1] >> 4)
        }
        _ => return None,
    };
    let udp = frame.get(l4..l4 + 8)?;
    let tuple = fnv(&[src, dst, &udp[0..4]]);
    // The payload ends where the UDP length says: what follows is Ethernet padding.
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if udp_len < 8 {
        return None;
    }
    let p = frame.get(l4 + 8..l4 + udp_len)?;
    if let Some(k) = p.get(..16)
        && u32::from_be_bytes([k[0], k[1], k[2], k[3]]) == KERNEL_MAGIC
    {
        let word = |i: usize| u32::from_be_bytes([k[i], k[i + 1], k[i + 2], k[i + 3]]);
        let (secs, usecs) = (u64::from(word(8)), u64::from(word(12)));
        return Some(Parsed {
            stream: KERNEL_STREAM | u32::from(tos >> 2),
            seq: u64::from(word(4)),
            ts: (secs | usecs != 0).then(|| (secs * 1_000_000_000 + usecs * 1_000) & TS_MASK),
            kernel: true,
            tuple,
            tagged,
        });
    }
    let p = p.get(..PAYLOAD_LEN)?;
    if u16::from_be_bytes([p[0], p[1]]) != MAGIC {
        return None;
    }
    let mut ts = [0u8; 8];
    ts[2..].copy_from_slice(&p[12..18]);
    let seq = u64::from_be_bytes(p[4..12].try_into().ok()?);
    if seq >= MAX_SEQ {
        return None;
    }
    Some(Parsed {
        stream: u32::from(u16::from_be_bytes([p[2], p[3]])),
        seq,
        ts: Some(u64::from_be_bytes(ts)),
        kernel: false,
        tuple,
        tagged,
    })
}

/// One stream's sequence bookkeeping.
#[derive(Clone, Debug)]
struct Stream {
    highest: u64,
    /// Sequence numbers below `highest` not (yet) seen.
    missing: u64,
    /// Kernel streams: the latest send time seen (48-bit ns), to tell a new run's frames
    /// (sent after every frame seen) from late ones and duplicates.
    latest_ts: Option<u64>,
    /// Bit `s % WINDOW` set: `s` seen, for `s` in `highest - WINDOW + 1 ..= highest`.
    window: [u64; (WINDOW / 64) as usize],
}

impl Stream {
    /// A stream whose highest number so far is `seq` (seen), with `missing` numbers missing.
    fn starting_at(seq: u64, missing: u64) -> Self {
        let mut s = Self {
            highest: seq,
            missing,
            latest_ts: None,
            window: [0; (WINDOW / 64) as usize],
        };
        let (w, b) = s.bit(seq);
        *w |= b;
        s
    }

    fn bit(&mut self, s: u64) -> (&mut u64, u64) {
        let i = (s % WINDOW) as usize;
        (&mut self.window[i / 64], 1 << (i % 64))
    }
}

/// Identity hasher for already-hashed tuple keys.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.0 = u64::from(v);
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Everything the receiver counts.
#[derive(Debug)]
pub struct RxStats {
    /// Generated frames received (duplicates included).
    pub received: u64,
    /// Other frames.
    pub other: u64,
    /// Frames that arrived after a higher sequence number of their stream.
    pub reordered: u64,
    /// Frames whose sequence number was already seen.
    pub dup: u64,
    /// Generated frames that carried a VLAN tag (inline or stripped by the device).
    pub tagged: u64,
    /// One-way latency, ns.
    pub latency: Histogram,
    /// Kernel pktgen frames among `received`.
    pub kernel: u64,
    /// `CLOCK_REALTIME` − `CLOCK_MONOTONIC` (ns, wrapping), read once: turns a kernel frame's
    /// wall-clock send time into this receiver's clock.
    real_minus_mono: u64,
    streams: HashMap<u32, Stream, BuildHasherDefault<KeyHasher>>,
    tuples: HashSet<u64, BuildHasherDefault<KeyHasher>>,
}

impl Default for RxStats {
    fn default() -> Self {
        Self::new()
    }
}

impl RxStats {
    /// Empty counters, tables allocated.
    pub fn new() -> Self {
        let mut set = HashSet::with_hasher(BuildHasherDefault::<KeyHasher>::default());
        set.reserve(MAX_TUPLES);
        Self {
            received: 0,
            other: 0,
            reordered: 0,
            dup: 0,
            tagged: 0,
            latency: Histogram::new(),
            kernel: 0,
            real_minus_mono: crate::sys::realtime_ns().wrapping_sub(crate::sys::monotonic_ns()),
            streams: {
                let mut m = HashMap::with_hasher(BuildHasherDefault::<KeyHasher>::default());
                m.reserve(MAX_STREAMS);
                m
            },
            tuples: set,
        }
    }

    /// Sequence numbers missing across streams (below each stream's highest).
    pub fn lost(&self) -> u64 {
        self.streams
            .values()
            .fold(0u64, |a, s| a.saturating_add(s.missing))
    }

    /// Streams seen.
    pub fn streams(&self) -> usize {
        self.streams.len()
    }

    /// Distinct 5-tuples seen (at most [`MAX_TUPLES`]).
    pub fn tuples(&self) -> usize {
        self.tuples.len()
    }

    /// Accounts one received frame at `now_ns` (`CLOCK_MONOTONIC`); `vlan_stripped` when the
    /// device took a VLAN tag out of it into metadata.
    #[inline]
    pub fn frame(&mut self, frame: &[u8], vlan_stripped: bool, now_ns: u64) {
        match parse(frame) {
            Some(p) if self.streams.len() < MAX_STREAMS || self.streams.contains_key(&p.stream) => {
                self.received += 1;
                self.kernel += u64::from(p.kernel);
                if p.tagged || vlan_stripped {
                    self.tagged += 1;
                }
                if let Some(ts) = p.ts {
                    let now = if p.kernel {
                        now_ns.wrapping_add(self.real_minus_mono)
                    } else {
                        now_ns
                    };
                    let lat = (now & TS_MASK).wrapping_sub(ts) & TS_MASK;
                    if lat < MAX_LATENCY_NS {
                        self.latency.record(lat);
                    }
                }
                if self.tuples.len() < MAX_TUPLES {
                    self.tuples.insert(p.tuple);
                }
                self.sequence(p.stream, p.seq, p.kernel, p.ts);
            }
            _ => self.other += 1,
        }
    }

    /// Accounts sequence number `seq` of `stream`. `kernel`: a kernel pktgen stream, which
    /// counts from 1, and whose id is not unique per run (DSCP only) and whose 32-bit numbers
    /// wrap, so a number far behind the highest starts the stream over (a new run, or the
    /// wrap) instead of counting as a late frame.
    fn sequence(&mut self, stream: u32, raw: u64, kernel: bool, ts: Option<u64>) {
        let first_seq = u64::from(kernel);
        let Some(s) = self.streams.get_mut(&stream) else {
            // The stream's first frame: everything from the sender's first number is missing.
            let mut n = Stream::starting_at(raw, raw.saturating_sub(first_seq));
            n.latest_ts = ts.filter(|_| kernel);
            self.streams.insert(stream, n);
            return;
        };
        let mut seq = raw;
        if kernel {
            // 32-bit numbers: take the one nearest the highest (serial-number arithmetic),
            // so the wrap from 2^32 - 1 to 0 is one step and frames around it stay in order.
            let d = (raw as u32).wrapping_sub(s.highest as u32) as i32;
            seq = s.highest.checked_add_signed(i64::from(d)).unwrap_or(raw);
            let newer = match (ts, s.latest_ts) {
                (Some(t), Some(l)) => {
                    let d = t.wrapping_sub(l) & TS_MASK;
                    d != 0 && d < 1 << 47
                }
                _ => false,
            };
            let timed = ts.is_some() && s.latest_ts.is_some();
            let continues = seq > s.highest && seq - s.highest <= WINDOW;
            // A new run starts at 1: a small number that does not continue the stream and
            // was sent after every frame seen (or, without send times, is far from it).
            let new_run = raw < WINDOW
                && !continues
                && if timed {
                    newer
                } else {
                    seq.abs_diff(s.highest) >= WINDOW
                };
            if newer || s.latest_ts.is_none() {
                s.latest_ts = ts;
            }
            if new_run {
                // What it missed so far stays missed.
                let missing = s.missing.saturating_add(raw.saturating_sub(first_seq));
                *s = Stream::starting_at(raw, missing);
                s.latest_ts = ts;
                return;
            }
        }
        if seq > s.highest {
            // New highest: the numbers skipped are missing (until they arrive late).
            let gap = seq - s.highest - 1;
            s.missing = s.missing.saturating_add(gap);
            if gap + 1 >= WINDOW {
                s.window = [0; (WINDOW / 64) as usize];
            } else {
                for x in s.highest + 1..=seq {
                    let (w, b) = s.bit(x);
                    *w &= !b;
                }
            }
            s.highest = seq;
            let (w, b) = s.bit(seq);
            *w |= b;
        } else if s.highest - seq >= WINDOW {
            // Too old to tell a duplicate from a late frame: counted late.
            self.reordered += 1;
            s.missing = s.missing.saturating_sub(1);
        } else {
            let (w, b) = s.bit(seq);
            if *w & b != 0 {
                self.dup += 1;
            } else {
                *w |= b;
                self.reordered += 1;
                s.missing = s.missing.saturating_sub(1);
            }
        }
    }

    /// Adds another receiver's counts (streams are assumed disjoint by id; equal ids merge
    /// their counters).
    pub fn merge(&mut self, o: &Self) {
        self.received += o.received;
        self.other += o.other;
        self.reordered += o.reordered;
        self.dup += o.dup;
        self.tagged += o.tagged;
        self.kernel += o.kernel;
        self.latency.merge(&o.latency);
        for (id, b) in &o.streams {
            let room = self.streams.len() < MAX_STREAMS;
            match self.streams.get_mut(id) {
                Some(a) => a.missing = a.missing.saturating_add(b.missing),
                None if room => {
                    self.streams.insert(*id, b.clone());
                }
                None => {}
            }
        }
        for t in &o.tuples {
            if self.tuples.len() < MAX_TUPLES {
                self.tuples.insert(*t);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::tests::spec;
    use crate::frame::{Cursor, FrameSpec, Template};

    fn template(vlan: Option<u16>, ipv6: bool, flows: u32) -> Template {
        Template::new(&FrameSpec {
            flows: Some(flows),
            vlan,
            ..spec(ipv6)
        })
        .unwrap()
    }

    fn frame(t: &Template, stream: u16, seq: u64, flow: usize, ts: u64) -> Vec<u8> {
        let mut b = vec![0u8; t.len()];
        t.write(&mut b, flow, stream, seq, ts);
        b
    }

    #[test]
    fn generated_frames_parse_back_and_others_do_not() {
        for (vlan, ipv6) in [
            (None, false),
            (Some(42), false),
            (None, true),
            (Some(7), true),
        ] {
            let t = template(vlan, ipv6, 1);
            let p = parse(&frame(&t, 3, 99, 0, 1 << 50 | 12345)).unwrap();
            assert_eq!(
                (p.stream, p.seq, p.ts, p.tagged),
                (3, 99, Some(12345), vlan.is_some())
            );
        }
        let t = template(None, false, 1);
        let mut f = frame(&t, 0, 0, 0, 0);
        f[42] ^= 1; // magic
        assert_eq!(parse(&f), None);
        assert_eq!(parse(&f[..30]), None);
        assert_eq!(parse(&[]), None);
    }

    /// `t`'s frame with the kernel pktgen's header as payload, DSCP `dscp` and send time
    /// `secs`.`usecs`.
    fn kernel_frame(t: &Template, dscp: u8, seq: u32, secs: u32, usecs: u32) -> Vec<u8> {
        let mut f = frame(t, 0, 0, 0, 0);
        let at = t.spec().header_len();
        let l3 = at - 8 - if t.spec().ipv6 { 40 } else { 20 };
        if t.spec().ipv6 {
            f[l3] = 0x60 | dscp >> 2;
            f[l3 + 1] = (dscp << 6) | (f[l3 + 1] & 0x0f);
        } else {
            f[l3 + 1] = dscp << 2;
        }
        for (i, w) in [KERNEL_MAGIC, seq, secs, usecs].into_iter().enumerate() {
            f[at + 4 * i..at + 4 * i + 4].copy_from_slice(&w.to_be_bytes());
        }
        f
    }

    #[test]
    fn kernel_pktgen_frames_parse_with_their_dscp_as_stream() {
        for (vlan, ipv6) in [(None, false), (Some(5), false), (None, true)] {
            let t = template(vlan, ipv6, 1);
            let p = parse(&kernel_frame(&t, 3, 7, 2, 500)).unwrap();
            assert_eq!(
                (p.stream, p.seq, p.ts, p.kernel, p.tagged),
                (
                    KERNEL_STREAM | 3,
                    7,
                    Some(2_000_500_000),
                    true,
                    vlan.is_some()
                ),
                "vlan {vlan:?} ipv6 {ipv6}"
            );
            // Our own frame of the same template is not a kernel one; NO_TIMESTAMP is no time.
            assert!(!parse(&frame(&t, 0, 0, 0, 0)).unwrap().kernel);
            assert_eq!(parse(&kernel_frame(&t, 0, 1, 0, 0)).unwrap().ts, None);
        }
    }

    #[test]
    fn kernel_streams_count_loss_from_one_and_latency_on_the_wall_clock() {
        let t = template(None, false, 1);
        let mut st = RxStats::new();
        // Received "now" (monotonic) 30 µs after a wall-clock send time.
        let now_mono = crate::sys::monotonic_ns();
        let sent_real = now_mono.wrapping_add(st.real_minus_mono) - 30_000;
        let (secs, usecs) = (sent_real / 1_000_000_000, sent_real % 1_000_000_000 / 1_000);
        let (secs, usecs) = (u32::try_from(secs).unwrap(), u32::try_from(usecs).unwrap());
        // Thread 0 (DSCP 0): 1 2 4 (3 lost); thread 1 (DSCP 1): 1 2 2 (a duplicate).
        for (dscp, seq) in [(0, 1), (1, 1), (0, 2), (1, 2), (0, 4), (1, 2)] {
            st.frame(&kernel_frame(&t, dscp, seq, secs, usecs), false, now_mono);
        }
        assert_eq!(
            (st.received, st.kernel, st.streams(), st.lost(), st.dup),
            (6, 6, 2, 1, 1)
        );
        // Microsecond timestamps: within a microsecond of 30 µs (and the histogram's bins).
        let p50 = st.latency.percentile(0.5).unwrap();
        assert!((28_000..=32_000).contains(&p50), "{p50}");
        // A kernel stream first seen at 5 lost 1..=4.
        let mut st = RxStats::new();
        st.frame(&kernel_frame(&t, 9, 5, 0, 0), false, now_mono);
        assert_eq!((st.lost(), st.latency.count()), (4, 0));
        // A second kernel run into the same receiver starts at 1 again: a new start, not
        // 10,000 late frames; its own gap (3) is counted, the first run's loss kept.
        let mut st = RxStats::new();
        for seq in (1..=10_000).chain([1, 2, 4]) {
            st.frame(&kernel_frame(&t, 0, seq, 0, 0), false, now_mono);
        }
        assert_eq!(
            (st.received, st.lost(), st.reordered, st.dup),
            (10_003, 1, 0, 0)
        );
    }

    #[test]
    fn loss_reordering_and_duplicates_by_sequence() {
        let t = template(None, false, 1);
        let mut st = RxStats::new();
        let now = 1_000_000;
        // Stream 0: 0 1 2 4 3 3 7 (5 and 6 lost, 3 late, 3 again a duplicate).
        for seq in [0, 1, 2, 4, 3, 3, 7] {
            st.frame(&frame(&t, 0, seq, 0, now - 20_000), false, now);
        }
        // Stream 1 starts at 10: 0..=9 never arrived.
        st.frame(&frame(&t, 1, 10, 0, now - 20_000), false, now);
        st.frame(b"not a generated frame", false, now);
        assert_eq!(st.received, 8);
        assert_eq!(st.other, 1);
        assert_eq!(st.reordered, 1);
        assert_eq!(st.dup, 1);
        assert_eq!(st.lost(), 2 + 10);
        assert_eq!(st.streams(), 2);
        let p50 = st.latency.percentile(0.5).unwrap();
        assert!((19_000..=21_000).contains(&p50), "{p50}");
    }

    #[test]
    fn a_clean_stream_has_no_loss_and_old_duplicates_stay_bounded() {
        let t = template(None, false, 100);
        let mut st = RxStats::new();
        for seq in 0..10_000u64 {
            st.frame(&frame(&t, 0, seq, (seq % 100) as usize, 0), true, 1000);
        }
        assert_eq!(
            (st.received, st.lost(), st.reordered, st.dup),
            (10_000, 0, 0, 0)
        );
        assert_eq!(st.tuples(), 100);
        assert_eq!(st.tagged, 10_000);
        // A duplicate within the window is a dup; far behind it is counted late.
        st.frame(&frame(&t, 0, 9_990, 0, 0), false, 1000);
        assert_eq!(st.dup, 1);
        st.frame(&frame(&t, 0, 10, 0, 0), false, 1000);
        assert_eq!(st.reordered, 1);
        // A big gap.
        st.frame(&frame(&t, 0, 1_000_000, 0, 0), false, 1000);
        assert_eq!(st.lost(), 1_000_000 - 10_000);
        let _ = Cursor::new(0, 0, 1, false);
    }

    // ---- audit tests ----

    /// A real UDP datagram from elsewhere on the link, built with etherparse, padded to the
    /// Ethernet minimum like a real short frame.
    fn foreign_udp(payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 9], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 9], [10, 0, 0, 2], 64)
            .udp(40000, 8125)
            .write(&mut f, payload)
            .unwrap();
        f.resize(f.len().max(60), 0);
        f
    }

    #[test]
    fn lost_saturates_instead_of_overflowing() {
        // Two streams whose first frames carry huge numbers (foreign or corrupted frames with
        // the 2-byte magic): each stream's `missing` is ~2^64, and summing them overflows.
        let t = template(None, false, 1);
        let mut st = RxStats::new();
        st.frame(&frame(&t, 1, u64::MAX, 0, 0), false, 0);
        st.frame(&frame(&t, 2, u64::MAX, 0, 0), false, 0);
        // Debug builds (and tests): panics "attempt to add with overflow"; release: wraps.
        let _ = st.lost();
    }

    #[test]
    fn foreign_udp_starting_with_the_magic_is_not_a_generated_frame() {
        // A StatsD metric (UDP, plain text) whose name starts with "pg" is not a pktgen
        // frame; taken for one, it is a "stream" whose first number is ~8.5e18, all "lost".
        let mut st = RxStats::new();
        st.frame(&foreign_udp(b"pgbouncer.pool.active:3|g"), false, 0);
        assert_eq!(
            (st.received, st.other, st.streams(), st.lost()),
            (0, 1, 0, 0)
        );
    }

    #[test]
    fn the_payload_is_bounded_by_the_udp_length() {
        // A 2-byte UDP datagram "pg" in a frame padded to the 60-byte Ethernet minimum: the
        // 16 "payload" bytes after it are Ethernet padding, not a stream id and sequence.
        let f = foreign_udp(b"pg");
        assert_eq!(f.len(), 60);
        assert_eq!(parse(&f), None);
    }

    #[test]
    fn mangled_and_truncated_frames_never_panic() {
        // Every truncation and many random corruptions of valid frames (ours and the
        // kernel's, IPv4/IPv6, tagged or not), plus random bytes.
        let mut x: u64 = 0x1234_5678_9abc_def1;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut st = RxStats::new();
        for (vlan, ipv6) in [
            (None, false),
            (Some(5), false),
            (None, true),
            (Some(7), true),
        ] {
            let t = template(vlan, ipv6, 1);
            for base in [frame(&t, 1, 5, 0, 7), kernel_frame(&t, 3, 9, 1, 2)] {
                for n in 0..=base.len() {
                    st.frame(&base[..n], false, 0);
                }
                for _ in 0..20_000 {
                    let mut f = base.clone();
                    for _ in 0..(rnd() % 4 + 1) {
                        let i = (rnd() as usize) % f.len();
                        f[i] = rnd() as u8;
                    }
                    let n = (rnd() as usize) % (f.len() + 1);
                    st.frame(&f[..n], rnd() & 1 == 0, rnd());
                }
            }
        }
        for _ in 0..20_000 {
            let len = (rnd() % 128) as usize;
            let f: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
            st.frame(&f, false, rnd());
        }
    }

    /// A kernel pktgen frame of DSCP 0 with number `seq`, sent at `secs` s + `seq` µs of
    /// `CLOCK_REALTIME` (the kernel stamps every frame; `--mode kernel` never sets
    /// `NO_TIMESTAMP`).
    fn kframe(t: &Template, seq: u32, secs: u32) -> Vec<u8> {
        let us = u64::from(seq);
        let secs = secs + u32::try_from(us / 1_000_000).unwrap();
        kernel_frame(t, 0, seq, secs, u32::try_from(us % 1_000_000).unwrap())
    }

    #[test]
    fn a_second_short_kernel_run_is_a_new_run_not_duplicates() {
        // Docs: "a number far behind the stream's highest starts the stream over (a second
        // kernel run into the same rx ...)". Two runs of 1,000 frames each (e.g. `--count
        // 1000`, twice, 100 s apart): nothing lost, nothing duplicated.
        let t = template(None, false, 1);
        let mut st = RxStats::new();
        for seq in 1..=1000 {
            st.frame(&kframe(&t, seq, 100), false, 0);
        }
        for seq in 1..=1000 {
            st.frame(&kframe(&t, seq, 200), false, 0);
        }
        assert_eq!(
            (st.received, st.lost(), st.reordered, st.dup),
            (2000, 0, 0, 0)
        );
    }

    #[test]
    fn one_late_kernel_frame_does_not_count_thousands_lost() {
        // Kernel stream 1..=10_000 with 5_000 late (after 10_000, with its own send time),
        // then 10_001..=10_100. At most 1 lost (if the late frame cannot be credited), not
        // ~10,000.
        let t = template(None, false, 1);
        let mut st = RxStats::new();
        for seq in (1..=10_000u32)
            .filter(|&s| s != 5_000)
            .chain([5_000])
            .chain(10_001..=10_100)
        {
            st.frame(&kframe(&t, seq, 100), false, 0);
        }
        assert!(st.lost() <= 1, "lost {}", st.lost());
    }

    #[test]
    fn a_kernel_frame_reordered_across_the_32_bit_wrap_is_one_reordered_frame() {
        // The kernel's 32-bit number wraps to 0; 4294967295 arrives just after 0.
        let t = template(None, false, 1);
        let mut st = RxStats::new();
        let at = |seq: u32, k: u32| kernel_frame(&t, 0, seq, 1000, k);
        st.frame(&at(4_294_967_290, 0), false, 0);
        let before = st.lost(); // 4294967289: the run's start was missed
        for (k, seq) in [
            (1, 4_294_967_291),
            (2, 4_294_967_292),
            (3, 4_294_967_293),
            (4, 4_294_967_294),
            (6, 0),
            (5, 4_294_967_295),
            (7, 1),
            (8, 2),
        ] {
            st.frame(&at(seq, k), false, 0);
        }
        assert_eq!(st.lost() - before, 0, "nothing lost across the wrap");
        assert_eq!((st.reordered, st.dup), (1, 0));
    }
}
