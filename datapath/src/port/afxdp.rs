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
//! them with their GSO and checksum state. Rx queue 0 polls socket 0 and then the companion,
//! and gives their frames in the order the device received them: the program counts the
//! frames it passes to the stack and writes the count in front of each frame it redirects
//! (8 bytes the reader leaves out), so that a socket frame can be put after the companion
//! frames that came before it (`SplitOrder`; without it one poll gave a flow's small frames
//! and its GSO frames in two runs, reordered). A sleeping worker watches both sockets ([`Port::rx_extra_fd`]). On
//! transmit, frames with offload state or longer than the limit go through the companion, the
//! rest through socket 0, and a frame for one side first sends what the other side has
//! queued, so frames leave in the order given.
//!
//! Measured on veth (docs/performance.md): more 64-byte frames per second than native mode
//! (the kernel's copy of a frame that lacks XDP's headroom costs the sender's CPU less in
//! generic mode without `BPF_F_XDP_HAS_FRAGS`), and single-stream TCP near an AF_PACKET port's
//! instead of a third of it. Limits: the kernel copies each GSO super-frame into one linear
//! buffer to run the program (a ~64 KiB atomic allocation; [`AfXdpOptions::frags`] copies into
//! pages instead, at the small-frame gain's cost); and a GSO frame no longer than the limit
//! (UDP GSO with segments of less than half the MTU, or TCP with an MSS clamped below half of
//! it) would be taken by the socket, which sees no GSO state, and forwarded as one frame.
//! Order across the two sockets is kept exactly while the companion drops nothing; after it
//! drops frames (its ring full, under overload) a few frames may be misplaced until the next
//! moment it is empty or the periodic recount against the program's count. A split port has
//! one queue (more are refused): its companion is polled with queue 0, and on a veth generic
//! XDP sees every frame on queue 0 anyway (the veth records no receive queue on that path);
//! the switch opens a veth asked for several queues in native mode.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, RawFd};
use std::sync::Arc;

use crate::buf::{BATCH_SIZE, Offload, RxBatch, RxDesc};
use crate::port::afpacket::AfPacketPort;
use crate::port::{BackendDrops, Port, PortCaps, PortError, PortKind};
use crate::sys::bpf::{
    BpfError, PassCounter, SPLIT_STAMP_LEN, XdpAttachMode, XdpLink, XdpProgram, XskMap,
};
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
/// `maintain` calls (about a millisecond apart) between two checks of a split port's count of
/// companion frames against the program's (one system call).
const RECOUNT_EVERY: u32 = 128;
/// Room in each batch that a split port's socket 0 leaves to the companion when it has frames
/// waiting or socket frames were held back for its, so that held frames never fill a batch
/// on their own.
const COMPANION_ROOM: usize = 16;
/// Most polls in a row in which a split port holds socket frames back while its companion,
/// which says it has frames waiting, gives none (a companion whose ring the kernel stopped,
/// until `maintain` rebuilds it): the bound on such a wait.
const MAX_STALLS: u32 = 4;

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

/// How an open AF_XDP port's program is attached ([`Port::xdp_attachment`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct XdpAttachment {
    /// [`XdpMode::Native`], [`XdpMode::Skb`] or [`XdpMode::Split`] (never `Auto`: what it
    /// came to).
    pub mode: XdpMode,
    /// Loaded with `BPF_F_XDP_HAS_FRAGS` ([`AfXdpOptions::frags`]).
    pub frags: bool,
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
            multi_buffer: false,
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
    big: Option<Box<Companion>>,
    /// Longest frame sent through the sockets when `big` is there: the program's split
    /// length (`split_max`), lowered to the MTU + 18 after the MTU fell below it.
    split_len: usize,
    /// Longest frame the program redirects to the sockets (set at open).
    split_max: usize,
    /// Which side has transmit frames queued since the last flush (see `tx_enqueue`).
    tx_pending: Side,
    /// The sockets' last flush failed (device down or gone): `maintain` kicks the frames a
    /// flush left queued only every [`TX_BLOCKED_RETRY`] calls, not every millisecond for
    /// nothing.
    tx_blocked: bool,
    /// `maintain` calls while `tx_blocked`.
    blocked_calls: u32,
}

