//! `vsnet`: traffic for the demo and the integration tests, run inside a test namespace with
//! `ip netns exec NS vsnet …`. TCP streams carry a deterministic byte sequence and both ends
//! print a hash of what they moved, so a test can prove every byte arrived intact.
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use datapath::buf::{Offload, RxBatch};
use datapath::port::Port;
use datapath::port::afpacket::AfPacketPort;

#[derive(Parser)]
#[command(
    name = "vsnet",
    about = "test traffic for vswitch (run inside a test namespace)"
)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Accept one TCP connection, read to EOF, print `bytes=N hash=H secs=S`.
    TcpSink {
        #[arg(long)]
        listen: String,
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Connect and send N deterministic bytes, print `bytes=N hash=H secs=S`.
    TcpSource {
        #[arg(long)]
        connect: String,
        #[arg(long)]
        bytes: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Serve TCP connections for DURATION seconds: read each to EOF, echo what it sent, close.
    /// Prints `listening`, then `conn from=IP:PORT bytes=N` as each connection is served, and
    /// at the end `connections=N bytes=B`.
    TcpCount {
        #[arg(long)]
        listen: String,
        #[arg(long, default_value_t = 30)]
        duration: u64,
    },
    /// Open COUNT TCP connections to TO one after the other (each from its own source port):
    /// send a short message, half-close, and expect it echoed before the peer closes (as
    /// `tcp-count` does). Prints `conn local=IP:PORT ok` or `conn N failed: …` per connection,
    /// then `connections=N ok=K failed=F`; exits non-zero when one failed.
    TcpConnectMany {
        #[arg(long)]
        to: String,
        #[arg(long)]
        count: u64,
        /// Seconds allowed per connection (connect, and then the echo).
        #[arg(long, default_value_t = 5)]
        timeout: u64,
    },
    /// Receive UDP datagrams until COUNT arrived or TIMEOUT passed; print `received=N`.
    UdpSink {
        #[arg(long)]
        listen: String,
        #[arg(long)]
        count: u64,
        #[arg(long, default_value_t = 5)]
        timeout: u64,
    },
    /// Send COUNT UDP datagrams of SIZE bytes.
    UdpSource {
        #[arg(long)]
        to: String,
        #[arg(long)]
        count: u64,
        #[arg(long, default_value_t = 100)]
        size: usize,
        /// Pause between datagrams, microseconds.
        #[arg(long, default_value_t = 0)]
        gap_us: u64,
    },
    /// Send raw Ethernet frames (hex) on a device through AF_PACKET.
    RawSend {
        #[arg(long)]
        dev: String,
        /// Frames as hex strings.
        #[arg(long = "hex", required = true)]
        frames: Vec<String>,
        #[arg(long, default_value_t = 1)]
        count: u64,
        /// Send each frame from this many source MACs in turn: the frame's source with 0,
        /// 1, … N-1 added to its last three bytes, one per frame sent (a MAC flood).
        #[arg(long, default_value_t = 1)]
        src_macs: u32,
    },
    /// Receive raw frames on a device for TIMEOUT seconds; print one hex line per frame.
    RawRecv {
        #[arg(long)]
        dev: String,
        #[arg(long, default_value_t = 2)]
        timeout: u64,
    },
    /// Be a host at IP/MAC on DEV in user space (AF_PACKET): answer ARP requests and ICMP echo
    /// requests for IP, only those tagged with VLAN when given (the replies carry the same
    /// tag; untagged or other frames are ignored). Stands in for a VLAN sub-interface on
    /// kernels without 802.1Q support. Prints `listening`, then one line per reply
    /// (`arp-reply to=IP`, `echo-reply to=IP`), for TIMEOUT seconds.
    Responder {
        #[arg(long)]
        dev: String,
        #[arg(long)]
        ip: std::net::Ipv4Addr,
        #[arg(long)]
        mac: String,
        #[arg(long)]
        vlan: Option<u16>,
        #[arg(long, default_value_t = 10)]
        timeout: u64,
    },
}

/// Deterministic byte stream (xorshift64*).
struct Stream(u64);

impl Stream {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            let v = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// FNV-1a, 64 bits.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    fn update(&mut self, data: &[u8]) {
        for b in data {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

fn hexdecode(s: &str) -> Result<Vec<u8>> {
    let s: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect();
    if !s.len().is_multiple_of(2) {
        bail!("odd hex length");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).context("bad hex"))
        .collect()
}

/// Internet checksum (RFC 1071) of `data`.
fn inet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !u16::try_from(sum).unwrap_or(0)
}

/// The reply [`Cmd::Responder`] sends to `frame`, and what it is, if it answers it.
fn respond(
    frame: &[u8],
    ip: [u8; 4],
    mac: [u8; 6],
    vlan: Option<u16>,
) -> Option<(Vec<u8>, String)> {
    // Ethernet header (with the tag, if any) up to the EtherType.
    let l3 = match vlan {
        Some(v) => {
            let tagged = frame.get(12..14)? == [0x81, 0x00];
            let vid = u16::from_be_bytes([*frame.get(14)?, *frame.get(15)?]) & 0x0fff;
            if !tagged || vid != v {
                return None;
            }
            18
        }
        None => 14,
    };
    let eth_type = u16::from_be_bytes([*frame.get(l3 - 2)?, *frame.get(l3 - 1)?]);
    let src_mac: [u8; 6] = frame.get(6..12)?.try_into().ok()?;
    let mut out = Vec::with_capacity(frame.len());
    out.extend_from_slice(&src_mac);
    out.extend_from_slice(&mac);
    out.extend_from_slice(&frame[12..l3]);
    match eth_type {
        0x0806 => {
            let arp = frame.get(l3..l3 + 28)?;
            // Ethernet/IPv4 request for our address.
            if arp[..8] != [0, 1, 8, 0, 6, 4, 0, 1] || arp[24..28] != ip {
                return None;
            }
            out.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
            out.extend_from_slice(&mac);
            out.extend_from_slice(&ip);
            out.extend_from_slice(&arp[8..18]);
            out.resize(out.len().max(60), 0);
            let spa = std::net::Ipv4Addr::new(arp[14], arp[15], arp[16], arp[17]);
            Some((out, format!("arp-reply to={spa}")))
        }
        0x0800 => {
            let ihl = usize::from(*frame.get(l3)? & 0x0f) * 4;
            let ip_hdr = frame.get(l3..l3 + ihl)?;
            let total = usize::from(u16::from_be_bytes([ip_hdr[2], ip_hdr[3]]));
            let icmp = frame.get(l3 + ihl..l3 + total)?;
            if ihl < 20 || ip_hdr[9] != 1 || ip_hdr[16..20] != ip || icmp.first() != Some(&8) {
                return None;
            }
            let mut hdr = ip_hdr.to_vec();
            hdr[12..16].copy_from_slice(&ip);
            hdr[16..20].copy_from_slice(&ip_hdr[12..16]);
            hdr[8] = 64;
            hdr[10..12].copy_from_slice(&[0, 0]);
            let c = inet_checksum(&hdr);
            hdr[10..12].copy_from_slice(&c.to_be_bytes());
            let mut reply = icmp.to_vec();
            reply[0] = 0;
            reply[2..4].copy_from_slice(&[0, 0]);
            let c = inet_checksum(&reply);
            reply[2..4].copy_from_slice(&c.to_be_bytes());
            out.extend_from_slice(&hdr);
            out.extend_from_slice(&reply);
            let src = std::net::Ipv4Addr::new(ip_hdr[12], ip_hdr[13], ip_hdr[14], ip_hdr[15]);
            Some((out, format!("echo-reply to={src}")))
        }
        _ => None,
    }
}

/// Reads `s` to EOF, writes it all back, closes; the bytes echoed.
fn echo_once(mut s: TcpStream, timeout: Duration) -> Result<usize> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut data = Vec::new();
    s.read_to_end(&mut data)?;
    s.write_all(&data)?;
    s.shutdown(std::net::Shutdown::Write)?;
    Ok(data.len())
}

