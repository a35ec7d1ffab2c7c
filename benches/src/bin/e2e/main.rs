//! `e2e`: the end-to-end benchmark of issue #4. Builds two namespaces, `gen` and `sink`, joins
//! them through each path in turn (vswitchd with AF_XDP, tap and AF_PACKET ports, the Linux
//! bridge, Open vSwitch's userspace datapath with afxdp and system ports, a direct veth pair),
//! and measures 64-byte frames/s, TCP throughput, UDP round trips and CPU busy time, in
//! interleaved rounds. Writes every measurement as JSON lines, a Markdown table and an SVG
//! chart. Needs root. How to run it and what the figures mean: `docs/e2e.md`.
//!
//! ```sh
//! bash benches/e2e.sh [--quick] [--rounds N] [--only a,b] [--tests fps,tcp,rtt,idle]
//! ```

mod measure;
mod placement;
mod report;
mod sys;
mod topo;

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;

use measure::{Ctx, Generator, Meas, Probe};
use report::Rec;
use topo::{FLOWS_MANY, PathKind, Poll, Setup, Topo};

/// End-to-end benchmark: vswitchd vs the Linux bridge vs Open vSwitch vs a direct veth pair.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// One round, 2-second measurements, short quiet checks (a smoke run).
    #[arg(long)]
    quick: bool,
    /// The run that settles issue #4's goals: paths A–E (unless --only) in 6 rounds (unless
    /// --rounds), the fewest that give the goals section a 95 % interval.
    #[arg(long, conflicts_with = "quick")]
    goals: bool,
    /// Interleaved rounds (A B C … G, then again); default 3, 1 with --quick, 6 with --goals.
    #[arg(long, value_name = "N")]
    rounds: Option<u32>,
    /// Paths to run, by letter or key: a|vswitchd-afxdp, b|vswitchd-tap, c|vswitchd-afpacket,
    /// d|bridge, e|ovs-afxdp, f|ovs-system, g|veth (default: all).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    only: Vec<String>,
    /// Figures: fps (64 B frames/s, 1 and 10,000 flows), tcp (1 and 4 streams), rtt (UDP
    /// ping-pong; vswitchd also in adaptive mode), idle (vswitchd adaptive idle CPU).
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "fps,tcp,rtt,idle"
    )]
    tests: Vec<String>,
    /// Seconds of traffic per measurement (default 5, 2 with --quick).
    #[arg(long, value_name = "SECS")]
    duration: Option<u32>,
    /// Seconds of the idle-CPU measurement (default 5, 2 with --quick).
    #[arg(long, value_name = "SECS")]
    idle_secs: Option<u32>,
    /// Directory with vswitchd and vsctl (default: this program's directory).
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// The pktgen binary (default: BIN_DIR/pktgen; trafgen when there is none).
    #[arg(long, env = "PKTGEN", value_name = "PATH")]
    pktgen: Option<PathBuf>,
    /// `pktgen --mode`: `afxdp`, `afpacket`, `txring`, or `xdplive` (the kernel sends from an
    /// XDP program, ~2× AF_XDP's rate into a veth here; the generator's veth peer then gets GRO
    /// on for NAPI, for every figure of the run: docs/e2e.md "A generator that does not run
    /// out first").
    #[arg(long, default_value = "afxdp", value_name = "MODE")]
    gen_mode: String,
    /// Offer the frame-rate figures at this many frames/s (`pktgen --rate`) instead of as fast
    /// as the generator goes: below every switch's limit, the switch core rows then compare
    /// the switches' work at the same load.
    #[arg(long, value_name = "PPS")]
    gen_rate: Option<u64>,
    /// sockperf ping-pong messages per second (low load).
    #[arg(long, default_value_t = 5000, value_name = "N")]
    mps: u32,
    /// Core of the generator and the clients.
    #[arg(long, default_value_t = 0, value_name = "CPU")]
    gen_cpu: usize,
    /// Core of the switch's forwarding thread(s).
    #[arg(long, default_value_t = 1, value_name = "CPU")]
    switch_cpu: usize,
    /// The sink's programs' core (the iperf3 and sockperf servers), or `free` for the
    /// kernel's choice. Default: the generator's core, so that both containers share one core
    /// and the switch has the other, the placement the issue's goals name. Unpinned, the
    /// kernel moves the TCP server onto the switch's core whenever the switch's transmit wakes
    /// it there (the receiving stack runs on the switch's core), where it shares the core with
    /// a busy-polling worker (a placement an operator avoids by keeping containers off the
    /// switch's cores), while a bridge gets the idle second core for it.
    #[arg(long, value_name = "CPU|free")]
    sink_cpu: Option<String>,
    /// The UDP round-trip server's core, or `free` for the kernel's choice. Default: as
    /// --sink-cpu, next to the client, where the Linux bridge runs a whole round trip on one
    /// core (its best: ~22 µs p99 in PLATFORM.md); unpinned, the kernel puts the server on the
    /// idle core and the bridge pays two cross-vCPU wake-ups per round trip too.
    #[arg(long, value_name = "CPU|free")]
    rtt_sink_cpu: Option<String>,
    /// The TCP sender's congestion control (`iperf3 -C`, e.g. `cubic`, Debian's default), one
    /// of the kernel's `tcp_available_congestion_control`. Default: the kernel's default, which
    /// each namespace inherits (BBR on the development VMs, where the bridge's single stream
    /// stays near 16 Gb/s; ~28–30 with Cubic).
    #[arg(long, value_name = "NAME")]
    tcp_cc: Option<String>,
    /// Set the guest's halt-poll window (`guest_halt_poll_ns` of the `haltpoll` cpuidle
    /// driver, KVM guests) for the run, and put it back after: an idle vCPU then polls that
    /// long before it halts, so that a wake-up within it costs no trip through the hypervisor
    /// (docs/e2e.md "Idle vCPUs"). At most 10 ms. Default: as the machine has it (recorded in
    /// the raw file either way).
    #[arg(long, value_name = "NS")]
    guest_halt_poll_ns: Option<u64>,
    /// Quiet check: every CPU below this busy % over one second.
    #[arg(long, default_value_t = 10.0, value_name = "PCT")]
    quiet_pct: f64,
    /// Quiet check: seconds to wait for it (default 20, 3 with --quick).
    #[arg(long, value_name = "SECS")]
    quiet_wait: Option<u64>,
    /// vswitchd's paths get one rule per generator source port (`udp,tp_src=N
    /// actions=output:SINK` for the 10,000 ports of the 10,000-flow figure) in front of the
    /// default `normal`: every flow its own megaflow, the costlier case for the cache.
    #[arg(long)]
    rule_per_flow: bool,
    /// Open vSwitch afxdp ports' `options:xdp-mode` (path E): `native` (its best on veth
    /// before ADR 0008), `generic` (the mode vswitchd's split ports use on veth) or
    /// `best-effort`.
    #[arg(long, default_value = "native", value_name = "MODE")]
    ovs_xdp_mode: String,
    /// vswitchd's AF_XDP ports' `--xdp-mode` (path A): `split` (the default on veth, ADR
    /// 0008), `native` or `generic`.
    #[arg(long, value_name = "MODE")]
    xdp_mode: Option<String>,
    /// Probes of the generator's and the switch's CPUs' cache-line hand-off, which tells
    /// whether the host has put the two vCPUs on cores that share a cache (docs/e2e.md, "The
    /// host's placement of the two vCPUs"): `during` (before, once a second during, and after
    /// each measurement; ~0.1 ms of both CPUs per probe when they share a cache, up to ~1 ms
    /// when they do not; round trips are probed before and after only, as a probe during
    /// them lands in their tail), `edges` (before and after only) or `off`.
    #[arg(long, default_value = "during", value_name = "WHEN")]
    placement_probe: String,
    /// Print the generator's and the switch's CPUs' hand-off in ns (the median of 25 batches)
    /// and exit; no root needed.
    #[arg(long)]
    probe_handoff: bool,
    /// Measurement lock taken around each measurement.
    #[arg(long, default_value = "/tmp/vswitch-measure.lock", value_name = "PATH")]
    lock: PathBuf,
    /// Take no lock.
    #[arg(long)]
    no_lock: bool,
    /// Output directory for `results-TIME.{jsonl,md,svg}`.
    #[arg(long, default_value = "target/e2e", value_name = "DIR")]
    out: PathBuf,
    /// Do not measure: re-render the table and chart from a raw results file. Given more than
    /// once, pools the files' rounds into one report (each file's rounds after the ones before
    /// it; the files must agree on the machine, the placement, the congestion control and the
    /// measurement length), written with its raw file to `--out` as `pooled-….{jsonl,md,svg}`.
    #[arg(long, value_name = "FILE")]
    report: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Tests {
    fps: bool,
    tcp: bool,
    rtt: bool,
    idle: bool,
}

