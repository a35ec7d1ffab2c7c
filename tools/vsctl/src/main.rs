//! `vsctl`: command-line client of vswitchd's control socket.
//!
//! Human output is aligned tables; `--json` prints the reply bodies as JSON (one document per
//! command). Errors print the server's message and field and exit with status 1 (2 for usage
//! errors, from clap).
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use clap::{Parser, Subcommand, ValueEnum};
use control::flowtext::{self, ParsedFlow, ParsedGroup, ParsedMeter};
use control::proto::{
    BundleOpDesc, FlowDesc, FlowFilterRequest, FlowModRequest, GroupDesc, GroupModRequest,
    HelloReply, MacDesc, MeterDesc, MeterModRequest, Notification, PacketOutRequest,
    PortAddRequest, PortDesc, PortStatsDesc, PortType, SubscribeRequest, SwitchShowReply,
    TableStatsReply, VlanDesc, VlanSpec, XdpModeSpec,
};
use control::{Client, ClientError};
use datapath::ofp::pipeline::{FlowModCommand, ModCommand};
use serde::Serialize;

/// Control a running vswitchd.
#[derive(Debug, Parser)]
#[command(name = "vsctl", version, about, propagate_version = true)]
struct Cli {
    /// Control socket of the daemon.
    #[arg(
        long,
        global = true,
        env = "VSWITCH_SOCKET",
        default_value = control::DEFAULT_SOCKET_PATH,
        value_name = "PATH"
    )]
    socket: PathBuf,
    /// Print replies as JSON (for scripts).
    #[arg(long, global = true)]
    json: bool,
    /// Seconds to wait for each reply, 1 to 86400 (default 10); `monitor`: stop after this
    /// many seconds (default: never).
    #[arg(long, global = true, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    timeout: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

/// Port backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TypeArg {
    /// AF_PACKET on a veth (keeps TSO); elsewhere AF_XDP where it works, else AF_PACKET.
    Auto,
    /// AF_XDP socket.
    Afxdp,
    /// TAP device.
    Tap,
    /// AF_PACKET socket.
    Afpacket,
}

/// `--xdp-mode` of `add-port` (AF_XDP ports).
#[derive(Clone, Copy, Debug, ValueEnum)]
enum XdpModeArg {
    /// Split on a veth (generic XDP for frames up to the MTU, AF_PACKET for GSO frames),
    /// falling back to native; elsewhere native with generic as the fallback.
    Auto,
    /// Native (driver) mode only; on a veth it turns the peer's TSO off.
    Native,
    /// Generic (skb) mode only; frames longer than a UMEM chunk are dropped.
    Generic,
    /// Generic mode for frames up to the MTU, an AF_PACKET socket for longer ones.
    Split,
}

impl From<XdpModeArg> for XdpModeSpec {
    fn from(m: XdpModeArg) -> Self {
        match m {
            XdpModeArg::Auto => Self::Auto,
            XdpModeArg::Native => Self::Native,
            XdpModeArg::Generic => Self::Generic,
            XdpModeArg::Split => Self::Split,
        }
    }
}

impl From<TypeArg> for PortType {
    fn from(t: TypeArg) -> Self {
        match t {
            TypeArg::Auto => Self::Auto,
            TypeArg::Afxdp => Self::Afxdp,
            TypeArg::Tap => Self::Tap,
            TypeArg::Afpacket => Self::Afpacket,
        }
    }
}

/// VLANs of a trunk: `all` or a comma-separated list.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Trunks(Vec<u16>);

