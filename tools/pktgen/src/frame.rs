//! Frame templates: every header of every flow is built once, with the ones'-complement sum of
//! everything that does not change per frame; sending a frame is then a copy of the flow's
//! headers, four stores into the payload and a checksum completed from nine 16-bit words.
//!
//! Frame layout (all fields big-endian):
//!
//! ```text
//! Ethernet (14) [802.1Q tag (4)] IPv4 (20) | IPv6 (40)  UDP (8)  payload (size - headers)
//!
//! payload:  0      2       4                12                 18
//!           +------+-------+----------------+------------------+------------ - -
//!           | magic| stream| sequence (u64) | timestamp (u48)  | zeros ...
//!           +------+-------+----------------+------------------+------------ - -
//! ```
//!
//! - `magic` is [`MAGIC`]; `stream` identifies the sending thread: a per-run nonce in the high
//!   byte, the thread index in the low byte, so two runs into one receiver stay apart;
//!   `sequence` counts from 0 per stream; `timestamp` is the low 48 bits of `CLOCK_MONOTONIC` in ns (wraps after 78 hours;
//!   a receiver takes differences modulo 2^48), read just before the frame's batch is queued.
//! - 18 bytes, so a 60-byte IPv4 frame (the Ethernet minimum without FCS) carries all of it.
//!   Larger headers (802.1Q, IPv6) need larger frames: [`FrameSpec::min_size`].
//! - The IPv4 header checksum and the UDP checksum (IPv4 and IPv6) are always correct.

use std::fmt;

use crate::args::{IpRange, Mac, PortRange};

/// First two payload bytes of every generated frame.
pub const MAGIC: u16 = 0x7067; // "pg"
/// Bytes of the sequence/timestamp payload.
pub const PAYLOAD_LEN: usize = 18;
/// Smallest `--size` accepted (Ethernet minimum without FCS).
pub const MIN_SIZE: usize = 60;
/// Largest `--size` accepted.
pub const MAX_SIZE: usize = 9000;
/// Most distinct flows (5-tuples) one run cycles through.
pub const MAX_FLOWS: u32 = 65536;
/// Mask of the timestamp field.
pub const TS_MASK: u64 = (1 << 48) - 1;

const ETH_LEN: usize = 14;
const VLAN_LEN: usize = 4;
const IPV4_LEN: usize = 20;
const IPV6_LEN: usize = 40;
const UDP_LEN: usize = 8;

/// What to generate (validated into a [`Template`] by [`Template::new`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameSpec {
    /// Frame length without FCS; `None`: 60, or the smallest that holds the headers.
    pub size: Option<usize>,
    /// Ethernet source.
    pub src_mac: Mac,
    /// Distinct Ethernet sources (at least 1): flow `i` sends from `src_mac` with
    /// `i % src_macs` added to its last three bytes; there are at least this many flows
    /// (a switch's MAC table under a flood of stations, or a MAC-flooding attack).
    pub src_macs: u32,
    /// Ethernet destination.
    pub dst_mac: Mac,
    /// Source addresses.
    pub src_ip: IpRange,
    /// Destination addresses.
    pub dst_ip: IpRange,
    /// Source ports.
    pub src_port: PortRange,
    /// Destination ports.
    pub dst_port: PortRange,
    /// Distinct flows; `None`: every combination of the ranges (at most [`MAX_FLOWS`]).
    pub flows: Option<u32>,
    /// 802.1Q VLAN id to tag frames with.
    pub vlan: Option<u16>,
    /// IPv6 (else IPv4).
    pub ipv6: bool,
}

impl FrameSpec {
    /// Bytes before the payload.
    pub fn header_len(&self) -> usize {
        ETH_LEN
            + if self.vlan.is_some() { VLAN_LEN } else { 0 }
            + if self.ipv6 { IPV6_LEN } else { IPV4_LEN }
            + UDP_LEN
    }

    /// Smallest frame that holds the headers and the payload.
    pub fn min_size(&self) -> usize {
        (self.header_len() + PAYLOAD_LEN).max(MIN_SIZE)
    }
}

/// Why a [`FrameSpec`] cannot be generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError(pub String);

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SpecError {}

/// One flow's addresses and ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuple {
    /// Source address (IPv4: first 4 bytes).
    pub src: [u8; 16],
    /// Destination address (IPv4: first 4 bytes).
    pub dst: [u8; 16],
    /// UDP source port.
    pub sport: u16,
    /// UDP destination port.
    pub dport: u16,
}

