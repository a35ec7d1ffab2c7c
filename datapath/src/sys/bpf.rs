//! bpf(2) without libbpf or clang: the XSKMAP, the 6-instruction redirect program and its
//! `bpf_link` attachment to a device (slow path).
//!
//! - [`XskMap`]: `BPF_MAP_TYPE_XSKMAP`, key = rx queue id, value = AF_XDP socket fd.
//! - [`XdpProgram`]: `bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS)`; frames of a queue
//!   without a socket go to the kernel stack.
//! - [`DevMap`] and [`XdpProgram::load_device_redirect`]: the same program shape keyed by the
//!   ingress device, sending every frame of a device straight out of another one inside the
//!   kernel (no socket, no userspace). Not used by the switch: it is the measuring harness's
//!   model of an in-kernel XDP fast path (docs/adr/0007-no-xdp-redirect-fast-path.md).
//! - [`XdpProgram::load_live_tx`] and [`XdpProgram::send_live`]: a traffic generator inside
//!   the kernel (`BPF_PROG_TEST_RUN` with live frames): the program redirects copies of one
//!   frame out of a device, sweeping the UDP source port over the flows and stamping each
//!   frame with a sequence number and the time. Not used by the switch: it is
//!   `pktgen --mode xdplive`.
//! - [`XdpLink`]: the program attached with `BPF_LINK_CREATE`. Closing the link fd detaches it,
//!   so the program disappears with the process, even on `SIGKILL`. A program left behind by a
//!   netlink attach (which does outlive its process) is detected and cleared on `EBUSY`.
//!
//! Every object is an [`OwnedFd`]; errors carry the errno ([`BpfError::raw_os_error`]).

use std::fmt;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::netdev;

/// `BPF_MAP_CREATE`.
const BPF_MAP_CREATE: libc::c_int = 0;
/// `BPF_MAP_LOOKUP_ELEM`.
const BPF_MAP_LOOKUP_ELEM: libc::c_int = 1;
/// `BPF_MAP_UPDATE_ELEM`.
const BPF_MAP_UPDATE_ELEM: libc::c_int = 2;
/// `BPF_MAP_DELETE_ELEM`.
const BPF_MAP_DELETE_ELEM: libc::c_int = 3;
/// `BPF_PROG_LOAD`.
const BPF_PROG_LOAD: libc::c_int = 5;
/// `BPF_OBJ_GET_INFO_BY_FD`.
const BPF_OBJ_GET_INFO_BY_FD: libc::c_int = 15;
/// `BPF_PROG_TEST_RUN`.
const BPF_PROG_TEST_RUN: libc::c_int = 10;
/// `BPF_LINK_CREATE`.
const BPF_LINK_CREATE: libc::c_int = 28;

/// `BPF_MAP_TYPE_ARRAY`.
const BPF_MAP_TYPE_ARRAY: u32 = 2;
/// `BPF_MAP_TYPE_XSKMAP`.
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
/// `BPF_MAP_TYPE_DEVMAP_HASH`.
const BPF_MAP_TYPE_DEVMAP_HASH: u32 = 25;
/// `BPF_PROG_TYPE_XDP`.
const BPF_PROG_TYPE_XDP: u32 = 6;
/// `BPF_XDP` attach type.
const BPF_XDP: u32 = 37;
/// `BPF_F_XDP_HAS_FRAGS`: the program accepts multi-buffer frames.
const BPF_F_XDP_HAS_FRAGS: u32 = 1 << 5;
/// `BPF_F_TEST_XDP_LIVE_FRAMES`: a test run sends the frames its program redirects.
const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;
/// `BPF_ANY` map update flag.
const BPF_ANY: u64 = 0;
/// `BPF_PSEUDO_MAP_FD`: the `ld_imm64` immediate is a map fd.
const BPF_PSEUDO_MAP_FD: u8 = 1;
/// `BPF_FUNC_map_lookup_elem`.
const BPF_FUNC_MAP_LOOKUP_ELEM: i32 = 1;
/// `BPF_FUNC_redirect`.
const BPF_FUNC_REDIRECT: i32 = 23;
/// `BPF_FUNC_redirect_map`.
const BPF_FUNC_REDIRECT_MAP: i32 = 51;
/// `BPF_FUNC_xdp_adjust_head`.
const BPF_FUNC_XDP_ADJUST_HEAD: i32 = 44;
/// `XDP_PASS`.
const XDP_PASS: i32 = 2;
/// `offsetof(struct xdp_md, ingress_ifindex)`.
const XDP_MD_INGRESS_IFINDEX: i16 = 12;
/// `offsetof(struct xdp_md, data)`.
const XDP_MD_DATA: i16 = 0;
/// `offsetof(struct xdp_md, data_end)`.
const XDP_MD_DATA_END: i16 = 4;
/// `offsetof(struct xdp_md, rx_queue_index)`.
const XDP_MD_RX_QUEUE_INDEX: i16 = 16;
/// Size of the verifier log kept when a load fails.
const VERIFIER_LOG_SIZE: usize = 64 * 1024;

/// A failed bpf(2) (or related) call.
#[derive(Debug)]
pub struct BpfError {
    /// What was being done.
    pub what: &'static str,
    /// The OS error.
    pub source: io::Error,
    /// The verifier log, when a program load failed and the kernel wrote one.
    pub log: Option<String>,
}

impl BpfError {
    /// The errno of the failure, if it came from the kernel.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

impl fmt::Display for BpfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.source)?;
        if let Some(log) = &self.log {
            write!(f, "; verifier log:\n{log}")?;
        }
        Ok(())
    }
}

impl std::error::Error for BpfError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl From<BpfError> for io::Error {
    fn from(e: BpfError) -> Self {
        e.source
    }
}

/// `union bpf_attr` for `BPF_MAP_CREATE` (prefix the kernel needs).
#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

/// `union bpf_attr` for `BPF_MAP_*_ELEM`.
#[repr(C)]
#[derive(Default)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// `union bpf_attr` for `BPF_PROG_LOAD` (up to `expected_attach_type`).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for `BPF_LINK_CREATE` (the part XDP uses).
#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

/// `union bpf_attr` for `BPF_PROG_TEST_RUN` (the fields up to `batch_size`).
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    /// Named, so that it is zeroed: the kernel refuses non-zero bytes past the last field.
    _pad: u32,
}

/// `struct xdp_md`, the context a test run starts from.
#[repr(C)]
#[derive(Default)]
struct XdpMd {
    data: u32,
    data_end: u32,
    data_meta: u32,
    ingress_ifindex: u32,
    rx_queue_index: u32,
    egress_ifindex: u32,
}

/// `union bpf_attr` for `BPF_OBJ_GET_INFO_BY_FD`.
#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The first fields of `struct bpf_prog_info` / `struct bpf_map_info` (`type`, `id`): the kernel
/// fills only as much as we ask for.
#[repr(C)]
#[derive(Default)]
struct InfoPrefix {
    ty: u32,
    id: u32,
}

/// Marker for the `bpf_attr` layouts above.
trait BpfAttr {}
impl BpfAttr for MapCreateAttr {}
impl BpfAttr for ElemAttr {}
impl BpfAttr for ProgLoadAttr {}
impl BpfAttr for LinkCreateAttr {}
impl BpfAttr for InfoAttr {}
impl BpfAttr for TestRunAttr {}

/// Calls bpf(2) and returns its non-negative result.
///
/// # Safety
/// `attr` must be the `bpf_attr` layout the kernel expects for `cmd`, and every pointer stored in
/// it must be valid for the access the kernel makes through it (reads of the instructions and the
/// license, writes of the log buffer, key/value reads) for the duration of the call.
unsafe fn sys_bpf<A: BpfAttr>(cmd: libc::c_int, attr: &mut A) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, writable object of `size_of::<A>()` bytes; the caller vouches
    // for the pointers inside it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut A,
            size_of::<A>() as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Wraps a new fd returned by bpf(2).