fn parse_trunks(s: &str) -> Result<Trunks, String> {
    if s.eq_ignore_ascii_case("all") {
        return Ok(Trunks(Vec::new()));
    }
    s.split(',')
        .map(|v| {
            v.trim()
                .parse::<u16>()
                .map_err(|e| format!("`{}`: {e}", v.trim()))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Trunks)
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Daemon version, switch settings, ports and worker counters.
    Show,
    /// Open a network device as a port.
    AddPort {
        /// Device name.
        name: String,
        /// Backend.
        #[arg(long = "type", value_enum, value_name = "TYPE")]
        port_type: Option<TypeArg>,
        /// Rx/tx queues (AF_XDP).
        #[arg(long, value_name = "N")]
        queues: Option<u32>,
        /// Access port in this VLAN (default: access VLAN 1).
        #[arg(long, value_name = "N", conflicts_with = "trunks")]
        vlan: Option<u16>,
        /// Trunk port carrying these VLANs (`10,20` or `all`).
        #[arg(long, value_name = "LIST", value_parser = parse_trunks)]
        trunks: Option<Trunks>,
        /// VLAN of untagged frames on the trunk.
        #[arg(long, value_name = "N", requires = "trunks")]
        native_vlan: Option<u16>,
        /// How an AF_XDP port attaches its XDP program (with `--type afxdp`).
        #[arg(long, value_enum, value_name = "MODE")]
        xdp_mode: Option<XdpModeArg>,
        /// The AF_XDP port's program takes multi-buffer frames: GSO frames are copied into
        /// pages, not one ~64 KiB buffer (with `--type afxdp`).
        #[arg(long)]
        xdp_frags: bool,
        /// Most MAC addresses learned on the port (0: no bound but the table's; default:
        /// the daemon's `[mac] port_max`).
        #[arg(long, value_name = "N")]
        mac_max: Option<u32>,
    },
    /// Remove a port.
    DelPort {
        /// Port name.
        name: String,
    },
    /// List the ports.
    ListPorts,
    /// Port counters (all ports, or one).
    DumpPorts {
        /// Port name.
        name: Option<String>,
    },
    /// Learned MAC addresses.
    DumpMacs {
        /// Only this VLAN.
        #[arg(long, value_name = "N")]
        vlan: Option<u16>,
        /// Only addresses learned on this port.
        #[arg(long, value_name = "NAME")]
        port: Option<String>,
    },
    /// Forget learned MAC addresses (all, or of a VLAN and/or a port).
    FlushMacs {
        /// Only this VLAN.
        #[arg(long, value_name = "N")]
        vlan: Option<u16>,
        /// Only addresses learned on this port.
        #[arg(long, value_name = "NAME")]
        port: Option<String>,
    },
    /// Add a flow: `table=0,priority=100,ip,nw_dst=10.1.0.0/16 actions=output:p2`
    /// (syntax: docs/flows.md).
    AddFlow {
        /// The flow.
        flow: String,
    },
    /// Add the flows of a file (one per line, `#` comments; `-` = stdin), all or nothing.
    AddFlows {
        /// The file.
        file: PathBuf,
    },
    /// Change the actions of the flows a match selects.
    ModFlows {
        /// Only the flow with exactly this match and priority.
        #[arg(long)]
        strict: bool,
        /// Match and new actions.
        flow: String,
    },
    /// Delete the flows a match selects (all flows without one).
    DelFlows {
        /// Only the flow with exactly this match and priority.
        #[arg(long)]
        strict: bool,
        /// Match (table=, cookie=V/M, out_port= also select).
        flow: Option<String>,
    },
    /// Print the flows (all, or those a match selects).
    DumpFlows {
        /// Match (table=, cookie=V/M, out_port= also select).
        filter: Option<String>,
    },
    /// Print the non-empty flow tables.
    DumpTables,
    /// Apply a file of flow, group and meter mods all or nothing, in file order: lines
    /// `add FLOW`, `modify FLOW`, `modify_strict FLOW`, `delete FLOW`, `delete_strict FLOW`
    /// (a plain flow is an add), `add-group GROUP`, `mod-group GROUP`,
    /// `del-groups [group_id=N]`, `add-meter METER`, `mod-meter METER`, `del-meters [meter=N]`.
    Bundle {
        /// The file (`-` = stdin).
        file: PathBuf,
    },
    /// Add a group: `group_id=1,type=select,bucket=weight:10,actions=output:p2,bucket=...`
    /// (syntax: docs/flows.md).
    AddGroup {
        /// The group.
        group: String,
    },
    /// Replace a group's type and buckets (its counters restart).
    ModGroup {
        /// The group, as for add-group.
        group: String,
    },
    /// Delete a group (`group_id=N`) or every group, and the flows that use them.
    DelGroups {
        /// `group_id=N` (omitted or `group_id=all`: every group).
        group: Option<String>,
    },
    /// Print the groups (all, or one) with their counters.
    DumpGroups {
        /// Group id (`N` or `group_id=N`).
        group: Option<String>,
    },
    /// Add a meter: `meter=1,pktps,burst,band=type=drop,rate=100,burst_size=10`.
    AddMeter {
        /// The meter.
        meter: String,
    },
    /// Replace a meter's band (its counters restart).
    ModMeter {
        /// The meter, as for add-meter.
        meter: String,
    },
    /// Delete a meter (`meter=N`) or every meter, and the flows that use them.
    DelMeters {
        /// `meter=N` (omitted or `meter=all`: every meter).
        meter: Option<String>,
    },
    /// Print the meters (all, or one) with their counters.
    DumpMeters {
        /// Meter id (`N` or `meter=N`).
        meter: Option<String>,
    },
    /// Print notifications as they arrive, one line each (`--json`: one object per line).
    Monitor {
        /// Kinds to receive (default: all).
        #[arg(value_enum, value_name = "KIND")]
        kinds: Vec<MonitorKind>,
        /// Stop after this many notifications.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// Inject a frame: `in_port=P packet=HEX [actions=ACTIONS]` (no actions: through the flow
    /// tables as if received on `in_port`; `in_port=controller` or omitted: from the
    /// controller).
    PacketOut {
        /// `in_port=P`, `packet=HEX`, `actions=A,B,...` (last).
        #[arg(required = true, num_args = 1.., value_name = "ITEM")]
        items: Vec<String>,
    },
}

/// Notification kinds of `monitor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum MonitorKind {
    /// Frames flows send to the controller.
    #[value(name = "packet_in", alias = "packet-in")]
    PacketIn,
    /// Flows with `send_flow_rem` removed (timeouts, deletes).
    #[value(name = "flow_removed", alias = "flow-removed")]
    FlowRemoved,
    /// Ports added and removed.
    #[value(name = "port_status", alias = "port-status")]
    PortStatus,
}

/// An aligned text table.
#[derive(Debug)]
struct Table {
    headers: Vec<&'static str>,
    /// Right-align this column (numbers).
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Columns given as `(header, right_aligned)`.
    fn new(columns: &[(&'static str, bool)]) -> Self {
        Self {
            headers: columns.iter().map(|c| c.0).collect(),
            right: columns.iter().map(|c| c.1).collect(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self) -> String {
        let cols = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(cols) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.headers.iter().map(|h| (*h).to_owned()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, width) in widths.iter().enumerate() {
                let cell = row.get(i).map_or("", String::as_str);
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = width.saturating_sub(cell.chars().count());
                if self.right[i] {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    if i + 1 < cols {
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

fn vlan_text(v: &VlanDesc) -> String {
    match (&v.access, &v.trunks) {
        (Some(a), _) => format!("access {a}"),
        (None, Some(t)) => {
            let mut s = if t.is_empty() {
                "trunk all".to_owned()
            } else {
                let list: Vec<String> = t.iter().map(u16::to_string).collect();
                format!("trunk {}", list.join(","))
            };
            if let Some(n) = v.native {
                let _ = write!(s, " native {n}");
            }
            s
        }
        (None, None) => "-".to_owned(),
    }
}

fn ports_table(ports: &[PortDesc]) -> String {
    let mut t = Table::new(&[
        ("PORT", true),
        ("NAME", false),
        ("TYPE", false),
        ("QUEUES", true),
        ("WORKER", true),
        ("VLAN", false),
        ("LINK", false),
        ("MTU", true),
        ("MACS", true),
    ]);
    for p in ports {
        t.row(vec![
            p.id.to_string(),
            p.name.clone(),
            type_text(p),
            p.queues.to_string(),
            p.worker.to_string(),
            vlan_text(&p.vlan),
            link_text(p).to_owned(),
            p.mtu.map_or_else(|| "-".to_owned(), |m| m.to_string()),
            macs_text(p),
        ]);
    }
    t.render()
}

/// Addresses learned on a port, with its bound if it has one: `3`, `3/16`.
fn macs_text(p: &PortDesc) -> String {
    if p.mac_max == 0 {
        p.mac_entries.to_string()
    } else {
        format!("{}/{}", p.mac_entries, p.mac_max)
    }
}

/// A port's link: `up`, `down`, or `gone` (its device was deleted).
fn link_text(p: &PortDesc) -> &'static str {
    if p.device_gone {
        "gone"
    } else if p.link_up {
        "up"
    } else {
        "down"
    }
}

/// A port's type with its XDP attachment: `afxdp/split`, `afxdp/native+frags`, `tap`.
fn type_text(p: &PortDesc) -> String {
    match p.xdp_mode {
        Some(m) => format!(
            "{}/{}{}",
            p.port_type,
            m.as_str(),
            if p.xdp_frags { "+frags" } else { "" }
        ),
        None => p.port_type.clone(),
    }
}

/// Non-zero drop reasons: `rx:truncated=3 tx:tx_queue_full=1`, or `-`.
fn drops_text(p: &PortStatsDesc) -> String {
    let mut parts = Vec::new();
    for (dir, drops) in [("rx", &p.rx_drops), ("tx", &p.tx_drops)] {
        for (reason, n) in drops {
            if *n > 0 {
                parts.push(format!("{dir}:{reason}={n}"));
            }
        }
    }
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join(" ")
    }
}

fn stats_table(ports: &[PortStatsDesc]) -> String {
    let mut t = Table::new(&[
        ("PORT", true),
        ("NAME", false),
        ("RX_PKTS", true),
        ("RX_BYTES", true),
        ("RX_JUMBO", true),
        ("RX_DROP", true),
        ("TX_PKTS", true),
        ("TX_BYTES", true),
        ("TX_JUMBO", true),
        ("TX_DROP", true),
        ("DROPS", false),
    ]);
    for p in ports {
        t.row(vec![
            p.id.to_string(),
            p.name.clone(),
            p.rx_pkts.to_string(),
            p.rx_bytes.to_string(),
            p.rx_jumbo.to_string(),
            p.rx_dropped.to_string(),
            p.tx_pkts.to_string(),
            p.tx_bytes.to_string(),
            p.tx_jumbo.to_string(),
            p.tx_dropped.to_string(),
            drops_text(p),
        ]);
    }
    t.render()
}

fn macs_table(entries: &[MacDesc]) -> String {
    let mut t = Table::new(&[
        ("VLAN", true),
        ("MAC", false),
        ("PORT", false),
        ("AGE", true),
    ]);
    for e in entries {
        let port = if e.port_name.is_empty() {
            e.port.to_string()
        } else {
            e.port_name.clone()
        };
        t.row(vec![
            e.vlan.to_string(),
            e.mac.clone(),
            port,
            e.age_secs.to_string(),
        ]);
    }
    t.render()
}

/// A worker's busy time in seconds, to the millisecond (`12.345s`).
fn busy_secs(ns: u64) -> String {
    format!("{}.{:03}s", ns / 1_000_000_000, ns / 1_000_000 % 1_000)
}

fn show_text(hello: &HelloReply, s: &SwitchShowReply) -> String {
    let mut out = String::new();
    let versions: Vec<String> = hello.versions.iter().map(u32::to_string).collect();
    let _ = writeln!(out, "{} (protocol {})", hello.daemon, versions.join(","));
    let pinning = if s.cpus.is_empty() {
        "unpinned".to_owned()
    } else {
        let cpus: Vec<String> = s.cpus.iter().map(u64::to_string).collect();
        format!("cpus {}", cpus.join(","))
    };
    let hold = if s.batch_hold_ns == 0 {
        String::new()
    } else {
        format!(", batch hold {} ns", s.batch_hold_ns)
    };
    let _ = writeln!(
        out,
        "workers: {} ({pinning}), poll mode {}{hold}",
        s.workers, s.poll_mode
    );
    let _ = writeln!(
        out,
        "mac table: {} of {} entries, aging {} s, {} moves, {} evictions{}",
        s.mac_entries,
        s.mac_table_max,
        s.mac_aging_secs,
        s.mac_moves,
        s.mac_evictions,
        if s.mac_port_max == 0 {
            String::new()
        } else {
            format!(", at most {} per port", s.mac_port_max)
        }
    );
    out.push('\n');
    if s.ports.is_empty() {
        out.push_str("no ports\n");
    } else {
        out.push_str(&ports_table(&s.ports));
    }
    out.push('\n');
    let mut t = Table::new(&[
        ("WORKER", true),
        ("CPU", true),
        ("BATCHES", true),
        ("FRAMES", true),
        ("SLEEPS", true),
        ("HANDOFF_DROP", true),
        ("MAC_FULL", true),
        ("MAC_PORT_FULL", true),
        ("BUSY", true),
        ("IN_TX_FLUSH", true),
        ("HOLDS", true),
        ("STAGED", true),
    ]);
    for w in &s.worker_stats {
        t.row(vec![
            w.worker.to_string(),
            w.cpu.map_or_else(|| "-".to_owned(), |c| c.to_string()),
            w.batches.to_string(),
            w.frames.to_string(),
            w.sleeps.to_string(),
            w.handoff_drops.to_string(),
            w.mac_learn_full.to_string(),
            w.mac_learn_port_full.to_string(),
            busy_secs(w.busy_ns),
            busy_secs(w.flush_ns),
            w.holds.to_string(),
            w.staged_batches.to_string(),
        ]);
    }
    out.push_str(&t.render());
    out.push('\n');
    let mut t = Table::new(&[
        ("WORKER", true),
        ("RUN_HIT", true),
        ("EMC_HIT", true),
        ("MEGAFLOW_HIT", true),
        ("MISS", true),
        ("UPCALL", true),
        ("UPCALL_DROP", true),
        ("EVICT", true),
        ("EXPIRED", true),
        ("REVALIDATED", true),
        ("FLUSH", true),
        ("ENTRIES", true),
    ]);
    for w in &s.worker_stats {
        let c = &w.cache;
        t.row(
            [
                w.worker,
                c.run_hits,
                c.emc_hits,
                c.megaflow_hits,
                c.misses,
                c.upcalls,
                c.upcall_drops,
                c.evictions,
                c.expired,
                c.revalidated,
                c.flushes,
                c.entries,
            ]
            .iter()
            .map(u64::to_string)
            .collect(),
        );
    }
    out.push_str(&t.render());
    out.push('\n');
    let mut t = Table::new(&[
        ("WORKER", true),
        ("PACKET_IN", true),
        ("PACKET_IN_DROP", true),
        ("PACKET_OUT", true),
        ("PACKET_OUT_DROP", true),
    ]);
    for w in &s.worker_stats {
        t.row(
            [
                w.worker,
                w.packet_ins,
                w.packet_in_drops,
                w.packet_outs,
                w.packet_out_drops,
            ]
            .iter()
            .map(u64::to_string)
            .collect(),
        );
    }
    out.push_str(&t.render());
    out.push_str(&format!("\nevent drops: {}\n", s.event_drops));
    out
}

/// Port names and numbers from `port_list`, fetched once.
#[derive(Debug, Default)]
struct PortNames {
    ports: Option<Vec<PortDesc>>,
}

impl PortNames {
    fn load(&mut self, client: &mut Client) -> Result<&[PortDesc]> {
        if self.ports.is_none() {
            self.ports = Some(client.ports().context("listing ports")?);
        }
        Ok(self.ports.as_deref().unwrap_or_default())
    }
}

fn resolver(ports: &[PortDesc]) -> impl Fn(&str) -> Option<u32> + '_ {
    move |name| ports.iter().find(|p| p.name == name).map(|p| p.id)
}

fn namer(ports: &[PortDesc]) -> impl Fn(u32) -> Option<String> + '_ {
    move |id| ports.iter().find(|p| p.id == id).map(|p| p.name.clone())
}

/// Parses a flow line, rendering a syntax error with a caret under its token.
fn parse_line(
    text: &str,
    command: FlowModCommand,
    ports: &[PortDesc],
    whence: &str,
) -> Result<ParsedFlow> {
    flowtext::parse_flow(text, command, &resolver(ports))
        .map_err(|e| anyhow!("{whence}{}", e.render(text)))
}

/// A server error about a flow-mod, with a caret under the token it names (`field` relative
/// to the flow-mod: `match.tcp_dst`, `instructions.apply[1]`).
fn flow_error(
    text: &str,
    parsed: &ParsedFlow,
    field: &str,
    e: &ClientError,
    whence: &str,
) -> anyhow::Error {
    let message = match e.remote() {
        Some(r) => format!("{} ({})", r.message, r.name),
        None => e.to_string(),
    };
    let at = field
        .strip_prefix("instructions.")
        .map_or_else(|| field.to_owned(), |rest| format!("instructions.{rest}"));
    anyhow!(
        "{whence}{}",
        flowtext::render_caret(text, parsed.span_of(&at), &message)
    )
}

/// The field path of a remote error under `prefix` (`body.`), if it has one there.
fn remote_field<'a>(e: &'a ClientError, prefix: &str) -> Option<&'a str> {
    e.remote()?.field.as_deref()?.strip_prefix(prefix)
}

/// What a line of a flow or bundle file holds.
#[derive(Debug)]
enum ParsedOp {
    /// A flow-mod (boxed: it is much larger than the others).
    Flow(Box<ParsedFlow>),
    /// A group-mod (`add-group`, `mod-group`, `del-groups`).
    Group(ParsedGroup),
    /// A meter-mod (`add-meter`, `mod-meter`, `del-meters`).
    Meter(ParsedMeter),
}

impl ParsedOp {
    /// The op as sent in a bundle.
    fn request(&self) -> BundleOpDesc {
        match self {
            Self::Flow(p) => FlowModRequest::from_flow_mod(&p.flow_mod).into(),
            Self::Group(p) => GroupModRequest::from_group_mod(&p.group_mod).into(),
            Self::Meter(p) => MeterModRequest::from_meter_mod(&p.meter_mod).into(),
        }
    }
}

/// One op of a file: line number, text (without its command word), parsed form.
#[derive(Debug)]
struct FileOp {
    line: usize,
    text: String,
    parsed: ParsedOp,
}

/// Reads a flow file (`-` = stdin): one flow per line, `#` comments, blank lines skipped.
/// With `commands` (a bundle file), a line may start with a command word (see
/// [`split_command`]).
fn read_ops(path: &PathBuf, commands: bool, ports: &[PortDesc]) -> Result<Vec<FileOp>> {
    let content = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading stdin")?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    let name = path.display().to_string();
    parse_ops(&content, &name, commands, ports)
}

fn parse_ops(content: &str, name: &str, commands: bool, ports: &[PortDesc]) -> Result<Vec<FileOp>> {
    let mut ops = Vec::new();
    for (i, raw) in content.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (command, text) = if commands {
            split_command(trimmed)
        } else {
            (LineCommand::Flow(FlowModCommand::Add), trimmed)
        };
        let whence = format!("{name}:{line}: ");
        let parsed = match command {
            LineCommand::Flow(c) => ParsedOp::Flow(Box::new(parse_line(text, c, ports, &whence)?)),
            LineCommand::Group(c) => ParsedOp::Group(
                flowtext::parse_group(text, c, &resolver(ports))
                    .map_err(|e| anyhow!("{whence}{}", e.render(text)))?,
            ),
            LineCommand::Meter(c) => ParsedOp::Meter(
                flowtext::parse_meter(text, c)
                    .map_err(|e| anyhow!("{whence}{}", e.render(text)))?,
            ),
        };
        ops.push(FileOp {
            line,
            text: text.to_owned(),
            parsed,
        });
    }
    Ok(ops)
}

/// The command word of a bundle file line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LineCommand {
    /// A flow-mod.
    Flow(FlowModCommand),
    /// A group-mod.
    Group(ModCommand),
    /// A meter-mod.
    Meter(ModCommand),
}

/// `add …`, `modify …`/`mod …`, `modify_strict …`, `delete …`/`del …`, `delete_strict …`,
/// `add-group …`, `mod-group …`, `del-groups […]`, `add-meter …`, `mod-meter …`,
/// `del-meters […]`; anything else is a flow add of the whole line.
fn split_command(line: &str) -> (LineCommand, &str) {
    let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let command = match word {
        "add" => LineCommand::Flow(FlowModCommand::Add),
        "modify" | "mod" => LineCommand::Flow(FlowModCommand::Modify),
        "modify_strict" => LineCommand::Flow(FlowModCommand::ModifyStrict),
        "delete" | "del" => LineCommand::Flow(FlowModCommand::Delete),
        "delete_strict" => LineCommand::Flow(FlowModCommand::DeleteStrict),
        "add-group" => LineCommand::Group(ModCommand::Add),
        "mod-group" => LineCommand::Group(ModCommand::Modify),
        "del-groups" => LineCommand::Group(ModCommand::Delete),
        "add-meter" => LineCommand::Meter(ModCommand::Add),
        "mod-meter" => LineCommand::Meter(ModCommand::Modify),
        "del-meters" => LineCommand::Meter(ModCommand::Delete),
        _ => return (LineCommand::Flow(FlowModCommand::Add), line),
    };
    (command, rest.trim_start())
}

/// Sends the ops of a file all or nothing: one `bundle` if it fits in a frame, else a
/// multi-message bundle ([`Client::bundle_chunked`]), so a file of any size up to the op
/// limit works. An error names the file line, with a caret under the token.
fn send_bundle(
    client: &mut Client,
    ops: &[FileOp],
    name: &str,
) -> Result<control::proto::BundleReply> {
    let requests: Vec<BundleOpDesc> = ops.iter().map(|op| op.parsed.request()).collect();
    client
        .bundle_chunked(requests, control::client::DEFAULT_BUNDLE_CHUNK_BYTES)
        .map_err(|e| {
            // `bundle.ops[3].match.ip_dst` → line of op 3, token of `match.ip_dst`;
            // `bundle.ops[4].group_mod.buckets[0]` → line of op 4, token of `buckets[0]`.
            let located = remote_field(&e, "bundle.ops[").and_then(|rest| {
                let (i, field) = rest.split_once(']')?;
                let op = ops.get(i.parse::<usize>().ok()?)?;
                let field = field.trim_start_matches('.');
                let whence = format!("{name}:{}: ", op.line);
                let under = |key: &str| {
                    field
                        .strip_prefix(key)
                        .map(|f| f.trim_start_matches('.').to_owned())
                        .unwrap_or_default()
                };
                Some(match &op.parsed {
                    ParsedOp::Flow(p) => flow_error(&op.text, p, field, &e, &whence),
                    ParsedOp::Group(p) => {
                        let span = p.span_of(&under(control::proto::GROUP_MOD_KEY));
                        anyhow!("{whence}{}", caret_error(&op.text, span, &e))
                    }
                    ParsedOp::Meter(p) => {
                        let span = p.span_of(&under(control::proto::METER_MOD_KEY));
                        anyhow!("{whence}{}", caret_error(&op.text, span, &e))
                    }
                })
            });
            match (located, &e) {
                (Some(err), _) => err,
                (None, ClientError::Encode(_)) => {
                    anyhow!("{name}: an op does not fit in one control frame ({e})")
                }
                (None, _) => anyhow::Error::new(e).context(format!("bundle {name}")),
            }
        })
}

/// Sends one flow-mod; an error is shown under the flow text.
fn send_flow_mod(
    client: &mut Client,
    text: &str,
    parsed: &ParsedFlow,
) -> Result<control::proto::FlowModReply> {
    client
        .flow_mod(FlowModRequest::from_flow_mod(&parsed.flow_mod))
        .map_err(|e| match remote_field(&e, "body.") {
            Some(field) => flow_error(text, parsed, field, &e, ""),
            None => anyhow::Error::new(e),
        })
}

/// A server error shown under the text that produced it: `span` is where the error's field
/// came from.
fn caret_error(text: &str, span: flowtext::Span, e: &ClientError) -> anyhow::Error {
    let message = match e.remote() {
        Some(r) => format!("{} ({})", r.message, r.name),
        None => e.to_string(),
    };
    anyhow!("{}", flowtext::render_caret(text, span, &message))
}

/// Sends one group-mod; an error with a field is shown under the group text.
fn send_group_mod(
    client: &mut Client,
    text: &str,
    parsed: &ParsedGroup,
) -> Result<control::proto::GroupModReply> {
    client
        .group_mod(GroupModRequest::from_group_mod(&parsed.group_mod))
        .map_err(|e| match remote_field(&e, "body.") {
            Some(field) if !text.is_empty() => caret_error(text, parsed.span_of(field), &e),
            _ => anyhow::Error::new(e),
        })
}

/// Sends one meter-mod; an error with a field is shown under the meter text.
fn send_meter_mod(
    client: &mut Client,
    text: &str,
    parsed: &ParsedMeter,
) -> Result<control::proto::MeterModReply> {
    client
        .meter_mod(MeterModRequest::from_meter_mod(&parsed.meter_mod))
        .map_err(|e| match remote_field(&e, "body.") {
            Some(field) if !text.is_empty() => caret_error(text, parsed.span_of(field), &e),
            _ => anyhow::Error::new(e),
        })
}

/// An id given as `N` or `KEY=N` (decimal or 0x hex).
fn id_arg(text: &str, key: &str) -> Result<u32> {
    let text = text.trim();
    let v = text
        .strip_prefix(key)
        .and_then(|r| r.strip_prefix('='))
        .unwrap_or(text);
    let n = flowtext::parse_int(v).map_err(|e| anyhow!("{key}: {e}"))?;
    u32::try_from(n).map_err(|_| anyhow!("{key} {n} is out of range"))
}

/// One dumped group as OVS prints it: the group, then its and each bucket's counters.
fn group_line(g: &GroupDesc, names: &dyn Fn(u32) -> Option<String>) -> String {
    let mut out = match g.to_group_mod() {
        Ok(gm) => format!(" {}", flowtext::format_group_mod(&gm, names)),
        Err(e) => format!(" group_id={} (unreadable: {e})", g.group_id),
    };
    let _ = write!(out, " packet_count={},byte_count={}", g.packets, g.bytes);
    for (i, b) in g.buckets.iter().enumerate() {
        let _ = write!(
            out,
            ",bucket{i}:packet_count={},byte_count={}",
            b.packets, b.bytes
        );
    }
    out
}

/// One dumped meter as OVS prints it: the meter, then the offered and dropped counters.
fn meter_line(m: &MeterDesc) -> String {
    let mut out = format!("meter={} {}", m.meter_id, m.unit.as_str());
    if m.burst != 0 {
        out.push_str(" burst");
    }
    let _ = write!(out, " bands=type=drop rate={}", m.rate);
    if m.burst != 0 {
        let _ = write!(out, " burst_size={}", m.burst);
    }
    let _ = write!(
        out,
        " packet_in_count={} byte_in_count={} band: packet_count={} byte_count={}",
        m.packets_in, m.bytes_in, m.packets_dropped, m.bytes_dropped
    );
    out
}

/// One dumped flow as OVS prints it.
fn dump_line(f: &FlowDesc, names: &dyn Fn(u32) -> Option<String>) -> String {
    let mut out = format!(
        " cookie={:#x}, duration={}.{:03}s, table={}, n_packets={}, n_bytes={},",
        f.cookie,
        f.duration_ms / 1000,
        f.duration_ms % 1000,
        f.table,
        f.packets,
        f.bytes
    );
    if f.idle_timeout != 0 {
        let _ = write!(out, " idle_timeout={},", f.idle_timeout);
    }
    if f.hard_timeout != 0 {
        let _ = write!(out, " hard_timeout={},", f.hard_timeout);
    }
    if let Some(idle) = f.idle_ms {
        let _ = write!(out, " idle_age={},", idle / 1000);
    }
    let _ = write!(out, " priority={}", f.priority);
    match f.to_flow_mod() {
        Ok(fm) => {
            let m = flowtext::format_match(&fm.fields, names);
            if !m.is_empty() {
                out.push(',');
                out.push_str(&m);
            }
            for (on, flag) in [
                (fm.flags.send_flow_rem, "send_flow_rem"),
                (fm.flags.check_overlap, "check_overlap"),
            ] {
                if on {
                    let _ = write!(out, ",{flag}");
                }
            }
            let _ = write!(
                out,
                " actions={}",
                flowtext::format_actions(&fm.instructions, names)
            );
        }
        Err(e) => {
            let _ = write!(out, " (unreadable: {e})");
        }
    }
    out
}

fn tables_table(t: &TableStatsReply) -> String {
    let mut table = Table::new(&[
        ("TABLE", true),
        ("ACTIVE", true),
        ("SUBTABLES", true),
        ("LOOKUPS", true),
        ("MATCHED", true),
    ]);
    for d in &t.tables {
        table.row(vec![
            d.table.to_string(),
            d.active.to_string(),
            d.subtables.to_string(),
            d.lookups.to_string(),
            d.matched.to_string(),
        ]);
    }
    table.render()
}

fn print_json<T: Serialize>(value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).context("formatting JSON")?;
    println!("{text}");
    Ok(())
}

#[derive(Serialize)]
struct ShowJson<'a> {
    hello: &'a HelloReply,
    switch: &'a SwitchShowReply,
}

