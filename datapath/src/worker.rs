//! Worker threads and the flow-cached pipeline over batches (hot path).
//!
//! Each worker owns a set of ports (all their rx queues, and their tx side) and runs to
//! completion over batches of up to [`BATCH_SIZE`] frames:
//!
//! 1. read the published [`Snapshot`] generation (one atomic load) and the clock, once per pass;
//!    on a new pipeline, begin revalidating the flow cache before anything else (each pass
//!    sweeps [`REVALIDATE_SLICE`] entries; a hit on one not swept yet checks it first);
//!    translate frames whose translation was deferred by the previous pass;
//! 2. for each owned (port, queue): `rx_burst`, then per frame: complete partial checksums where the
//!    backend loses them (AF_XDP), extract the [`FlowKey`] (malformed → counted drop). A frame
//!    whose key equals the previous frame's in every bit its cache entry depends on (the
//!    entry's mask, plus in_port, MACs and tag for `normal`; [`crate::cache::CachedFlow::same_run`])
//!    joins that frame's *run* without a lookup; any other frame ends the run and is looked up
//!    in the worker's [`FlowCache`] (a miss is translated, within [`UPCALL_BUDGET`], or
//!    deferred). When a run ends, the flows it went through are charged once with all its
//!    frames, and if its ops only forward (outputs, `normal`, flood) they run once for the run:
//!    each output port is resolved and `normal` decides (VLAN classification, MAC learning and
//!    lookup, flooding) once, then the run's frames are queued on the port in order, its
//!    counters added once. Ops that rewrite, meter, group or send packet-ins run per frame as
//!    the frame joins. Each output queues the frame on its port (tag pushed/popped/rewritten for
//!    `normal` as the output port wants it, checksums completed and GSO frames segmented for
//!    ports without offloads); frames leave in the order they came;
//! 3. flush each port that got frames once per batch; frames for ports owned by another worker go
//!    through a bounded hand-off channel to that worker, which transmits them.
//!
//! Thread-safety: the worker is the only writer of its ports' counters and its own counters. It
//! reads configuration only from immutable snapshots (`ArcSwap`, no locks) and takes commands from
//! the control thread through a bounded channel, polled once per pass.
//!
//! Idle behaviour: in [`PollMode::Busy`] the worker polls continuously. In
//! [`PollMode::Adaptive`] it sleeps on epoll (rx readiness of every owned queue plus an eventfd
//! others use to wake it) after [`IDLE_SPINS`] empty passes. Under load, in either mode, a pass
//! that forwarded a few frames ([`HOLD_MIN_FRAMES`] or more, no batch full) is followed by the
//! batch hold ([`Worker::set_batch_hold`]), so that the next pass finds a bigger batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::buf::{BATCH_SIZE, Offload, RxBatch, RxDesc};
use crate::cache::FlowCache;
use crate::flow::{self, FlowKey, Layout};
use crate::l2::{Learned, MacTable};
use crate::notify::PacketIn;
use crate::offload;
use crate::ofp::action::Action;
use crate::ofp::pipeline::Pipeline;
use crate::ofp::rewrite;
use crate::ofp::xlate::CtlMeta;
use crate::port::gone::GonePort;
use crate::port::{Port, PortKind};
use crate::stamps::{Part, PassStamps};
use crate::stats::{Counter, DropReason, PortCounters};
use crate::switch::{MAX_PORTS, PollMode, VlanMode};
use crate::sys::cpu;
use crate::sys::poller::{Poller, Waker};

/// Empty passes before an adaptive worker goes to sleep.
pub const IDLE_SPINS: u32 = 2_000;
/// Time without work before an adaptive worker goes to sleep (checked when the clock is read).
pub const IDLE_TIME: Duration = Duration::from_micros(200);
/// Empty passes before an idle worker starts yielding its CPU, and how often it then yields.
const YIELD_AFTER: u32 = 256;
const YIELD_EVERY: u32 = 32;
/// An idle worker reads the clock once every this many empty passes (and on every pass after
/// one that had work).
const CLOCK_IDLE_PASSES: u32 = 128;
/// How often a threaded worker reads the monotonic clock; in between it extrapolates with the
/// time-stamp counter (a few ns to read, against ~25 for the clock).
const CLOCK_ANCHOR: Duration = Duration::from_millis(10);
/// How often (in milliseconds of the switch clock, read at least once per pass that follows
/// work and every 128 empty ones) the worker runs its ports'
/// [`Port::maintain`]; a sleeping worker runs it when it wakes.
pub const MAINTAIN_MS: u64 = 1;
/// How often (in passes) the worker reads its ports' own drop counts
/// ([`Port::take_backend_drops`]: a system call per socket on AF_XDP and AF_PACKET).
pub const DROPS_EVERY_PASSES: u32 = 1_024;
/// The longest the worker goes without reading its ports' drop counts, in milliseconds of the
/// switch clock, however few its passes (an adaptive worker that sleeps makes ten a second):
/// a drop shows in the port's counters at most this late, plus a sleep ([`MAX_SLEEP`]) that
/// began just before the reading fell due.
pub const DROPS_EVERY_MS: u64 = 100;
/// A pass must have forwarded at least this many frames for the worker to hold before the
/// next one ([`Worker::set_batch_hold`]): a lone frame is light load, where a hold would only
/// add latency.
pub const HOLD_MIN_FRAMES: usize = 2;
/// The longest batch hold a switch accepts ([`Worker::set_batch_hold`]; a switch refuses to
/// start with a longer one).
pub const MAX_BATCH_HOLD: Duration = Duration::from_micros(100);
/// Longest sleep of an idle worker (it also wakes on rx readiness and commands).
pub const MAX_SLEEP: Duration = Duration::from_millis(100);
/// Frames that may wait in one worker's hand-off channel.
pub const HANDOFF_CAPACITY: usize = 4_096;
/// Hand-off buffers larger than this are pooled only while the pool holds fewer than
/// [`MAX_POOLED_BIG`] buffers, so a burst of GSO frames does not pin memory forever.
pub const MAX_POOLED_BIG_LEN: usize = 9216;
/// See [`MAX_POOLED_BIG_LEN`].
pub const MAX_POOLED_BIG: usize = 64;
/// Largest frame: a GSO super-frame of 64 KiB plus headers and two tags.
pub const MAX_FRAME: usize = 65_535 + 14 + 8;
/// Translations (cache misses) a worker performs per rx batch; further misses in the batch wait
/// (copied) in a bounded queue of [`PENDING_MAX`] frames, translated at the start of the next
/// pass under the same budget, so a flood of new flows cannot starve cached traffic. Beyond
/// the queue they are dropped and counted (the worker's `upcall_drops`, the ingress port's
/// receive drops [`DropReason::UpcallFull`]).
pub const UPCALL_BUDGET: usize = 32;
/// Frames waiting for a translation (per worker).
pub const PENDING_MAX: usize = 1_024;
/// Lookups in a batch (frames that joined no run of the frame before) from which the next
/// batch is looked up in stages: first every frame's key, its hash and a prefetch of its EMC
/// set; then a prefetch of the entry each set names; then the lookups, on warm lines. With
/// many flows each of those is a cache miss per frame, which one frame after another pay in
/// turn and a batch in stages pays once, overlapped. Below it (few flows: most frames join a
/// run, and need no hash) the batch goes straight through.
pub const STAGED_LOOKUPS: u32 = 16;
/// How many frames behind the first stage of a staged lookup the second runs (see
/// [`STAGED_LOOKUPS`]).
const STAGE_LAG: usize = 8;
/// Seconds without a hit after which a cached translation is removed.
pub const CACHE_IDLE_SECS: u32 = 10;
/// The idle-expiry sweep looks at `1 / EXPIRE_SLICES` of the cache's entries per millisecond
/// of the switch clock, at least [`EXPIRE_SLICE_MIN`]: a whole sweep per second, in slices
/// that cost a pass ~0.2 µs at the default capacity (a whole sweep at once paused a pass for
/// ~140 µs with the cache full, `cache/expire_pass`).
pub const EXPIRE_SLICES: usize = 1_000;
/// See [`EXPIRE_SLICES`].
pub const EXPIRE_SLICE_MIN: usize = 64;
/// A hit charges its cache entry, and the entry's flows get the counts later
/// ([`FlowCache::charge`]): every millisecond the worker pushes the counts of `1 /
/// PUSH_SLICES` of the cache's entries (at least [`PUSH_SLICE_MIN`]), oldest charges first, so
/// that a flow's counters run at most about a second behind its hits even when nobody asks;
/// a flow with many hits per second gets them in a few writes instead of one per batch.
pub const PUSH_SLICES: usize = 1_000;
/// See [`PUSH_SLICES`].
pub const PUSH_SLICE_MIN: usize = 1;
/// Entries a pass pushes while the switch waits for every charge so far to reach the flows
/// (a read of flow counters: `Switch::sync_flow_stats`), so that the wait costs no pass more
/// than a few tens of µs however many flows are active.
pub const SYNC_SLICE: usize = 256;
/// Cache entries a pass checks of a revalidation sweep after a flow change (~8 µs of work
/// when no entry is affected, `cache/revalidate_slice`; a whole sweep of 65,536 entries at
/// once paused a pass for ~0.5 ms, ~1.25 ms before the word-by-word check,
/// `cache/revalidate_one_change`). Entries the sweep has not reached are checked when a
/// frame hits them.
pub const REVALIDATE_SLICE: usize = 1_024;
/// Frames larger than this count as jumbo/GSO in the port counters (1518 = 1500 + 14 + 4).
pub const JUMBO_THRESHOLD: usize = 1518;

/// Configuration of one port as workers see it.
#[derive(Debug)]
pub struct PortConf {
    /// Port number.
    pub id: u32,
    /// Distinguishes this port from earlier ports that had the same number.
    pub incarnation: u64,
    /// VLAN behaviour.
    pub vlan: VlanMode,
    /// Worker that owns the port.
    pub worker: usize,
    /// The link is up (fast-failover groups skip ports that are not).
    pub live: bool,
    /// The counters of its first part, whose worker transmits on it: other workers count
    /// there the frames for it they could not hand off ([`PortCounters::handoff_full`]).
    pub counters: Option<Arc<PortCounters>>,
}

/// Immutable configuration published to the workers. A new one replaces the old atomically.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases with each publication.
    pub generation: u64,
    /// Ports by port number (index 0 unused).
    pub ports: Box<[Option<PortConf>]>,
    /// Ports to flood to, per VLAN (trunks that carry every VLAN are in `trunk_all` instead).
    pub flood: ahash::HashMap<u16, Box<[u32]>>,
    /// Trunk ports that carry every VLAN.
    pub trunk_all: Box<[u32]>,
    /// Every port number, ascending (for flood/all).
    pub all_ports: Box<[u32]>,
    /// The flow tables.
    pub pipeline: Arc<Pipeline>,
}

impl Snapshot {
    /// An empty configuration.
    pub fn empty() -> Self {
        Self::build(0, Vec::new(), Arc::new(Pipeline::learning_bridge(1, 16)))
    }

    /// Builds a snapshot from the port list and the flow tables.
    pub fn build(generation: u64, confs: Vec<PortConf>, pipeline: Arc<Pipeline>) -> Self {
        let mut ports: Vec<Option<PortConf>> = (0..=MAX_PORTS).map(|_| None).collect();
        let mut flood: ahash::HashMap<u16, Vec<u32>> =
            ahash::HashMap::with_hasher(crate::hash::state());
        let mut trunk_all = Vec::new();
        let mut all_ports: Vec<u32> = confs.iter().map(|c| c.id).collect();
        all_ports.sort_unstable();
        for c in confs {
            match &c.vlan {
                VlanMode::Access { vlan } => flood.entry(*vlan).or_default().push(c.id),
                VlanMode::Trunk { allowed, native } => {
                    if allowed.is_empty() {
                        trunk_all.push(c.id);
                    } else {
                        for v in allowed {
                            flood.entry(*v).or_default().push(c.id);
                        }
                        if let Some(n) = native
                            && !allowed.contains(n)
                        {
                            flood.entry(*n).or_default().push(c.id);
                        }
                    }
                }
            }
            let slot = usize::try_from(c.id).unwrap_or(usize::MAX);
            if let Some(s) = ports.get_mut(slot) {
                *s = Some(c);
            }
        }
        Self {
            generation,
            ports: ports.into_boxed_slice(),
            flood: flood
                .into_iter()
                .map(|(k, v)| (k, v.into_boxed_slice()))
                .collect(),
            trunk_all: trunk_all.into_boxed_slice(),
            all_ports: all_ports.into_boxed_slice(),
            pipeline,
        }
    }

    #[inline]
    fn port(&self, id: u32) -> Option<&PortConf> {
        self.ports.get(id as usize).and_then(Option::as_ref)
    }
}

/// State shared by the control thread and all workers.
#[derive(Debug)]
pub struct Shared {
    /// The published configuration.
    pub snapshot: ArcSwap<Snapshot>,
    /// Generation of the published snapshot, stored (Release) after it: workers read this
    /// plain atomic every pass and load the snapshot (two atomic read-modify-writes in
    /// `arc_swap`, measured at ~4 % of a forwarding core) only when it changed.
    pub generation: std::sync::atomic::AtomicU64,
    /// Requests for the flows' counters, counted up before a new generation is published: a
    /// worker that switches to it with a new count pushes every charge its cache owes the
    /// flows before it reports the generation as seen (see `Switch::sync_flow_stats`).
    pub stats_req: std::sync::atomic::AtomicU64,
    /// The MAC table.
    pub macs: MacTable,
    /// Time zero of the switch clock (MAC ages are seconds since this).
    pub start: Instant,
    /// Packet-ins for the control thread (bounded: [`PACKET_IN_QUEUE`](crate::notify::PACKET_IN_QUEUE)).
    pub packet_in: Sender<PacketIn>,
    /// Wakes the control thread: called for the first packet-in queued after the control
    /// thread armed `packet_in_armed`.
    pub control_waker: std::sync::OnceLock<ControlWaker>,
    /// Set by the control thread before it may sleep (`Switch::has_events`), taken by the
    /// first worker that queues a packet-in after it, which then wakes it: one wake-up per
    /// sleep, none lost. (Until 2026-12-07 a worker woke it when the queue held one
    /// packet-in after its own; two workers queuing at once each saw two and neither woke
    /// it, found by an audit: the packet-ins waited for the loop's timeout.)
    pub packet_in_armed: AtomicBool,
    /// A port failed to receive: its device may be gone. The control thread reads the links
    /// at its next turn (`Switch::drain_events`), the worker having woken it.
    pub links_suspect: AtomicBool,
}

/// Wakes the control thread (set by the control server).
pub struct ControlWaker(pub Box<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for ControlWaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ControlWaker")
    }
}

impl Shared {
    /// Seconds since start, as the MAC table counts them.
    pub fn now_secs(&self) -> u32 {
        u32::try_from(self.start.elapsed().as_secs()).unwrap_or(u32::MAX)
    }
}

