//! Requests → [`Switch`] calls → replies. Validation happens here, before anything is changed,
//! so a request that fails leaves the switch as it was.

use datapath::port::{PortError, PortKind};
use datapath::stats::{DropReason, PortCountersSnapshot};
use datapath::switch::{
    MacEntry, PollMode, PortInfo, PortSpec, Switch, SwitchError, SwitchInfo, VLAN_MAX, VLAN_MIN,
    VlanMode, WorkerStats,
};

use std::time::Instant;

use crate::proto::codec::quote;
use crate::proto::{
    BundleReply, CacheDesc, FlowAggregateReply, FlowDesc, FlowDumpReply, FlowModReply,
    MAX_BUNDLE_OPS, PathMap, TableStatsDesc, TableStatsReply,
};
use crate::proto::{
    EchoReply, EmptyReply, ErrorCode, HelloReply, MacDesc, MacDumpReply, MacFilter, MacFlushReply,
    PortAddReply, PortAddRequest, PortDesc, PortListReply, PortStatsDesc, PortStatsReply, PortType,
    ProtoError, Reply, Request, SUPPORTED_VERSIONS, SwitchShowReply, VERSION, VlanDesc, VlanSpec,
    WorkerDesc, XdpModeSpec,
};
use crate::proto::{
    GroupDesc, GroupDumpReply, GroupModReply, MeterDesc, MeterDumpReply, MeterModReply,
    group_meter_error,
};
use crate::proto::{
    MAX_PACKET_OUT_LEN, MIN_PACKET_OUT_LEN, PacketOutRequest, action_from_desc, hex_decode,
};
use datapath::switch::PacketOutError;

/// Most queues a port may ask for.
pub(crate) const MAX_QUEUES: u32 = 64;
/// Longest device name (IFNAMSIZ - 1).
pub(crate) const MAX_NAME_LEN: usize = 15;
/// Ports per part of `port_list_reply` / `port_stats_reply`.
pub(crate) const PORTS_PER_PART: usize = 256;
/// Entries per part of `mac_dump_reply`.
pub(crate) const MACS_PER_PART: usize = 1024;
/// Most flows per part of `flow_dump_reply` (parts are also bounded in bytes).
pub(crate) const FLOWS_PER_PART: usize = 1000;
/// Most groups per part of `group_dump_reply` (parts are also bounded in bytes).
pub(crate) const GROUPS_PER_PART: usize = 256;
/// Most meters per part of `meter_dump_reply` (parts are also bounded in bytes).
pub(crate) const METERS_PER_PART: usize = 1024;
/// Bytes of a frame kept free for the envelope of a dump reply part.
const ENVELOPE_SLACK: usize = 1024;

/// Turns requests into switch operations.
#[derive(Debug)]
pub(crate) struct Handler {
    /// Daemon name and version for `hello`.
    pub(crate) daemon: String,
    /// Largest frame payload, announced in `hello`.
    pub(crate) max_frame_bytes: usize,
}

