//! Runs the fuzz target bodies under `cargo test`, on stable, without libFuzzer:
//!
//! - every file under `corpus/<target>/` (seeds) and `regressions/<target>/` (crashers found by
//!   fuzzing, kept once fixed) goes through its target's body;
//! - a fixed-seed pseudo-random run per target: random inputs shaped like the target's input
//!   (frames with a plausible EtherType and IP protocol, op sequences, JSON-ish frames), and
//!   mutations of every seed (all truncations, byte flips, byte insertions and deletions).
//!
//! A failure prints the input as hex; save it under `regressions/<target>/` to keep it.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::fs;
use std::path::{Path, PathBuf};

/// Random inputs per target in the pseudo-random run.
const RANDOM_INPUTS: usize = 20_000;
/// Mutations per seed file.
const MUTATIONS_PER_SEED: usize = 300;

/// xorshift64*: small, deterministic, good enough to spread inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).unwrap()).unwrap()
    }

    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len())]
    }
}

fn dir(kind: &str, target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(kind)
        .join(target)
}

/// The input files of `target` under `kind` (`corpus` or `regressions`), dot files skipped.
fn inputs(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let d = dir(kind, target);
    let Ok(entries) = fs::read_dir(&d) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .map(|p| {
            let data = fs::read(&p).unwrap();
            (p, data)
        })
        .collect();
    out.sort();
    out
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs one input; on a panic, reports which input it was before failing the test.
fn run_reporting(target: &str, what: &str, data: &[u8]) {
    let r = std::panic::catch_unwind(|| vswitch_fuzz::run(target, data));
    match r {
        Ok(known) => assert!(known, "no fuzz target named {target}"),
        Err(e) => {
            eprintln!(
                "{target}: {what} failed; input ({} bytes): {}",
                data.len(),
                hex(data)
            );
            std::panic::resume_unwind(e);
        }
    }
}

fn replay_dir(target: &str, kind: &str) -> usize {
    let files = inputs(kind, target);
    for (path, data) in &files {
        run_reporting(target, &path.display().to_string(), data);
    }
    files.len()
}

/// A random mutation of `seed`.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(6) {
            0 if !v.is_empty() => {
                let at = rng.below(v.len());
                v[at] = rng.byte();
            }
            1 if !v.is_empty() => {
                let at = rng.below(v.len());
                v[at] ^= 1 << rng.below(8);
            }
            2 => {
                let at = rng.below(v.len() + 1);
                let b = rng.byte();
                v.insert(at, b);
            }
            3 if !v.is_empty() => {
                let at = rng.below(v.len());
                v.remove(at);
            }
            4 if !v.is_empty() => {
                // An "interesting" value in a 16-bit field (lengths, EtherTypes, ports).
                let at = rng.below(v.len());
                let x: u16 = rng.pick(&[
                    0, 1, 4, 7, 8, 20, 40, 0x7f, 0x80, 0xff, 0x100, 0x5dc, 0xffff,
                ]);
                let x = x.to_be_bytes();
                v[at] = x[0];
                if at + 1 < v.len() {
                    v[at + 1] = x[1];
                }
            }
            _ => {
                let cut = rng.below(v.len() + 1);
                v.truncate(cut);
            }
        }
    }
    v
}

/// Runs every truncation of each seed and random mutations of it.
fn mutate_seeds(target: &str, rng: &mut Rng) {
    let seeds: Vec<Vec<u8>> = inputs("corpus", target)
        .into_iter()
        .chain(inputs("regressions", target))
        .map(|(_, d)| d)
        .collect();
    for seed in &seeds {
        for len in 0..seed.len() {
            run_reporting(target, &format!("truncation to {len}"), &seed[..len]);
        }
        for i in 0..MUTATIONS_PER_SEED {
            let m = mutate(rng, seed);
            run_reporting(target, &format!("mutation {i}"), &m);
        }
    }
    // Seeds spliced together (frames with foreign payloads, op sequences with foreign tails).
    for i in 0..seeds.len() * 20 {
        if seeds.len() < 2 {
            break;
        }
        let (a, b) = (
            &seeds[rng.below(seeds.len())],
            &seeds[rng.below(seeds.len())],
        );
        let mut m = a[..rng.below(a.len() + 1)].to_vec();
        m.extend_from_slice(&b[rng.below(b.len() + 1)..]);
        run_reporting(target, &format!("splice {i}"), &m);
    }
}