/// Counters of one worker (single writer: the worker).
#[derive(Debug, Default)]
pub struct WorkerCounters {
    /// Non-empty rx bursts processed.
    pub batches: Counter,
    /// Frames received.
    pub frames: Counter,
    /// Times the worker slept.
    pub sleeps: Counter,
    /// Frames for another worker's port dropped because its hand-off channel was full (also
    /// counted on that port: [`PortCounters::handoff_full`]), or because the port was gone
    /// when they came out of the channel.
    pub handoff_drops: Counter,
    /// Source addresses not learned because the MAC table was full (no entry could be
    /// evicted for them).
    pub mac_learn_full: Counter,
    /// Source addresses not learned because their port held its bound of addresses.
    pub mac_learn_port_full: Counter,
    /// Flow cache: exact-match cache hits.
    pub emc_hits: Counter,
    /// Flow cache: frames that joined the run of the frame before them (no lookup).
    pub run_hits: Counter,
    /// Flow cache: megaflow hits.
    pub megaflow_hits: Counter,
    /// Flow cache: misses.
    pub cache_misses: Counter,
    /// Translations installed (upcalls).
    pub upcalls: Counter,
    /// Frames dropped because the batch's upcall budget was spent.
    pub upcall_drops: Counter,
    /// Cache entries evicted for room.
    pub cache_evictions: Counter,
    /// Cache entries removed as idle.
    pub cache_expired: Counter,
    /// Cache entries re-translated after pipeline changes.
    pub cache_revalidated: Counter,
    /// Whole-cache flushes.
    pub cache_flushes: Counter,
    /// Megaflows held now.
    pub cache_entries: Counter,
    /// Packet-ins queued for controllers.
    pub packet_ins: Counter,
    /// Packet-ins dropped because the queue to the control thread was full.
    pub packet_in_drops: Counter,
    /// Packet-outs run.
    pub packet_outs: Counter,
    /// Packet-outs dropped (malformed frame, or every action failed).
    pub packet_out_drops: Counter,
    /// Nanoseconds of passes that had work, each from the moment its work was found (its
    /// start, or its first non-empty poll after empty passes) to the end of its last transmit
    /// flush (the next pass's clock reading; without a flush, the start of the next pass):
    /// the worker's real load, which busy polling hides from `top`. Not kept by inline
    /// workers.
    pub busy_ns: Counter,
    /// Receive batches that came back full ([`BATCH_SIZE`] frames): with `batches` and
    /// `frames`, how much of the traffic the worker took while behind (a poll that fills the
    /// batch leaves frames waiting) rather than as it arrived.
    pub full_batches: Counter,
    /// Nanoseconds spent in the ports' transmit flushes at the end of a batch or a hand-off
    /// ([`Port::tx_flush`]: for AF_XDP the `sendto` kicks, inside which the kernel copies each
    /// frame into an skb and runs the receiving side's stack). `busy_ns` minus this is the
    /// worker's own work; flushes forced mid-batch by a full transmit queue are not timed.
    /// Timed with the TSC (a few ns per flush). Not kept by inline workers.
    pub flush_ns: Counter,
    /// Batch holds: passes after which the worker waited before polling again so that the
    /// next receive batch would be bigger ([`Worker::set_batch_hold`]).
    pub holds: Counter,
    /// Receive batches looked up in stages ([`STAGED_LOOKUPS`]): those that came after a
    /// batch of many flows.
    pub staged_batches: Counter,
    /// Receive polls that failed (a device gone or down: no frame was lost by them).
    pub rx_errors: Counter,
}

/// What the control thread and other workers hold of a worker.
#[derive(Debug)]
pub struct WorkerCtl {
    /// Set while the worker sleeps in epoll.
    pub sleeping: AtomicBool,
    /// Wakes the worker.
    pub waker: Waker,
    /// The worker's counters.
    pub counters: WorkerCounters,
    /// Hand-off channel into this worker.
    pub handoff: Sender<Handoff>,
    /// Generation of the newest snapshot this worker has switched to (its cache revalidated);
    /// barriers wait for it.
    pub seen_generation: std::sync::atomic::AtomicU64,
    /// Packets that found no flow, per table (single writer: the worker).
    pub table_misses: Box<[Counter]>,
}

impl WorkerCtl {
    /// Wakes the worker if it sleeps.
    pub fn wake_if_sleeping(&self) {
        // Pairs with the fence in `Worker::sleep`: either the worker sees our frame in its
        // channel, or we see it asleep and wake it.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) {
            self.waker.wake();
        }
    }
}

/// A frame handed from one worker to the worker that owns its output port.
#[derive(Debug)]
pub struct Handoff {
    /// Output port number.
    pub port: u32,
    /// Frame bytes (a recycled buffer of the sending worker).
    pub buf: Vec<u8>,
    /// Offload state.
    pub offload: Offload,
    /// Worker that sent it (the buffer goes back to it).
    pub from: usize,
    /// Incarnation of the output port when the frame was switched.
    pub incarnation: u64,
}

/// A port owned by a worker.
#[derive(Debug)]
pub struct LocalPort {
    /// Port number.
    pub id: u32,
    /// Distinguishes this port from earlier ports that had the same number.
    pub incarnation: u64,
    /// The backend.
    pub port: Box<dyn Port>,
    /// Counters (written only by the owning worker).
    pub counters: Arc<PortCounters>,
    /// Worker clock (ms) before which a failed receive does not ask the control thread to
    /// look at the links again ([`Shared::links_suspect`]; 0 when new).
    pub next_suspect_ms: u64,
}

/// How often, at most, a port whose receive fails asks the control thread to look at the
/// links (a deleted tap fails every read; its device may be in another namespace, whose
/// announcements the switch does not get).
const SUSPECT_EVERY_MS: u64 = 100;

/// Commands from the control thread to a worker.
#[derive(Debug)]
pub enum Command {
    /// Start polling this port.
    AddPort(Box<LocalPort>),
    /// Stop polling port `id` and close it; `done` is signalled after it is closed.
    DelPort {
        /// Port number.
        id: u32,
        /// Signalled once the port is closed.
        done: Sender<()>,
    },
    /// Port `id`'s device is gone: close its backend and keep the port with a stand-in that
    /// receives nothing and drops what is sent to it ([`GonePort`]); `done` is signalled after
    /// the old backend is closed.
    ParkPort {
        /// Port number.
        id: u32,
        /// Signalled once the old backend is closed.
        done: Sender<()>,
    },
    /// Port `id`'s device has MTU `mtu` now ([`Port::set_mtu`]).
    SetMtu {
        /// Port number.
        id: u32,
        /// The device's MTU.
        mtu: u32,
    },
    /// Run a packet-out.
    PacketOut(Box<PacketOutJob>),
    /// Exit the thread (closing every port).
    Stop,
}

/// A frame injected by a controller.
#[derive(Debug)]
pub struct PacketOutJob {
    /// Ingress port it pretends to come from (0: the controller).
    pub in_port: u32,
    /// The frame.
    pub data: Vec<u8>,
    /// Actions to run (validated); `None`: through the tables from table 0.
    pub actions: Option<Vec<Action>>,
}

/// How a frame must leave on a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Egress {
    Untagged,
    Tagged(u16),
}

fn egress(mode: &VlanMode, vlan: u16) -> Egress {
    match mode {
        VlanMode::Access { .. } => Egress::Untagged,
        VlanMode::Trunk { native, .. } if *native == Some(vlan) => Egress::Untagged,
        VlanMode::Trunk { .. } => Egress::Tagged(vlan),
    }
}

/// VLAN a frame with `tags` tags, the outer one `tci`, belongs to on ingress; `None` when it is not
/// allowed. A frame classified as untagged (no tag, or a priority tag with VID 0) must not carry a
/// second tag: popping the outer one on egress would let the inner tag pick another VLAN.
fn ingress_vlan(mode: &VlanMode, tci: u16, tags: u8) -> Option<u16> {
    let vid = if tci & flow::VLAN_PRESENT != 0 {
        tci & 0x0fff
    } else {
        0
    };
    if vid == 0x0fff || (vid == 0 && tags > 1) {
        return None;
    }
    match mode {
        VlanMode::Access { vlan } => (vid == 0).then_some(*vlan),
        VlanMode::Trunk { allowed, native } => {
            if vid == 0 {
                *native
            } else if allowed.is_empty() || allowed.binary_search(&vid).is_ok() {
                Some(vid)
            } else {
                None
            }
        }
    }
}

fn member(mode: &VlanMode, vlan: u16) -> bool {
    match mode {
        VlanMode::Access { vlan: v } => *v == vlan,
        VlanMode::Trunk { allowed, native } => {
            allowed.is_empty() || allowed.binary_search(&vlan).is_ok() || *native == Some(vlan)
        }
    }
}

/// Scratch memory of a worker for frames that must be rewritten or segmented on output.
#[derive(Debug)]
struct Scratch {
    frame: Vec<u8>,
    /// The frame as actions rewrote it (and a second buffer for push/pop).
    work: Vec<u8>,
    alt: Vec<u8>,
    /// The frame as a group found it, for its next bucket.
    base: Vec<u8>,
    seg: offload::SegmentBuf,
    /// Buffers for hand-off, recycled by the receiving worker.
    pool: Vec<Vec<u8>>,
}

/// A worker: its ports and its per-thread state.
#[derive(Debug)]
pub struct Worker {
    index: usize,
    shared: Arc<Shared>,
    ctls: Arc<[Arc<WorkerCtl>]>,
    cmds: Receiver<Command>,
    handoff_rx: Receiver<Handoff>,
    recycle_rx: Receiver<Vec<u8>>,
    recycle_tx: Arc<[Sender<Vec<u8>>]>,
    poll_mode: PollMode,
    poller: Poller,
    /// The configuration this worker switches with. A batch takes it out while it runs (and
    /// puts it back): cloning the `Arc` instead costs two locked read-modify-writes per
    /// batch. Only `None` inside a batch.
    snap: Option<Arc<Snapshot>>,
    ports: Vec<LocalPort>,
    local_of: Box<[u16]>,
    dirty: Vec<bool>,
    batch: RxBatch,
    scratch: Scratch,
    now: u32,
    now_ms: u64,
    now_ns: u64,
    /// Boxed: a batch takes it out of the worker and puts it back (to borrow it apart from the
    /// rest), which moves a pointer rather than the whole cache (two `memcpy` calls, ~150
    /// instructions, per pass).
    cache: Option<Box<FlowCache>>,
    /// Frames whose translation was deferred (bounded: [`PENDING_MAX`]).
    pending: std::collections::VecDeque<Pending>,
    /// Spare buffers for `pending`.
    pending_pool: Vec<Vec<u8>>,
    last_second: u32,
    /// Switch clock (ms) at which the ports' [`Port::maintain`] runs next.
    next_maintain_ms: u64,
    /// Switch clock (ms) at which the ports' drop counts are read next, if
    /// [`DROPS_EVERY_PASSES`] passes do not come first.
    next_drops_ms: u64,
    /// The switch clock as last read by [`Worker::pass`] (or [`Worker::work_found`]).
    clock: Duration,
    /// `clock` was read during this pass: at its start, or when its first work was found.
    clock_fresh: bool,
    /// The (VLAN, MAC, port) learned last in the current batch.
    last_learned: Option<(u16, [u8; 6], u32)>,
    /// That learning found the MAC table full.
    last_learn_full: bool,
    /// The frame (or run) being executed had a copy withheld by the double-tag guard
    /// ([`Worker::output`]): if nothing else sent it, it counts as `vlan_not_allowed`.
    withheld: bool,
    /// Recent `normal` decisions ([`NormalMemo`]), direct-mapped by [`memo_slot`].
    normal_memo: [NormalMemo; NORMAL_MEMO],
    /// Passes run by [`Worker::poll_inline`].
    inline_passes: u32,
    /// [`cpu::ticks`] spent in end-of-batch transmit flushes, published as
    /// [`WorkerCounters::flush_ns`] (threaded workers only).
    flush_ticks: u64,
    /// Whether flushes are timed (threaded workers; an inline worker's clock is its caller's).
    time_flushes: bool,
    /// [`cpu::ticks`] at the end of this pass's last timed flush (0: none yet): the next pass
    /// takes it as its clock reading instead of reading the counter again (a pass with work
    /// read it three times; a reading costs ~14 ns inside a pass on this kind of host, where
    /// a pass with one frame is ~180 ns of the worker's own work). Commands reset it.
    flush_end: u64,
    /// Time per part of the passes that forward (feature `pass-stamps`; else empty).
    stamps: PassStamps,
    /// [`cpu::ticks`] a threaded worker waits after a pass that forwarded some frames, none
    /// of its receive batches full (0: it polls again at once); see
    /// [`Worker::set_batch_hold`].
    hold_ticks: u64,
    /// A receive batch of this pass came back full (frames are waiting: no hold).
    pass_full: bool,
    /// The switch clock of a threaded worker: the monotonic clock read once per
    /// [`CLOCK_ANCHOR`], extrapolated with the time-stamp counter in between (where the
    /// kernel keeps time with it; else read every time).
    tsc_clock: cpu::AnchoredClock,
    /// The open run of the rx batch being processed.
    run: Run,
    /// Layouts of the batch's frames.
    lays: [Layout; BATCH_SIZE],
    /// Keys of the batch's frames (9 KiB: every frame's key is extracted before the first
    /// lookup, so that a staged lookup can start the loads of all of them).
    keys: [FlowKey; BATCH_SIZE],
    /// The batch's key hashes ([`FlowCache::hash`]), in a staged lookup.
    hashes: [u64; BATCH_SIZE],
    /// The entries their EMC sets name (hints), in a staged lookup.
    cands: [crate::cache::EntryRef; BATCH_SIZE],
    /// Lookups the last batch needed (frames that joined no run): from
    /// [`STAGED_LOOKUPS`] on, the next batch is looked up in stages.
    batch_lookups: u32,
    /// The latest request for the flows' counters ([`Shared::stats_req`]) seen.
    stats_seen: u64,
    /// Cache entries still to push for it (the oldest on the cache's list).
    stats_owed: usize,
    /// The generation to report as seen once they are pushed (the switch waits for it).
    ack_generation: Option<u64>,
}

const NOT_LOCAL: u16 = u16::MAX;

/// Channels a worker is built from (made by the switch for all workers at once).
#[derive(Debug)]
pub struct WorkerChannels {
    /// Commands from the control thread.
    pub cmds: Receiver<Command>,
    /// Frames from other workers for ports this worker owns.
    pub handoff_rx: Receiver<Handoff>,
    /// Buffers given back by other workers.
    pub recycle_rx: Receiver<Vec<u8>>,
    /// Where to give buffers back, by worker index.
    pub recycle_tx: Arc<[Sender<Vec<u8>>]>,
}