fn owned(rc: libc::c_long) -> OwnedFd {
    // SAFETY: `rc` is a file descriptor just created by bpf(2) (always O_CLOEXEC) and owned by
    // nobody else.
    unsafe { OwnedFd::from_raw_fd(rc as libc::c_int) }
}

/// Copies `name` into a 16-byte, NUL-terminated object name.
fn obj_name(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (dst, src) in out.iter_mut().take(15).zip(name.bytes()) {
        *dst = src;
    }
    out
}

/// The kernel id of a bpf object (program or map), for logs.
fn obj_id(fd: BorrowedFd<'_>) -> io::Result<u32> {
    let mut info = InfoPrefix::default();
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: size_of::<InfoPrefix>() as u32,
        info: (&raw mut info) as u64,
    };
    // SAFETY: `attr` is the OBJ_GET_INFO_BY_FD layout; `info` is valid for writes of `info_len`
    // bytes and lives across the call.
    unsafe { sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }?;
    Ok(info.id)
}

/// Creates a map of `map_type` with 4-byte keys and values.
fn create_u32_map(
    map_type: u32,
    entries: u32,
    name: &str,
    what: &'static str,
) -> Result<OwnedFd, BpfError> {
    create_map(map_type, 4, entries, name, what)
}

/// Creates a map of `map_type` with 4-byte keys and `value_size`-byte values.
fn create_map(
    map_type: u32,
    value_size: u32,
    entries: u32,
    name: &str,
    what: &'static str,
) -> Result<OwnedFd, BpfError> {
    let mut attr = MapCreateAttr {
        map_type,
        key_size: 4,
        value_size,
        max_entries: entries,
        map_name: obj_name(name),
        ..Default::default()
    };
    // SAFETY: `attr` is the MAP_CREATE layout and holds no pointers.
    let rc = unsafe { sys_bpf(BPF_MAP_CREATE, &mut attr) }.map_err(|source| BpfError {
        what,
        source,
        log: None,
    })?;
    Ok(owned(rc))
}

/// Sets `key` to `value` in a map with 4-byte keys and values.
fn update_u32(
    map: BorrowedFd<'_>,
    key: u32,
    value: u32,
    what: &'static str,
) -> Result<(), BpfError> {
    let mut attr = ElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: (&raw const key) as u64,
        value: (&raw const value) as u64,
        flags: BPF_ANY,
        ..Default::default()
    };
    // SAFETY: `attr` is the MAP_UPDATE_ELEM layout; `key` and `value` are 4-byte locals (the
    // map's key and value sizes) alive across the call.
    unsafe { sys_bpf(BPF_MAP_UPDATE_ELEM, &mut attr) }.map_err(|source| BpfError {
        what,
        source,
        log: None,
    })?;
    Ok(())
}

/// A one-slot `BPF_MAP_TYPE_ARRAY` holding a `u64`: how many frames a split program
/// ([`XdpProgram::load_split_redirect`]) has let pass to the kernel stack. The program writes
/// the count in front of every frame it redirects, so that the receiver can put the frames of
/// the socket and of the kernel stack back in the order they arrived in.
#[derive(Debug)]
pub struct PassCounter {
    fd: OwnedFd,
}

impl PassCounter {
    /// Creates the map, its count at 0.
    ///
    /// # Errors
    /// `EPERM` without `CAP_BPF`/`CAP_NET_ADMIN`, …
    pub fn new() -> Result<Self, BpfError> {
        let fd = create_map(
            BPF_MAP_TYPE_ARRAY,
            8,
            1,
            "vswitch_passes",
            "create pass counter",
        )?;
        Ok(Self { fd })
    }

    /// The count now (one system call: for tests and periodic checks, not per frame).
    ///
    /// # Errors
    /// The error of `BPF_MAP_LOOKUP_ELEM`.
    pub fn get(&self) -> Result<u64, BpfError> {
        let key = 0u32;
        let mut value = 0u64;
        let mut attr = ElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: (&raw const key) as u64,
            value: (&raw mut value) as u64,
            ..Default::default()
        };
        // SAFETY: `attr` is the MAP_LOOKUP_ELEM layout; `key` (4 bytes, the key size) is read
        // and `value` (8 bytes, the value size) written, both locals alive across the call.
        unsafe { sys_bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) }.map_err(|source| BpfError {
            what: "read pass counter",
            source,
            log: None,
        })?;
        Ok(value)
    }
}

/// A `BPF_MAP_TYPE_XSKMAP`: rx queue id → AF_XDP socket.
#[derive(Debug)]
pub struct XskMap {
    fd: OwnedFd,
    entries: u32,
}

impl XskMap {
    /// Creates a map with one slot per queue `0..entries`.
    ///
    /// # Errors
    /// `EPERM` without `CAP_BPF`/`CAP_NET_ADMIN`, `EINVAL` for 0 entries, …
    pub fn new(entries: u32) -> Result<Self, BpfError> {
        Ok(Self {
            fd: create_u32_map(
                BPF_MAP_TYPE_XSKMAP,
                entries,
                "vswitch_xsks",
                "create XSKMAP",
            )?,
            entries,
        })
    }

    /// Number of slots.
    pub fn entries(&self) -> u32 {
        self.entries
    }

    /// Points queue `queue` at the (bound) AF_XDP socket `xsk`.
    ///
    /// # Errors
    /// `E2BIG` when `queue` is out of range, `EOPNOTSUPP`/`EINVAL` for an unbound socket.
    pub fn set(&self, queue: u32, xsk: BorrowedFd<'_>) -> Result<(), BpfError> {
        update_u32(
            self.fd.as_fd(),
            queue,
            xsk.as_raw_fd() as u32,
            "set XSKMAP entry",
        )
    }

    /// Empties the slot of `queue` (frames of that queue then go to the kernel stack). An
    /// already empty slot is not an error.
    ///
    /// # Errors
    /// `E2BIG`/`EINVAL` when `queue` is out of range.
    pub fn clear(&self, queue: u32) -> Result<(), BpfError> {
        let key = queue;
        let mut attr = ElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: (&raw const key) as u64,
            ..Default::default()
        };
        // SAFETY: `attr` is the MAP_DELETE_ELEM layout; `key` is a 4-byte local alive across
        // the call.
        match unsafe { sys_bpf(BPF_MAP_DELETE_ELEM, &mut attr) } {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            Err(source) => Err(BpfError {
                what: "clear XSKMAP entry",
                source,
                log: None,
            }),
        }
    }
}

/// A `BPF_MAP_TYPE_DEVMAP_HASH`: ingress ifindex → egress ifindex, for
/// [`XdpProgram::load_device_redirect`].
#[derive(Debug)]
pub struct DevMap {
    fd: OwnedFd,
}

impl DevMap {
    /// Creates a map of at most `entries` devices.
    ///
    /// # Errors
    /// `EPERM` without `CAP_BPF`/`CAP_NET_ADMIN`, `EINVAL` for 0 entries, …
    pub fn new(entries: u32) -> Result<Self, BpfError> {
        let fd = create_u32_map(
            BPF_MAP_TYPE_DEVMAP_HASH,
            entries,
            "vswitch_devs",
            "create DEVMAP_HASH",
        )?;
        Ok(Self { fd })
    }

    /// Frames arriving on device `from` leave through device `to`.
    ///
    /// # Errors
    /// `ENODEV` when `to` does not exist, `E2BIG` when the map is full.
    pub fn set(&self, from: u32, to: u32) -> Result<(), BpfError> {
        update_u32(self.fd.as_fd(), from, to, "set DEVMAP_HASH entry")
    }
}

impl AsFd for XskMap {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// `struct bpf_insn`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Insn {
    code: u8,
    /// `dst_reg:4` (low nibble) and `src_reg:4` (high nibble).
    regs: u8,
    off: i16,
    imm: i32,
}

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        Self {
            code,
            regs: (src << 4) | (dst & 0x0f),
            off,
            imm,
        }
    }
}

/// `r2 = ctx->rx_queue_index; r1 = map; r3 = XDP_PASS; return bpf_redirect_map(r1, r2, r3)`.
fn redirect_program(map_fd: i32) -> [Insn; 6] {
    redirect_program_by(map_fd, XDP_MD_RX_QUEUE_INDEX)
}

