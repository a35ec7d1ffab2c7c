//! The switch handle used by the control plane (slow path).
//!
//! `Switch` owns the worker threads, the port registry and the shared MAC table. The control
//! thread is its only user: it adds and removes ports (opening the backend here, then handing it
//! to the owning worker through a bounded command channel), reads counters and dumps or flushes
//! the MAC table. Workers never lock: they read an immutable [`crate::worker::Snapshot`] published
//! through `ArcSwap` and poll their command channel once per batch.

use std::fmt;
use std::time::Duration;

use crate::port::{PortError, PortKind};
use crate::stats::PortCountersSnapshot;

/// Lowest valid 802.1Q VLAN id.
pub const VLAN_MIN: u16 = 1;
/// Highest valid 802.1Q VLAN id.
pub const VLAN_MAX: u16 = 4094;
/// Most ports a switch holds (bounded registry; port numbers are 1..=MAX_PORTS).
pub const MAX_PORTS: usize = 1024;

/// How a port treats VLAN tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VlanMode {
    /// Untagged frames belong to `vlan`; tagged frames are dropped (priority tags, VID 0, accepted).
    /// Frames leave untagged.
    Access {
        /// The port's VLAN (1..=4094).
        vlan: u16,
    },
    /// Frames carry an 802.1Q tag with a VLAN in `allowed` (empty = every VLAN). Untagged frames
    /// belong to `native` if set (and leave untagged in it), else are dropped.
    Trunk {
        /// Allowed VLANs, sorted, deduplicated; empty means all.
        allowed: Vec<u16>,
        /// VLAN of untagged frames, if any.
        native: Option<u16>,
    },
}

impl Default for VlanMode {
    fn default() -> Self {
        Self::Access { vlan: 1 }
    }
}

impl VlanMode {
    /// Checks VLAN ids and normalizes the allowed list.
    ///
    /// # Errors
    /// [`SwitchError::Invalid`] naming the offending field.
    pub fn validated(self) -> Result<Self, SwitchError> {
        let check = |field: &'static str, v: u16| {
            if (VLAN_MIN..=VLAN_MAX).contains(&v) {
                Ok(v)
            } else {
                Err(SwitchError::Invalid {
                    field,
                    reason: format!("VLAN {v} outside {VLAN_MIN}..={VLAN_MAX}"),
                })
            }
        };
        match self {
            Self::Access { vlan } => Ok(Self::Access {
                vlan: check("vlan", vlan)?,
            }),
            Self::Trunk {
                mut allowed,
                native,
            } => {
                for v in &allowed {
                    check("trunks", *v)?;
                }
                allowed.sort_unstable();
                allowed.dedup();
                let native = native.map(|n| check("native_vlan", n)).transpose()?;
                if let Some(n) = native {
                    if !allowed.is_empty() && allowed.binary_search(&n).is_err() {
                        allowed.push(n);
                        allowed.sort_unstable();
                    }
                }
                Ok(Self::Trunk { allowed, native })
            }
        }
    }
}

impl fmt::Display for VlanMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Access { vlan } => write!(f, "access vlan={vlan}"),
            Self::Trunk { allowed, native } => {
                f.write_str("trunk")?;
                if allowed.is_empty() {
                    f.write_str(" vlans=all")?;
                } else {
                    f.write_str(" vlans=")?;
                    for (i, v) in allowed.iter().enumerate() {
                        if i > 0 {
                            f.write_str(",")?;
                        }
                        write!(f, "{v}")?;
                    }
                }
                if let Some(n) = native {
                    write!(f, " native={n}")?;
                }
                Ok(())
            }
        }
    }
}

/// Worker polling behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PollMode {
    /// Poll rx rings continuously (lowest latency, one core busy per worker).
    Busy,
    /// Poll while traffic flows; after an idle spell, sleep on rx readiness (epoll).
    #[default]
    Adaptive,
}

/// What to open as a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSpec {
    /// Network device name (for TAP: the tap to create or attach to).
    pub name: String,
    /// Backend; `None` picks AF_XDP where it works and falls back to AF_PACKET (logged).
    pub kind: Option<PortKind>,
    /// Number of rx/tx queues (AF_XDP); 1 for other backends.
    pub queues: usize,
    /// VLAN behaviour.
    pub vlan: VlanMode,
}

/// A port as the control plane sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortInfo {
    /// Port number (1-based, stable while the port exists).
    pub id: u32,
    /// Device name.
    pub name: String,
    /// Backend in use.
    pub kind: PortKind,
    /// Rx queues polled.
    pub queues: usize,
    /// VLAN behaviour.
    pub vlan: VlanMode,
    /// Index of the worker that owns the port.
    pub worker: usize,
}

/// One learned MAC address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MacEntry {
    /// VLAN it was learned in.
    pub vlan: u16,
    /// The address.
    pub mac: [u8; 6],
    /// Port number it was last seen on.
    pub port: u32,
    /// Seconds since it was last seen.
    pub age_secs: u64,
}