impl Worker {
    /// A worker with no ports.
    pub fn new(
        index: usize,
        shared: Arc<Shared>,
        ctls: Arc<[Arc<WorkerCtl>]>,
        chans: WorkerChannels,
        poll_mode: PollMode,
        poller: Poller,
    ) -> Self {
        let snap = shared.snapshot.load_full();
        // Barriers read this; later it changes only when the worker switches snapshots.
        if let Some(ctl) = ctls.get(index) {
            ctl.seen_generation
                .store(snap.generation, Ordering::Release);
        }
        Self {
            index,
            shared,
            ctls,
            cmds: chans.cmds,
            handoff_rx: chans.handoff_rx,
            recycle_rx: chans.recycle_rx,
            recycle_tx: chans.recycle_tx,
            poll_mode,
            poller,
            snap: Some(snap),
            ports: Vec::new(),
            local_of: vec![NOT_LOCAL; MAX_PORTS + 1].into_boxed_slice(),
            dirty: Vec::new(),
            batch: RxBatch::new(),
            scratch: Scratch {
                frame: Vec::with_capacity(MAX_FRAME),
                work: Vec::with_capacity(MAX_FRAME),
                alt: Vec::with_capacity(MAX_FRAME),
                base: Vec::new(),
                seg: offload::SegmentBuf::new(),
                pool: Vec::new(),
            },
            now: 0,
            now_ms: 0,
            now_ns: 0,
            pending: std::collections::VecDeque::new(),
            pending_pool: Vec::new(),
            cache: Some(Box::new(
                FlowCache::new(crate::cache::DEFAULT_CAPACITY).for_writer(index),
            )),
            last_second: 0,
            next_maintain_ms: 0,
            next_drops_ms: 0,
            clock: Duration::ZERO,
            clock_fresh: false,
            last_learned: None,
            withheld: false,
            last_learn_full: false,
            normal_memo: [NormalMemo::EMPTY; NORMAL_MEMO],
            inline_passes: 0,
            flush_ticks: 0,
            time_flushes: false,
            flush_end: 0,
            stamps: PassStamps::default(),
            hold_ticks: 0,
            pass_full: false,
            tsc_clock: cpu::AnchoredClock::new(CLOCK_ANCHOR),
            run: Run {
                entry: None,
                chain: 0,
                key: 0,
                tags: 0,
                frames: 0,
                bytes: 0,
                queued: 0,
                idx: [0; BATCH_SIZE],
            },
            lays: [Layout::default(); BATCH_SIZE],
            keys: [FlowKey::ZERO; BATCH_SIZE],
            hashes: [0; BATCH_SIZE],
            cands: [crate::cache::NO_ENTRY; BATCH_SIZE],
            batch_lookups: 0,
            stats_seen: 0,
            stats_owed: 0,
            ack_generation: None,
        }
    }

    /// Sets the batch hold (zero: none): after a pass that forwarded at least
    /// [`HOLD_MIN_FRAMES`] frames and took no receive batch full, the threaded worker waits
    /// this long before it polls again, so that the next pass finds a bigger batch. Under
    /// load that trades at most this much latency per frame for fewer passes per frame: each
    /// pass pays fixed costs (a transmit kick, ~320 ns on veth; the ring indexes and
    /// descriptors the sending CPU writes, cross-core transfers that also stall the sender
    /// while the worker keeps polling them). A lone frame (light load, a ping-pong) never
    /// waits, and neither do frames while the worker is behind. The wait spins on the
    /// time-stamp counter without touching shared memory; it counts neither as busy time
    /// nor as work. At most [`MAX_BATCH_HOLD`] (longer values are cut to it; the switch
    /// refuses them before).
    pub fn set_batch_hold(&mut self, hold: Duration) {
        let ns = u64::try_from(hold.min(MAX_BATCH_HOLD).as_nanos()).unwrap_or(0);
        self.hold_ticks = cpu::ns_to_ticks(ns);
    }

    /// Runs until [`Command::Stop`] (or the command channel closes).
    pub fn run(mut self) {
        self.time_flushes = true;
        let mut idle: u32 = 0;
        let mut idle_since = Duration::ZERO;
        let mut passes: u32 = 0;
        // When the last pass had work: the clock at which that work was found.
        let mut busy_from: Option<Duration> = None;
        loop {
            // An empty command channel shows in two plain loads; `try_recv` on it runs a full
            // fence (~2 % of a forwarding core). Every 64th pass takes the full path, which
            // also notices a closed channel.
            if (passes.is_multiple_of(64) || !self.cmds.is_empty()) && !self.take_commands() {
                break;
            }
            // An idle pass reuses the last clock reading (at most CLOCK_IDLE_PASSES passes,
            // a few microseconds, old): reading the clock was the largest cost of an empty
            // pass, which is most passes of a lightly loaded busy-polling worker.
            let work = self.pass(idle.is_multiple_of(CLOCK_IDLE_PASSES));
            // A pass after one with work reads the clock at its start (idle is 0), which
            // ends the busy time of the one before; a pass with work has its clock read at
            // its start or at its first work (`work_found`), which starts its own.
            if let Some(from) = busy_from.take() {
                self.add_busy(from, self.clock);
            }
            if work > 0 {
                busy_from = Some(self.clock);
            }
            passes = passes.wrapping_add(1);
            if passes.is_multiple_of(DROPS_EVERY_PASSES) {
                self.collect_backend_drops();
            }
            if work > 0 {
                idle = 0;
                if self.hold_ticks != 0 && work >= HOLD_MIN_FRAMES && !self.pass_full {
                    self.hold(&mut busy_from);
                }
                continue;
            }
            if idle == 0 {
                idle_since = self.clock;
            }
            idle = idle.saturating_add(1);
            // Adaptive: sleep after IDLE_SPINS empty passes or IDLE_TIME without work, whichever
            // comes first (a pass over ports whose polling is a syscall, AF_PACKET and tap,
            // takes a microsecond or more: 2,000 of them cost an idle switch several % of a core).
            let idle_long = idle.is_multiple_of(CLOCK_IDLE_PASSES)
                && self.clock.saturating_sub(idle_since) >= IDLE_TIME;
            if self.poll_mode == PollMode::Adaptive && (idle >= IDLE_SPINS || idle_long) {
                self.sleep();
                idle = 0;
            } else if idle >= YIELD_AFTER && idle.is_multiple_of(YIELD_EVERY) {
                // Idle for a while: let whatever else is runnable on this CPU (the
                // containers' threads and softirqs, when the host has few cores) run now,
                // instead of at the end of our time slice. Returns at once when nothing is.
                std::thread::yield_now();
            } else if idle.is_multiple_of(64) {
                std::hint::spin_loop();
            }
        }
        self.close_ports();
        self.stamps.report(self.index);
    }

    /// Adds the span from `from` to `to` (switch clock) to the worker's busy time.
    fn add_busy(&self, from: Duration, to: Duration) {
        let ns = to.saturating_sub(from).as_nanos();
        self.ctls[self.index]
            .counters
            .busy_ns
            .add(u64::try_from(ns).unwrap_or(u64::MAX));
    }

    /// Waits [`Worker::hold_ticks`] after a pass with work (see [`Worker::set_batch_hold`]).
    /// The pass's busy time ends at its last flush (or now), before the wait, and the next
    /// pass reads the clock after it.
    fn hold(&mut self, busy_from: &mut Option<Duration>) {
        let start = cpu::ticks();
        if let Some(from) = busy_from.take() {
            let end_ticks = match std::mem::take(&mut self.flush_end) {
                0 => start,
                t => t,
            };
            let end = self.clock_at(end_ticks);
            self.add_busy(from, end);
        }
        self.ctls[self.index].counters.holds.add(1);
        while cpu::ticks().wrapping_sub(start) < self.hold_ticks {
            std::hint::spin_loop();
        }
    }

    fn sleep(&mut self) {
        let ctl = &self.ctls[self.index];
        ctl.sleeping.store(true, Ordering::SeqCst);
        std::sync::atomic::fence(Ordering::SeqCst);
        // Re-check after announcing sleep: a sender that missed the flag left work behind.
        if self.cmds.is_empty() && self.handoff_rx.is_empty() {
            let all_fds = self
                .ports
                .iter()
                .all(|p| (0..p.port.rx_queues()).all(|q| p.port.rx_fd(q).is_some()));
            let timeout = if all_fds {
                MAX_SLEEP
            } else {
                Duration::from_millis(1)
            };
            ctl.counters.sleeps.add(1);
            // The rx queues are watched only while the worker sleeps. A socket watched by
            // epoll has a waiter on its wait queue, and then every frame the kernel queues on
            // it, and every transmitted frame it frees, runs the wake-up path (a lock and an
            // epoll callback): measured at ~12 % of a forwarding core with AF_XDP on veth. A
            // queue that is already readable when added wakes the wait at once.
            for p in &self.ports {
                for q in 0..p.port.rx_queues() {
                    for fd in [p.port.rx_fd(q), p.port.rx_extra_fd(q)]
                        .into_iter()
                        .flatten()
                    {
                        if let Err(e) = self.poller.add(fd, u64::from(p.id)) {
                            tracing::warn!(port = p.port.name(), error = %e, "cannot watch rx queue");
                        }
                    }
                }
            }
            self.poller.wait(timeout);
            for p in &self.ports {
                for q in 0..p.port.rx_queues() {
                    for fd in [p.port.rx_fd(q), p.port.rx_extra_fd(q)]
                        .into_iter()
                        .flatten()
                    {
                        self.poller.remove(fd);
                    }
                }
            }
        }
        ctl.sleeping.store(false, Ordering::Release);
    }

    /// Applies pending commands; false when the worker must stop.
    fn take_commands(&mut self) -> bool {
        loop {
            let cmd = match self.cmds.try_recv() {
                Ok(c) => {
                    // A command can take long (closing a port detaches its program): the
                    // next pass reads the clock rather than starting at the last flush.
                    self.flush_end = 0;
                    c
                }
                Err(crossbeam_channel::TryRecvError::Empty) => return true,
                Err(crossbeam_channel::TryRecvError::Disconnected) => return false,
            };
            match cmd {
                Command::AddPort(lp) => {
                    let idx = self.ports.len();
                    if let Some(slot) = self.local_of.get_mut(lp.id as usize) {
                        *slot = u16::try_from(idx).unwrap_or(NOT_LOCAL);
                    }
                    tracing::info!(
                        worker = self.index,
                        port = lp.port.name(),
                        id = lp.id,
                        "port attached to worker"
                    );
                    self.ports.push(*lp);
                    self.dirty.push(false);
                }
                Command::DelPort { id, done } => {
                    // A port split by queue can have several parts on this worker.
                    while let Some(pos) = self.ports.iter().position(|p| p.id == id) {
                        let mut lp = self.ports.remove(pos);
                        self.dirty.remove(pos);
                        lp.counters.add_backend_drops(lp.port.close());
                        drop(lp);
                    }
                    self.local_of.fill(NOT_LOCAL);
                    for (i, p) in self.ports.iter().enumerate() {
                        self.local_of[p.id as usize] = u16::try_from(i).unwrap_or(NOT_LOCAL);
                    }
                    let _ = done.send(());
                }
                Command::ParkPort { id, done } => {
                    // Frames of it waiting for a translation would run as received from it:
                    // dropped, as received on a port that is down.
                    let pending = std::mem::take(&mut self.pending);
                    let mut purged = 0;
                    for p in pending {
                        if p.port == id {
                            self.pending_pool.push(p.buf);
                            purged += 1;
                        } else {
                            self.pending.push_back(p);
                        }
                    }
                    if let Some(lp) = self.ports.iter().find(|p| p.id == id) {
                        lp.counters.rx_drops[DropReason::PortDown as usize].add(purged);
                    }
                    for lp in self.ports.iter_mut().filter(|p| p.id == id) {
                        lp.counters.add_backend_drops(lp.port.close());
                        let stand_in = Box::new(GonePort::of(lp.port.as_ref()));
                        tracing::info!(
                            worker = self.index,
                            port = lp.port.name(),
                            id,
                            "device gone: port closed, kept without a backend"
                        );
                        drop(std::mem::replace(&mut lp.port, stand_in));
                    }
                    let _ = done.send(());
                }
                Command::SetMtu { id, mtu } => {
                    for lp in self.ports.iter_mut().filter(|p| p.id == id) {
                        lp.port.set_mtu(mtu);
                    }
                }
                Command::PacketOut(job) => self.packet_out(*job),
                Command::Stop => return false,
            }
        }
    }

    /// Closes every port ([`Port::close`], its last drops counted) and drops it: its sockets
    /// close and its program detaches here, on the worker that owned it.
    fn close_ports(&mut self) {
        for mut p in self.ports.drain(..) {
            p.counters.add_backend_drops(p.port.close());
        }
    }

    /// Counts the drops each port's backend made since the last call
    /// ([`Port::take_backend_drops`]), every [`DROPS_EVERY_PASSES`] passes and at least every
    /// [`DROPS_EVERY_MS`].
    fn collect_backend_drops(&mut self) {
        self.next_drops_ms = self.now_ms + DROPS_EVERY_MS;
        for p in &mut self.ports {
            let d = p.port.take_backend_drops();
            if d.total() > 0 {
                p.counters.add_backend_drops(d);
            }
        }
    }

    /// One inline poll (a switch in [`PollMode::Inline`], on the caller's thread): pending
    /// commands, then one [`pass`](Self::pass) with the switch clock at `since_start`; returns
    /// frames handled.
    pub(crate) fn poll_inline(&mut self, since_start: Duration) -> usize {
        self.take_commands();
        let work = self.pass_at(since_start);
        self.inline_passes = self.inline_passes.wrapping_add(1);
        if self.inline_passes.is_multiple_of(DROPS_EVERY_PASSES) {
            self.collect_backend_drops();
        }
        work
    }

    /// Applies pending commands now (an inline worker, driven by the control thread).
    pub(crate) fn run_commands(&mut self) {
        self.take_commands();
    }

    /// Switches to the latest published snapshot, as a pass does first (an inline worker,
    /// driven by a barrier).
    pub(crate) fn catch_up(&mut self) {
        self.sync_snapshot();
        if self.stats_owed > 0 {
            self.push_owed(usize::MAX);
        }
    }

    /// Closes every port, as the thread does when it exits (an inline worker at shutdown).
    pub(crate) fn finish(&mut self) {
        self.take_commands();
        self.close_ports();
        self.dirty.clear();
        self.local_of.fill(NOT_LOCAL);
    }

    /// Uses the newest published snapshot (revalidating the cache against a new pipeline) and
    /// records its generation for barriers. The common case, nothing published since the
    /// last pass, is one plain atomic load.
    #[inline]
    fn sync_snapshot(&mut self) {
        if Some(self.shared.generation.load(Ordering::Acquire)) != self.generation() {
            self.switch_snapshot();
        }
    }

    /// The generation of the configuration in use.
    #[inline]
    fn generation(&self) -> Option<u64> {
        self.snap.as_ref().map(|s| s.generation)
    }

    #[cold]
    #[inline(never)]
    fn switch_snapshot(&mut self) {
        let cur = self.shared.snapshot.load();
        if Some(cur.generation) != self.generation() {
            let next = arc_swap::Guard::into_inner(cur);
            if !self
                .snap
                .as_ref()
                .is_some_and(|s| Arc::ptr_eq(&next.pipeline, &s.pipeline))
                && let Some(cache) = self.cache.as_mut()
            {
                // No cached decision of the old tables is used unchecked: the passes sweep
                // the cache in slices, and a hit on an entry not swept yet checks it first.
                cache.revalidate_begin(&next.pipeline);
            }
            self.snap = Some(next);
        }
        let req = self.shared.stats_req.load(Ordering::Acquire);
        if req != self.stats_seen {
            self.stats_seen = req;
            self.stats_owed = self.cache.as_ref().map_or(0, |c| c.owed());
        }
        self.ack_generation = self.generation();
        self.push_owed(0);
    }

