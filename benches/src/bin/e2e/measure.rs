//! The figures: 64-byte frames/s at the sink, TCP throughput, UDP request/response latency,
//! and a switch's idle CPU; each taken under the measurement lock after a quiet-machine check,
//! with the busy time of every CPU while it ran.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use datapath::buf::BATCH_SIZE;
use serde::{Deserialize, Serialize};

use crate::placement;
use crate::sys::{self, Bg, MeasureLock, Quiet};
use crate::topo::{GEN_DPORT, GEN_IP, GEN_SPORT, SINK_IP, Topo};

/// The frame generator.
#[derive(Debug, Clone)]
pub enum Generator {
    /// The project's `pktgen tx` (AF_XDP or AF_PACKET).
    Pktgen(PathBuf),
    /// netsniff-ng's trafgen (PACKET_MMAP), stopped with SIGINT after the duration.
    Trafgen,
}

impl Generator {
    /// Name for the results (without the binary's path: the `generator` fact, which runs
    /// must share to be pooled).
    pub fn describe(&self, mode: &str, rate: Option<u64>) -> String {
        match self {
            Self::Pktgen(_) => match rate {
                Some(r) => format!("pktgen --mode {mode} --rate {r}"),
                None => format!("pktgen --mode {mode}"),
            },
            Self::Trafgen => "trafgen (netsniff-ng, PACKET_MMAP)".into(),
        }
    }

    /// The generator's binary, if it is the project's.
    pub fn binary(&self) -> Option<&std::path::Path> {
        match self {
            Self::Pktgen(p) => Some(p),
            Self::Trafgen => None,
        }
    }
}

/// Settings of the measurements.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Frame generator.
    pub generator: Generator,
    /// `pktgen --mode`.
    pub gen_mode: String,
    /// `pktgen --rate` of the frame-rate figures (None: as fast as it goes).
    pub gen_rate: Option<u64>,
    /// Seconds of traffic per measurement.
    pub secs: u32,
    /// Seconds of the idle-CPU measurement.
    pub idle_secs: u32,
    /// sockperf messages per second.
    pub mps: u32,
    /// The measurement lock file, if any.
    pub lock: Option<PathBuf>,
    /// Quiet check: every CPU below this busy %.
    pub quiet_limit: f64,
    /// Quiet check: give up (and record it) after this long.
    pub quiet_wait: Duration,
    /// Core of the generator and the clients.
    pub gen_cpu: usize,
    /// Core of the switch.
    pub switch_cpu: usize,
    /// Core of the sink's programs (None: the kernel's choice).
    pub sink_cpu: Option<usize>,
    /// Core of the round-trip server (None: the kernel's choice).
    pub rtt_sink_cpu: Option<usize>,
    /// When the generator's and the switch's CPUs' hand-off is probed.
    pub probe: Probe,
    /// The TCP sender's congestion control (`iperf3 -C`); `None`: the kernel's default.
    pub tcp_cc: Option<String>,
    /// Jiffies per second.
    pub tck: f64,
}

/// One measurement's numbers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Meas {
    /// Named values (`fps`, `gbps`, `p50_us`, …).
    pub values: BTreeMap<String, f64>,
    /// Busy % per CPU while it ran.
    pub cpu_busy: Vec<f64>,
    /// Whether the machine was quiet before.
    pub quiet: Option<bool>,
    /// Busy % per CPU in the quiet check (not counting the switch's own processes).
    pub quiet_busy: Vec<f64>,
    /// Cache-line hand-off between the generator's and the switch's CPUs, ns: the probe
    /// before, those during (one a second) and the one after the measurement
    /// (`placement.rs`; the `handoff_ns` value is their median).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub handoff_ns: Vec<f64>,
    /// Tool output worth keeping.
    pub detail: String,
}

/// When the generator's and the switch's CPUs' cache-line hand-off is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Never.
    Off,
    /// Before and after each measurement.
    Edges,
    /// Before, once a second during, and after each measurement (a round-trip measurement:
    /// before and after only, see [`Ctx::measured_probing`]).
    During,
}

impl Probe {
    /// From `--placement-probe`.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "off" => Self::Off,
            "edges" => Self::Edges,
            "during" => Self::During,
            _ => bail!("--placement-probe takes off, edges or during, not {s:?}"),
        })
    }

    /// Its name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Edges => "edges",
            Self::During => "during",
        }
    }
}

