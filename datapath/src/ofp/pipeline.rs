//! Flow tables 0..=253 and the flow-mod operations on them (control thread).
//!
//! A [`Pipeline`] is plain data owned by the control thread and published to the workers as an
//! immutable `Arc` snapshot. Tables are shared between versions (`Arc<FlowTable>`): a change
//! copies only the tables it touches, once per publication, so many flow-mods between two
//! publications cost one copy.
//!
//! OpenFlow semantics:
//! - `add`: a flow with the same match and priority in the table is replaced (its duration
//!   restarts; its counters carry over unless `reset_counts`);
//!   with `check_overlap`, a flow of the same priority that some packet could match together
//!   with the new one is an error.
//! - `modify` / `delete` select flows whose match is the given match or more specific (every
//!   field of the given match is matched by the flow with at least its bits, same values),
//!   whose cookie agrees under `cookie_mask`, and (delete) that output to `out_port`;
//!   the `_strict` forms select the flow with exactly this match and priority. `modify` changes
//!   instructions only (cookie, timeouts and counters stay, unless `reset_counts`, which
//!   keeps the time of the last hit).
//! - Tables are bounded ([`Pipeline::max_flows_per_table`]); an add beyond it fails.
//!
//! Flow counters ([`FlowStats`]) are shared by all versions of a flow and written by the
//! workers (one slot per worker, single writer each, a cache line each, plus one for the
//! control thread and one for the reference counts: 64 bytes × (workers + 2) per flow, 16 MB
//! for 50,000 flows and 3 workers; group and bucket counters are the same type), so statistics
//! survive `modify` and
//! include every packet a cached decision sent through the flow.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::action::{Action, Instructions, MAX_TABLE, ValidationContext};
use super::group::{Bucket, Group, GroupType, Groups, MAX_GROUPS};
use super::meter::{Meter, MeterConfig};
use super::{FlowError, FlowErrorKind, MatchField, build_match};
use crate::classifier::{ClassifierError, FlowMask, Match, Rule, Table};
use crate::flow::FlowKey;

/// Number of tables.
pub const TABLES: usize = MAX_TABLE as usize + 1;
/// Default bound on the flows of one table.
pub const DEFAULT_MAX_FLOWS_PER_TABLE: usize = 200_000;

/// Per-worker packet and byte counts of one flow, a cache line each: workers charging the same
/// flow (say, the one `normal` rule every frame hits) do not write to one line.
#[derive(Debug, Default)]
#[repr(align(64))]
struct StatSlot {
    packets: AtomicU64,
    bytes: AtomicU64,
    /// Milliseconds since the switch started at the last hit (0: never).
    last_hit_ms: AtomicU64,
}

/// Counters of one flow: one slot per worker (single writer each) plus one for the control
/// thread (packet-out through the pipeline).
///
/// A handle: clones share the counters (a flow's versions, the cache entries that charge it).
/// The slots sit in the handle's own allocation, so a worker reaches its slot in one load from
/// the handle.
#[derive(Clone, Debug)]
pub struct FlowStats {
    slots: Arc<[StatSlot]>,
}

impl FlowStats {
    /// Counters for `writers` writers.
    pub fn new(writers: usize) -> Self {
        Self {
            slots: (0..writers.max(1)).map(|_| StatSlot::default()).collect(),
        }
    }

    /// Records `packets`/`bytes` by `writer` (its own slot only) at `now_ms` (the latest hit
    /// stays the latest: an older `now_ms` leaves it).
    #[inline]
    pub fn hit(&self, writer: usize, packets: u64, bytes: u64, now_ms: u64) {
        if let Some(s) = self.slots.get(writer) {
            s.packets.store(
                s.packets.load(Ordering::Relaxed).wrapping_add(packets),
                Ordering::Relaxed,
            );
            s.bytes.store(
                s.bytes.load(Ordering::Relaxed).wrapping_add(bytes),
                Ordering::Relaxed,
            );
            // Only forward: a cache entry pushes its latest hit late (`FlowCache::push_stats`),
            // possibly after another entry of the flow pushed a newer one.
            if s.last_hit_ms.load(Ordering::Relaxed) < now_ms {
                s.last_hit_ms.store(now_ms, Ordering::Relaxed);
            }
        }
    }

    /// New counters for `writers` writers (zero packets and bytes) that keep this one's latest
    /// hit: a flow whose counters are reset (`reset_counts`) is not idle because of it.
    pub fn restarted(&self, writers: usize) -> Self {
        let new = Self::new(writers);
        if let Some(s) = new.slots.first() {
            s.last_hit_ms.store(self.last_hit_ms(), Ordering::Relaxed);
        }
        new
    }

    /// Total packets and bytes.
    pub fn totals(&self) -> (u64, u64) {
        self.slots.iter().fold((0, 0), |(p, b), s| {
            (
                p.wrapping_add(s.packets.load(Ordering::Relaxed)),
                b.wrapping_add(s.bytes.load(Ordering::Relaxed)),
            )
        })
    }

    /// Latest hit, ms since the switch started (0: never hit).
    pub fn last_hit_ms(&self) -> u64 {
        self.slots
            .iter()
            .map(|s| s.last_hit_ms.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0)
    }
}

/// Flow flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowFlags {
    /// Notify controllers when the flow is removed.
    pub send_flow_rem: bool,
    /// Refuse an add that overlaps a flow of the same priority.
    pub check_overlap: bool,
    /// `modify`: reset the counters.
    pub reset_counts: bool,
}

/// One flow of a table. Immutable; `modify` makes a new one sharing the counters.
#[derive(Debug)]
pub struct Flow {
    /// Unique id (never reused while the switch runs).
    pub id: u64,
    /// Table it is in.
    pub table: u8,
    /// Priority.
    pub priority: u16,
    /// The match as given (normalised, sorted).
    pub fields: Vec<MatchField>,
    /// The match as the classifier sees it.
    pub m: Match,
    /// What it does.
    pub instructions: Instructions,
    /// Opaque controller value.
    pub cookie: u64,
    /// Seconds without a hit before removal (0: never).
    pub idle_timeout: u16,
    /// Seconds after insertion before removal (0: never).
    pub hard_timeout: u16,
    /// Flags.
    pub flags: FlowFlags,
    /// When it was added.
    pub created: Instant,
    /// Counters (shared by its versions).
    pub stats: FlowStats,
}

impl Flow {
    /// The earliest it can expire: its hard timeout or its idle timeout after its creation,
    /// whichever comes first (`None` without timeouts).
    pub fn first_deadline(&self) -> Option<Instant> {
        let after =
            |secs: u16| (secs != 0).then(|| self.created + Duration::from_secs(u64::from(secs)));
        match (after(self.hard_timeout), after(self.idle_timeout)) {
            (Some(h), Some(i)) => Some(h.min(i)),
            (h, i) => h.or(i),
        }
    }

    /// Whether it has an idle or a hard timeout.
    pub fn times_out(&self) -> bool {
        self.idle_timeout != 0 || self.hard_timeout != 0
    }

    /// Whether any action outputs to `port`.
    pub fn outputs_to(&self, port: u32) -> bool {
        self.instructions
            .actions()
            .any(|a| a.output_port() == Some(port))
    }
}

/// The operation of a [`FlowMod`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowModCommand {
    /// Add (or replace the flow with the same match and priority).
    Add,
    /// Change the instructions of every selected flow.
    Modify,
    /// Change the instructions of the flow with exactly this match and priority.
    ModifyStrict,
    /// Remove every selected flow.
    Delete,
    /// Remove the flow with exactly this match and priority.
    DeleteStrict,
}