#[derive(Serialize)]
struct FlushJson {
    flushed: u64,
}

/// The fields of a frame as a flow match (`udp,dl_src=…,nw_dst=…,udp_dst=77`), or `None` if
/// it does not parse (a truncated packet-in).
fn frame_summary(frame: &[u8], names: &dyn Fn(u32) -> Option<String>) -> Option<String> {
    use datapath::ofp::MatchField;
    use datapath::ofp::field::Field;
    let (key, _) = datapath::flow::extract(frame, 0).ok()?;
    let mut fields = vec![Field::EthSrc, Field::EthDst, Field::EthType];
    if key.vlan_tci & datapath::flow::VLAN_PRESENT != 0 {
        fields.extend([Field::VlanVid, Field::VlanPcp]);
    }
    let l4 = |tcp: [Field; 2], udp: [Field; 2], icmp: [Field; 2]| match key.nw_proto {
        6 => tcp.to_vec(),
        17 => udp.to_vec(),
        1 | 58 => icmp.to_vec(),
        _ => Vec::new(),
    };
    match key.eth_type {
        0x0800 => {
            fields.extend([Field::IpSrc, Field::IpDst, Field::IpProto, Field::IpTtl]);
            fields.extend(l4(
                [Field::TcpSrc, Field::TcpDst],
                [Field::UdpSrc, Field::UdpDst],
                [Field::IcmpType, Field::IcmpCode],
            ));
        }
        0x86dd => {
            fields.extend([Field::Ipv6Src, Field::Ipv6Dst, Field::IpProto, Field::IpTtl]);
            fields.extend(l4(
                [Field::TcpSrc, Field::TcpDst],
                [Field::UdpSrc, Field::UdpDst],
                [Field::Icmpv6Type, Field::Icmpv6Code],
            ));
        }
        0x0806 => fields.extend([
            Field::ArpOp,
            Field::ArpSpa,
            Field::ArpTpa,
            Field::ArpSha,
            Field::ArpTha,
        ]),
        _ => {}
    }
    let matched: Vec<MatchField> = fields
        .into_iter()
        .map(|field| MatchField {
            field,
            value: field.get(&key),
            mask: None,
        })
        .collect();
    Some(flowtext::format_match(&matched, names))
}

