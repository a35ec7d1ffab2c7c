//! The measured paths: two namespaces `gen` and `sink` joined through one switch (or none),
//! each piece owned by a guard that removes it on drop.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use datapath::sys::bpf::{DevMap, XdpAttachMode, XdpLink, XdpProgram};
use datapath::sys::netdev;
use testbed::{Container, Daemon, Netns, unique};

use crate::sys::{self, Bg, SHORT};

/// Address of the generator's `eth0`.
pub const GEN_IP: &str = "10.201.0.1";
/// Address of the sink's `eth0`.
pub const SINK_IP: &str = "10.201.0.2";
/// UDP destination port of the generated frames (the sink's nft rule counts and drops it).
pub const GEN_DPORT: u16 = 9;
/// The generator's first UDP source port (flow `i` sends from `GEN_SPORT + i`).
pub const GEN_SPORT: u32 = 1024;
/// Flows of the many-flow figure (`fps_10k`).
pub const FLOWS_MANY: u32 = 10_000;

/// One way of joining `gen` and `sink`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathKind {
    /// A. vswitchd, AF_XDP ports on the veth host ends.
    VsAfxdp,
    /// B. vswitchd, tap ports moved into the namespaces.
    VsTap,
    /// C. vswitchd, AF_PACKET ports on the veth host ends.
    VsAfpacket,
    /// D. The Linux bridge.
    Bridge,
    /// E. Open vSwitch userspace datapath, afxdp ports (native XDP unless `--ovs-xdp-mode`), one PMD core.
    OvsAfxdp,
    /// F. Open vSwitch userspace datapath, system ports.
    OvsSystem,
    /// G. One veth pair gen ↔ sink, no switch.
    Veth,
    /// H. No switch process: an XDP program on each veth host end sends every frame out of
    /// the other (`XDP_REDIRECT` through a device map), the model of an in-kernel fast path.
    XdpRedirect,
}

impl PathKind {
    /// All paths, in table order.
    pub const ALL: [Self; 8] = [
        Self::VsAfxdp,
        Self::VsTap,
        Self::VsAfpacket,
        Self::Bridge,
        Self::OvsAfxdp,
        Self::OvsSystem,
        Self::Veth,
        Self::XdpRedirect,
    ];

    /// Key used on the command line and in the raw results.
    pub fn key(self) -> &'static str {
        match self {
            Self::VsAfxdp => "vswitchd-afxdp",
            Self::VsTap => "vswitchd-tap",
            Self::VsAfpacket => "vswitchd-afpacket",
            Self::Bridge => "bridge",
            Self::OvsAfxdp => "ovs-afxdp",
            Self::OvsSystem => "ovs-system",
            Self::Veth => "veth",
            Self::XdpRedirect => "xdp-redirect",
        }
    }

    /// Whether its traffic crosses between the generator's and the switch's cores (a switch
    /// on a core of its own), so that where the host put the two vCPUs matters to it. The
    /// bridge, a bare veth pair and the XDP redirect run on the sender's core.
    pub fn crosses_cores(self) -> bool {
        !matches!(self, Self::Bridge | Self::Veth | Self::XdpRedirect)
    }

    /// Letter of the path (A–H).
    pub fn letter(self) -> char {
        match self {
            Self::VsAfxdp => 'A',
            Self::VsTap => 'B',
            Self::VsAfpacket => 'C',
            Self::Bridge => 'D',
            Self::OvsAfxdp => 'E',
            Self::OvsSystem => 'F',
            Self::Veth => 'G',
            Self::XdpRedirect => 'H',
        }
    }

    /// Column heading.
    pub fn label(self) -> &'static str {
        match self {
            Self::VsAfxdp => "vswitchd AF_XDP",
            Self::VsTap => "vswitchd tap",
            Self::VsAfpacket => "vswitchd AF_PACKET",
            Self::Bridge => "Linux bridge",
            Self::OvsAfxdp => "OVS afxdp",
            Self::OvsSystem => "OVS system",
            Self::Veth => "direct veth",
            Self::XdpRedirect => "XDP redirect",
        }
    }

    /// Parses a key or a letter.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        Self::ALL.into_iter().find(|p| {
            p.key().eq_ignore_ascii_case(s) || p.letter().to_string().eq_ignore_ascii_case(s)
        })
    }

    /// True for the vswitchd paths (measured in both poll modes).
    pub fn is_vswitchd(self) -> bool {
        matches!(self, Self::VsAfxdp | Self::VsTap | Self::VsAfpacket)
    }
}

/// vswitchd worker polling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// `--poll-mode busy`.
    Busy,
    /// `--poll-mode adaptive`.
    Adaptive,
}