/// [`redirect_program`] keyed by the `u32` field of `struct xdp_md` at offset `key`.
fn redirect_program_by(map_fd: i32, key: i16) -> [Insn; 6] {
    [
        // BPF_LDX | BPF_MEM | BPF_W: r2 = *(u32 *)(r1 + key)
        Insn::new(0x61, 2, 1, key, 0),
        // BPF_LD | BPF_IMM | BPF_DW (two slots): r1 = map (by fd)
        Insn::new(0x18, 1, BPF_PSEUDO_MAP_FD, 0, map_fd),
        Insn::new(0, 0, 0, 0, 0),
        // BPF_ALU64 | BPF_MOV | BPF_K: r3 = XDP_PASS (the action when the slot is empty)
        Insn::new(0xb7, 3, 0, 0, XDP_PASS),
        // BPF_JMP | BPF_CALL: bpf_redirect_map
        Insn::new(0x85, 0, 0, 0, BPF_FUNC_REDIRECT_MAP),
        // BPF_JMP | BPF_EXIT
        Insn::new(0x95, 0, 0, 0, 0),
    ]
}

/// Bytes the split program puts in front of each frame it redirects: the pass count (a
/// native-endian `u64`), which the socket's reader takes off ([`XdpProgram::load_split_redirect`]).
pub const SPLIT_STAMP_LEN: u32 = 8;

/// `ld_imm64` of a map fd: two instruction slots.
fn load_map(dst: u8, map_fd: i32) -> [Insn; 2] {
    [
        Insn::new(0x18, dst, BPF_PSEUDO_MAP_FD, 0, map_fd),
        Insn::new(0, 0, 0, 0, 0),
    ]
}

/// `r0 = bpf_map_lookup_elem(map, &0)`, the key on the stack at `r10 - 4`: the pointer to an
/// array's first slot (never NULL for an array; the verifier wants the check all the same).
fn lookup_slot0(map_fd: i32) -> [Insn; 6] {
    let [m0, m1] = load_map(1, map_fd);
    [
        Insn::new(0x62, 10, 0, -4, 0),
        Insn::new(0xbf, 2, 10, 0, 0),
        Insn::new(0x07, 2, 0, 0, -4),
        m0,
        m1,
        Insn::new(0x85, 0, 0, 0, BPF_FUNC_MAP_LOOKUP_ELEM),
    ]
}

/// The split program: frames of at most `max_len` bytes go to the socket of their queue,
/// longer ones to the kernel stack, and the receiver can restore the order between the two:
///
/// ```text
/// count = &passes[0]                                      (NULL never: an array's slot)
/// if frame is longer than max_len: goto pass
/// if bpf_xdp_adjust_head(ctx, -8) != 0: goto pass        (no room: to the stack, in order)
/// *(u64 *)ctx->data = *count                              (frames passed before this one)
/// if bpf_redirect_map(xsks, ctx->rx_queue_index, XDP_PASS) != XDP_PASS: return it
/// bpf_xdp_adjust_head(ctx, 8)                             (no socket: the frame as it came)
/// pass: *count += 1 (atomic); return XDP_PASS
/// ```
///
/// The count goes in front of the frame's own bytes, not into XDP metadata
/// (`bpf_xdp_adjust_meta`): some kernels refuse that helper to XDP programs (this project's
/// 6.18 build: "program of this type cannot use helper bpf_xdp_adjust_meta"), and the frame's
/// head is what every kernel since 4.10 lets a program move. Every frame that reaches the
/// stack is counted, including one whose queue has no socket. (In generic mode with
/// `BPF_F_XDP_HAS_FRAGS` a multi-buffer frame shows its first buffer here, which for a frame
/// longer than a page's worth is still longer than `max_len`.)
fn split_program(xsks_fd: i32, passes_fd: i32, max_len: u16) -> [Insn; 42] {
    // Instruction indexes the jumps below name (offsets are relative to the next one).
    const PASS: i16 = 13;
    const SHORT: i16 = 17;
    const UNDO: i16 = 36;
    const UNCOUNTED: i16 = 40;
    let [l0, l1, l2, l3, l4, l5] = lookup_slot0(passes_fd);
    let [x0, x1] = load_map(1, xsks_fd);
    let stamp = SPLIT_STAMP_LEN as i32;
    [
        // 0: r6 = ctx (kept across the calls)
        Insn::new(0xbf, 6, 1, 0, 0),
        // 1-6: r0 = bpf_map_lookup_elem(passes, &0)
        l0,
        l1,
        l2,
        l3,
        l4,
        l5,
        // 7-8: if r0 == NULL goto UNCOUNTED; r7 = r0 (the count, kept across the calls)
        Insn::new(0x15, 0, 0, UNCOUNTED - 8, 0),
        Insn::new(0xbf, 7, 0, 0, 0),
        // 9-12: r2 = ctx->data + max_len + 1; if r2 > ctx->data_end goto SHORT
        Insn::new(0x61, 2, 6, XDP_MD_DATA, 0),
        Insn::new(0x61, 3, 6, XDP_MD_DATA_END, 0),
        Insn::new(0x07, 2, 0, 0, i32::from(max_len) + 1),
        Insn::new(0x2d, 2, 3, SHORT - 13, 0),
        // PASS (13-16): lock *(u64 *)(r7 + 0) += 1; return XDP_PASS
        Insn::new(0xb7, 1, 0, 0, 1),
        Insn::new(0xdb, 7, 1, 0, 0),
        Insn::new(0xb7, 0, 0, 0, XDP_PASS),
        Insn::new(0x95, 0, 0, 0, 0),
        // SHORT (17-20): if bpf_xdp_adjust_head(ctx, -8) != 0 goto PASS
        Insn::new(0xbf, 1, 6, 0, 0),
        Insn::new(0xb7, 2, 0, 0, -stamp),
        Insn::new(0x85, 0, 0, 0, BPF_FUNC_XDP_ADJUST_HEAD),
        Insn::new(0x55, 0, 0, PASS - 21, 0),
        // 21: r8 = *(u64 *)(r7 + 0)
        Insn::new(0x79, 8, 7, 0, 0),
        // 22-26: r2 = ctx->data; r3 = ctx->data_end; if r2 + 8 > r3 goto UNDO (never: the
        // frame is 8 bytes longer now; the verifier wants the check)
        Insn::new(0x61, 2, 6, XDP_MD_DATA, 0),
        Insn::new(0x61, 3, 6, XDP_MD_DATA_END, 0),
        Insn::new(0xbf, 4, 2, 0, 0),
        Insn::new(0x07, 4, 0, 0, stamp),
        Insn::new(0x2d, 4, 3, UNDO - 27, 0),
        // 27: *(u64 *)(r2 + 0) = r8
        Insn::new(0x7b, 2, 8, 0, 0),
        // 28-32: r0 = bpf_redirect_map(xsks, ctx->rx_queue_index, XDP_PASS)
        Insn::new(0x61, 2, 6, XDP_MD_RX_QUEUE_INDEX, 0),
        x0,
        x1,
        Insn::new(0xb7, 3, 0, 0, XDP_PASS),
        Insn::new(0x85, 0, 0, 0, BPF_FUNC_REDIRECT_MAP),
        // 33-35: if r0 != XDP_PASS goto exit; goto UNDO (no socket); exit
        Insn::new(0x55, 0, 0, 1, XDP_PASS),
        Insn::new(0x05, 0, 0, UNDO - 35, 0),
        Insn::new(0x95, 0, 0, 0, 0),
        // UNDO (36-39): bpf_xdp_adjust_head(ctx, 8) (the frame to the stack as it came:
        // cannot fail, the 8 bytes were added above); goto PASS
        Insn::new(0xbf, 1, 6, 0, 0),
        Insn::new(0xb7, 2, 0, 0, stamp),
        Insn::new(0x85, 0, 0, 0, BPF_FUNC_XDP_ADJUST_HEAD),
        Insn::new(0x05, 0, 0, PASS - 40, 0),
        // UNCOUNTED (40-41): return XDP_PASS
        Insn::new(0xb7, 0, 0, 0, XDP_PASS),
        Insn::new(0x95, 0, 0, 0, 0),
    ]
}