/// Batches of a probe at the edges of a measurement (25: ~0.6 ms with the CPUs together) and
/// of one during it (5: ~0.1 ms, so that it takes little from the switch it interrupts).
const EDGE_BATCHES: usize = 25;
const DURING_BATCHES: usize = 5;

impl Ctx {
    fn gen_cmd(&self, topo: &Topo, program: &str) -> Command {
        let mut c = topo.gen_end.command("taskset");
        c.args(["-c", &self.gen_cpu.to_string(), program]);
        c
    }

    fn sink_cmd(&self, topo: &Topo, program: &str) -> Command {
        Self::sink_cmd_on(topo, program, self.sink_cpu)
    }

    fn sink_cmd_on(topo: &Topo, program: &str, cpu: Option<usize>) -> Command {
        match cpu {
            Some(cpu) => {
                let mut c = topo.sink.command("taskset");
                c.args(["-c", &cpu.to_string(), program]);
                c
            }
            None => topo.sink.command(program),
        }
    }

    /// Takes the lock, waits for a quiet machine, then runs `f` between two `/proc/stat`
    /// snapshots.
    fn measured(&self, topo: &Topo, f: impl FnOnce() -> Result<Meas>) -> Result<Meas> {
        self.measured_probing(topo, self.probe, f)
    }

    /// [`Ctx::measured`] with `probe` for the placement probes: a round-trip measurement
    /// probes at the edges only, as a probe during it takes both CPUs for 0.2–0.8 ms once a
    /// second (its threads spin on them; `perf sched` on the switch's CPU, 2026-12-07), which
    /// lands in the tail of the round trips it holds up (p99.9 of ~1 ms for a switch on the
    /// other CPU, whose round trips need both CPUs, against ~40 µs for the bridge on one).
    fn measured_probing(
        &self,
        topo: &Topo,
        probe: Probe,
        f: impl FnOnce() -> Result<Meas>,
    ) -> Result<Meas> {
        let _lock = MeasureLock::take(self.lock.as_deref())?;
        let q: Quiet = sys::wait_quiet(
            &topo.switch_pids(),
            self.switch_cpu,
            self.quiet_limit,
            self.quiet_wait,
            self.tck,
        )?;
        if !q.ok {
            eprintln!(
                "  machine not quiet after {:.0} s (busy % {:?}); measuring anyway",
                q.waited,
                q.busy.iter().map(|x| x.round()).collect::<Vec<_>>()
            );
        }
        let (gen_cpu, switch_cpu) = (self.gen_cpu, self.switch_cpu);
        let edge = || match probe {
            Probe::Off => None,
            // A failed probe (say, a CPU gone from the mask) leaves a gap, not a failure.
            _ => placement::handoff_ns(gen_cpu, switch_cpu, EDGE_BATCHES).ok(),
        };
        let before = edge();
        let sampler = (probe == Probe::During).then(|| {
            placement::Sampler::start(gen_cpu, switch_cpu, Duration::from_secs(1), DURING_BATCHES)
        });
        let a = sys::cpu_snap()?;
        let mut m = f()?;
        let b = sys::cpu_snap()?;
        let during = sampler.map(placement::Sampler::finish).unwrap_or_default();
        let after = edge();
        m.handoff_ns = before.into_iter().chain(during).chain(after).collect();
        if let Some(h) = crate::report::median(&m.handoff_ns) {
            m.values.insert("handoff_ns".into(), h);
        }
        m.cpu_busy = sys::busy_pct(&a, &b);
        m.quiet = Some(q.ok);
        m.quiet_busy = q.busy;
        Ok(m)
    }