    /// Pushes up to `budget` cache entries' charges to their flows ([`FlowCache::push_stats`]),
    /// oldest first; once those a request for the counters is owed are pushed, reports the
    /// generation the request came with as seen.
    fn push_owed(&mut self, budget: usize) {
        if let Some(cache) = self.cache.as_mut() {
            let n = cache.push_stats(budget);
            // The entries owed at the request are the oldest on the list, so at most what it
            // still holds: a flush (which pushes and empties it) ends the wait too.
            self.stats_owed = self.stats_owed.saturating_sub(n).min(cache.owed());
        } else {
            self.stats_owed = 0;
        }
        if self.stats_owed == 0
            && let Some(generation) = self.ack_generation.take()
        {
            self.ctls[self.index]
                .seen_generation
                .store(generation, Ordering::Release);
        }
    }

    /// One pass over hand-offs and every owned rx queue; returns frames handled.
    fn pass(&mut self, read_clock: bool) -> usize {
        self.sync_snapshot();
        self.clock_fresh = read_clock;
        // The last pass ended with a flush: its end (only empty polls since) is this pass's
        // start.
        let flush_end = std::mem::take(&mut self.flush_end);
        self.pass_full = false;
        self.stamps.pass_start(flush_end);
        if read_clock {
            self.clock = if flush_end != 0 {
                self.clock_at(flush_end)
            } else {
                self.read_clock()
            };
        }
        self.pass_rest(self.clock)
    }

    /// Called when a pass finds its first work: a pass that reused an old clock reading (it
    /// followed empty passes) reads the clock now, so the frames get the current time and
    /// the worker's busy time starts here. One clock read per burst after idleness; none
    /// while every pass has work.
    #[inline]
    fn work_found(&mut self) {
        if !self.clock_fresh {
            self.read_clock_now();
        }
    }

    /// The switch clock now (see [`cpu::AnchoredClock`]: a pass with work reads it).
    #[inline]
    fn read_clock(&mut self) -> Duration {
        self.clock_at(cpu::ticks())
    }

    /// The switch clock at [`cpu::ticks`] reading `ticks` (a recent one).
    #[inline]
    fn clock_at(&mut self, ticks: u64) -> Duration {
        let start = self.shared.start;
        self.tsc_clock.read_at(ticks, || start.elapsed())
    }

    #[cold]
    #[inline(never)]
    fn read_clock_now(&mut self) {
        self.clock_fresh = true;
        self.clock = self.read_clock();
        self.set_now(self.clock);
    }

    /// Sets the per-pass time fields from the switch clock.
    #[inline]
    fn set_now(&mut self, elapsed: Duration) {
        self.now = u32::try_from(elapsed.as_secs()).unwrap_or(u32::MAX);
        self.now_ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.now_ms = (self.now_ns / 1_000_000).max(1);
    }

    /// [`pass`](Self::pass) with the switch clock at `elapsed` (inline workers).
    fn pass_at(&mut self, elapsed: Duration) -> usize {
        self.sync_snapshot();
        // The caller's time stands for the whole pass (never re-read).
        self.clock_fresh = true;
        self.pass_rest(elapsed)
    }

    /// A pass after [`sync_snapshot`](Self::sync_snapshot), with the clock read at `elapsed`.
    #[inline]
    fn pass_rest(&mut self, elapsed: Duration) -> usize {
        self.set_now(elapsed);
        if self.now != self.last_second {
            self.last_second = self.now;
            self.publish_cache_stats();
        }
        if self.now_ms >= self.next_maintain_ms {
            // A slice of the expiry sweep per millisecond since the last one (a worker that
            // slept a second or more sweeps the whole cache).
            let ms = self.now_ms + MAINTAIN_MS - self.next_maintain_ms;
            let ms = usize::try_from(ms).unwrap_or(usize::MAX);
            if let Some(cache) = self.cache.as_mut() {
                let slice = cache.slots().div_ceil(EXPIRE_SLICES).max(EXPIRE_SLICE_MIN);
                let expired = cache.expire(self.now, CACHE_IDLE_SECS, slice.saturating_mul(ms));
                let push = cache.slots().div_ceil(PUSH_SLICES).max(PUSH_SLICE_MIN);
                self.push_owed(push.saturating_mul(ms));
                if expired > 0 {
                    self.publish_cache_stats();
                }
            }
            self.next_maintain_ms = self.now_ms + MAINTAIN_MS;
            for p in &mut self.ports {
                p.port.maintain();
            }
            // (Checked here, at most once a millisecond, rather than every pass.)
            if self.now_ms >= self.next_drops_ms {
                self.collect_backend_drops();
            }
        }
        if let (Some(cache), Some(snap)) = (self.cache.as_mut(), self.snap.as_ref())
            && cache.revalidating()
        {
            cache.revalidate_step(&snap.pipeline, REVALIDATE_SLICE);
        }
        if self.stats_owed > 0 {
            self.push_owed(SYNC_SLICE);
        }
        let mut work = self.take_handoffs();
        if !self.pending.is_empty() {
            work += self.run_pending();
        }
        for li in 0..self.ports.len() {
            for q in 0..self.ports[li].port.rx_queues() {
                work += self.rx_queue(li, q);
            }
        }
        if work > 0 {
            self.publish_cache_stats();
        }
        work
    }

    fn publish_cache_stats(&self) {
        let Some(cache) = self.cache.as_ref() else {
            return;
        };
        let s = cache.stats;
        let c = &self.ctls[self.index].counters;
        c.emc_hits.set(s.emc_hits);
        c.run_hits.set(s.run_hits);
        c.megaflow_hits.set(s.megaflow_hits);
        c.cache_misses.set(s.misses);
        c.upcalls.set(s.upcalls);
        c.cache_evictions.set(s.evictions);
        c.cache_expired.set(s.expired);
        c.cache_revalidated.set(s.revalidated);
        c.cache_flushes.set(s.flushes);
        c.cache_entries.set(cache.len() as u64);
    }

    fn take_handoffs(&mut self) -> usize {
        // Two plain loads; `try_recv` on an empty channel costs a full fence.
        if self.handoff_rx.is_empty() {
            return 0;
        }
        let mut n = 0;
        while n < BATCH_SIZE {
            let Ok(h) = self.handoff_rx.try_recv() else {
                break;
            };
            if n == 0 {
                self.work_found();
            }
            n += 1;
            let li = self
                .local_of
                .get(h.port as usize)
                .copied()
                .unwrap_or(NOT_LOCAL);
            match self.ports.get_mut(usize::from(li)) {
                // Same port number, same incarnation: not a newer port that reused the number.
                Some(lp) if lp.incarnation == h.incarnation => {
                    if send_on(lp, &h.buf, &h.offload, &mut self.scratch.seg) {
                        self.dirty[usize::from(li)] = true;
                    }
                }
                // The port went away (or is not attached yet) while the frame was in flight.
                _ => self.ctls[self.index].counters.handoff_drops.add(1),
            }
            if let Some(tx) = self.recycle_tx.get(h.from) {
                let _ = tx.try_send(h.buf);
            }
        }
        if n > 0 {
            self.flush_dirty();
        }
        n
    }

    fn flush_dirty(&mut self) {
        let from = if self.time_flushes { cpu::ticks() } else { 0 };
        for (lp, d) in self.ports.iter_mut().zip(self.dirty.iter_mut()) {
            if *d {
                *d = false;
                // (Frames the backend could not send are counted by the port, each, and come
                // with its other drops: `collect_backend_drops`.)
                let _ = lp.port.tx_flush();
            }
        }
        if self.time_flushes {
            let to = cpu::ticks();
            self.flush_end = to;
            self.flush_ticks = self.flush_ticks.wrapping_add(to.wrapping_sub(from));
            self.ctls[self.index]
                .counters
                .flush_ns
                .set(cpu::ticks_to_ns(self.flush_ticks));
        }
    }

    fn rx_queue(&mut self, li: usize, q: usize) -> usize {
        self.batch.clear();
        self.last_learned = None;
        let lp = &mut self.ports[li];
        let polled = self.stamps.now();
        let n = match lp.port.rx_burst(q, &mut self.batch) {
            Ok(n) => n,
            Err(_) => {
                // No frame is lost: the poll failed (a device gone or down).
                self.ctls[self.index].counters.rx_errors.add(1);
                if self.now_ms >= lp.next_suspect_ms {
                    lp.next_suspect_ms = self.now_ms + SUSPECT_EVERY_MS;
                    self.shared.links_suspect.store(true, Ordering::Release);
                    if let Some(w) = self.shared.control_waker.get() {
                        (w.0)();
                    }
                }
                0
            }
        };
        if n == 0 {
            return 0;
        }
        let taken = self.stamps.now();
        self.stamps.batch(n, polled);
        self.stamps.add(Part::Poll, polled, taken);
        self.work_found();
        let lp = &mut self.ports[li];
        let ctl = &self.ctls[self.index];
        ctl.counters.batches.add(1);
        ctl.counters.frames.add(n as u64);
        if n == BATCH_SIZE {
            ctl.counters.full_batches.add(1);
            self.pass_full = true;
        }
        // The configuration is taken out for the batch and put back after it (see `snap`).
        let Some(snap) = self.snap.take() else {
            lp.port.rx_release(q, &self.batch);
            return n;
        };
        let n = self.forward_batch(li, q, n, &snap, taken);
        self.snap = Some(snap);
        n
    }

    /// Forwards the `n` frames of `self.batch`, received on queue `q` of local port `li` (the
    /// poll ended at stamp `taken`), then gives their buffers back and flushes.
    #[inline]
    fn forward_batch(
        &mut self,
        li: usize,
        q: usize,
        n: usize,
        snap: &Snapshot,
        taken: u64,
    ) -> usize {
        let lp = &mut self.ports[li];
        let rx_kind = RxKind::of(lp.port.kind());
        let in_id = lp.id;
        if snap.port(in_id).is_none() {
            lp.counters.rx_drops[DropReason::PortDown as usize].add(n as u64);
            lp.port.rx_release(q, &self.batch);
            return n;
        }
        let Some(mut cache) = self.cache.take() else {
            return 0;
        };
        let mut tally = RxTally::default();
        self.run.entry = None;
        // With many lookups per batch (many flows), the batch is looked up in stages, its
        // frames parsed first; else each frame is parsed as its turn comes.
        if self.batch_lookups >= STAGED_LOOKUPS {
            self.ctls[self.index].counters.staged_batches.add(1);
            let parsed = self.stage(&cache, li, rx_kind, &mut tally);
            self.frames_staged(&mut cache, li, parsed, snap, &mut tally);
        } else {
            self.frames::<false>(&mut cache, li, rx_kind, 0, snap, &mut tally);
        }
        self.batch_lookups = tally.lookups;
        let (rx_bytes, rx_jumbo) = (tally.bytes, tally.jumbo);
        let processed = self.stamps.now();
        self.end_run(&mut cache, li, snap);
        let output = self.stamps.now();
        self.cache = Some(cache);
        let lp = &mut self.ports[li];
        lp.counters.rx_pkts.add(n as u64);
        lp.counters.rx_bytes.add(rx_bytes);
        lp.counters.rx_jumbo.add(rx_jumbo);
        lp.port.rx_release(q, &self.batch);
        let released = self.stamps.now();
        self.stamps.add(Part::Frames, taken, processed);
        self.stamps.add(Part::Output, processed, output);
        self.stamps.add(Part::Release, output, released);
        self.flush_dirty();
        let flushed = if self.time_flushes {
            self.flush_end
        } else {
            self.stamps.now()
        };
        self.stamps.add(Part::Flush, released, flushed);
        self.stamps.batch_done(flushed);
        n
    }

    /// [`Worker::frames`] of a staged batch, out of line (one call per batch): the straight
    /// loop, which most batches with few flows take, keeps its own code.
    #[inline(never)]
    fn frames_staged(
        &mut self,
        cache: &mut FlowCache,
        li: usize,
        frames: u64,
        snap: &Snapshot,
        tally: &mut RxTally,
    ) {
        self.frames::<true>(cache, li, RxKind::Plain, frames, snap, tally);
    }

    /// Runs the frames of the batch through the cache: with `STAGED`, those in mask `frames`,
    /// parsed by [`Worker::stage`] (their hashes in `self.hashes`); else all, each parsed as its
    /// turn comes (`frames` unused).
    #[inline(always)]
    fn frames<const STAGED: bool>(
        &mut self,
        cache: &mut FlowCache,
        li: usize,
        rx_kind: RxKind,
        frames: u64,
        snap: &Snapshot,
        tally: &mut RxTally,
    ) {
        let mut st = FrameState {
            upcalls: UPCALL_BUDGET,
            hashed: STAGED,
            epoch: cache.hash_epoch(),
        };
        if STAGED {
            for i in Bits(frames) {
                let lay = self.lays[i];
                self.frame::<STAGED>(cache, li, i, lay, snap, tally, &mut st);
            }
        } else {
            for i in 0..self.batch.len() {
                if let Some(lay) = self.parse(li, i, rx_kind, tally) {
                    self.frame::<STAGED>(cache, li, i, lay, snap, tally, &mut st);
                }
            }
        }
    }