impl Handler {
    /// Runs one request. A multipart reply is returned as several parts (the last has
    /// `more = false`), or for the dumps of flows, groups and meters as a [`Dump`] that gives
    /// its parts one by one; any other reply is one element.
    pub(crate) fn handle(
        &self,
        switch: &mut Switch,
        request: Request,
    ) -> Result<Answer, ProtoError> {
        Ok(Answer::Now(match request {
            Request::Hello(h) => {
                if !h.versions.is_empty() && !h.versions.contains(&VERSION) {
                    return Err(ProtoError::field(
                        ErrorCode::BadVersion,
                        "body.versions",
                        format!("no common protocol version (server speaks {VERSION})"),
                    ));
                }
                vec![Reply::Hello(HelloReply {
                    versions: SUPPORTED_VERSIONS.to_vec(),
                    daemon: self.daemon.clone(),
                    capabilities: Request::TYPES.iter().map(|t| (*t).to_owned()).collect(),
                    max_frame_bytes: self.max_frame_bytes as u64,
                })]
            }
            Request::PortAdd(req) => {
                let spec = port_spec(req)?;
                let info = switch
                    .add_port(spec)
                    .map_err(|e| switch_error(e, "body.name"))?;
                vec![Reply::PortAdd(PortAddReply {
                    port: port_desc(&info),
                })]
            }
            Request::PortDel(req) => {
                check_name("body.name", &req.name)?;
                switch
                    .del_port(&req.name)
                    .map_err(|e| switch_error(e, "body.name"))?;
                vec![Reply::PortDel(EmptyReply {})]
            }
            Request::PortList(_) => {
                // Links as they are now: a device in another namespace (a tap moved into its
                // container) is otherwise seen by housekeeping's poll only, within a second.
                switch.refresh_links();
                let ports: Vec<PortDesc> = switch.ports().iter().map(port_desc).collect();
                parts(ports, PORTS_PER_PART, |ports, more| {
                    Reply::PortList(PortListReply { ports, more })
                })
            }
            Request::PortStats(req) => {
                if let Some(name) = &req.name {
                    check_name("body.name", name)?;
                }
                switch.refresh_links();
                let stats = switch
                    .port_stats(req.name.as_deref())
                    .map_err(|e| switch_error(e, "body.name"))?;
                let ports: Vec<PortStatsDesc> = stats
                    .iter()
                    .map(|(info, counters)| port_stats_desc(info, counters))
                    .collect();
                parts(ports, PORTS_PER_PART, |ports, more| {
                    Reply::PortStats(PortStatsReply { ports, more })
                })
            }
            Request::MacDump(filter) => {
                check_filter(&filter)?;
                let ports = switch.ports();
                let port_id = match &filter.port {
                    Some(name) => Some(
                        ports
                            .iter()
                            .find(|p| &p.name == name)
                            .map(|p| p.id)
                            .ok_or_else(|| no_such_port("body.port", name))?,
                    ),
                    None => None,
                };
                let mut entries: Vec<MacDesc> = switch
                    .mac_table()
                    .iter()
                    .filter(|e| filter.vlan.is_none_or(|v| v == e.vlan))
                    .filter(|e| port_id.is_none_or(|id| id == e.port))
                    .map(|e| mac_desc(e, &ports))
                    .collect();
                entries.sort_by(|a, b| (a.vlan, &a.mac).cmp(&(b.vlan, &b.mac)));
                parts(entries, MACS_PER_PART, |entries, more| {
                    Reply::MacDump(MacDumpReply { entries, more })
                })
            }
            Request::MacFlush(filter) => {
                check_filter(&filter)?;
                let flushed = switch
                    .flush_macs(filter.vlan, filter.port.as_deref())
                    .map_err(|e| switch_error(e, "body.port"))?;
                vec![Reply::MacFlush(MacFlushReply {
                    flushed: flushed as u64,
                })]
            }
            Request::SwitchShow(_) => {
                switch.refresh_links();
                let info = switch.info();
                let workers = switch.worker_stats();
                let mut reply = switch_show(&info, &workers);
                reply.event_drops = switch.event_drops();
                vec![Reply::SwitchShow(reply)]
            }
            Request::Echo(req) => vec![Reply::Echo(EchoReply { data: req.data })],
            Request::FlowMod(req) => {
                let (fm, map) = req.to_flow_mod("body")?;
                let r = switch.flow_mod(&fm).map_err(|e| map.error(&e))?;
                vec![Reply::FlowMod(FlowModReply {
                    added: r.added as u64,
                    modified: r.modified as u64,
                    removed: r.removed.len() as u64,
                })]
            }
            Request::FlowDump(req) => {
                let filter = req.to_filter("body")?;
                let flows = switch
                    .dump_flows(&filter)
                    .map_err(|e| PathMap::new("body").error(&e))?;
                let ids = flows.iter().map(|f| (f.table, f.id)).collect();
                return Ok(Answer::Dump(self.dump(DumpItems::Flows(ids))));
            }
            Request::FlowAggregate(req) => {
                let filter = req.to_filter("body")?;
                let flows = switch
                    .dump_flows(&filter)
                    .map_err(|e| PathMap::new("body").error(&e))?;
                let (packets, bytes) = flows.iter().fold((0u64, 0u64), |(p, b), f| {
                    let (fp, fb) = f.stats.totals();
                    (p.wrapping_add(fp), b.wrapping_add(fb))
                });
                vec![Reply::FlowAggregate(FlowAggregateReply {
                    flows: flows.len() as u64,
                    packets,
                    bytes,
                })]
            }
            Request::TableStats(_) => {
                let tables = switch
                    .table_stats()
                    .into_iter()
                    .map(|t| TableStatsDesc {
                        table: t.table,
                        active: t.active as u64,
                        subtables: t.subtables as u64,
                        lookups: t.lookups,
                        matched: t.matched,
                    })
                    .collect();
                vec![Reply::TableStats(TableStatsReply {
                    tables,
                    max_flows_per_table: switch.pipeline().max_flows_per_table() as u64,
                })]
            }
            Request::Barrier(_) => {
                switch.barrier().map_err(|e| switch_error(e, "body"))?;
                vec![Reply::Barrier(EmptyReply {})]
            }
            Request::Bundle(req) => {
                if req.ops.len() > MAX_BUNDLE_OPS {
                    return Err(ProtoError::field(
                        ErrorCode::Limit,
                        "body.ops",
                        format!("{} ops in one bundle (max {MAX_BUNDLE_OPS})", req.ops.len()),
                    ));
                }
                let mut ops = Vec::with_capacity(req.ops.len());
                let mut maps = Vec::with_capacity(req.ops.len());
                for (i, op) in req.ops.iter().enumerate() {
                    let (op, map) = op.to_bundle_op(&format!("body.ops[{i}]"))?;
                    ops.push(op);
                    maps.push(map);
                }
                let results = switch.bundle_ops(&ops).map_err(|(i, e)| {
                    let map = maps.into_iter().nth(i).unwrap_or_default();
                    map.error(&format!("body.ops[{i}]"), &e)
                })?;
                let reply = BundleReply::from_results(&results);
                vec![Reply::Bundle(reply)]
            }
            Request::GroupMod(req) => {
                let gm = req.to_group_mod("body")?;
                let removed = switch
                    .group_mod(&gm)
                    .map_err(|e| group_meter_error(&e, "body"))?;
                vec![Reply::GroupMod(GroupModReply {
                    removed_flows: removed.len() as u64,
                })]
            }
            Request::GroupDump(req) => {
                let pipeline = switch.pipeline();
                let groups: Vec<u32> = match req.group_id {
                    Some(id) => pipeline.group(id).map(|g| g.id).into_iter().collect(),
                    None => {
                        let mut all: Vec<u32> = pipeline.groups().keys().copied().collect();
                        all.sort_unstable();
                        all
                    }
                };
                return Ok(Answer::Dump(self.dump(DumpItems::Groups(groups))));
            }
            Request::MeterMod(req) => {
                let mm = req.to_meter_mod("body")?;
                let removed = switch
                    .meter_mod(&mm)
                    .map_err(|e| group_meter_error(&e, "body"))?;
                vec![Reply::MeterMod(MeterModReply {
                    removed_flows: removed.len() as u64,
                })]
            }
            Request::MeterDump(req) => {
                let pipeline = switch.pipeline();
                let meters: Vec<u32> = match req.meter_id {
                    Some(id) => pipeline.meter(id).map(|m| m.id).into_iter().collect(),
                    None => {
                        let mut all: Vec<u32> = pipeline.meters().keys().copied().collect();
                        all.sort_unstable();
                        all
                    }
                };
                return Ok(Answer::Dump(self.dump(DumpItems::Meters(meters))));
            }
            Request::PacketOut(req) => {
                packet_out(switch, req)?;
                vec![Reply::PacketOut(EmptyReply {})]
            }
            Request::Subscribe(_)
            | Request::Unsubscribe(_)
            | Request::BundleOpen(_)
            | Request::BundleAdd(_)
            | Request::BundleCommit(_)
            | Request::BundleDiscard(_) => {
                // Per-session state: the server owns the sessions and answers these itself.
                return Err(ProtoError::new(
                    ErrorCode::Internal,
                    "subscriptions and multi-message bundles are handled by the server",
                ));
            }
        }))
    }