    /// 64-byte frames from gen to the sink's MAC over `flows` UDP source ports for `secs`;
    /// the sink's nft counter gives what arrived.
    pub fn fps(&self, topo: &Topo, flows: u32) -> Result<Meas> {
        topo.learn()?;
        let before = topo.sink_count()?;
        let mut mark = None;
        let mut m = self.measured(topo, || {
            mark = topo.load_mark()?;
            self.generate(topo, flows)
        })?;
        // Frames still in flight (switch rings, backlogs) land within a few ms.
        sys::sleep(Duration::from_millis(500))?;
        let delivered = topo.sink_count()?.saturating_sub(before) as f64;
        let sent = m.values.get("sent").copied().unwrap_or(0.0);
        let secs = m.values.get("secs").copied().unwrap_or(0.0);
        if secs <= 0.0 {
            bail!("generator reported no duration: {}", m.detail);
        }
        // The switch's own account of its forwarding core: busy polling shows 100 % in
        // /proc/stat whatever the load, so the work it did is read from the switch.
        if let Some(mark) = mark
            && let Some(load) = topo.load_since(mark)?
        {
            m.values
                .insert("switch_busy_pct".into(), 100.0 * load.busy_secs / secs);
            if load.frames > 0.0 {
                m.values.insert(
                    "switch_ns_per_frame".into(),
                    1e9 * load.busy_secs / load.frames,
                );
            }
            // Its own work per frame (the rest is the kernel's, inside the transmit kicks).
            if let Some(f) = load.flush_secs.filter(|_| load.frames > 0.0) {
                m.values.insert(
                    "switch_own_ns_per_frame".into(),
                    1e9 * (load.busy_secs - f).max(0.0) / load.frames,
                );
            }
            if let Some(b) = load.batches.filter(|b| *b > 0.0) {
                m.values
                    .insert("switch_frames_per_batch".into(), load.frames / b);
            }
            if let Some(f) = load.full_batches.filter(|_| load.frames > 0.0) {
                m.values.insert(
                    "switch_full_batch_pct".into(),
                    100.0 * f * BATCH_SIZE as f64 / load.frames,
                );
            }
        }
        m.values.insert("delivered".into(), delivered);
        m.values.insert("fps".into(), delivered / secs);
        m.values.insert("loss".into(), sent - delivered);
        if sent > 0.0 {
            m.values
                .insert("loss_pct".into(), 100.0 * (sent - delivered) / sent);
        }
        Ok(m)
    }

    fn generate(&self, topo: &Topo, flows: u32) -> Result<Meas> {
        let flows = flows.max(1);
        let last_port = GEN_SPORT + flows - 1;
        match &self.generator {
            Generator::Pktgen(bin) => {
                let ports = if flows == 1 {
                    GEN_SPORT.to_string()
                } else {
                    format!("{GEN_SPORT}-{last_port}")
                };
                let mut c = self.gen_cmd(topo, &bin.display().to_string());
                c.args([
                    "tx",
                    "--dev",
                    "eth0",
                    "--mode",
                    &self.gen_mode,
                    "--duration",
                    &self.secs.to_string(),
                    "--size",
                    "60",
                    "--src-mac",
                    &topo.gen_end.mac,
                    "--dst-mac",
                    &topo.sink.mac,
                    "--src-ip",
                    GEN_IP,
                    "--dst-ip",
                    SINK_IP,
                    "--src-port",
                    &ports,
                    "--dst-port",
                    &GEN_DPORT.to_string(),
                    "--flows",
                    &flows.to_string(),
                ]);
                if let Some(r) = self.gen_rate {
                    c.args(["--rate", &r.to_string()]);
                }
                let out = sys::run_to(
                    "pktgen",
                    &mut c,
                    Duration::from_secs(u64::from(self.secs) + 30),
                )?
                .ok("pktgen tx")?;
                let line = out
                    .stdout
                    .lines()
                    .rev()
                    .find(|l| l.contains("sent="))
                    .with_context(|| format!("no `sent=` line from pktgen: {}", out.stdout))?
                    .to_owned();
                let mut m = Meas::default();
                for key in ["sent", "secs", "pps", "eagain"] {
                    if let Some(v) = testbed::field(&line, key).and_then(|v| v.parse().ok()) {
                        m.values.insert(key.into(), v);
                    }
                }
                m.detail = line;
                Ok(m)
            }
            Generator::Trafgen => {
                let sport = if flows == 1 {
                    GEN_SPORT.to_string()
                } else {
                    format!("dinc({GEN_SPORT}, {last_port})")
                };
                let conf = format!(
                    "{{ eth(da={}, sa={}), ipv4(saddr={GEN_IP}, daddr={SINK_IP}), udp(sp={sport}, dp={GEN_DPORT}), fill(0x00, 18) }}\n",
                    topo.sink.mac, topo.gen_end.mac
                );
                let file =
                    std::env::temp_dir().join(format!("{}.trafgen", testbed::unique("e2etg")));
                std::fs::write(&file, conf)?;
                let mut c = self.gen_cmd(topo, "trafgen");
                c.args(["--dev", "eth0", "--cpus", "1", "--no-sock-mem", "--conf"])
                    .arg(&file);
                let t0 = Instant::now();
                let mut tg = Bg::spawn("trafgen", &mut c)?;
                let end = t0 + Duration::from_secs(u64::from(self.secs));
                while Instant::now() < end && tg.running() {
                    sys::sleep(Duration::from_millis(20))?;
                }
                let secs = t0.elapsed().as_secs_f64();
                let out = tg.stop_with("INT", Duration::from_secs(10));
                let _ = std::fs::remove_file(&file);
                let out = out?;
                let text = format!("{}\n{}", out.stdout, out.stderr);
                let sent = text
                    .lines()
                    .find(|l| l.contains("packets outgoing"))
                    .and_then(|l| l.split_whitespace().next())
                    .and_then(|n| n.parse::<f64>().ok())
                    .with_context(|| format!("no packet count from trafgen: {}", text.trim()))?;
                let mut m = Meas::default();
                m.values.insert("sent".into(), sent);
                m.values.insert("secs".into(), secs);
                m.values.insert("pps".into(), sent / secs);
                m.detail = format!("trafgen sent {sent} in {secs:.3} s");
                Ok(m)
            }
        }
    }