fn parse_tests(list: &[String]) -> Result<Tests> {
    let mut t = Tests::default();
    for s in list {
        match s.trim() {
            "fps" => t.fps = true,
            "tcp" => t.tcp = true,
            "rtt" => t.rtt = true,
            "idle" => t.idle = true,
            "all" => {
                t = Tests {
                    fps: true,
                    tcp: true,
                    rtt: true,
                    idle: true,
                }
            }
            other => bail!("unknown test `{other}` (fps, tcp, rtt, idle)"),
        }
    }
    Ok(t)
}

fn parse_paths(list: &[String]) -> Result<Vec<PathKind>> {
    if list.is_empty() {
        return Ok(PathKind::ALL.to_vec());
    }
    let mut v = Vec::new();
    for s in list {
        let p = PathKind::parse(s).with_context(|| format!("unknown path `{s}`"))?;
        if !v.contains(&p) {
            v.push(p);
        }
    }
    v.sort();
    Ok(v)
}

/// A sysfs/procfs value, trimmed (None when the file is absent).
fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

/// A `CPU|free` option: `free` is none, no option is `default`.
fn cpu_or_free(flag: &str, value: Option<&str>, default: Option<usize>) -> Result<Option<usize>> {
    match value.map(str::trim) {
        Some("free") => Ok(None),
        Some(n) => n
            .parse()
            .map(Some)
            .with_context(|| format!("{flag} `{n}`: a CPU number or `free`")),
        None => Ok(default),
    }
}