impl Poll {
    fn arg(self) -> &'static str {
        match self {
            Self::Busy => "busy",
            Self::Adaptive => "adaptive",
        }
    }
}

/// Where things run and which programs to use.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Directory with `vswitchd` and `vsctl`.
    pub bin_dir: PathBuf,
    /// The core of the switch's forwarding thread(s).
    pub switch_cpu: usize,
    /// vswitchd gets one rule per source port of this many flows (`--rule-per-flow`).
    pub rule_per_flow: Option<u32>,
    /// Open vSwitch afxdp ports' `options:xdp-mode` (`--ovs-xdp-mode`).
    pub ovs_xdp_mode: String,
    /// vswitchd's AF_XDP ports' `--xdp-mode` (`--xdp-mode`; `None`: the port's own choice).
    pub vs_xdp_mode: Option<String>,
    /// GRO on at the receiving end of the generator's `eth0` (the veth host end, or the
    /// sink's `eth0` of a bare pair), which puts that veth in NAPI mode: frames sent from XDP
    /// (`pktgen --mode xdplive`) arrive only there.
    pub gen_napi: bool,
}

/// A namespace end: `eth0` inside with `addr/24` and `mac`.
#[derive(Debug)]
pub struct End {
    holder: Holder,
    /// MAC address of `eth0`.
    pub mac: String,
    /// IPv4 address of `eth0`.
    pub addr: String,
}

#[derive(Debug)]
enum Holder {
    Container(Container),
    Ns(Netns),
}

impl End {
    fn container(c: Container) -> Self {
        Self {
            mac: c.mac.clone(),
            addr: c.addr.clone(),
            holder: Holder::Container(c),
        }
    }

    /// The namespace.
    pub fn ns(&self) -> &Netns {
        match &self.holder {
            Holder::Container(c) => &c.ns,
            Holder::Ns(n) => n,
        }
    }

    /// A command run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        self.ns().command(program)
    }

    /// Runs `program args…` inside the namespace within `timeout`; returns stdout.
    pub fn run(&self, program: &str, args: &[&str], timeout: Duration) -> Result<String> {
        let what = format!("{program} {} in {}", args.join(" "), self.ns().name);
        let mut c = self.command(program);
        c.args(args);
        Ok(sys::run_to(&what, &mut c, timeout)?.ok(&what)?.stdout)
    }
}

/// A link in the root namespace deleted on drop (missing is fine).
#[derive(Debug)]
pub struct Link(pub String);

impl Drop for Link {
    fn drop(&mut self) {
        let _ = sys::run("ip", &["link", "del", &self.0], SHORT);
    }
}

/// A private Open vSwitch: ovsdb-server and ovs-vswitchd with their own run directory,
/// killed by PID on drop after the bridge is deleted.
#[derive(Debug)]
pub struct Ovs {
    // Declared in stop order: the switch first, then the database.
    vswitchd: Option<Bg>,
    ovsdb: Option<Bg>,
    dir: PathBuf,
    bridge: Option<String>,
}

impl Ovs {
    fn env(&self, c: &mut Command) {
        for v in ["OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"] {
            c.env(v, &self.dir);
        }
    }

    /// `ovs-vsctl --db=… ARGS…`
    pub fn vsctl(&self, args: &[&str]) -> Result<String> {
        let db = format!("unix:{}/db.sock", self.dir.display());
        let mut c = Command::new("ovs-vsctl");
        c.arg(format!("--db={db}")).arg("--timeout=20").args(args);
        self.env(&mut c);
        let what = format!("ovs-vsctl {}", args.join(" "));
        Ok(sys::run_to(&what, &mut c, Duration::from_secs(30))?
            .ok(&what)?
            .stdout)
    }

    /// `ovs-appctl -t …/ovs-vswitchd.ctl ARGS…`
    pub fn appctl(&self, args: &[&str]) -> Result<String> {
        let mut c = Command::new("ovs-appctl");
        c.arg("-t")
            .arg(self.dir.join("ovs-vswitchd.ctl"))
            .arg("--timeout=20")
            .args(args);
        self.env(&mut c);
        let what = format!("ovs-appctl {}", args.join(" "));
        Ok(sys::run_to(&what, &mut c, Duration::from_secs(30))?
            .ok(&what)?
            .stdout)
    }