    /// iperf3 from gen to the sink, `streams` parallel streams, for `secs`.
    pub fn tcp(&self, topo: &Topo, streams: u32) -> Result<Meas> {
        let mut server = self.sink_cmd(topo, "iperf3");
        server.args(["-s", "-1", "-B", SINK_IP, "-p", "5201"]);
        let server = Bg::spawn("iperf3 server", &mut server)?;
        wait_listening(topo, "-Hltn", 5201)?;
        let mut m = self.measured(topo, || {
            let mut c = self.gen_cmd(topo, "iperf3");
            c.args([
                "-c",
                SINK_IP,
                "-p",
                "5201",
                "-t",
                &self.secs.to_string(),
                "-P",
                &streams.to_string(),
                "-J",
                "--connect-timeout",
                "5000",
            ]);
            if let Some(cc) = &self.tcp_cc {
                c.args(["-C", cc]);
            }
            let out = sys::run_to(
                "iperf3 client",
                &mut c,
                Duration::from_secs(u64::from(self.secs) + 30),
            )?;
            parse_iperf3(&out.stdout)
        })?;
        // The one-off server exits after the test.
        if let Err(e) = server.wait(Duration::from_secs(10)) {
            m.detail.push_str(&format!(" (server: {e})"));
        }
        Ok(m)
    }

    /// sockperf ping-pong (UDP, 64-byte messages, `mps` per second, full round-trip times).
    pub fn rtt(&self, topo: &Topo) -> Result<Meas> {
        let mut server = Self::sink_cmd_on(topo, "sockperf", self.rtt_sink_cpu);
        server.args(["sr", "-i", SINK_IP, "-p", "11111"]);
        let server = Bg::spawn("sockperf server", &mut server)?;
        wait_listening(topo, "-Hlun", 11111)?;
        let probe = match self.probe {
            Probe::During => Probe::Edges,
            p => p,
        };
        let m = self.measured_probing(topo, probe, || {
            let mut c = self.gen_cmd(topo, "sockperf");
            c.args([
                "pp",
                "-i",
                SINK_IP,
                "-p",
                "11111",
                "-t",
                &self.secs.to_string(),
                "-m",
                "64",
                "--mps",
                &self.mps.to_string(),
                "--full-rtt",
            ]);
            let out = sys::run_to(
                "sockperf client",
                &mut c,
                Duration::from_secs(u64::from(self.secs) + 30),
            )?
            .ok("sockperf pp")?;
            parse_sockperf(&out.stdout)
        })?;
        drop(server);
        Ok(m)
    }

    /// The switch's own CPU time over `idle_secs` with no traffic, as % of one core.
    pub fn idle(&self, topo: &Topo) -> Result<Meas> {
        let pids = topo.switch_pids();
        if pids.is_empty() {
            bail!("no switch process on this path");
        }
        // Let the wake-ups of the learning pings pass.
        sys::sleep(Duration::from_secs(1))?;
        self.measured(topo, || {
            let t0 = Instant::now();
            // A switch that has stopped uses no CPU either: not an idle switch's figure.
            let a = sys::running_ticks(&pids).context("the switch is not running")?;
            sys::sleep(Duration::from_secs(u64::from(self.idle_secs)))?;
            let b = sys::running_ticks(&pids)
                .context("the switch stopped during the idle measurement")?;
            let secs = t0.elapsed().as_secs_f64();
            let mut m = Meas::default();
            m.values.insert(
                "core_pct".into(),
                100.0 * b.saturating_sub(a) as f64 / self.tck / secs,
            );
            m.values.insert("secs".into(), secs);
            Ok(m)
        })
    }
}