/// While the sockets' kicks fail (the device down), `maintain` tries once in this many calls
/// (about 64 ms), so that frames left queued go soon after the device is up again.
const TX_BLOCKED_RETRY: u32 = 64;

/// A split port's AF_PACKET socket, and what queue 0 needs to give its frames and socket 0's
/// in arrival order.
struct Companion {
    port: AfPacketPort,
    order: SplitOrder,
}

/// How a split port's queue 0 puts the frames of socket 0 and of the companion back in the
/// order the device received them ([`SplitOrder::restore`]).
struct SplitOrder {
    /// How many frames the program had let pass to the kernel stack (and so to the companion)
    /// before the next frame the companion will give.
    seen: u64,
    /// Socket frames taken but held back until the companion gives frames the device received
    /// before them; their chunks stay held.
    held: RxBatch,
    /// Polls in a row that held frames back and got none from the companion (at most
    /// [`MAX_STALLS`]).
    stalls: u32,
    /// `maintain` calls until the next check of `seen` against the program's count.
    until_recount: u32,
}

impl SplitOrder {
    fn new() -> Self {
        Self {
            seen: 0,
            held: RxBatch::new(),
            stalls: 0,
            until_recount: RECOUNT_EVERY,
        }
    }
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
    /// [`XdpMode::Split`]: the program's count of frames passed to the kernel stack.
    passes: Option<PassCounter>,
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
        if split && queues > 1 {
            // Its companion is polled with queue 0; on a veth, generic XDP gives every frame
            // to queue 0 anyway (no receive queue recorded).
            return Err(invalid(
                name,
                "queues",
                format!(
                    "a split port takes 1 queue, not {queues}: its AF_PACKET socket is polled with queue 0"
                ),
            ));
        }
        // Frames above the MTU need GSO: a split port's sockets take up to the MTU.
        let split_len = netdev::mtu(name)
            .ok()
            .and_then(|m| u16::try_from(m.saturating_add(18)).ok())
            .unwrap_or(SPLIT_MAX_LEN)
            .min(SPLIT_MAX_LEN);
        let map = XskMap::new(queues as u32).map_err(|e| bpf_err(name, e))?;
        let passes = if split {
            Some(PassCounter::new().map_err(|e| bpf_err(name, e))?)
        } else {
            None
        };
        let prog = if let Some(passes) = &passes {
            XdpProgram::load_split_redirect(&map, passes, split_len, opts.frags)
        } else {
            XdpProgram::load_redirect(&map, opts.frags)
        }
        .map_err(|e| bpf_err(name, e))?;
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
        // The companion opens after the program is attached, so that every frame it receives
        // was counted by the program (see `SplitOrder`; a long frame passed before it opens
        // is not the switch's, as before the attachment).
        let big = if split {
            Some(Box::new(Companion {
                port: AfPacketPort::open(name)?,
                order: SplitOrder::new(),
            }))
        } else {
            None
        };
        let zero_copy = socks.iter().all(Xsk::is_zero_copy);
        tracing::info!(
            port = name,
            ifindex,
            queues,
            mode = %mode,
            prog_id = prog.id().unwrap_or(0),
            zero_copy,
            frags = opts.frags,
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
                passes,
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
            split_max: usize::from(split_len),
            tx_pending: Side::None,
            tx_blocked: false,
            blocked_calls: 0,
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
    ///
    /// # Errors
    /// `Invalid` (`queues`) when the device has fewer tx queues than the port has queues: a
    /// socket transmits on the tx queue of its number, and the kernel's copy-mode transmit
    /// takes nothing from a socket whose number has none (the part would keep every frame
    /// queued, its flushes succeeding). The port is closed then.
    pub fn into_queues(mut self) -> Result<Vec<Self>, PortError> {
        if self.queues.len() > 1
            && let Ok(tx) = netdev::tx_queue_count(&self.name)
            && tx > 0
            && tx < self.queues.len()
        {
            return Err(invalid(
                &self.name,
                "queues",
                format!(
                    "{} queues over several workers need as many tx queues; the device has {tx}",
                    self.queues.len()
                ),
            ));
        }
        let socks = std::mem::take(&mut self.queues);
        let stats = std::mem::take(&mut self.last_stats);
        let mut big = self.big.take();
        Ok(socks
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
                split_max: self.split_max,
                tx_pending: Side::None,
                tx_blocked: false,
                blocked_calls: 0,
            })
            .collect())
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
        // (A frame a side could not send is counted by it; frames a ring keeps stay queued
        // for its next flush.)
        let _ = match self.tx_pending {
            Side::Big => self.big.as_mut().map_or(Ok(()), |b| b.port.tx_flush()),
            _ => self.flush_sockets(),
        };
        self.tx_pending = side;
    }
}