/// A change to the flow tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowMod {
    /// What to do.
    pub command: FlowModCommand,
    /// Table; `None` = every table (modify and delete only).
    pub table: Option<u8>,
    /// Priority (add, strict forms).
    pub priority: u16,
    /// The match.
    pub fields: Vec<MatchField>,
    /// Instructions (add, modify).
    pub instructions: Instructions,
    /// Cookie of a new flow; selection value for modify/delete.
    pub cookie: u64,
    /// Bits of the cookie that selection compares (0: any cookie).
    pub cookie_mask: u64,
    /// Idle timeout (add).
    pub idle_timeout: u16,
    /// Hard timeout (add).
    pub hard_timeout: u16,
    /// Flags.
    pub flags: FlowFlags,
    /// Delete/modify only flows that output to this port.
    pub out_port: Option<u32>,
}

impl FlowMod {
    /// An `add` of `fields → instructions` at `priority` in `table`.
    pub fn add(
        table: u8,
        priority: u16,
        fields: Vec<MatchField>,
        instructions: Instructions,
    ) -> Self {
        Self {
            command: FlowModCommand::Add,
            table: Some(table),
            priority,
            fields,
            instructions,
            cookie: 0,
            cookie_mask: 0,
            idle_timeout: 0,
            hard_timeout: 0,
            flags: FlowFlags::default(),
            out_port: None,
        }
    }

    /// A non-strict `delete` of `fields` in `table` (`None`: all tables).
    pub fn delete(table: Option<u8>, fields: Vec<MatchField>) -> Self {
        Self {
            command: FlowModCommand::Delete,
            ..Self::add(0, 0, fields, Instructions::default())
        }
        .in_table(table)
    }

    fn in_table(mut self, table: Option<u8>) -> Self {
        self.table = table;
        self
    }
}

/// One operation of a bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BundleOp {
    /// A flow-mod.
    Flow(FlowMod),
    /// A group-mod.
    Group(GroupMod),
    /// A meter-mod.
    Meter(MeterMod),
}

/// What one bundle op did.
#[derive(Debug)]
pub enum BundleResult {
    /// A flow-mod's result.
    Flow(FlowModResult),
    /// Flows removed with a deleted group.
    Group(Vec<Arc<Flow>>),
    /// Flows removed with a deleted meter.
    Meter(Vec<Arc<Flow>>),
}

/// What a flow-mod did.
#[derive(Debug, Default)]
pub struct FlowModResult {
    /// Flows added.
    pub added: usize,
    /// Flows whose instructions changed.
    pub modified: usize,
    /// Flows removed (replaced ones included), for flow-removed notifications.
    pub removed: Vec<Arc<Flow>>,
    /// The flows whose counters left them without a delete: those an `add` or a `modify`
    /// with `reset_counts` replaced or changed (their versions before). Their packets stay in
    /// their table's `matched` ([`crate::switch::Switch::table_stats`]). A flow an `add`
    /// replaces without `reset_counts` passes its counters on, and is in `removed` only.
    pub reset: Vec<Arc<Flow>>,
}

/// Which flows a dump, modify or delete selects.
#[derive(Clone, Debug, Default)]
pub struct FlowFilter {
    /// Table (`None`: all).
    pub table: Option<u8>,
    /// The match (non-strict: flows at least this specific).
    pub fields: Vec<MatchField>,
    /// Strict: exactly this match and priority.
    pub strict: Option<u16>,
    /// Cookie value.
    pub cookie: u64,
    /// Cookie bits compared.
    pub cookie_mask: u64,
    /// Only flows outputting to this port.
    pub out_port: Option<u32>,
}

/// One table.
#[derive(Clone, Debug)]
pub struct FlowTable {
    cls: Table,
    flows: imbl::GenericHashMap<
        u64,
        Arc<Flow>,
        ahash::RandomState,
        imbl::shared_ptr::DefaultSharedPtr,
    >,
    /// How many of `flows` have a timeout ([`Flow::times_out`]).
    timed: usize,
    /// (cookie, id) of every flow with a cookie but 0, in order: a selection by a whole
    /// cookie (`cookie_mask` all ones) looks at its flows only, as Open vSwitch's does.
    cookies: imbl::OrdSet<(u64, u64)>,
    /// (group id, flow id) of every flow whose actions use a group: deleting a group looks at
    /// its flows only (an add or a modify of a group, none).
    group_refs: imbl::OrdSet<(u32, u64)>,
    /// (meter id, flow id), the same for meters.
    meter_refs: imbl::OrdSet<(u32, u64)>,
    /// (when, flow id) of every flow with a timeout: the earliest it can expire (its hard
    /// timeout, or its idle timeout after its last hit as last seen): expiry looks only at the
    /// flows whose time has come, and moves a flow hit since to its new time
    /// ([`Pipeline::rearm`]).
    deadlines: imbl::OrdMap<(Instant, u64), Arc<Flow>>,
    /// Each timed flow's entry in `deadlines`.
    due: imbl::GenericHashMap<u64, Instant, ahash::RandomState, imbl::shared_ptr::DefaultSharedPtr>,
}

impl FlowTable {
    fn new(max: usize) -> Self {
        Self {
            cls: Table::with_capacity(max),
            flows: imbl::GenericHashMap::with_hasher(crate::hash::state()),
            timed: 0,
            cookies: imbl::OrdSet::new(),
            group_refs: imbl::OrdSet::new(),
            meter_refs: imbl::OrdSet::new(),
            deadlines: imbl::OrdMap::new(),
            due: imbl::GenericHashMap::with_hasher(crate::hash::state()),
        }
    }

    /// Puts `flow` under `id`, returning the flow it replaces.
    fn put(&mut self, id: u64, flow: Arc<Flow>) -> Option<Arc<Flow>> {
        let times_out = flow.times_out();
        if let Some(f) = self.flows.get(&id).cloned() {
            self.unindex(id, &f);
        }
        self.index(id, &flow);
        let old = self.flows.insert(id, flow);
        self.timed += usize::from(times_out);
        if let Some(f) = &old {
            self.timed -= usize::from(f.times_out());
        }
        old
    }

    /// Adds `f` (under `id`) to the indexes: its cookie, groups, meters and deadline.
    fn index(&mut self, id: u64, f: &Arc<Flow>) {
        if f.cookie != 0 {
            self.cookies.insert((f.cookie, id));
        }
        if let Some(when) = f.first_deadline() {
            self.set_due(id, when, f);
        }
        for a in f.instructions.actions() {
            match *a {
                Action::Group(g) => {
                    self.group_refs.insert((g, id));
                }
                Action::Meter(m) => {
                    self.meter_refs.insert((m, id));
                }
                _ => {}
            }
        }
    }

    /// Takes `f` (under `id`) out of the indexes.
    fn unindex(&mut self, id: u64, f: &Flow) {
        self.unindex_cookie(f.cookie, id);
        if let Some(when) = self.due.remove(&id) {
            self.deadlines.remove(&(when, id));
        }
        for a in f.instructions.actions() {
            match *a {
                Action::Group(g) => {
                    self.group_refs.remove(&(g, id));
                }
                Action::Meter(m) => {
                    self.meter_refs.remove(&(m, id));
                }
                _ => {}
            }
        }
    }

    /// Moves flow `id`'s (`f`'s) deadline to `when`.
    fn set_due(&mut self, id: u64, when: Instant, f: &Arc<Flow>) {
        if let Some(old) = self.due.insert(id, when) {
            self.deadlines.remove(&(old, id));
        }
        self.deadlines.insert((when, id), Arc::clone(f));
    }

    /// The flows whose deadline is at or before `now`, earliest first: those that may have
    /// expired (the others cannot have).
    pub fn due_by(&self, now: Instant) -> impl Iterator<Item = &Arc<Flow>> {
        self.deadlines.range(..=(now, u64::MAX)).map(|(_, f)| f)
    }

    /// Ids of the flows that use one of these groups (`meters`: meters); a flow that uses
    /// several is listed once for each.
    fn referring(&self, ids: &[u32], meters: bool) -> Vec<u64> {
        let refs = if meters {
            &self.meter_refs
        } else {
            &self.group_refs
        };
        if refs.is_empty() {
            return Vec::new();
        }
        ids.iter()
            .flat_map(|&g| refs.range((g, 0)..=(g, u64::MAX)).map(|&(_, id)| id))
            .collect()
    }