/// One connection of [`Cmd::TcpConnectMany`]: its local address once the echo came back.
fn connect_echo(to: std::net::SocketAddr, i: u64, timeout: Duration) -> Result<String> {
    let mut s = TcpStream::connect_timeout(&to, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let local = s.local_addr()?;
    let msg = format!("vsnet connection {i} from {local}\n");
    s.write_all(msg.as_bytes())?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut back = Vec::new();
    s.read_to_end(&mut back)?;
    if back != msg.as_bytes() {
        bail!(
            "echo differs: sent {} bytes, got {:?}",
            msg.len(),
            String::from_utf8_lossy(&back)
        );
    }
    Ok(local.to_string())
}

fn main() -> Result<()> {
    match Args::parse().cmd {
        Cmd::TcpCount { listen, duration } => {
            let l = TcpListener::bind(&listen).with_context(|| format!("bind {listen}"))?;
            l.set_nonblocking(true)?;
            println!("listening");
            std::io::stdout().flush()?;
            let deadline = Instant::now() + Duration::from_secs(duration);
            let mut served = Vec::new();
            while Instant::now() < deadline {
                match l.accept() {
                    Ok((s, from)) => served.push(std::thread::spawn(move || {
                        let r = echo_once(s, Duration::from_secs(5));
                        match &r {
                            Ok(n) => println!("conn from={from} bytes={n}"),
                            Err(e) => println!("conn from={from} failed: {e}"),
                        }
                        let _ = std::io::stdout().flush();
                        r.unwrap_or(0)
                    })),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(e) => return Err(e).context("accept"),
                }
            }
            let n = served.len();
            let bytes: usize = served.into_iter().map(|h| h.join().unwrap_or(0)).sum();
            println!("connections={n} bytes={bytes}");
        }
        Cmd::TcpConnectMany { to, count, timeout } => {
            let addr: std::net::SocketAddr = to.parse().with_context(|| format!("address {to}"))?;
            let timeout = Duration::from_secs(timeout);
            let mut ok = 0u64;
            for i in 0..count {
                match connect_echo(addr, i, timeout) {
                    Ok(local) => {
                        ok += 1;
                        println!("conn local={local} ok");
                    }
                    Err(e) => println!("conn {i} failed: {e:#}"),
                }
                std::io::stdout().flush()?;
            }
            println!("connections={count} ok={ok} failed={}", count - ok);
            if ok != count {
                bail!("{} of {count} connections to {to} failed", count - ok);
            }
        }
        Cmd::TcpSink { listen, timeout } => {
            let l = TcpListener::bind(&listen).with_context(|| format!("bind {listen}"))?;
            println!("listening");
            std::io::stdout().flush()?;
            let (mut s, _) = l.accept()?;
            s.set_read_timeout(Some(Duration::from_secs(timeout)))?;
            let t0 = Instant::now();
            let mut h = Fnv::new();
            let mut n = 0u64;
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let k = s.read(&mut buf)?;
                if k == 0 {
                    break;
                }
                h.update(&buf[..k]);
                n += k as u64;
            }
            println!(
                "bytes={n} hash={:016x} secs={:.3}",
                h.0,
                t0.elapsed().as_secs_f64()
            );
        }
        Cmd::TcpSource {
            connect,
            bytes,
            seed,
        } => {
            let mut s = None;
            for _ in 0..50 {
                match TcpStream::connect(&connect) {
                    Ok(c) => {
                        s = Some(c);
                        break;
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
            let mut s = s.with_context(|| format!("connect {connect}"))?;
            let t0 = Instant::now();
            let mut st = Stream(seed | 1);
            let mut h = Fnv::new();
            let mut buf = vec![0u8; 1 << 16];
            let mut left = bytes;
            while left > 0 {
                let k = usize::try_from(left.min(buf.len() as u64))?;
                st.fill(&mut buf[..k]);
                h.update(&buf[..k]);
                s.write_all(&buf[..k])?;
                left -= k as u64;
            }
            s.shutdown(std::net::Shutdown::Write)?;
            // Wait for the peer to close so all bytes are acknowledged.
            let _ = s.read(&mut buf);
            println!(
                "bytes={bytes} hash={:016x} secs={:.3}",
                h.0,
                t0.elapsed().as_secs_f64()
            );
        }
        Cmd::UdpSink {
            listen,
            count,
            timeout,
        } => {
            let s = UdpSocket::bind(&listen)?;
            println!("listening");
            std::io::stdout().flush()?;
            let deadline = Instant::now() + Duration::from_secs(timeout);
            let mut n = 0;
            let mut buf = [0u8; 65536];
            while n < count {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                s.set_read_timeout(Some(left))?;
                if s.recv_from(&mut buf).is_ok() {
                    n += 1;
                }
            }
            println!("received={n}");
        }
        Cmd::UdpSource {
            to,
            count,
            size,
            gap_us,
        } => {
            let s = UdpSocket::bind("0.0.0.0:0")?;
            let payload = vec![0x5au8; size];
            for _ in 0..count {
                s.send_to(&payload, &to)?;
                if gap_us > 0 {
                    std::thread::sleep(Duration::from_micros(gap_us));
                }
            }
        }
        Cmd::RawSend {
            dev,
            frames,
            count,
            src_macs,
        } => {
            let mut frames: Vec<Vec<u8>> =
                frames.iter().map(|f| hexdecode(f)).collect::<Result<_>>()?;
            anyhow::ensure!(
                frames.iter().all(|f| f.len() >= 14),
                "a frame has at least 14 bytes"
            );
            let mut p = AfPacketPort::open(&dev)?;
            let mut sent = 0u32;
            for _ in 0..count {
                for f in &mut frames {
                    let orig = f[9..12].to_vec();
                    if src_macs > 1 {
                        let low = u32::from_be_bytes([0, f[9], f[10], f[11]])
                            .wrapping_add(sent % src_macs);
                        f[9..12].copy_from_slice(&low.to_be_bytes()[1..]);
                    }
                    p.tx_enqueue(f, &Offload::NONE);
                    f[9..12].copy_from_slice(&orig);
                    sent = sent.wrapping_add(1);
                }
                p.tx_flush()?;
            }
        }
        Cmd::RawRecv { dev, timeout } => {
            let mut p = AfPacketPort::open(&dev)?;
            let mut batch = RxBatch::new();
            let deadline = Instant::now() + Duration::from_secs(timeout);
            while Instant::now() < deadline {
                batch.clear();
                p.rx_burst(0, &mut batch)?;
                for d in batch.descs() {
                    let f = p.frame(d);
                    let hex: String = f.iter().map(|b| format!("{b:02x}")).collect();
                    println!("{hex}");
                }
                p.rx_release(0, &batch);
                if batch.is_empty() {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        Cmd::Responder {
            dev,
            ip,
            mac,
            vlan,
            timeout,
        } => {
            let mac: [u8; 6] = hexdecode(&mac)?
                .try_into()
                .map_err(|_| anyhow::anyhow!("a MAC has 6 bytes"))?;
            let mut p = AfPacketPort::open(&dev)?;
            println!("listening");
            std::io::stdout().flush()?;
            let mut batch = RxBatch::new();
            let deadline = Instant::now() + Duration::from_secs(timeout);
            while Instant::now() < deadline {
                batch.clear();
                p.rx_burst(0, &mut batch)?;
                let replies: Vec<(Vec<u8>, String)> = batch
                    .descs()
                    .iter()
                    .filter_map(|d| respond(p.frame(d), ip.octets(), mac, vlan))
                    .collect();
                p.rx_release(0, &batch);
                for (frame, what) in &replies {
                    p.tx_enqueue(frame, &Offload::NONE);
                    println!("{what}");
                }
                if !replies.is_empty() {
                    p.tx_flush()?;
                }
                if batch.is_empty() {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
    }
    Ok(())
}