/// A random frame with a plausible EtherType, IP version/IHL and IP protocol.
fn random_frame(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(160);
    let mut f = rng.bytes(len);
    let mut l3 = 14;
    if f.len() >= 14 {
        let ty: u16 = rng.pick(&[
            0x0800, 0x86dd, 0x0806, 0x8100, 0x88a8, 0x0800, 0x86dd, 0x1234,
        ]);
        f[12..14].copy_from_slice(&ty.to_be_bytes());
        if (ty == 0x8100 || ty == 0x88a8) && f.len() >= 18 {
            let inner: u16 = rng.pick(&[0x0800, 0x86dd, 0x0806, 0x8100]);
            f[16..18].copy_from_slice(&inner.to_be_bytes());
            l3 = 18;
        }
    }
    let proto: u8 = rng.pick(&[1, 6, 17, 58, 0, 43, 44, 60, 59]);
    if f.len() > l3 + 9 {
        match rng.below(3) {
            0 => {
                f[l3] = 0x45;
                f[l3 + 9] = proto;
                // Total length within the frame most of the time.
                let room = f.len() - l3;
                let total = u16::try_from(20 + rng.below(room.saturating_sub(19).max(1))).unwrap();
                f[l3 + 2..l3 + 4].copy_from_slice(&total.to_be_bytes());
                if rng.below(2) == 0 {
                    f[l3 + 6] = 0;
                    f[l3 + 7] = 0;
                }
            }
            1 => {
                f[l3] = 0x60;
                f[l3 + 6] = proto;
                let room = f.len().saturating_sub(l3 + 40);
                let plen = u16::try_from(rng.below(room + 1)).unwrap();
                f[l3 + 4..l3 + 6].copy_from_slice(&plen.to_be_bytes());
            }
            _ => {}
        }
    }
    f
}

/// A random op sequence for `mac_table_ops`.
fn random_ops(rng: &mut Rng) -> Vec<u8> {
    let n = rng.below(200);
    let mut v = vec![rng.byte()];
    for _ in 0..n {
        // Mostly learns and lookups, as traffic would.
        let op = rng.pick(&[0u8, 1, 2, 3, 4, 0, 3, 5, 6, 7]);
        v.push(op);
        v.push(rng.byte());
        v.push(rng.byte());
    }
    v
}

/// A random control-channel buffer: framed JSON-like text, or raw bytes.
fn random_control(rng: &mut Rng) -> Vec<u8> {
    const PIECES: [&str; 24] = [
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\"version\"",
        "\"xid\"",
        "\"type\"",
        "\"body\"",
        "1",
        "0",
        "-1",
        "1e9",
        "18446744073709551616",
        "\"port_add\"",
        "\"echo\"",
        "\"name\"",
        "\"vlan\"",
        "\"trunks\"",
        "null",
        "true",
        "\"\\u00e9\"",
        "\"mac_flush_reply\"",
    ];
    let mut text = Vec::new();
    for _ in 0..rng.below(40) {
        text.extend_from_slice(rng.pick(&PIECES).as_bytes());
    }
    if rng.below(4) == 0 {
        let n = rng.below(64);
        text = rng.bytes(n);
    }
    let mut v = Vec::new();
    if rng.below(3) != 0 {
        let len = if rng.below(8) == 0 {
            u32::try_from(rng.next() >> 32).unwrap()
        } else {
            u32::try_from(text.len()).unwrap()
        };
        v.extend_from_slice(&len.to_be_bytes());
    }
    v.extend_from_slice(&text);
    v
}