    /// Starts the database and the switch (all its threads on `cpu`, PMD mask = `cpu`).
    fn start(cpu: usize) -> Result<Self> {
        let dir = std::env::temp_dir().join(unique("e2eovs"));
        std::fs::create_dir_all(&dir)?;
        let mut ovs = Self {
            vswitchd: None,
            ovsdb: None,
            dir,
            bridge: None,
        };
        let d = ovs.dir.display().to_string();
        let schema = "/usr/share/openvswitch/vswitch.ovsschema";
        if !Path::new(schema).exists() {
            bail!("{schema} missing: is openvswitch-switch installed?");
        }
        sys::run(
            "ovsdb-tool",
            &["create", &format!("{d}/conf.db"), schema],
            SHORT,
        )?;
        let mut c = Command::new("ovsdb-server");
        c.arg(format!("{d}/conf.db"))
            .arg(format!("--remote=punix:{d}/db.sock"))
            .arg(format!("--pidfile={d}/ovsdb-server.pid"))
            .arg(format!("--unixctl={d}/ovsdb-server.ctl"))
            .arg(format!("--log-file={d}/ovsdb-server.log"))
            .arg("-vconsole:off");
        ovs.env(&mut c);
        ovs.ovsdb = Some(Bg::spawn("ovsdb-server", &mut c)?);
        let sock = ovs.dir.join("db.sock");
        if !testbed::wait_until(Duration::from_secs(10), || sock.exists()) {
            bail!("ovsdb-server did not create {}", sock.display());
        }
        ovs.vsctl(&["--no-wait", "init"])?;
        ovs.vsctl(&[
            "--no-wait",
            "set",
            "Open_vSwitch",
            ".",
            &format!("other_config:pmd-cpu-mask={:#x}", 1u64 << cpu),
        ])?;
        let mut c = Command::new("taskset");
        c.args(["-c", &cpu.to_string(), "ovs-vswitchd"])
            .arg(format!("unix:{d}/db.sock"))
            .arg(format!("--pidfile={d}/ovs-vswitchd.pid"))
            .arg(format!("--unixctl={d}/ovs-vswitchd.ctl"))
            .arg(format!("--log-file={d}/ovs-vswitchd.log"))
            .arg("-vconsole:off");
        ovs.env(&mut c);
        ovs.vswitchd = Some(Bg::spawn("ovs-vswitchd", &mut c)?);
        let ctl = ovs.dir.join("ovs-vswitchd.ctl");
        if !testbed::wait_until(Duration::from_secs(10), || ctl.exists()) {
            bail!("ovs-vswitchd did not start: {}", ovs.log_tail());
        }
        Ok(ovs)
    }

    /// Last lines of ovs-vswitchd's log.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("ovs-vswitchd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }

    fn pids(&self) -> Vec<u32> {
        self.vswitchd.iter().filter_map(Bg::pid).collect()
    }

    fn add_bridge(&mut self, name: &str) -> Result<()> {
        self.vsctl(&[
            "add-br",
            name,
            "--",
            "set",
            "bridge",
            name,
            "datapath_type=netdev",
        ])?;
        self.bridge = Some(name.to_owned());
        Ok(())
    }

    /// Adds `dev`: an afxdp port in XDP mode `afxdp` (`native`, `generic`, …), else a system
    /// port.
    fn add_port(&self, dev: &str, afxdp: Option<&str>) -> Result<()> {
        let br = self.bridge.as_deref().context("no bridge")?;
        if let Some(mode) = afxdp {
            let mode = format!("options:xdp-mode={mode}");
            self.vsctl(&[
                "add-port",
                br,
                dev,
                "--",
                "set",
                "interface",
                dev,
                "type=afxdp",
                &mode,
            ])?;
        } else {
            self.vsctl(&["add-port", br, dev])?;
        }
        let err = self.vsctl(&["get", "interface", dev, "error"])?;
        let err = err.trim();
        if !err.is_empty() && err != "[]" {
            bail!("OVS port {dev}: {err}");
        }
        let ofport = self.vsctl(&["get", "interface", dev, "ofport"])?;
        if ofport.trim() == "-1" {
            bail!("OVS port {dev} has no ofport: {}", self.log_tail());
        }
        Ok(())
    }
}

/// vswitchd's worker counters, summed over the workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerLoad {
    /// Time in passes that found work.
    pub busy_ns: u64,
    /// Frames received.
    pub frames: u64,
    /// Receive batches that held frames.
    pub batches: u64,
    /// Receive batches that came back full (64 frames: the worker was behind).
    pub full_batches: u64,
    /// Of `busy_ns`, the time in the ports' transmit flushes (the kicks).
    pub flush_ns: u64,
}