/// A port number as text: its name if known, `controller` for 0.
fn port_name(id: u32, names: &dyn Fn(u32) -> Option<String>) -> String {
    if id == 0 {
        "controller".to_owned()
    } else {
        names(id).unwrap_or_else(|| id.to_string())
    }
}

/// One notification as `monitor` prints it (OVS-like `key=value` words).
fn notification_line(n: &Notification, names: &dyn Fn(u32) -> Option<String>) -> String {
    let mut out = String::from(n.type_name());
    match n {
        Notification::PacketIn(p) => {
            let _ = write!(
                out,
                " table={} cookie={:#x} reason={} in_port={} total_len={}",
                p.table,
                p.cookie,
                p.reason,
                port_name(p.in_port, names),
                p.total_len
            );
            let frame = p.frame().unwrap_or_default();
            let _ = write!(out, " data_len={}", frame.len());
            let mut pipeline = p.fields.clone();
            pipeline.remove("in_port");
            if !pipeline.is_empty() {
                match control::proto::match_from_desc(&pipeline, "match") {
                    Ok(m) => {
                        let _ = write!(out, " {}", flowtext::format_match(&m, names));
                    }
                    Err(_) => {
                        for (k, v) in &pipeline {
                            let _ = write!(out, " {k}={v}");
                        }
                    }
                }
            }
            match frame_summary(&frame, names) {
                Some(summary) if frame.len() as u64 == u64::from(p.total_len) => {
                    let _ = write!(out, " {summary}");
                }
                _ => {
                    let _ = write!(out, " data={}", p.data);
                }
            }
        }
        Notification::FlowRemoved(f) => {
            let _ = write!(
                out,
                " table={} priority={} cookie={:#x} reason={} duration={}.{:03}s",
                f.table,
                f.priority,
                f.cookie,
                f.reason,
                f.duration_ms / 1000,
                f.duration_ms % 1000
            );
            if f.idle_timeout != 0 {
                let _ = write!(out, " idle_timeout={}", f.idle_timeout);
            }
            if f.hard_timeout != 0 {
                let _ = write!(out, " hard_timeout={}", f.hard_timeout);
            }
            let _ = write!(out, " n_packets={} n_bytes={}", f.packets, f.bytes);
            if let Ok(m) = control::proto::match_from_desc(&f.fields, "match") {
                let m = flowtext::format_match(&m, names);
                if !m.is_empty() {
                    let _ = write!(out, " {m}");
                }
            }
        }
        Notification::PortStatus(p) => {
            let _ = write!(
                out,
                " reason={} port={} id={} type={} link={}",
                p.reason,
                p.port.name,
                p.port.id,
                p.port.port_type,
                link_text(&p.port)
            );
            if let Some(mtu) = p.port.mtu {
                let _ = write!(out, " mtu={mtu}");
            }
        }
    }
    if n.lost() > 0 {
        let _ = write!(out, " lost={}", n.lost());
    }
    out
}