    /// Takes the flow under `id` out.
    fn take(&mut self, id: u64) -> Option<Arc<Flow>> {
        let f = self.flows.remove(&id)?;
        self.timed -= usize::from(f.times_out());
        self.unindex(id, &f);
        Some(f)
    }

    fn unindex_cookie(&mut self, cookie: u64, id: u64) {
        if cookie != 0 {
            self.cookies.remove(&(cookie, id));
        }
    }

    /// Flows with an idle or hard timeout: where there are none, nothing can expire (the
    /// control thread's once-a-second expiry skips the table instead of reading every flow).
    pub fn timed(&self) -> usize {
        self.timed
    }

    /// Number of flows.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// Whether this very flow (not another version of it) is in the table.
    pub fn holds(&self, f: &Arc<Flow>) -> bool {
        self.flows.get(&f.id).is_some_and(|g| Arc::ptr_eq(g, f))
    }

    /// Whether the table has no flows.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Number of distinct masks (subtables).
    pub fn subtables(&self) -> usize {
        self.cls.subtable_count()
    }

    /// The best flow for `key`, ORing the consulted mask into `wc`.
    #[inline]
    pub fn lookup_wc(&self, key: &FlowKey, wc: &mut FlowMask) -> Option<&Arc<Flow>> {
        let (id, _) = self.cls.lookup_wc(key, wc)?;
        self.flows.get(&id)
    }

    /// Every flow, in no particular order.
    pub fn flows(&self) -> impl Iterator<Item = &Arc<Flow>> {
        self.flows.values()
    }

    /// The flow with this id.
    pub fn flow(&self, id: u64) -> Option<&Arc<Flow>> {
        self.flows.get(&id)
    }
}

/// Meters by id, in no order (persistent, as [`Groups`]).
pub type Meters =
    imbl::GenericHashMap<u32, Arc<Meter>, ahash::RandomState, imbl::shared_ptr::DefaultSharedPtr>;
/// Most meters.
pub const MAX_METERS: usize = 65_536;
/// Largest group or meter id (OpenFlow reserves the ids above).
pub const MAX_ID: u32 = 0xffff_ff00;

/// Add, modify or delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModCommand {
    /// Add (the id must be free).
    Add,
    /// Replace (the id must exist).
    Modify,
    /// Remove (and every flow that uses it).
    Delete,
}

/// A change to the groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMod {
    /// What to do.
    pub command: ModCommand,
    /// Group id; `None` with delete = every group.
    pub id: Option<u32>,
    /// Type (add, modify).
    pub kind: GroupType,
    /// Buckets (add, modify).
    pub buckets: Vec<Bucket>,
}

/// A change to the meters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MeterMod {
    /// What to do.
    pub command: ModCommand,
    /// Meter id (≥ 1); `None` with delete = every meter.
    pub id: Option<u32>,
    /// Configuration (add, modify).
    pub config: MeterConfig,
}

/// Existing groups and meters, for validating flows.
#[derive(Debug, Clone)]
pub struct Refs {
    groups: Arc<Groups>,
    meters: Arc<Meters>,
}

impl ValidationContext for Refs {
    fn group_exists(&self, id: u32) -> bool {
        self.groups.contains_key(&id)
    }
    fn meter_exists(&self, id: u32) -> bool {
        self.meters.contains_key(&id)
    }
}

/// A flow that was added, changed or removed, for targeted revalidation of caches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    /// Version of the pipeline that made it.
    pub version: u64,
    /// Table.
    pub table: u8,
    /// The flow's match.
    pub m: Match,
}

/// Changes remembered for caches that catch up (older ones: the cache re-translates all).
pub const MAX_CHANGES: usize = 4_096;

/// Tables 0..=253, groups and meters.
#[derive(Clone, Debug)]
pub struct Pipeline {
    tables: Vec<Arc<FlowTable>>,
    /// Bumped by every flow change.
    version: u64,
    /// The latest flow changes, oldest first, at most [`MAX_CHANGES`].
    changes: imbl::Vector<Change>,
    /// Every change with a version above this is in `changes`.
    changes_floor: u64,
    groups: Arc<Groups>,
    meters: Arc<Meters>,
    next_id: u64,
    writers: usize,
    max_flows_per_table: usize,
}

/// Whether flow match `f` is `m` or more specific.
fn covers(m: &Match, f: &Match) -> bool {
    m.mask().is_subset_of(f.mask()) && m.mask().apply(f.key()) == *m.key()
}

/// How groups and meters differ as id-keyed tables.
struct IdKind {
    /// `group` / `meter`, for messages.
    what: &'static str,
    /// Error location of the id.
    at: &'static str,
    /// Lowest valid id.
    min: u32,
    /// Most entries.
    max_entries: usize,
    /// Error kind of a modify of a missing id.
    unknown: FlowErrorKind,
}

const GROUP_IDS: IdKind = IdKind {
    what: "group",
    at: "group_id",
    min: 0,
    max_entries: MAX_GROUPS,
    unknown: FlowErrorKind::UnknownGroup,
};

const METER_IDS: IdKind = IdKind {
    what: "meter",
    at: "meter_id",
    min: 1,
    max_entries: MAX_METERS,
    unknown: FlowErrorKind::UnknownMeter,
};

/// Add, modify or delete in an id-keyed table (groups, meters) with OpenFlow semantics:
/// add needs a free id, modify an existing one, delete of `None` removes all. `build` makes the
/// new entry once the id checks passed. Returns the deleted ids; nothing changes on an error.
fn id_mod<T>(
    map: &mut Arc<
        imbl::GenericHashMap<u32, Arc<T>, ahash::RandomState, imbl::shared_ptr::DefaultSharedPtr>,
    >,
    kind: &IdKind,
    command: ModCommand,
    id: Option<u32>,
    build: impl FnOnce(u32) -> Result<T, FlowError>,
) -> Result<Vec<u32>, FlowError> {
    let bad = |k, message: String| FlowError {
        kind: k,
        at: kind.at.into(),
        message,
    };
    if let Some(id) = id
        && (id < kind.min || id > MAX_ID)
    {
        return Err(bad(
            FlowErrorKind::BadAction,
            format!(
                "{} id {id} is out of range ({}..={MAX_ID})",
                kind.what, kind.min
            ),
        ));
    }
    if command == ModCommand::Delete {
        let ids: Vec<u32> = match id {
            Some(id) => map.contains_key(&id).then_some(id).into_iter().collect(),
            None => map.keys().copied().collect(),
        };
        if !ids.is_empty() {
            let m = Arc::make_mut(map);
            for id in &ids {
                m.remove(id);
            }
        }
        return Ok(ids);
    }
    let Some(id) = id else {
        return Err(bad(
            FlowErrorKind::BadAction,
            format!("a {} id is required", kind.what),
        ));
    };
    let exists = map.contains_key(&id);
    if command == ModCommand::Add && exists {
        return Err(bad(
            FlowErrorKind::Exists,
            format!("{} {id} exists (use modify)", kind.what),
        ));
    }
    if command == ModCommand::Modify && !exists {
        return Err(bad(
            kind.unknown,
            format!("{} {id} does not exist", kind.what),
        ));
    }
    if !exists && map.len() >= kind.max_entries {
        return Err(bad(
            FlowErrorKind::TableFull,
            format!("too many {}s (max {})", kind.what, kind.max_entries),
        ));
    }
    let entry = build(id)?;
    Arc::make_mut(map).insert(id, Arc::new(entry));
    Ok(Vec::new())
}

impl Pipeline {
    /// Empty tables; flow counters get `writers` slots (workers + 1 for the control thread).
    pub fn new(writers: usize, max_flows_per_table: usize) -> Self {
        let empty = Arc::new(FlowTable::new(max_flows_per_table));
        Self {
            tables: (0..TABLES).map(|_| Arc::clone(&empty)).collect(),
            groups: Arc::new(Groups::with_hasher(crate::hash::state())),
            meters: Arc::new(Meters::with_hasher(crate::hash::state())),
            version: 0,
            changes: imbl::Vector::new(),
            changes_floor: 0,
            next_id: 1,
            writers,
            max_flows_per_table,
        }
    }