/// `--tcp-cc`: a congestion control the kernel offers (`available`, as in
/// `tcp_available_congestion_control`), checked before any measurement.
fn tcp_cc_checked(cc: &str, available: &str) -> Result<String> {
    if available.split_whitespace().any(|a| a == cc) {
        Ok(cc.to_owned())
    } else {
        bail!(
            "--tcp-cc {cc}: not one of this kernel's congestion controls ({})",
            available.trim()
        )
    }
}

/// `--guest-halt-poll-ns`: within [`sys::HALT_POLL_MAX_NS`], on a machine whose cpuidle
/// driver has the window (`exists`: [`sys::HALT_POLL_NS`] is there).
fn halt_poll_checked(ns: u64, exists: bool) -> Result<String> {
    if !exists {
        bail!(
            "--guest-halt-poll-ns: {} is missing (not a KVM guest with the haltpoll cpuidle driver)",
            sys::HALT_POLL_NS
        );
    }
    if ns > sys::HALT_POLL_MAX_NS {
        bail!(
            "--guest-halt-poll-ns {ns}: at most {} (10 ms)",
            sys::HALT_POLL_MAX_NS
        );
    }
    Ok(ns.to_string())
}

/// The servers' cores, (TCP, round trip): `--sink-cpu` (default the generator's core), and
/// `--rtt-sink-cpu` (default as `--sink-cpu`); `free` is the kernel's choice.
fn sink_cpus(args: &Args) -> Result<(Option<usize>, Option<usize>)> {
    let sink = cpu_or_free("--sink-cpu", args.sink_cpu.as_deref(), Some(args.gen_cpu))?;
    let rtt = cpu_or_free("--rtt-sink-cpu", args.rtt_sink_cpu.as_deref(), sink)?;
    Ok((sink, rtt))
}

