//! vswitchd start-up configuration: a TOML file, overridden by command-line flags.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use control::proto::XdpModeSpec;
use datapath::port::PortKind;
use datapath::switch::{DEFAULT_BATCH_HOLD, PollMode, PortSpec, SwitchConfig, VlanMode};
use serde::{Deserialize, Serialize};

/// Default control socket.
pub const DEFAULT_SOCKET: &str = "/run/vswitch/vswitchd.sock";

/// Command-line flags (each overrides the file).
#[derive(Debug, Parser)]
#[command(
    name = "vswitchd",
    version,
    about = "vswitch daemon: a userspace virtual switch for containers"
)]
pub struct Args {
    /// TOML configuration file.
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Control socket path.
    #[arg(long, env = "VSWITCH_SOCKET")]
    pub socket: Option<PathBuf>,
    /// CPUs to run workers on, one worker each (e.g. `1` or `0,1` or `2-3`).
    #[arg(long)]
    pub cpus: Option<String>,
    /// Worker polling: busy (lowest latency) or adaptive (sleep when idle).
    #[arg(long, value_enum)]
    pub poll_mode: Option<PollModeArg>,
    /// Nanoseconds a worker waits, after a pass that forwarded a few frames, before it polls
    /// again, so that its next batch is bigger (0: never; at most 100000; default 1000).
    #[arg(long)]
    pub batch_hold_ns: Option<u64>,
    /// Seconds after which an unseen MAC address is forgotten.
    #[arg(long)]
    pub mac_aging: Option<u64>,
    /// MAC table capacity.
    #[arg(long)]
    pub mac_table_max: Option<usize>,
    /// Most MAC addresses learned on one port (0: no bound but the table's); a port's own
    /// `mac_max` overrides it.
    #[arg(long)]
    pub mac_port_max: Option<u32>,
    /// Port to add at start: `NAME[:TYPE]` (TYPE afxdp|tap|afpacket|auto), access VLAN 1.
    #[arg(long = "port")]
    pub ports: Vec<String>,
    /// Log filter: a level (`error`, `warn`, `info`, `debug`, `trace`, `off`), optionally with
    /// `target=level` parts (`info,datapath=debug`). `RUST_LOG`, when set, is used instead
    /// of the configuration file's `log_level` but not of this flag.
    #[arg(long)]
    pub log_level: Option<String>,
    /// Log format.
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Print the effective configuration (TOML) and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// `--poll-mode` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PollModeArg {
    /// Poll continuously.
    Busy,
    /// Sleep on readiness when idle.
    Adaptive,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The file format (every key optional; unknown keys are errors).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    /// Control socket path.
    pub socket: PathBuf,
    /// Worker CPUs; empty = one unpinned worker.
    pub cpus: Vec<usize>,
    /// Worker polling mode.
    pub poll_mode: PollModeArg,
    /// Batch hold in nanoseconds (0: none; at most 100000; default 1000).
    pub batch_hold_ns: u64,
    /// Log filter.
    pub log_level: String,
    /// Log format.
    pub log_format: LogFormat,
    /// MAC table settings.
    pub mac: MacConfig,
    /// Control plane limits.
    pub control: ControlConfig,
    /// Flow table limits.
    pub flows: FlowsConfig,
    /// Ports to add at start.
    #[serde(rename = "port")]
    pub ports: Vec<PortConfig>,
}

/// `[mac]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MacConfig {
    /// Aging time in seconds (default 300).
    pub aging_secs: u64,
    /// Capacity (default 65536). When full, a new address evicts one of the port with the
    /// most.
    pub table_max: usize,
    /// Most addresses learned on one port (default 0: no bound but the table's); a port's
    /// `mac_max` overrides it.
    pub port_max: u32,
}

impl Default for MacConfig {
    fn default() -> Self {
        Self {
            aging_secs: 300,
            table_max: 65_536,
            port_max: 0,
        }
    }
}