/// vswitchd's `vsctl --json show` (`{"hello":…,"switch":…}`): the workers' counters summed.
pub fn parse_worker_load(json: &str) -> Option<WorkerLoad> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let workers = v.get("switch")?.get("worker_stats")?.as_array()?;
    let mut sum = WorkerLoad::default();
    for w in workers {
        let n = |k: &str| w.get(k).and_then(serde_json::Value::as_u64);
        sum.busy_ns = sum.busy_ns.saturating_add(n("busy_ns")?);
        sum.frames = sum.frames.saturating_add(n("frames")?);
        sum.batches = sum.batches.saturating_add(n("batches")?);
        // Daemons before the counter report none.
        sum.full_batches = sum
            .full_batches
            .saturating_add(n("full_batches").unwrap_or(0));
        sum.flush_ns = sum.flush_ns.saturating_add(n("flush_ns").unwrap_or(0));
    }
    Some(sum)
}

/// Open vSwitch's `dpif-netdev/pmd-stats-show`, PMD threads only (not the main thread): the
/// processing share of their cycles (processing ÷ (idle + processing)) and the packets they
/// received.
pub fn parse_pmd_stats(text: &str) -> Option<(f64, f64)> {
    let mut in_pmd = false;
    let (mut idle, mut proc, mut packets) = (0.0, 0.0, 0.0);
    let mut seen = false;
    let count = |rest: &str| -> Option<f64> { rest.split_whitespace().next()?.parse().ok() };
    for line in text.lines() {
        let t = line.trim();
        if !line.starts_with(' ') && t.ends_with(':') {
            in_pmd = t.starts_with("pmd thread");
            continue;
        }
        if !in_pmd {
            continue;
        }
        if let Some(rest) = t.strip_prefix("packets received:") {
            packets += count(rest)?;
            seen = true;
        } else if let Some(rest) = t.strip_prefix("idle cycles:") {
            idle += count(rest)?;
        } else if let Some(rest) = t.strip_prefix("processing cycles:") {
            proc += count(rest)?;
        }
    }
    if !seen {
        return None;
    }
    let share = if idle + proc > 0.0 {
        proc / (idle + proc)
    } else {
        0.0
    };
    Some((share, packets))
}

impl Drop for Ovs {
    fn drop(&mut self) {
        if let Some(br) = self.bridge.take() {
            let _ = self.vsctl(&["--if-exists", "del-br", &br]);
        }
        // SIGTERM by PID, then SIGKILL (Bg's drop), switch first.
        self.vswitchd.take();
        self.ovsdb.take();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The switch between the two ends.
#[derive(Debug)]
pub enum Switch {
    /// Direct veth pair.
    None,
    /// vswitchd.
    Vswitchd(Daemon),
    /// The Linux bridge device.
    Bridge {
        /// Deleted on drop.
        _link: Link,
    },
    /// Open vSwitch.
    Ovs(Ovs),
    /// The XDP redirect programs.
    Xdp {
        /// Detached on drop.
        _fwd: XdpForward,
    },
}

/// Path H: one device-map redirect program attached (native mode) to both veth host ends,
/// each sending what it receives out of the other. Dropping it detaches the programs.
#[derive(Debug)]
pub struct XdpForward {
    // Links first: detached before the program and map close.
    _links: Vec<XdpLink>,
    _prog: XdpProgram,
    _map: DevMap,
}

impl XdpForward {
    fn attach(a: &str, b: &str) -> Result<Self> {
        let (ia, ib) = (netdev::ifindex(a)?, netdev::ifindex(b)?);
        let map = DevMap::new(2)?;
        map.set(ia, ib)?;
        map.set(ib, ia)?;
        let prog = XdpProgram::load_device_redirect(&map)?;
        let links = [ia, ib]
            .into_iter()
            .map(|i| XdpLink::attach(&prog, i, XdpAttachMode::Driver))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            _links: links,
            _prog: prog,
            _map: map,
        })
    }
}

/// A built path. Fields drop in order: the switch first, then the namespaces.
#[derive(Debug)]
pub struct Topo {
    /// What joins the ends.
    pub switch: Switch,
    /// The generator's namespace.
    pub gen_end: End,
    /// The sink's namespace.
    pub sink: End,
    /// Which path.
    pub kind: PathKind,
    /// Settings changed for this path that a reader must know (e.g. offloads).
    pub notes: Vec<String>,
    /// `vsctl`, to read vswitchd's worker counters.
    vsctl: PathBuf,
}

/// A reading of the switch's own load counters, to take the difference from.
#[derive(Debug, Clone, Copy)]
pub enum LoadMark {
    /// vswitchd: its workers' counters.
    Vswitchd(WorkerLoad),
    /// Open vSwitch: the PMD counters were cleared at this instant.
    Ovs(Instant),
}

/// What the switch's forwarding core did over a measurement, by the switch's own account.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    /// Seconds between the two readings that the forwarding thread(s) spent working (not
    /// polling empty queues).
    pub busy_secs: f64,
    /// Frames the switch received.
    pub frames: f64,
    /// Receive batches that held frames (vswitchd; Open vSwitch does not count them).
    pub batches: Option<f64>,
    /// Of those, the full ones (vswitchd).
    pub full_batches: Option<f64>,
    /// Of `busy_secs`, the seconds in the ports' transmit flushes (vswitchd).
    pub flush_secs: Option<f64>,
}

