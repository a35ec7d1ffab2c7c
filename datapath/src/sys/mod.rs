//! The only module of the crate that may use `unsafe`: thin, typed wrappers over syscalls, rings
//! and mmap. Every `unsafe` block carries a `// SAFETY:` comment; everything exported is safe.
#![allow(unsafe_code)]

pub mod bpf;
pub mod caps;
pub mod cpu;
pub mod ethtool;
pub mod linkmon;
mod mmap;
pub mod netdev;
pub mod packet;
pub mod poller;
pub mod tpacket;
pub mod tun;
pub mod uring;
pub mod xsk;

use std::io;
use std::os::fd::RawFd;

/// The kick of a socket's transmit ring (AF_XDP, `TPACKET` rings): `sendto(fd, NULL, 0,
/// MSG_DONTWAIT, NULL, 0)` as the raw system call; returns what the call returns (the bytes a
/// packet socket's ring sent). The frame path calls the kernel directly rather than through
/// libc's `sendto`, `send`, `read`, `write` or `writev`: those are cancellation points, and
/// switching asynchronous cancellation off and on around each call cost ~1 % of an AF_XDP
/// forwarding core and ~9 % of a tap worker's samples (two calls per frame). Nothing here is
/// ever cancelled.
fn kick_sendto(fd: RawFd) -> io::Result<usize> {
    // SAFETY: a zero-length send with no buffer and no address: the kernel reads no user
    // memory for it (a ring's frames are in the ring).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sendto,
            fd,
            std::ptr::null::<libc::c_void>(),
            0usize,
            libc::MSG_DONTWAIT,
            std::ptr::null::<libc::sockaddr>(),
            0 as libc::socklen_t,
        )
    };
    syscall_result(rc)
}

/// A raw system call's return (`libc::syscall`: -1 and `errno` on failure) as an `io::Result`.
fn syscall_result(rc: libc::c_long) -> io::Result<usize> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(usize::try_from(rc).unwrap_or(0))
    }
}
