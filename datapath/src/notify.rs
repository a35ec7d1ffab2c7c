//! Asynchronous events for controllers: packet-in (from workers), flow-removed and port-status
//! (from the control thread). All queues are bounded and count what they drop.
//!
//! Workers hand packet-ins to the control thread through a bounded channel
//! ([`PACKET_IN_QUEUE`]); a full channel drops the packet-in and counts it in the worker's
//! `packet_in_drops`. The control thread's own events wait in [`EVENT_QUEUE`]-bounded storage in
//! the [`Switch`](crate::switch::Switch) until the control server drains them.

use std::sync::Arc;
use std::time::Duration;

use crate::flow::FlowKey;
use crate::ofp::action::PacketInReason;
use crate::ofp::pipeline::Flow;
use crate::switch::PortInfo;

/// Packet-ins waiting for the control thread (all workers together).
pub const PACKET_IN_QUEUE: usize = 1_024;
/// Flow-removed and port-status events waiting for the control server.
pub const EVENT_QUEUE: usize = 4_096;
/// Table number reported for packet-ins caused by packet-out actions (OpenFlow's `OFPTT_ALL`).
pub const PACKET_OUT_TABLE: u8 = 0xff;

/// A frame a flow sent to the controller.
#[derive(Clone, Debug)]
pub struct PacketIn {
    /// Ingress port (0: the controller, for a packet-out).
    pub in_port: u32,
    /// Table of the flow whose action sent it.
    pub table: u8,
    /// That flow's cookie.
    pub cookie: u64,
    /// Why.
    pub reason: PacketInReason,
    /// The packet's key as the pipeline saw it at that point (registers, metadata included).
    pub key: FlowKey,
    /// Length of the whole frame.
    pub total_len: u32,
    /// The first `max_len` bytes of the frame.
    pub data: Vec<u8>,
}

/// Why a flow was removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemovedReason {
    /// No packet for `idle_timeout` seconds.
    IdleTimeout,
    /// `hard_timeout` seconds after it was added.
    HardTimeout,
    /// A delete flow-mod.
    Delete,
    /// The group it used was deleted.
    GroupDelete,
    /// The meter it used was deleted.
    MeterDelete,
}

impl RemovedReason {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IdleTimeout => "idle_timeout",
            Self::HardTimeout => "hard_timeout",
            Self::Delete => "delete",
            Self::GroupDelete => "group_delete",
            Self::MeterDelete => "meter_delete",
        }
    }
}

/// A removed flow with `send_flow_rem`.
#[derive(Clone, Debug)]
pub struct FlowRemoved {
    /// The flow as it was.
    pub flow: Arc<Flow>,
    /// Why.
    pub reason: RemovedReason,
    /// How long it existed.
    pub duration: Duration,
    /// Its final counters: packets it matched until the last worker stopped using it
    /// (read after the removal's grace period, see [`Switch::drain_events`]).
    ///
    /// [`Switch::drain_events`]: crate::switch::Switch::drain_events
    pub packets: u64,
    /// Its final byte counter (as `packets`).
    pub bytes: u64,
}

/// What happened to a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortChange {
    /// Added.
    Add,
    /// Removed.
    Delete,
    /// Its link went up or down (see [`PortInfo::link_up`]).
    Modify,
}

impl PortChange {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Delete => "delete",
            Self::Modify => "modify",
        }
    }
}

/// A port was added or removed.
#[derive(Clone, Debug)]
pub struct PortStatus {
    /// What happened.
    pub change: PortChange,
    /// The port.
    pub port: PortInfo,
}

/// An event for subscribed controllers.
#[derive(Clone, Debug)]
pub enum Event {
    /// A packet-in.
    PacketIn(Box<PacketIn>),
    /// A flow-removed.
    FlowRemoved(FlowRemoved),
    /// A port-status.
    PortStatus(PortStatus),
}