    /// Runs frame `i` of the batch (its key in `self.keys[i]`, layout `lay`) through the
    /// cache: it joins the open run, or is looked up (translated on a miss within the upcall
    /// budget, else deferred) and opens a run. In a staged batch only a frame whose EMC set
    /// named the open run's entry is compared with the run (with many flows most are not, and
    /// the comparison would fail; one that would have joined is looked up and finds the same
    /// entry), and a frame whose entry chains to the open run's queues behind it without a
    /// run of its own ([`Worker::chain_behind`]).
    #[inline(always)]
    #[expect(
        clippy::too_many_arguments,
        reason = "the frame's parts, borrowed separately"
    )]
    fn frame<const STAGED: bool>(
        &mut self,
        cache: &mut FlowCache,
        li: usize,
        i: usize,
        lay: Layout,
        snap: &Snapshot,
        tally: &mut RxTally,
        st: &mut FrameState,
    ) {
        if let Some(r) = self.run.entry
            && (!STAGED || self.cands[i] == r)
            && lay.tags == self.run.tags
            && cache
                .entry(r)
                .same_run(&self.keys[self.run.key], &self.keys[i])
        {
            cache.stats.run_hits += 1;
            self.run_frame(cache, r, li, i, snap);
            return;
        }
        tally.lookups += 1;
        // (A hash of an older epoch would only miss the EMC; an upcall, or a re-translation
        // on a hit during revalidation, that adds a subtable may have changed every key's.)
        let hint =
            (st.hashed && cache.hash_epoch() == st.epoch).then(|| (self.hashes[i], self.cands[i]));
        let r = match self.look_up(cache, i, hint, snap) {
            Some(r) if STAGED && self.chain_behind(cache, r, i, lay.tags) => return,
            Some(r) => {
                self.end_run_before(cache, li, r, lay.tags, snap);
                r
            }
            None if st.upcalls > 0 => {
                // (An upcall may evict entries: no run stays open across it.)
                self.end_run(cache, li, snap);
                st.upcalls -= 1;
                cache.upcall(&snap.pipeline, &self.keys[i], self.now)
            }
            None => {
                let desc = self.batch.descs()[i];
                self.defer(li, &desc);
                return;
            }
        };
        self.run.entry = Some(r);
        if STAGED {
            // (Only a staged batch chains frames behind a run; each starts with no run.)
            self.run.chain = cache.entry(r).chain_id();
        }
        self.run.key = i;
        self.run.tags = lay.tags;
        self.run_frame(cache, r, li, i, snap);
    }

    /// Extracts the key of frame `i` of the batch (received on local port `li`, of kind
    /// `rx_kind`) into `self.keys[i]` and its layout into
    /// `self.lays[i]`, adding it to `tally`; a frame that does not parse is counted as dropped
    /// (`None`).
    #[inline(always)]
    fn parse(
        &mut self,
        li: usize,
        i: usize,
        rx_kind: RxKind,
        tally: &mut RxTally,
    ) -> Option<Layout> {
        let desc = &self.batch.descs()[i];
        let lay = parse_frame(&mut self.ports[li], desc, &mut self.keys[i], rx_kind, tally)?;
        self.lays[i] = lay;
        Some(lay)
    }

    /// The first stages of a staged lookup ([`STAGED_LOOKUPS`]): parses every frame of the
    /// batch (adding up their bytes), hashes each key and starts loading its EMC set; then
    /// starts loading the entry each set names. Returns the mask of the frames that parsed.
    #[inline(never)]
    fn stage(&mut self, cache: &FlowCache, li: usize, rx_kind: RxKind, tally: &mut RxTally) -> u64 {
        // (The batch's parts borrowed apart, so that what stays the same for the batch is
        // read once.)
        let Self {
            batch,
            ports,
            keys,
            lays,
            hashes,
            cands,
            ..
        } = self;
        let lp = &mut ports[li];
        let descs = batch.descs();
        let n = descs.len();
        let mut parsed = 0u64;
        for (i, desc) in descs.iter().enumerate() {
            if let Some(lay) = parse_frame(lp, desc, &mut keys[i], rx_kind, tally) {
                lays[i] = lay;
                parsed |= 1 << i;
                let h = cache.hash(&keys[i]);
                hashes[i] = h;
                cache.prefetch_set(h);
            }
            // The second stage runs `STAGE_LAG` frames behind the first, so a set has had
            // that many frames' parsing to arrive, and the entries of the first lookups
            // theirs.
            if let Some(j) = i.checked_sub(STAGE_LAG)
                && parsed & (1 << j) != 0
            {
                cands[j] = cache.prefetch_entry(hashes[j]);
            }
        }
        let first_left = n.saturating_sub(STAGE_LAG);
        for j in Bits(parsed & !((1u64 << first_left) - 1)) {
            cands[j] = cache.prefetch_entry(hashes[j]);
        }
        parsed
    }

    /// Adds frame `i` of the batch (its key in `self.keys[i]`, its layout in `self.lays[i]`)
    /// to the open run (of entry `r`): forward-only ops wait for the end of the run, any other
    /// ops run now on this frame.
    #[inline]
    fn run_frame(
        &mut self,
        cache: &FlowCache,
        r: crate::cache::EntryRef,
        li: usize,
        i: usize,
        snap: &Snapshot,
    ) {
        let len = self.batch.descs()[i].len;
        let run = &mut self.run;
        run.frames += 1;
        run.bytes += u64::from(len);
        let entry = cache.entry(r);
        if entry.forward_only {
            // (An entry that outputs nothing is forward-only too: its drops are counted when
            // the run ends.)
            run.queue(i);
        } else if entry.outputs {
            self.run_slow(cache, r, li, i, snap);
        }
    }

    /// Runs the ops of an entry that is not forward-only on frame `i` now.
    #[inline(never)]
    fn run_slow(
        &mut self,
        cache: &FlowCache,
        r: crate::cache::EntryRef,
        li: usize,
        i: usize,
        snap: &Snapshot,
    ) {
        let (desc, lay) = (self.batch.descs()[i], self.lays[i]);
        let entry = cache.entry(r);
        let key = self.keys[i];
        self.execute(
            li,
            &desc,
            Cur::Rx,
            key,
            lay,
            (&entry.ops, entry.miss),
            entry.controller(),
            snap,
        );
    }

    /// Ends the open run, if any: charges its entry's flows once with all its frames, counts
    /// why its frames went nowhere (if so), and runs forward-only ops for the frames that
    /// wait for them (also those of chained runs before it, whose ops are equal).
    fn end_run(&mut self, cache: &mut FlowCache, li: usize, snap: &Snapshot) {
        let Some(r) = self.end_charge(cache, li) else {
            return;
        };
        let queued = std::mem::take(&mut self.run.queued);
        let entry = cache.entry(r);
        if entry.outputs && queued > 0 {
            self.forward_run(li, queued, &entry.ops, entry.miss, snap);
        }
    }

    /// Looks up the key in `self.keys[i]` (its hash and the entry its EMC set named, when
    /// known: `hint`).
    #[inline(always)]
    fn look_up(
        &self,
        cache: &mut FlowCache,
        i: usize,
        hint: Option<(u64, crate::cache::EntryRef)>,
        snap: &Snapshot,
    ) -> Option<crate::cache::EntryRef> {
        let key = &self.keys[i];
        let (h, e) = hint.unwrap_or_else(|| (cache.hash(key), crate::cache::NO_ENTRY));
        cache.lookup_checked_hashed(key, h, e, self.now, &snap.pipeline)
    }

    /// In a staged batch: queues frame `i` (with VLAN tags `tags`), found in entry `r`, behind
    /// the open run when their ops chain ([`FlowCache::chains`]), charging `r` with the frame
    /// now; the run stays the open entry's. With many flows most frames are the only one of
    /// their flow in the batch, and a run of their own would be opened and charged to be
    /// closed at the next frame. False (nothing done) when they do not chain.
    #[inline(always)]
    fn chain_behind(
        &mut self,
        cache: &mut FlowCache,
        r: crate::cache::EntryRef,
        i: usize,
        tags: u8,
    ) -> bool {
        let Some(open) = self.run.entry else {
            return false;
        };
        if tags != self.run.tags || !cache.chains_to(open, self.run.chain, r) {
            return false;
        }
        let len = self.batch.descs()[i].len;
        cache.charge(r, 1, u64::from(len), self.now_ms);
        // (A chaining entry is forward-only, outputs and missed no table: the frame only
        // waits for the ops.)
        self.run.queue(i);
        true
    }

    /// Ends the open run before a run of entry `r` (frames with VLAN tags `tags`) opens. When
    /// both entries' ops send every frame to the same ports (say, `output:2`), the frames of
    /// the new run queue behind the open run's: its flows are charged now, and the ops run once
    /// for both when the chain ends.
    #[inline(always)]
    fn end_run_before(
        &mut self,
        cache: &mut FlowCache,
        li: usize,
        r: crate::cache::EntryRef,
        tags: u8,
        snap: &Snapshot,
    ) {
        if let Some(open) = self.run.entry
            && tags == self.run.tags
            && cache.chains(open, r)
        {
            self.end_charge(cache, li);
        } else {
            self.end_run(cache, li, snap);
        }
    }

    /// Closes the open run's accounting: charges its entry's flows with its frames and counts
    /// why they went nowhere (if so). Frames waiting for forward-only ops stay queued (the
    /// caller runs the ops, or chains another run with equal ops behind them). Returns the
    /// entry.
    #[inline(always)]
    fn end_charge(&mut self, cache: &mut FlowCache, li: usize) -> Option<crate::cache::EntryRef> {
        let r = self.run.entry.take()?;
        let (frames, bytes) = (self.run.frames, self.run.bytes);
        self.run.frames = 0;
        self.run.bytes = 0;
        cache.charge(r, frames, bytes, self.now_ms);
        let entry = cache.entry(r);
        if entry.miss {
            self.count_miss(entry.miss_table, u64::from(frames));
        }
        if !entry.outputs {
            let reason = if entry.miss {
                DropReason::TableMiss
            } else {
                DropReason::FlowDrop
            };
            self.ports[li].counters.rx_drops[reason as usize].add(u64::from(frames));
        }
        Some(r)
    }

    /// Runs forward-only `ops` once for the `queued` frames of the run: each output port is
    /// resolved, and `normal` decides, once; then the frames are queued on it in order.
    /// Frames that nothing sent are counted as dropped once each ([`Worker::unsent_reason`]).
    fn forward_run(
        &mut self,
        li: usize,
        queued: usize,
        ops: &[Action],
        miss: bool,
        snap: &Snapshot,
    ) {
        let in_id = self.ports[li].id;
        let mut sent = false;
        let mut failed = None;
        self.withheld = false;
        for op in ops {
            match *op {
                Action::Output(p) if p != in_id => {
                    sent |= self.output_run(li, queued, None, p, snap)
                }
                Action::InPort => sent |= self.output_run(li, queued, None, in_id, snap),
                Action::Flood | Action::All => {
                    for &p in snap.all_ports.iter() {
                        if p != in_id {
                            sent |= self.output_run(li, queued, None, p, snap);
                        }
                    }
                }
                Action::Normal => {
                    let key = &self.keys[self.run.key];
                    let (tci, src, dst) = (key.vlan_tci, key.eth_src, key.eth_dst);
                    match self.normal_decide(in_id, tci, self.run.tags, src, dst, snap) {
                        Ok(NormalOut::Unicast(vlan, out)) => {
                            sent |= self.output_run(li, queued, Some(vlan), out, snap);
                        }
                        Ok(NormalOut::Flood(vlan)) => {
                            match self.flood_run(li, queued, vlan, snap) {
                                Some(s) => sent |= s,
                                None => {
                                    failed.get_or_insert(DropReason::NoOutput);
                                }
                            }
                        }
                        Err(r) => {
                            failed.get_or_insert(r);
                        }
                    }
                }
                // Output to the ingress port needs in_port; other ops are not forward-only.
                _ => {}
            }
        }
        if !sent {
            let r = self.unsent_reason(failed, miss);
            self.rx_drops(li, r, queued);
        }
    }

    /// Why a frame that no op sent went nowhere: the first op that failed (`failed`), else a
    /// copy the double-tag guard withheld ([`Worker::output`]), else a table miss (`miss`),
    /// else flows that output nothing. A frame is counted once, and only when nothing sent
    /// it: `rx_drops` never exceed the frames received.
    fn unsent_reason(&self, failed: Option<DropReason>, miss: bool) -> DropReason {
        match failed {
            Some(r) => r,
            None if self.withheld => DropReason::VlanNotAllowed,
            None if miss => DropReason::TableMiss,
            None => DropReason::FlowDrop,
        }
    }

    /// `normal` flooding of the run's frames in `vlan`: whether a copy went out, or `None`
    /// when there was no candidate port.
    fn flood_run(&mut self, li: usize, queued: usize, vlan: u16, snap: &Snapshot) -> Option<bool> {
        let in_id = self.ports[li].id;
        let list = snap.flood.get(&vlan).map_or(&[][..], |b| &b[..]);
        let mut candidates = false;
        let mut sent = false;
        for &out in list.iter().chain(snap.trunk_all.iter()) {
            if out != in_id {
                candidates = true;
                sent |= self.output_run(li, queued, Some(vlan), out, snap);
            }
        }
        candidates.then_some(sent)
    }

    /// [`output`](Self::output) for each of the run's `queued` frames, in order. Frames that
    /// go unchanged to another local port are queued without per-frame lookups, their
    /// counters added once.
    fn output_run(
        &mut self,
        li: usize,
        queued: usize,
        vlan: Option<u16>,
        out: u32,
        snap: &Snapshot,
    ) -> bool {
        let Some(conf) = snap.port(out) else {
            return false;
        };
        let lo = usize::from(
            self.local_of
                .get(out as usize)
                .copied()
                .unwrap_or(NOT_LOCAL),
        );
        let tags = self.run.tags;
        let unchanged = match vlan {
            None => true,
            Some(v) => tags == 0 && egress(&conf.vlan, v) == Egress::Untagged,
        };
        if !unchanged || lo == usize::from(NOT_LOCAL) || lo == li {
            let mut sent = false;
            for k in 0..queued {
                let i = usize::from(self.run.idx[k]);
                let (desc, lay) = (self.batch.descs()[i], self.lays[i]);
                sent |= self.output(li, &desc, Cur::Rx, &desc.offload, &lay, vlan, out, snap);
            }
            return sent;
        }
        let Self {
            ports,
            scratch,
            dirty,
            batch,
            run,
            ..
        } = self;
        let (src, dst) = pair(ports, li, lo);
        let caps = dst.port.caps();
        // The frames keep their tags, and the limit is for untagged frames.
        let limit = caps.max_frame_len + if tags > 0 { 4 } else { 0 };
        let mut tally = TxTally::default();
        let mut any = false;
        for &i in &run.idx[..queued] {
            let desc = &batch.descs()[usize::from(i)];
            let bytes = src.port.frame(desc);
            // ([`Offload::passes`], in the order that keeps this loop shortest.)
            if (caps.tx_offload && (caps.tx_udp_tunnel || !desc.offload.is_tunnel()))
                || desc.offload.is_none()
            {
                tally.add(enqueue(dst, bytes, &desc.offload, limit));
            } else {
                any |= materialize(bytes, &desc.offload, &mut scratch.seg, dst);
            }
        }
        any |= tally.pkts > 0;
        tally.charge(&dst.counters);
        if any {
            dirty[lo] = true;
        }
        true
    }

    /// Counts `n` drops on the ingress port (`li` out of range: packet-outs, per worker).
    fn rx_drops(&self, li: usize, r: DropReason, n: usize) {
        let n = n as u64;
        match self.ports.get(li) {
            Some(p) => p.counters.rx_drops[r as usize].add(n),
            None => self.ctls[self.index].counters.packet_out_drops.add(n),
        }
    }

    /// Charges the flows of cache entry `r` with one frame and runs its ops, or counts why the
    /// frame goes nowhere (table miss, or flows that output nothing).
    #[inline]
    #[expect(
        clippy::too_many_arguments,
        reason = "the frame's parts, borrowed separately"
    )]
    fn run_entry(
        &mut self,
        cache: &FlowCache,
        r: crate::cache::EntryRef,
        li: usize,
        desc: &RxDesc,
        cur: Cur,
        key: FlowKey,
        lay: Layout,
        snap: &Snapshot,
    ) {
        let entry = cache.entry(r);
        entry.charge_now(self.index, 1, u64::from(desc.len), self.now_ms);
        if entry.miss {
            self.count_miss(entry.miss_table, 1);
        }
        if entry.outputs {
            self.execute(
                li,
                desc,
                cur,
                key,
                lay,
                (&entry.ops, entry.miss),
                entry.controller(),
                snap,
            );
        } else {
            let reason = if entry.miss {
                DropReason::TableMiss
            } else {
                DropReason::FlowDrop
            };
            self.rx_drop(li, reason);
        }
    }

    /// Counts `n` frames that missed in `table`.
    fn count_miss(&self, table: u8, n: u64) {
        if let Some(c) = self.ctls[self.index].table_misses.get(usize::from(table)) {
            c.add(n);
        }
    }

    /// Copies a frame whose translation must wait into the pending queue (or drops it, counted,
    /// when the queue is full).
    fn defer(&mut self, li: usize, desc: &RxDesc) {
        if self.pending.len() >= PENDING_MAX {
            self.ctls[self.index].counters.upcall_drops.add(1);
            self.rx_drop(li, DropReason::UpcallFull);
            return;
        }
        let lp = &self.ports[li];
        let mut buf = self.pending_pool.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(lp.port.frame(desc));
        self.pending.push_back(Pending {
            port: lp.id,
            incarnation: lp.incarnation,
            buf,
            offload: desc.offload,
        });
    }

    /// Translates and runs deferred frames, at most [`UPCALL_BUDGET`]; returns how many.
    fn run_pending(&mut self) -> usize {
        self.work_found();
        self.last_learned = None;
        // (Deferred frames are the slow path: a clone of the configuration will do.)
        let Some(snap) = self.snap.clone() else {
            return 0;
        };
        let Some(mut cache) = self.cache.take() else {
            return 0;
        };
        let mut budget = UPCALL_BUDGET;
        let mut n = 0;
        while budget > 0 {
            let Some(mut p) = self.pending.pop_front() else {
                break;
            };
            n += 1;
            let li = self
                .local_of
                .get(p.port as usize)
                .copied()
                .unwrap_or(NOT_LOCAL);
            let li = usize::from(li);
            if self
                .ports
                .get(li)
                .is_none_or(|lp| lp.incarnation != p.incarnation)
            {
                // Its port went away meanwhile.
                self.pending_pool.push(p.buf);
                continue;
            }
            std::mem::swap(&mut self.scratch.work, &mut p.buf);
            let len = u32::try_from(self.scratch.work.len()).unwrap_or(u32::MAX);
            let (key, lay) = match flow::extract(&self.scratch.work, p.port) {
                Ok(k) => k,
                Err(r) => {
                    self.rx_drop(li, r);
                    self.pending_pool.push(p.buf);
                    continue;
                }
            };
            let r = match cache.lookup_checked(&key, self.now, &snap.pipeline) {
                Some(r) => r,
                None => {
                    budget -= 1;
                    cache.upcall(&snap.pipeline, &key, self.now)
                }
            };
            let desc = RxDesc {
                addr: 0,
                len,
                offload: p.offload,
            };
            self.run_entry(&cache, r, li, &desc, Cur::Work, key, lay, &snap);
            // The work buffer now holds whatever the ops left; the old one goes back.
            self.pending_pool.push(p.buf);
        }
        self.pending_pool.truncate(PENDING_MAX);
        self.cache = Some(cache);
        self.flush_dirty();
        n
    }

    /// Counts a drop on the ingress port (`li` out of range: a packet-out, counted per worker).
    fn rx_drop(&self, li: usize, r: DropReason) {
        match self.ports.get(li) {
            Some(p) => p.counters.rx_drops[r as usize].add(1),
            None => self.ctls[self.index].counters.packet_out_drops.add(1),
        }
    }

    /// Runs a controller's packet-out: its actions, or the tables as if the frame came in on
    /// `in_port`. The frame is never cached.
    fn packet_out(&mut self, job: PacketOutJob) {
        self.last_learned = None;
        self.ctls[self.index].counters.packet_outs.add(1);
        let snap = self.shared.snapshot.load_full();
        let Ok((key, lay)) = flow::extract(&job.data, job.in_port) else {
            self.ctls[self.index].counters.packet_out_drops.add(1);
            return;
        };
        // No local port: the frame was not received on `in_port`, so its drops are the
        // worker's `packet_out_drops`, not that port's `rx_drops`.
        let li = usize::MAX;
        let len = u32::try_from(job.data.len()).unwrap_or(u32::MAX);
        let (ops, meta, miss) = match job.actions {
            Some(a) => (a, vec![CtlMeta::PACKET_OUT], false),
            None => {
                let t = crate::ofp::xlate::xlate(&snap.pipeline, &key);
                for f in &t.flows {
                    f.stats.hit(self.index, 1, u64::from(len), self.now_ms);
                }
                if t.miss {
                    self.count_miss(t.miss_table, 1);
                }
                (t.ops, t.controller, t.miss)
            }
        };
        self.scratch.work.clear();
        self.scratch.work.extend_from_slice(&job.data);
        let desc = RxDesc {
            addr: 0,
            len,
            offload: Offload::NONE,
        };
        let mut st = Exec {
            in_id: job.in_port,
            key,
            lay,
            cur: Cur::Work,
            off: Offload::NONE,
            sent: false,
            failed: None,
            ctl: 0,
        };
        self.withheld = false;
        self.run_ops(li, &desc, &mut st, &ops, &snap, true, &meta);
        if !st.sent {
            self.rx_drop(li, self.unsent_reason(st.failed, miss));
        }
        self.flush_dirty();
    }

    /// Queues a packet-in for the control thread (dropped and counted when its queue is full).
    fn to_controller(
        &self,
        st: &Exec,
        bytes: &[u8],
        total_len: u32,
        max_len: u16,
        reason: crate::ofp::action::PacketInReason,
        meta: &[CtlMeta],
    ) {
        let m = meta
            .get(usize::from(st.ctl))
            .copied()
            .unwrap_or(CtlMeta::PACKET_OUT);
        let mut key = st.key;
        key.metadata = m.metadata;
        key.regs = m.regs;
        let queue = |total_len: u32, data: Vec<u8>| {
            self.queue_packet_in(PacketIn {
                in_port: st.in_id,
                table: m.table,
                cookie: m.cookie,
                reason,
                key,
                total_len,
                data,
            });
        };
        // A GSO super-frame (from a tap or an AF_PACKET port with offloads, up to 64 KiB)
        // goes as the segments it stands for, each a packet-in: what the wire would have
        // carried, within the MTU, so that a packet-out of it leaves (until 2026-12-08 the
        // controller got the whole super-frame, above any MTU, and its packet-out was dropped
        // as `too_big`). One that cannot be segmented goes whole. A slow path: the buffer is
        // allocated here, as the packet-ins' data is.
        if st.off.is_gso() {
            let mut seg = offload::SegmentBuf::new();
            let mut segments = Vec::new();
            if offload::segment(bytes, &st.off, &mut seg, &mut |s| segments.push(s.to_vec()))
                .is_ok()
            {
                for mut data in segments {
                    let total = u32::try_from(data.len()).unwrap_or(u32::MAX);
                    data.truncate(usize::from(max_len));
                    queue(total, data);
                }
                return;
            }
        }
        let n = bytes.len().min(usize::from(max_len));
        // The controller gets a frame as it would be on the wire: a checksum left partial by
        // the sender's offload (a tap, AF_PACKET) is completed first, over the whole frame
        // (found by an audit: the data carried the partial sum, and a packet-out of it went
        // out with a bad checksum). One that cannot be completed goes as it is.
        let data = if st.off.needs_csum() {
            let mut full = bytes.to_vec();
            let _ = offload::complete_csum(&mut full, &st.off);
            full.truncate(n);
            full
        } else {
            bytes[..n].to_vec()
        };
        queue(total_len, data);
    }

    /// Queues `pi` for the control thread and wakes it if it asked (dropped and counted when
    /// the queue is full).
    fn queue_packet_in(&self, pi: PacketIn) {
        let c = &self.ctls[self.index].counters;
        match self.shared.packet_in.try_send(pi) {
            Ok(()) => {
                c.packet_ins.add(1);
                // (The fence orders the send before the look at the flag, as the control
                // thread's orders its store of the flag before its look at the queue.)
                std::sync::atomic::fence(Ordering::SeqCst);
                if self.shared.packet_in_armed.swap(false, Ordering::SeqCst)
                    && let Some(w) = self.shared.control_waker.get()
                {
                    (w.0)();
                }
            }
            Err(_) => c.packet_in_drops.add(1),
        }
    }

    /// Copies the received frame into the work buffer unless the ops already rewrote it.
    fn make_work(&mut self, li: usize, desc: &RxDesc, cur: &mut Cur) {
        if *cur == Cur::Rx {
            let src = self.ports[li].port.frame(desc);
            self.scratch.work.clear();
            self.scratch.work.extend_from_slice(src);
            *cur = Cur::Work;
        }
    }

    /// Runs a cached action list (`ops`, and whether its translation ended in a table miss)
    /// on one received frame. Every frame ends either sent somewhere or counted once as
    /// dropped on the ingress port, with its reason ([`Worker::unsent_reason`]).
    #[expect(
        clippy::too_many_arguments,
        reason = "the frame's parts, borrowed separately"
    )]
    fn execute(
        &mut self,
        li: usize,
        desc: &RxDesc,
        cur: Cur,
        key: FlowKey,
        lay: Layout,
        (ops, miss): (&[Action], bool),
        meta: &[CtlMeta],
        snap: &Snapshot,
    ) {
        let mut st = Exec {
            in_id: self.ports[li].id,
            key,
            lay,
            cur,
            off: desc.offload,
            sent: false,
            failed: None,
            ctl: 0,
        };
        self.withheld = false;
        self.run_ops(li, desc, &mut st, ops, snap, true, meta);
        if !st.sent {
            self.rx_drop(li, self.unsent_reason(st.failed, miss));
        }
    }

    /// Runs `ops` on the frame in `st`; false when an op dropped it (its reason kept in
    /// `st.failed`, counted by the caller if nothing sent the frame).
    /// `top` is false inside a group bucket (no nested groups); `meta` is the (table, cookie)
    /// of each `controller` op.
    #[expect(
        clippy::too_many_arguments,
        reason = "the frame's parts, borrowed separately"
    )]
    fn run_ops(
        &mut self,
        li: usize,
        desc: &RxDesc,
        st: &mut Exec,
        ops: &[Action],
        snap: &Snapshot,
        top: bool,
        meta: &[CtlMeta],
    ) -> bool {
        let in_id = st.in_id;
        for op in ops {
            match *op {
                Action::Output(p) => {
                    // OpenFlow: output to the ingress port needs the in_port action.
                    if p != in_id {
                        st.sent |= self.output(li, desc, st.cur, &st.off, &st.lay, None, p, snap);
                    }
                }
                Action::InPort => {
                    st.sent |= self.output(li, desc, st.cur, &st.off, &st.lay, None, in_id, snap);
                }
                Action::Flood | Action::All => {
                    for &p in snap.all_ports.iter() {
                        if p != in_id {
                            st.sent |=
                                self.output(li, desc, st.cur, &st.off, &st.lay, None, p, snap);
                        }
                    }
                }
                Action::Normal => {
                    // (Why it sent nothing, if so, is in `st.failed`.)
                    st.sent |= self.normal(li, desc, st, snap);
                }
                Action::SetField { field, value } => {
                    self.make_work(li, desc, &mut st.cur);
                    if rewrite::set_field(
                        &mut self.scratch.work,
                        &st.key,
                        &st.lay,
                        &st.off,
                        field,
                        value,
                    )
                    .is_err()
                    {
                        return st.fail(DropReason::ActionFailed);
                    }
                    field.set(&mut st.key, value);
                }
                Action::PushVlan(tpid) => {
                    let tci = if st.key.vlan_tci & flow::VLAN_PRESENT != 0 {
                        st.key.vlan_tci & !flow::VLAN_PRESENT
                    } else {
                        0
                    };
                    let src: &[u8] = match st.cur {
                        Cur::Rx => self.ports[li].port.frame(desc),
                        Cur::Work => &self.scratch.work,
                    };
                    match rewrite::push_vlan(src, tpid, tci, &st.off, &mut self.scratch.alt) {
                        Ok(o) => st.off = o,
                        Err(_) => return st.fail(DropReason::ActionFailed),
                    }
                    std::mem::swap(&mut self.scratch.work, &mut self.scratch.alt);
                    st.cur = Cur::Work;
                    st.lay.l3 += 4;
                    if st.lay.l4 != 0 {
                        st.lay.l4 += 4;
                    }
                    st.lay.tags = st.lay.tags.saturating_add(1);
                    st.key.vlan_inner = st.key.vlan_tci;
                    st.key.vlan_tci = tci | flow::VLAN_PRESENT;
                }
                Action::PopVlan => {
                    let src: &[u8] = match st.cur {
                        Cur::Rx => self.ports[li].port.frame(desc),
                        Cur::Work => &self.scratch.work,
                    };
                    match rewrite::pop_vlan(src, &st.off, &mut self.scratch.alt) {
                        Ok(o) => st.off = o,
                        Err(_) => return st.fail(DropReason::ActionFailed),
                    }
                    std::mem::swap(&mut self.scratch.work, &mut self.scratch.alt);
                    st.cur = Cur::Work;
                    st.lay.l3 = st.lay.l3.saturating_sub(4);
                    st.lay.l4 = st.lay.l4.saturating_sub(4);
                    st.lay.tags = st.lay.tags.saturating_sub(1);
                    st.key.vlan_tci = match self.scratch.work.get(14..16) {
                        Some(t) if st.lay.tags > 0 => {
                            u16::from_be_bytes([t[0], t[1]]) | flow::VLAN_PRESENT
                        }
                        _ => 0,
                    };
                    st.key.vlan_inner = match self.scratch.work.get(18..20) {
                        Some(t) if st.lay.tags > 1 => {
                            u16::from_be_bytes([t[0], t[1]]) | flow::VLAN_PRESENT
                        }
                        _ => 0,
                    };
                }
                Action::DecTtl => {
                    self.make_work(li, desc, &mut st.cur);
                    match rewrite::dec_ttl(&mut self.scratch.work, &st.key, &st.lay) {
                        Ok(true) => st.key.nw_ttl = st.key.nw_ttl.saturating_sub(1),
                        Ok(false) => return st.fail(DropReason::TtlExpired),
                        Err(_) => return st.fail(DropReason::ActionFailed),
                    }
                }
                Action::Meter(id) => {
                    let Some(m) = snap.pipeline.meter(id) else {
                        return st.fail(DropReason::ActionFailed);
                    };
                    let len = match st.cur {
                        Cur::Rx => u64::from(desc.len),
                        Cur::Work => self.scratch.work.len() as u64,
                    };
                    if !m.admit(self.index, len, self.now_ns, self.now_ms) {
                        return st.fail(DropReason::MeterDrop);
                    }
                }
                Action::Group(id) if top => {
                    let Some(g) = snap.pipeline.group(id).cloned() else {
                        return st.fail(DropReason::ActionFailed);
                    };
                    self.run_group(li, desc, st, &g, snap);
                }
                Action::Controller { max_len, reason } => {
                    let bytes: &[u8] = match st.cur {
                        Cur::Rx => self.ports[li].port.frame(desc),
                        Cur::Work => &self.scratch.work,
                    };
                    let total = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
                    self.to_controller(st, bytes, total, max_len, reason, meta);
                    st.ctl = st.ctl.saturating_add(1);
                    st.sent = true;
                }
                // Rejected when groups are added; defence in depth.
                Action::Group(_) => {
                    return st.fail(DropReason::ActionFailed);
                }
            }
        }
        true
    }

    /// Runs a group: each chosen bucket on its own copy of the packet as it is now.
    fn run_group(
        &mut self,
        li: usize,
        desc: &RxDesc,
        st: &mut Exec,
        g: &crate::ofp::group::Group,
        snap: &Snapshot,
    ) {
        use crate::ofp::group::GroupType;
        let len = match st.cur {
            Cur::Rx => u64::from(desc.len),
            Cur::Work => self.scratch.work.len() as u64,
        };
        g.stats.hit(self.index, 1, len, self.now_ms);
        let chosen: Option<usize> = match g.kind {
            GroupType::All => None,
            GroupType::Indirect => Some(0),
            GroupType::Select => {
                match g.select(&st.key, |p| snap.port(p).is_some_and(|c| c.live)) {
                    Some(b) => Some(b),
                    None => {
                        st.fail(DropReason::FlowDrop);
                        return;
                    }
                }
            }
            GroupType::FastFailover => {
                let live = g.buckets.iter().position(|b| {
                    b.watch_port
                        .is_some_and(|p| snap.port(p).is_some_and(|c| c.live))
                });
                match live {
                    Some(b) => Some(b),
                    None => {
                        st.fail(DropReason::FlowDrop);
                        return;
                    }
                }
            }
        };
        // A bucket that rewrites the frame must not change what the next bucket starts from.
        let base_in_work = st.cur == Cur::Work;
        if base_in_work {
            self.scratch.base.clear();
            self.scratch.base.extend_from_slice(&self.scratch.work);
        }
        let buckets: &[crate::ofp::group::Bucket] = match chosen {
            Some(b) => std::slice::from_ref(&g.buckets[b]),
            None => &g.buckets,
        };
        for (i, b) in buckets.iter().enumerate() {
            let bi = chosen.unwrap_or(i);
            if base_in_work && i > 0 {
                self.scratch.work.clear();
                self.scratch.work.extend_from_slice(&self.scratch.base);
            }
            let mut bst = Exec {
                sent: false,
                failed: None,
                ..*st
            };
            if let Some(s) = g.bucket_stats.get(bi) {
                s.hit(self.index, 1, len, self.now_ms);
            }
            self.run_ops(li, desc, &mut bst, &b.actions, snap, false, &[]);
            // One frame, one count: a bucket that fails does not count a drop of its own
            // (the frame counts as dropped only if no bucket, and nothing else, sent it).
            st.sent |= bst.sent;
            if st.failed.is_none() {
                st.failed = bst.failed;
            }
        }
        if base_in_work {
            // The ops after the group see the packet as it was before it.
            std::mem::swap(&mut self.scratch.work, &mut self.scratch.base);
        }
    }

    /// The learning bridge for one frame; false when it sent nothing (why, when a reason is
    /// known, kept in `st.failed`).
    fn normal(&mut self, li: usize, desc: &RxDesc, st: &mut Exec, snap: &Snapshot) -> bool {
        let (cur, key, lay, off) = (st.cur, &st.key, &st.lay, &st.off);
        let out = self.normal_decide(
            st.in_id,
            key.vlan_tci,
            lay.tags,
            key.eth_src,
            key.eth_dst,
            snap,
        );
        match out {
            Ok(NormalOut::Unicast(vlan, out)) => {
                self.output(li, desc, cur, off, lay, Some(vlan), out, snap)
            }
            Ok(NormalOut::Flood(vlan)) => {
                let list = snap.flood.get(&vlan).map_or(&[][..], |b| &b[..]);
                let mut candidates = false;
                let mut sent = false;
                for &out in list.iter().chain(snap.trunk_all.iter()) {
                    if out != st.in_id {
                        candidates = true;
                        sent |= self.output(li, desc, cur, off, lay, Some(vlan), out, snap);
                    }
                }
                if !candidates {
                    st.fail(DropReason::NoOutput);
                }
                sent
            }
            Err(r) => st.fail(r),
        }
    }

    /// The learning bridge's decision for a frame from `in_id` with outer tag `tci` (`tags`
    /// tags), source `src` and destination `dst`: a remembered one ([`NormalMemo`]) while it
    /// holds, else [`normal_lookup`](Self::normal_lookup)'s, remembered. Output failures (tx
    /// queue full, too big) are counted on the output port later; a flood with no candidate
    /// port is the caller's to count (`NoOutput`).
    fn normal_decide(
        &mut self,
        in_id: u32,
        tci: u16,
        tags: u8,
        src: [u8; 6],
        dst: [u8; 6],
        snap: &Snapshot,
    ) -> Result<NormalOut, DropReason> {
        // Read before the lookups below: a decision made with this generation holds while
        // the table's generation stays the same.
        let macs_gen = self.shared.macs.generation();
        let slot = memo_slot(in_id, &src, &dst);
        let m = &self.normal_memo[slot];
        if m.macs_gen == macs_gen
            && m.snap_gen == snap.generation
            && m.now == self.now
            && m.in_id == in_id
            && m.src == src
            && m.dst == dst
            && m.tci == tci
            && m.tags == tags
        {
            return Ok(m.out);
        }
        let out = self.normal_lookup(in_id, tci, tags, src, dst, snap)?;
        if !self.last_learn_full {
            self.normal_memo[slot] = NormalMemo {
                in_id,
                now: self.now,
                macs_gen,
                snap_gen: snap.generation,
                tci,
                tags,
                src,
                dst,
                out,
            };
        }
        Ok(out)
    }

    /// [`normal_decide`](Self::normal_decide) without the memory: learns the source (once per
    /// batch per sender) and looks up the destination.
    fn normal_lookup(
        &mut self,
        in_id: u32,
        tci: u16,
        tags: u8,
        src: [u8; 6],
        dst: [u8; 6],
        snap: &Snapshot,
    ) -> Result<NormalOut, DropReason> {
        let in_conf = snap.port(in_id).ok_or(DropReason::PortDown)?;
        let vlan = ingress_vlan(&in_conf.vlan, tci, tags).ok_or(DropReason::VlanNotAllowed)?;
        // A group address, or the all-zero one (the Linux bridge's `is_valid_ether_addr`;
        // until 2026-12-07 the zero address was learned and unicast to it followed).
        if src[0] & 1 != 0 || src == [0; 6] {
            return Err(DropReason::BadSrcMac);
        }
        // A burst of one sender's frames learns its address once per batch (the table entry is
        // the same for all of them; `last_learned` is cleared at every batch).
        let learned = (vlan, src, in_id);
        if self.last_learned != Some(learned) {
            self.last_learned = Some(learned);
            let counters = &self.ctls[self.index].counters;
            self.last_learn_full = match self.shared.macs.learn(vlan, &src, in_id, self.now) {
                Learned::Full => {
                    counters.mac_learn_full.add(1);
                    true
                }
                Learned::PortFull => {
                    counters.mac_learn_port_full.add(1);
                    true
                }
                Learned::Added | Learned::Refreshed | Learned::Moved { .. } => false,
            };
        }
        let unicast_out = if dst[0] & 1 == 0 {
            self.shared.macs.lookup(vlan, &dst)
        } else {
            // IEEE 802.1 link-local addresses 01:80:c2:00:00:01–0f (pause, LACP, 802.1X,
            // LLDP, …) are for the link they came on: a bridge does not relay them (802.1Q
            // table 8-1, the Linux bridge, Open vSwitch). 01:80:c2:00:00:00 (STP BPDUs) is
            // flooded, as the Linux bridge does with STP off: this switch runs none, and
            // the switches beyond it see their loops. (Until 2026-12-07 all were flooded.)
            if dst[..5] == [0x01, 0x80, 0xc2, 0, 0] && (1..=0x0f).contains(&dst[5]) {
                return Err(DropReason::LinkLocal);
            }
            None
        };
        match unicast_out {
            Some(out) if out == in_id => Err(DropReason::SameSegment),
            Some(out) if snap.port(out).is_some_and(|c| member(&c.vlan, vlan)) => {
                Ok(NormalOut::Unicast(vlan, out))
            }
            _ => Ok(NormalOut::Flood(vlan)),
        }
    }

    /// Sends the current frame (received or rewritten) out of port `out`, re-tagged for the
    /// port's VLAN mode when `vlan` is given (normal), as it is otherwise. Failures are
    /// counted on the output port; false when the port does not exist, or when the
    /// double-tag guard withholds the copy (`self.withheld` then says so).
    #[expect(
        clippy::too_many_arguments,
        reason = "the frame's parts, borrowed separately"
    )]
    fn output(
        &mut self,
        li: usize,
        desc: &RxDesc,
        cur: Cur,
        off: &Offload,
        lay: &Layout,
        vlan: Option<u16>,
        out: u32,
        snap: &Snapshot,
    ) -> bool {
        let Some(conf) = snap.port(out) else {
            return false;
        };
        let lo = self
            .local_of
            .get(out as usize)
            .copied()
            .unwrap_or(NOT_LOCAL);
        let mut off = *off;
        let Self {
            ports,
            scratch,
            ctls,
            index,
            recycle_rx,
            dirty,
            withheld,
            ..
        } = self;
        let src: &[u8] = match cur {
            Cur::Rx => ports[li].port.frame(desc),
            Cur::Work => &scratch.work,
        };
        // Rewrite the tag into scratch when the output wants it differently.
        let edited = match vlan {
            Some(v) => {
                let want = egress(&conf.vlan, v);
                // Popping the outer tag of a double-tagged frame would let its inner tag pick
                // the VLAN on the far side (double-tagging VLAN hop): that copy is not sent,
                // and counted on the port the frame came in on.
                if want == Egress::Untagged && lay.tags > 1 {
                    *withheld = true;
                    return false;
                }
                retag(src, lay, want, &mut scratch.frame, &mut off)
            }
            None => false,
        };
        if lo == NOT_LOCAL {
            let bytes: &[u8] = if edited { &scratch.frame } else { src };
            let to = Remote {
                ctls,
                from: *index,
                worker: conf.worker,
                port: out,
                incarnation: conf.incarnation,
                counters: conf.counters.as_deref(),
            };
            handoff(&to, &mut scratch.pool, recycle_rx, bytes, off);
            return true;
        }
        let lo = usize::from(lo);
        let sent = if cur == Cur::Work || edited {
            let bytes: &[u8] = if edited {
                &scratch.frame
            } else {
                &scratch.work
            };
            send_on(&mut ports[lo], bytes, &off, &mut scratch.seg)
        } else if lo == li {
            // in_port output of the received frame: copy it out of the rx buffer first.
            scratch.work.clear();
            scratch.work.extend_from_slice(ports[li].port.frame(desc));
            send_on(&mut ports[lo], &scratch.work, &off, &mut scratch.seg)
        } else {
            let (src_port, dst) = pair(ports, li, lo);
            send_on(dst, src_port.port.frame(desc), &off, &mut scratch.seg)
        };
        if sent {
            dirty[lo] = true;
        }
        true
    }
}

