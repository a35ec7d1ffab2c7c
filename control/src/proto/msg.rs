//! Message bodies, and the [`Request`] and [`Reply`] enums.
//!
//! Request bodies deny unknown fields; reply bodies ignore them (see the module docs of
//! [`crate::proto`]). Counts and sizes are `u64` on the wire whatever their type in the datapath.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::ErrorReply;
use super::flow::{
    BundleAddReply, BundleAddRequest, BundleIdRequest, BundleReply, BundleRequest,
    FlowAggregateReply, FlowDumpReply, FlowFilterRequest, FlowModReply, FlowModRequest,
    TableStatsReply,
};
use super::group::{
    GroupDumpReply, GroupDumpRequest, GroupModReply, GroupModRequest, MeterDumpReply,
    MeterDumpRequest, MeterModReply, MeterModRequest,
};
use super::notify::{PacketOutRequest, SubscribeReply, SubscribeRequest};

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// `hello`: the first request of a session (optional): version and capability discovery.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelloRequest {
    /// Versions the client speaks; empty = not stated. If none is spoken by the server the reply
    /// is a `bad_version` error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<u32>,
    /// Free-form client name and version, for the server's log (`vsctl 0.1.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

/// Port backend asked for in `port_add`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortType {
    /// AF_PACKET on a veth (keeps TSO); elsewhere AF_XDP where it works, else AF_PACKET.
    #[default]
    Auto,
    /// AF_XDP socket.
    Afxdp,
    /// TAP device.
    Tap,
    /// AF_PACKET socket.
    Afpacket,
}

/// How an `afxdp` port attaches its XDP program (`port_add`'s `xdp_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum XdpModeSpec {
    /// The switch's choice: `split` on a veth (falling back to `native`), else native with
    /// generic as the fallback.
    #[default]
    Auto,
    /// Native (driver) mode only. On a veth it turns the peer's TSO off.
    Native,
    /// Generic (skb) mode only; frames longer than a UMEM chunk are dropped.
    Generic,
    /// Generic mode for frames up to the MTU, an AF_PACKET socket on the same device for the
    /// longer ones (GSO frames), as ADR 0008 describes.
    Split,
}

impl XdpModeSpec {
    /// The wire form of a mode a port is attached in (`Auto` for the datapath's `Auto`, which
    /// an open port never reports).
    pub fn of(mode: datapath::port::afxdp::XdpMode) -> Self {
        use datapath::port::afxdp::XdpMode;
        match mode {
            XdpMode::Auto => Self::Auto,
            XdpMode::Native => Self::Native,
            XdpMode::Skb => Self::Generic,
            XdpMode::Split => Self::Split,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Native => "native",
            Self::Generic => "generic",
            Self::Split => "split",
        }
    }

    /// The datapath's mode: `None` for `auto` (the switch chooses).
    pub fn mode(self) -> Option<datapath::port::afxdp::XdpMode> {
        use datapath::port::afxdp::XdpMode;
        match self {
            Self::Auto => None,
            Self::Native => Some(XdpMode::Native),
            Self::Generic => Some(XdpMode::Skb),
            Self::Split => Some(XdpMode::Split),
        }
    }

    /// A port request's AF_XDP options checked against its type (`kind`, `None` = auto): the
    /// datapath's mode (`None` = the switch's choice), or the name of the option that a port
    /// of another type than `afxdp` was given (`"xdp_mode"`, then `"xdp_frags"`). Shared by the
    /// control socket's `port_add` and the daemon's configuration file.
    ///
    /// # Errors
    /// The option's name, when `kind` is not AF_XDP and the option is set.
    pub fn for_port(
        mode: Option<Self>,
        frags: bool,
        kind: Option<datapath::port::PortKind>,
    ) -> Result<Option<datapath::port::afxdp::XdpMode>, &'static str> {
        let afxdp = kind == Some(datapath::port::PortKind::AfXdp);
        if mode.is_some() && !afxdp {
            return Err("xdp_mode");
        }
        if frags && !afxdp {
            return Err("xdp_frags");
        }
        Ok(mode.and_then(Self::mode))
    }
}