impl Topo {
    /// PIDs whose CPU time is the switch's (empty for kernel paths).
    pub fn switch_pids(&self) -> Vec<u32> {
        match &self.switch {
            Switch::Vswitchd(d) => d.pid().into_iter().collect(),
            Switch::Ovs(o) => o.pids(),
            Switch::None | Switch::Bridge { .. } | Switch::Xdp { .. } => Vec::new(),
        }
    }

    /// Builds `kind` (`poll` matters for vswitchd only).
    pub fn build(kind: PathKind, poll: Poll, setup: &Setup) -> Result<Self> {
        sys::check_stop()?;
        let mut notes = Vec::new();
        let (switch, gen_end, sink) = match kind {
            PathKind::VsAfxdp | PathKind::VsAfpacket => {
                let g = Container::veth("e2g", 1, GEN_IP)?;
                let s = Container::veth("e2s", 2, SINK_IP)?;
                let d = start_vswitchd(setup, poll)?;
                let (t, mode) = if kind == PathKind::VsAfxdp {
                    ("afxdp", setup.vs_xdp_mode.as_deref())
                } else {
                    ("afpacket", None)
                };
                if let Some(m) = mode {
                    notes.push(format!("{}: `vsctl add-port --xdp-mode {m}`", kind.label()));
                }
                vsctl_add(setup, &d, &g.port, t, mode)?;
                vsctl_add(setup, &d, &s.port, t, mode)?;
                rules_per_flow(setup, &d, &s.port, &mut notes)?;
                (Switch::Vswitchd(d), End::container(g), End::container(s))
            }
            PathKind::VsTap => {
                let d = start_vswitchd(setup, poll)?;
                let t1 = unique("e2t");
                let t2 = unique("e2t");
                vsctl_add(setup, &d, &t1, "tap", None)?;
                vsctl_add(setup, &d, &t2, "tap", None)?;
                rules_per_flow(setup, &d, &t2, &mut notes)?;
                let g = Container::tap("e2g", 1, GEN_IP, &t1)?;
                let s = Container::tap("e2s", 2, SINK_IP, &t2)?;
                (Switch::Vswitchd(d), End::container(g), End::container(s))
            }
            PathKind::Bridge => {
                let g = Container::veth("e2g", 1, GEN_IP)?;
                let s = Container::veth("e2s", 2, SINK_IP)?;
                let br = Link(unique("e2br"));
                sys::run("ip", &["link", "add", &br.0, "type", "bridge"], SHORT)?;
                std::fs::write(
                    format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", br.0),
                    "1",
                )
                .ok();
                sys::run("ip", &["link", "set", &br.0, "up"], SHORT)?;
                for p in [&g.port, &s.port] {
                    sys::run("ip", &["link", "set", p, "master", &br.0], SHORT)?;
                }
                (
                    Switch::Bridge { _link: br },
                    End::container(g),
                    End::container(s),
                )
            }
            PathKind::OvsAfxdp | PathKind::OvsSystem => {
                let g = Container::veth("e2g", 1, GEN_IP)?;
                let s = Container::veth("e2s", 2, SINK_IP)?;
                let afxdp = kind == PathKind::OvsAfxdp;
                // Partial checksums (the container stack's default, tx-checksumming on) are
                // lost through AF_XDP (PLATFORM.md) and through OVS 3.1's system ports
                // without userspace TSO; OVS does not complete them, so TCP and UDP need the
                // containers' tx checksum offload off. ICMP (computed in full) passes either way.
                for c in [&g, &s] {
                    End::run_in(&c.ns, "ethtool", &["-K", "eth0", "tx", "off"])?;
                }
                notes.push(format!(
                    "{}: `ethtool -K eth0 tx off` in both containers (OVS 3.1 does not complete partial checksums on these ports; TCP and UDP move nothing otherwise)",
                    kind.label()
                ));
                let mut ovs = Ovs::start(setup.switch_cpu)?;
                let br = unique("e2ob");
                ovs.add_bridge(&br)?;
                let mode = afxdp.then_some(setup.ovs_xdp_mode.as_str());
                if let Some(m) = mode.filter(|m| *m != "native") {
                    notes.push(format!("{}: `options:xdp-mode={m}`", kind.label()));
                }
                ovs.add_port(&g.port, mode)?;
                ovs.add_port(&s.port, mode)?;
                (Switch::Ovs(ovs), End::container(g), End::container(s))
            }
            PathKind::XdpRedirect => {
                let g = Container::veth("e2g", 1, GEN_IP)?;
                let s = Container::veth("e2s", 2, SINK_IP)?;
                // `ndo_xdp_xmit` into a veth needs NAPI on the receiving end (GRO on, else the
                // frames vanish: PLATFORM.md); a redirected frame loses the partial-checksum
                // state, as through AF_XDP, so the containers complete their checksums.
                for c in [&g, &s] {
                    End::run_in(&c.ns, "ethtool", &["-K", "eth0", "gro", "on", "tx", "off"])?;
                }
                notes.push(format!(
                    "{}: `ethtool -K eth0 gro on tx off` in both containers (a redirect into a veth needs NAPI on the receiving end; redirected frames lose the partial-checksum state)",
                    kind.label()
                ));
                let fwd = XdpForward::attach(&g.port, &s.port)?;
                (
                    Switch::Xdp { _fwd: fwd },
                    End::container(g),
                    End::container(s),
                )
            }
            PathKind::Veth => {
                let gn = Netns::new("e2g")?;
                let sn = Netns::new("e2s")?;
                let a = Link(unique("e2va"));
                let b = unique("e2vb");
                sys::run(
                    "ip",
                    &["link", "add", &a.0, "type", "veth", "peer", "name", &b],
                    SHORT,
                )?;
                sys::run("ip", &["link", "set", &b, "netns", &sn.name], SHORT)?;
                sys::run("ip", &["link", "set", &a.0, "netns", &gn.name], SHORT)?;
                let ends = [
                    (gn, a.0.clone(), testbed::mac_for(1), GEN_IP),
                    (sn, b, testbed::mac_for(2), SINK_IP),
                ];
                let mut made = Vec::new();
                for (ns, dev, mac, addr) in ends {
                    ns.ip(&["link", "set", &dev, "name", "eth0"])?;
                    ns.ip(&["link", "set", "eth0", "address", &mac])?;
                    ns.ip(&["addr", "add", &format!("{addr}/24"), "dev", "eth0"])?;
                    ns.ip(&["link", "set", "eth0", "up"])?;
                    let _ = End::run_in(
                        &ns,
                        "sysctl",
                        &["-q", "-w", "net.ipv6.conf.eth0.disable_ipv6=1"],
                    );
                    made.push(End {
                        holder: Holder::Ns(ns),
                        mac,
                        addr: addr.to_owned(),
                    });
                }
                drop(a);
                let s = made.pop().context("sink end")?;
                let g = made.pop().context("gen end")?;
                (Switch::None, g, s)
            }
        };
        if setup.gen_napi {
            gen_peer_napi(kind, &gen_end, &sink, &mut notes)?;
        }
        let topo = Self {
            switch,
            gen_end,
            sink,
            kind,
            notes,
            vsctl: setup.bin_dir.join("vsctl"),
        };
        topo.sink_counter()?;
        topo.learn()?;
        Ok(topo)
    }