/// Consecutive frames of one rx batch that take the same cache entry and the same run-time
/// decisions ([`crate::cache::CachedFlow::same_run`]): the first is looked up, the others only
/// compared with it; the entry's flows are charged once for all, and forward-only ops run once
/// (each output port resolved, `normal` decided once) with the frames queued in order.
#[derive(Debug)]
struct Run {
    /// The entry (no insertion or removal happens while a run is open).
    entry: Option<crate::cache::EntryRef>,
    /// Its [`CachedFlow::chain_id`](crate::cache::CachedFlow::chain_id), in a staged batch
    /// (its ops stay while the run is open: the lookup that opened it checked it, and a
    /// lookup does not check an entry twice in a revalidation).
    chain: usize,
    /// Batch index of the first frame (its key is `Worker::keys[key]`).
    key: usize,
    /// VLAN tags of the first frame (`normal` classifies by them as well).
    tags: u8,
    /// Frames and bytes in the run.
    frames: u32,
    bytes: u64,
    /// Batch indexes of the frames waiting for forward-only ops (`idx[..queued]`).
    queued: usize,
    idx: [u8; BATCH_SIZE],
}

impl Run {
    /// Queues frame `i` of the batch for the run's forward-only ops.
    #[inline(always)]
    fn queue(&mut self, i: usize) {
        if let Some(slot) = self.idx.get_mut(self.queued) {
            #[expect(clippy::cast_possible_truncation, reason = "i < BATCH_SIZE")]
            {
                *slot = i as u8;
            }
            self.queued += 1;
        }
    }
}

