//! AF_XDP port: one XSK socket (with its own UMEM) per rx queue, an XSKMAP, and the redirect
//! program attached by `bpf_link` — no libbpf, no clang (see [`crate::sys::bpf`],
//! [`crate::sys::xsk`]).
//!
//! Lifecycle: [`AfXdpPort::open`] creates the map, loads the program, creates and binds the
//! sockets, fills the map, then attaches the program (native mode first, generic as a fallback
//! in [`XdpMode::Auto`]). Dropping the port closes the link first, which detaches the program,
//! then the sockets and the UMEM. Because the attachment is a `bpf_link`, it also disappears when
//! the process dies, even by `SIGKILL`.
//!
//! Hot path: [`Port::rx_burst`] reads the RX ring without syscalls; [`Port::tx_enqueue`] copies
//! into a preallocated tx chunk; [`Port::tx_flush`] kicks with `sendto` until the kernel has
//! taken everything (≤ 32 descriptors per kick in copy mode). Nothing there allocates.
//!
//! A received frame's [`RxDesc::addr`] is `1 << 62 | queue << 48 | UMEM address` (the UMEM
//! address includes the kernel's 256-byte headroom in copy mode), so [`Port::frame`] finds the
//! right UMEM without being told the queue, and tells the sockets' frames from those of a
//! split port's AF_PACKET companion (bit 62 clear).
//!
//! On veth (see PLATFORM.md): copy mode only; native XDP needs the peer's MTU ≤ ~3500 (the
//! kernel turns the peer's TSO off while the program is attached, so frames stay ≤ MTU);
//! generic mode accepts any MTU but the peer keeps GSO on and super-frames larger than a chunk
//! are dropped (counted in [`Port::take_backend_drops`]). Frames are never written past a chunk.
//!
//! ## Split mode ([`XdpMode::Split`], what the switch opens on a veth)
//! The program is attached in generic mode and redirects only frames of at most the device's
//! MTU + 18 bytes ([`SPLIT_MAX_LEN`] at most); longer frames (the container's TCP and UDP GSO
//! super-frames, which generic mode leaves on) go on to the kernel stack, where an AF_PACKET
//! socket with `PACKET_VNET_HDR` on the same device (the *companion*, [`AfPacketPort`]) takes
//! them with their GSO and checksum state. Rx queue 0 polls the companion first, then socket 0
//! (a flow's short last segment does not overtake its GSO frames within one poll); a sleeping
//! worker watches both ([`Port::rx_extra_fd`]). On transmit, frames with offload state or
//! longer than the limit go through the companion, the rest through socket 0, and a frame for
//! one side first sends what the other side has queued, so frames leave in the order given.
//!
//! Measured on veth (docs/performance.md): more 64-byte frames per second than native mode
//! (the kernel's copy of a frame that lacks XDP's headroom costs the sender's CPU less in
//! generic mode without `BPF_F_XDP_HAS_FRAGS`), and single-stream TCP near an AF_PACKET port's
//! instead of a third of it. Limits: the kernel copies each GSO super-frame into one linear
//! buffer to run the program (a ~64 KiB atomic allocation; [`AfXdpOptions::frags`] copies into
//! pages instead, at the small-frame gain's cost); and a GSO frame no longer than the limit
//! (UDP GSO with segments of less than half the MTU, or TCP with an MSS clamped below half of
//! it) would be taken by the socket, which sees no GSO state, and forwarded as one frame.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, RawFd};
use std::sync::Arc;

use crate::buf::{Offload, RxBatch, RxDesc};
use crate::port::afpacket::AfPacketPort;
use crate::port::{BackendDrops, Port, PortCaps, PortError, PortKind};
use crate::sys::bpf::{BpfError, XdpAttachMode, XdpLink, XdpProgram, XskMap};
use crate::sys::netdev;
use crate::sys::xsk::{self, XdpStatistics, Xsk, XskConfig, XskError};