impl PortType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Afxdp => "afxdp",
            Self::Tap => "tap",
            Self::Afpacket => "afpacket",
        }
    }
}

/// VLAN settings of a port in `port_add`: either `access` or `trunks` (+ `native`).
///
/// `{"access": 10}`, `{"trunks": [10, 20], "native": 10}`, `{"trunks": []}` (every VLAN).
/// Omitted in `port_add`: access port in VLAN 1.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VlanSpec {
    /// Access port in this VLAN (1..=4094).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<u16>,
    /// Trunk port carrying these VLANs (empty = all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trunks: Option<Vec<u16>>,
    /// VLAN of untagged frames on a trunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native: Option<u16>,
}

impl VlanSpec {
    /// An access port in `vlan`.
    pub fn access(vlan: u16) -> Self {
        Self {
            access: Some(vlan),
            ..Self::default()
        }
    }

    /// A trunk carrying `trunks` (empty = all), untagged frames in `native`.
    pub fn trunk(trunks: Vec<u16>, native: Option<u16>) -> Self {
        Self {
            access: None,
            trunks: Some(trunks),
            native,
        }
    }
}

fn default_queues() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

/// `port_add`: open a network device as a port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortAddRequest {
    /// Device name (1..=15 bytes, no `/`, `:` or whitespace).
    pub name: String,
    /// Backend; omitted = `auto`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub port_type: Option<PortType>,
    /// Rx/tx queues (AF_XDP); default 1.
    #[serde(default = "default_queues", skip_serializing_if = "is_one")]
    pub queues: u32,
    /// VLAN settings; omitted = access VLAN 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<VlanSpec>,
    /// How an `afxdp` port attaches its XDP program; omitted = `auto`. Only with `type`
    /// `afxdp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xdp_mode: Option<XdpModeSpec>,
    /// An `afxdp` port's program accepts multi-buffer frames (`BPF_F_XDP_HAS_FRAGS`): on a
    /// split port the kernel copies each GSO frame into pages instead of one ~64 KiB buffer
    /// (no large atomic allocation; small frames cost the sender a little more). Default
    /// false. Only with `type` `afxdp`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub xdp_frags: bool,
    /// Most addresses the MAC table learns on this port (0: only the table's capacity);
    /// omitted = the daemon's default (`[mac] port_max`). A new address beyond it is not
    /// learned until one of the port's ages out or is flushed (frames to it flood).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_max: Option<u32>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl PortAddRequest {
    /// A request for `name` with every default (auto backend, one queue, access VLAN 1).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            port_type: None,
            queues: 1,
            vlan: None,
            xdp_mode: None,
            xdp_frags: false,
            mac_max: None,
        }
    }
}

/// `port_del`: remove a port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortDelRequest {
    /// Port name.
    pub name: String,
}

/// `port_list`, `switch_show`: requests without fields.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmptyRequest {}

/// `port_stats`: counters of one port or of all.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortStatsRequest {
    /// Port name; omitted = every port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `mac_dump`, `mac_flush`: which learned addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MacFilter {
    /// Only this VLAN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    /// Only addresses learned on this port (by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
}

/// `echo`: liveness and ordering round trip; the reply carries `data` back.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EchoRequest {
    /// Opaque data to send back.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub data: String,
}