/// Flows of a live transmitter ([`XdpProgram::load_live_tx`]): frame `n` it sends is flow
/// `n % flows`, which differs from the frame given to [`XdpProgram::send_live`] (flow 0)
/// only in its UDP source port, `first + n % flows`, its UDP checksum and, with `stamp`, its
/// sequence number and timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortSweep {
    /// Number of flows, at least 1; `first + flows - 1` must be a port (≤ 65535).
    pub flows: u32,
    /// The source port of flow 0 (as in the frame).
    pub first: u16,
    /// Offset of the UDP header from the start of the frame.
    pub udp_off: u16,
    /// The UDP checksum of flow 0's frame (as in the frame; 0 for an IPv4 frame without one).
    pub csum: u16,
    /// Offset of a big-endian `u64` sequence number followed by a big-endian 48-bit
    /// timestamp, both 0 in the frame given: each frame gets the next number (from 0) and the
    /// low 48 bits of `CLOCK_MONOTONIC` in ns when the program runs (`bpf_ktime_get_ns`).
    pub stamp: Option<u16>,
}

/// `BPF_FUNC_ktime_get_ns`.
const BPF_FUNC_KTIME_GET_NS: i32 = 5;

/// The live transmitter: `bpf_redirect(ifindex, 0)` of every frame; with more than one flow
/// or a stamp, before that
///
/// ```text
/// n = &next[0]                                (NULL never: an array's slot)
/// ts = bpf_ktime_get_ns() & (2^48 - 1); seq = n->seq++          (with a stamp)
/// i = n->flow; n->flow = i + 1 < flows ? i + 1 : 0
/// if the frame ends before the end of what is rewritten: skip the rewrite
/// udp.source = htons(first + i)
/// udp.check = csum ? htons(~(~csum + i + words of seq and ts)) (0 → 0xffff) : 0
/// payload seq, ts = htonll(seq), the 48 bits of ts big-endian   (with a stamp)
/// ```
///
/// The checksum update follows RFC 1624: flow `i`'s port is flow 0's plus `i`, with no
/// carry out of 16 bits because `first + i` is a port, and the stamp's words were 0.
fn live_tx_program(ifindex: u32, next_fd: i32, sweep: PortSweep) -> Vec<Insn> {
    let redirect = [
        // r1 = ifindex; r2 = 0; return bpf_redirect(r1, r2)
        Insn::new(0xb7, 1, 0, 0, ifindex as i32),
        Insn::new(0xb7, 2, 0, 0, 0),
        Insn::new(0x85, 0, 0, 0, BPF_FUNC_REDIRECT),
        Insn::new(0x95, 0, 0, 0, 0),
    ];
    if sweep.flows <= 1 && sweep.stamp.is_none() {
        return redirect.to_vec();
    }
    let sport_off = sweep.udp_off as i16;
    let csum_off = sport_off + 6;
    // The end of what the program rewrites, for the bounds check.
    let end = match sweep.stamp {
        Some(off) => (off as i16 + 14).max(csum_off + 2),
        None => csum_off + 2,
    };
    // r6 = ctx; r0 = bpf_map_lookup_elem(next, &0)
    let mut p = vec![Insn::new(0xbf, 6, 1, 0, 0)];
    p.extend_from_slice(&lookup_slot0(next_fd));
    p.extend_from_slice(&[
        // if r0 == NULL goto send (offset set below); r7 = r0
        Insn::new(0x15, 0, 0, 0, 0),
        Insn::new(0xbf, 7, 0, 0, 0),
    ]);
    const NULL_JUMP: usize = 7;
    if sweep.stamp.is_some() {
        p.extend_from_slice(&[
            // r9 = bpf_ktime_get_ns() & (2^48 - 1)
            Insn::new(0x85, 0, 0, 0, BPF_FUNC_KTIME_GET_NS),
            Insn::new(0xbf, 9, 0, 0, 0),
            Insn::new(0x67, 9, 0, 0, 16),
            Insn::new(0x77, 9, 0, 0, 16),
            // r8 = *(u64 *)(r7 + 8) (seq); *(u64 *)(r7 + 8) = r8 + 1
            Insn::new(0x79, 8, 7, 8, 0),
            Insn::new(0xbf, 1, 8, 0, 0),
            Insn::new(0x07, 1, 0, 0, 1),
            Insn::new(0x7b, 7, 1, 8, 0),
        ]);
    }
    p.extend_from_slice(&[
        // r1 = *(u32 *)r7 (i); r2 = i + 1; if r2 >= flows: r2 = 0; *(u32 *)r7 = r2
        Insn::new(0x61, 1, 7, 0, 0),
        Insn::new(0xbf, 2, 1, 0, 0),
        Insn::new(0x07, 2, 0, 0, 1),
        Insn::new(0xa5, 2, 0, 1, sweep.flows.max(1) as i32),
        Insn::new(0xb7, 2, 0, 0, 0),
        Insn::new(0x63, 7, 2, 0, 0),
        // r3 = htons(first + i)
        Insn::new(0xbf, 3, 1, 0, 0),
        Insn::new(0x07, 3, 0, 0, i32::from(sweep.first)),
        Insn::new(0xdc, 3, 0, 0, 16),
        // r4 = 0: the checksum of a frame without one
        Insn::new(0xb7, 4, 0, 0, 0),
    ]);
    if sweep.csum != 0 {
        // r4 = ~csum + i (+ the stamp's seven 16-bit words)
        p.extend_from_slice(&[
            Insn::new(0xbf, 4, 1, 0, 0),
            Insn::new(0x07, 4, 0, 0, i32::from(!sweep.csum)),
        ]);
        if sweep.stamp.is_some() {
            // r5 = (reg >> shift) & 0xffff; r4 += r5, for seq's four words and ts's three
            for (reg, shift) in [(8, 48), (8, 32), (8, 16), (8, 0), (9, 32), (9, 16), (9, 0)] {
                p.push(Insn::new(0xbf, 5, reg, 0, 0));
                if shift > 0 {
                    p.push(Insn::new(0x77, 5, 0, 0, shift));
                }
                if shift < 48 {
                    p.push(Insn::new(0x57, 5, 0, 0, 0xffff));
                }
                p.push(Insn::new(0x0f, 4, 5, 0, 0));
            }
        }
        // fold twice (the sum is below 2^20); r4 = ~r4 & 0xffff
        for _ in 0..2 {
            p.extend_from_slice(&[
                Insn::new(0xbf, 5, 4, 0, 0),
                Insn::new(0x77, 5, 0, 0, 16),
                Insn::new(0x57, 4, 0, 0, 0xffff),
                Insn::new(0x0f, 4, 5, 0, 0),
            ]);
        }
        p.extend_from_slice(&[
            Insn::new(0xa7, 4, 0, 0, 0xffff),
            // if r4 == 0: r4 = 0xffff (a computed 0 is sent as all ones); r4 = htons(r4)
            Insn::new(0x55, 4, 0, 1, 0),
            Insn::new(0xb7, 4, 0, 0, 0xffff),
            Insn::new(0xdc, 4, 0, 0, 16),
        ]);
    }
    let mut writes = vec![
        // *(u16 *)(r2 + sport_off) = r3; *(u16 *)(r2 + csum_off) = r4
        Insn::new(0x6b, 2, 3, sport_off, 0),
        Insn::new(0x6b, 2, 4, csum_off, 0),
    ];
    if let Some(off) = sweep.stamp {
        let off = off as i16;
        writes.extend_from_slice(&[
            // *(u64 *)(r2 + off) = htonll(seq)
            Insn::new(0xbf, 1, 8, 0, 0),
            Insn::new(0xdc, 1, 0, 0, 64),
            Insn::new(0x7b, 2, 1, off, 0),
            // *(u16 *)(r2 + off + 8) = htons(ts >> 32); *(u32 *)(r2 + off + 10) = htonl(ts)
            Insn::new(0xbf, 1, 9, 0, 0),
            Insn::new(0x77, 1, 0, 0, 32),
            Insn::new(0xdc, 1, 0, 0, 16),
            Insn::new(0x6b, 2, 1, off + 8, 0),
            Insn::new(0xbf, 1, 9, 0, 0),
            Insn::new(0xdc, 1, 0, 0, 32),
            Insn::new(0x63, 2, 1, off + 10, 0),
        ]);
    }
    p.extend_from_slice(&[
        // r2 = ctx->data; r5 = ctx->data_end; if r2 + end > r5 goto send
        Insn::new(0x61, 2, 6, XDP_MD_DATA, 0),
        Insn::new(0x61, 5, 6, XDP_MD_DATA_END, 0),
        Insn::new(0xbf, 1, 2, 0, 0),
        Insn::new(0x07, 1, 0, 0, i32::from(end)),
        Insn::new(0x2d, 1, 5, writes.len() as i16, 0),
    ]);
    p.extend_from_slice(&writes);
    // send: the jump from the look-up lands here.
    p[NULL_JUMP].off = (p.len() - NULL_JUMP - 1) as i16;
    p.extend_from_slice(&redirect);
    p
}