/// Where the queue number sits in [`RxDesc::addr`].
const QUEUE_SHIFT: u32 = 48;
/// Mask of the UMEM address in [`RxDesc::addr`].
const ADDR_MASK: u64 = (1 << QUEUE_SHIFT) - 1;
/// Mask of the socket's index in [`RxDesc::addr`] (after the shift).
const QUEUE_MASK: u64 = MAX_QUEUES as u64 - 1;
/// Set in [`RxDesc::addr`] of frames received by a socket; clear in those of the AF_PACKET
/// companion of [`XdpMode::Split`], whose addresses never reach this bit (ring offsets
/// below 2^30).
const XSK_TAG: u64 = 1 << 62;
/// Longest frame [`XdpMode::Split`] takes by AF_XDP: a 1500-byte MTU, the Ethernet header and
/// one VLAN tag. A TCP or UDP GSO super-frame is longer (two segments or more of an MSS near
/// the MTU) and goes to the AF_PACKET companion with its offload state.
pub const SPLIT_MAX_LEN: u16 = 1518;
/// Most queues one port may open.
pub const MAX_QUEUES: usize = 64;

/// How the redirect program is attached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum XdpMode {
    /// Native (driver) mode, falling back to generic (skb) mode with a warning.
    #[default]
    Auto,
    /// Native mode only.
    Native,
    /// Generic (skb) mode only.
    Skb,
    /// Generic (skb) mode for frames up to the device's MTU (at most [`SPLIT_MAX_LEN`]),
    /// and an AF_PACKET socket with `PACKET_VNET_HDR` on the same device for the longer ones.
    /// Generic mode leaves a veth peer's TSO on (native mode turns it off), so a container's
    /// TCP keeps its ~64 KB segments, which cross the switch through the AF_PACKET socket with
    /// their GSO and checksum state, while small frames take the AF_XDP socket. See the module
    /// documentation, "Split mode".
    Split,
}

/// Sizing and mode of an AF_XDP port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AfXdpOptions {
    /// UMEM chunks (4 KiB each) per queue, half for rx, half for tx. Default 512 = 2 MiB per
    /// queue: without `CAP_IPC_LOCK` the UMEM counts against `RLIMIT_MEMLOCK` (8 MiB here, per
    /// user), so four port-queues fit.
    pub frames: u32,
    /// RX ring entries per queue (power of two, default 256).
    pub rx_ring: u32,
    /// TX ring entries (power of two, default 256).
    pub tx_ring: u32,
    /// Attach mode (default [`XdpMode::Auto`]).
    pub mode: XdpMode,
    /// Let the kernel use zero-copy where the driver has it (default false: `XDP_COPY`).
    pub zero_copy: bool,
    /// Bind with `XDP_USE_NEED_WAKEUP` (default true).
    pub need_wakeup: bool,
    /// Load the program with `BPF_F_XDP_HAS_FRAGS` (default false). Lets native mode attach to
    /// a veth whose peer MTU is above ~3500, but leaves the peer's GSO on: frames larger than
    /// [`PortCaps::max_frame_len`] are then dropped by the kernel. In [`XdpMode::Split`] it
    /// decides how the kernel copies frames for generic XDP
    /// ([`XdpProgram::load_split_redirect`]): without it small frames cost the sender's CPU
    /// less (~10 % more 64-byte frames per second on veth) and each GSO frame needs one
    /// contiguous ~64 KiB allocation; with it GSO frames are copied into pages.
    pub frags: bool,
}

impl Default for AfXdpOptions {
    fn default() -> Self {
        Self {
            frames: 512,
            rx_ring: 256,
            tx_ring: 256,
            mode: XdpMode::Auto,
            zero_copy: false,
            need_wakeup: true,
            frags: false,
        }
    }
}