    /// The sink's counter: an nftables netdev ingress rule counting and dropping the
    /// generator's UDP frames before the sink's stack sees them.
    fn sink_counter(&self) -> Result<()> {
        let rules = format!(
            "table netdev e2e {{\n chain rx {{\n  type filter hook ingress device \"eth0\" priority 0; policy accept;\n  udp dport {GEN_DPORT} counter drop\n }}\n}}\n"
        );
        let file = std::env::temp_dir().join(format!("{}.nft", unique("e2enft")));
        std::fs::write(&file, rules)?;
        let r = self
            .sink
            .run("nft", &["-f", &file.display().to_string()], SHORT);
        let _ = std::fs::remove_file(&file);
        r.context("installing the sink's nft counter (is nftables installed?)")?;
        Ok(())
    }

    /// Starts a load reading: vswitchd's worker counters now, or Open vSwitch's PMD counters
    /// cleared. None for the kernel paths (the load is not the switch's to report).
    pub fn load_mark(&self) -> Result<Option<LoadMark>> {
        match &self.switch {
            Switch::Vswitchd(d) => Ok(Some(LoadMark::Vswitchd(self.vswitchd_load(d)?))),
            Switch::Ovs(o) => {
                o.appctl(&["dpif-netdev/pmd-stats-clear"])?;
                Ok(Some(LoadMark::Ovs(Instant::now())))
            }
            Switch::None | Switch::Bridge { .. } | Switch::Xdp { .. } => Ok(None),
        }
    }