    /// The default configuration: `table=0, priority=0, actions=normal`.
    pub fn learning_bridge(writers: usize, max_flows_per_table: usize) -> Self {
        let mut p = Self::new(writers, max_flows_per_table);
        let add = FlowMod::add(0, 0, Vec::new(), Instructions::apply(vec![Action::Normal]));
        p.flow_mod(&add, &super::action::NoGroups, Instant::now())
            .expect("the default flow is valid");
        p
    }

    /// Version of the flow tables: bumped by every flow change.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The flow changes after version `since`, or `None` when they are no longer all known.
    pub fn changes_since(&self, since: u64) -> Option<impl Iterator<Item = &Change>> {
        (since >= self.changes_floor)
            .then(|| self.changes.iter().filter(move |c| c.version > since))
    }

    /// Records that a flow with match `m` in `table` appeared, changed or went away.
    fn note_change(&mut self, table: u8, m: Match) {
        self.version += 1;
        if self.changes.len() >= MAX_CHANGES
            && let Some(old) = self.changes.pop_front()
        {
            self.changes_floor = old.version;
        }
        self.changes.push_back(Change {
            version: self.version,
            table,
            m,
        });
    }

    /// The groups and meters flows may refer to.
    pub fn refs(&self) -> Refs {
        Refs {
            groups: Arc::clone(&self.groups),
            meters: Arc::clone(&self.meters),
        }
    }

    /// Group `id`.
    #[inline]
    pub fn group(&self, id: u32) -> Option<&Arc<Group>> {
        self.groups.get(&id)
    }

    /// Every group.
    pub fn groups(&self) -> &Groups {
        &self.groups
    }

    /// Meter `id`.
    #[inline]
    pub fn meter(&self, id: u32) -> Option<&Arc<Meter>> {
        self.meters.get(&id)
    }

    /// Every meter.
    pub fn meters(&self) -> &Meters {
        &self.meters
    }

    /// Moves the deadlines of these (table, flow id) to the times given (flows not there any
    /// more are skipped): expiry's re-arming of flows hit since their last deadline.
    pub fn rearm(&mut self, due: &[(u8, u64, Instant)]) {
        for &(t, id, when) in due {
            let Some(slot) = self.tables.get_mut(usize::from(t)) else {
                continue;
            };
            if slot.due.get(&id).is_none_or(|&w| w == when) {
                continue;
            }
            let Some(f) = slot.flows.get(&id).cloned() else {
                continue;
            };
            Arc::make_mut(slot).set_due(id, when, &f);
        }
    }

    /// Removes the flows with these (table, id); returns them.
    pub fn remove_flows(&mut self, ids: &[(u8, u64)]) -> Vec<Arc<Flow>> {
        let mut removed = Vec::with_capacity(ids.len());
        for &(t, id) in ids {
            let Some(slot) = self.tables.get_mut(usize::from(t)) else {
                continue;
            };
            if !slot.flows.contains_key(&id) {
                continue;
            }
            let table = Arc::make_mut(slot);
            if let Some(f) = table.take(id) {
                table.cls.remove(&f.m, f.priority);
                removed.push(f);
            }
        }
        for f in &removed {
            self.note_change(f.table, f.m);
        }
        removed
    }

    /// Removes every flow that uses one of the groups `deleted` (`meters`: meters), found
    /// through the tables' reference indexes; returns them.
    fn remove_flows_referring(&mut self, deleted: &[u32], meters: bool) -> Vec<Arc<Flow>> {
        if deleted.is_empty() {
            return Vec::new();
        }
        let ids: Vec<(u8, u64)> = (0..=MAX_TABLE)
            .flat_map(|t| {
                self.tables[usize::from(t)]
                    .referring(deleted, meters)
                    .into_iter()
                    .map(move |id| (t, id))
            })
            .collect();
        self.remove_flows(&ids)
    }

    /// Applies a group-mod; returns the flows removed with deleted groups.
    ///
    /// # Errors
    /// Nothing changed.
    pub fn group_mod(&mut self, gm: &GroupMod) -> Result<Vec<Arc<Flow>>, FlowError> {
        let writers = self.writers;
        let deleted = id_mod(&mut self.groups, &GROUP_IDS, gm.command, gm.id, |id| {
            Group::new(id, gm.kind, gm.buckets.clone(), writers)
        })?;
        Ok(self.remove_flows_referring(&deleted, false))
    }

    /// Applies a meter-mod; returns the flows removed with deleted meters.
    ///
    /// # Errors
    /// Nothing changed.
    pub fn meter_mod(&mut self, mm: &MeterMod) -> Result<Vec<Arc<Flow>>, FlowError> {
        let writers = self.writers;
        let deleted = id_mod(&mut self.meters, &METER_IDS, mm.command, mm.id, |id| {
            if mm.config.rate == 0 || mm.config.rate > super::meter::MAX_RATE {
                return Err(FlowError {
                    kind: FlowErrorKind::BadAction,
                    at: "rate".into(),
                    message: format!(
                        "rate {} is out of range (1..={})",
                        mm.config.rate,
                        super::meter::MAX_RATE
                    ),
                });
            }
            Ok(Meter::new(id, mm.config, writers))
        })?;
        Ok(self.remove_flows_referring(&deleted, true))
    }

    /// Bound on each table's flows.
    pub fn max_flows_per_table(&self) -> usize {
        self.max_flows_per_table
    }

    /// Counter slots per flow.
    pub fn writers(&self) -> usize {
        self.writers
    }

    /// Table `t`.
    pub fn table(&self, t: u8) -> &FlowTable {
        &self.tables[usize::from(t.min(MAX_TABLE))]
    }

    /// Flows in all tables.
    pub fn len(&self) -> usize {
        self.tables.iter().map(|t| t.len()).sum()
    }

    /// Whether no table has a flow.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies one flow-mod.
    ///
    /// # Errors
    /// Nothing is changed when an error is returned.
    pub fn flow_mod(
        &mut self,
        fm: &FlowMod,
        ctx: &dyn ValidationContext,
        now: Instant,
    ) -> Result<FlowModResult, FlowError> {
        let (m, fields) = build_match(&fm.fields)?;
        match fm.command {
            FlowModCommand::Add => self.add(fm, m, fields, ctx, now),
            FlowModCommand::Modify | FlowModCommand::ModifyStrict => {
                let strict = fm.command == FlowModCommand::ModifyStrict;
                self.modify(fm, &m, strict, ctx)
            }
            FlowModCommand::Delete | FlowModCommand::DeleteStrict => {
                let filter = FlowFilter {
                    table: fm.table,
                    fields: fm.fields.clone(),
                    strict: (fm.command == FlowModCommand::DeleteStrict).then_some(fm.priority),
                    cookie: fm.cookie,
                    cookie_mask: fm.cookie_mask,
                    out_port: fm.out_port,
                };
                let ids = self.select(&filter, &m);
                let mut removed = Vec::with_capacity(ids.len());
                for (t, id) in ids {
                    let table = Arc::make_mut(&mut self.tables[usize::from(t)]);
                    if let Some(flow) = table.take(id) {
                        table.cls.remove(&flow.m, flow.priority);
                        removed.push(flow);
                    }
                }
                for f in &removed {
                    self.note_change(f.table, f.m);
                }
                Ok(FlowModResult {
                    removed,
                    ..FlowModResult::default()
                })
            }
        }
    }

    /// Applies `mods` in order, all or nothing.
    ///
    /// # Errors
    /// The index and error of the first failing flow-mod; nothing is changed.
    pub fn bundle(
        &mut self,
        mods: &[FlowMod],
        ctx: &dyn ValidationContext,
        now: Instant,
    ) -> Result<Vec<FlowModResult>, (usize, FlowError)> {
        let mut next = self.clone();
        let mut results = Vec::with_capacity(mods.len());
        for (i, fm) in mods.iter().enumerate() {
            results.push(next.flow_mod(fm, ctx, now).map_err(|e| (i, e))?);
        }
        *self = next;
        Ok(results)
    }