    fn dump(&self, items: DumpItems) -> Dump {
        Dump {
            items,
            next: 0,
            budget: self.max_frame_bytes.saturating_sub(ENVELOPE_SLACK),
            finished: false,
        }
    }
}

/// What [`Handler::handle`] answers.
#[derive(Debug)]
pub(crate) enum Answer {
    /// The reply (several parts for a multipart reply, in order).
    Now(Vec<Reply>),
    /// A dump whose parts are encoded one at a time, as the client reads them.
    Dump(Dump),
}

/// A multipart dump in progress: the ids of the dumped objects, in order, taken when the
/// request ran (16 bytes a flow, 4 a group or meter: not the objects, which a dump that is
/// not read would otherwise keep alive after the tables change), whose parts are encoded one
/// at a time ([`Dump::next_part`]) from the objects as they are then. The server encodes the
/// next part only when the session's send queue is nearly empty, so a session that asks for a
/// dump and does not read holds a part or two of JSON, not the whole tables, and one large
/// dump does not hold up the control loop. An object removed before its part is encoded is
/// left out; one added after the request is not in the dump.
#[derive(Debug)]
pub(crate) struct Dump {
    items: DumpItems,
    /// The first item of the next part.
    next: usize,
    /// Most bytes of JSON items per part.
    budget: usize,
    /// The last part has been taken.
    finished: bool,
}

/// The objects of a [`Dump`].
#[derive(Debug)]
enum DumpItems {
    /// (table, flow id).
    Flows(Vec<(u8, u64)>),
    Groups(Vec<u32>),
    Meters(Vec<u32>),
}

impl Dump {
    /// The next part (`more` is false in the last one, which an empty dump also has).
    pub(crate) fn next_part(&mut self, switch: &Switch) -> Reply {
        let (next, budget) = (&mut self.next, self.budget);
        let reply = match &self.items {
            DumpItems::Flows(flows) => {
                let (clock, now) = (switch.clock_ms(), Instant::now());
                let p = switch.pipeline();
                let (flows, more) = take_part(flows, next, FLOWS_PER_PART, budget, |&(t, id)| {
                    let f = p.table(t).flow(id)?;
                    Some(FlowDesc::from_flow(f, clock, now))
                });
                Reply::FlowDump(FlowDumpReply { flows, more })
            }
            DumpItems::Groups(groups) => {
                let p = switch.pipeline();
                let (groups, more) = take_part(groups, next, GROUPS_PER_PART, budget, |&id| {
                    p.group(id).map(|g| GroupDesc::from_group(g))
                });
                Reply::GroupDump(GroupDumpReply { groups, more })
            }
            DumpItems::Meters(meters) => {
                let p = switch.pipeline();
                let (meters, more) = take_part(meters, next, METERS_PER_PART, budget, |&id| {
                    p.meter(id).map(|m| MeterDesc::from_meter(m))
                });
                Reply::MeterDump(MeterDumpReply { meters, more })
            }
        };
        self.finished = !reply.more();
        reply
    }