/// Waits until something listens on `port` in the sink (`ss FLAGS sport = :PORT`).
fn wait_listening(topo: &Topo, flags: &str, port: u16) -> Result<()> {
    let filter = format!("sport = :{port}");
    let ok = testbed::wait_until(Duration::from_secs(5), || {
        sys::stopped()
            || topo
                .sink
                .run("ss", &[flags, &filter], sys::SHORT)
                .is_ok_and(|s| !s.trim().is_empty())
    });
    sys::check_stop()?;
    if !ok {
        bail!("no server listening on port {port} in the sink");
    }
    Ok(())
}

/// Gb/s received (and retransmits) from `iperf3 -J`.
pub fn parse_iperf3(json: &str) -> Result<Meas> {
    let v: serde_json::Value = serde_json::from_str(json)
        .with_context(|| format!("iperf3 printed no JSON: {}", json.trim()))?;
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        bail!("iperf3: {e}");
    }
    let bps = v
        .pointer("/end/sum_received/bits_per_second")
        .and_then(serde_json::Value::as_f64)
        .context("iperf3 JSON without end.sum_received.bits_per_second")?;
    let mut m = Meas::default();
    m.values.insert("gbps".into(), bps / 1e9);
    if let Some(r) = v
        .pointer("/end/sum_sent/retransmits")
        .and_then(serde_json::Value::as_f64)
    {
        m.values.insert("retransmits".into(), r);
    }
    Ok(m)
}

/// Percentiles (µs) from `sockperf pp` output.
pub fn parse_sockperf(text: &str) -> Result<Meas> {
    let text = sys::strip_ansi(text);
    let mut m = Meas::default();
    for line in text.lines() {
        if let Some(v) = line
            .split("avg-rtt=")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
        {
            m.values.insert("avg_us".into(), v);
            continue;
        }
        let Some((left, right)) = line.split_once('=') else {
            continue;
        };
        let value = right
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok());
        let key = if left.contains("percentile 50.000") {
            "p50_us"
        } else if left.contains("percentile 99.000") {
            "p99_us"
        } else if left.contains("percentile 99.900") {
            "p999_us"
        } else if left.contains("<MAX>") {
            "max_us"
        } else if left.contains("<MIN>") {
            "min_us"
        } else {
            continue;
        };
        if let Some(v) = value {
            m.values.insert(key.into(), v);
        }
    }
    if let Some(n) = text
        .lines()
        .find_map(|l| l.split("Total ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
    {
        m.values.insert("observations".into(), n);
    }
    if !m.values.contains_key("p50_us") || !m.values.contains_key("p99_us") {
        bail!("no percentiles in sockperf output: {}", text.trim());
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockperf_percentiles_are_parsed() {
        let out = "sockperf: \u{1b}[2;35m====> avg-rtt=90.562 (std-dev=729.341)\u{1b}[0m\n\
            sockperf: \u{1b}[2;35mTotal 7702 observations\u{1b}[0m; each percentile contains 77.02 observations\n\
            sockperf: ---> <MAX> observation = 32826.233\n\
            sockperf: ---> percentile 99.900 = 8098.932\n\
            sockperf: ---> percentile 99.000 = 3674.072\n\
            sockperf: ---> percentile 50.000 =   20.630\n\
            sockperf: ---> <MIN> observation =   13.019\n";
        let m = parse_sockperf(out).unwrap();
        assert_eq!(m.values["p50_us"], 20.630);
        assert_eq!(m.values["p99_us"], 3674.072);
        assert_eq!(m.values["p999_us"], 8098.932);
        assert_eq!(m.values["avg_us"], 90.562);
        assert_eq!(m.values["observations"], 7702.0);
        assert!(parse_sockperf("sockperf: nothing").is_err());
    }

    #[test]
    fn iperf3_json_is_parsed() {
        let j =
            r#"{"end":{"sum_sent":{"retransmits":3},"sum_received":{"bits_per_second":2.5e9}}}"#;
        let m = parse_iperf3(j).unwrap();
        assert_eq!(m.values["gbps"], 2.5);
        assert_eq!(m.values["retransmits"], 3.0);
        assert!(parse_iperf3(r#"{"error":"unable to connect"}"#).is_err());
        assert!(parse_iperf3("garbage").is_err());
    }
}