    /// Applies flow, group and meter mods in order, all or nothing. Each op is validated against
    /// the state the ops before it left (a flow may use a group added earlier in the bundle).
    ///
    /// # Errors
    /// The index and error of the first failing op; nothing is changed.
    pub fn bundle_ops(
        &mut self,
        ops: &[BundleOp],
        now: Instant,
    ) -> Result<Vec<BundleResult>, (usize, FlowError)> {
        let mut next = self.clone();
        let mut results = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            let r = match op {
                BundleOp::Flow(fm) => {
                    let refs = next.refs();
                    next.flow_mod(fm, &refs, now).map(BundleResult::Flow)
                }
                BundleOp::Group(gm) => next.group_mod(gm).map(BundleResult::Group),
                BundleOp::Meter(mm) => next.meter_mod(mm).map(BundleResult::Meter),
            };
            results.push(r.map_err(|e| (i, e))?);
        }
        *self = next;
        Ok(results)
    }

    fn add(
        &mut self,
        fm: &FlowMod,
        m: Match,
        fields: Vec<MatchField>,
        ctx: &dyn ValidationContext,
        now: Instant,
    ) -> Result<FlowModResult, FlowError> {
        let Some(t) = fm.table else {
            return Err(FlowError {
                kind: FlowErrorKind::BadTable,
                at: "table".into(),
                message: "add needs one table (0..=253), not all".into(),
            });
        };
        if t > MAX_TABLE {
            return Err(FlowError {
                kind: FlowErrorKind::BadTable,
                at: "table".into(),
                message: format!("table {t} does not exist (tables are 0..={MAX_TABLE})"),
            });
        }
        fm.instructions
            .validate(t, &m.key().to_owned(), &m.mask().bits, ctx)?;
        let table = &self.tables[usize::from(t)];
        let overlapped = fm.flags.check_overlap && {
            let mut found = false;
            table.cls.for_each_overlapping(&m, |id, p| {
                found |= p == fm.priority && table.flows.get(&id).is_some_and(|f| f.m != m);
            });
            found
        };
        if overlapped {
            return Err(FlowError {
                kind: FlowErrorKind::Overlap,
                at: "match".into(),
                message: format!(
                    "overlaps a flow of priority {} in table {t} (check_overlap)",
                    fm.priority
                ),
            });
        }
        let id = self.next_id;
        let table = Arc::make_mut(&mut self.tables[usize::from(t)]);
        let replaced = table
            .cls
            .insert(Rule {
                priority: fm.priority,
                m,
                id,
            })
            .map_err(|e| FlowError {
                kind: FlowErrorKind::TableFull,
                at: "table".into(),
                message: match e {
                    ClassifierError::TableFull { max } => {
                        format!("table {t} is full ({max} flows)")
                    }
                    ClassifierError::TooManyMasks { max } => format!(
                        "table {t} has the most distinct match shapes it takes ({max}: fields \
                         and masks matched, prefix lengths)"
                    ),
                },
            })?;
        self.next_id += 1;
        let old = replaced.and_then(|old| table.take(old));
        // A flow replaced by an identical add passes its counters on unless the add says
        // `reset_counts` (OpenFlow 1.3.5 §6.4, as Open vSwitch); its duration restarts.
        let (stats, reset) = match &old {
            Some(f) if !fm.flags.reset_counts => (f.stats.clone(), Vec::new()),
            Some(f) => (FlowStats::new(self.writers), vec![Arc::clone(f)]),
            None => (FlowStats::new(self.writers), Vec::new()),
        };
        table.put(
            id,
            Arc::new(Flow {
                id,
                table: t,
                priority: fm.priority,
                fields,
                m,
                instructions: fm.instructions.clone(),
                cookie: fm.cookie,
                idle_timeout: fm.idle_timeout,
                hard_timeout: fm.hard_timeout,
                flags: fm.flags,
                created: now,
                stats,
            }),
        );
        self.note_change(t, m);
        Ok(FlowModResult {
            added: 1,
            removed: old.into_iter().collect(),
            reset,
            ..FlowModResult::default()
        })
    }

    fn modify(
        &mut self,
        fm: &FlowMod,
        m: &Match,
        strict: bool,
        ctx: &dyn ValidationContext,
    ) -> Result<FlowModResult, FlowError> {
        // `out_port` narrows deletes only: a modify ignores it (OpenFlow 1.3.5 §7.3.4.2, as
        // Open vSwitch; until 2026-12-07 it narrowed modifies too).
        let filter = FlowFilter {
            table: fm.table,
            fields: fm.fields.clone(),
            strict: strict.then_some(fm.priority),
            cookie: fm.cookie,
            cookie_mask: fm.cookie_mask,
            out_port: None,
        };
        let ids = self.select(&filter, m);
        // Validate against every selected flow first: all or nothing.
        for (t, id) in &ids {
            let f = &self.tables[usize::from(*t)].flows[id];
            fm.instructions
                .validate(*t, f.m.key(), &f.m.mask().bits, ctx)?;
        }
        let mut reset = Vec::new();
        for (t, id) in &ids {
            let table = Arc::make_mut(&mut self.tables[usize::from(*t)]);
            let Some(old) = table.flows.get(id) else {
                continue;
            };
            let stats = if fm.flags.reset_counts {
                reset.push(Arc::clone(old));
                old.stats.restarted(self.writers)
            } else {
                old.stats.clone()
            };
            let new = Arc::new(Flow {
                id: old.id,
                table: old.table,
                priority: old.priority,
                fields: old.fields.clone(),
                m: old.m,
                instructions: fm.instructions.clone(),
                cookie: old.cookie,
                idle_timeout: old.idle_timeout,
                hard_timeout: old.hard_timeout,
                flags: FlowFlags {
                    reset_counts: false,
                    ..old.flags
                },
                created: old.created,
                stats,
            });
            let m = new.m;
            table.put(*id, new);
            self.note_change(*t, m);
        }
        Ok(FlowModResult {
            modified: ids.len(),
            reset,
            ..FlowModResult::default()
        })
    }

    /// (table, id) of the flows `filter` selects; `m` is its match, already built.
    fn select(&self, filter: &FlowFilter, m: &Match) -> Vec<(u8, u64)> {
        let mut out = Vec::new();
        for (t, table) in self.tables.iter().enumerate() {
            let t = u8::try_from(t).unwrap_or(MAX_TABLE);
            if filter.table.is_some_and(|ft| ft != t) || table.is_empty() {
                continue;
            }
            let selected = |f: &Flow| {
                (f.cookie & filter.cookie_mask) == (filter.cookie & filter.cookie_mask)
                    && filter.out_port.is_none_or(|p| f.outputs_to(p))
            };
            if let Some(p) = filter.strict {
                // At most one flow has this match and priority: ask the classifier instead of
                // looking at every flow (a bundle of strict ops would cost ops x flows).
                if let Some(f) = table.cls.find(m, p).and_then(|id| table.flows.get(&id))
                    && selected(f)
                {
                    out.push((t, f.id));
                }
                continue;
            }
            if filter.cookie_mask == u64::MAX && filter.cookie != 0 {
                // A whole cookie: its flows only.
                let c = filter.cookie;
                for &(_, id) in table.cookies.range((c, 0)..=(c, u64::MAX)) {
                    if let Some(f) = table.flows.get(&id)
                        && covers(m, &f.m)
                        && selected(f)
                    {
                        out.push((t, id));
                    }
                }
                continue;
            }
            // The flows whose match is `m` or more specific (subtables that cannot hold any
            // are skipped, and flows with `m`'s own match fields are one probe).
            table.cls.for_each_covered(m, |id, _| {
                if let Some(f) = table.flows.get(&id)
                    && selected(f)
                {
                    out.push((t, id));
                }
            });
        }
        out.sort_unstable();
        out
    }

    /// Flows selected by `filter`, sorted by table, then priority (highest first), then id.
    ///
    /// # Errors
    /// An invalid match in the filter.
    pub fn dump(&self, filter: &FlowFilter) -> Result<Vec<Arc<Flow>>, FlowError> {
        let (m, _) = build_match(&filter.fields)?;
        let mut flows: Vec<Arc<Flow>> = self
            .select(filter, &m)
            .into_iter()
            .filter_map(|(t, id)| self.tables[usize::from(t)].flows.get(&id).cloned())
            .collect();
        flows.sort_by_key(|f| (f.table, std::cmp::Reverse(f.priority), f.id));
        Ok(flows)
    }
}