/// The paths and the number of rounds the options ask for.
fn plan(args: &Args) -> Result<(Vec<PathKind>, u32)> {
    let paths = if args.goals && args.only.is_empty() {
        vec![
            PathKind::VsAfxdp,
            PathKind::VsTap,
            PathKind::VsAfpacket,
            PathKind::Bridge,
            PathKind::OvsAfxdp,
        ]
    } else {
        parse_paths(&args.only)?
    };
    let rounds = args.rounds.unwrap_or(if args.quick {
        1
    } else if args.goals {
        report::GOAL_ROUNDS
    } else {
        3
    });
    Ok((paths, rounds))
}

/// Appends records to the raw file as they come, and keeps them for the report.
struct Raw {
    file: File,
    recs: Vec<Rec>,
}

impl Raw {
    /// Creates the raw file at `path` with the machine facts on its first line.
    fn create(path: &Path, facts: &serde_json::Value) -> Result<Self> {
        let mut file =
            File::create(path).with_context(|| format!("creating {}", path.display()))?;
        writeln!(file, "{}", serde_json::to_string(facts)?)?;
        Ok(Self {
            file,
            recs: Vec::new(),
        })
    }

    fn push(&mut self, rec: Rec) -> Result<()> {
        let line = serde_json::to_string(&rec)?;
        writeln!(self.file, "{line}")?;
        self.file.flush()?;
        self.recs.push(rec);
        Ok(())
    }

    fn measurement(&mut self, round: u32, path: PathKind, figure: &str, m: Meas) -> Result<()> {
        eprintln!("  {figure}: {}", summary(&m));
        self.push(Rec {
            kind: "measurement".into(),
            round,
            path: path.key().into(),
            figure: figure.into(),
            meas: m,
            error: None,
            time: sys::now_stamps().1,
        })
    }

    fn failure(
        &mut self,
        round: u32,
        path: PathKind,
        figure: &str,
        e: &anyhow::Error,
    ) -> Result<()> {
        let reason = format!("{e:#}");
        eprintln!("  {figure}: failed: {reason}");
        self.push(Rec {
            kind: "failure".into(),
            round,
            path: path.key().into(),
            figure: figure.into(),
            meas: Meas::default(),
            error: Some(reason),
            time: sys::now_stamps().1,
        })
    }

    fn note(&mut self, round: u32, path: PathKind, text: &str) -> Result<()> {
        self.push(Rec {
            kind: "note".into(),
            round,
            path: path.key().into(),
            figure: "setup".into(),
            meas: Meas {
                detail: text.into(),
                ..Meas::default()
            },
            error: None,
            time: sys::now_stamps().1,
        })
    }
}

fn summary(m: &Meas) -> String {
    let mut parts: Vec<String> = Vec::new();
    for (k, v) in &m.values {
        let s = match k.as_str() {
            "fps" | "sent" | "delivered" | "loss" | "pps" => format!("{k}={:.3}M", v / 1e6),
            _ => format!("{k}={v:.2}"),
        };
        parts.push(s);
    }
    let cpu: Vec<String> = m.cpu_busy.iter().map(|c| format!("{c:.0}")).collect();
    format!("{} cpu%=[{}]", parts.join(" "), cpu.join(","))
}

/// Runs one measurement and records it, or its failure. Only an interrupt stops the run.
fn record(
    raw: &mut Raw,
    round: u32,
    path: PathKind,
    figure: &str,
    f: impl FnOnce() -> Result<Meas>,
) -> Result<()> {
    match f() {
        Ok(m) => raw.measurement(round, path, figure, m),
        Err(e) => {
            sys::check_stop()?;
            raw.failure(round, path, figure, &e)
        }
    }
}