/// `{"type": "packet_in", "body": {...}}` on one line.
fn notification_json(n: &Notification) -> Result<String> {
    serde_json::to_string(&serde_json::json!({ "type": n.type_name(), "body": n }))
        .context("formatting JSON")
}

/// `monitor`: subscribe, then print notifications until `count` or `timeout` is reached.
fn monitor(
    client: &mut Client,
    kinds: &[MonitorKind],
    count: Option<u64>,
    timeout: Option<Duration>,
    json: bool,
) -> Result<()> {
    let mut ports = client.ports().context("listing ports")?;
    let request = if kinds.is_empty() {
        SubscribeRequest::all()
    } else {
        SubscribeRequest::only(
            kinds.contains(&MonitorKind::PacketIn),
            kinds.contains(&MonitorKind::FlowRemoved),
            kinds.contains(&MonitorKind::PortStatus),
        )
    };
    client.subscribe(request).context("subscribe")?;
    let end = timeout.map(|t| Instant::now() + t);
    let mut seen = 0u64;
    while count.is_none_or(|c| seen < c) {
        let wait = match end {
            Some(end) => {
                let left = end.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                left
            }
            None => Duration::from_secs(1),
        };
        let Some(n) = client
            .next_notification(wait)
            .context("waiting for notifications")?
        else {
            continue;
        };
        if let Notification::PortStatus(p) = &n {
            ports.retain(|d| d.id != p.port.id);
            if p.reason == "add" {
                ports.push(p.port.clone());
            }
        }
        if json {
            println!("{}", notification_json(&n)?);
        } else {
            println!("{}", notification_line(&n, &namer(&ports)));
        }
        seen += 1;
    }
    Ok(())
}