/// Ones'-complement sum of big-endian 16-bit words (an odd last byte is padded with zero).
fn sum16(bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(2);
    let mut s: u64 = chunks
        .by_ref()
        .map(|w| u64::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    if let [last] = chunks.remainder() {
        s += u64::from(*last) << 8;
    }
    s
}

/// Folds a sum into 16 bits (end-around carry).
#[inline]
fn fold(mut s: u64) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// Every flow's headers, ready to copy.
#[derive(Debug)]
pub struct Template {
    len: usize,
    hdr_len: usize,
    /// Offset of the UDP checksum field.
    csum_off: usize,
    flows: usize,
    /// `flows * hdr_len` bytes: each flow's headers with a zero UDP checksum.
    headers: Box<[u8]>,
    /// Per flow: ones'-complement sum of the UDP pseudo-header, header and magic.
    partial: Box<[u32]>,
    spec: FrameSpec,
}

impl Template {
    /// Checks `spec` and builds every flow's headers.
    ///
    /// # Errors
    /// A size out of range or too small for the headers, a VLAN id above 4094, address ranges
    /// of the wrong family, or more flows than the ranges (or [`MAX_FLOWS`]) allow.
    pub fn new(spec: &FrameSpec) -> Result<Self, SpecError> {
        let err = |s: String| Err(SpecError(s));
        let min = spec.min_size();
        let len = match spec.size {
            Some(s) if !(MIN_SIZE..=MAX_SIZE).contains(&s) => {
                return err(format!("--size {s} out of range {MIN_SIZE}..={MAX_SIZE}"));
            }
            Some(s) if s < min => {
                return err(format!(
                    "--size {s} is too small for {}{} UDP headers and the {PAYLOAD_LEN}-byte \
                     payload: at least {min}",
                    if spec.ipv6 { "IPv6" } else { "IPv4" },
                    if spec.vlan.is_some() { " + 802.1Q" } else { "" },
                ));
            }
            Some(s) => s,
            None => min,
        };
        if let Some(v) = spec.vlan
            && !(1..=4094).contains(&v)
        {
            return err(format!("--vlan {v} out of range 1..=4094"));
        }
        if spec.src_ip.v6 != spec.ipv6 || spec.dst_ip.v6 != spec.ipv6 {
            return err("address family of --src-ip/--dst-ip does not match --ipv6".into());
        }
        let tuples = flow_tuples(spec)?;
        let hdr_len = spec.header_len();
        let l3_off = ETH_LEN + if spec.vlan.is_some() { VLAN_LEN } else { 0 };
        let l4_off = l3_off + if spec.ipv6 { IPV6_LEN } else { IPV4_LEN };
        let mut headers = vec![0u8; tuples.len() * hdr_len].into_boxed_slice();
        let mut partial = vec![0u32; tuples.len()].into_boxed_slice();
        for (i, ((h, p), t)) in headers
            .chunks_exact_mut(hdr_len)
            .zip(partial.iter_mut())
            .zip(&tuples)
            .enumerate()
        {
            *p = write_headers(h, spec, t, len, l3_off, l4_off);
            if spec.src_macs > 1 {
                // The checksums do not cover the MACs.
                #[expect(clippy::cast_possible_truncation, reason = "i < MAX_FLOWS")]
                let add = (i as u32) % spec.src_macs;
                let low = u32::from_be_bytes([0, h[9], h[10], h[11]]).wrapping_add(add);
                h[9..12].copy_from_slice(&low.to_be_bytes()[1..]);
            }
        }
        Ok(Self {
            len,
            hdr_len,
            csum_off: l4_off + 6,
            flows: tuples.len(),
            headers,
            partial,
            spec: spec.clone(),
        })
    }

    /// Frame length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never empty; here for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Number of flows.
    pub fn flows(&self) -> usize {
        self.flows
    }

    /// The spec it was built from.
    pub fn spec(&self) -> &FrameSpec {
        &self.spec
    }

    /// Offset of the UDP header in every frame.
    pub fn udp_offset(&self) -> usize {
        self.csum_off - 6
    }

    /// Flow 0's UDP source port when the flows differ in nothing but that port, counting up
    /// by one from flow 0 (`--flows N` with one address each way and one destination port, or
    /// a `--src-port` range alone): the traffic an in-kernel sender that rewrites only that
    /// port (`--mode xdplive`) can send. `None` otherwise.
    pub fn source_port_sweep(&self) -> Option<u16> {
        let (h, uo) = (self.hdr_len, self.udp_offset());
        let first_hdr = &self.headers[..h];
        let first = u16::from_be_bytes([first_hdr[uo], first_hdr[uo + 1]]);
        let sweeps = self.headers.chunks_exact(h).enumerate().all(|(i, hi)| {
            let port = u16::from_be_bytes([hi[uo], hi[uo + 1]]);
            u32::from(port) == u32::from(first) + i as u32
                && hi[..uo] == first_hdr[..uo]
                && hi[uo + 2..] == first_hdr[uo + 2..]
        });
        sweeps.then_some(first)
    }

    /// Writes flow `flow`'s frame with `stream`, `seq` and `ts_ns` into `buf[..self.len()]`.
    /// Only the headers and the 18 payload bytes are written: the rest of `buf` must be zero
    /// (it is in a freshly zeroed buffer, and stays so across calls).
    ///
    /// # Panics
    /// When `buf` is shorter than the headers plus payload or `flow >= flows()` (callers size
    /// both once).
    #[inline]
    pub fn write(&self, buf: &mut [u8], flow: usize, stream: u16, seq: u64, ts_ns: u64) {
        let h = self.hdr_len;
        buf[..h].copy_from_slice(&self.headers[flow * h..(flow + 1) * h]);
        let ts = ts_ns & TS_MASK;
        let p = &mut buf[h..h + PAYLOAD_LEN];
        p[0..2].copy_from_slice(&MAGIC.to_be_bytes());
        p[2..4].copy_from_slice(&stream.to_be_bytes());
        p[4..12].copy_from_slice(&seq.to_be_bytes());
        p[12..18].copy_from_slice(&ts.to_be_bytes()[2..]);
        let s = u64::from(self.partial[flow])
            + u64::from(stream)
            + (seq >> 48)
            + ((seq >> 32) & 0xffff)
            + ((seq >> 16) & 0xffff)
            + (seq & 0xffff)
            + (ts >> 32)
            + ((ts >> 16) & 0xffff)
            + (ts & 0xffff);
        let c = !fold(s);
        let c = if c == 0 { 0xffff } else { c };
        buf[self.csum_off..self.csum_off + 2].copy_from_slice(&c.to_be_bytes());
    }
}

/// The flows' tuples: flow `i` is `i` written in mixed radix over (source port, destination
/// port, source address, destination address), source port fastest.
fn flow_tuples(spec: &FrameSpec) -> Result<Vec<Tuple>, SpecError> {
    let mut sport = spec.src_port;
    let others = u128::from(spec.dst_port.len()) * spec.src_ip.len() * spec.dst_ip.len();
    let all = u128::from(sport.len()).saturating_mul(others);
    let flows = match spec.flows {
        Some(0) => return Err(SpecError("--flows must be at least 1".into())),
        Some(f) if f > MAX_FLOWS => {
            return Err(SpecError(format!(
                "--flows {f} above the maximum {MAX_FLOWS}"
            )));
        }
        Some(f) => f,
        None => u32::try_from(all.min(u128::from(MAX_FLOWS)))
            .unwrap_or(MAX_FLOWS)
            .max(spec.src_macs),
    };
    if spec.src_macs == 0 || spec.src_macs > MAX_FLOWS {
        return Err(SpecError(format!(
            "--src-macs {} out of range 1..={MAX_FLOWS}",
            spec.src_macs
        )));
    }
    if flows < spec.src_macs {
        return Err(SpecError(format!(
            "--flows {flows} is fewer than --src-macs {}: each source MAC needs a flow",
            spec.src_macs
        )));
    }
    if u128::from(flows) > all {
        // Widen a single source port into a range starting there.
        let need = u128::from(flows).div_ceil(others);
        let hi = u128::from(sport.lo) + need - 1;
        if sport.explicit_range || hi > 65535 {
            return Err(SpecError(format!(
                "--flows {flows} needs {flows} distinct 5-tuples but the address and port \
                 ranges give only {all}; widen --src-port or --src-ip"
            )));
        }
        sport.hi = hi as u16;
    }
    let nsp = u128::from(sport.len());
    let ndp = u128::from(spec.dst_port.len());
    let nsi = spec.src_ip.len();
    Ok((0..u128::from(flows))
        .map(|i| {
            let (sp, r) = (i % nsp, i / nsp);
            let (dp, r) = (r % ndp, r / ndp);
            let (si, di) = (r % nsi, r / nsi);
            Tuple {
                src: spec.src_ip.nth(si),
                dst: spec.dst_ip.nth(di),
                sport: sport.lo + sp as u16,
                dport: spec.dst_port.lo + dp as u16,
            }
        })
        .collect())
}

/// Writes one flow's headers into `h` (UDP checksum zero) and returns the ones'-complement sum
/// of the UDP pseudo-header, the UDP header and the magic.
fn write_headers(
    h: &mut [u8],
    spec: &FrameSpec,
    t: &Tuple,
    len: usize,
    l3_off: usize,
    l4_off: usize,
) -> u32 {
    h[0..6].copy_from_slice(&spec.dst_mac);
    h[6..12].copy_from_slice(&spec.src_mac);
    let ethertype: u16 = if spec.ipv6 { 0x86dd } else { 0x0800 };
    if let Some(v) = spec.vlan {
        h[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
        h[14..16].copy_from_slice(&v.to_be_bytes());
        h[16..18].copy_from_slice(&ethertype.to_be_bytes());
    } else {
        h[12..14].copy_from_slice(&ethertype.to_be_bytes());
    }
    let udp_len = (len - l4_off) as u16;
    let pseudo;
    if spec.ipv6 {
        let ip = &mut h[l3_off..l4_off];
        ip[0..4].copy_from_slice(&0x6000_0000u32.to_be_bytes());
        ip[4..6].copy_from_slice(&udp_len.to_be_bytes());
        ip[6] = 17; // UDP
        ip[7] = 64; // hop limit
        ip[8..24].copy_from_slice(&t.src);
        ip[24..40].copy_from_slice(&t.dst);
        pseudo = sum16(&t.src) + sum16(&t.dst) + 17 + u64::from(udp_len);
    } else {
        let ip = &mut h[l3_off..l4_off];
        ip[0] = 0x45;
        ip[1] = 0;
        ip[2..4].copy_from_slice(&((len - l3_off) as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&[0, 0]); // id
        ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF
        ip[8] = 64; // TTL
        ip[9] = 17; // UDP
        ip[10..12].copy_from_slice(&[0, 0]);
        ip[12..16].copy_from_slice(&t.src[..4]);
        ip[16..20].copy_from_slice(&t.dst[..4]);
        let c = !fold(sum16(ip));
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        pseudo = sum16(&t.src[..4]) + sum16(&t.dst[..4]) + 17 + u64::from(udp_len);
    }
    let udp = &mut h[l4_off..l4_off + UDP_LEN];
    udp[0..2].copy_from_slice(&t.sport.to_be_bytes());
    udp[2..4].copy_from_slice(&t.dport.to_be_bytes());
    udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]);
    u32::from(fold(pseudo + sum16(udp) + u64::from(MAGIC)))
}

/// One sending thread's position: stream id, next sequence number, next flow.
#[derive(Debug, Clone)]
pub struct Cursor {
    /// Stream id written into every frame.
    pub stream: u16,
    /// Sequence number of the next frame.
    pub seq: u64,
    flow: usize,
    flows: usize,
    rng: u64,
    random: bool,
}

impl Cursor {
    /// Starts at sequence 0 and flow 0; `random` picks each next flow with a xorshift
    /// generator seeded from `thread` (the same flow sequence every run).
    pub fn new(stream: u16, thread: u16, flows: usize, random: bool) -> Self {
        let mut c = Self {
            stream,
            seq: 0,
            flow: 0,
            flows: flows.max(1),
            rng: 0x9e37_79b9_7f4a_7c15
                ^ (u64::from(thread) + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9),
            random,
        };
        if random {
            c.flow = c.next_random();
        }
        c
    }

    /// The flow of the next frame.
    #[inline]
    pub fn flow(&self) -> usize {
        self.flow
    }

    #[inline]
    fn next_random(&mut self) -> usize {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        // Multiply-shift maps x uniformly onto 0..flows without a division.
        ((u128::from(x) * self.flows as u128) >> 64) as usize
    }

    /// Moves to the next frame (after the current one was queued).
    #[inline]
    pub fn advance(&mut self) {
        self.seq += 1;
        self.flow = if self.random {
            self.next_random()
        } else if self.flow + 1 == self.flows {
            0
        } else {
            self.flow + 1
        };
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::args::{parse_ip_range, parse_mac, parse_port_range};
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    use std::collections::HashSet;

    /// The default spec (as the CLI's defaults), IPv4 or IPv6; shared with the stats tests.
    pub(crate) fn spec(ipv6: bool) -> FrameSpec {
        let (s, d) = if ipv6 {
            ("2001:db8::1", "2001:db8::2")
        } else {
            ("198.18.0.1", "198.18.0.2")
        };
        FrameSpec {
            size: None,
            src_mac: [2, 0, 0, 0, 0, 1],
            src_macs: 1,
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_ip: parse_ip_range(s, ipv6).unwrap(),
            dst_ip: parse_ip_range(d, ipv6).unwrap(),
            src_port: PortRange::single(1024),
            dst_port: PortRange::single(9),
            flows: None,
            vlan: None,
            ipv6,
        }
    }

    type Key = (Vec<u8>, Vec<u8>, u16, u16);

    /// Parses `frame` with etherparse, checks both checksums and returns
    /// (vlan id, 5-tuple-ish key, payload).
    fn check(frame: &[u8]) -> (Option<u16>, Key, Vec<u8>) {
        let p = SlicedPacket::from_ethernet(frame).expect("parses");
        let vlan = p.vlan_ids().first().map(|v| v.value());
        let Some(TransportSlice::Udp(udp)) = &p.transport else {
            panic!("not UDP: {:?}", p.transport);
        };
        let payload = udp.payload().to_vec();
        let hdr = udp.to_header();
        let (src, dst, want) = match &p.net {
            Some(NetSlice::Ipv4(ip)) => {
                let h = ip.header().to_header();
                assert_eq!(
                    h.header_checksum,
                    h.calc_header_checksum(),
                    "IPv4 header checksum"
                );
                let c = hdr.calc_checksum_ipv4(&h, &payload).unwrap();
                (h.source.to_vec(), h.destination.to_vec(), c)
            }
            Some(NetSlice::Ipv6(ip)) => {
                let h = ip.header().to_header();
                let c = hdr.calc_checksum_ipv6(&h, &payload).unwrap();
                (h.source.to_vec(), h.destination.to_vec(), c)
            }
            other => panic!("not IP: {other:?}"),
        };
        assert_eq!(hdr.checksum, want, "UDP checksum");
        assert_ne!(hdr.checksum, 0);
        (
            vlan,
            (src, dst, hdr.source_port, hdr.destination_port),
            payload,
        )
    }

    fn frame(t: &Template, c: &Cursor, ts: u64) -> Vec<u8> {
        let mut buf = vec![0u8; t.len()];
        t.write(&mut buf, c.flow(), c.stream, c.seq, ts);
        buf
    }

    #[test]
    fn ipv4_frames_are_60_bytes_with_valid_checksums_and_the_payload() {
        let t = Template::new(&spec(false)).unwrap();
        assert_eq!(t.len(), 60);
        let mut c = Cursor::new(7, 0, t.flows(), false);
        for (seq, ts) in [(0u64, 0u64), (1, 123_456_789), (u64::MAX - 1, u64::MAX)] {
            c.seq = seq;
            let f = frame(&t, &c, ts);
            assert_eq!(f.len(), 60);
            let (vlan, key, payload) = check(&f);
            assert_eq!(vlan, None);
            assert_eq!(key, (vec![198, 18, 0, 1], vec![198, 18, 0, 2], 1024, 9));
            assert_eq!(payload.len(), PAYLOAD_LEN);
            assert_eq!(&payload[0..2], &MAGIC.to_be_bytes());
            assert_eq!(u16::from_be_bytes([payload[2], payload[3]]), 7);
            assert_eq!(u64::from_be_bytes(payload[4..12].try_into().unwrap()), seq);
            let mut t8 = [0u8; 8];
            t8[2..].copy_from_slice(&payload[12..18]);
            assert_eq!(u64::from_be_bytes(t8), ts & TS_MASK);
        }
    }

    #[test]
    fn ipv6_vlan_and_large_frames_have_valid_checksums() {
        for (ipv6, vlan, size, want_len) in [
            (true, None, None, 80),
            (true, Some(42), None, 84),
            (false, Some(42), None, 64),
            (false, None, Some(1500), 1500),
            (true, Some(4094), Some(9000), 9000),
            (false, None, Some(61), 61),
        ] {
            let s = FrameSpec {
                vlan,
                size,
                ..spec(ipv6)
            };
            let t = Template::new(&s).unwrap();
            assert_eq!(t.len(), want_len);
            let mut c = Cursor::new(1, 0, t.flows(), false);
            c.seq = 0x0123_4567_89ab_cdef;
            let f = frame(&t, &c, 0xfedc_ba98_7654_3210);
            let (v, _, payload) = check(&f);
            assert_eq!(v, vlan);
            assert_eq!(payload.len(), want_len - s.header_len());
        }
    }

    #[test]
    fn too_small_or_out_of_range_sizes_are_errors_naming_the_minimum() {
        let e = Template::new(&FrameSpec {
            size: Some(60),
            ..spec(true)
        })
        .unwrap_err();
        assert!(e.0.contains("at least 80"), "{e}");
        for bad in [59, 9001] {
            let e = Template::new(&FrameSpec {
                size: Some(bad),
                ..spec(false)
            })
            .unwrap_err();
            assert!(e.0.contains("out of range"), "{e}");
        }
        let e = Template::new(&FrameSpec {
            vlan: Some(4095),
            ..spec(false)
        })
        .unwrap_err();
        assert!(e.0.contains("--vlan"), "{e}");
    }

    #[test]
    fn flows_cover_distinct_tuples_sequentially_and_randomly() {
        let s = FrameSpec {
            flows: Some(100),
            ..spec(false)
        };
        let t = Template::new(&s).unwrap();
        assert_eq!(t.flows(), 100);
        for random in [false, true] {
            let mut c = Cursor::new(0, 0, t.flows(), random);
            let mut seen = HashSet::new();
            for _ in 0..if random { 2000 } else { 100 } {
                let (_, key, _) = check(&frame(&t, &c, 5));
                seen.insert(key);
                c.advance();
            }
            assert_eq!(seen.len(), 100, "random={random}");
        }
        // Ranges: 4 source addresses × 25 ports = 100 tuples exactly.
        let s = FrameSpec {
            flows: Some(100),
            src_ip: parse_ip_range("10.0.0.1-10.0.0.4", false).unwrap(),
            src_port: parse_port_range("2000-2024").unwrap(),
            ..spec(false)
        };
        let t = Template::new(&s).unwrap();
        let mut c = Cursor::new(0, 0, t.flows(), false);
        let seen: HashSet<_> = (0..100)
            .map(|_| {
                let k = check(&frame(&t, &c, 0)).1;
                c.advance();
                k
            })
            .collect();
        assert_eq!(seen.len(), 100);
        // An explicit range too small for the flows is an error.
        let e = Template::new(&FrameSpec {
            flows: Some(100),
            src_port: parse_port_range("2000-2009").unwrap(),
            ..spec(false)
        })
        .unwrap_err();
        assert!(e.0.contains("distinct"), "{e}");
        for bad in [0, MAX_FLOWS + 1] {
            assert!(
                Template::new(&FrameSpec {
                    flows: Some(bad),
                    ..spec(false)
                })
                .is_err()
            );
        }
    }

    #[test]
    fn a_source_port_sweep_is_recognised_and_nothing_else_is() {
        let with = |f: &dyn Fn(&mut FrameSpec)| {
            let mut s = spec(false);
            f(&mut s);
            Template::new(&s).unwrap().source_port_sweep()
        };
        assert_eq!(with(&|_| {}), Some(1024), "one flow");
        assert_eq!(with(&|s| s.flows = Some(10_000)), Some(1024));
        assert_eq!(
            with(&|s| {
                s.ipv6 = true;
                s.src_ip = parse_ip_range("2001:db8::1", true).unwrap();
                s.dst_ip = parse_ip_range("2001:db8::2", true).unwrap();
                s.vlan = Some(7);
                s.flows = Some(3);
            }),
            Some(1024)
        );
        assert_eq!(
            with(&|s| s.src_port = parse_port_range("5000-5009").unwrap()),
            Some(5000)
        );
        let udp = Template::new(&spec(false)).unwrap().udp_offset();
        assert_eq!(udp, 34);
        for other in [
            &|s: &mut FrameSpec| s.dst_port = parse_port_range("9-10").unwrap(),
            &|s: &mut FrameSpec| s.src_ip = parse_ip_range("10.0.0.1-10.0.0.2", false).unwrap(),
            &|s: &mut FrameSpec| {
                s.src_port = parse_port_range("5000-5001").unwrap();
                s.dst_ip = parse_ip_range("10.0.0.1-10.0.0.2", false).unwrap();
            },
        ] as [&dyn Fn(&mut FrameSpec); 3]
        {
            assert_eq!(with(other), None);
        }
    }

    #[test]
    fn macs_and_destination_ranges_reach_the_frames() {
        let src_mac = parse_mac("02:aa:bb:cc:dd:01").unwrap();
        let dst_mac = parse_mac("0e-11-22-33-44-55").unwrap();
        for (ipv6, range, want) in [
            (
                false,
                "10.1.2.254-10.1.3.1",
                vec![
                    vec![10, 1, 2, 254],
                    vec![10, 1, 2, 255],
                    vec![10, 1, 3, 0],
                    vec![10, 1, 3, 1],
                ],
            ),
            (true, "2001:db8::ffff-2001:db8::1:1", {
                let a = |last: [u8; 4]| {
                    let mut v = vec![0x20, 0x01, 0x0d, 0xb8];
                    v.extend([0; 8]);
                    v.extend(last);
                    v
                };
                vec![a([0, 0, 0xff, 0xff]), a([0, 1, 0, 0]), a([0, 1, 0, 1])]
            }),
        ] {
            let s = FrameSpec {
                src_mac,
                dst_mac,
                dst_ip: parse_ip_range(range, ipv6).unwrap(),
                dst_port: parse_port_range("5000-5001").unwrap(),
                vlan: Some(3),
                ..spec(ipv6)
            };
            let t = Template::new(&s).unwrap();
            assert_eq!(t.flows(), want.len() * 2, "{range}");
            let mut c = Cursor::new(0, 0, t.flows(), false);
            let mut dsts = HashSet::new();
            let mut dports = HashSet::new();
            for _ in 0..t.flows() {
                let f = frame(&t, &c, 0);
                assert_eq!(&f[0..6], &dst_mac, "destination MAC");
                assert_eq!(&f[6..12], &src_mac, "source MAC");
                let (vlan, (_, dst, _, dport), _) = check(&f);
                assert_eq!(vlan, Some(3));
                dsts.insert(dst);
                dports.insert(dport);
                c.advance();
            }
            let want: HashSet<Vec<u8>> = want.into_iter().collect();
            assert_eq!(dsts, want, "{range}");
            assert_eq!(dports, HashSet::from([5000, 5001]), "{range}");
        }
    }

    #[test]
    fn source_macs_count_up_one_per_flow_in_turn() {
        let macs = |t: &Template| -> Vec<Mac> {
            let mut c = Cursor::new(0, 0, t.flows(), false);
            (0..t.flows())
                .map(|_| {
                    let f = frame(t, &c, 0);
                    check(&f);
                    c.advance();
                    f[6..12].try_into().unwrap()
                })
                .collect()
        };
        // Without --flows there is a flow per MAC.
        let t = Template::new(&FrameSpec {
            src_mac: [2, 0, 0, 0, 0xff, 0xfe],
            src_macs: 3,
            ..spec(false)
        })
        .unwrap();
        assert_eq!(t.flows(), 3);
        assert_eq!(
            macs(&t),
            [
                [2, 0, 0, 0, 0xff, 0xfe],
                [2, 0, 0, 0, 0xff, 0xff],
                [2, 0, 0, 1, 0, 0]
            ]
        );
        // With more flows the MACs repeat in turn; with fewer it is an error.
        let t = Template::new(&FrameSpec {
            src_macs: 2,
            flows: Some(4),
            ..spec(false)
        })
        .unwrap();
        let m = macs(&t);
        assert_eq!((m[0], m[1]), (m[2], m[3]));
        assert_ne!(m[0], m[1]);
        for (src_macs, flows) in [(5, Some(4)), (0, None), (MAX_FLOWS + 1, None)] {
            assert!(
                Template::new(&FrameSpec {
                    src_macs,
                    flows,
                    ..spec(false)
                })
                .is_err()
            );
        }
    }

    #[test]
    fn without_flows_every_combination_of_the_ranges_is_used() {
        let s = FrameSpec {
            dst_port: parse_port_range("9-11").unwrap(),
            ..spec(false)
        };
        assert_eq!(Template::new(&s).unwrap().flows(), 3);
        assert_eq!(Template::new(&spec(false)).unwrap().flows(), 1);
    }
}
