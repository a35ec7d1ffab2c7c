//! epoll + eventfd: how an idle worker sleeps until a port has frames or someone wakes it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// An epoll instance with an eventfd registered for explicit wake-ups.
#[derive(Debug)]
pub struct Poller {
    epoll: OwnedFd,
    wake: OwnedFd,
}

const WAKE_TOKEN: u64 = u64::MAX;

impl Poller {
    /// Creates the epoll instance and its wake-up eventfd.
    ///
    /// # Errors
    /// `epoll_create1` or `eventfd` failed.
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain syscall without pointers; the result is checked.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `ep` is a fresh fd we own.
        let epoll = unsafe { OwnedFd::from_raw_fd(ep) };
        // SAFETY: plain syscall without pointers; the result is checked.
        let ev = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if ev < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `ev` is a fresh fd we own.
        let wake = unsafe { OwnedFd::from_raw_fd(ev) };
        let p = Self { epoll, wake };
        p.ctl(libc::EPOLL_CTL_ADD, p.wake.as_raw_fd(), WAKE_TOKEN)?;
        Ok(p)
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: both fds are valid, `ev` outlives the call.
        let rc = unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut ev) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Watches `fd` for readability.
    ///
    /// # Errors
    /// `epoll_ctl` failed.
    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token)
    }

    /// Stops watching `fd` (errors ignored: the fd may already be closed).
    pub fn remove(&self, fd: RawFd) {
        let _ = self.ctl(libc::EPOLL_CTL_DEL, fd, 0);
    }

    /// Sleeps until a watched fd is readable, [`Poller::waker`] is called, or `timeout` passes.
    pub fn wait(&self, timeout: Duration) {
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 16];
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: `evs` is a valid array of 16 events and we pass its length.
        let n = unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), evs.as_mut_ptr(), 16, ms) };
        for ev in evs.iter().take(usize::try_from(n).unwrap_or(0)) {
            if ev.u64 == WAKE_TOKEN {
                let mut buf = [0u8; 8];
                // SAFETY: reading 8 bytes into an 8-byte buffer from our own eventfd.
                unsafe { libc::read(self.wake.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
            }
        }
    }

    /// A handle other threads use to wake this poller.
    ///
    /// # Errors
    /// `dup` of the eventfd failed.
    pub fn waker(&self) -> io::Result<Waker> {
        Ok(Waker {
            fd: self.wake.try_clone()?,
        })
    }
}

/// Wakes a sleeping [`Poller`].
#[derive(Debug)]
pub struct Waker {
    fd: OwnedFd,
}

impl Waker {
    /// Wakes the poller (cheap; a no-op if it is already awake and will poll anyway).
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writing 8 bytes from a valid u64 to our eventfd.
        unsafe { libc::write(self.fd.as_raw_fd(), (&raw const one).cast(), 8) };
    }
}