/// The loaded redirect program (`BPF_PROG_TYPE_XDP`).
#[derive(Debug)]
pub struct XdpProgram {
    fd: OwnedFd,
    frags: bool,
}

impl XdpProgram {
    /// Loads `bpf_redirect_map(map, ctx->rx_queue_index, XDP_PASS)`. With `frags`, the program
    /// is flagged `BPF_F_XDP_HAS_FRAGS` (lets veth attach when the peer MTU is above ~3500, and
    /// leaves the peer's GSO on; multi-buffer frames are then dropped by a socket without
    /// `XDP_USE_SG`, never written past a chunk).
    ///
    /// # Errors
    /// The load error; when the verifier rejected the program, [`BpfError::log`] holds its log
    /// (at most 64 KiB).
    pub fn load_redirect(map: &XskMap, frags: bool) -> Result<Self, BpfError> {
        Self::load_checked(&redirect_program(map.fd.as_raw_fd()), "vswitch_xsk", frags)
    }

    /// Loads the redirect program for frames of at most `max_len` bytes (from the Ethernet
    /// header); longer frames go on to the kernel stack (`XDP_PASS`), where an AF_PACKET
    /// socket on the device can take them. Every frame it lets pass is counted in `passes`,
    /// and every frame it redirects carries the count at the time in [`SPLIT_STAMP_LEN`] bytes
    /// put in front of it (see `split_program`'s outline): the socket receives them as the
    /// frame's first bytes, and its reader takes them off. `frags` as in [`load_redirect`](Self::load_redirect);
    /// in generic mode it also decides how the kernel copies a frame that lacks XDP's headroom
    /// before running the program: with it into page-pool pages (a GSO super-frame into
    /// page-sized pieces; slower for small frames), without it into one new buffer (cheaper
    /// for small frames; a GSO super-frame needs one contiguous ~64 KiB allocation).
    ///
    /// # Errors
    /// As [`load_redirect`](Self::load_redirect).
    pub fn load_split_redirect(
        map: &XskMap,
        passes: &PassCounter,
        max_len: u16,
        frags: bool,
    ) -> Result<Self, BpfError> {
        let insns = split_program(map.fd.as_raw_fd(), passes.fd.as_raw_fd(), max_len);
        Self::load_checked(&insns, "vswitch_xsk_split", frags)
    }

    /// Loads `bpf_redirect_map(devs, ctx->ingress_ifindex, XDP_PASS)`: each frame leaves
    /// through the device `map` names for the device it arrived on (`ndo_xdp_xmit`; a veth
    /// needs NAPI on its peer for that — an XDP program or GRO on — or the frames are dropped),
    /// and goes to the kernel stack when the map names none.
    ///
    /// # Errors
    /// As [`load_redirect`](Self::load_redirect).
    pub fn load_device_redirect(map: &DevMap) -> Result<Self, BpfError> {
        let insns = redirect_program_by(map.fd.as_raw_fd(), XDP_MD_INGRESS_IFINDEX);
        Self::load_checked(&insns, "vswitch_dev", false)
    }

    /// Loads a live transmitter: every frame it runs on leaves through device `ifindex`
    /// (`bpf_redirect`; the device's `ndo_xdp_xmit`, which a veth has only while its peer
    /// has NAPI — an XDP program or GRO on — and a tap always), with its UDP source port,
    /// stamp and checksum rewritten per `sweep` (see `live_tx_program`). The flow counter lives in a
    /// map of its own: one program per sending thread.
    ///
    /// # Errors
    /// As [`load_redirect`](Self::load_redirect); `EINVAL` for a sweep that leaves the ports.
    pub fn load_live_tx(ifindex: u32, sweep: PortSweep) -> Result<Self, BpfError> {
        if sweep.flows == 0 || u32::from(sweep.first) + sweep.flows - 1 > u32::from(u16::MAX) {
            return Err(BpfError {
                what: "load live transmitter",
                source: io::Error::from_raw_os_error(libc::EINVAL),
                log: None,
            });
        }
        // One slot: the next flow (`u32`, then 4 bytes of padding) and sequence number (`u64`).
        let next = create_map(
            BPF_MAP_TYPE_ARRAY,
            16,
            1,
            "pktgen_next",
            "create flow counter",
        )?;
        let insns = live_tx_program(ifindex, next.as_raw_fd(), sweep);
        // The program holds the map from here on; its fd can go.
        Self::load_checked(&insns, "pktgen_live", false)
    }

    /// Runs the program `repeat` times on copies of `frame`, sending what it redirects
    /// (`BPF_PROG_TEST_RUN` with `BPF_F_TEST_XDP_LIVE_FRAMES`: the kernel sends them in
    /// batches of 64 and runs the receiving device's NAPI between batches, on this CPU). A
    /// frame the device refuses (a full queue, a veth peer without NAPI) is dropped by the
    /// kernel without a count here: the device's counters tell.
    ///
    /// # Errors
    /// `EINTR` when a signal came first (part of `repeat` went out), `EINVAL` for a frame
    /// shorter than an Ethernet header or longer than a page's room, …
    pub fn send_live(&self, frame: &[u8], repeat: u32) -> io::Result<()> {
        self.run_test(frame, &mut [], repeat, BPF_F_TEST_XDP_LIVE_FRAMES)
            .map(|_| ())
    }

    /// Whether this kernel runs XDP programs on live frames ([`send_live`](Self::send_live)):
    /// a program that drops every frame is run once on one, which sends nothing. Some kernel
    /// builds refuse every such run with `EPERM` (this project's 6.18 hosts since 2026-12),
    /// whoever asks; then `Ok(false)`.
    ///
    /// # Errors
    /// Loading the probe's program failed (no `CAP_BPF`), or the run failed otherwise.
    pub fn live_frames_allowed() -> io::Result<bool> {
        // r0 = XDP_DROP; exit
        let drop = [Insn::new(0xb7, 0, 0, 0, 1), Insn::new(0x95, 0, 0, 0, 0)];
        let prog = Self::load_checked(&drop, "vswitch_probe", false).map_err(|e| e.source)?;
        match prog.send_live(&[0xff; 60], 1) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn load_checked(insns: &[Insn], name: &str, frags: bool) -> Result<Self, BpfError> {
        match Self::load(insns, name, frags, None) {
            Ok(fd) => Ok(Self { fd, frags }),
            Err(source) => {
                // Load again with the verifier log on, to say why.
                let mut log = vec![0u8; VERIFIER_LOG_SIZE];
                let log = match Self::load(insns, name, frags, Some(&mut log)) {
                    Ok(_) => None,
                    Err(_) => {
                        let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
                        let text = String::from_utf8_lossy(&log[..end]).trim_end().to_owned();
                        (!text.is_empty()).then_some(text)
                    }
                };
                Err(BpfError {
                    what: "load XDP program",
                    source,
                    log,
                })
            }
        }
    }

    fn load(
        insns: &[Insn],
        name: &str,
        frags: bool,
        log: Option<&mut [u8]>,
    ) -> io::Result<OwnedFd> {
        const LICENSE: &[u8] = b"GPL\0";
        let (log_level, log_size, log_buf) = match log {
            Some(buf) => (1, buf.len() as u32, buf.as_mut_ptr() as u64),
            None => (0, 0, 0),
        };
        let mut attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_XDP,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: LICENSE.as_ptr() as u64,
            log_level,
            log_size,
            log_buf,
            prog_flags: if frags { BPF_F_XDP_HAS_FRAGS } else { 0 },
            prog_name: obj_name(name),
            expected_attach_type: BPF_XDP,
            ..Default::default()
        };
        // SAFETY: `attr` is the PROG_LOAD layout; `insns` (insn_cnt entries of 8 bytes), the
        // NUL-terminated license and the log buffer (log_size bytes, writable) all outlive the
        // call.
        let rc = unsafe { sys_bpf(BPF_PROG_LOAD, &mut attr) }?;
        Ok(owned(rc))
    }