    /// The load since `mark`: busy time from vswitchd's `busy_ns` (passes that had work), or
    /// from Open vSwitch's processing share of its PMD cycles (`pmd-stats-show`). None when
    /// the switch keeps no such account (Open vSwitch's system ports are polled by its main
    /// thread, which counts no cycles).
    pub fn load_since(&self, mark: LoadMark) -> Result<Option<Load>> {
        match (mark, &self.switch) {
            (LoadMark::Vswitchd(was), Switch::Vswitchd(d)) => {
                let now = self.vswitchd_load(d)?;
                Ok(Some(Load {
                    busy_secs: now.busy_ns.saturating_sub(was.busy_ns) as f64 / 1e9,
                    frames: now.frames.saturating_sub(was.frames) as f64,
                    batches: Some(now.batches.saturating_sub(was.batches) as f64),
                    full_batches: Some(now.full_batches.saturating_sub(was.full_batches) as f64),
                    flush_secs: Some(now.flush_ns.saturating_sub(was.flush_ns) as f64 / 1e9),
                }))
            }
            (LoadMark::Ovs(at), Switch::Ovs(o)) => {
                let out = o.appctl(&["dpif-netdev/pmd-stats-show"])?;
                let secs = at.elapsed().as_secs_f64();
                Ok(parse_pmd_stats(&out).map(|(share, frames)| Load {
                    busy_secs: share * secs,
                    frames,
                    batches: None,
                    full_batches: None,
                    flush_secs: None,
                }))
            }
            _ => bail!("load mark of another switch"),
        }
    }

    fn vswitchd_load(&self, d: &Daemon) -> Result<WorkerLoad> {
        let sock = d.socket.display().to_string();
        let out = sys::run(
            &self.vsctl.display().to_string(),
            &["--socket", &sock, "--json", "show"],
            SHORT,
        )?;
        parse_worker_load(&out).with_context(|| format!("no worker counters in: {out}"))
    }

    /// Frames counted by the sink's rule so far.
    pub fn sink_count(&self) -> Result<u64> {
        let out = self
            .sink
            .run("nft", &["list", "chain", "netdev", "e2e", "rx"], SHORT)?;
        parse_nft_packets(&out).context("no counter in `nft list chain netdev e2e rx`")
    }

    /// Pings both ways so that every switch has learned both MAC addresses (no flooding of
    /// the 64-byte frames) and both neighbour caches are filled.
    pub fn learn(&self) -> Result<()> {
        let ok = testbed::wait_until(Duration::from_secs(20), || {
            sys::stopped()
                || (self.gen_end.ns().ping_once(&self.sink.addr, 1)
                    && self.sink.ns().ping_once(&self.gen_end.addr, 1))
        });
        sys::check_stop()?;
        if !ok {
            bail!(
                "gen and sink cannot ping each other through {}",
                self.kind.key()
            );
        }
        Ok(())
    }
}

impl End {
    fn run_in(ns: &Netns, program: &str, args: &[&str]) -> Result<String> {
        let what = format!("{program} {} in {}", args.join(" "), ns.name);
        let mut c = ns.command(program);
        c.args(args);
        Ok(sys::run_to(&what, &mut c, SHORT)?.ok(&what)?.stdout)
    }
}

/// GRO on at the receiving end of the generator's `eth0` (see [`Setup::gen_napi`]): the veth
/// host end in the root namespace, the sink's `eth0` of a bare pair; nothing for a tap.
fn gen_peer_napi(kind: PathKind, gen_end: &End, sink: &End, notes: &mut Vec<String>) -> Result<()> {
    let what = match (kind, &gen_end.holder, &sink.holder) {
        (PathKind::VsTap, _, _) => return Ok(()),
        (PathKind::Veth, _, Holder::Ns(ns)) => {
            End::run_in(ns, "ethtool", &["-K", "eth0", "gro", "on"])?;
            "the sink's `eth0`"
        }
        (_, Holder::Container(c), _) => {
            sys::run("ethtool", &["-K", &c.port, "gro", "on"], SHORT)?;
            "the generator's veth host end"
        }
        _ => bail!("{}: no veth peer to put in NAPI mode", kind.label()),
    };
    notes.push(format!(
        "{}: GRO on at {what} (NAPI, which frames sent from XDP need)",
        kind.label()
    ));
    Ok(())
}

fn start_vswitchd(setup: &Setup, poll: Poll) -> Result<Daemon> {
    let bin = setup.bin_dir.join("vswitchd");
    if !bin.exists() {
        bail!(
            "{} missing (cargo build --release --workspace --bins)",
            bin.display()
        );
    }
    let cpu = setup.switch_cpu.to_string();
    let d = Daemon::start(&bin, &["--cpus", &cpu, "--poll-mode", poll.arg()])?;
    // The control thread too (idle while measuring): the whole switch on its core.
    if let Some(pid) = d.pid() {
        sys::run(
            "taskset",
            &["-a", "-p", "-c", &cpu, &pid.to_string()],
            SHORT,
        )?;
    }
    Ok(d)
}