/// A request (client → server).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Request {
    /// `hello`.
    Hello(HelloRequest),
    /// `port_add`.
    PortAdd(PortAddRequest),
    /// `port_del`.
    PortDel(PortDelRequest),
    /// `port_list`.
    PortList(EmptyRequest),
    /// `port_stats`.
    PortStats(PortStatsRequest),
    /// `mac_dump`.
    MacDump(MacFilter),
    /// `mac_flush`.
    MacFlush(MacFilter),
    /// `switch_show`.
    SwitchShow(EmptyRequest),
    /// `echo`.
    Echo(EchoRequest),
    /// `flow_mod`.
    FlowMod(FlowModRequest),
    /// `flow_dump`.
    FlowDump(FlowFilterRequest),
    /// `flow_aggregate`.
    FlowAggregate(FlowFilterRequest),
    /// `table_stats`.
    TableStats(EmptyRequest),
    /// `barrier`.
    Barrier(EmptyRequest),
    /// `bundle`.
    Bundle(BundleRequest),
    /// `bundle_open`.
    BundleOpen(BundleIdRequest),
    /// `bundle_add`.
    BundleAdd(BundleAddRequest),
    /// `bundle_commit`.
    BundleCommit(BundleIdRequest),
    /// `bundle_discard`.
    BundleDiscard(BundleIdRequest),
    /// `group_mod`.
    GroupMod(GroupModRequest),
    /// `group_dump`.
    GroupDump(GroupDumpRequest),
    /// `meter_mod`.
    MeterMod(MeterModRequest),
    /// `meter_dump`.
    MeterDump(MeterDumpRequest),
    /// `subscribe`.
    Subscribe(SubscribeRequest),
    /// `unsubscribe`.
    Unsubscribe(EmptyRequest),
    /// `packet_out`.
    PacketOut(PacketOutRequest),
}

impl Request {
    /// Every request type name, in documentation order (also the `hello` capabilities).
    pub const TYPES: [&'static str; 26] = [
        "hello",
        "port_add",
        "port_del",
        "port_list",
        "port_stats",
        "mac_dump",
        "mac_flush",
        "switch_show",
        "echo",
        "flow_mod",
        "flow_dump",
        "flow_aggregate",
        "table_stats",
        "barrier",
        "bundle",
        "bundle_open",
        "bundle_add",
        "bundle_commit",
        "bundle_discard",
        "group_mod",
        "group_dump",
        "meter_mod",
        "meter_dump",
        "subscribe",
        "unsubscribe",
        "packet_out",
    ];

    /// The `type` of this request.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Hello(_) => "hello",
            Self::PortAdd(_) => "port_add",
            Self::PortDel(_) => "port_del",
            Self::PortList(_) => "port_list",
            Self::PortStats(_) => "port_stats",
            Self::MacDump(_) => "mac_dump",
            Self::MacFlush(_) => "mac_flush",
            Self::SwitchShow(_) => "switch_show",
            Self::Echo(_) => "echo",
            Self::FlowMod(_) => "flow_mod",
            Self::FlowDump(_) => "flow_dump",
            Self::FlowAggregate(_) => "flow_aggregate",
            Self::TableStats(_) => "table_stats",
            Self::Barrier(_) => "barrier",
            Self::Bundle(_) => "bundle",
            Self::BundleOpen(_) => "bundle_open",
            Self::BundleAdd(_) => "bundle_add",
            Self::BundleCommit(_) => "bundle_commit",
            Self::BundleDiscard(_) => "bundle_discard",
            Self::GroupMod(_) => "group_mod",
            Self::GroupDump(_) => "group_dump",
            Self::MeterMod(_) => "meter_mod",
            Self::MeterDump(_) => "meter_dump",
            Self::Subscribe(_) => "subscribe",
            Self::Unsubscribe(_) => "unsubscribe",
            Self::PacketOut(_) => "packet_out",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------------------------

/// `hello_reply`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloReply {
    /// Protocol versions the server speaks, oldest first.
    pub versions: Vec<u32>,
    /// Daemon name and version (`vswitchd 0.1.0`).
    pub daemon: String,
    /// Request types the server accepts (and, later, feature names).
    pub capabilities: Vec<String>,
    /// Largest frame payload the server accepts and sends.
    pub max_frame_bytes: u64,
}

/// VLAN settings of a port in replies; same shape as [`VlanSpec`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VlanDesc {
    /// Access VLAN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<u16>,
    /// Trunk VLANs (empty = all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trunks: Option<Vec<u16>>,
    /// Native VLAN of a trunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native: Option<u16>,
}

