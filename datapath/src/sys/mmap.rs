//! A memory mapping owned by a value and unmapped on drop: the UMEM and rings of AF_XDP sockets
//! ([`super::xsk`]) and the transmit ring of packet sockets ([`super::tpacket`]).
//!
//! Thread-safety: the mapping moves with its owner (`Send`); it is not `Sync`, so only one
//! thread at a time reaches it through this value.

use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;

/// A memory mapping, unmapped on drop.
#[derive(Debug)]
pub(super) struct Mmap {
    /// First byte (page-aligned).
    pub(super) ptr: NonNull<u8>,
    /// Bytes mapped.
    pub(super) len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; nothing ties it to a thread.
unsafe impl Send for Mmap {}

impl Mmap {
    /// Maps `len` bytes: anonymous private memory when `fd` is None, else `fd` at `offset`,
    /// shared.
    pub(super) fn new(len: usize, fd: Option<RawFd>, offset: u64) -> io::Result<Self> {
        let (flags, fd) = match fd {
            Some(fd) => (libc::MAP_SHARED | libc::MAP_POPULATE, fd),
            None => (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1),
        };
        // SAFETY: a fresh mapping at an address of the kernel's choosing (no MAP_FIXED), so no
        // existing memory is affected; the result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                offset as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned NULL"))?;
        Ok(Self { ptr, len })
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping created by `Mmap::new` and owned by `self`;
        // every pointer into it is derived from a value that is dropped with or before it.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