/// Takes up to `max` frames from socket `x` into `batch`, tagged for the port. `SKIP` bytes
/// at the start of each frame are left out: a split port's socket gets every frame with the
/// split program's stamp in front (its pass count, [`SPLIT_STAMP_LEN`] bytes), which stays
/// readable right before the frame (`Xsk::stamp_before`). (A frame shorter than that, which
/// the program never sends, is left empty, and the worker drops it as malformed.)
#[inline]
fn recv_into<const SKIP: u32>(x: &mut Xsk, tag: u64, batch: &mut RxBatch, max: usize) -> usize {
    x.recv(max, |addr, len| {
        let skip = len.min(SKIP);
        batch.push(RxDesc {
            addr: tag | (addr + u64::from(skip)),
            len: len - skip,
            offload: Offload::NONE,
        });
    })
}

impl SplitOrder {
    /// Puts the frames a split port's queue 0 took in one poll in the order the device
    /// received them. `batch[start..start + socket]` came from socket 0 (frames held back by
    /// the last poll first), the rest from the companion, polled after the socket: every frame
    /// the program passed to the kernel stack before one of the socket's frames was then
    /// already in the companion's ring, or dropped. Each socket frame carries in front of it
    /// how many frames the program had passed before it ([`PassCounter`]); `self.seen` is that
    /// count for the companion's first frame of this poll, and moves past this poll's frames.
    ///
    /// A socket frame stamped `s` goes after the companion's frames numbered below `s`. A
    /// socket frame that follows frames the companion did not give is held back (out of the
    /// batch, for the next poll) when the companion has frames waiting (`big_waiting`: its
    /// burst stopped early, at the batch's room or its slots for long frames), unless it gave
    /// none in [`MAX_STALLS`] polls in a row; when it has none, the missing frames were
    /// dropped, `seen` moves over them and nothing waits. (Frames the companion drops leave
    /// `seen` behind the program's count until such a moment or `maintain`'s recount: socket
    /// frames then wait for as many companion frames too many.) Not called when the companion
    /// gave nothing and nothing was held: no frame passed before the socket's, so 64-byte
    /// traffic reads no stamp.
    fn restore(
        &mut self,
        x: &Xsk,
        big_waiting: bool,
        batch: &mut RxBatch,
        start: usize,
        socket: usize,
    ) {
        let from_big = start + socket;
        let k = batch.len() - from_big;
        let stamp = |d: &RxDesc| x.stamp_before(d.addr & ADDR_MASK);
        let Some(last) = stamp(&batch.descs()[from_big - 1]) else {
            // No stamp (never with the split program): as taken.
            self.seen += k as u64;
            return;
        };
        if k == 0 && last <= self.seen {
            // No frame passed to the stack since the companion's last one.
            self.stalls = 0;
            return;
        }
        let mut order = [RxDesc::default(); BATCH_SIZE];
        let descs = batch.descs_mut();
        let (mut j, mut o) = (0, 0);
        // Where the socket frames that wait for frames the companion did not give begin.
        let mut wait_from = None;
        for i in start..from_big {
            let d = descs[i];
            // How many of this poll's companion frames came before this one.
            let before = stamp(&d).map_or(k as u64, |s| s.saturating_sub(self.seen));
            if before > k as u64 && wait_from.is_none() {
                wait_from = Some(o + k - j);
            }
            while (j as u64) < before.min(k as u64) {
                order[o] = descs[from_big + j];
                (j, o) = (j + 1, o + 1);
            }
            order[o] = d;
            o += 1;
        }
        while j < k {
            order[o] = descs[from_big + j];
            (j, o) = (j + 1, o + 1);
        }
        descs[start..].copy_from_slice(&order[..o]);
        match wait_from {
            Some(w) if big_waiting && (k > 0 || self.stalls < MAX_STALLS) => {
                // Everything from `w` on is socket frames (the companion's all come before).
                let keep = start + w;
                for d in &batch.descs()[keep..] {
                    self.held.push(*d);
                }
                batch.truncate(keep);
                self.seen += k as u64;
                self.stalls = if k == 0 { self.stalls + 1 } else { 0 };
            }
            _ => {
                self.seen = (self.seen + k as u64).max(last);
                self.stalls = 0;
            }
        }
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
            Some(big) => big.port.caps(),
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

    /// A split port's long frames leave through its companion, whose limit follows the MTU,
    /// and frames above a lowered MTU go there too (to be refused and counted, as the kernel
    /// would drop them uncounted); the program's split length stays (frames above it reach
    /// the companion, which takes any length). Native mode's limit is the chunk.
    fn set_mtu(&mut self, mtu: u32) {
        if let Some(big) = self.big.as_deref_mut() {
            big.port.set_mtu(mtu);
            let mtu = usize::try_from(mtu).unwrap_or(usize::MAX);
            self.split_len = self.split_max.min(mtu.saturating_add(18));
        }
    }

    /// A split port's queue 0 takes the companion's frames and socket 0's, in the order the
    /// device received them (see `SplitOrder::restore`).
    fn rx_burst(&mut self, queue: usize, batch: &mut RxBatch) -> io::Result<usize> {
        let Some(x) = self.queues.get_mut(queue) else {
            return Err(io::ErrorKind::InvalidInput.into());
        };
        let tag = XSK_TAG | (queue as u64) << QUEUE_SHIFT;
        let Companion { port: big, order } = match self.big.as_deref_mut() {
            Some(c) if queue == 0 => c,
            _ => {
                let room = batch.room();
                return Ok(recv_into::<0>(x, tag, batch, room));
            }
        };
        let start = batch.len();
        let held = order.held.len();
        for d in order.held.descs() {
            batch.push(*d);
        }
        order.held.clear();
        // Room for the companion's frames when it has some or socket frames wait for them;
        // otherwise the socket may fill the batch (a batch that comes back full tells the
        // worker it is behind).
        let reserve = if held > 0 || big.rx_pending() {
            COMPANION_ROOM
        } else {
            0
        };
        let room = batch.room().saturating_sub(reserve);
        recv_into::<SPLIT_STAMP_LEN>(x, tag, batch, room);
        let socket = batch.len() - start;
        let full = batch.is_full();
        let big_err = big.rx_burst(0, batch).err();
        let k = batch.len() - start - socket;
        debug_assert!(
            batch.descs()[start + socket..]
                .iter()
                .all(|d| d.addr & XSK_TAG == 0)
        );
        if socket == 0 || (k == 0 && held == 0 && !full) {
            // Only one side gave frames. The companion, polled last with room, had none
            // waiting: no frame passed to the stack before the socket's (or it was dropped).
            order.seen += k as u64;
        } else {
            order.restore(x, big.rx_pending(), batch, start, socket);
        }
        let n = batch.len() - start;
        match big_err {
            // The worker counts the error; frames received with it are not lost.
            Some(e) if n == 0 => Err(e),
            _ => Ok(n),
        }
    }

    fn frame(&self, desc: &RxDesc) -> &[u8] {
        if desc.addr & XSK_TAG == 0 {
            return self.big.as_ref().map_or(&[], |b| b.port.frame(desc));
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
                Some(b) => b.port.frame_mut(desc),
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
            big.port.rx_release(0, batch);
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
                    .is_some_and(|b| b.port.tx_enqueue(frame, offload));
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
        self.tx_blocked = sockets.is_err();
        // Both sides flush whatever the other's result.
        let big = self.big.as_mut().map_or(Ok(()), |b| b.port.tx_flush());
        sockets.and(big)
    }

    fn maintain(&mut self) {
        // Frames a flush left on a TX ring go now, not with the next frame queued here, which
        // may never come: a flush kicks at most `max_kicks` times, and in copy mode each frame
        // the device drops (no carrier, a veth peer that refuses it) ends a kick. While kicks
        // fail (the device down) only now and then: a system call a millisecond would be for
        // nothing.
        if self.queues.iter().any(|x| x.tx_outstanding() > 0) {
            if self.tx_blocked {
                self.blocked_calls = self.blocked_calls.wrapping_add(1);
            }
            if !self.tx_blocked || self.blocked_calls.is_multiple_of(TX_BLOCKED_RETRY) {
                self.tx_blocked = self.flush_sockets().is_err();
            }
        }
        let Some(Companion { port: big, order }) = self.big.as_deref_mut() else {
            return;
        };
        big.maintain();
        order.until_recount -= 1;
        if order.until_recount == 0 {
            order.until_recount = RECOUNT_EVERY;
            // Back to the program's count: `seen` falls behind it when the companion drops
            // frames, and would run ahead if the companion were given a frame the program
            // never saw (one redirected into the device's ingress by tc skips generic XDP).
            // Read before looking at the companion: a frame passed in between is waiting there.
            if let Some(Ok(passed)) = self.attachment.passes.as_ref().map(PassCounter::get)
                && (order.seen > passed || (order.held.is_empty() && !big.rx_pending()))
            {
                order.seen = passed;
            }
        }
    }

    /// (In zero-copy mode, which veth does not have, the driver takes descriptors on its own:
    /// one it takes between this count and the socket's closing was counted and still sent.)
    fn close(&mut self) -> BackendDrops {
        self.tx_pending = Side::None;
        let _ = self.flush_sockets();
        let mut sum = self
            .big
            .as_mut()
            .map_or_else(BackendDrops::default, |b| b.port.close());
        for x in &self.queues {
            sum.tx += u64::from(x.tx_unsent_frames());
        }
        sum += self.take_backend_drops();
        sum
    }

    /// The growth of the kernel's drop counters (`XDP_STATISTICS`) since the last call, by
    /// cause: one `getsockopt` per queue, so call it from a periodic task, not per batch.
    fn take_backend_drops(&mut self) -> BackendDrops {
        let mut sum = self
            .big
            .as_mut()
            .map_or_else(BackendDrops::default, |b| b.port.take_backend_drops());
        for (x, last) in self.queues.iter().zip(self.last_stats.iter_mut()) {
            if let Ok(now) = x.statistics() {
                sum += now.drops_since(last);
                *last = now;
            }
        }
        sum
    }

    fn rx_fd(&self, queue: usize) -> Option<RawFd> {
        self.queues.get(queue).map(Xsk::raw_fd)
    }

    fn xdp_attachment(&self) -> Option<XdpAttachment> {
        let mode = match (self.big.is_some(), self.mode) {
            (true, _) => XdpMode::Split,
            (false, XdpAttachMode::Driver) => XdpMode::Native,
            (false, XdpAttachMode::Skb) => XdpMode::Skb,
        };
        Some(XdpAttachment {
            mode,
            frags: self.attachment.prog.has_frags(),
        })
    }

    fn rx_extra_fd(&self, queue: usize) -> Option<RawFd> {
        match (queue, self.big.as_ref()) {
            (0, Some(big)) => big.port.rx_fd(0),
            _ => None,
        }
    }
}