/// `[control]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// Largest control frame accepted (bytes, default 1 MiB).
    pub max_frame_bytes: usize,
    /// Most simultaneous control connections (default 64).
    pub max_sessions: usize,
    /// Reply bytes a session may leave unread before it is disconnected (default 4 MiB).
    pub max_queued_bytes: usize,
    /// Queued bytes above which a session's notifications are dropped and counted as `lost`
    /// (default 1 MiB).
    pub max_notify_queued_bytes: usize,
    /// Bytes one session's open multi-message bundles may hold (default 128 MiB).
    pub max_bundle_bytes: usize,
    /// Bytes all sessions' open bundles may hold together (default 512 MiB).
    pub max_bundle_bytes_total: usize,
}

impl Default for ControlConfig {
    fn default() -> Self {
        let d = control::server::ServerConfig::default();
        Self {
            max_frame_bytes: d.max_frame_bytes,
            max_sessions: d.max_sessions,
            max_queued_bytes: d.max_queued_bytes,
            max_notify_queued_bytes: d.max_notify_queued_bytes,
            max_bundle_bytes: d.max_bundle_bytes,
            max_bundle_bytes_total: d.max_bundle_bytes_total,
        }
    }
}

/// `[flows]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowsConfig {
    /// Most flows in one table (default 200 000).
    pub max_per_table: usize,
}

impl Default for FlowsConfig {
    fn default() -> Self {
        Self {
            max_per_table: datapath::ofp::pipeline::DEFAULT_MAX_FLOWS_PER_TABLE,
        }
    }
}

/// `[[port]]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    /// Device name.
    pub name: String,
    /// Backend: afxdp, tap, afpacket or auto (default: AF_PACKET on a veth, else AF_XDP with
    /// AF_PACKET as fallback).
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Queues (AF_XDP), default 1.
    #[serde(default = "one")]
    pub queues: usize,
    /// Access VLAN (default 1) — exclusive with `trunks`.
    #[serde(default)]
    pub vlan: Option<u16>,
    /// Trunk: allowed VLANs (empty list = all).
    #[serde(default)]
    pub trunks: Option<Vec<u16>>,
    /// Trunk: VLAN of untagged frames.
    #[serde(default)]
    pub native_vlan: Option<u16>,
    /// AF_XDP only: `auto` (default: split on a veth, else native), `native`, `generic` or
    /// `split`.
    #[serde(default)]
    pub xdp_mode: Option<XdpModeSpec>,
    /// AF_XDP only: the program takes multi-buffer frames (GSO frames copied into pages, not
    /// one ~64 KiB buffer). Default false.
    #[serde(default)]
    pub xdp_frags: bool,
    /// Most MAC addresses learned on this port (0: no bound but the table's); default
    /// `[mac] port_max`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_max: Option<u32>,
}

fn one() -> usize {
    1
}

impl Default for FileConfig {
    fn default() -> Self {
        Self {
            socket: PathBuf::from(DEFAULT_SOCKET),
            cpus: Vec::new(),
            poll_mode: PollModeArg::Adaptive,
            batch_hold_ns: u64::try_from(DEFAULT_BATCH_HOLD.as_nanos()).unwrap_or(0),
            log_level: "info".into(),
            log_format: LogFormat::Text,
            mac: MacConfig::default(),
            control: ControlConfig::default(),
            flows: FlowsConfig::default(),
            ports: Vec::new(),
        }
    }
}

/// Parses a CPU list: `1`, `0,2`, `2-3`, `0,2-3`.
pub fn parse_cpus(s: &str) -> Result<Vec<usize>> {
    let mut v = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((a, b)) = part.split_once('-') {
            let bad = || format!("bad CPU range {part:?}");
            let (a, b): (usize, usize) = (
                a.trim().parse().with_context(bad)?,
                b.trim().parse().with_context(bad)?,
            );
            if a > b || b - a > 1024 {
                bail!("bad CPU range {part}");
            }
            v.extend(a..=b);
        } else {
            v.push(part.parse().with_context(|| format!("bad CPU {part:?}"))?);
        }
    }
    Ok(v)
}