/// The items of `packet-out` (`in_port=P packet=HEX actions=…`, in any order, `actions=` last;
/// separated by spaces or commas).
fn parse_packet_out(items: &[String], ports: &[PortDesc]) -> Result<(PacketOutRequest, String)> {
    let text = items.join(" ");
    let (head, actions) = match text.find("actions=") {
        Some(i) => (&text[..i], Some(text[i + "actions=".len()..].trim())),
        None => (text.as_str(), None),
    };
    let mut request = PacketOutRequest::default();
    let mut packet = None;
    for item in head
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
    {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| anyhow!("packet-out: expected KEY=VALUE, got `{item}`"))?;
        match key {
            "in_port" => {
                request.in_port = match value {
                    "controller" | "CONTROLLER" | "none" => 0,
                    v => match flowtext::parse_int(v) {
                        Ok(n) => {
                            u32::try_from(n).map_err(|_| anyhow!("in_port {n} is out of range"))?
                        }
                        Err(_) => resolver(ports)(v)
                            .ok_or_else(|| anyhow!("in_port: no port named `{v}`"))?,
                    },
                };
            }
            "packet" => {
                let hex: String = value
                    .trim_start_matches("0x")
                    .chars()
                    .filter(|c| *c != ':' && *c != '.')
                    .collect();
                control::proto::hex_decode(&hex).map_err(|e| anyhow!("packet: {e}"))?;
                packet = Some(hex);
            }
            other => {
                return Err(anyhow!(
                    "packet-out: unknown item `{other}` (in_port=, packet=, actions=)"
                ));
            }
        }
    }
    request.data = packet.ok_or_else(|| anyhow!("packet-out: packet=HEX is required"))?;
    let mut actions_text = String::new();
    if let Some(a) = actions {
        actions_text = format!("actions={a}");
        let parsed = flowtext::parse_flow(&actions_text, FlowModCommand::Add, &resolver(ports))
            .map_err(|e| anyhow!("{}", e.render(&actions_text)))?;
        let ins = &parsed.flow_mod.instructions;
        if ins.clear_actions
            || !ins.write.is_empty()
            || ins.write_metadata.is_some()
            || ins.goto_table.is_some()
        {
            return Err(anyhow!(
                "packet-out takes actions, not instructions (goto_table, write_actions, ...)"
            ));
        }
        request.actions = Some(
            ins.apply
                .iter()
                .map(control::proto::action_to_desc)
                .collect(),
        );
    }
    Ok((request, actions_text))
}

