//! vswitch control plane: the wire protocol, the Unix-socket server and the blocking client.
//!
//! - [`proto`] — framing (4-byte big-endian length + UTF-8 JSON), the message envelope
//!   (`version`, `xid`, `type`, `body`), typed requests and replies, stable error codes. Pure
//!   functions over bytes (sans-IO), shared by the server, the client and the fuzz targets.
//! - [`server`] — a single-threaded mio event loop on the control socket that drives a
//!   [`datapath::switch::Switch`]: bounded sessions, bounded per-connection buffers, never blocks
//!   on a client.
//! - [`client`] — the blocking client used by `vsctl`, the CNI plugin and the tests.
//!
//! Everything here is slow path. The wire format is specified in `docs/control-protocol.md`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod client;
pub mod flowtext;
pub mod proto;
pub mod server;

mod bundle;
mod handler;
mod ratelimit;

pub use client::{Client, ClientConfig, ClientError};
pub use proto::{ErrorCode, ProtoError, Reply, Request};
pub use server::{Server, ServerConfig, ServerError};

/// Default path of the control socket.
pub const DEFAULT_SOCKET_PATH: &str = "/run/vswitch/vswitchd.sock";
