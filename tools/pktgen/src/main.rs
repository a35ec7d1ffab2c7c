//! `pktgen tx|rx`: see `docs/pktgen.md`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use pktgen::args::{self, Mac, PortRange};
use pktgen::frame::{FrameSpec, MAX_FLOWS, MAX_SIZE, MIN_SIZE, Template};
use pktgen::rx::{self, RxMode, RxOptions};
use pktgen::tx::{self, Mode, TxOptions};

/// Traffic generator and sink: UDP frames with per-stream sequence numbers and timestamps.
#[derive(Debug, Parser)]
#[command(name = "pktgen", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Send UDP frames.
    Tx(TxArgs),
    /// Receive and account frames sent by `pktgen tx`.
    Rx(RxArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TxModeArg {
    Afxdp,
    Afpacket,
    Txring,
    Kernel,
    Xdplive,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RxModeArg {
    Afxdp,
    Afpacket,
}

fn parse_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() && v < 1e9 => Ok(v),
        _ => Err(format!("invalid duration {s:?}: expected seconds > 0")),
    }
}

#[derive(Debug, clap::Args)]
struct TxArgs {
    /// Device to send on.
    #[arg(long)]
    dev: String,
    /// Backend (default: afxdp when it works, else afpacket).
    #[arg(long, value_enum)]
    mode: Option<TxModeArg>,
    /// Sending threads, one socket each (AF_XDP: queue i per thread).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    threads: u16,
    /// Frames to send in total.
    #[arg(long)]
    count: Option<u64>,
    /// Seconds to send for (default 10).
    #[arg(long, value_parser = parse_secs)]
    duration: Option<f64>,
    /// Frames per second in total (default: as fast as possible).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    rate: Option<u64>,
    /// Frame length without FCS (default 60, or the smallest that holds IPv6/VLAN headers).
    #[arg(long, value_parser = clap::value_parser!(u16).range(MIN_SIZE as i64..=MAX_SIZE as i64))]
    size: Option<u16>,
    /// Source MAC (default: the device's).
    #[arg(long, value_parser = args::parse_mac)]
    src_mac: Option<Mac>,
    /// Distinct source MACs: the flows send from the source MAC counted up in its last three
    /// bytes, one MAC per flow in turn (there are at least this many flows).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=MAX_FLOWS as i64))]
    src_macs: u32,
    /// Destination MAC.
    #[arg(long, value_parser = args::parse_mac, default_value = "02:00:00:00:00:02")]
    dst_mac: Mac,
    /// Source address or range A-B (default 198.18.0.1 / 2001:db8::1).
    #[arg(long)]
    src_ip: Option<String>,
    /// Destination address or range A-B (default 198.18.0.2 / 2001:db8::2).
    #[arg(long)]
    dst_ip: Option<String>,
    /// UDP source port or range P-Q.
    #[arg(long, value_parser = args::parse_port_range, default_value = "1024")]
    src_port: PortRange,
    /// UDP destination port or range P-Q.
    #[arg(long, value_parser = args::parse_port_range, default_value = "9")]
    dst_port: PortRange,
    /// Distinct 5-tuples to cycle through (widens a single source port when needed).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=MAX_FLOWS as i64))]
    flows: Option<u32>,
    /// Pick flows pseudo-randomly (fixed-seed xorshift) instead of in order.
    #[arg(long)]
    random: bool,
    /// Tag frames with this 802.1Q VLAN id.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=4094))]
    vlan: Option<u16>,
    /// IPv6 instead of IPv4.
    #[arg(long)]
    ipv6: bool,
    /// Print the summary as a JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct RxArgs {
    /// Device to receive on.
    #[arg(long)]
    dev: String,
    /// Backend (default: afxdp when it works, else afpacket).
    #[arg(long, value_enum)]
    mode: Option<RxModeArg>,
    /// Seconds to receive for at most (default 10).
    #[arg(long, value_parser = parse_secs)]
    duration: Option<f64>,
    /// Stop after this many generated frames.
    #[arg(long)]
    count: Option<u64>,
    /// Print the summary as a JSON object.
    #[arg(long)]
    json: bool,
}

const DEFAULT_SECS: f64 = 10.0;

/// The device's MAC from sysfs.
fn device_mac(dev: &str) -> Option<Mac> {
    let s = std::fs::read_to_string(format!("/sys/class/net/{dev}/address")).ok()?;
    args::parse_mac(s.trim()).ok()
}

fn tx_main(a: TxArgs) -> Result<()> {
    let (src_def, dst_def) = if a.ipv6 {
        ("2001:db8::1", "2001:db8::2")
    } else {
        ("198.18.0.1", "198.18.0.2")
    };
    let range = |v: &Option<String>, def: &str, what: &str| {
        args::parse_ip_range(v.as_deref().unwrap_or(def), a.ipv6)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("--{what}"))
    };
    let spec = FrameSpec {
        size: a.size.map(usize::from),
        src_mac: a
            .src_mac
            .or_else(|| device_mac(&a.dev))
            .unwrap_or([2, 0, 0, 0, 0, 1]),
        src_macs: a.src_macs,
        dst_mac: a.dst_mac,
        src_ip: range(&a.src_ip, src_def, "src-ip")?,
        dst_ip: range(&a.dst_ip, dst_def, "dst-ip")?,
        src_port: a.src_port,
        dst_port: a.dst_port,
        flows: a.flows,
        vlan: a.vlan,
        ipv6: a.ipv6,
    };
    let template = Arc::new(Template::new(&spec)?);
    let opts = TxOptions {
        dev: a.dev,
        mode: a.mode.map(|m| match m {
            TxModeArg::Afxdp => Mode::Afxdp,
            TxModeArg::Afpacket => Mode::Afpacket,
            TxModeArg::Txring => Mode::Txring,
            TxModeArg::Kernel => Mode::Kernel,
            TxModeArg::Xdplive => Mode::Xdplive,
        }),
        threads: usize::from(a.threads),
        count: a.count,
        duration: Duration::from_secs_f64(a.duration.unwrap_or(DEFAULT_SECS)),
        rate: a.rate,
        random: a.random,
    };
    let report = tx::run(&opts, &template)?;
    println!("{}", report.summary(a.json));
    Ok(())
}

fn ready() {
    eprintln!("pktgen: rx ready");
}

fn rx_main(a: RxArgs) -> Result<()> {
    let opts = RxOptions {
        dev: a.dev,
        mode: a.mode.map(|m| match m {
            RxModeArg::Afxdp => RxMode::Afxdp,
            RxModeArg::Afpacket => RxMode::Afpacket,
        }),
        duration: Duration::from_secs_f64(a.duration.unwrap_or(DEFAULT_SECS)),
        count: a.count,
        idle: Duration::from_secs(1),
        ready: Some(ready),
    };
    let report = rx::run(&opts)?;
    println!("{}", report.summary(a.json));
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Tx(a) => tx_main(a),
        Cmd::Rx(a) => rx_main(a),
    };
    if let Err(e) = r {
        eprintln!("pktgen: error: {e:#}");
        std::process::exit(1);
    }
}