/// A batch's budget of upcalls, and whether `Worker::hashes` hold.
struct FrameState {
    upcalls: usize,
    /// `Worker::hashes` hold the keys' hashes of [`FlowCache::hash_epoch`] `epoch` (a staged
    /// batch).
    hashed: bool,
    epoch: u32,
}

/// What a batch's received frames add up to (for the port's receive counters; [`TxTally`] is
/// the transmit side's).
#[derive(Default)]
struct RxTally {
    bytes: u64,
    jumbo: u64,
    /// Frames looked up (that joined no run).
    lookups: u32,
}

/// How the frames of a receive batch are parsed, by the kind of port they came from (read
/// once per batch).
#[derive(Clone, Copy, PartialEq, Eq)]
enum RxKind {
    /// In-memory ports (tests and benches): as given.
    Plain,
    /// Ports whose frames may carry their sender's offload state (taps, AF_PACKET with
    /// virtio-net headers): that state checked ([`parse_offloaded`]).
    Checked,
    /// AF_XDP: a frame without offload state may hold a partial checksum to complete; a split
    /// port's companion frames carry offload state, checked.
    Repair,
}

impl RxKind {
    fn of(kind: PortKind) -> Self {
        match kind {
            PortKind::Mem => Self::Plain,
            PortKind::AfXdp => Self::Repair,
            PortKind::Tap | PortKind::AfPacket => Self::Checked,
        }
    }
}

/// Extracts the key of frame `desc`, received on `lp` (of kind `rx_kind`), into `key`, adding
/// the frame to `tally`; a frame that does not parse is counted as dropped (`None`).
#[inline(always)]
fn parse_frame(
    lp: &mut LocalPort,
    desc: &RxDesc,
    key: &mut FlowKey,
    rx_kind: RxKind,
    tally: &mut RxTally,
) -> Option<Layout> {
    tally.frame(desc.len);
    let res = if rx_kind == RxKind::Plain {
        flow::extract_into(lp.port.frame(desc), lp.id, key)
    } else if !desc.offload.is_none() {
        parse_offloaded(lp, desc, key)
    } else if rx_kind == RxKind::Repair {
        // A frame whose checksum may need completing is looked up once, writable.
        let frame = lp.port.frame_mut(desc);
        flow::extract_into(frame, lp.id, key).inspect(|lay| {
            let _ = offload::repair_partial_csum_keyed(frame, key, lay);
        })
    } else {
        flow::extract_into(lp.port.frame(desc), lp.id, key)
    };
    res.map_err(|r| lp.counters.rx_drops[r as usize].add(1))
        .ok()
}

/// [`parse_frame`] of a frame with offload state (from a tap or a packet socket with
/// virtio-net headers: the sender's, untrusted), which must be one a real sender's kernel
/// makes: a partial checksum anywhere but a TCP or UDP checksum field would have two bytes
/// the flows matched (an address, a port) overwritten on the way out, and a super-frame cut
/// finer than any sender's would become up to a frame per payload byte (`bad_header`).
/// (Out of line and cold: the in-memory and AF_XDP paths' code stays as small as it was, 3
/// instructions a frame more, where it inlined cost 12.)
#[cold]
#[inline(never)]
fn parse_offloaded(
    lp: &mut LocalPort,
    desc: &RxDesc,
    key: &mut FlowKey,
) -> Result<Layout, DropReason> {
    let frame = lp.port.frame(desc);
    let lay = flow::extract_into(frame, lp.id, key)?;
    let off = &desc.offload;
    if offload::partial_csum_fits(frame, off, usize::from(lay.l4), key.nw_proto)
        && offload::gso_size_fits(frame, off)
    {
        Ok(lay)
    } else {
        Err(DropReason::BadHeader)
    }
}