/// A port in replies.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortDesc {
    /// Port number (1-based, stable while the port exists).
    pub id: u32,
    /// Device name.
    pub name: String,
    /// Backend in use: `afxdp`, `tap`, `afpacket` or `mem`.
    #[serde(rename = "type")]
    pub port_type: String,
    /// Queues polled.
    pub queues: u64,
    /// VLAN settings.
    pub vlan: VlanDesc,
    /// Index of the worker that owns the port (its queue 0).
    pub worker: u64,
    /// Worker owning each rx queue (a multi-queue port is split over the workers).
    #[serde(default)]
    pub queue_workers: Vec<u64>,
    /// The device is up and has carrier (the kernel's `IFF_LOWER_UP`; mem ports: always).
    /// Older servers omit it: up.
    #[serde(default = "link_up_default")]
    pub link_up: bool,
    /// `afxdp` ports: how the XDP program is attached, `native`, `generic` or `split` (what
    /// `auto` came to); omitted for other types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xdp_mode: Option<XdpModeSpec>,
    /// `afxdp` ports: the program takes multi-buffer frames (`xdp_frags`); omitted when false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub xdp_frags: bool,
    /// The port's device is gone (deleted): its backend is closed and its link down, until a
    /// device of its name appears in the daemon's namespace again (the port then opens on it);
    /// omitted when false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub device_gone: bool,
    /// The device's MTU, which the port follows (as last read with its link; omitted for a
    /// port that is not a device, and by older servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Most addresses the MAC table learns on the port (0 or omitted: only the table's
    /// capacity).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mac_max: u32,
    /// Addresses learned on the port (older servers omit it).
    #[serde(default)]
    pub mac_entries: u64,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn link_up_default() -> bool {
    true
}

/// `port_add_reply`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortAddReply {
    /// The new port.
    pub port: PortDesc,
}

/// `port_del_reply`: no fields.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmptyReply {}

/// `port_list_reply` (multipart).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortListReply {
    /// Ports, by port number.
    pub ports: Vec<PortDesc>,
    /// More parts follow with the same xid.
    #[serde(default)]
    pub more: bool,
}

/// Counters of one port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStatsDesc {
    /// Port number.
    pub id: u32,
    /// Port name.
    pub name: String,
    /// Frames received.
    pub rx_pkts: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames sent.
    pub tx_pkts: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Frames received larger than 1518 bytes.
    pub rx_jumbo: u64,
    /// Frames sent larger than 1518 bytes.
    pub tx_jumbo: u64,
    /// Receive-side drops, all reasons.
    pub rx_dropped: u64,
    /// Transmit-side drops, all reasons.
    pub tx_dropped: u64,
    /// Receive-side drops by reason name (every reason the daemon knows, zeros included).
    pub rx_drops: BTreeMap<String, u64>,
    /// Transmit-side drops by reason name.
    pub tx_drops: BTreeMap<String, u64>,
}

/// `port_stats_reply` (multipart).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStatsReply {
    /// Counters, by port number.
    pub ports: Vec<PortStatsDesc>,
    /// More parts follow with the same xid.
    #[serde(default)]
    pub more: bool,
}

/// One learned MAC address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MacDesc {
    /// VLAN.
    pub vlan: u16,
    /// Address, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// Port number.
    pub port: u32,
    /// Port name (empty if the port was removed meanwhile).
    pub port_name: String,
    /// Seconds since last seen.
    pub age_secs: u64,
}

/// `mac_dump_reply` (multipart).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MacDumpReply {
    /// Entries, by VLAN then address.
    pub entries: Vec<MacDesc>,
    /// More parts follow with the same xid.
    #[serde(default)]
    pub more: bool,
}

/// `mac_flush_reply`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MacFlushReply {
    /// Entries removed.
    pub flushed: u64,
}