    /// Runs the program once on `frame` (`BPF_PROG_TEST_RUN`; nothing is sent) and returns
    /// its verdict (`XDP_PASS` = 2, `XDP_REDIRECT` = 4, …). The frame arrives on the calling
    /// thread's namespace's loopback device (ifindex 1, the kernel's choice for test runs:
    /// a chosen device must have registered XDP receive queues).
    ///
    /// # Errors
    /// `EINVAL` for a frame shorter than an Ethernet header.
    pub fn test_run(&self, frame: &[u8]) -> io::Result<u32> {
        self.test_run_out(frame, &mut [])
            .map(|(verdict, _)| verdict)
    }

    /// [`test_run`](Self::test_run) that also returns the frame as the program left it, with
    /// any XDP metadata it added in front: the verdict and the bytes written to `out` (the
    /// call fails with `ENOSPC` when `out` is too short; an empty `out` asks for nothing).
    ///
    /// # Errors
    /// As [`test_run`](Self::test_run); `ENOSPC` when `out` cannot hold the result.
    pub fn test_run_out(&self, frame: &[u8], out: &mut [u8]) -> io::Result<(u32, usize)> {
        self.run_test(frame, out, 1, 0)
    }

    /// `BPF_PROG_TEST_RUN` of `frame`, `repeat` times, with `flags`: the verdict and the bytes
    /// of the result written to `out` (an empty `out` asks for none, as live frames must).
    fn run_test(
        &self,
        frame: &[u8],
        out: &mut [u8],
        repeat: u32,
        flags: u32,
    ) -> io::Result<(u32, usize)> {
        let len =
            u32::try_from(frame.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
        let ctx = XdpMd {
            data_end: len,
            ..Default::default()
        };
        let mut attr = TestRunAttr {
            prog_fd: self.fd.as_raw_fd() as u32,
            data_size_in: len,
            data_in: frame.as_ptr() as u64,
            data_size_out: out.len() as u32,
            data_out: if out.is_empty() {
                0
            } else {
                out.as_mut_ptr() as u64
            },
            repeat,
            ctx_size_in: size_of::<XdpMd>() as u32,
            ctx_in: (&raw const ctx) as u64,
            flags,
            ..Default::default()
        };
        // SAFETY: `attr` is the PROG_TEST_RUN layout; the kernel reads `len` bytes of `frame`
        // and the `XdpMd` context, and writes at most `data_size_out` bytes to `out` (none
        // when its pointer is null), all alive across the call; no ctx_out is given.
        unsafe { sys_bpf(BPF_PROG_TEST_RUN, &mut attr) }?;
        let written = if out.is_empty() {
            0
        } else {
            (attr.data_size_out as usize).min(out.len())
        };
        Ok((attr.retval, written))
    }

    /// True when loaded with `BPF_F_XDP_HAS_FRAGS`.
    pub fn has_frags(&self) -> bool {
        self.frags
    }

    /// The kernel's id of the program (as `ip link` and `bpftool` show it).
    ///
    /// # Errors
    /// The error of `BPF_OBJ_GET_INFO_BY_FD`.
    pub fn id(&self) -> io::Result<u32> {
        obj_id(self.fd.as_fd())
    }
}

impl AsFd for XdpProgram {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// How an XDP program is attached to a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XdpAttachMode {
    /// Native, in the driver (`XDP_FLAGS_DRV_MODE`).
    Driver,
    /// Generic, on the skb path (`XDP_FLAGS_SKB_MODE`).
    Skb,
}

impl XdpAttachMode {
    /// The `XDP_FLAGS_*_MODE` flag.
    pub fn flags(self) -> u32 {
        match self {
            Self::Driver => netdev::XDP_FLAGS_DRV_MODE,
            Self::Skb => netdev::XDP_FLAGS_SKB_MODE,
        }
    }

    /// Name as `ip link` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Driver => "native",
            Self::Skb => "generic",
        }
    }
}

impl fmt::Display for XdpAttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An XDP program attached to a device by `bpf_link`; dropping it detaches the program.
#[derive(Debug)]
pub struct XdpLink {
    fd: OwnedFd,
    ifindex: u32,
    mode: XdpAttachMode,
}

impl XdpLink {
    /// Attaches `prog` to `ifindex` in `mode`.
    ///
    /// A program left on the device by a netlink attach (`ip link set … xdp`, a crashed tool)
    /// makes the kernel refuse the link with `EBUSY` (same mode) or `EEXIST` (the other mode);
    /// such a leftover is detached through netlink, with a warning, and the attach is retried
    /// once. A program owned by another live `bpf_link` is never touched: the kernel refuses to
    /// detach it through netlink and the original error is returned.
    ///
    /// # Errors
    /// The `BPF_LINK_CREATE` error (e.g. `ERANGE` on a veth whose peer MTU is too large for
    /// XDP, `EOPNOTSUPP` in driver mode on a device without native XDP).
    pub fn attach(prog: &XdpProgram, ifindex: u32, mode: XdpAttachMode) -> Result<Self, BpfError> {
        match Self::create(prog, ifindex, mode) {
            Ok(link) => Ok(link),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::EEXIST)) => {
                if clear_netlink_leftovers(ifindex)? {
                    Self::create(prog, ifindex, mode)
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
        }
    }

    fn create(prog: &XdpProgram, ifindex: u32, mode: XdpAttachMode) -> Result<Self, BpfError> {
        let mut attr = LinkCreateAttr {
            prog_fd: prog.fd.as_raw_fd() as u32,
            target_ifindex: ifindex,
            attach_type: BPF_XDP,
            flags: mode.flags(),
        };
        // SAFETY: `attr` is the LINK_CREATE layout and holds no pointers.
        let rc = unsafe { sys_bpf(BPF_LINK_CREATE, &mut attr) }.map_err(|source| BpfError {
            what: "attach XDP program (bpf_link)",
            source,
            log: None,
        })?;
        Ok(Self {
            fd: owned(rc),
            ifindex,
            mode,
        })
    }

    /// The device the program is attached to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The mode it is attached in.
    pub fn mode(&self) -> XdpAttachMode {
        self.mode
    }
}