impl AfXdpOptions {
    fn xsk_config(&self) -> XskConfig {
        XskConfig {
            frames: self.frames,
            rx_ring: self.rx_ring,
            tx_ring: self.tx_ring,
            need_wakeup: self.need_wakeup,
            zero_copy: self.zero_copy,
        }
    }
}

/// An AF_XDP port on a network device.
pub struct AfXdpPort {
    // Field order is drop order: the attachment goes first (when this is its last holder the
    // program is detached before the sockets close), then the sockets.
    attachment: Arc<Attachment>,
    queues: Vec<Xsk>,
    name: String,
    ifindex: u32,
    mode: XdpAttachMode,
    /// Kernel counters at the last `take_backend_drops`, per queue.
    last_stats: Vec<XdpStatistics>,
    /// Kicks allowed per flush: enough to drain a full TX ring, plus slack.
    max_kicks: u32,
    /// [`XdpMode::Split`]: the AF_PACKET socket for frames longer than `split_len` (only the
    /// first part of a port split by [`AfXdpPort::into_queues`] has it). Rx queue 0 polls it
    /// together with socket 0.
    big: Option<Box<AfPacketPort>>,
    /// Longest frame sent and received through the sockets when `big` is there.
    split_len: usize,
    /// Which side has transmit frames queued since the last flush (see `tx_enqueue`).
    tx_pending: Side,
}

/// Where a split port's frames go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    /// Nothing queued.
    None,
    /// The AF_XDP sockets.
    Xsk,
    /// The AF_PACKET companion.
    Big,
}

/// What every queue of a port shares: the map, the program and its link. Dropped with the last
/// queue that holds it (see [`AfXdpPort::into_queues`]), which detaches the program.
struct Attachment {
    // Field order is drop order: the link (program detached) first, then program and map.
    link: Option<XdpLink>,
    prog: XdpProgram,
    map: XskMap,
    queues: u32,
    name: String,
    ifindex: u32,
}

impl Drop for Attachment {
    fn drop(&mut self) {
        // Closing the link fd detaches the program before the map slots are cleared.
        drop(self.link.take());
        for q in 0..self.queues {
            if let Err(e) = self.map.clear(q) {
                tracing::debug!(port = %self.name, queue = q, error = %e, "clear XSKMAP slot");
            }
        }
        tracing::info!(port = %self.name, ifindex = self.ifindex, "AF_XDP port detached");
    }
}

impl fmt::Debug for AfXdpPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AfXdpPort")
            .field("name", &self.name)
            .field("ifindex", &self.ifindex)
            .field("mode", &self.mode)
            .field("queues", &self.queues)
            .finish_non_exhaustive()
    }
}

fn unsupported(name: &str, reason: impl Into<String>) -> PortError {
    PortError::Unsupported {
        name: name.to_owned(),
        kind: PortKind::AfXdp,
        reason: reason.into(),
    }
}

fn invalid(name: &str, field: &'static str, reason: impl Into<String>) -> PortError {
    PortError::Invalid {
        name: name.to_owned(),
        field,
        reason: reason.into(),
    }
}

fn bpf_err(name: &str, e: BpfError) -> PortError {
    match e.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => PortError::Sys {
            name: name.to_owned(),
            what: e.what,
            source: e.source,
        },
        _ => unsupported(name, e.to_string()),
    }
}

fn xsk_err(name: &str, queue: usize, e: XskError) -> PortError {
    match e.raw_os_error() {
        Some(libc::EAFNOSUPPORT | libc::EOPNOTSUPP | libc::EPROTONOSUPPORT) => {
            unsupported(name, format!("queue {queue}: {e}"))
        }
        None if e.source.kind() == io::ErrorKind::InvalidInput => {
            invalid(name, e.what, e.source.to_string())
        }
        _ => PortError::Sys {
            name: name.to_owned(),
            what: e.what,
            source: e.source,
        },
    }
}