/// Counters of one worker.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerDesc {
    /// Worker index.
    pub worker: u64,
    /// CPU it is pinned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<u64>,
    /// Non-empty rx bursts processed.
    pub batches: u64,
    /// Frames processed.
    pub frames: u64,
    /// Times it slept waiting for rx readiness.
    pub sleeps: u64,
    /// Frames for another worker's port dropped (hand-off channel full, port gone).
    #[serde(default)]
    pub handoff_drops: u64,
    /// Source addresses not learned because the MAC table was full (and no address could be
    /// evicted for them).
    #[serde(default)]
    pub mac_learn_full: u64,
    /// Source addresses not learned because their port held its bound of addresses.
    #[serde(default)]
    pub mac_learn_port_full: u64,
    /// Flow cache counters.
    #[serde(default)]
    pub cache: CacheDesc,
    /// Packet-ins queued for controllers.
    #[serde(default)]
    pub packet_ins: u64,
    /// Packet-ins dropped (queue to the control thread full).
    #[serde(default)]
    pub packet_in_drops: u64,
    /// Packet-outs run.
    #[serde(default)]
    pub packet_outs: u64,
    /// Packet-outs dropped.
    #[serde(default)]
    pub packet_out_drops: u64,
    /// Nanoseconds spent on passes that had work: the worker's load, which busy polling hides
    /// from `top` (two readings a time apart give its busy share). 0 for inline workers.
    #[serde(default)]
    pub busy_ns: u64,
    /// Receive batches that came back full (64 frames): the frames taken while the worker
    /// was behind are at most 64 × this; the rest came in batches as they arrived.
    #[serde(default)]
    pub full_batches: u64,
    /// Nanoseconds of `busy_ns` spent in the ports' transmit flushes (for AF_XDP the
    /// `sendto` kicks, where the kernel runs its copy-mode transmit and the receiving side's
    /// stack); `busy_ns - flush_ns` is the worker's own work. 0 for inline workers.
    #[serde(default)]
    pub flush_ns: u64,
    /// Batch holds: passes after which the worker waited (the switch's `batch_hold_ns`)
    /// before polling again, so that its next receive batch would be bigger.
    #[serde(default)]
    pub holds: u64,
    /// Receive batches looked up in stages (after a batch of many flows: every frame's key
    /// parsed and hashed first, the cache lines the lookups need loaded for all of them at
    /// once).
    #[serde(default)]
    pub staged_batches: u64,
    /// Receive polls that failed (a port's device gone or down; no frame lost by them).
    #[serde(default)]
    pub rx_errors: u64,
}

/// Flow cache counters of one worker.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheDesc {
    /// Exact-match cache hits.
    #[serde(default)]
    pub emc_hits: u64,
    /// Frames that shared the lookup of the frame before them (one run of a batch).
    #[serde(default)]
    pub run_hits: u64,
    /// Megaflow cache hits.
    #[serde(default)]
    pub megaflow_hits: u64,
    /// Lookups that missed both caches.
    #[serde(default)]
    pub misses: u64,
    /// Translations through the flow tables installed in the cache.
    #[serde(default)]
    pub upcalls: u64,
    /// Frames dropped because a batch's upcall budget was spent.
    #[serde(default)]
    pub upcall_drops: u64,
    /// Entries evicted for room.
    #[serde(default)]
    pub evictions: u64,
    /// Entries removed as idle.
    #[serde(default)]
    pub expired: u64,
    /// Entries re-translated after flow table changes.
    #[serde(default)]
    pub revalidated: u64,
    /// Whole-cache flushes.
    #[serde(default)]
    pub flushes: u64,
    /// Megaflow entries held.
    #[serde(default)]
    pub entries: u64,
}