/// Parses a port type name.
pub fn parse_kind(s: &str) -> Result<Option<PortKind>> {
    Ok(match s {
        "auto" => None,
        "afxdp" => Some(PortKind::AfXdp),
        "tap" => Some(PortKind::Tap),
        "afpacket" => Some(PortKind::AfPacket),
        other => bail!("unknown port type {other:?} (afxdp, tap, afpacket, auto)"),
    })
}

impl PortConfig {
    /// The datapath's port spec.
    pub fn spec(&self) -> Result<PortSpec> {
        let kind = match &self.kind {
            Some(k) => parse_kind(k)?,
            None => None,
        };
        let vlan = match (&self.trunks, self.vlan) {
            (Some(_), Some(_)) => bail!("port {}: `vlan` and `trunks` are exclusive", self.name),
            (Some(t), None) => VlanMode::Trunk {
                allowed: t.clone(),
                native: self.native_vlan,
            },
            (None, v) => {
                if self.native_vlan.is_some() {
                    bail!("port {}: `native_vlan` needs `trunks`", self.name);
                }
                VlanMode::Access {
                    vlan: v.unwrap_or(1),
                }
            }
        };
        let xdp_mode =
            XdpModeSpec::for_port(self.xdp_mode, self.xdp_frags, kind).map_err(|field| {
                anyhow::anyhow!("port {}: `{field}` needs type \"afxdp\"", self.name)
            })?;
        Ok(PortSpec {
            name: self.name.clone(),
            kind,
            queues: self.queues,
            vlan,
            xdp_mode,
            xdp_frags: self.xdp_frags,
            mac_max: self.mac_max,
        })
    }
}

/// Reads the file (if any) and applies the flags.
pub fn load(args: &Args) -> Result<FileConfig> {
    let mut cfg = match &args.config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            toml::from_str(&text).with_context(|| format!("parsing {}", p.display()))?
        }
        None => FileConfig::default(),
    };
    if let Some(s) = &args.socket {
        cfg.socket.clone_from(s);
    }
    if let Some(c) = &args.cpus {
        cfg.cpus = parse_cpus(c)?;
    }
    if let Some(m) = args.poll_mode {
        cfg.poll_mode = m;
    }
    if let Some(h) = args.batch_hold_ns {
        cfg.batch_hold_ns = h;
    }
    if let Some(a) = args.mac_aging {
        cfg.mac.aging_secs = a;
    }
    if let Some(m) = args.mac_table_max {
        cfg.mac.table_max = m;
    }
    if let Some(m) = args.mac_port_max {
        cfg.mac.port_max = m;
    }
    if let Some(l) = &args.log_level {
        cfg.log_level.clone_from(l);
    }
    if let Some(f) = args.log_format {
        cfg.log_format = f;
    }
    for p in &args.ports {
        let (name, kind) = match p.split_once(':') {
            Some((n, k)) => (n, Some(k.to_owned())),
            None => (p.as_str(), None),
        };
        cfg.ports.push(PortConfig {
            name: name.to_owned(),
            kind,
            queues: 1,
            vlan: None,
            trunks: None,
            native_vlan: None,
            xdp_mode: None,
            xdp_frags: false,
            mac_max: None,
        });
    }
    if cfg.socket.as_os_str().is_empty() {
        bail!("invalid socket: an empty path");
    }
    check_log_filter(&cfg.log_level)?;
    for p in &cfg.ports {
        p.spec()?;
    }
    // What the datapath would refuse at start, refused now (before the socket is bound, and
    // by --print-config).
    cfg.switch_config()
        .validate()
        .context("invalid configuration")?;
    Ok(cfg)
}

/// Levels a log filter part may name.
const LOG_LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// Refuses a log filter whose bare parts are not levels: the filter library takes `warning`
/// for a target name and logs nothing else, errors included.
fn check_log_filter(filter: &str) -> Result<()> {
    for part in filter.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let level = match part.rsplit_once('=') {
            Some((target, level)) if !target.is_empty() => level,
            Some(_) => bail!("invalid log_level {filter:?}: `{part}` has no target"),
            None => part,
        };
        if !LOG_LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level)) {
            bail!(
                "invalid log_level {filter:?}: `{level}` is not a level ({})",
                LOG_LEVELS.join(", ")
            );
        }
    }
    Ok(())
}

