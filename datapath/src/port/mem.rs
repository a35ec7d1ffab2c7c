//! In-memory port for unit tests and benches (hot path, no device).
//!
//! [`MemPort::new`] returns the port (handed to the switch) and a [`MemPeer`] (kept by the test),
//! joined by bounded channels: frames the peer sends are received by the port, frames the port
//! transmits are received by the peer. Buffers are recycled in both directions, so a steady
//! exchange allocates nothing.

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TryRecvError, bounded};

use super::{BackendDrops, Port, PortCaps, PortKind};
use crate::buf::{BATCH_SIZE, Offload, RxBatch, RxDesc};

type Item = (Vec<u8>, Offload);

/// Settings of a mem port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemPortOptions {
    /// Frames that fit in each direction's channel.
    pub capacity: usize,
    /// Whether the port claims to accept offload state on tx.
    pub tx_offload: bool,
    /// Largest frame the port transmits.
    pub max_frame_len: usize,
}

impl Default for MemPortOptions {
    fn default() -> Self {
        Self {
            capacity: 1024,
            tx_offload: false,
            max_frame_len: 9216,
        }
    }
}

/// The switch side of an in-memory link.
#[derive(Debug)]
pub struct MemPort {
    name: String,
    opts: MemPortOptions,
    rx: Receiver<Item>,
    tx: Sender<Item>,
    recycle_in: Receiver<Vec<u8>>,
    recycle_out: Sender<Vec<u8>>,
    slots: Vec<Vec<u8>>,
    /// Calls of [`Port::maintain`], seen by the peer.
    maintained: Arc<AtomicU64>,
    /// Drops the peer says the backend made ([`MemPeer::add_backend_drops`]).
    drops: Arc<DropCounts>,
    /// The peer's hold on the worker ([`MemPeer::hold_worker`]).
    hold: Arc<Hold>,
}

/// A hold on the worker that runs a mem port: asked for by the peer, kept by the port in
/// [`Port::maintain`] until the peer lets go.
#[derive(Debug, Default)]
struct Hold {
    asked: AtomicBool,
    holding: AtomicBool,
}

/// A worker stopped by [`MemPeer::hold_worker`]; dropping this lets it go on.
#[derive(Debug)]
pub struct WorkerHold(Arc<Hold>);

impl Drop for WorkerHold {
    fn drop(&mut self) {
        self.0.asked.store(false, Ordering::SeqCst);
    }
}

/// [`BackendDrops`] as counters that the peer adds to and the port takes.
#[derive(Debug, Default)]
struct DropCounts {
    rx_ring_full: AtomicU64,
    no_rx_buffer: AtomicU64,
    other: AtomicU64,
    tx: AtomicU64,
}

/// The test side of an in-memory link.
#[derive(Debug, Clone)]
pub struct MemPeer {
    to_port: Sender<Item>,
    from_port: Receiver<Item>,
    recycle_in: Receiver<Vec<u8>>,
    recycle_out: Sender<Vec<u8>>,
    maintained: Arc<AtomicU64>,
    drops: Arc<DropCounts>,
    hold: Arc<Hold>,
}

impl MemPort {
    /// A port named `name` and its peer.
    pub fn new(name: &str, opts: MemPortOptions) -> (Self, MemPeer) {
        let (to_port, rx) = bounded(opts.capacity);
        let (tx, from_port) = bounded(opts.capacity);
        let (peer_recycle_tx, port_recycle_rx) = bounded(opts.capacity + BATCH_SIZE);
        let (port_recycle_tx, peer_recycle_rx) = bounded(opts.capacity + BATCH_SIZE);
        let maintained = Arc::new(AtomicU64::new(0));
        let drops = Arc::new(DropCounts::default());
        let hold = Arc::new(Hold::default());
        let port = Self {
            name: name.to_owned(),
            opts,
            rx,
            tx,
            recycle_in: port_recycle_rx,
            recycle_out: port_recycle_tx,
            slots: (0..BATCH_SIZE).map(|_| Vec::new()).collect(),
            maintained: Arc::clone(&maintained),
            drops: Arc::clone(&drops),
            hold: Arc::clone(&hold),
        };
        let peer = MemPeer {
            to_port,
            from_port,
            recycle_in: peer_recycle_rx,
            recycle_out: peer_recycle_tx,
            maintained,
            drops,
            hold,
        };
        (port, peer)
    }
}

impl MemPeer {
    /// Sends a complete frame to the port; false when its rx channel is full.
    pub fn send(&self, frame: &[u8]) -> bool {
        self.send_with(frame, Offload::NONE)
    }

    /// Sends a frame with offload state to the port.
    pub fn send_with(&self, frame: &[u8], offload: Offload) -> bool {
        let mut buf = self.recycle_in.try_recv().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(frame);
        self.to_port.try_send((buf, offload)).is_ok()
    }

    /// A frame the port transmitted, if any.
    pub fn try_recv(&self) -> Option<(Vec<u8>, Offload)> {
        self.from_port.try_recv().ok()
    }