fn run(cli: &Cli) -> Result<()> {
    let config = control::client::ClientConfig {
        timeout: Duration::from_secs(cli.timeout.unwrap_or(10)),
        ..control::client::ClientConfig::default()
    };
    let mut client = Client::connect_with(&cli.socket, config)
        .context("is vswitchd running? (set --socket or VSWITCH_SOCKET)")?;
    let mut names = PortNames::default();
    match &cli.command {
        Command::Show => {
            let hello = client.hello().context("hello")?;
            let show = client.show().context("show")?;
            if cli.json {
                print_json(&ShowJson {
                    hello: &hello,
                    switch: &show,
                })?;
            } else {
                print!("{}", show_text(&hello, &show));
            }
        }
        Command::AddPort {
            name,
            port_type,
            queues,
            vlan,
            trunks,
            native_vlan,
            xdp_mode,
            xdp_frags,
            mac_max,
        } => {
            let mut request = PortAddRequest::new(name.clone());
            request.port_type = port_type.map(PortType::from);
            request.queues = queues.unwrap_or(1);
            request.xdp_mode = xdp_mode.map(XdpModeSpec::from);
            request.xdp_frags = *xdp_frags;
            request.mac_max = *mac_max;
            request.vlan = match (vlan, trunks) {
                (Some(v), _) => Some(VlanSpec::access(*v)),
                (None, Some(Trunks(list))) => Some(VlanSpec::trunk(list.clone(), *native_vlan)),
                (None, None) => None,
            };
            let port = client
                .port_add(request)
                .with_context(|| format!("add-port {name}"))?;
            if cli.json {
                print_json(&port)?;
            } else {
                println!(
                    "added port {} {} ({}, {})",
                    port.id,
                    port.name,
                    type_text(&port),
                    vlan_text(&port.vlan)
                );
            }
        }
        Command::DelPort { name } => {
            client
                .port_del(name)
                .with_context(|| format!("del-port {name}"))?;
            if cli.json {
                print_json(&serde_json::json!({}))?;
            } else {
                println!("deleted port {name}");
            }
        }
        Command::ListPorts => {
            let ports = client.ports().context("list-ports")?;
            if cli.json {
                print_json(&ports)?;
            } else {
                print!("{}", ports_table(&ports));
            }
        }
        Command::DumpPorts { name } => {
            let stats = client.port_stats(name.as_deref()).context("dump-ports")?;
            if cli.json {
                print_json(&stats)?;
            } else {
                print!("{}", stats_table(&stats));
            }
        }
        Command::DumpMacs { vlan, port } => {
            let entries = client.macs(*vlan, port.as_deref()).context("dump-macs")?;
            if cli.json {
                print_json(&entries)?;
            } else {
                print!("{}", macs_table(&entries));
            }
        }
        Command::FlushMacs { vlan, port } => {
            let flushed = client
                .mac_flush(*vlan, port.as_deref())
                .context("flush-macs")?;
            if cli.json {
                print_json(&FlushJson { flushed })?;
            } else {
                println!("flushed {flushed} entries");
            }
        }
        Command::AddFlow { flow } | Command::ModFlows { flow, .. } => {
            let command = match &cli.command {
                Command::ModFlows { strict: true, .. } => FlowModCommand::ModifyStrict,
                Command::ModFlows { .. } => FlowModCommand::Modify,
                _ => FlowModCommand::Add,
            };
            let ports = names.load(&mut client)?;
            let parsed = parse_line(flow, command, ports, "")?;
            let reply = send_flow_mod(&mut client, flow, &parsed)?;
            client.barrier().context("barrier")?;
            if cli.json {
                print_json(&reply)?;
            }
        }
        Command::DelFlows { strict, flow } => {
            let command = if *strict {
                FlowModCommand::DeleteStrict
            } else {
                FlowModCommand::Delete
            };
            let ports = names.load(&mut client)?;
            let text = flow.as_deref().unwrap_or("");
            let parsed = parse_line(text, command, ports, "")?;
            let reply = send_flow_mod(&mut client, text, &parsed)?;
            client.barrier().context("barrier")?;
            if cli.json {
                print_json(&reply)?;
            }
        }
        Command::AddFlows { file } | Command::Bundle { file } => {
            let commands = matches!(cli.command, Command::Bundle { .. });
            let ports = names.load(&mut client)?.to_vec();
            let ops = read_ops(file, commands, &ports)?;
            let reply = send_bundle(&mut client, &ops, &file.display().to_string())?;
            client.barrier().context("barrier")?;
            if cli.json {
                print_json(&reply)?;
            }
        }
        Command::DumpFlows { filter } => {
            let ports = names.load(&mut client)?.to_vec();
            let request = match filter {
                Some(text) => {
                    let parsed = parse_line(text, FlowModCommand::Delete, &ports, "")?;
                    FlowFilterRequest::from_flow_mod(&parsed.flow_mod)
                }
                None => FlowFilterRequest::default(),
            };
            let flows = client.flow_dump(request).context("dump-flows")?;
            if cli.json {
                print_json(&flows)?;
            } else {
                let names = namer(&ports);
                for f in &flows {
                    println!("{}", dump_line(f, &names));
                }
            }
        }
        Command::AddGroup { group } | Command::ModGroup { group } => {
            let command = match &cli.command {
                Command::ModGroup { .. } => ModCommand::Modify,
                _ => ModCommand::Add,
            };
            let ports = names.load(&mut client)?;
            let parsed = flowtext::parse_group(group, command, &resolver(ports))
                .map_err(|e| anyhow!("{}", e.render(group)))?;
            let reply = send_group_mod(&mut client, group, &parsed)?;
            client.barrier().context("barrier")?;
            if cli.json {
                print_json(&reply)?;
            }
        }
        Command::DelGroups { group } => {
            let text = group.as_deref().unwrap_or("");
            let parsed = flowtext::parse_group(text, ModCommand::Delete, &|_| None)
                .map_err(|e| anyhow!("{}", e.render(text)))?;
            let reply = send_group_mod(&mut client, text, &parsed)?;
            client.barrier().context("barrier")?;
            if cli.json {
                print_json(&reply)?;
            }
        }
        Command::DumpGroups { group } => {
            let id = group
                .as_deref()
                .map(|g| id_arg(g, "group_id"))
                .transpose()?;
            let groups = client.group_dump(id).context("dump-groups")?;
            if cli.json {
                print_json(&groups)?;
            } else {
                let ports = names.load(&mut client)?;
                let names = namer(ports);
                for g in &groups {
                    println!("{}", group_line(g, &names));
                }
            }
        }
        Command::AddMeter { meter } | Command::ModMeter { meter } => {
            let command = match &cli.command {
                Command::ModMeter { .. } => ModCommand::Modify,
                _ => ModCommand::Add,
            };
            let parsed = flowtext::parse_meter(meter, command)
                .map_err(|e| anyhow!("{}", e.render(meter)))?;
            let reply = send_meter_mod(&mut client, meter, &parsed)?;
            client.barrier().context("barrier")?;
            if cli.json {
                print_json(&reply)?;
            }
        }
        Command::DelMeters { meter } => {
            let text = meter.as_deref().unwrap_or("");
            let parsed = flowtext::parse_meter(text, ModCommand::Delete)
                .map_err(|e| anyhow!("{}", e.render(text)))?;
            let reply = send_meter_mod(&mut client, text, &parsed)?;
            client.barrier().context("barrier")?;
            if cli.json {
                print_json(&reply)?;
            }
        }
        Command::DumpMeters { meter } => {
            let id = meter.as_deref().map(|m| id_arg(m, "meter")).transpose()?;
            let meters = client.meter_dump(id).context("dump-meters")?;
            if cli.json {
                print_json(&meters)?;
            } else {
                for m in &meters {
                    println!("{}", meter_line(m));
                }
            }
        }
        Command::Monitor { kinds, count } => {
            monitor(
                &mut client,
                kinds,
                *count,
                cli.timeout.map(Duration::from_secs),
                cli.json,
            )?;
        }
        Command::PacketOut { items } => {
            let ports = names.load(&mut client)?.to_vec();
            let (request, actions_text) = parse_packet_out(items, &ports)?;
            client.packet_out(request).map_err(|e| {
                let at = remote_field(&e, "body.actions[")
                    .and_then(|rest| rest.split(']').next()?.parse::<usize>().ok());
                match at {
                    Some(i) if !actions_text.is_empty() => {
                        let parsed = flowtext::parse_flow(
                            &actions_text,
                            FlowModCommand::Add,
                            &resolver(&ports),
                        );
                        match parsed {
                            Ok(p) => caret_error(
                                &actions_text,
                                p.span_of(&format!("instructions.apply[{i}]")),
                                &e,
                            ),
                            Err(_) => anyhow::Error::new(e),
                        }
                    }
                    _ => anyhow::Error::new(e),
                }
            })?;
            if cli.json {
                print_json(&serde_json::json!({}))?;
            }
        }
        Command::DumpTables => {
            let tables = client.table_stats().context("dump-tables")?;
            if cli.json {
                print_json(&tables)?;
            } else {
                print!("{}", tables_table(&tables));
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if cli.json
                && let Some(remote) = e
                    .downcast_ref::<ClientError>()
                    .and_then(ClientError::remote)
                && let Ok(text) =
                    serde_json::to_string_pretty(&serde_json::json!({ "error": remote }))
            {
                println!("{text}");
            }
            eprintln!("vsctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_port_status_line_says_whether_the_link_is_up() {
        let event = |reason: &str, link_up| {
            Notification::PortStatus(control::proto::notify::PortStatusEvent {
                reason: reason.into(),
                port: PortDesc {
                    id: 2,
                    name: "veth2".into(),
                    port_type: "afpacket".into(),
                    link_up,
                    ..PortDesc::default()
                },
                lost: 0,
            })
        };
        let names = |_: u32| None;
        assert_eq!(
            notification_line(&event("modify", false), &names),
            "port_status reason=modify port=veth2 id=2 type=afpacket link=down"
        );
        assert_eq!(
            notification_line(&event("add", true), &names),
            "port_status reason=add port=veth2 id=2 type=afpacket link=up"
        );
        let mut gone = event("modify", false);
        if let Notification::PortStatus(s) = &mut gone {
            s.port.device_gone = true;
        }
        assert_eq!(
            notification_line(&gone, &names),
            "port_status reason=modify port=veth2 id=2 type=afpacket link=gone"
        );
        let mut jumbo = event("modify", true);
        if let Notification::PortStatus(s) = &mut jumbo {
            s.port.mtu = Some(9000);
        }
        assert_eq!(
            notification_line(&jumbo, &names),
            "port_status reason=modify port=veth2 id=2 type=afpacket link=up mtu=9000"
        );
    }

    #[test]
    fn busy_time_prints_in_seconds_to_the_millisecond() {
        assert_eq!(busy_secs(0), "0.000s");
        assert_eq!(busy_secs(999_999), "0.000s");
        assert_eq!(busy_secs(1_000_000), "0.001s");
        assert_eq!(busy_secs(12_345_678_901), "12.345s");
        assert_eq!(busy_secs(u64::MAX), "18446744073.709s");
    }

    #[test]
    fn show_prints_each_worker_s_busy_time_and_its_part_in_transmit_flushes() {
        let show = SwitchShowReply {
            workers: 1,
            worker_stats: vec![control::proto::WorkerDesc {
                worker: 0,
                frames: 1000,
                busy_ns: 2_500_000_000,
                flush_ns: 2_000_000_000,
                holds: 7,
                staged_batches: 3,
                ..control::proto::WorkerDesc::default()
            }],
            poll_mode: "busy".into(),
            ..SwitchShowReply::default()
        };
        let text = show_text(&HelloReply::default(), &show);
        let header = text
            .lines()
            .find(|l| l.contains("BUSY"))
            .expect("the worker table");
        assert!(header.contains("IN_TX_FLUSH"), "{text}");
        assert!(header.ends_with("HOLDS  STAGED"), "{text}");
        let row = text
            .lines()
            .find(|l| l.contains("2.500s"))
            .expect("the worker's row");
        assert!(row.contains("2.000s"), "{text}");
        assert!(row.ends_with(" 7       3"), "{text}");
        // No hold configured: the settings line does not mention it; else it gives it.
        assert!(text.contains("poll mode busy\n"), "{text}");
        let held = SwitchShowReply {
            batch_hold_ns: 1000,
            ..show
        };
        let text = show_text(&HelloReply::default(), &held);
        assert!(
            text.contains("poll mode busy, batch hold 1000 ns\n"),
            "{text}"
        );
    }

    #[test]
    fn vlan_and_trunks_exclude_each_other() {
        assert!(
            Cli::try_parse_from(["vsctl", "add-port", "a", "--vlan", "3", "--trunks", "4"])
                .is_err()
        );
        assert!(Cli::try_parse_from(["vsctl", "add-port", "a", "--native-vlan", "3"]).is_err());
        let cli = Cli::try_parse_from([
            "vsctl",
            "add-port",
            "a",
            "--trunks",
            "10,20",
            "--native-vlan",
            "10",
        ])
        .unwrap();
        let Command::AddPort {
            trunks,
            native_vlan,
            ..
        } = cli.command
        else {
            panic!("not add-port")
        };
        assert_eq!(trunks, Some(Trunks(vec![10, 20])));
        assert_eq!(native_vlan, Some(10));
    }

    #[test]
    fn trunks_parse_lists_and_all() {
        assert_eq!(parse_trunks("all"), Ok(Trunks(vec![])));
        assert_eq!(parse_trunks("1, 2,3"), Ok(Trunks(vec![1, 2, 3])));
        assert!(parse_trunks("1,x").is_err());
        assert!(parse_trunks("70000").is_err());
    }

    #[test]
    fn tables_align_columns() {
        let mut t = Table::new(&[("PORT", true), ("NAME", false), ("VLAN", false)]);
        t.row(vec!["1".into(), "veth0".into(), "access 1".into()]);
        t.row(vec!["12".into(), "a".into(), "trunk all".into()]);
        assert_eq!(
            t.render(),
            "PORT  NAME   VLAN\n   1  veth0  access 1\n  12  a      trunk all\n"
        );
    }

    #[test]
    fn an_afxdp_port_s_type_shows_its_attachment() {
        let mut p = PortDesc {
            port_type: "afxdp".into(),
            xdp_mode: Some(XdpModeSpec::Split),
            ..PortDesc::default()
        };
        assert_eq!(type_text(&p), "afxdp/split");
        p.xdp_frags = true;
        assert_eq!(type_text(&p), "afxdp/split+frags");
        p.xdp_mode = Some(XdpModeSpec::Native);
        assert_eq!(type_text(&p), "afxdp/native+frags");
        let tap = PortDesc {
            port_type: "tap".into(),
            ..PortDesc::default()
        };
        assert_eq!(type_text(&tap), "tap");
    }

    #[test]
    fn only_non_zero_drop_reasons_are_shown() {
        let mut p = PortStatsDesc::default();
        assert_eq!(drops_text(&p), "-");
        p.rx_drops = BTreeMap::from([("truncated".to_owned(), 2), ("bad_length".to_owned(), 0)]);
        p.tx_drops = BTreeMap::from([("tx_queue_full".to_owned(), 1)]);
        assert_eq!(drops_text(&p), "rx:truncated=2 tx:tx_queue_full=1");
    }

    fn test_ports() -> Vec<PortDesc> {
        vec![
            PortDesc {
                id: 1,
                name: "p1".into(),
                ..PortDesc::default()
            },
            PortDesc {
                id: 2,
                name: "p2".into(),
                ..PortDesc::default()
            },
        ]
    }

    #[test]
    fn bundle_lines_take_a_command_word() {
        let flow = LineCommand::Flow;
        assert_eq!(
            split_command("add ip actions=drop"),
            (flow(FlowModCommand::Add), "ip actions=drop")
        );
        assert_eq!(
            split_command("mod  ip actions=drop"),
            (flow(FlowModCommand::Modify), "ip actions=drop")
        );
        assert_eq!(
            split_command("modify_strict ip actions=drop").0,
            flow(FlowModCommand::ModifyStrict)
        );
        assert_eq!(
            split_command("del ip"),
            (flow(FlowModCommand::Delete), "ip")
        );
        assert_eq!(
            split_command("delete_strict ip").0,
            flow(FlowModCommand::DeleteStrict)
        );
        assert_eq!(split_command("delete"), (flow(FlowModCommand::Delete), ""));
        assert_eq!(
            split_command("ip actions=drop"),
            (flow(FlowModCommand::Add), "ip actions=drop")
        );
        assert_eq!(
            split_command("add-group group_id=1,type=all"),
            (LineCommand::Group(ModCommand::Add), "group_id=1,type=all")
        );
        assert_eq!(
            split_command("mod-group group_id=1,type=all").0,
            LineCommand::Group(ModCommand::Modify)
        );
        assert_eq!(
            split_command("del-groups"),
            (LineCommand::Group(ModCommand::Delete), "")
        );
        assert_eq!(
            split_command("add-meter meter=1 pktps bands=type=drop rate=10").0,
            LineCommand::Meter(ModCommand::Add)
        );
        assert_eq!(
            split_command("mod-meter meter=1 kbps bands=type=drop rate=10").0,
            LineCommand::Meter(ModCommand::Modify)
        );
        assert_eq!(
            split_command("del-meters meter=2"),
            (LineCommand::Meter(ModCommand::Delete), "meter=2")
        );
    }

    #[test]
    fn flow_files_skip_comments_and_report_the_failing_line() {
        let ports = test_ports();
        let ops = parse_ops(
            "# header\n\n  ip actions=output:p1\ndelete tcp\n",
            "f",
            true,
            &ports,
        )
        .unwrap();
        assert_eq!(ops.len(), 2);
        assert_eq!((ops[0].line, ops[1].line), (3, 4));
        assert!(
            matches!(&ops[1].parsed, ParsedOp::Flow(p) if p.flow_mod.command == FlowModCommand::Delete)
        );
        let e = parse_ops(
            "ip actions=drop\nip,nw_dst=1.2.3 actions=drop\n",
            "f",
            false,
            &ports,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("f:2: ip_dst: `1.2.3` is not an IPv4 address"),
            "{e}"
        );
        assert!(
            e.ends_with("\n  ip,nw_dst=1.2.3 actions=drop\n     ^^^^^^^^^^^^"),
            "{e}"
        );
    }

    #[test]
    fn dump_lines_read_like_ovs() {
        let ports = test_ports();
        let parsed = parse_line(
            "table=0,priority=100,ip,nw_dst=10.1.0.0/16 actions=output:p2",
            FlowModCommand::Add,
            &ports,
            "",
        )
        .unwrap();
        let req = FlowModRequest::from_flow_mod(&parsed.flow_mod);
        let f = FlowDesc {
            table: 0,
            priority: 100,
            fields: req.fields,
            instructions: req.instructions.unwrap_or_default(),
            packets: 3,
            bytes: 294,
            duration_ms: 12_345,
            idle_ms: Some(1_500),
            ..FlowDesc::default()
        };
        assert_eq!(
            dump_line(&f, &namer(&ports)),
            " cookie=0x0, duration=12.345s, table=0, n_packets=3, n_bytes=294, idle_age=1, priority=100,ip,nw_dst=10.1.0.0/16 actions=output:p2"
        );
    }

    #[test]
    fn group_and_meter_ids_take_both_forms() {
        assert_eq!(id_arg("7", "group_id").unwrap(), 7);
        assert_eq!(id_arg("group_id=0x10", "group_id").unwrap(), 16);
        assert_eq!(id_arg(" meter=3 ", "meter").unwrap(), 3);
        assert!(id_arg("meter=x", "meter").is_err());
        assert!(id_arg("4294967296", "group_id").is_err());
    }

    #[test]
    fn group_and_meter_dump_lines_read_like_ovs() {
        use control::proto::{BucketStatsDesc, GroupTypeDesc, MeterUnitDesc};
        let ports = test_ports();
        let g = GroupDesc {
            group_id: 1,
            group_type: GroupTypeDesc::Select,
            buckets: vec![
                BucketStatsDesc {
                    weight: 10,
                    watch_port: None,
                    actions: vec![control::proto::ActionDesc::Output(2)],
                    packets: 3,
                    bytes: 180,
                },
                BucketStatsDesc {
                    weight: 10,
                    watch_port: None,
                    actions: vec![control::proto::ActionDesc::Output(3)],
                    packets: 1,
                    bytes: 60,
                },
            ],
            packets: 4,
            bytes: 240,
        };
        assert_eq!(
            group_line(&g, &namer(&ports)),
            " group_id=1,type=select,bucket=weight:10,actions=output:p2,bucket=weight:10,actions=output:3 \
             packet_count=4,byte_count=240,bucket0:packet_count=3,byte_count=180,\
             bucket1:packet_count=1,byte_count=60"
        );
        let mut m = MeterDesc {
            meter_id: 1,
            unit: MeterUnitDesc::Pktps,
            rate: 100,
            burst: 10,
            packets_in: 20,
            bytes_in: 1200,
            packets_dropped: 2,
            bytes_dropped: 120,
        };
        assert_eq!(
            meter_line(&m),
            "meter=1 pktps burst bands=type=drop rate=100 burst_size=10 \
             packet_in_count=20 byte_in_count=1200 band: packet_count=2 byte_count=120"
        );
        m.burst = 0;
        m.unit = MeterUnitDesc::Kbps;
        let line = meter_line(&m);
        assert!(
            line.starts_with("meter=1 kbps bands=type=drop rate=100 packet_in_count="),
            "{line}"
        );
        // The description part reads back as the meter.
        let desc = line.split(" packet_in_count").next().unwrap();
        let parsed = flowtext::parse_meter(desc, ModCommand::Add).unwrap();
        assert_eq!(
            MeterModRequest::from_meter_mod(&parsed.meter_mod).rate,
            Some(100)
        );
    }

    #[test]
    fn vlan_text_reads_like_the_flags() {
        assert_eq!(
            vlan_text(&VlanDesc {
                access: Some(5),
                ..VlanDesc::default()
            }),
            "access 5"
        );
        assert_eq!(
            vlan_text(&VlanDesc {
                access: None,
                trunks: Some(vec![10, 20]),
                native: Some(10)
            }),
            "trunk 10,20 native 10"
        );
    }
}