/// Checks that an AF_XDP port can be opened on `name` (the device exists, AF_XDP sockets and
/// XSKMAPs can be created) without attaching anything. `open` can still fail later (e.g. no
/// XDP attach mode accepted): the caller should fall back on [`PortError::Unsupported`] either
/// way.
///
/// # Errors
/// [`PortError::NoDevice`], [`PortError::Unsupported`], or [`PortError::Sys`] (permissions).
pub fn afxdp_supported(name: &str) -> Result<(), PortError> {
    device_index(name)?;
    xsk::probe().map_err(|e| xsk_err(name, 0, e))?;
    XskMap::new(1).map_err(|e| bpf_err(name, e))?;
    Ok(())
}

fn device_index(name: &str) -> Result<u32, PortError> {
    netdev::ifindex(name).map_err(|e| match e.raw_os_error() {
        Some(libc::ENODEV) => PortError::NoDevice {
            name: name.to_owned(),
        },
        _ if e.kind() == io::ErrorKind::InvalidInput => invalid(name, "name", e.to_string()),
        _ => PortError::Sys {
            name: name.to_owned(),
            what: "if_nametoindex",
            source: e,
        },
    })
}

impl AfXdpPort {
    /// Opens an AF_XDP port on `name` polling rx queues `0..queues`.
    ///
    /// # Errors
    /// - [`PortError::NoDevice`] when `name` does not exist;
    /// - [`PortError::Invalid`] for a queue count the device does not have or bad sizes;
    /// - [`PortError::Unsupported`] when the kernel or device cannot do AF_XDP or XDP in the
    ///   requested mode (the caller may fall back to AF_PACKET);
    /// - [`PortError::Sys`] for other failures (permissions, `RLIMIT_MEMLOCK` on UMEM
    ///   registration, …).
    pub fn open(name: &str, queues: usize, opts: AfXdpOptions) -> Result<Self, PortError> {
        let ifindex = device_index(name)?;
        if queues == 0 || queues > MAX_QUEUES {
            return Err(invalid(
                name,
                "queues",
                format!("{queues} not in 1..={MAX_QUEUES}"),
            ));
        }
        let cfg = opts.xsk_config();
        cfg.validate()
            .map_err(|(field, reason)| invalid(name, field, reason))?;
        if let Ok(have) = netdev::rx_queue_count(name)
            && have > 0
            && queues > have
        {
            return Err(invalid(
                name,
                "queues",
                format!("{queues} requested, the device has {have} rx queue(s)"),
            ));
        }

        let split = opts.mode == XdpMode::Split;
        // Frames above the MTU need GSO: a split port's sockets take up to the MTU.
        let split_len = netdev::mtu(name)
            .ok()
            .and_then(|m| u16::try_from(m.saturating_add(18)).ok())
            .unwrap_or(SPLIT_MAX_LEN)
            .min(SPLIT_MAX_LEN);
        let map = XskMap::new(queues as u32).map_err(|e| bpf_err(name, e))?;
        let prog = if split {
            XdpProgram::load_split_redirect(&map, split_len, opts.frags)
        } else {
            XdpProgram::load_redirect(&map, opts.frags)
        }
        .map_err(|e| bpf_err(name, e))?;
        // The companion opens before the program is attached: until then it takes every frame.
        let big = if split {
            Some(Box::new(AfPacketPort::open(name)?))
        } else {
            None
        };
        let mut socks = Vec::with_capacity(queues);
        for q in 0..queues {
            let x = Xsk::new(ifindex, q as u32, &cfg).map_err(|e| xsk_err(name, q, e))?;
            // Copy mode moves at most 32 descriptors per `sendto` unless the socket allows
            // more (Linux 6.17+): one kick per batch then. Older kernels refuse the option
            // (ENOPROTOOPT) and keep 32, which `tx_flush` handles by kicking again.
            if let Err(e) = x.set_tx_budget(cfg.tx_ring) {
                tracing::debug!(port = name, error = %e, "no XDP_MAX_TX_SKB_BUDGET; 32 per kick");
            }
            map.set(q as u32, x.as_fd()).map_err(|e| bpf_err(name, e))?;
            socks.push(x);
        }

        let (link, mode) = attach(name, ifindex, &prog, opts.mode)?;
        let zero_copy = socks.iter().all(Xsk::is_zero_copy);
        tracing::info!(
            port = name,
            ifindex,
            queues,
            mode = %mode,
            prog_id = prog.id().unwrap_or(0),
            zero_copy,
            frames = opts.frames,
            umem_bytes = xsk::umem_bytes(opts.frames) * queues,
            large_frames = if split {
                format!("above {split_len} bytes through AF_PACKET")
            } else {
                "dropped".to_owned()
            },
            "AF_XDP port attached"
        );
        let max_kicks = opts.tx_ring / xsk::TX_KICK_BATCH + 4;
        Ok(Self {
            attachment: Arc::new(Attachment {
                link: Some(link),
                prog,
                map,
                queues: queues as u32,
                name: name.to_owned(),
                ifindex,
            }),
            last_stats: vec![XdpStatistics::default(); queues],
            queues: socks,
            name: name.to_owned(),
            ifindex,
            mode,
            max_kicks,
            big,
            split_len: usize::from(split_len),
            tx_pending: Side::None,
        })
    }

