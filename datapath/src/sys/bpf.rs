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
/// `BPF_ANY` map update flag.
const BPF_ANY: u64 = 0;
/// `BPF_PSEUDO_MAP_FD`: the `ld_imm64` immediate is a map fd.
const BPF_PSEUDO_MAP_FD: u8 = 1;
/// `BPF_FUNC_map_lookup_elem`.
const BPF_FUNC_MAP_LOOKUP_ELEM: i32 = 1;
/// `BPF_FUNC_redirect_map`.
const BPF_FUNC_REDIRECT_MAP: i32 = 51;
/// `BPF_FUNC_xdp_adjust_meta`.
const BPF_FUNC_XDP_ADJUST_META: i32 = 54;
/// `XDP_PASS`.
const XDP_PASS: i32 = 2;
/// `offsetof(struct xdp_md, ingress_ifindex)`.
const XDP_MD_INGRESS_IFINDEX: i16 = 12;
/// `offsetof(struct xdp_md, data)`.
const XDP_MD_DATA: i16 = 0;
/// `offsetof(struct xdp_md, data_end)`.
const XDP_MD_DATA_END: i16 = 4;
/// `offsetof(struct xdp_md, data_meta)`.
const XDP_MD_DATA_META: i16 = 8;
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
/// the count into the metadata of every frame it redirects, so that the receiver can put the
/// frames of the socket and of the kernel stack back in the order they arrived in.
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

/// Bytes of metadata the split program puts before each frame it redirects: the pass count
/// (a native-endian `u64`), which copy-mode AF_XDP copies into the chunk with the frame.
pub const SPLIT_META_LEN: u32 = 8;

/// `ld_imm64` of a map fd: two instruction slots.
fn load_map(dst: u8, map_fd: i32) -> [Insn; 2] {
    [
        Insn::new(0x18, dst, BPF_PSEUDO_MAP_FD, 0, map_fd),
        Insn::new(0, 0, 0, 0, 0),
    ]
}

/// The split program: frames of at most `max_len` bytes go to the socket of their queue,
/// longer ones to the kernel stack, and the receiver can restore the order between the two:
///
/// ```text
/// count = &passes[0]                                      (NULL never: an array's slot)
/// if frame is longer than max_len: goto pass
/// if bpf_xdp_adjust_meta(ctx, -8) != 0: goto pass        (no room: to the stack, in order)
/// meta = *count                                           (frames passed before this one)
/// if bpf_redirect_map(xsks, ctx->rx_queue_index, XDP_PASS) != XDP_PASS: return it
/// pass: *count += 1 (atomic); return XDP_PASS
/// ```
///
/// Every frame that reaches the stack is counted, including one whose queue has no socket.
/// (In generic mode with `BPF_F_XDP_HAS_FRAGS` a multi-buffer frame shows its first buffer
/// here, which for a frame longer than a page's worth is still longer than `max_len`.)
fn split_program(xsks_fd: i32, passes_fd: i32, max_len: u16) -> [Insn; 38] {
    // Instruction indexes the jumps below name (offsets are relative to the next one).
    const PASS: i16 = 13;
    const SHORT: i16 = 17;
    const UNCOUNTED: i16 = 36;
    let [p0, p1] = load_map(1, passes_fd);
    let [x0, x1] = load_map(1, xsks_fd);
    [
        // 0: r6 = ctx (kept across the calls)
        Insn::new(0xbf, 6, 1, 0, 0),
        // 1-6: r0 = bpf_map_lookup_elem(passes, &0) (key on the stack at r10 - 4)
        Insn::new(0x62, 10, 0, -4, 0),
        Insn::new(0xbf, 2, 10, 0, 0),
        Insn::new(0x07, 2, 0, 0, -4),
        p0,
        p1,
        Insn::new(0x85, 0, 0, 0, BPF_FUNC_MAP_LOOKUP_ELEM),
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
        // SHORT (17-20): if bpf_xdp_adjust_meta(ctx, -8) != 0 goto PASS
        Insn::new(0xbf, 1, 6, 0, 0),
        Insn::new(0xb7, 2, 0, 0, -(SPLIT_META_LEN as i32)),
        Insn::new(0x85, 0, 0, 0, BPF_FUNC_XDP_ADJUST_META),
        Insn::new(0x55, 0, 0, PASS - 21, 0),
        // 21: r8 = *(u64 *)(r7 + 0)
        Insn::new(0x79, 8, 7, 0, 0),
        // 22-26: r2 = ctx->data_meta; r3 = ctx->data; if r2 + 8 > r3 goto PASS
        Insn::new(0x61, 2, 6, XDP_MD_DATA_META, 0),
        Insn::new(0x61, 3, 6, XDP_MD_DATA, 0),
        Insn::new(0xbf, 4, 2, 0, 0),
        Insn::new(0x07, 4, 0, 0, SPLIT_META_LEN as i32),
        Insn::new(0x2d, 4, 3, PASS - 27, 0),
        // 27: *(u64 *)(r2 + 0) = r8
        Insn::new(0x7b, 2, 8, 0, 0),
        // 28-32: r0 = bpf_redirect_map(xsks, ctx->rx_queue_index, XDP_PASS)
        Insn::new(0x61, 2, 6, XDP_MD_RX_QUEUE_INDEX, 0),
        x0,
        x1,
        Insn::new(0xb7, 3, 0, 0, XDP_PASS),
        Insn::new(0x85, 0, 0, 0, BPF_FUNC_REDIRECT_MAP),
        // 33-35: if r0 != XDP_PASS goto exit; goto PASS (no socket: counted); exit
        Insn::new(0x55, 0, 0, 1, XDP_PASS),
        Insn::new(0x05, 0, 0, PASS - 35, 0),
        Insn::new(0x95, 0, 0, 0, 0),
        // UNCOUNTED (36-37): return XDP_PASS
        Insn::new(0xb7, 0, 0, 0, XDP_PASS),
        Insn::new(0x95, 0, 0, 0, 0),
    ]
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
    /// and every frame it redirects carries in [`SPLIT_META_LEN`] bytes of XDP metadata the
    /// count at the time (see `split_program`'s outline; copy-mode AF_XDP puts them right
    /// before the frame in its chunk). `frags` as in [`load_redirect`](Self::load_redirect);
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
            repeat: 1,
            ctx_size_in: size_of::<XdpMd>() as u32,
            ctx_in: (&raw const ctx) as u64,
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
        // What a redirected frame carries: its verdict and the count in its metadata.
        let stamp = |prog: &XdpProgram, len: usize| {
            let mut out = [0u8; 256];
            let (verdict, n) = prog.test_run_out(&vec![0x5au8; len], &mut out).unwrap();
            assert_eq!(verdict, REDIRECT);
            assert_eq!(
                n,
                len + SPLIT_META_LEN as usize,
                "the frame and its metadata"
            );
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
        // An empty slot: every frame goes to the kernel stack, and is counted.
        map.clear(0).unwrap();
        let prog = XdpProgram::load_split_redirect(&map, &passes, 100, false).unwrap();
        assert_eq!(prog.test_run(&[0u8; 60]).unwrap(), PASS);
        assert_eq!(prog.test_run(&[0u8; 200]).unwrap(), PASS);
        assert_eq!(passes.get().unwrap(), count + 2);
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
}
