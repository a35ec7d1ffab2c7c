//! A running switch with mem ports, for the pipeline bench and the no-alloc test.
//!
//! [`Rig::new`] starts a [`Switch`] with one busy-polling worker and `ports` mem ports (access
//! ports in VLAN 1, port 0 is "A", port 1 is "B"), and teaches it where [`MAC_A`] and [`MAC_B`]
//! are by sending one frame each way. After that, frames from A to B are forwarded to B only,
//! and frames from A to [`crate::frames::MAC_UNKNOWN`] are flooded to every other port.

use std::time::Duration;

use datapath::port::mem::{MemPeer, MemPort, MemPortOptions};
use datapath::switch::{PollMode, Switch, SwitchConfig, VlanMode};

use crate::frames::{MAC_A, MAC_B, udp4_between};

/// How long a frame may take through the switch before the rig gives up.
const TIMEOUT: Duration = Duration::from_secs(2);

/// A switch and the test side of its ports.
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
        let mut peers = Vec::with_capacity(ports);
        for i in 0..ports {
            let (port, peer) = MemPort::new(&format!("mem{i}"), MemPortOptions::default());
            switch
                .add_port_backend(Box::new(port), VlanMode::Access { vlan: 1 })
                .unwrap();
            peers.push(peer);
        }
        let rig = Self { switch, peers };
        // B → A: A is unknown, so the frame floods to every port but B; B is learned.
        rig.send(1, &udp4_between(MAC_B, MAC_A), 1);
        for p in (0..ports).filter(|&p| p != 1) {
            rig.expect(p, 1);
        }
        // A → B: B is known, so only B gets it; A is learned.
        rig.send(0, &udp4_between(MAC_A, MAC_B), 1);
        rig.expect(1, 1);
        let macs = rig.switch.mac_table();
        assert!(
            macs.iter().any(|e| e.mac == MAC_A && e.port == 1),
            "A not learned: {macs:?}"
        );
        assert!(
            macs.iter().any(|e| e.mac == MAC_B && e.port == 2),
            "B not learned: {macs:?}"
        );
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