    /// A frame the port transmitted, waiting up to `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<(Vec<u8>, Offload)> {
        self.from_port.recv_timeout(timeout).ok()
    }

    /// Every frame transmitted so far, without waiting.
    pub fn drain(&self) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| self.try_recv().map(|(f, _)| f)).collect()
    }

    /// How many times the worker has run the port's [`Port::maintain`].
    pub fn maintained(&self) -> u64 {
        self.maintained.load(Ordering::Relaxed)
    }

    /// Counts `d` as drops of the port's backend, as a kernel would count frames it lost: the
    /// worker sees them when it next reads the port's drops ([`Port::take_backend_drops`]).
    pub fn add_backend_drops(&self, d: BackendDrops) {
        let c = &self.drops;
        c.rx_ring_full.fetch_add(d.rx_ring_full, Ordering::Relaxed);
        c.no_rx_buffer.fetch_add(d.no_rx_buffer, Ordering::Relaxed);
        c.other.fetch_add(d.other, Ordering::Relaxed);
        c.tx.fetch_add(d.tx, Ordering::Relaxed);
    }

    /// Stops the worker that runs the port, as if it fell behind: at its next
    /// [`Port::maintain`] of the port (about once a millisecond while it polls, at least every
    /// [`MAX_SLEEP`](crate::worker::MAX_SLEEP) while it sleeps) it waits there until the
    /// returned hold is dropped (a test that panics lets go too). `None` if it did not stop
    /// within `timeout`. An inline switch's caller would wait for ever: not for those.
    pub fn hold_worker(&self, timeout: Duration) -> Option<WorkerHold> {
        self.hold.asked.store(true, Ordering::SeqCst);
        let hold = WorkerHold(Arc::clone(&self.hold));
        let until = std::time::Instant::now() + timeout;
        while !self.hold.holding.load(Ordering::SeqCst) {
            if std::time::Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Some(hold)
    }

    /// Gives a buffer back for reuse by the port (benches use this to avoid allocation).
    pub fn recycle(&self, buf: Vec<u8>) {
        let _ = self.recycle_out.try_send(buf);
    }
}

impl Port for MemPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> PortKind {
        PortKind::Mem
    }

    fn caps(&self) -> PortCaps {
        PortCaps {
            tx_offload: self.opts.tx_offload,
            tx_udp_tunnel: false,
            max_frame_len: self.opts.max_frame_len,
        }
    }

    fn rx_queues(&self) -> usize {
        1
    }

    fn rx_burst(&mut self, _queue: usize, batch: &mut RxBatch) -> io::Result<usize> {
        let mut n = 0;
        while !batch.is_full() {
            match self.rx.try_recv() {
                Ok((buf, offload)) => {
                    let slot = batch.len();
                    let old = std::mem::replace(&mut self.slots[slot], buf);
                    if old.capacity() > 0 {
                        let _ = self.recycle_out.try_send(old);
                    }
                    let len = u32::try_from(self.slots[slot].len()).unwrap_or(u32::MAX);
                    batch.push(RxDesc {
                        addr: slot as u64,
                        len,
                        offload,
                    });
                    n += 1;
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        Ok(n)
    }

    fn frame(&self, desc: &RxDesc) -> &[u8] {
        let slot = usize::try_from(desc.addr).unwrap_or(usize::MAX);
        self.slots.get(slot).map_or(&[], Vec::as_slice)
    }

    fn frame_mut(&mut self, desc: &RxDesc) -> &mut [u8] {
        let slot = usize::try_from(desc.addr).unwrap_or(usize::MAX);
        self.slots.get_mut(slot).map_or(&mut [], Vec::as_mut_slice)
    }

    fn rx_release(&mut self, _queue: usize, _batch: &RxBatch) {}

    fn tx_enqueue(&mut self, frame: &[u8], offload: &Offload) -> bool {
        let mut buf = self.recycle_in.try_recv().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(frame);
        if let Err(e) = self.tx.try_send((buf, *offload)) {
            // Refused, not dropped: the caller counts it. Keep the buffer for the next frame.
            let _ = self.recycle_out.try_send(e.into_inner().0);
            return false;
        }
        true
    }

    fn tx_flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn take_backend_drops(&mut self) -> BackendDrops {
        let c = &self.drops;
        BackendDrops {
            rx_ring_full: c.rx_ring_full.swap(0, Ordering::Relaxed),
            no_rx_buffer: c.no_rx_buffer.swap(0, Ordering::Relaxed),
            other: c.other.swap(0, Ordering::Relaxed),
            tx: c.tx.swap(0, Ordering::Relaxed),
        }
    }

    fn maintain(&mut self) {
        self.maintained.fetch_add(1, Ordering::Relaxed);
        if self.hold.asked.load(Ordering::SeqCst) {
            self.hold.holding.store(true, Ordering::SeqCst);
            while self.hold.asked.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_micros(200));
            }
            self.hold.holding.store(false, Ordering::SeqCst);
        }
    }

    fn rx_fd(&self, _queue: usize) -> Option<RawFd> {
        None
    }
}