fn run_path(
    ctx: &Ctx,
    setup: &Setup,
    tests: Tests,
    raw: &mut Raw,
    round: u32,
    path: PathKind,
) -> Result<()> {
    eprintln!("[round {round}] {}. {}", path.letter(), path.key());
    if tests.fps || tests.tcp || tests.rtt {
        match Topo::build(path, Poll::Busy, setup) {
            Err(e) => {
                sys::check_stop()?;
                raw.failure(round, path, "setup", &e)?;
            }
            Ok(topo) => {
                for n in &topo.notes {
                    raw.note(round, path, n)?;
                }
                if tests.fps {
                    record(raw, round, path, "fps_1", || ctx.fps(&topo, 1))?;
                    record(raw, round, path, "fps_10k", || ctx.fps(&topo, FLOWS_MANY))?;
                }
                if tests.tcp {
                    record(raw, round, path, "tcp_1", || ctx.tcp(&topo, 1))?;
                    record(raw, round, path, "tcp_4", || ctx.tcp(&topo, 4))?;
                }
                if tests.rtt {
                    record(raw, round, path, "rtt", || ctx.rtt(&topo))?;
                }
            }
        }
    }
    if path.is_vswitchd() && (tests.rtt || tests.idle || tests.tcp) {
        match Topo::build(path, Poll::Adaptive, setup) {
            Err(e) => {
                sys::check_stop()?;
                raw.failure(round, path, "setup_adaptive", &e)?;
            }
            Ok(topo) => {
                if tests.idle {
                    record(raw, round, path, "idle_adaptive", || ctx.idle(&topo))?;
                }
                if tests.rtt {
                    record(raw, round, path, "rtt_adaptive", || ctx.rtt(&topo))?;
                }
                if tests.tcp {
                    // The daemon's default poll mode: the worker sleeps and yields when idle.
                    record(raw, round, path, "tcp_1_adaptive", || ctx.tcp(&topo, 1))?;
                }
            }
        }
    }
    Ok(())
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

fn machine_facts(args: &Args, ctx: &Ctx, rounds: u32, paths: &[PathKind]) -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("?", |(_, m)| m.trim())
        .to_owned();
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let pinned = |cpu: Option<usize>| match cpu {
        Some(c) => format!("pinned to CPU {c}"),
        None => "unpinned (the kernel's choice)".into(),
    };
    let (sink, rtt_sink) = (pinned(ctx.sink_cpu), pinned(ctx.rtt_sink_cpu));
    serde_json::json!({
        "kind": "machine",
        "time": sys::now_stamps().1,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "cpu_model": cpu_model,
        "cpus": cpus,
        "ovs": sys::version_of("ovs-vswitchd", &["--version"]),
        "iperf3": sys::version_of("iperf3", &["--version"]),
        "sockperf": sys::version_of("sockperf", &["--version"]),
        "nft": sys::version_of("nft", &["--version"]),
        "generator": ctx.generator.describe(&ctx.gen_mode, ctx.gen_rate),
        "generator_bin": ctx.generator.binary().map(|p| p.display().to_string()),
        "rule_per_flow": args.rule_per_flow,
        "xdp_mode": args.xdp_mode,
        "ovs_xdp_mode": args.ovs_xdp_mode,
        "git": sys::run("git", &["rev-parse", "--short", "HEAD"], sys::SHORT).unwrap_or_default().trim(),
        "bin_dir": args.bin_dir.as_ref().map(|p| p.display().to_string()),
        "args": std::env::args().skip(1).collect::<Vec<_>>(),
        "rounds": rounds,
        "paths": paths.iter().map(|p| p.key()).collect::<Vec<_>>(),
        "secs": ctx.secs,
        "idle_secs": ctx.idle_secs,
        "mps": ctx.mps,
        "quiet_limit_pct": ctx.quiet_limit,
        "gen_cpu": ctx.gen_cpu,
        "switch_cpu": ctx.switch_cpu,
        "sink_cpu": ctx.sink_cpu,
        "rtt_sink_cpu": ctx.rtt_sink_cpu,
        "placement_probe": ctx.probe.name(),
        "handoff_apart_ns": placement::APART_NS,
        // The TCP sender's congestion control: the one given, or the default every namespace
        // inherits.
        "tcp_congestion_control": ctx.tcp_cc.clone().or_else(|| read_trim("/proc/sys/net/ipv4/tcp_congestion_control")),
        // How an idle vCPU waits (a halted one takes tens of µs to wake in these VMs, which
        // round trips across cores pay twice): the cpuidle driver and the guest's halt-poll
        // window.
        "cpuidle_driver": read_trim("/sys/devices/system/cpu/cpuidle/current_driver"),
        "guest_halt_poll_ns": read_trim("/sys/module/haltpoll/parameters/guest_halt_poll_ns"),
        "placement": format!(
            "generator and clients (pktgen/trafgen, iperf3 -c, sockperf pp) pinned to CPU {} with taskset; \
             the switch on CPU {} (vswitchd --cpus {} and all its threads; OVS pmd-cpu-mask={:#x} and \
             ovs-vswitchd under taskset -c {}); the TCP server (iperf3 -s) {sink}, the round-trip server (sockperf sr) {rtt_sink}; the kernel's \
             own work (veth transmit, softirqs, the bridge) runs where it is raised",
            ctx.gen_cpu, ctx.switch_cpu, ctx.switch_cpu, 1u64 << ctx.switch_cpu, ctx.switch_cpu
        ),
    })
}