impl AsFd for XdpLink {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Detaches every netlink-attached XDP program of `ifindex`; returns true if one was removed.
/// Programs held by a live `bpf_link` are left alone (the kernel answers `EBUSY`).
fn clear_netlink_leftovers(ifindex: u32) -> Result<bool, BpfError> {
    let st = netdev::xdp_query(ifindex).map_err(|source| BpfError {
        what: "query XDP state (rtnetlink)",
        source,
        log: None,
    })?;
    let mut cleared = false;
    for mode in st.modes() {
        match netdev::xdp_detach_netlink(ifindex, mode) {
            Ok(()) => {
                tracing::warn!(
                    ifindex,
                    mode_flags = mode,
                    drv_prog_id = st.drv_prog_id,
                    skb_prog_id = st.skb_prog_id,
                    "detached a leftover netlink-attached XDP program"
                );
                cleared = true;
            }
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                tracing::debug!(
                    ifindex,
                    mode_flags = mode,
                    "XDP program there is a live bpf_link"
                );
            }
            Err(source) => {
                return Err(BpfError {
                    what: "detach leftover XDP program (rtnetlink)",
                    source,
                    log: None,
                });
            }
        }
    }
    Ok(cleared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redirect_program_encodes_as_documented() {
        let p = redirect_program(7);
        let words: Vec<u64> = p
            .iter()
            .map(|i| {
                u64::from(i.code)
                    | u64::from(i.regs) << 8
                    | u64::from(i.off as u16) << 16
                    | u64::from(i.imm as u32) << 32
            })
            .collect();
        assert_eq!(size_of::<Insn>(), 8);
        assert_eq!(
            words,
            vec![
                0x0000_0000_0010_1261,
                0x0000_0007_0000_1118,
                0,
                0x0000_0002_0000_03b7,
                0x0000_0033_0000_0085,
                0x0000_0000_0000_0095,
            ]
        );
    }

    #[test]
    fn attr_layouts_match_the_kernel() {
        assert_eq!(size_of::<MapCreateAttr>(), 44);
        assert_eq!(size_of::<ElemAttr>(), 32);
        assert_eq!(size_of::<ProgLoadAttr>(), 72);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, expected_attach_type), 68);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, prog_flags), 44);
        assert_eq!(size_of::<LinkCreateAttr>(), 16);
        assert_eq!(size_of::<InfoAttr>(), 16);
        assert_eq!(size_of::<TestRunAttr>(), 80);
        assert_eq!(std::mem::offset_of!(TestRunAttr, ctx_in), 48);
        assert_eq!(std::mem::offset_of!(TestRunAttr, flags), 64);
        assert_eq!(size_of::<XdpMd>(), 24);
    }

    #[test]
    fn object_names_are_truncated_and_terminated() {
        let n = obj_name("a_very_long_object_name");
        assert_eq!(&n[..15], b"a_very_long_obj");
        assert_eq!(n[15], 0);
    }

    #[test]
    fn the_redirect_program_passes_the_verifier() {
        if !testbed::require_privileges("the_redirect_program_passes_the_verifier") {
            return;
        }
        let map = XskMap::new(4).unwrap();
        let prog = XdpProgram::load_redirect(&map, false).unwrap();
        assert!(prog.id().unwrap() > 0);
        // No socket in the queue's slot: the frame goes to the kernel stack.
        assert_eq!(prog.test_run(&[0u8; 60]).unwrap(), XDP_PASS as u32);
        map.clear(3).unwrap();
        assert!(map.clear(9).is_err(), "slot 9 of a 4-slot map");
    }

    #[test]
    fn the_split_program_redirects_short_frames_with_the_pass_count_and_counts_the_rest() {
        if !testbed::require_privileges("the_split_program") {
            return;
        }
        // A socket in the slot of queue 0 (test runs arrive on queue 0), bound to a veth of a
        // container this test makes; nothing is attached to it, so no frame reaches it.
        let c = testbed::Container::veth("vsb", 1, "10.219.0.1").unwrap();
        let ifindex = netdev::ifindex(&c.port).unwrap();
        let xsk =
            crate::sys::xsk::Xsk::new(ifindex, 0, &crate::sys::xsk::XskConfig::default()).unwrap();
        let map = XskMap::new(1).unwrap();
        map.set(0, xsk.as_fd()).unwrap();
        const REDIRECT: u32 = 4;
        const PASS: u32 = XDP_PASS as u32;
        let passes = PassCounter::new().unwrap();
        assert_eq!(passes.get().unwrap(), 0);
        // What a redirected frame carries: its verdict and the count in front of it.
        let stamp = |prog: &XdpProgram, len: usize| {
            let mut out = [0u8; 256];
            let (verdict, n) = prog.test_run_out(&vec![0x5au8; len], &mut out).unwrap();
            assert_eq!(verdict, REDIRECT);
            assert_eq!(n, len + SPLIT_STAMP_LEN as usize, "the stamp and the frame");
            assert!(
                out[8..n].iter().all(|b| *b == 0x5a),
                "the frame is untouched"
            );
            u64::from_ne_bytes(out[..8].try_into().unwrap())
        };
        let mut count = 0;
        for frags in [false, true] {
            let prog = XdpProgram::load_split_redirect(&map, &passes, 100, frags).unwrap();
            assert_eq!(prog.has_frags(), frags);
            assert_eq!(stamp(&prog, 60), count);
            assert_eq!(stamp(&prog, 100), count, "at the limit");
            assert_eq!(
                passes.get().unwrap(),
                count,
                "redirected frames are not counted"
            );
            assert_eq!(prog.test_run(&[0u8; 101]).unwrap(), PASS);
            assert_eq!(prog.test_run(&[0u8; 4000]).unwrap(), PASS);
            count += 2;
            assert_eq!(passes.get().unwrap(), count);
            assert_eq!(stamp(&prog, 60), count, "two frames passed before this one");
        }
        // An empty slot: every frame goes to the kernel stack as it came (the stamp taken
        // off again), and is counted.
        map.clear(0).unwrap();
        let prog = XdpProgram::load_split_redirect(&map, &passes, 100, false).unwrap();
        for len in [60, 100, 200] {
            let frame: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut out = [0u8; 256];
            let (verdict, n) = prog.test_run_out(&frame, &mut out).unwrap();
            assert_eq!(verdict, PASS);
            assert_eq!(&out[..n], &frame[..], "a passed frame is untouched");
        }
        assert_eq!(passes.get().unwrap(), count + 3);
    }

    #[test]
    fn the_device_redirect_program_sends_a_mapped_device_s_frames_and_passes_the_rest() {
        if !testbed::require_privileges("the_device_redirect_program") {
            return;
        }
        // The second instruction differs from the queue program only in the field it reads.
        let p = redirect_program_by(7, XDP_MD_INGRESS_IFINDEX);
        assert_eq!((p[0].code, p[0].off), (0x61, 12));
        assert_eq!(&p[1..], &redirect_program(7)[1..]);
        let map = DevMap::new(8).unwrap();
        let prog = XdpProgram::load_device_redirect(&map).unwrap();
        let frame = [0xffu8; 60];
        // Test runs arrive on loopback, ifindex 1.
        assert_eq!(prog.test_run(&frame).unwrap(), XDP_PASS as u32);
        map.set(1, 1).unwrap();
        assert_eq!(prog.test_run(&frame).unwrap(), 4, "XDP_REDIRECT");
        assert!(
            prog.test_run(&frame[..10]).is_err(),
            "shorter than a header"
        );
        assert!(map.set(1, u32::MAX).is_err(), "no such device");
    }

    /// A UDP frame from 10.219.0.2:`sport` to `dst_mac`/10.219.0.1:9 (IPv4) or between
    /// fd00::2 and fd00::1 (IPv6), 64 bytes of payload, with its checksums.
    fn udp_frame(dst_mac: [u8; 6], sport: u16, v6: bool) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xee], dst_mac);
        let b = if v6 {
            let mut src = [0u8; 16];
            src[0] = 0xfd;
            let mut dst = src;
            src[15] = 2;
            dst[15] = 1;
            b.ipv6(src, dst, 64)
        } else {
            b.ipv4([10, 219, 0, 2], [10, 219, 0, 1], 64)
        }
        .udp(sport, 9);
        let payload = [0x5au8; 64];
        let mut f = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut f, &payload).unwrap();
        f
    }

    /// (source port, checksum in the frame, checksum it should have) of a UDP frame.
    fn udp_check(frame: &[u8]) -> (u16, u16, u16) {
        let p = etherparse::SlicedPacket::from_ethernet(frame).unwrap();
        let Some(etherparse::TransportSlice::Udp(u)) = p.transport else {
            panic!("not UDP")
        };
        let h = u.to_header();
        let want = match p.net {
            Some(etherparse::NetSlice::Ipv4(ip)) => h
                .calc_checksum_ipv4(&ip.header().to_header(), u.payload())
                .unwrap(),
            Some(etherparse::NetSlice::Ipv6(ip)) => h
                .calc_checksum_ipv6(&ip.header().to_header(), u.payload())
                .unwrap(),
            _ => panic!("not IP"),
        };
        (h.source_port, h.checksum, want)
    }

    fn sweep_of(frame: &[u8], flows: u32, v6: bool) -> PortSweep {
        let udp_off = 14 + if v6 { 40 } else { 20 };
        PortSweep {
            flows,
            first: u16::from_be_bytes([frame[udp_off], frame[udp_off + 1]]),
            udp_off: udp_off as u16,
            csum: u16::from_be_bytes([frame[udp_off + 6], frame[udp_off + 7]]),
            stamp: None,
        }
    }

    #[test]
    fn the_live_transmitter_sweeps_source_ports_with_valid_checksums() {
        if !testbed::require_privileges("the_live_transmitter_sweeps_source_ports") {
            return;
        }
        const REDIRECT: u32 = 4;
        for v6 in [false, true] {
            // 65533..=65535: the last flow ends at the last port.
            for first in [1000u16, 65533] {
                let frame = udp_frame([2, 0, 0, 0, 0, 1], first, v6);
                let prog = XdpProgram::load_live_tx(1, sweep_of(&frame, 3, v6)).unwrap();
                let mut out = vec![0u8; frame.len()];
                for n in 0..7u16 {
                    // Not live: the program runs once and the frame comes back.
                    let (verdict, len) = prog.test_run_out(&frame, &mut out).unwrap();
                    assert_eq!((verdict, len), (REDIRECT, frame.len()));
                    let (sport, have, want) = udp_check(&out);
                    assert_eq!(sport, first + n % 3, "flow {n} (v6 {v6})");
                    assert_eq!(have, want, "checksum of flow {n} (v6 {v6})");
                }
            }
        }
        // With a stamp (pktgen's payload: 4 bytes, then the sequence number and timestamp,
        // zero in the frame given): numbers from 0 up, a clock that moves, valid checksums.
        for v6 in [false, true] {
            for csum in [true, false] {
                let mut frame = udp_frame([2, 0, 0, 0, 0, 1], 1000, v6);
                let udp = 14 + if v6 { 40 } else { 20 };
                let pay = udp + 8;
                frame[pay..].fill(0);
                let mut sweep = sweep_of(&frame, 2, v6);
                if !csum {
                    if v6 {
                        continue; // IPv6 has no frames without a checksum
                    }
                    frame[udp + 6..udp + 8].fill(0);
                    sweep.csum = 0;
                } else {
                    // The checksum of the zeroed payload.
                    let (_, _, want) = udp_check(&frame);
                    frame[udp + 6..udp + 8].copy_from_slice(&want.to_be_bytes());
                    sweep.csum = want;
                }
                sweep.stamp = Some((pay + 4) as u16);
                let prog = XdpProgram::load_live_tx(1, sweep).unwrap();
                let mut out = vec![0u8; frame.len()];
                let mut last_ts = 0;
                for n in 0..5u64 {
                    prog.test_run_out(&frame, &mut out).unwrap();
                    let (sport, have, want) = udp_check(&out);
                    assert_eq!(sport, 1000 + (n % 2) as u16);
                    assert_eq!(have, if csum { want } else { 0 }, "v6 {v6} frame {n}");
                    let seq = u64::from_be_bytes(out[pay + 4..pay + 12].try_into().unwrap());
                    let mut ts = [0u8; 8];
                    ts[2..].copy_from_slice(&out[pay + 12..pay + 18]);
                    let ts = u64::from_be_bytes(ts);
                    assert_eq!(seq, n);
                    assert!(ts > last_ts, "the clock moves: {ts} after {last_ts}");
                    last_ts = ts;
                    assert!(
                        out[pay + 18..].iter().all(|b| *b == 0),
                        "nothing else written"
                    );
                }
            }
        }
        // IPv4 without a checksum keeps none.
        let mut frame = udp_frame([2, 0, 0, 0, 0, 1], 1000, false);
        frame[40..42].copy_from_slice(&[0, 0]);
        let prog = XdpProgram::load_live_tx(1, sweep_of(&frame, 5, false)).unwrap();
        let mut out = vec![0u8; frame.len()];
        prog.test_run_out(&frame, &mut out).unwrap();
        let (sport, have, _) =
            udp_check(&prog.test_run_out(&frame, &mut out).map(|_| out).unwrap());
        assert_eq!((sport, have), (1001, 0));
        // One flow: the frame goes out as it is.
        let frame = udp_frame([2, 0, 0, 0, 0, 1], 7, false);
        let prog = XdpProgram::load_live_tx(1, sweep_of(&frame, 1, false)).unwrap();
        let mut out = vec![0u8; frame.len()];
        assert_eq!(
            prog.test_run_out(&frame, &mut out).unwrap(),
            (REDIRECT, frame.len())
        );
        assert_eq!(out, frame);
        // A sweep past the last port is refused.
        let sweep = PortSweep {
            first: 65535,
            ..sweep_of(&frame, 2, false)
        };
        let e = XdpProgram::load_live_tx(1, sweep).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    }

    #[test]
    fn the_live_transmitter_sends_through_a_veth_whose_peer_has_napi() {
        if !testbed::require_privileges("the_live_transmitter_sends_through_a_veth") {
            return;
        }
        let c = testbed::Container::veth("vsl", 1, "10.219.0.1").unwrap();
        let mut mac = [0u8; 6];
        for (b, h) in mac.iter_mut().zip(c.mac.split(':')) {
            *b = u8::from_str_radix(h, 16).unwrap();
        }
        let udp = |field: &str| -> u64 {
            let out = c.ns.exec("cat", &["/proc/net/snmp"]).unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let mut lines = text.lines().filter(|l| l.starts_with("Udp:"));
            let (names, values) = (lines.next().unwrap(), lines.next().unwrap());
            let i = names.split_whitespace().position(|n| n == field).unwrap();
            values.split_whitespace().nth(i).unwrap().parse().unwrap()
        };
        let frame = udp_frame(mac, 2000, false);
        let ifindex = netdev::ifindex(&c.port).unwrap();
        let prog = XdpProgram::load_live_tx(ifindex, sweep_of(&frame, 100, false)).unwrap();
        let before = udp("NoPorts");
        if !XdpProgram::live_frames_allowed().unwrap() {
            // A kernel that refuses live frames refuses this program's too, and nothing
            // reaches the container.
            let e = prog.send_live(&frame, 1000).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}");
            c.ns.exec("ethtool", &["-K", "eth0", "gro", "on"]).unwrap();
            assert!(prog.send_live(&frame, 1000).is_err());
            std::thread::sleep(std::time::Duration::from_millis(100));
            assert_eq!(udp("NoPorts"), before, "refused, yet sent");
            return;
        }
        // Without NAPI on the peer the device refuses every frame (dropped, not counted here).
        prog.send_live(&frame, 1000).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert_eq!(udp("NoPorts"), before, "sent without NAPI on the peer");
        // GRO on puts the peer in NAPI mode: every frame arrives, none with a bad checksum
        // (UDP to a closed port: counted in NoPorts after the checksum is checked).
        c.ns.exec("ethtool", &["-K", "eth0", "gro", "on"]).unwrap();
        let errors = udp("InCsumErrors");
        prog.send_live(&frame, 1000).unwrap();
        assert!(
            testbed::wait_until(std::time::Duration::from_secs(2), || udp("NoPorts")
                >= before + 1000),
            "{} of 1000 arrived",
            udp("NoPorts") - before
        );
        assert_eq!(udp("NoPorts"), before + 1000);
        assert_eq!(udp("InCsumErrors"), errors);
    }
}