fn vsctl_add(setup: &Setup, d: &Daemon, dev: &str, t: &str, xdp_mode: Option<&str>) -> Result<()> {
    let bin = setup.bin_dir.join("vsctl");
    let sock = d.socket.display().to_string();
    let mut args = vec!["--socket", &sock, "add-port", dev, "--type", t];
    if let Some(m) = xdp_mode {
        args.extend(["--xdp-mode", m]);
    }
    sys::run(&bin.display().to_string(), &args, SHORT)
        .with_context(|| format!("vsctl {}: {}", args[2..].join(" "), d.log()))?;
    Ok(())
}

/// With `--rule-per-flow`: one rule per generator source port sending it to `sink_port`, above
/// the default `normal` (which still carries ARP and the other figures' traffic).
fn rules_per_flow(
    setup: &Setup,
    d: &Daemon,
    sink_port: &str,
    notes: &mut Vec<String>,
) -> Result<()> {
    let Some(n) = setup.rule_per_flow else {
        return Ok(());
    };
    let mut text = String::new();
    for p in GEN_SPORT..GEN_SPORT + n {
        text.push_str(&format!(
            "table=0,priority=100,udp,tp_src={p} actions=output:{sink_port}\n"
        ));
    }
    let file = std::env::temp_dir().join(format!("{}.flows", unique("e2eflows")));
    std::fs::write(&file, text)?;
    let bin = setup.bin_dir.join("vsctl");
    let sock = d.socket.display().to_string();
    let res = sys::run(
        &bin.display().to_string(),
        &["--socket", &sock, "add-flows", &file.display().to_string()],
        SHORT,
    );
    let _ = std::fs::remove_file(&file);
    res.with_context(|| format!("vsctl add-flows ({n} rules): {}", d.log()))?;
    // The same text for every run (the port's name changes), so the report shows it once.
    notes.push(format!(
        "{n} rules udp,tp_src=N actions=output:SINK (the sink's port; one megaflow per flow)"
    ));
    Ok(())
}

/// The packet count in `nft list chain` output (`counter packets N bytes M`).
pub fn parse_nft_packets(s: &str) -> Option<u64> {
    let mut it = s.split_whitespace();
    while let Some(w) = it.next() {
        if w == "counter" && it.next() == Some("packets") {
            return it.next()?.parse().ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nft_counter_is_parsed() {
        let s = "table netdev e2e {\n\tchain rx {\n\t\tudp dport 9 counter packets 200000 bytes 9200000 drop\n\t}\n}\n";
        assert_eq!(parse_nft_packets(s), Some(200_000));
        assert_eq!(parse_nft_packets("nothing"), None);
    }

    #[test]
    fn ovs_pmd_stats_give_the_processing_share_and_packets() {
        // Captured from Open vSwitch 3.1 during an afxdp run of this harness.
        let text = include_str!("testdata/pmd-stats-show.txt");
        let (share, packets) = parse_pmd_stats(text).unwrap();
        let want = 11_179_680_502.0 / (11_179_680_502.0 + 3_223_620_739.0);
        assert!((share - want).abs() < 1e-9, "{share}");
        assert_eq!(packets, 4_052_450.0);
        // The main thread's section is not a PMD's.
        let main_only = text.split("main thread:").nth(1).unwrap();
        assert_eq!(parse_pmd_stats(&format!("main thread:{main_only}")), None);
        assert_eq!(parse_pmd_stats("garbage"), None);
    }

    #[test]
    fn vswitchd_worker_load_is_summed_over_workers() {
        let json = r#"{"hello":{"versions":[1]},"switch":{"worker_stats":[
            {"worker":0,"batches":1,"frames":100,"sleeps":0,"busy_ns":5000,"full_batches":1,
             "flush_ns":3000},
            {"worker":1,"batches":1,"frames":20,"sleeps":0,"busy_ns":700}]}}"#;
        assert_eq!(
            parse_worker_load(json),
            Some(WorkerLoad {
                busy_ns: 5_700,
                frames: 120,
                batches: 2,
                full_batches: 1,
                flush_ns: 3_000
            })
        );
        // A daemon without the counter is not read as idle.
        let old = r#"{"switch":{"worker_stats":[{"worker":0,"frames":100}]}}"#;
        assert_eq!(parse_worker_load(old), None);
    }

    #[test]
    fn paths_parse_by_key_and_letter() {
        assert_eq!(PathKind::parse("a"), Some(PathKind::VsAfxdp));
        assert_eq!(PathKind::parse("ovs-system"), Some(PathKind::OvsSystem));
        assert_eq!(PathKind::parse("x"), None);
    }
}