#[cfg(test)]
mod tests {
    use super::super::action::NoGroups;
    use super::super::field::Field;
    use super::*;

    fn mf(field: Field, value: u128) -> MatchField {
        MatchField {
            field,
            value,
            mask: None,
        }
    }

    fn ip_dst(v: u32, prefix: u8) -> Vec<MatchField> {
        let mask = if prefix == 0 {
            0
        } else {
            u128::from(u32::MAX << (32 - u32::from(prefix)))
        };
        vec![
            mf(Field::EthType, 0x0800),
            MatchField {
                field: Field::IpDst,
                value: u128::from(v) & mask,
                mask: Some(mask),
            },
        ]
    }

    fn out(p: u32) -> Instructions {
        Instructions::apply(vec![Action::Output(p)])
    }

    fn now() -> Instant {
        Instant::now()
    }

    #[test]
    fn each_table_counts_its_flows_with_timeouts_through_adds_replacements_modifies_and_deletes() {
        fn timed(p: &Pipeline, t: u8) -> (usize, usize) {
            let table = p.table(t);
            (
                table.timed(),
                table.flows().filter(|f| f.times_out()).count(),
            )
        }
        let with = |prio: u16, v: u32, idle: u16, hard: u16| {
            let mut fm = FlowMod::add(0, prio, ip_dst(v, 32), out(1));
            fm.idle_timeout = idle;
            fm.hard_timeout = hard;
            fm
        };
        let mut p = Pipeline::new(2, 100);
        for (prio, v, idle, hard) in [(10, 1, 0, 0), (10, 2, 5, 0), (10, 3, 0, 7), (10, 4, 3, 9)] {
            p.flow_mod(&with(prio, v, idle, hard), &NoGroups, now())
                .unwrap();
        }
        assert_eq!(timed(&p, 0), (3, 3));
        assert_eq!(timed(&p, 1), (0, 0));
        // Replacing a timed flow with an untimed one (same match and priority), and back.
        p.flow_mod(&with(10, 2, 0, 0), &NoGroups, now()).unwrap();
        assert_eq!(timed(&p, 0), (2, 2));
        p.flow_mod(&with(10, 1, 4, 0), &NoGroups, now()).unwrap();
        assert_eq!(timed(&p, 0), (3, 3));
        // A modify keeps each flow's timeouts.
        let mut m = FlowMod::add(0, 0, vec![], out(2));
        m.command = FlowModCommand::Modify;
        assert_eq!(p.flow_mod(&m, &NoGroups, now()).unwrap().modified, 4);
        assert_eq!(timed(&p, 0), (3, 3));
        // Deletes, one by one and by id.
        let mut d = FlowMod::add(0, 10, ip_dst(3, 32), out(1));
        d.command = FlowModCommand::DeleteStrict;
        assert_eq!(p.flow_mod(&d, &NoGroups, now()).unwrap().removed.len(), 1);
        assert_eq!(timed(&p, 0), (2, 2));
        let ids: Vec<(u8, u64)> = p.table(0).flows().map(|f| (0, f.id)).collect();
        assert_eq!(p.remove_flows(&ids).len(), 3);
        assert_eq!(timed(&p, 0), (0, 0));
        assert!(p.table(0).is_empty());
    }

    #[test]
    fn add_replaces_same_match_and_priority() {
        let mut p = Pipeline::new(1, 100);
        let r = p
            .flow_mod(
                &FlowMod::add(0, 10, ip_dst(0x0a00_0000, 8), out(1)),
                &NoGroups,
                now(),
            )
            .unwrap();
        assert_eq!((r.added, r.removed.len()), (1, 0));
        let r = p
            .flow_mod(
                &FlowMod::add(0, 10, ip_dst(0x0a00_0000, 8), out(2)),
                &NoGroups,
                now(),
            )
            .unwrap();
        assert_eq!((r.added, r.removed.len()), (1, 1));
        assert_eq!(p.len(), 1);
        let f = p.dump(&FlowFilter::default()).unwrap();
        assert_eq!(f[0].instructions, out(2));
    }