impl FileConfig {
    /// The datapath's settings.
    pub fn switch_config(&self) -> SwitchConfig {
        SwitchConfig {
            cpus: self.cpus.clone(),
            poll_mode: match self.poll_mode {
                PollModeArg::Busy => PollMode::Busy,
                PollModeArg::Adaptive => PollMode::Adaptive,
            },
            batch_hold: Duration::from_nanos(self.batch_hold_ns),
            mac_table_max: self.mac.table_max,
            mac_port_max: self.mac.port_max,
            mac_aging: Duration::from_secs(self.mac.aging_secs),
            max_flows_per_table: self.flows.max_per_table,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datapath::port::afxdp::XdpMode;

    #[test]
    fn cpu_lists_and_ranges_parse() {
        assert_eq!(parse_cpus("1").unwrap(), vec![1]);
        assert_eq!(parse_cpus("0,2-3").unwrap(), vec![0, 2, 3]);
        assert!(parse_cpus("3-1").is_err());
        assert!(parse_cpus("x").is_err());
    }

    #[test]
    fn file_with_unknown_key_is_rejected() {
        assert!(toml::from_str::<FileConfig>("sockett = '/x'").is_err());
        let c: FileConfig = toml::from_str(
            "cpus = [1]\n[mac]\naging_secs = 10\n[[port]]\nname = 'p1'\ntrunks = [10, 20]\nnative_vlan = 30\n",
        )
        .unwrap();
        assert_eq!(c.mac.aging_secs, 10);
        assert_eq!(c.mac.table_max, 65_536);
        let spec = c.ports[0].spec().unwrap();
        assert_eq!(
            spec.vlan,
            VlanMode::Trunk {
                allowed: vec![10, 20],
                native: Some(30)
            }
        );
    }

    #[test]
    fn mac_bounds_per_port_come_from_the_file_the_flag_and_the_port() {
        let c: FileConfig = toml::from_str(
            "[mac]\nport_max = 32\n[[port]]\nname = 'p1'\nmac_max = 4\n[[port]]\nname = 'p2'\n",
        )
        .unwrap();
        assert_eq!(c.switch_config().mac_port_max, 32);
        assert_eq!(c.ports[0].spec().unwrap().mac_max, Some(4));
        // A port without its own bound takes the switch's default there.
        assert_eq!(c.ports[1].spec().unwrap().mac_max, None);
        let args = Args::try_parse_from(["vswitchd", "--mac-port-max", "8"]).unwrap();
        assert_eq!(load(&args).unwrap().switch_config().mac_port_max, 8);
        assert_eq!(
            load(&Args::try_parse_from(["vswitchd"]).unwrap())
                .unwrap()
                .switch_config()
                .mac_port_max,
            0
        );
    }

    #[test]
    fn xdp_mode_parses_and_needs_an_afxdp_port() {
        let port = |kind: &str, mode: &str| -> Result<PortSpec> {
            let c: FileConfig = toml::from_str(&format!(
                "[[port]]\nname = 'p1'\ntype = '{kind}'\nxdp_mode = '{mode}'\n"
            ))?;
            c.ports[0].spec()
        };
        assert_eq!(
            port("afxdp", "split").unwrap().xdp_mode,
            Some(XdpMode::Split)
        );
        assert_eq!(
            port("afxdp", "native").unwrap().xdp_mode,
            Some(XdpMode::Native)
        );
        assert_eq!(
            port("afxdp", "generic").unwrap().xdp_mode,
            Some(XdpMode::Skb)
        );
        assert_eq!(port("afxdp", "auto").unwrap().xdp_mode, None);
        assert!(port("afxdp", "turbo").is_err());
        assert!(port("afpacket", "native").is_err(), "only for afxdp ports");
        let frags = |kind: &str| -> Result<PortSpec> {
            let c: FileConfig = toml::from_str(&format!(
                "[[port]]\nname = 'p1'\ntype = '{kind}'\nxdp_frags = true\n"
            ))?;
            c.ports[0].spec()
        };
        assert!(frags("afxdp").unwrap().xdp_frags);
        assert!(frags("tap").is_err(), "xdp_frags only for afxdp ports");
        assert!(port("auto", "split").is_err());
    }

    #[test]
    fn batch_hold_defaults_to_a_microsecond_the_flag_wins_and_above_100_us_is_refused() {
        use datapath::switch::Switch;
        let args = |extra: &[&str]| {
            let mut v = vec!["vswitchd"];
            v.extend_from_slice(extra);
            Args::try_parse_from(v).unwrap()
        };
        let c = load(&args(&[])).unwrap();
        assert_eq!(c.switch_config().batch_hold, Duration::from_micros(1));
        let c = load(&args(&["--batch-hold-ns", "0"])).unwrap();
        assert_eq!(c.switch_config().batch_hold, Duration::ZERO);
        let c: FileConfig = toml::from_str("batch_hold_ns = 2500").unwrap();
        assert_eq!(c.switch_config().batch_hold, Duration::from_nanos(2500));
        let c = load(&args(&["--batch-hold-ns", "100000"])).unwrap();
        assert_eq!(c.switch_config().batch_hold, Duration::from_micros(100));
        // A longer one is refused when the configuration is read (and by the datapath, when
        // a configuration that was not read here starts it).
        let err = load(&args(&["--batch-hold-ns", "100001"])).unwrap_err();
        assert!(format!("{err:#}").contains("batch_hold"), "{err:#}");
        let mut c = load(&args(&[])).unwrap();
        c.batch_hold_ns = 100_001;
        let Err(err) = Switch::start(c.switch_config()) else {
            panic!("a hold of 100001 ns was accepted");
        };
        assert!(err.to_string().contains("batch_hold"), "{err}");
    }

    // Found by an audit (2026-12-07): each of these was accepted or unclear.

    #[test]
    fn a_log_level_that_is_not_a_level_is_refused() {
        // `warning` (and a typo like `inf0`) parsed as a *target* directive: every other
        // target was then off and the daemon logged nothing at all, errors included.
        let args = |l: &str| Args::try_parse_from(["vswitchd", "--log-level", l]).unwrap();
        for bad in ["warning", "inf0", "[", "=debug"] {
            assert!(load(&args(bad)).is_err(), "--log-level {bad} accepted");
        }
        for good in [
            "info",
            "WARN",
            "debug,datapath=trace",
            "datapath=debug",
            "off",
        ] {
            assert!(load(&args(good)).is_ok(), "--log-level {good} refused");
        }
    }

    #[test]
    fn a_bad_cpu_range_names_the_cpu_list() {
        let e = format!("{:#}", parse_cpus("1-x").unwrap_err());
        assert!(
            e.contains("1-x"),
            "error does not say which part is bad: {e}"
        );
    }

    #[test]
    fn an_empty_socket_path_is_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("vs-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("empty-socket.toml");
        std::fs::write(&file, "socket = \"\"\n").unwrap();
        let args = Args::try_parse_from(["vswitchd", "-c", file.to_str().unwrap()]).unwrap();
        let res = load(&args);
        let _ = std::fs::remove_dir_all(&dir);
        let err = format!("{:#}", res.expect_err("socket = \"\" accepted"));
        assert!(err.contains("socket"), "{err}");
    }

    #[test]
    fn vlan_and_trunks_together_are_rejected() {
        let p = PortConfig {
            name: "p".into(),
            kind: None,
            queues: 1,
            vlan: Some(1),
            trunks: Some(vec![2]),
            native_vlan: None,
            xdp_mode: None,
            xdp_frags: false,
            mac_max: None,
        };
        assert!(p.spec().is_err());
    }
}