    /// The mode the program got attached in.
    pub fn attach_mode(&self) -> XdpAttachMode {
        self.mode
    }

    /// The device's interface index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The kernel's id of the attached program.
    ///
    /// # Errors
    /// The `BPF_OBJ_GET_INFO_BY_FD` error.
    pub fn prog_id(&self) -> io::Result<u32> {
        self.attachment.prog.id()
    }

    /// Splits the port into one port per rx queue, so that different workers can own different
    /// queues. Each part receives on its queue and transmits through its own socket; the program
    /// stays attached until the last part is dropped.
    pub fn into_queues(mut self) -> Vec<Self> {
        let socks = std::mem::take(&mut self.queues);
        let stats = std::mem::take(&mut self.last_stats);
        let mut big = self.big.take();
        socks
            .into_iter()
            .zip(stats)
            .map(|(x, st)| Self {
                attachment: Arc::clone(&self.attachment),
                queues: vec![x],
                name: self.name.clone(),
                ifindex: self.ifindex,
                mode: self.mode,
                last_stats: vec![st],
                max_kicks: self.max_kicks,
                // The first part keeps the companion.
                big: big.take(),
                split_len: self.split_len,
                tx_pending: Side::None,
            })
            .collect()
    }

    /// Kernel-side counters of queue `queue` (one `getsockopt`), without resetting anything.
    ///
    /// # Errors
    /// `InvalidInput` for a queue out of range, else the `getsockopt` error.
    pub fn statistics(&self, queue: usize) -> io::Result<XdpStatistics> {
        self.queues
            .get(queue)
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?
            .statistics()
    }
}

/// Attaches `prog` in `mode` (Auto: native, then generic).
fn attach(
    name: &str,
    ifindex: u32,
    prog: &XdpProgram,
    mode: XdpMode,
) -> Result<(XdpLink, XdpAttachMode), PortError> {
    let try_mode = |m: XdpAttachMode| XdpLink::attach(prog, ifindex, m).map(|l| (l, m));
    match mode {
        XdpMode::Native => try_mode(XdpAttachMode::Driver)
            .map_err(|e| unsupported(name, format!("native XDP: {e}"))),
        XdpMode::Skb | XdpMode::Split => {
            try_mode(XdpAttachMode::Skb).map_err(|e| unsupported(name, format!("generic XDP: {e}")))
        }
        XdpMode::Auto => match try_mode(XdpAttachMode::Driver) {
            Ok(ok) => Ok(ok),
            Err(native) => {
                let hint = match native.raw_os_error() {
                    Some(libc::ERANGE) => "; on veth: the peer's MTU is too large for native XDP",
                    _ => "",
                };
                tracing::warn!(
                    port = name,
                    error = %native,
                    "native XDP attach failed{hint}, falling back to generic (skb) mode \
                     (frames above the MTU, e.g. the peer's GSO, will be dropped)"
                );
                try_mode(XdpAttachMode::Skb).map_err(|generic| {
                    unsupported(
                        name,
                        format!("native XDP: {native}; generic XDP: {generic}"),
                    )
                })
            }
        },
    }
}