    /// The last part has been taken.
    pub(crate) fn finished(&self) -> bool {
        self.finished
    }
}

/// Validates and injects a `packet_out`; nothing is sent when it fails.
fn packet_out(switch: &mut Switch, req: PacketOutRequest) -> Result<(), ProtoError> {
    let data = hex_decode(&req.data)
        .map_err(|e| ProtoError::bad_field("body.data", format!("not a hex frame: {e}")))?;
    if !(MIN_PACKET_OUT_LEN..=MAX_PACKET_OUT_LEN).contains(&data.len()) {
        return Err(ProtoError::bad_field(
            "body.data",
            format!(
                "frame of {} bytes outside {MIN_PACKET_OUT_LEN}..={MAX_PACKET_OUT_LEN}",
                data.len()
            ),
        ));
    }
    let actions = req
        .actions
        .as_ref()
        .map(|list| {
            list.iter()
                .enumerate()
                .map(|(i, a)| action_from_desc(a, &format!("body.actions[{i}]")))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    switch
        .packet_out(req.in_port, data, actions)
        .map_err(packet_out_error)
}

/// The protocol error of a refused packet-out.
fn packet_out_error(e: PacketOutError) -> ProtoError {
    let message = e.to_string();
    match e {
        PacketOutError::Frame(_) => ProtoError::bad_field("body.data", message),
        PacketOutError::NoSuchPort(_) => {
            ProtoError::field(ErrorCode::NotFound, "body.in_port", message)
        }
        PacketOutError::Actions(fe) => {
            // Datapath locations are those of an apply list (`instructions.apply[1]`).
            let mut pe = PathMap::new("body").error(&fe);
            if let Some(f) = pe.field.take() {
                pe.field = Some(match f.strip_prefix("body.instructions.apply") {
                    Some(rest) => format!("body.actions{rest}"),
                    None if f.starts_with("body.instructions") => "body.actions".to_owned(),
                    None => f,
                });
            }
            pe
        }
        PacketOutError::Switch(se) => switch_error(se, "body.in_port"),
    }
}

/// Converts the items from `*next` on into one reply part of at most `per_part` items and at
/// most `budget` bytes of JSON (the frame limit minus room for the envelope), and moves `*next`
/// past them; also says whether items are left. Items `desc` has nothing for (gone since) are
/// skipped. A single item too big for a frame gets a part of its own (which then becomes a
/// `limit` error).
fn take_part<K, T: serde::Serialize>(
    items: &[K],
    next: &mut usize,
    per_part: usize,
    budget: usize,
    desc: impl Fn(&K) -> Option<T>,
) -> (Vec<T>, bool) {
    let mut part = Vec::new();
    let mut bytes = 0usize;
    while let Some(item) = items.get(*next) {
        let Some(d) = desc(item) else {
            *next += 1;
            continue;
        };
        let len = json_len(&d) + 1;
        if !part.is_empty() && (part.len() >= per_part || bytes + len > budget) {
            break;
        }
        bytes += len;
        part.push(d);
        *next += 1;
    }
    (part, *next < items.len())
}

/// Bytes of `v`'s JSON (counted, not kept).
fn json_len<T: serde::Serialize>(v: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    serde_json::to_writer(&mut c, v).map_or(0, |()| c.0)
}

/// Splits `items` into parts of at most `per_part`; an empty list is one empty part.
fn parts<T>(items: Vec<T>, per_part: usize, make: impl Fn(Vec<T>, bool) -> Reply) -> Vec<Reply> {
    if items.len() <= per_part {
        return vec![make(items, false)];
    }
    let total = items.len().div_ceil(per_part);
    let mut out = Vec::with_capacity(total);
    let mut items = items.into_iter();
    for i in 0..total {
        let chunk: Vec<T> = items.by_ref().take(per_part).collect();
        out.push(make(chunk, i + 1 < total));
    }
    out
}

fn no_such_port(field: &str, name: &str) -> ProtoError {
    ProtoError::field(
        ErrorCode::NotFound,
        field,
        format!("no port named {}", quote(name)),
    )
}

/// Device names as Linux accepts them.
fn check_name(field: &str, name: &str) -> Result<(), ProtoError> {
    let bad = |why: &str| {
        Err(ProtoError::bad_field(
            field,
            format!("invalid port name: {why}"),
        ))
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad(&format!("longer than {MAX_NAME_LEN} bytes"));
    }
    if name == "." || name == ".." {
        return bad("`.` and `..` are reserved");
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return bad("contains `/`, `:`, whitespace or a control character");
    }
    Ok(())
}

fn check_vlan(field: &str, vlan: u16) -> Result<u16, ProtoError> {
    if (VLAN_MIN..=VLAN_MAX).contains(&vlan) {
        Ok(vlan)
    } else {
        Err(ProtoError::bad_field(
            field,
            format!("VLAN {vlan} outside {VLAN_MIN}..={VLAN_MAX}"),
        ))
    }
}

fn check_filter(filter: &MacFilter) -> Result<(), ProtoError> {
    if let Some(v) = filter.vlan {
        check_vlan("body.vlan", v)?;
    }
    if let Some(name) = &filter.port {
        check_name("body.port", name)?;
    }
    Ok(())
}

fn vlan_mode(spec: Option<VlanSpec>) -> Result<VlanMode, ProtoError> {
    let Some(spec) = spec else {
        return Ok(VlanMode::default());
    };
    let mode = match (spec.access, spec.trunks) {
        (Some(_), Some(_)) => {
            return Err(ProtoError::bad_field(
                "body.vlan",
                "`access` and `trunks` exclude each other",
            ));
        }
        (None, None) => {
            return Err(ProtoError::bad_field(
                "body.vlan",
                "expected `access` or `trunks`",
            ));
        }
        (Some(vlan), None) => {
            if spec.native.is_some() {
                return Err(ProtoError::bad_field(
                    "body.vlan.native",
                    "`native` applies to trunks only",
                ));
            }
            VlanMode::Access {
                vlan: check_vlan("body.vlan.access", vlan)?,
            }
        }
        (None, Some(trunks)) => {
            for (i, v) in trunks.iter().enumerate() {
                check_vlan(&format!("body.vlan.trunks[{i}]"), *v)?;
            }
            let native = spec
                .native
                .map(|n| check_vlan("body.vlan.native", n))
                .transpose()?;
            VlanMode::Trunk {
                allowed: trunks,
                native,
            }
        }
    };
    mode.validated().map_err(|e| switch_error(e, "body.name"))
}

fn port_spec(req: PortAddRequest) -> Result<PortSpec, ProtoError> {
    check_name("body.name", &req.name)?;
    if !(1..=MAX_QUEUES).contains(&req.queues) {
        return Err(ProtoError::bad_field(
            "body.queues",
            format!("queues {} outside 1..={MAX_QUEUES}", req.queues),
        ));
    }
    let kind = match req.port_type.unwrap_or_default() {
        PortType::Auto => None,
        PortType::Afxdp => Some(PortKind::AfXdp),
        PortType::Tap => Some(PortKind::Tap),
        PortType::Afpacket => Some(PortKind::AfPacket),
    };
    let xdp_mode = XdpModeSpec::for_port(req.xdp_mode, req.xdp_frags, kind).map_err(|field| {
        ProtoError::bad_field(format!("body.{field}"), format!("{field} needs type afxdp"))
    })?;
    Ok(PortSpec {
        name: req.name,
        kind,
        queues: usize::try_from(req.queues).unwrap_or(1),
        vlan: vlan_mode(req.vlan)?,
        xdp_mode,
        xdp_frags: req.xdp_frags,
        mac_max: req.mac_max,
    })
}

/// The protocol path of a datapath field name.
fn field_path(field: &str) -> String {
    match field {
        "vlan" => "body.vlan.access".to_owned(),
        "trunks" => "body.vlan.trunks".to_owned(),
        "native_vlan" => "body.vlan.native".to_owned(),
        other => format!("body.{other}"),
    }
}

/// Maps a switch error to a protocol error; `name_field` is where the request named the port.
pub(crate) fn switch_error(e: SwitchError, name_field: &str) -> ProtoError {
    let message = e.to_string();
    match e {
        SwitchError::PortExists { .. } => ProtoError::field(ErrorCode::Exists, name_field, message),
        SwitchError::NoSuchPort { .. } => {
            ProtoError::field(ErrorCode::NotFound, name_field, message)
        }
        SwitchError::TooManyPorts { .. } => ProtoError::new(ErrorCode::Limit, message),
        SwitchError::Invalid { field, .. } => ProtoError::bad_field(field_path(field), message),
        SwitchError::Port(p) => match p {
            PortError::Invalid { field, .. } => ProtoError::bad_field(field_path(field), message),
            PortError::Unsupported { .. } => {
                ProtoError::field(ErrorCode::PortFailed, "body.type", message)
            }
            PortError::NoDevice { .. } | PortError::Sys { .. } => {
                ProtoError::field(ErrorCode::PortFailed, name_field, message)
            }
        },
        SwitchError::WorkerGone { .. } | SwitchError::Spawn { .. } => {
            ProtoError::new(ErrorCode::Internal, message)
        }
    }
}

fn vlan_desc(mode: &VlanMode) -> VlanDesc {
    match mode {
        VlanMode::Access { vlan } => VlanDesc {
            access: Some(*vlan),
            ..VlanDesc::default()
        },
        VlanMode::Trunk { allowed, native } => VlanDesc {
            access: None,
            trunks: Some(allowed.clone()),
            native: *native,
        },
    }
}

pub(crate) fn port_desc(info: &PortInfo) -> PortDesc {
    PortDesc {
        id: info.id,
        name: info.name.clone(),
        port_type: info.kind.as_str().to_owned(),
        queues: info.queues as u64,
        vlan: vlan_desc(&info.vlan),
        worker: info.worker as u64,
        queue_workers: info.queue_workers.iter().map(|w| *w as u64).collect(),
        link_up: info.link_up,
        xdp_mode: info.xdp.map(|x| XdpModeSpec::of(x.mode)),
        xdp_frags: info.xdp.is_some_and(|x| x.frags),
        device_gone: info.device_gone,
        mtu: info.mtu,
        mac_max: info.mac_max,
        mac_entries: info.mac_entries as u64,
    }
}

fn drops(counts: &[u64; DropReason::COUNT]) -> std::collections::BTreeMap<String, u64> {
    DropReason::ALL
        .iter()
        .map(|r| (r.as_str().to_owned(), counts[*r as usize]))
        .collect()
}

/// The receive drops a user sees: the datapath's by reason, and the backend's own (kernel
/// rings full, socket drops: read from the kernel every few passes, counted apart in the
/// datapath) under reason `backend`.
fn reported_rx_drops(c: &PortCountersSnapshot) -> [u64; DropReason::COUNT] {
    let mut rx = c.rx_drops;
    rx[DropReason::Backend as usize] += c.backend_drops;
    rx
}

fn port_stats_desc(info: &PortInfo, c: &PortCountersSnapshot) -> PortStatsDesc {
    let rx = reported_rx_drops(c);
    PortStatsDesc {
        id: info.id,
        name: info.name.clone(),
        rx_pkts: c.rx_pkts,
        rx_bytes: c.rx_bytes,
        tx_pkts: c.tx_pkts,
        tx_bytes: c.tx_bytes,
        rx_jumbo: c.rx_jumbo,
        tx_jumbo: c.tx_jumbo,
        rx_dropped: rx.iter().sum(),
        tx_dropped: c.tx_dropped(),
        rx_drops: drops(&rx),
        tx_drops: drops(&c.tx_drops),
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub(crate) fn format_mac(mac: &[u8; 6]) -> String {
    let [a, b, c, d, e, f] = *mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

fn mac_desc(e: &MacEntry, ports: &[PortInfo]) -> MacDesc {
    MacDesc {
        vlan: e.vlan,
        mac: format_mac(&e.mac),
        port: e.port,
        port_name: ports
            .iter()
            .find(|p| p.id == e.port)
            .map(|p| p.name.clone())
            .unwrap_or_default(),
        age_secs: e.age_secs,
    }
}

fn switch_show(info: &SwitchInfo, workers: &[WorkerStats]) -> SwitchShowReply {
    SwitchShowReply {
        workers: info.workers as u64,
        cpus: info.cpus.iter().map(|c| *c as u64).collect(),
        poll_mode: match info.poll_mode {
            PollMode::Busy => "busy",
            PollMode::Adaptive => "adaptive",
            PollMode::Inline => "inline",
        }
        .to_owned(),
        batch_hold_ns: u64::try_from(info.batch_hold.as_nanos()).unwrap_or(u64::MAX),
        mac_table_max: info.mac_table_max as u64,
        mac_entries: info.mac_entries as u64,
        mac_aging_secs: info.mac_aging.as_secs(),
        mac_moves: info.mac_moves,
        mac_evictions: info.mac_evictions,
        mac_port_max: u64::from(info.mac_port_max),
        ports: info.ports.iter().map(port_desc).collect(),
        worker_stats: workers
            .iter()
            .map(|w| WorkerDesc {
                worker: w.worker as u64,
                cpu: w.cpu.map(|c| c as u64),
                batches: w.batches,
                frames: w.frames,
                sleeps: w.sleeps,
                handoff_drops: w.handoff_drops,
                mac_learn_full: w.mac_learn_full,
                mac_learn_port_full: w.mac_learn_port_full,
                cache: CacheDesc {
                    emc_hits: w.cache.emc_hits,
                    run_hits: w.cache.run_hits,
                    megaflow_hits: w.cache.megaflow_hits,
                    misses: w.cache.misses,
                    upcalls: w.cache.upcalls,
                    upcall_drops: w.cache.upcall_drops,
                    evictions: w.cache.evictions,
                    expired: w.cache.expired,
                    revalidated: w.cache.revalidated,
                    flushes: w.cache.flushes,
                    entries: w.cache.entries,
                },
                packet_ins: w.packet_ins,
                packet_in_drops: w.packet_in_drops,
                packet_outs: w.packet_outs,
                packet_out_drops: w.packet_out_drops,
                busy_ns: w.busy_ns,
                full_batches: w.full_batches,
                flush_ns: w.flush_ns,
                holds: w.holds,
                staged_batches: w.staged_batches,
                rx_errors: w.rx_errors,
            })
            .collect(),
        event_drops: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vlan_errors_name_the_offending_element() {
        let e = vlan_mode(Some(VlanSpec::trunk(vec![10, 20, 5000], None))).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("body.vlan.trunks[2]"));
        let e = vlan_mode(Some(VlanSpec::access(0))).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("body.vlan.access"));
        let e = vlan_mode(Some(VlanSpec {
            access: Some(3),
            trunks: Some(vec![]),
            native: None,
        }))
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("body.vlan"));
        let e = vlan_mode(Some(VlanSpec {
            access: Some(3),
            trunks: None,
            native: Some(3),
        }))
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("body.vlan.native"));
        let e = vlan_mode(Some(VlanSpec::default())).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("body.vlan"));
    }

    #[test]
    fn the_backends_own_drops_are_reported_as_receive_and_transmit_drops_by_cause() {
        let counters = datapath::stats::PortCounters::default();
        counters.add_backend_drops(datapath::port::BackendDrops {
            rx_ring_full: 3,
            no_rx_buffer: 4,
            other: 5,
            tx: 6,
        });
        counters.rx_drops[DropReason::BadLength as usize].add(2);
        let snap = counters.snapshot();
        let rx = reported_rx_drops(&snap);
        assert_eq!(rx.iter().sum::<u64>(), 14);
        // Frames the backend could not send: transmit drops, reason `backend`, and only there.
        assert_eq!(snap.tx_drops.iter().sum::<u64>(), 6);
        assert_eq!(drops(&snap.tx_drops).get("backend"), Some(&6));
        let by_name = drops(&rx);
        assert_eq!(by_name.get("rx_ring_full"), Some(&3));
        assert_eq!(by_name.get("no_rx_buffer"), Some(&4));
        assert_eq!(by_name.get("backend"), Some(&5));
        assert_eq!(by_name.get("bad_length"), Some(&2));
    }

    #[test]
    fn vlan_modes_are_normalized() {
        assert_eq!(vlan_mode(None).unwrap(), VlanMode::Access { vlan: 1 });
        assert_eq!(
            vlan_mode(Some(VlanSpec::trunk(vec![30, 10, 10], Some(20)))).unwrap(),
            VlanMode::Trunk {
                allowed: vec![10, 20, 30],
                native: Some(20)
            }
        );
    }

    #[test]
    fn port_names_follow_linux_rules() {
        for ok in ["veth0", "a", "tap-1.2", "x23456789012345"] {
            assert!(check_name("body.name", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a:b",
            "a b",
            "x234567890123456",
            "a\u{0}",
        ] {
            let e = check_name("body.name", bad).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("body.name"), "{bad:?}");
        }
    }

    #[test]
    fn port_spec_takes_an_xdp_mode_for_afxdp_ports_only() {
        use datapath::port::afxdp::XdpMode;
        let mut req = PortAddRequest::new("veth0");
        req.xdp_mode = Some(XdpModeSpec::Native);
        assert_eq!(
            port_spec(req.clone()).unwrap_err().field.as_deref(),
            Some("body.xdp_mode"),
            "auto type"
        );
        req.port_type = Some(PortType::Afpacket);
        assert!(port_spec(req.clone()).is_err());
        req.port_type = Some(PortType::Afxdp);
        for (spec, mode) in [
            (XdpModeSpec::Auto, None),
            (XdpModeSpec::Native, Some(XdpMode::Native)),
            (XdpModeSpec::Generic, Some(XdpMode::Skb)),
            (XdpModeSpec::Split, Some(XdpMode::Split)),
        ] {
            req.xdp_mode = Some(spec);
            assert_eq!(port_spec(req.clone()).unwrap().xdp_mode, mode, "{spec:?}");
        }
        req.xdp_mode = None;
        assert_eq!(port_spec(req).unwrap().xdp_mode, None);
        // On the wire: a snake_case string, omitted when not given.
        let json = serde_json::to_string(&PortAddRequest::new("v")).unwrap();
        assert!(!json.contains("xdp_mode"), "{json}");
        let req: PortAddRequest =
            serde_json::from_str(r#"{"name":"v","type":"afxdp","xdp_mode":"split"}"#).unwrap();
        assert_eq!(req.xdp_mode, Some(XdpModeSpec::Split));
        assert!(
            serde_json::from_str::<PortAddRequest>(r#"{"name":"v","xdp_mode":"turbo"}"#).is_err()
        );
    }

    #[test]
    fn port_desc_says_how_an_afxdp_port_is_attached() {
        use datapath::port::afxdp::{XdpAttachment, XdpMode};
        let mut info = PortInfo {
            id: 3,
            name: "veth3".into(),
            kind: PortKind::AfXdp,
            queues: 1,
            vlan: VlanMode::Access { vlan: 1 },
            worker: 0,
            queue_workers: vec![0],
            link_up: true,
            xdp: Some(XdpAttachment {
                mode: XdpMode::Split,
                frags: true,
            }),
            device_gone: false,
            mtu: Some(1500),
            mac_max: 0,
            mac_entries: 0,
        };
        let d = port_desc(&info);
        assert_eq!((d.xdp_mode, d.xdp_frags), (Some(XdpModeSpec::Split), true));
        let json = serde_json::to_string(&d).unwrap();
        assert!(
            json.contains(r#""xdp_mode":"split","xdp_frags":true"#),
            "{json}"
        );
        info.kind = PortKind::AfPacket;
        info.xdp = None;
        let json = serde_json::to_string(&port_desc(&info)).unwrap();
        assert!(!json.contains("xdp"), "other types say nothing: {json}");
    }

    #[test]
    fn port_spec_takes_xdp_frags_for_afxdp_ports_only() {
        let mut req = PortAddRequest::new("veth0");
        req.xdp_frags = true;
        for t in [None, Some(PortType::Auto), Some(PortType::Tap)] {
            req.port_type = t;
            assert_eq!(
                port_spec(req.clone()).unwrap_err().field.as_deref(),
                Some("body.xdp_frags"),
                "{t:?}"
            );
        }
        req.port_type = Some(PortType::Afxdp);
        assert!(port_spec(req.clone()).unwrap().xdp_frags);
        req.xdp_frags = false;
        assert!(!port_spec(req).unwrap().xdp_frags);
        // On the wire: a boolean, omitted when false.
        let json = serde_json::to_string(&PortAddRequest::new("v")).unwrap();
        assert!(!json.contains("xdp_frags"), "{json}");
        let req: PortAddRequest =
            serde_json::from_str(r#"{"name":"v","type":"afxdp","xdp_frags":true}"#).unwrap();
        assert!(req.xdp_frags);
        assert!(
            serde_json::from_str::<PortAddRequest>(r#"{"name":"v","xdp_frags":"yes"}"#).is_err()
        );
    }

    #[test]
    fn port_spec_checks_queues() {
        let mut req = PortAddRequest::new("veth0");
        req.queues = 0;
        assert_eq!(
            port_spec(req.clone()).unwrap_err().field.as_deref(),
            Some("body.queues")
        );
        req.queues = 2;
        req.port_type = Some(PortType::Tap);
        let spec = port_spec(req).unwrap();
        assert_eq!(spec.kind, Some(PortKind::Tap));
        assert_eq!(spec.queues, 2);
    }

    #[test]
    fn switch_errors_map_to_codes_and_fields() {
        let e = switch_error(SwitchError::NoSuchPort { name: "x".into() }, "body.port");
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::NotFound, Some("body.port"))
        );
        let e = switch_error(SwitchError::PortExists { name: "x".into() }, "body.name");
        assert_eq!(e.code, ErrorCode::Exists);
        let e = switch_error(SwitchError::TooManyPorts { max: 3 }, "body.name");
        assert_eq!((e.code, e.field), (ErrorCode::Limit, None));
        let e = switch_error(
            SwitchError::Invalid {
                field: "trunks",
                reason: "x".into(),
            },
            "body.name",
        );
        assert_eq!(e.field.as_deref(), Some("body.vlan.trunks"));
        let e = switch_error(
            SwitchError::Port(PortError::NoDevice { name: "x".into() }),
            "body.name",
        );
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::PortFailed, Some("body.name"))
        );
        let e = switch_error(
            SwitchError::Port(PortError::Invalid {
                name: "x".into(),
                field: "queues",
                reason: "too many".into(),
            }),
            "body.name",
        );
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::BadField, Some("body.queues"))
        );
        let e = switch_error(SwitchError::WorkerGone { worker: 0 }, "body.name");
        assert_eq!(e.code, ErrorCode::Internal);
    }

    #[test]
    fn long_lists_are_split_into_parts() {
        let make = |ports: Vec<u32>, more: bool| {
            Reply::PortList(PortListReply {
                ports: ports
                    .into_iter()
                    .map(|id| PortDesc {
                        id,
                        ..PortDesc::default()
                    })
                    .collect(),
                more,
            })
        };
        assert_eq!(parts(Vec::<u32>::new(), 2, make).len(), 1);
        let p = parts(vec![1, 2, 3, 4, 5], 2, make);
        assert_eq!(p.len(), 3);
        assert!(p[0].more() && p[1].more() && !p[2].more());
        let mut merged = p[0].clone();
        for part in &p[1..] {
            merged.merge(part.clone()).unwrap();
        }
        let Reply::PortList(list) = merged else {
            panic!("not a port list")
        };
        assert_eq!(list.ports.len(), 5);
        assert!(!list.more);
    }

    #[test]
    fn dump_parts_are_bounded_in_items_and_bytes() {
        // Items whose JSON is their length plus 2 (the quotes).
        // (0: gone since the request, skipped.)
        let items = vec![10, 10, 0, 10, 50, 10, 200, 0, 10];
        let desc = |n: &usize| (*n > 0).then(|| "x".repeat(*n));
        let mut next = 0;
        let mut parts = Vec::new();
        loop {
            let (part, more) = take_part(&items, &mut next, 3, 100, desc);
            parts.push(part.iter().map(String::len).collect::<Vec<_>>());
            if !more {
                break;
            }
        }
        // At most 3 items and 100 bytes (13 per 10-byte item) a part; an item above the
        // budget alone.
        assert_eq!(
            parts,
            vec![vec![10, 10, 10], vec![50, 10], vec![200], vec![10]]
        );
        assert_eq!(next, items.len());
        let mut next = 0;
        let (part, more) = take_part(&Vec::<usize>::new(), &mut next, 3, 100, desc);
        assert!(part.is_empty() && !more);
        assert_eq!(json_len(&"abc"), 5);
    }

    #[test]
    fn macs_print_lowercase_hex() {
        assert_eq!(format_mac(&[0, 0x1b, 0xAB, 1, 2, 255]), "00:1b:ab:01:02:ff");
    }
}
