//! Switches with mem ports, for the pipeline benches, the no-alloc test and the instruction
//! counts.
//!
//! - [`InlineRig`] — a [`Switch`] in [`PollMode::Inline`]: no worker thread; the caller sends a
//!   batch into the mem ports, runs one pass with [`Switch::poll_inline_at`] and receives the
//!   outputs, all on one thread. Deterministic (the switch clock is fixed at [`CLOCK`]) and free
//!   of cross-thread hand-off, so it measures the switch rather than the scheduler.
//! - [`Rig`] — the same with one busy-polling worker thread (what `vswitchd` runs); its figures
//!   include the cross-thread hand-off through the mem ports' channels.
//!
//! Both have `ports` access ports in VLAN 1 (port 0 is "A", port 1 is "B") and know where
//! [`MAC_A`] and [`MAC_B`] are (one frame sent each way at start). After that, frames from A to
//! B are forwarded to B only, and frames from A to [`crate::frames::MAC_UNKNOWN`] are flooded
//! to every other port.

use std::time::Duration;

use datapath::ofp::pipeline::FlowMod;
use datapath::port::mem::{MemPeer, MemPort, MemPortOptions};
use datapath::switch::{PollMode, Switch, SwitchConfig, VlanMode};

use crate::frames::{MAC_A, MAC_B, udp4_between};

/// How long a frame may take through a threaded switch before the rig gives up.
const TIMEOUT: Duration = Duration::from_secs(2);

/// The switch clock of every [`InlineRig`] poll: one second after start, always.
pub const CLOCK: Duration = Duration::from_secs(1);

fn add_ports(switch: &mut Switch, ports: usize) -> Vec<MemPeer> {
    (0..ports)
        .map(|i| {
            let (port, peer) = MemPort::new(&format!("mem{i}"), MemPortOptions::default());
            switch
                .add_port_backend(Box::new(port), VlanMode::Access { vlan: 1 })
                .unwrap();
            peer
        })
        .collect()
}

fn assert_learned(switch: &Switch) {
    let macs = switch.mac_table();
    assert!(
        macs.iter().any(|e| e.mac == MAC_A && e.port == 1),
        "A not learned: {macs:?}"
    );
    assert!(
        macs.iter().any(|e| e.mac == MAC_B && e.port == 2),
        "B not learned: {macs:?}"
    );
}

/// An inline switch (no worker thread) and the test side of its ports.
#[derive(Debug)]
pub struct InlineRig {
    /// The switch.
    pub switch: Switch,
    /// The test side of each port, in the order the ports were added.
    pub peers: Vec<MemPeer>,
}

impl InlineRig {
    /// An inline switch with `ports` (≥ 2) mem ports and the MACs of A and B learned.
    ///
    /// # Panics
    /// If the switch does not start or does not forward the learning frames.
    pub fn new(ports: usize) -> Self {
        Self::with_flows(ports, std::iter::empty())
    }

    /// As [`new`](Self::new), then `flows` added to the tables and made visible with a
    /// barrier.
    ///
    /// # Panics
    /// If a flow-mod is refused, or as [`new`](Self::new).
    pub fn with_flows(ports: usize, flows: impl IntoIterator<Item = FlowMod>) -> Self {
        assert!(ports >= 2);
        let mut switch = Switch::start(SwitchConfig {
            poll_mode: PollMode::Inline,
            ..SwitchConfig::default()
        })
        .unwrap();
        let peers = add_ports(&mut switch, ports);
        let mut rig = Self { switch, peers };
        // B → A floods (A unknown) and teaches B; A → B then teaches A.
        rig.send_batch(1, std::slice::from_ref(&udp4_between(MAC_B, MAC_A)));
        rig.poll();
        for p in 0..ports {
            rig.drain(p);
        }
        rig.send_batch(0, std::slice::from_ref(&udp4_between(MAC_A, MAC_B)));
        rig.poll();
        for p in 0..ports {
            rig.drain(p);
        }
        assert_learned(&rig.switch);
        for fm in flows {
            rig.switch.flow_mod(&fm).unwrap();
        }
        rig.switch.barrier().unwrap();
        rig
    }