impl AfXdpPort {
    /// True for an [`XdpMode::Split`] port's part that holds the AF_PACKET companion.
    pub fn has_companion(&self) -> bool {
        self.big.is_some()
    }

    /// True when a frame this port received came through one of its AF_XDP sockets, false
    /// when through the AF_PACKET companion of [`XdpMode::Split`] (for tests and diagnostics).
    pub fn by_socket(desc: &RxDesc) -> bool {
        desc.addr & XSK_TAG != 0
    }

    /// Pushes the sockets' queued frames to the kernel.
    fn flush_sockets(&mut self) -> io::Result<()> {
        let mut result = Ok(());
        for x in &mut self.queues {
            if x.tx_outstanding() == 0 {
                // Only completions to collect (none pending in the ring).
                x.reap();
                continue;
            }
            if let Err(e) = x.flush(self.max_kicks) {
                result = Err(e);
            }
        }
        result
    }

    /// Before frames go out on `side`, sends what the other side has queued, so that frames
    /// leave in the order they were given (a flow's short frames must not overtake its GSO
    /// frames, nor the reverse).
    #[inline]
    fn switch_side(&mut self, side: Side) {
        if self.tx_pending == side || self.tx_pending == Side::None {
            self.tx_pending = side;
            return;
        }
        // A failure here shows again, counted, at the flush of that side.
        let _ = match self.tx_pending {
            Side::Big => self.big.as_mut().map_or(Ok(()), |b| b.tx_flush()),
            _ => self.flush_sockets(),
        };
        self.tx_pending = side;
    }
}