impl RxTally {
    #[inline(always)]
    fn frame(&mut self, len: u32) {
        self.bytes += u64::from(len);
        if len as usize > JUMBO_THRESHOLD {
            self.jumbo += 1;
        }
    }
}

/// The set bits of a word, lowest first: the batch indexes of a frame mask.
struct Bits(u64);

impl Iterator for Bits {
    type Item = usize;

    #[inline(always)]
    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let i = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(i)
    }
}

/// Entries of a worker's memory of `normal` decisions.
const NORMAL_MEMO: usize = 16;

/// A `normal` decision remembered for frames from port `in_id` with outer tag `tci` (`tags`
/// tags), source `src` and destination `dst`: learning the source and looking up the
/// destination (two hashed probes of the shared MAC table) is done once, not per run. It holds
/// while the MAC table's generation (no address came, moved or went since) and the snapshot
/// (ports, VLANs, flows) are those it was made with, and only within the second it was made
/// in, so that the source's entry is still refreshed once a second and never ages out under
/// traffic. Decisions that drop, and those whose source could not be learned (table full:
/// counted per batch), are not remembered.
#[derive(Clone, Copy, Debug)]
struct NormalMemo {
    in_id: u32,
    now: u32,
    macs_gen: u64,
    snap_gen: u64,
    tci: u16,
    tags: u8,
    src: [u8; 6],
    dst: [u8; 6],
    out: NormalOut,
}

impl NormalMemo {
    /// Matches nothing: the MAC table's generation counts up from 0, one per change, and
    /// never reaches `u64::MAX`.
    const EMPTY: Self = Self {
        in_id: 0,
        now: 0,
        macs_gen: u64::MAX,
        snap_gen: 0,
        tci: 0,
        tags: 0,
        src: [0; 6],
        dst: [0; 6],
        out: NormalOut::Flood(0),
    };
}

/// The [`NormalMemo`] slot of a (port, source, destination).
#[inline]
fn memo_slot(in_id: u32, src: &[u8; 6], dst: &[u8; 6]) -> usize {
    (usize::from(src[5] ^ dst[5]) ^ in_id as usize) & (NORMAL_MEMO - 1)
}

/// Where `normal` sends a frame.
#[derive(Clone, Copy, Debug)]
enum NormalOut {
    /// (VLAN, port) the destination was learned on.
    Unicast(u16, u32),
    /// Every member of the VLAN.
    Flood(u16),
}

/// A received frame waiting for its translation.
#[derive(Debug)]
struct Pending {
    port: u32,
    incarnation: u64,
    buf: Vec<u8>,
    offload: Offload,
}

/// The state of a frame while ops run on it.
#[derive(Clone, Copy, Debug)]
struct Exec {
    /// Ingress port number (0: the controller).
    in_id: u32,
    /// `controller` ops run so far (indexes the translation's (table, cookie) list).
    ctl: u8,
    key: FlowKey,
    lay: Layout,
    cur: Cur,
    off: Offload,
    /// Some op queued it on a port.
    sent: bool,
    /// Why the first op that failed dropped it (counted only if nothing sent it).
    failed: Option<DropReason>,
}

impl Exec {
    /// An op dropped the frame for `r` (kept unless an earlier one did): false, so that
    /// `return st.fail(..)` ends the ops.
    fn fail(&mut self, r: DropReason) -> bool {
        self.failed.get_or_insert(r);
        false
    }
}

/// Which buffer holds the frame being processed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cur {
    /// The port's receive buffer, unchanged.
    Rx,
    /// `Scratch::work` (rewritten by actions).
    Work,
}

/// Where a handed-off frame goes.
struct Remote<'a> {
    ctls: &'a [Arc<WorkerCtl>],
    from: usize,
    worker: usize,
    port: u32,
    incarnation: u64,
    /// The port's counters ([`PortConf::counters`]).
    counters: Option<&'a PortCounters>,
}

/// Copies a frame into a recycled buffer and queues it for the worker that owns its port (a
/// full channel is counted on the port, as a transmit drop of reason `tx_queue_full`, and in
/// the sender's `handoff_drops`).
fn handoff(
    to: &Remote<'_>,
    pool: &mut Vec<Vec<u8>>,
    recycle_rx: &Receiver<Vec<u8>>,
    bytes: &[u8],
    offload: Offload,
) {
    while let Ok(b) = recycle_rx.try_recv() {
        // Keep the pool bounded in memory: big (GSO-sized) buffers beyond a few are freed.
        if b.capacity() <= MAX_POOLED_BIG_LEN || pool.len() < MAX_POOLED_BIG {
            pool.push(b);
        }
    }
    let mut buf = pool.pop().unwrap_or_default();
    buf.clear();
    buf.extend_from_slice(bytes);
    let Some(ctl) = to.ctls.get(to.worker) else {
        pool.push(buf);
        return;
    };
    match ctl.handoff.try_send(Handoff {
        port: to.port,
        buf,
        offload,
        from: to.from,
        incarnation: to.incarnation,
    }) {
        Ok(()) => ctl.wake_if_sleeping(),
        Err(TrySendError::Full(h) | TrySendError::Disconnected(h)) => {
            pool.push(h.buf);
            if let Some(c) = to.counters {
                c.handoff_full.add(1);
            }
            if let Some(me) = to.ctls.get(to.from) {
                me.counters.handoff_drops.add(1);
            }
        }
    }
}

/// `(&v[a], &mut v[b])` for `a != b`.
fn pair<T>(v: &mut [T], a: usize, b: usize) -> (&T, &mut T) {
    if a < b {
        let (l, r) = v.split_at_mut(b);
        (&l[a], &mut r[0])
    } else {
        let (l, r) = v.split_at_mut(a);
        (&r[0], &mut l[b])
    }
}

/// Queues a frame on a port and counts it.
fn transmit(lp: &mut LocalPort, bytes: &[u8], off: &Offload) -> bool {
    // The limit is for untagged frames; a tag adds 4 bytes the link carries as well.
    let tagged = matches!(bytes.get(12..14), Some([0x81, 0x00] | [0x88, 0xa8]));
    let limit = lp.port.caps().max_frame_len + if tagged { 4 } else { 0 };
    let res = enqueue(lp, bytes, off, limit);
    let mut tally = TxTally::default();
    tally.add(res);
    tally.charge(&lp.counters);
    res.is_ok()
}

/// Queues a frame of at most `limit` bytes (unless GSO) on a port; the frame's length, or why
/// it was dropped. Counters are the caller's ([`TxTally`]).
#[inline]
fn enqueue(
    lp: &mut LocalPort,
    bytes: &[u8],
    off: &Offload,
    limit: usize,
) -> Result<usize, DropReason> {
    if !off.is_gso() && bytes.len() > limit {
        return Err(DropReason::TooBig);
    }
    // A full tx queue is flushed once mid-batch before giving up (GSO segmentation can queue
    // dozens of frames for one received frame). The flush's error does not say it made no
    // room (it may be a frame's of this flush or an earlier send's, dropped and counted
    // already): the frame is tried again either way.
    if lp.port.tx_enqueue(bytes, off) || {
        let _ = lp.port.tx_flush();
        lp.port.tx_enqueue(bytes, off)
    } {
        Ok(bytes.len())
    } else if lp.port.is_gone() {
        Err(DropReason::PortDown)
    } else {
        Err(DropReason::TxQueueFull)
    }
}

/// Transmit counters of several frames, added to the port's counters at once.
#[derive(Default)]
struct TxTally {
    pkts: u64,
    bytes: u64,
    jumbo: u64,
    too_big: u64,
    full: u64,
    /// Refused by a port whose device is gone ([`DropReason::PortDown`]).
    down: u64,
}

impl TxTally {
    #[inline]
    fn add(&mut self, res: Result<usize, DropReason>) {
        match res {
            Ok(len) => {
                self.pkts += 1;
                self.bytes += len as u64;
                self.jumbo += u64::from(len > JUMBO_THRESHOLD);
            }
            Err(DropReason::TooBig) => self.too_big += 1,
            Err(DropReason::PortDown) => self.down += 1,
            Err(_) => self.full += 1,
        }
    }

    fn charge(&self, c: &PortCounters) {
        if self.pkts > 0 {
            c.tx_pkts.add(self.pkts);
            c.tx_bytes.add(self.bytes);
            if self.jumbo > 0 {
                c.tx_jumbo.add(self.jumbo);
            }
        }
        if self.too_big > 0 {
            c.tx_drops[DropReason::TooBig as usize].add(self.too_big);
        }
        if self.full > 0 {
            c.tx_drops[DropReason::TxQueueFull as usize].add(self.full);
        }
        if self.down > 0 {
            c.tx_drops[DropReason::PortDown as usize].add(self.down);
        }
    }
}

/// Queues a frame on a local port: as it is when the port carries offload state (or there is
/// none), else completed / segmented first. True when anything was queued.
fn send_on(lp: &mut LocalPort, bytes: &[u8], off: &Offload, seg: &mut offload::SegmentBuf) -> bool {
    // (A complete frame goes without asking the port for its capabilities.)
    if off.is_none() || {
        let caps = lp.port.caps();
        off.passes(caps.tx_offload, caps.tx_udp_tunnel)
    } {
        transmit(lp, bytes, off)
    } else {
        materialize(bytes, off, seg, lp)
    }
}

/// Completes checksums / segments a frame for a port without offloads, then queues it.
fn materialize(
    bytes: &[u8],
    off: &Offload,
    seg: &mut offload::SegmentBuf,
    lp: &mut LocalPort,
) -> bool {
    let mut any = false;
    let res = offload::segment(bytes, off, seg, &mut |s: &[u8]| {
        any |= transmit(lp, s, &Offload::NONE);
    });
    if res.is_err() {
        lp.counters.tx_drops[DropReason::TooBig as usize].add(1);
        return false;
    }
    any
}

/// Writes `src` with its outer tag changed to `want` into `out`, adjusting offload offsets.
/// Returns false (and leaves `out` alone) when the frame already has the wanted form.
fn retag(src: &[u8], lay: &Layout, want: Egress, out: &mut Vec<u8>, off: &mut Offload) -> bool {
    let tagged = lay.tags > 0 && src.len() >= 18;
    let shift = |off: &mut Offload, grow: bool| {
        let adj = |v: u16| {
            if grow {
                v.saturating_add(4)
            } else {
                v.saturating_sub(4)
            }
        };
        if off.needs_csum() {
            off.csum_start = adj(off.csum_start);
        }
        if off.hdr_len != 0 {
            off.hdr_len = adj(off.hdr_len);
        }
    };
    match (tagged, want) {
        (false, Egress::Untagged) => false,
        (true, Egress::Tagged(v)) => {
            let tci = u16::from_be_bytes([src[14], src[15]]);
            let tpid = u16::from_be_bytes([src[12], src[13]]);
            // A trunk carries 802.1Q tags: an 802.1ad outer tag would read as untagged (the
            // native VLAN) to an 802.1Q neighbour.
            if tci & 0x0fff == v && tpid == flow::ETH_TYPE_VLAN {
                return false;
            }
            out.clear();
            out.extend_from_slice(src);
            let new = (tci & 0xf000) | v;
            out[12..14].copy_from_slice(&flow::ETH_TYPE_VLAN.to_be_bytes());
            out[14..16].copy_from_slice(&new.to_be_bytes());
            true
        }
        (true, Egress::Untagged) => {
            out.clear();
            out.extend_from_slice(&src[..12]);
            out.extend_from_slice(&src[16..]);
            shift(off, false);
            true
        }
        (false, Egress::Tagged(v)) => {
            out.clear();
            out.extend_from_slice(&src[..12]);
            out.extend_from_slice(&flow::ETH_TYPE_VLAN.to_be_bytes());
            out.extend_from_slice(&v.to_be_bytes());
            out.extend_from_slice(&src[12..]);
            shift(off, true);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_port_accepts_untagged_and_priority_tagged_only() {
        let m = VlanMode::Access { vlan: 10 };
        assert_eq!(ingress_vlan(&m, 0, 0), Some(10));
        assert_eq!(ingress_vlan(&m, flow::VLAN_PRESENT, 1), Some(10));
        assert_eq!(ingress_vlan(&m, flow::VLAN_PRESENT | 20, 1), None);
        // A priority tag hiding a second tag would hop VLANs once the outer tag is popped.
        assert_eq!(ingress_vlan(&m, flow::VLAN_PRESENT, 2), None);
    }

    #[test]
    fn trunk_port_accepts_allowed_vlans_and_native() {
        let m = VlanMode::Trunk {
            allowed: vec![10, 20],
            native: Some(30),
        };
        assert_eq!(ingress_vlan(&m, flow::VLAN_PRESENT | 20, 1), Some(20));
        assert_eq!(ingress_vlan(&m, flow::VLAN_PRESENT | 40, 1), None);
        assert_eq!(ingress_vlan(&m, 0, 0), Some(30));
        assert_eq!(ingress_vlan(&m, flow::VLAN_PRESENT, 2), None);
        let all = VlanMode::Trunk {
            allowed: vec![],
            native: None,
        };
        assert_eq!(ingress_vlan(&all, flow::VLAN_PRESENT | 4000, 1), Some(4000));
        assert_eq!(ingress_vlan(&all, 0, 0), None);
        // VID 4095 is reserved.
        assert_eq!(ingress_vlan(&all, flow::VLAN_PRESENT | 0x0fff, 1), None);
    }

    #[test]
    fn retag_pushes_pops_and_rewrites_the_outer_tag() {
        let untagged: Vec<u8> = (0..60u8).collect();
        let lay0 = Layout {
            l3: 14,
            l4: 0,
            tags: 0,
        };
        let mut out = Vec::new();
        let mut off = Offload {
            flags: Offload::F_NEEDS_CSUM,
            csum_start: 34,
            ..Offload::NONE
        };
        assert!(retag(
            &untagged,
            &lay0,
            Egress::Tagged(100),
            &mut out,
            &mut off
        ));
        assert_eq!(out.len(), 64);
        assert_eq!(&out[12..16], &[0x81, 0x00, 0x00, 100]);
        assert_eq!(&out[16..], &untagged[12..]);
        assert_eq!(off.csum_start, 38);
        let tagged = out.clone();
        let lay1 = Layout {
            l3: 18,
            l4: 0,
            tags: 1,
        };
        assert!(retag(&tagged, &lay1, Egress::Untagged, &mut out, &mut off));
        assert_eq!(out, untagged);
        assert_eq!(off.csum_start, 34);
        assert!(!retag(
            &tagged,
            &lay1,
            Egress::Tagged(100),
            &mut out,
            &mut off
        ));
        assert!(retag(
            &tagged,
            &lay1,
            Egress::Tagged(200),
            &mut out,
            &mut off
        ));
        assert_eq!(&out[14..16], &[0x00, 200]);
    }
}