    /// Queues each of `frames` once at port `from` (the peer side: copied into a recycled
    /// buffer).
    ///
    /// # Panics
    /// If the port's receive queue is full (more than its capacity unpolled).
    #[inline(never)]
    pub fn send_batch(&self, from: usize, frames: &[Vec<u8>]) {
        let peer = &self.peers[from];
        for f in frames {
            assert!(peer.send(f), "port {from}: receive queue full");
        }
    }

    /// One pass of the switch (every port's received frames) at [`CLOCK`]; frames handled.
    #[inline(never)]
    pub fn poll(&mut self) -> usize {
        self.switch.poll_inline_at(CLOCK)
    }

    /// Receives every frame waiting at port `at`'s peer and gives the buffers back; how many.
    #[inline(never)]
    pub fn drain(&self, at: usize) -> usize {
        let peer = &self.peers[at];
        let mut n = 0;
        while let Some((buf, _)) = peer.try_recv() {
            peer.recycle(buf);
            n += 1;
        }
        n
    }

    /// Sends `frames` (≤ 64) from port `from`, runs one pass and receives what came out at
    /// port `to`; returns that count (every frame, when they are all forwarded to `to`).
    pub fn round(&mut self, from: usize, frames: &[Vec<u8>], to: usize) -> usize {
        self.send_batch(from, frames);
        self.poll();
        self.drain(to)
    }

    /// True when no port's peer has a frame waiting.
    pub fn quiet(&self) -> bool {
        (0..self.peers.len()).all(|p| self.drain(p) == 0)
    }
}

/// A switch with one busy-polling worker thread and the test side of its ports.
#[derive(Debug)]
pub struct Rig {
    /// The switch (dropping it stops the worker).
    pub switch: Switch,
    /// The test side of each port, in the order the ports were added.
    pub peers: Vec<MemPeer>,
}

impl Rig {
    /// A switch with `ports` (≥ 2) mem ports and the MACs of A and B learned.
    ///
    /// # Panics
    /// If the switch does not start or does not forward the learning frames.
    pub fn new(ports: usize) -> Self {
        assert!(ports >= 2);
        let mut switch = Switch::start(SwitchConfig {
            poll_mode: PollMode::Busy,
            ..SwitchConfig::default()
        })
        .unwrap();
        let peers = add_ports(&mut switch, ports);
        let rig = Self { switch, peers };
        // B → A: A is unknown, so the frame floods to every port but B; B is learned.
        rig.send(1, &udp4_between(MAC_B, MAC_A), 1);
        for p in (0..ports).filter(|&p| p != 1) {
            rig.expect(p, 1);
        }
        // A → B: B is known, so only B gets it; A is learned.
        rig.send(0, &udp4_between(MAC_A, MAC_B), 1);
        rig.expect(1, 1);
        assert_learned(&rig.switch);
        rig
    }

    /// Sends `n` copies of `frame` from port `from`'s peer (waiting when its queue is full).
    pub fn send(&self, from: usize, frame: &[u8], n: usize) {
        let peer = &self.peers[from];
        for _ in 0..n {
            while !peer.send(frame) {
                std::hint::spin_loop();
            }
        }
    }

    /// Receives `n` frames at port `at`'s peer and gives their buffers back to the port.
    ///
    /// # Panics
    /// If a frame does not arrive within 2 seconds.
    pub fn expect(&self, at: usize, n: usize) {
        let peer = &self.peers[at];
        for i in 0..n {
            let Some((buf, _)) = peer.recv_timeout(TIMEOUT) else {
                panic!("port {at}: frame {i} of {n} did not arrive");
            };
            peer.recycle(buf);
        }
    }

    /// Sends `n` copies of `frame` from port `from` and waits for `n` at each of `to`.
    pub fn forward(&self, from: usize, frame: &[u8], n: usize, to: &[usize]) {
        self.send(from, frame, n);
        for &p in to {
            self.expect(p, n);
        }
    }

    /// Sends each of `frames` once from port `from` and waits for as many at each of `to`.
    pub fn forward_each(&self, from: usize, frames: &[Vec<u8>], to: &[usize]) {
        for f in frames {
            self.send(from, f, 1);
        }
        for &p in to {
            self.expect(p, frames.len());
        }
    }

    /// True when no port's peer has a frame waiting.
    pub fn quiet(&self) -> bool {
        self.peers.iter().all(|p| match p.try_recv() {
            Some((buf, _)) => {
                p.recycle(buf);
                false
            }
            None => true,
        })
    }
}