impl Port for AfXdpPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> PortKind {
        PortKind::AfXdp
    }

    fn caps(&self) -> PortCaps {
        match &self.big {
            // Frames with offload state, and long ones, go through the companion.
            Some(big) => big.caps(),
            None => PortCaps {
                tx_offload: false,
                tx_udp_tunnel: false,
                max_frame_len: xsk::MAX_FRAME_LEN as usize,
            },
        }
    }

    fn rx_queues(&self) -> usize {
        self.queues.len()
    }

    /// A split port's queue 0 takes the companion's frames first, then socket 0's: a flow's
    /// short frames, sent after its GSO frames, then do not overtake them within one poll.
    fn rx_burst(&mut self, queue: usize, batch: &mut RxBatch) -> io::Result<usize> {
        let Some(x) = self.queues.get_mut(queue) else {
            return Err(io::ErrorKind::InvalidInput.into());
        };
        let mut big_err = None;
        let mut n = 0;
        if queue == 0
            && let Some(big) = self.big.as_mut()
        {
            let before = batch.len();
            match big.rx_burst(0, batch) {
                Ok(k) => n = k,
                Err(e) => big_err = Some(e),
            }
            debug_assert!(
                batch.descs()[before..]
                    .iter()
                    .all(|d| d.addr & XSK_TAG == 0)
            );
        }
        let tag = XSK_TAG | (queue as u64) << QUEUE_SHIFT;
        n += x.recv(batch.room(), |addr, len| {
            batch.push(RxDesc {
                addr: tag | addr,
                len,
                offload: Offload::NONE,
            });
        });
        match big_err {
            // The worker counts the error; frames received with it are not lost.
            Some(e) if n == 0 => Err(e),
            _ => Ok(n),
        }
    }

    fn frame(&self, desc: &RxDesc) -> &[u8] {
        if desc.addr & XSK_TAG == 0 {
            return self.big.as_ref().map_or(&[], |b| b.frame(desc));
        }
        match self
            .queues
            .get(((desc.addr >> QUEUE_SHIFT) & QUEUE_MASK) as usize)
        {
            Some(x) => x.frame(desc.addr & ADDR_MASK, desc.len),
            None => &[],
        }
    }

    fn frame_mut(&mut self, desc: &RxDesc) -> &mut [u8] {
        if desc.addr & XSK_TAG == 0 {
            return match self.big.as_mut() {
                Some(b) => b.frame_mut(desc),
                None => &mut [],
            };
        }
        match self
            .queues
            .get_mut(((desc.addr >> QUEUE_SHIFT) & QUEUE_MASK) as usize)
        {
            Some(x) => x.frame_mut(desc.addr & ADDR_MASK, desc.len),
            None => &mut [],
        }
    }

    fn rx_release(&mut self, queue: usize, batch: &RxBatch) {
        if queue == 0
            && let Some(big) = self.big.as_mut()
        {
            // The companion ignores the sockets' addresses (neither a ring address nor one of
            // its buffers: `XSK_TAG` is set); the sockets ignore its (no `XSK_TAG`).
            big.rx_release(0, batch);
        }
        let Some(x) = self.queues.get_mut(queue) else {
            return;
        };
        let tag = XSK_TAG | (queue as u64) << QUEUE_SHIFT;
        x.release(
            batch
                .descs()
                .iter()
                .filter(|d| d.addr & !ADDR_MASK == tag)
                .map(|d| d.addr & ADDR_MASK),
        );
    }

    /// Frames go out through queue 0's socket; a split port's frames with offload state or
    /// longer than its sockets take go through its AF_PACKET companion. Frames longer than a
    /// chunk are refused (false), like a full queue; the worker never sends frames above
    /// [`PortCaps::max_frame_len`].
    fn tx_enqueue(&mut self, frame: &[u8], offload: &Offload) -> bool {
        if self.big.is_some() {
            if !offload.is_none() || frame.len() > self.split_len {
                self.switch_side(Side::Big);
                return self
                    .big
                    .as_mut()
                    .is_some_and(|b| b.tx_enqueue(frame, offload));
            }
            self.switch_side(Side::Xsk);
        }
        match self.queues.first_mut() {
            Some(x) => x.send(frame),
            None => false,
        }
    }

    fn tx_flush(&mut self) -> io::Result<()> {
        self.tx_pending = Side::None;
        let sockets = self.flush_sockets();
        // Both sides flush whatever the other's result.
        let big = self.big.as_mut().map_or(Ok(()), |b| b.tx_flush());
        sockets.and(big)
    }

    fn maintain(&mut self) {
        if let Some(big) = self.big.as_mut() {
            big.maintain();
        }
    }

    /// The growth of the kernel's drop counters (`XDP_STATISTICS`) since the last call, by
    /// cause: one `getsockopt` per queue, so call it from a periodic task, not per batch.
    fn take_backend_drops(&mut self) -> BackendDrops {
        let mut sum = self
            .big
            .as_mut()
            .map_or_else(BackendDrops::default, |b| b.take_backend_drops());
        for (x, last) in self.queues.iter().zip(self.last_stats.iter_mut()) {
            if let Ok(now) = x.statistics() {
                let d = now.drops_since(last);
                sum.rx_ring_full += d.rx_ring_full;
                sum.no_rx_buffer += d.no_rx_buffer;
                sum.other += d.other;
                *last = now;
            }
        }
        sum
    }

    fn rx_fd(&self, queue: usize) -> Option<RawFd> {
        self.queues.get(queue).map(Xsk::raw_fd)
    }

    fn rx_extra_fd(&self, queue: usize) -> Option<RawFd> {
        match (queue, self.big.as_ref()) {
            (0, Some(big)) => big.rx_fd(0),
            _ => None,
        }
    }
}
