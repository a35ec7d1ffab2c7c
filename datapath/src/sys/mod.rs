//! The only module of the crate that may use `unsafe`: thin, typed wrappers over syscalls, rings
//! and mmap. Every `unsafe` block carries a `// SAFETY:` comment; everything exported is safe.
#![allow(unsafe_code)]

pub mod bpf;
pub mod cpu;
pub mod ethtool;
mod mmap;
pub mod netdev;
pub mod packet;
pub mod poller;
pub mod tpacket;
pub mod tun;
pub mod xsk;