/// `pooled-A+B+….jsonl` for raw files `results-A.jsonl`, `results-B.jsonl`, ….
fn pooled_name(files: &[PathBuf]) -> String {
    let stems: Vec<String> = files
        .iter()
        .map(|f| {
            let stem = f
                .file_stem()
                .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
            stem.strip_prefix("results-").unwrap_or(&stem).to_owned()
        })
        .collect();
    format!("pooled-{}.jsonl", stems.join("+"))
}

fn write_report(raw_path: &Path, facts: &serde_json::Value, recs: &[Rec]) -> Result<String> {
    let md = report::markdown(facts, recs);
    let md_path = raw_path.with_extension("md");
    let svg_path = raw_path.with_extension("svg");
    std::fs::write(&md_path, &md).with_context(|| format!("writing {}", md_path.display()))?;
    std::fs::write(&svg_path, report::svg(recs))
        .with_context(|| format!("writing {}", svg_path.display()))?;
    eprintln!(
        "raw: {}\ntable: {}\nchart: {}",
        raw_path.display(),
        md_path.display(),
        svg_path.display()
    );
    Ok(md)
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.probe_handoff {
        println!(
            "{:.1}",
            placement::handoff_ns(args.gen_cpu, args.switch_cpu, 25)?
        );
        return Ok(());
    }
    if let [file] = args.report.as_slice() {
        let (facts, recs) = report::read_raw(file)?;
        let md = write_report(file, &facts, &recs)?;
        println!("{md}");
        return Ok(());
    }
    if !args.report.is_empty() {
        let (facts, recs) = report::pool(&args.report)?;
        let raw_path = args.out.join(pooled_name(&args.report));
        std::fs::create_dir_all(&args.out)
            .with_context(|| format!("creating {}", args.out.display()))?;
        let mut raw = Raw::create(&raw_path, &facts)?;
        for r in recs {
            raw.push(r)?;
        }
        let md = write_report(&raw_path, &facts, &raw.recs)?;
        println!("{md}");
        return Ok(());
    }
    if !testbed::privileged() {
        bail!("needs root (CAP_NET_ADMIN): namespaces, veth, nftables, XDP");
    }
    sys::install_signal_flag()?;
    let tests = parse_tests(&args.tests)?;
    let (paths, rounds) = plan(&args)?;
    let exe_dir = std::env::current_exe()?
        .parent()
        .map(Path::to_path_buf)
        .context("no directory of this program")?;
    let bin_dir = args.bin_dir.clone().unwrap_or_else(|| exe_dir.clone());
    let generator = match &args.pktgen {
        Some(p) => Generator::Pktgen(p.clone()),
        None if bin_dir.join("pktgen").is_file() => Generator::Pktgen(bin_dir.join("pktgen")),
        None if which("trafgen").is_some() => Generator::Trafgen,
        None => bail!(
            "no frame generator: build pktgen (cargo build --release --workspace --bins), pass --pktgen, or install netsniff-ng"
        ),
    };
    if args.gen_rate.is_some() && matches!(generator, Generator::Trafgen) {
        bail!("--gen-rate needs pktgen (trafgen has no rate here)");
    }
    if args.gen_mode == "xdplive"
        && !datapath::sys::bpf::XdpProgram::live_frames_allowed()
            .context("probing for XDP live frames")?
    {
        bail!(
            "--gen-mode xdplive: this kernel refuses BPF_PROG_TEST_RUN with live frames (EPERM); \
             use --gen-mode afxdp (the default), afpacket or txring"
        );
    }
    let ncpu = sys::cpu_snap()?.cpus_len();
    let (sink_cpu, rtt_sink_cpu) = sink_cpus(&args)?;
    let probe = Probe::parse(&args.placement_probe)?;
    let tcp_cc = args
        .tcp_cc
        .as_deref()
        .map(|cc| {
            tcp_cc_checked(
                cc,
                &read_trim("/proc/sys/net/ipv4/tcp_available_congestion_control")
                    .unwrap_or_default(),
            )
        })
        .transpose()?;
    if [
        Some(args.gen_cpu),
        Some(args.switch_cpu),
        sink_cpu,
        rtt_sink_cpu,
    ]
    .into_iter()
    .flatten()
    .any(|c| c >= ncpu)
    {
        bail!(
            "this machine has {ncpu} CPUs: --gen-cpu/--switch-cpu/--sink-cpu/--rtt-sink-cpu out of range"
        );
    }
    let ctx = Ctx {
        generator,
        gen_mode: args.gen_mode.clone(),
        gen_rate: args.gen_rate,
        secs: args
            .duration
            .unwrap_or(if args.quick { 2 } else { 5 })
            .max(1),
        idle_secs: args
            .idle_secs
            .unwrap_or(if args.quick { 2 } else { 5 })
            .max(1),
        mps: args.mps.max(1),
        lock: (!args.no_lock).then(|| args.lock.clone()),
        quiet_limit: args.quiet_pct,
        quiet_wait: Duration::from_secs(args.quiet_wait.unwrap_or(if args.quick { 3 } else { 20 })),
        gen_cpu: args.gen_cpu,
        switch_cpu: args.switch_cpu,
        sink_cpu,
        rtt_sink_cpu,
        probe,
        tcp_cc,
        tck: sys::clk_tck(),
    };
    let setup = Setup {
        bin_dir,
        switch_cpu: args.switch_cpu,
        rule_per_flow: args.rule_per_flow.then_some(FLOWS_MANY),
        ovs_xdp_mode: args.ovs_xdp_mode.clone(),
        vs_xdp_mode: args.xdp_mode.clone(),
        gen_napi: args.gen_mode == "xdplive",
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let raw_path = args
        .out
        .join(format!("results-{}.jsonl", sys::now_stamps().0));
    // Set before the facts are read, which record it; put back when `main` returns.
    let _halt_poll = args
        .guest_halt_poll_ns
        .map(|ns| {
            let v = halt_poll_checked(ns, Path::new(sys::HALT_POLL_NS).exists())?;
            testbed::SetFor::set(Path::new(sys::HALT_POLL_NS), &v)
        })
        .transpose()?;
    let facts = machine_facts(&args, &ctx, rounds, &paths);
    let mut raw = Raw::create(&raw_path, &facts)?;
    eprintln!(
        "e2e: {rounds} round(s) of {} path(s), {} s per measurement, generator: {}",
        paths.len(),
        ctx.secs,
        ctx.generator.describe(&ctx.gen_mode, ctx.gen_rate)
    );
    let mut result = Ok(());
    'rounds: for round in 1..=rounds {
        for &path in &paths {
            if let Err(e) = run_path(&ctx, &setup, tests, &mut raw, round, path) {
                result = Err(e);
                break 'rounds;
            }
        }
    }
    let md = write_report(&raw_path, &facts, &raw.recs)?;
    println!("{md}");
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(argv: &[&str]) -> (Vec<char>, u32) {
        let args = Args::try_parse_from(std::iter::once("e2e").chain(argv.iter().copied()))
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        let (paths, rounds) = plan(&args).unwrap();
        (paths.into_iter().map(PathKind::letter).collect(), rounds)
    }

    #[test]
    fn goals_runs_the_goals_paths_in_enough_rounds() {
        assert_eq!(plan_of(&[]), ("ABCDEFGH".chars().collect(), 3));
        assert_eq!(plan_of(&["--quick"]), ("ABCDEFGH".chars().collect(), 1));
        assert_eq!(plan_of(&["--goals"]), ("ABCDE".chars().collect(), 6));
        assert_eq!(
            plan_of(&["--goals", "--only", "a,d,e", "--rounds", "9"]),
            ("ADE".chars().collect(), 9)
        );
        assert!(Args::try_parse_from(["e2e", "--goals", "--quick"]).is_err());
    }

    #[test]
    fn the_placement_is_probed_during_each_measurement_unless_told() {
        let probe = |argv: &[&str]| {
            let args = Args::try_parse_from(std::iter::once("e2e").chain(argv.iter().copied()))
                .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
            Probe::parse(&args.placement_probe)
        };
        assert_eq!(probe(&[]).unwrap(), Probe::During);
        for p in [Probe::Off, Probe::Edges, Probe::During] {
            assert_eq!(probe(&["--placement-probe", p.name()]).unwrap(), p);
        }
        assert!(probe(&["--placement-probe", "always"]).is_err());
    }

    #[test]
    fn the_servers_sit_with_the_clients_unless_told() {
        let of = |argv: &[&str]| {
            sink_cpus(
                &Args::try_parse_from(std::iter::once("e2e").chain(argv.iter().copied())).unwrap(),
            )
        };
        assert_eq!(of(&[]).unwrap(), (Some(0), Some(0)));
        assert_eq!(
            of(&["--gen-cpu", "1", "--switch-cpu", "0"]).unwrap(),
            (Some(1), Some(1))
        );
        assert_eq!(of(&["--sink-cpu", "1"]).unwrap(), (Some(1), Some(1)));
        assert_eq!(of(&["--sink-cpu", "free"]).unwrap(), (None, None));
        assert_eq!(
            of(&["--sink-cpu", "1", "--rtt-sink-cpu", "0"]).unwrap(),
            (Some(1), Some(0))
        );
        assert_eq!(
            of(&["--sink-cpu", "free", "--rtt-sink-cpu", "0"]).unwrap(),
            (None, Some(0))
        );
        assert_eq!(of(&["--rtt-sink-cpu", "free"]).unwrap(), (Some(0), None));
        assert!(of(&["--rtt-sink-cpu", "x"]).is_err());
        assert!(of(&["--sink-cpu", "one"]).is_err());
    }

    #[test]
    fn the_congestion_control_must_be_one_the_kernel_offers() {
        let available = "reno bbr cubic\n";
        assert_eq!(tcp_cc_checked("cubic", available).unwrap(), "cubic");
        let err = tcp_cc_checked("vegas", available).unwrap_err().to_string();
        assert!(
            err.contains("vegas") && err.contains("reno bbr cubic"),
            "{err}"
        );
        assert!(tcp_cc_checked("", available).is_err());
        assert!(tcp_cc_checked("cub", available).is_err());
    }

    #[test]
    fn the_halt_poll_window_is_bounded_and_needs_the_driver() {
        assert_eq!(halt_poll_checked(0, true).unwrap(), "0");
        assert_eq!(halt_poll_checked(200_000, true).unwrap(), "200000");
        assert_eq!(
            halt_poll_checked(sys::HALT_POLL_MAX_NS, true).unwrap(),
            sys::HALT_POLL_MAX_NS.to_string()
        );
        let err = halt_poll_checked(sys::HALT_POLL_MAX_NS + 1, true).unwrap_err();
        assert!(err.to_string().contains("at most"), "{err}");
        let err = halt_poll_checked(200_000, false).unwrap_err();
        assert!(err.to_string().contains("haltpoll"), "{err}");
        let args = Args::try_parse_from(["e2e", "--guest-halt-poll-ns", "200000"]).unwrap();
        assert_eq!(args.guest_halt_poll_ns, Some(200_000));
        assert!(Args::try_parse_from(["e2e", "--guest-halt-poll-ns", "-1"]).is_err());
    }
}