    #[test]
    fn check_overlap_refuses_overlapping_same_priority() {
        let mut p = Pipeline::new(1, 100);
        p.flow_mod(
            &FlowMod::add(0, 10, ip_dst(0x0a00_0000, 8), out(1)),
            &NoGroups,
            now(),
        )
        .unwrap();
        let mut fm = FlowMod::add(0, 10, ip_dst(0x0a01_0000, 16), out(2));
        fm.flags.check_overlap = true;
        let e = p.flow_mod(&fm, &NoGroups, now()).unwrap_err();
        assert_eq!(e.kind, FlowErrorKind::Overlap);
        fm.priority = 11;
        p.flow_mod(&fm, &NoGroups, now()).unwrap();
        // Disjoint at the same priority is fine.
        let mut fm = FlowMod::add(0, 10, ip_dst(0x0b00_0000, 8), out(2));
        fm.flags.check_overlap = true;
        p.flow_mod(&fm, &NoGroups, now()).unwrap();
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn delete_non_strict_takes_more_specific_flows_with_cookie_and_out_port() {
        let mut p = Pipeline::new(1, 100);
        for (i, (v, len)) in [(0x0a00_0000, 8), (0x0a01_0000, 16), (0x0b00_0000, 8)]
            .into_iter()
            .enumerate()
        {
            let mut fm = FlowMod::add(0, 10, ip_dst(v, len), out(u32::try_from(i).unwrap() + 1));
            fm.cookie = 0x100 + u64::try_from(i).unwrap();
            p.flow_mod(&fm, &NoGroups, now()).unwrap();
        }
        // A cookie filter that selects nothing.
        let mut d = FlowMod::delete(Some(0), ip_dst(0x0a00_0000, 8));
        d.cookie = 0x200;
        d.cookie_mask = 0xf00;
        assert!(p.flow_mod(&d, &NoGroups, now()).unwrap().removed.is_empty());
        // out_port 2 selects only the /16.
        let mut d = FlowMod::delete(Some(0), ip_dst(0x0a00_0000, 8));
        d.out_port = Some(2);
        assert_eq!(p.flow_mod(&d, &NoGroups, now()).unwrap().removed.len(), 1);
        // 10/8 covers 10.0/8 but not 11/8.
        let d = FlowMod::delete(None, ip_dst(0x0a00_0000, 8));
        assert_eq!(p.flow_mod(&d, &NoGroups, now()).unwrap().removed.len(), 1);
        assert_eq!(p.len(), 1);
        // Delete with an empty match removes everything.
        let d = FlowMod::delete(None, Vec::new());
        assert_eq!(p.flow_mod(&d, &NoGroups, now()).unwrap().removed.len(), 1);
        assert!(p.is_empty());
    }

    proptest::proptest! {
        /// A selection by a whole cookie (through the cookie index) finds what a look at every
        /// flow finds, through adds, replacements (another cookie), modifies and deletes.
        #[test]
        fn selection_by_a_whole_cookie_equals_a_look_at_every_flow(
            ops in proptest::collection::vec(
                (0u8..4, 0u8..2, 0u32..6, 0u8..3, 0u64..4, 0u32..3),
                0..80,
            ),
        ) {
            let mut p = Pipeline::new(1, 1000);
            for (kind, table, net, prio, cookie, port) in ops {
                let fields = ip_dst(0x0a00_0000 + (net << 8), if net % 2 == 0 { 24 } else { 16 });
                match kind {
                    0 | 1 => {
                        let mut fm = FlowMod::add(table, u16::from(prio), fields, out(port + 1));
                        fm.cookie = cookie;
                        p.flow_mod(&fm, &NoGroups, now()).unwrap();
                    }
                    2 => {
                        let mut fm = FlowMod::delete(Some(table), fields);
                        fm.command = FlowModCommand::Modify;
                        fm.instructions = out(port + 1);
                        p.flow_mod(&fm, &NoGroups, now()).unwrap();
                    }
                    _ => {
                        let mut fm = FlowMod::delete(None, fields);
                        fm.cookie = cookie;
                        fm.cookie_mask = u64::MAX;
                        p.flow_mod(&fm, &NoGroups, now()).unwrap();
                    }
                }
            }
            // The index holds the flows with a cookie, no more (no stale ids).
            for t in 0..2u8 {
                let table = p.table(t);
                let indexed = table.cookies.len();
                proptest::prop_assert_eq!(indexed, table.flows().filter(|f| f.cookie != 0).count());
            }
            let ids = |flows: Vec<Arc<Flow>>| flows.iter().map(|f| (f.table, f.id)).collect::<Vec<_>>();
            for cookie in 0..4u64 {
                for (fields, out_port) in [
                    (Vec::new(), None),
                    (ip_dst(0x0a00_0000, 8), Some(2)),
                    (ip_dst(0x0a00_0200, 24), None),
                ] {
                    let by_index = FlowFilter {
                        fields: fields.clone(),
                        cookie,
                        cookie_mask: u64::MAX,
                        out_port,
                        ..FlowFilter::default()
                    };
                    let all = FlowFilter {
                        fields,
                        out_port,
                        ..FlowFilter::default()
                    };
                    let want: Vec<Arc<Flow>> =
                        p.dump(&all).unwrap().into_iter().filter(|f| f.cookie == cookie).collect();
                    proptest::prop_assert_eq!(ids(p.dump(&by_index).unwrap()), ids(want));
                }
            }
        }
    }

    proptest::proptest! {
        /// Deleting groups or meters removes exactly the flows that use them (found through
        /// the reference indexes), through adds, replacements, modifies that change the
        /// groups a flow uses, and deletes; adds and modifies of groups remove none.
        #[test]
        fn deleting_groups_and_meters_removes_exactly_the_flows_that_use_them(
            ops in proptest::collection::vec(
                (0u8..6, 0u8..2, 0u32..6, 0u8..2, 1u32..4, 1u32..4),
                0..60,
            ),
        ) {
            use super::super::group::{Bucket, GroupType};
            use super::super::meter::{MeterConfig, MeterUnit};
            let group = |command, id| GroupMod {
                command,
                id,
                kind: GroupType::All,
                buckets: vec![Bucket { weight: 1, watch_port: None, actions: vec![Action::Output(1)] }],
            };
            let meter = |command, id| MeterMod {
                command,
                id,
                config: MeterConfig { unit: MeterUnit::Pktps, rate: 10, burst: 0 },
            };
            let uses = |f: &Flow, id: u32, meters: bool| {
                f.instructions.actions().any(|a| match *a {
                    Action::Group(g) => !meters && g == id,
                    Action::Meter(m) => meters && m == id,
                    _ => false,
                })
            };
            let mut p = Pipeline::new(1, 1000);
            for (kind, table, net, prio, g, m) in ops {
                // Every op makes sure groups and meters 1..4 exist first (deletes remove them).
                for id in 1..4 {
                    if p.group(id).is_none() {
                        p.group_mod(&group(ModCommand::Add, Some(id))).unwrap();
                    }
                    if p.meter(id).is_none() {
                        p.meter_mod(&meter(ModCommand::Add, Some(id))).unwrap();
                    }
                }
                let fields = ip_dst(0x0a00_0000 + (net << 8), 24);
                let acts = Instructions::apply(vec![Action::Meter(m), Action::Group(g)]);
                let before: Vec<Arc<Flow>> = p.dump(&FlowFilter::default()).unwrap();
                match kind {
                    0 | 1 => {
                        let fm = FlowMod::add(table, u16::from(prio), fields, acts);
                        p.flow_mod(&fm, &p.refs(), now()).unwrap();
                    }
                    2 => {
                        let mut fm = FlowMod::delete(Some(table), fields);
                        fm.command = FlowModCommand::Modify;
                        fm.instructions = acts;
                        p.flow_mod(&fm, &p.refs(), now()).unwrap();
                    }
                    3 => {
                        // A modify of a group removes nothing.
                        let r = p.group_mod(&group(ModCommand::Modify, Some(g))).unwrap();
                        proptest::prop_assert!(r.is_empty());
                    }
                    4 => {
                        let id = if net == 0 { None } else { Some(g) };
                        let removed = p.group_mod(&group(ModCommand::Delete, id)).unwrap();
                        let mut got: Vec<u64> = removed.iter().map(|f| f.id).collect();
                        let mut want: Vec<u64> = before
                            .iter()
                            .filter(|f| (1..4).any(|i| id.is_none_or(|g| g == i) && uses(f, i, false)))
                            .map(|f| f.id)
                            .collect();
                        got.sort_unstable();
                        want.sort_unstable();
                        proptest::prop_assert_eq!(got, want);
                    }
                    _ => {
                        let removed = p.meter_mod(&meter(ModCommand::Delete, Some(m))).unwrap();
                        let mut got: Vec<u64> = removed.iter().map(|f| f.id).collect();
                        let mut want: Vec<u64> =
                            before.iter().filter(|f| uses(f, m, true)).map(|f| f.id).collect();
                        got.sort_unstable();
                        want.sort_unstable();
                        proptest::prop_assert_eq!(got, want);
                    }
                }
                for t in 0..2u8 {
                    let table = p.table(t);
                    let groups: usize = table.flows().map(|f| (1..4).filter(|&i| uses(f, i, false)).count()).sum();
                    let meters: usize = table.flows().map(|f| (1..4).filter(|&i| uses(f, i, true)).count()).sum();
                    proptest::prop_assert_eq!(table.group_refs.len(), groups);
                    proptest::prop_assert_eq!(table.meter_refs.len(), meters);
                }
            }
        }
    }

    #[test]
    fn only_flows_whose_deadline_has_come_are_due_and_rearming_moves_them() {
        let mut p = Pipeline::new(1, 100);
        let t0 = now();
        let past = t0.checked_sub(Duration::from_secs(5)).unwrap();
        // (name, idle, hard), all added 5 s ago.
        let flows = [
            ("a", 1, 0),
            ("b", 0, 10),
            ("c", 10, 0),
            ("d", 0, 0),
            ("e", 100, 2),
        ];
        for (i, (_, idle, hard)) in flows.iter().enumerate() {
            let mut fm = FlowMod::add(
                0,
                10,
                ip_dst(0x0a00_0000 + u32::try_from(i).unwrap(), 32),
                out(1),
            );
            fm.idle_timeout = *idle;
            fm.hard_timeout = *hard;
            p.flow_mod(&fm, &NoGroups, past).unwrap();
        }
        let id_of = |p: &Pipeline, i: u32| {
            p.dump(&FlowFilter {
                fields: ip_dst(0x0a00_0000 + i, 32),
                ..FlowFilter::default()
            })
            .unwrap()[0]
                .id
        };
        let due = |p: &Pipeline, at: Instant| {
            let mut v: Vec<u64> = p.table(0).due_by(at).map(|f| f.id).collect();
            v.sort_unstable();
            v
        };
        let (a, b, c, e) = (id_of(&p, 0), id_of(&p, 1), id_of(&p, 2), id_of(&p, 4));
        // a's idle second and e's hard 2 s have passed; b (10 s hard) and c (10 s idle) not.
        assert_eq!(due(&p, t0), [a, e]);
        assert_eq!(due(&p, t0 + Duration::from_secs(6)), [a, b, c, e]);
        // a was hit: its next deadline is in 3 s.
        p.rearm(&[(0, a, t0 + Duration::from_secs(3))]);
        assert_eq!(due(&p, t0), [e]);
        assert_eq!(due(&p, t0 + Duration::from_secs(3)), [a, e]);
        // A modify starts it over from its first deadline (then re-armed again if hit).
        let mut m = FlowMod::delete(Some(0), ip_dst(0x0a00_0000, 32));
        m.command = FlowModCommand::ModifyStrict;
        m.priority = 10;
        m.instructions = out(2);
        p.flow_mod(&m, &NoGroups, t0).unwrap();
        assert_eq!(due(&p, t0), [a, e]);
        // A removed flow is not due; the index holds the timed flows, no more.
        p.remove_flows(&[(0, e)]);
        assert_eq!(due(&p, t0), [a]);
        assert_eq!(p.table(0).deadlines.len(), 3);
        assert_eq!(p.table(0).due.len(), 3);
    }

    #[test]
    fn a_table_refuses_more_distinct_match_shapes_than_its_bound() {
        let mut p = Pipeline::new(1, 10_000);
        let shape = |mask: u64| {
            vec![MatchField {
                field: Field::Metadata,
                value: 0,
                mask: Some(u128::from(mask)),
            }]
        };
        for mask in 1..=u64::try_from(crate::classifier::MAX_MASKS).unwrap() {
            p.flow_mod(&FlowMod::add(0, 1, shape(mask), out(1)), &NoGroups, now())
                .unwrap();
        }
        let e = p
            .flow_mod(
                &FlowMod::add(0, 1, shape(1 << 40), out(1)),
                &NoGroups,
                now(),
            )
            .unwrap_err();
        assert_eq!(e.kind, FlowErrorKind::TableFull);
        assert!(e.message.contains("distinct match shapes"), "{}", e.message);
        // Another table has its own bound; a known shape is still taken.
        p.flow_mod(
            &FlowMod::add(1, 1, shape(1 << 40), out(1)),
            &NoGroups,
            now(),
        )
        .unwrap();
        p.flow_mod(&FlowMod::add(0, 2, shape(1), out(1)), &NoGroups, now())
            .unwrap();
    }

    #[test]
    fn modify_keeps_counters_and_cookie_strict_needs_exact() {
        let mut p = Pipeline::new(1, 100);
        let mut fm = FlowMod::add(0, 10, ip_dst(0x0a00_0000, 8), out(1));
        fm.cookie = 7;
        p.flow_mod(&fm, &NoGroups, now()).unwrap();
        let f = p.dump(&FlowFilter::default()).unwrap().remove(0);
        f.stats.hit(0, 3, 300, 1);
        let mut m = fm.clone();
        m.command = FlowModCommand::ModifyStrict;
        m.priority = 11;
        m.instructions = out(5);
        assert_eq!(p.flow_mod(&m, &NoGroups, now()).unwrap().modified, 0);
        m.priority = 10;
        assert_eq!(p.flow_mod(&m, &NoGroups, now()).unwrap().modified, 1);
        let f = p.dump(&FlowFilter::default()).unwrap().remove(0);
        assert_eq!(f.instructions, out(5));
        assert_eq!(f.cookie, 7);
        assert_eq!(f.stats.totals(), (3, 300));
        // The versions share the counters: a hit charged through the old version (a cache
        // entry still holding it) counts for the new one.
        // reset_counts starts new counters that keep the latest hit (the idle clock); the old
        // handle no longer counts for the flow.
        let old_stats = f.stats.clone();
        for (reset, port, totals, last) in [(false, 6, (4, 400), 6), (true, 7, (0, 0), 6)] {
            m.flags.reset_counts = reset;
            m.instructions = out(port);
            p.flow_mod(&m, &NoGroups, now()).unwrap();
            old_stats.hit(0, 1, 100, u64::from(port));
            let f = p.dump(&FlowFilter::default()).unwrap().remove(0);
            assert_eq!(f.stats.totals(), totals, "reset_counts {reset}");
            assert_eq!(f.stats.last_hit_ms(), last, "reset_counts {reset}");
        }
    }

    #[test]
    fn bundle_is_all_or_nothing() {
        let mut p = Pipeline::learning_bridge(1, 100);
        let good = FlowMod::add(0, 10, ip_dst(0x0a00_0000, 8), out(1));
        let bad = FlowMod::add(0, 10, vec![mf(Field::TcpDst, 80)], out(1));
        let (i, e) = p
            .bundle(&[good.clone(), bad], &NoGroups, now())
            .unwrap_err();
        assert_eq!(i, 1);
        assert_eq!(e.kind, FlowErrorKind::BadPrereq);
        assert_eq!(p.len(), 1);
        p.bundle(&[good], &NoGroups, now()).unwrap();
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn tables_are_bounded_and_shared_until_changed() {
        let mut p = Pipeline::new(1, 2);
        for v in 0..2u32 {
            p.flow_mod(
                &FlowMod::add(0, 1, ip_dst(v << 24, 8), out(1)),
                &NoGroups,
                now(),
            )
            .unwrap();
        }
        let e = p
            .flow_mod(
                &FlowMod::add(0, 1, ip_dst(9 << 24, 8), out(1)),
                &NoGroups,
                now(),
            )
            .unwrap_err();
        assert_eq!(e.kind, FlowErrorKind::TableFull);
        // Replacing at capacity is fine.
        p.flow_mod(
            &FlowMod::add(0, 1, ip_dst(1 << 24, 8), out(2)),
            &NoGroups,
            now(),
        )
        .unwrap();
        let snapshot = p.clone();
        assert!(Arc::ptr_eq(&snapshot.tables[0], &p.tables[0]));
        p.flow_mod(&FlowMod::add(1, 1, Vec::new(), out(1)), &NoGroups, now())
            .unwrap();
        assert!(Arc::ptr_eq(&snapshot.tables[0], &p.tables[0]));
        assert!(!Arc::ptr_eq(&snapshot.tables[1], &p.tables[1]));
        assert_eq!(snapshot.len(), 2);
    }

    #[test]
    fn invalid_instructions_are_rejected_at_insertion() {
        let mut p = Pipeline::new(1, 10);
        let cases: Vec<(Instructions, FlowErrorKind)> = vec![
            (
                Instructions {
                    goto_table: Some(0),
                    ..Instructions::default()
                },
                FlowErrorKind::BadTable,
            ),
            (
                Instructions::apply(vec![Action::Output(0)]),
                FlowErrorKind::BadPort,
            ),
            (
                Instructions::apply(vec![Action::PopVlan]),
                FlowErrorKind::BadPrereq,
            ),
            (
                Instructions::apply(vec![Action::DecTtl]),
                FlowErrorKind::BadPrereq,
            ),
            (
                Instructions::apply(vec![Action::SetField {
                    field: Field::IpDst,
                    value: 1,
                }]),
                FlowErrorKind::BadPrereq,
            ),
            (
                Instructions::apply(vec![Action::SetField {
                    field: Field::InPort,
                    value: 1,
                }]),
                FlowErrorKind::BadAction,
            ),
            (
                Instructions::apply(vec![Action::Group(1)]),
                FlowErrorKind::UnknownGroup,
            ),
        ];
        for (ins, kind) in cases {
            let e = p
                .flow_mod(
                    &FlowMod::add(0, 1, Vec::new(), ins.clone()),
                    &NoGroups,
                    now(),
                )
                .unwrap_err();
            assert_eq!(e.kind, kind, "{ins:?}");
        }
        assert!(p.is_empty());
        // push_vlan makes pop_vlan and set vlan_vid valid.
        let ok = Instructions::apply(vec![
            Action::PushVlan(0x8100),
            Action::SetField {
                field: Field::VlanVid,
                value: 10,
            },
            Action::Output(1),
        ]);
        p.flow_mod(&FlowMod::add(0, 1, Vec::new(), ok), &NoGroups, now())
            .unwrap();
    }
}