/// Switch-wide counters and settings, for `show`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwitchInfo {
    /// Number of workers.
    pub workers: usize,
    /// CPUs the workers are pinned to (empty = not pinned).
    pub cpus: Vec<usize>,
    /// Poll mode.
    pub poll_mode: PollMode,
    /// MAC table capacity.
    pub mac_table_max: usize,
    /// MAC entries in use.
    pub mac_entries: usize,
    /// MAC aging time.
    pub mac_aging: Duration,
    /// MAC moves detected since start.
    pub mac_moves: u64,
    /// Ports.
    pub ports: Vec<PortInfo>,
}

/// Per-worker counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Worker index.
    pub worker: usize,
    /// CPU it is pinned to, if any.
    pub cpu: Option<usize>,
    /// Batches processed (non-empty rx bursts).
    pub batches: u64,
    /// Frames processed.
    pub frames: u64,
    /// Times the worker went to sleep waiting for rx readiness.
    pub sleeps: u64,
}

/// Start-up settings of the datapath.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwitchConfig {
    /// CPUs to pin workers to, one worker each; empty = one unpinned worker.
    pub cpus: Vec<usize>,
    /// Poll mode of the workers.
    pub poll_mode: PollMode,
    /// MAC table capacity (entries).
    pub mac_table_max: usize,
    /// Time after which an address not seen again is forgotten.
    pub mac_aging: Duration,
}

impl Default for SwitchConfig {
    fn default() -> Self {
        Self {
            cpus: Vec::new(),
            poll_mode: PollMode::Adaptive,
            mac_table_max: 65_536,
            mac_aging: Duration::from_secs(300),
        }
    }
}

/// Errors of control operations on the switch. Nothing is changed when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    /// A port with this name already exists.
    #[error("port {name} already exists")]
    PortExists {
        /// Port name.
        name: String,
    },
    /// No port with this name.
    #[error("no port named {name}")]
    NoSuchPort {
        /// Port name.
        name: String,
    },
    /// The port registry is full.
    #[error("too many ports (max {max})")]
    TooManyPorts {
        /// The limit.
        max: usize,
    },
    /// Opening the port failed.
    #[error(transparent)]
    Port(#[from] PortError),
    /// An invalid setting.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The offending field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A worker thread did not answer (it died or is stuck).
    #[error("worker {worker} did not respond")]
    WorkerGone {
        /// Worker index.
        worker: usize,
    },
    /// Starting a worker thread failed.
    #[error("starting worker {worker}: {source}")]
    Spawn {
        /// Worker index.
        worker: usize,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Stats of one port.
pub type PortStats = (PortInfo, PortCountersSnapshot);

/// The running datapath: workers, ports and the MAC table.
#[derive(Debug)]
pub struct Switch {
    _private: (),
}

#[allow(clippy::todo, unused_variables, missing_docs)]
impl Switch {
    /// Starts the workers.
    ///
    /// # Errors
    /// A worker thread could not be started or pinned.
    pub fn start(config: SwitchConfig) -> Result<Self, SwitchError> {
        todo!()
    }
    /// Opens a port backend for `spec` and hands it to a worker.
    ///
    /// # Errors
    /// Name taken, registry full, invalid VLAN settings, or the backend failed to open.
    pub fn add_port(&mut self, spec: PortSpec) -> Result<PortInfo, SwitchError> {
        todo!()
    }
    /// Adds an already opened backend (mem ports in tests and benches).
    ///
    /// # Errors
    /// As [`Switch::add_port`].
    pub fn add_port_backend(
        &mut self,
        port: Box<dyn crate::port::Port>,
        vlan: VlanMode,
    ) -> Result<PortInfo, SwitchError> {
        todo!()
    }
    /// Removes a port: its worker stops polling it and closes it before this returns.
    ///
    /// # Errors
    /// No such port, or the worker did not answer.
    pub fn del_port(&mut self, name: &str) -> Result<(), SwitchError> {
        todo!()
    }
    /// The ports, by port number.
    pub fn ports(&self) -> Vec<PortInfo> {
        todo!()
    }
    /// Counters of one port (`Some(name)`) or of all ports.
    ///
    /// # Errors
    /// No such port.
    pub fn port_stats(&self, name: Option<&str>) -> Result<Vec<PortStats>, SwitchError> {
        todo!()
    }
    /// The learned MAC addresses.
    pub fn mac_table(&self) -> Vec<MacEntry> {
        todo!()
    }
    /// Forgets learned addresses, all or those of one VLAN and/or one port; returns how many.
    ///
    /// # Errors
    /// No such port.
    pub fn flush_macs(&mut self, vlan: Option<u16>, port: Option<&str>) -> Result<usize, SwitchError> {
        todo!()
    }
    /// Per-worker counters.
    pub fn worker_stats(&self) -> Vec<WorkerStats> {
        todo!()
    }
    /// Settings and summary.
    pub fn info(&self) -> SwitchInfo {
        todo!()
    }
    /// Periodic work of the control thread (MAC aging); call about once a second.
    pub fn housekeeping(&mut self) {
        todo!()
    }
    /// Stops the workers and closes every port (detaching what was attached).
    pub fn shutdown(self) {
        todo!()
    }
}