/// `switch_show_reply`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchShowReply {
    /// Number of workers.
    pub workers: u64,
    /// CPUs the workers are pinned to (empty = not pinned).
    pub cpus: Vec<u64>,
    /// `busy` or `adaptive`.
    pub poll_mode: String,
    /// How long a worker waits after a pass that forwarded a few frames before it polls
    /// again, in nanoseconds (0: it does not).
    #[serde(default)]
    pub batch_hold_ns: u64,
    /// MAC table capacity.
    pub mac_table_max: u64,
    /// MAC entries in use.
    pub mac_entries: u64,
    /// MAC aging time, seconds.
    pub mac_aging_secs: u64,
    /// MAC moves since start.
    pub mac_moves: u64,
    /// Addresses evicted from the full MAC table, since start, to learn new ones (each an
    /// address of the port with the most).
    #[serde(default)]
    pub mac_evictions: u64,
    /// Default bound of addresses learned per port (0: none but the table's capacity).
    #[serde(default)]
    pub mac_port_max: u64,
    /// Ports, by port number.
    pub ports: Vec<PortDesc>,
    /// Per-worker counters.
    pub worker_stats: Vec<WorkerDesc>,
    /// Flow-removed and port-status events the switch dropped because its event queue was
    /// full (before any session saw them).
    #[serde(default)]
    pub event_drops: u64,
}

/// `echo_reply`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EchoReply {
    /// The request's data.
    #[serde(default)]
    pub data: String,
}

/// A reply (server → client). `Error` answers any request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Reply {
    /// `hello_reply`.
    Hello(HelloReply),
    /// `port_add_reply`.
    PortAdd(PortAddReply),
    /// `port_del_reply`.
    PortDel(EmptyReply),
    /// `port_list_reply`.
    PortList(PortListReply),
    /// `port_stats_reply`.
    PortStats(PortStatsReply),
    /// `mac_dump_reply`.
    MacDump(MacDumpReply),
    /// `mac_flush_reply`.
    MacFlush(MacFlushReply),
    /// `switch_show_reply`.
    SwitchShow(SwitchShowReply),
    /// `echo_reply`.
    Echo(EchoReply),
    /// `flow_mod_reply`.
    FlowMod(FlowModReply),
    /// `flow_dump_reply`.
    FlowDump(FlowDumpReply),
    /// `flow_aggregate_reply`.
    FlowAggregate(FlowAggregateReply),
    /// `table_stats_reply`.
    TableStats(TableStatsReply),
    /// `barrier_reply`.
    Barrier(EmptyReply),
    /// `bundle_reply`.
    Bundle(BundleReply),
    /// `bundle_open_reply`.
    BundleOpen(EmptyReply),
    /// `bundle_add_reply`.
    BundleAdd(BundleAddReply),
    /// `bundle_commit_reply` (same fields as `bundle_reply`).
    BundleCommit(BundleReply),
    /// `bundle_discard_reply`.
    BundleDiscard(EmptyReply),
    /// `group_mod_reply`.
    GroupMod(GroupModReply),
    /// `group_dump_reply`.
    GroupDump(GroupDumpReply),
    /// `meter_mod_reply`.
    MeterMod(MeterModReply),
    /// `meter_dump_reply`.
    MeterDump(MeterDumpReply),
    /// `subscribe_reply`.
    Subscribe(SubscribeReply),
    /// `unsubscribe_reply`.
    Unsubscribe(SubscribeReply),
    /// `packet_out_reply`.
    PacketOut(EmptyReply),
    /// `error`.
    Error(ErrorReply),
}

