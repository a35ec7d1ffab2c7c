//! What a port's backend becomes when its device is gone (deleted, or its namespace with it):
//! no receive queue to poll or wait on, and every frame sent to it dropped (counted as the
//! port's transmit drops). The sockets, rings and XDP program of the old backend are closed
//! when it is replaced; the port stays registered (link down) until it is removed.

use std::io;
use std::os::fd::RawFd;

use super::{Port, PortCaps, PortKind};
use crate::buf::{Offload, RxBatch, RxDesc};

/// The stand-in backend of a port whose device is gone.
#[derive(Debug)]
pub struct GonePort {
    name: String,
    kind: PortKind,
    caps: PortCaps,
}

impl GonePort {
    /// The stand-in for `port` (its name, kind and capabilities, so that frames for it take
    /// the same path to their drop).
    pub fn of(port: &dyn Port) -> Self {
        Self {
            name: port.name().to_owned(),
            kind: port.kind(),
            caps: port.caps(),
        }
    }
}

impl Port for GonePort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> PortKind {
        self.kind
    }

    fn caps(&self) -> PortCaps {
        self.caps
    }

    fn rx_queues(&self) -> usize {
        0
    }

    fn rx_burst(&mut self, _queue: usize, _batch: &mut RxBatch) -> io::Result<usize> {
        Ok(0)
    }

    fn frame(&self, _desc: &RxDesc) -> &[u8] {
        &[]
    }

    fn frame_mut(&mut self, _desc: &RxDesc) -> &mut [u8] {
        &mut []
    }

    fn rx_release(&mut self, _queue: usize, _batch: &RxBatch) {}

    fn tx_enqueue(&mut self, _frame: &[u8], _offload: &Offload) -> bool {
        false
    }

    fn tx_flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn rx_fd(&self, _queue: usize) -> Option<RawFd> {
        None
    }

    fn is_gone(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::mem::{MemPort, MemPortOptions};

    #[test]
    fn a_gone_port_keeps_its_names_receives_nothing_and_refuses_every_frame() {
        let (mem, _peer) = MemPort::new("m7", MemPortOptions::default());
        let mut g = GonePort::of(&mem);
        assert_eq!((g.name(), g.kind()), ("m7", PortKind::Mem));
        assert_eq!(g.caps(), mem.caps());
        assert_eq!(g.rx_queues(), 0);
        assert!(g.rx_fd(0).is_none());
        let mut batch = RxBatch::default();
        assert_eq!(g.rx_burst(0, &mut batch).unwrap(), 0);
        assert!(!g.tx_enqueue(&[0; 60], &Offload::default()));
        assert!(g.tx_flush().is_ok());
        assert!(g.is_gone() && !mem.is_gone());
    }
}