/// A virtio-net header and a frame for `offload_segment`: GSO kinds with and without the
/// tunnel bits, plausible and absurd sizes and offsets, and a frame that is sometimes wrapped
/// in a VXLAN or Geneve tunnel with matching lengths.
fn random_offload(rng: &mut Rng) -> Vec<u8> {
    let mut frame = random_frame(rng);
    // A longer payload now and then, so that segmentation has something to cut.
    if rng.below(2) == 0 {
        let extra = rng.below(3000);
        let fill = rng.byte();
        frame.extend(std::iter::repeat_n(fill, extra));
        vswitch_fuzz::fix_ipv4_len(&mut frame, 14);
    }
    let mut inner_l4 = 34;
    if rng.below(3) == 0 {
        let geneve = (rng.below(2) == 0).then(|| 4 * rng.below(3));
        let csum = if rng.below(2) == 0 { 0 } else { 0x1234 };
        let (f, at) = vswitch_fuzz::udp_tunnel(&frame, geneve, csum);
        frame = f;
        inner_l4 += at;
    }
    let gso: u8 = rng.pick(&[0, 1, 4, 5, 3, 0x21, 0x41, 0x24, 0x81, 0xa1, 9, 0x60]);
    let flags: u8 = rng.pick(&[0, 1, 1, 1, 2, 9, 3]);
    let gso_size: u16 = rng.pick(&[0, 7, 100, 536, 1448, 9000, 65535]);
    let csum_start = match rng.below(4) {
        0 => u16::try_from(rng.below(frame.len() + 16)).unwrap_or(0),
        1 => 34,
        _ => u16::try_from(inner_l4).unwrap_or(0),
    };
    let csum_offset: u16 = rng.pick(&[16, 6, 0, 17, 1000]);
    vswitch_fuzz::with_vnet_hdr(flags, gso, gso_size, (csum_start, csum_offset), &frame)
}

fn random_run(target: &str, seed: u64, gen_input: fn(&mut Rng) -> Vec<u8>) {
    let mut rng = Rng(seed);
    for i in 0..RANDOM_INPUTS {
        let data = gen_input(&mut rng);
        run_reporting(target, &format!("random input {i}"), &data);
    }
    mutate_seeds(target, &mut rng);
}

#[test]
fn every_target_has_seeds_and_a_regressions_dir() {
    for t in vswitch_fuzz::TARGETS {
        assert!(!inputs("corpus", t).is_empty(), "corpus/{t} has no seed");
        assert!(dir("regressions", t).is_dir(), "regressions/{t} is missing");
    }
}

#[test]
fn every_parse_frame_seed_is_a_frame_the_datapath_accepts() {
    // Seeds that the parser rejects would only exercise its first few checks.
    for (path, frame) in inputs("corpus", "parse_frame") {
        let r = datapath::flow::extract(&frame, 1);
        assert!(r.is_ok(), "{}: {r:?}", path.display());
    }
}

#[test]
fn every_offload_segment_seed_is_segmented_or_completed() {
    // Seeds the offload path refuses would only exercise its first checks.
    for (path, data) in inputs("corpus", "offload_segment") {
        let (hdr, frame) = data.split_first_chunk::<10>().unwrap();
        let off = datapath::sys::tun::decode_vnet_hdr(hdr, frame);
        let mut buf = datapath::offload::SegmentBuf::new();
        let n = datapath::offload::segment(frame, &off, &mut buf, &mut |_| {});
        // 600+ payload bytes at 100 per segment.
        let want = if off.is_gso() { 7 } else { 1 };
        assert!(
            n.is_ok_and(|n| n >= want),
            "{}: {n:?} (offload {off:?})",
            path.display()
        );
    }
}

#[test]
fn corpus_and_regressions_replay_cleanly() {
    for t in vswitch_fuzz::TARGETS {
        replay_dir(t, "corpus");
        replay_dir(t, "regressions");
    }
}

#[test]
fn parse_frame_survives_random_frames_and_seed_mutations() {
    random_run("parse_frame", 0x9e37_79b9_7f4a_7c15, random_frame);
}

#[test]
fn mac_table_ops_survives_random_op_sequences_and_seed_mutations() {
    random_run("mac_table_ops", 0xd1b5_4a32_d192_ed03, random_ops);
}

#[test]
fn control_decode_survives_random_buffers_and_seed_mutations() {
    random_run("control_decode", 0x8cb9_2ba7_2f3d_8dd7, random_control);
}

#[test]
fn offload_segment_survives_random_headers_and_frames_and_seed_mutations() {
    random_run("offload_segment", 0x2545_f491_4f6c_dd1d, random_offload);
}