impl Reply {
    /// The `type` of this reply.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Hello(_) => "hello_reply",
            Self::PortAdd(_) => "port_add_reply",
            Self::PortDel(_) => "port_del_reply",
            Self::PortList(_) => "port_list_reply",
            Self::PortStats(_) => "port_stats_reply",
            Self::MacDump(_) => "mac_dump_reply",
            Self::MacFlush(_) => "mac_flush_reply",
            Self::SwitchShow(_) => "switch_show_reply",
            Self::Echo(_) => "echo_reply",
            Self::FlowMod(_) => "flow_mod_reply",
            Self::FlowDump(_) => "flow_dump_reply",
            Self::FlowAggregate(_) => "flow_aggregate_reply",
            Self::TableStats(_) => "table_stats_reply",
            Self::Barrier(_) => "barrier_reply",
            Self::Bundle(_) => "bundle_reply",
            Self::BundleOpen(_) => "bundle_open_reply",
            Self::BundleAdd(_) => "bundle_add_reply",
            Self::BundleCommit(_) => "bundle_commit_reply",
            Self::BundleDiscard(_) => "bundle_discard_reply",
            Self::GroupMod(_) => "group_mod_reply",
            Self::GroupDump(_) => "group_dump_reply",
            Self::MeterMod(_) => "meter_mod_reply",
            Self::MeterDump(_) => "meter_dump_reply",
            Self::Subscribe(_) => "subscribe_reply",
            Self::Unsubscribe(_) => "unsubscribe_reply",
            Self::PacketOut(_) => "packet_out_reply",
            Self::Error(_) => "error",
        }
    }

    /// Whether this is the successful reply type of `request` (`<request type>_reply`).
    pub fn answers(&self, request: &Request) -> bool {
        self.type_name().strip_suffix("_reply") == Some(request.type_name())
    }

    /// Whether more parts of this (multipart) reply follow.
    pub fn more(&self) -> bool {
        match self {
            Self::PortList(r) => r.more,
            Self::PortStats(r) => r.more,
            Self::MacDump(r) => r.more,
            Self::FlowDump(r) => r.more,
            Self::GroupDump(r) => r.more,
            Self::MeterDump(r) => r.more,
            _ => false,
        }
    }

    /// Appends the entries of the next part `next` of a multipart reply to `self` and takes its
    /// `more` flag. Returns `next` back if it is not a part of the same kind of reply.
    ///
    /// # Errors
    /// `next` is of another type; it is returned unchanged.
    pub fn merge(&mut self, next: Self) -> Result<(), Box<Self>> {
        match (self, next) {
            (Self::PortList(a), Self::PortList(b)) => {
                a.ports.extend(b.ports);
                a.more = b.more;
            }
            (Self::PortStats(a), Self::PortStats(b)) => {
                a.ports.extend(b.ports);
                a.more = b.more;
            }
            (Self::MacDump(a), Self::MacDump(b)) => {
                a.entries.extend(b.entries);
                a.more = b.more;
            }
            (Self::FlowDump(a), Self::FlowDump(b)) => {
                a.flows.extend(b.flows);
                a.more = b.more;
            }
            (Self::GroupDump(a), Self::GroupDump(b)) => {
                a.groups.extend(b.groups);
                a.more = b.more;
            }
            (Self::MeterDump(a), Self::MeterDump(b)) => {
                a.meters.extend(b.meters);
                a.more = b.more;
            }
            (_, next) => return Err(Box::new(next)),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::XdpModeSpec;
    use datapath::port::PortKind;
    use datapath::port::afxdp::XdpMode;

    #[test]
    fn afxdp_options_are_for_afxdp_ports_and_name_the_option_otherwise() {
        let afxdp = Some(PortKind::AfXdp);
        assert_eq!(XdpModeSpec::for_port(None, false, afxdp), Ok(None));
        assert_eq!(
            XdpModeSpec::for_port(Some(XdpModeSpec::Auto), true, afxdp),
            Ok(None)
        );
        assert_eq!(
            XdpModeSpec::for_port(Some(XdpModeSpec::Split), false, afxdp),
            Ok(Some(XdpMode::Split))
        );
        for kind in [None, Some(PortKind::Tap), Some(PortKind::AfPacket)] {
            assert_eq!(XdpModeSpec::for_port(None, false, kind), Ok(None));
            assert_eq!(
                XdpModeSpec::for_port(Some(XdpModeSpec::Auto), false, kind),
                Err("xdp_mode"),
                "{kind:?}"
            );
            assert_eq!(XdpModeSpec::for_port(None, true, kind), Err("xdp_frags"));
            assert_eq!(
                XdpModeSpec::for_port(Some(XdpModeSpec::Native), true, kind),
                Err("xdp_mode"),
                "the mode is named first"
            );
        }
    }
}
