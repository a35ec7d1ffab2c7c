//! The control server: a single-threaded mio event loop on a Unix stream socket.
//!
//! One thread (the daemon's control thread) owns the [`Server`] and the
//! [`datapath::switch::Switch`] and calls [`Server::run`]. Every socket is non-blocking; the loop
//! never waits on a client:
//!
//! - at most [`ServerConfig::max_sessions`] sessions; an extra connection gets a `limit` error
//!   frame and is closed;
//! - a session's receive buffer holds at most one frame (`4 + max_frame_bytes` bytes); a header
//!   announcing more than `max_frame_bytes` gets a `bad_frame` error and the connection is closed
//!   without reading the body;
//! - replies are queued per session; a session whose queue is still above
//!   [`ServerConfig::max_queued_bytes`] when its next request is due (it sends but does not read)
//!   is disconnected;
//! - at most [`FRAMES_PER_WAKEUP`] requests of one session are handled per wake-up, so a busy
//!   client cannot starve the others.
//!
//! **Notifications.** A session that sent `subscribe` receives `packet_in`, `flow_removed` and
//! `port_status` messages (`xid` 0). After servicing the ready sessions, after housekeeping
//! (timeouts remove flows) and whenever a worker wakes the loop for a packet-in, the loop drains
//! at most [`EVENTS_PER_WAKEUP`] events from the switch, encodes each once and appends it to the
//! write queue of every session subscribed to its kind, unless that queue holds more than
//! [`ServerConfig::max_notify_queued_bytes`]: then the notification is dropped for that session
//! and counted in its `lost`. A controller that does not read therefore loses notifications but
//! is never disconnected for them and never makes the loop wait; its requests follow the rules
//! above.
//!
//! **Multi-message bundles.** `bundle_open`, `bundle_add`, `bundle_commit` and `bundle_discard`
//! work on bundles the session stages (module `bundle`); like subscriptions they are
//! per-session state, held by the server: closing a session discards its open bundles. Staged
//! bytes are bounded per session ([`ServerConfig::max_bundle_bytes`]) and for all sessions
//! together ([`ServerConfig::max_bundle_bytes_total`]).
//!
//! A malformed request gets an `error` reply and changes nothing; the session stays open unless
//! the framing itself is broken.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use datapath::switch::Switch;
use mio::net::{UnixListener, UnixStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use tracing::{debug, debug_span, info, warn};

use datapath::notify::Event;

use crate::bundle::{Bundles, StagingBudget};
use crate::handler::{Answer, Dump, Handler, port_desc};
use crate::proto::frame::{self, FrameStatus, HEADER_LEN};
use crate::proto::{
    BundleAddReply, DEFAULT_MAX_FRAME_BYTES, DecodeError, Decoded, EmptyReply, ErrorCode,
    ErrorReply, FieldValue, FlowRemovedEvent, MatchDesc, Notification, PacketInEvent,
    PortStatusEvent, ProtoError, Reply, Request, SubscribeReply, Subscription, decode_request,
    encode_notification, encode_reply, hex_encode, match_to_desc, with_lost,
};
use crate::ratelimit::RateLimit;

/// Requests of one session handled per wake-up before the others get their turn.
pub const FRAMES_PER_WAKEUP: usize = 64;

/// Events drained from the switch per loop iteration (a packet-in flood cannot starve requests:
/// sessions are serviced between batches).
pub const EVENTS_PER_WAKEUP: usize = 1024;

/// A dump in progress gets its next part encoded only while less than this waits in its
/// session's send queue: the queue holds at most this plus one part (a frame).
pub const DUMP_LOW_WATER: usize = 64 * 1024;

/// Parts of one session's dump encoded per wake-up before the others get their turn.
pub const DUMP_PARTS_PER_WAKEUP: usize = 8;

/// Longest path of a Unix socket (`sun_path` holds 108 bytes with the terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Longest `message` or `field` of an error reply (longer ones are cut).
const MAX_ERROR_TEXT: usize = 512;

/// Bytes read from a socket at once.
const READ_CHUNK: usize = 64 * 1024;

/// Bytes of unread input discarded before closing a connection (so that the peer reads the
/// error frame instead of a reset).
const DRAIN_ON_CLOSE: usize = 64 * 1024;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
/// The switch's watch on link changes ([`Switch::watch_links`]).
const LINKS: Token = Token(2);
const FIRST_SESSION: usize = 3;

/// Settings of the control server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// Path of the Unix socket. Default [`crate::DEFAULT_SOCKET_PATH`].
    pub path: PathBuf,
    /// Permission bits of the socket file. Default `0o660`.
    pub socket_mode: u32,
    /// Most sessions at once. Default 64.
    pub max_sessions: usize,
    /// Largest frame payload accepted and sent, bytes. Default 1 MiB.
    pub max_frame_bytes: usize,
    /// Reply bytes a session may have queued when its next request is due; above it, the
    /// session is disconnected. Default 4 MiB.
    pub max_queued_bytes: usize,
    /// Bytes a session may have queued for a notification to be added; with more, the
    /// notification is dropped for that session and counted in its `lost`. Capped at
    /// `max_queued_bytes` (notifications alone never get a session disconnected). Default 1 MiB.
    pub max_notify_queued_bytes: usize,
    /// Bytes one session's open multi-message bundles may cost (`bundle_add` payloads plus a
    /// fixed amount per staged op); a `bundle_add` beyond it gets `limit`. Default 128 MiB.
    pub max_bundle_bytes: usize,
    /// Bytes the open multi-message bundles of all sessions may cost together. Default 512 MiB.
    pub max_bundle_bytes_total: usize,
    /// Longest wait in the event loop (at most 1 s); bounds how late `shutdown` is noticed when
    /// nobody wakes the loop. Default 250 ms.
    pub poll_timeout: Duration,
    /// How often [`Switch::housekeeping`] runs. Default 1 s.
    pub housekeeping_interval: Duration,
    /// Daemon name and version reported by `hello`.
    pub daemon: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from(crate::DEFAULT_SOCKET_PATH),
            socket_mode: 0o660,
            max_sessions: 64,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_queued_bytes: 4 << 20,
            max_notify_queued_bytes: 1 << 20,
            max_bundle_bytes: 128 << 20,
            max_bundle_bytes_total: 512 << 20,
            poll_timeout: Duration::from_millis(250),
            housekeeping_interval: Duration::from_secs(1),
            daemon: format!("vswitchd {}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// Errors of the control server (start-up and event loop).
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Another daemon answers on the socket path.
    #[error("another vswitchd is running (socket {path} answers)")]
    AlreadyRunning {
        /// The socket path.
        path: PathBuf,
    },
    /// The socket path exists and is not a socket (it is left alone).
    #[error("{path} exists and is not a socket")]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// The socket's directory could let another user replace the socket.
    #[error("unsafe control socket directory {path}: {reason}")]
    UnsafeDirectory {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A setting is out of range.
    #[error("invalid server setting {field}: {reason}")]
    Config {
        /// The setting.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A file-system or socket operation failed.
    #[error("{what} {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The event loop failed.
    #[error("control event loop")]
    Poll(#[source] io::Error),
}

/// The locked `<socket>.lock` file of a server; the file is removed, while still locked, when
/// this is dropped.
#[derive(Debug)]
struct PathLock {
    _file: fs::File,
    path: PathBuf,
}

impl Drop for PathLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Wakes a running [`Server::run`] so that it looks at its shutdown flag at once.
#[derive(Clone, Debug)]
pub struct ShutdownWaker(Arc<Waker>);

impl ShutdownWaker {
    /// Wakes the event loop (set the shutdown flag first).
    ///
    /// # Errors
    /// The wake-up could not be signalled.
    pub fn wake(&self) -> io::Result<()> {
        self.0.wake()
    }
}

/// One client connection.
#[derive(Debug)]
struct Session {
    /// Number for logs.
    id: u64,
    stream: UnixStream,
    /// Received bytes not yet consumed (at most one frame plus a header).
    rbuf: Vec<u8>,
    /// Encoded frames to send; `wbuf[wpos..]` is pending.
    wbuf: Vec<u8>,
    wpos: usize,
    /// The peer closed its sending side.
    read_closed: bool,
    /// Close once the error frame queued last is (best effort) sent.
    closing: bool,
    /// The notifications it receives.
    sub: Subscription,
    /// Notifications dropped for it (queue above the notification bound).
    lost: u64,
    /// Its open multi-message bundles (discarded with the session).
    bundles: Bundles,
    /// The dump being sent (with its request's `xid`): its next requests wait until the last
    /// part is queued.
    dump: Option<(u64, Dump)>,
    /// Notifications held back while a dump is sent (a notification never comes between the
    /// parts of a multipart reply); they follow its last part.
    held: Vec<u8>,
}

/// What to do with a session after servicing it.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Keep,
    Close,
}

impl Session {
    fn new(id: u64, stream: UnixStream) -> Self {
        Self {
            id,
            stream,
            rbuf: Vec::new(),
            wbuf: Vec::new(),
            wpos: 0,
            read_closed: false,
            closing: false,
            sub: Subscription::default(),
            lost: 0,
            bundles: Bundles::default(),
            dump: None,
            held: Vec::new(),
        }
    }

    fn queued(&self) -> usize {
        self.wbuf.len() - self.wpos
    }

    /// Writes queued bytes until done or the socket is full.
    fn flush(&mut self) -> io::Result<()> {
        while self.wpos < self.wbuf.len() {
            match self.stream.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
            if self.wbuf.capacity() > READ_CHUNK {
                self.wbuf.shrink_to(READ_CHUNK);
            }
        } else if self.wpos > self.wbuf.len() / 2 {
            self.wbuf.drain(..self.wpos);
            self.wpos = 0;
        }
        Ok(())
    }

    /// Reads and discards what the peer already sent (bounded), so that closing does not turn
    /// into a reset that hides the error frame.
    fn drain_input(&mut self, scratch: &mut [u8]) {
        let mut left = DRAIN_ON_CLOSE;
        while left > 0 {
            let n = left.min(scratch.len());
            match self.stream.read(&mut scratch[..n]) {
                Ok(0) => break,
                Ok(n) => left = left.saturating_sub(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }
}

/// Cuts `s` to at most `max` bytes at a character boundary.
fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
}

/// Appends the frame of an error reply to `out`.
fn push_error(out: &mut Vec<u8>, xid: u64, error: ProtoError, max_frame_bytes: usize) {
    let mut reply = ErrorReply::from(error);
    truncate(&mut reply.message, MAX_ERROR_TEXT);
    if let Some(f) = reply.field.as_mut() {
        truncate(f, MAX_ERROR_TEXT);
    }
    let encoded = encode_reply(xid, &Reply::Error(reply))
        .and_then(|payload| frame::write(out, &payload, max_frame_bytes.max(4096)));
    if let Err(e) = encoded {
        // Cannot happen with the bounds above; never panic on the control path.
        warn!(error = %e, "could not encode an error reply");
    }
}

/// Appends the frame of `reply` (or of an error saying why it cannot be sent) to `out`;
/// false when that was an error.
fn push_reply(out: &mut Vec<u8>, xid: u64, reply: &Reply, max_frame_bytes: usize) -> bool {
    let framed =
        encode_reply(xid, reply).and_then(|payload| frame::write(out, &payload, max_frame_bytes));
    if let Err(e) = framed {
        push_error(out, xid, e, max_frame_bytes);
        return false;
    }
    true
}

/// Encodes and sends the next parts of the session's dump in progress: a part whenever less
/// than [`DUMP_LOW_WATER`] bytes wait to be sent, at most [`DUMP_PARTS_PER_WAKEUP`] parts.
/// True when parts are left and the socket would take more now (call again soon; otherwise
/// the socket's next writable event does).
///
/// `bound` is the notification bound: the notifications held back during the dump follow its
/// last part as far as the bound leaves room for them, as if they came then (the others are
/// dropped and counted in the session's `lost`).
fn pump(
    s: &mut Session,
    switch: &Switch,
    max_frame_bytes: usize,
    bound: usize,
) -> io::Result<bool> {
    for _ in 0..DUMP_PARTS_PER_WAKEUP {
        if s.dump.is_none() {
            break;
        }
        if s.queued() >= DUMP_LOW_WATER {
            s.flush()?;
            if s.queued() >= DUMP_LOW_WATER {
                // The client has not read: nothing more until it does.
                return Ok(false);
            }
        }
        let Some((xid, dump)) = s.dump.as_mut() else {
            break;
        };
        let part = dump.next_part(switch);
        // A part that cannot be sent ends the dump with its error.
        if !push_reply(&mut s.wbuf, *xid, &part, max_frame_bytes) || dump.finished() {
            s.dump = None;
            release_held(s, bound);
        }
    }
    s.flush()?;
    Ok(s.dump.is_some() && s.queued() < DUMP_LOW_WATER)
}

/// Queues the notifications held back during a dump, each only if the session's queue stays
/// within `bound` with it (the rule of a notification that comes now); the others are dropped
/// and counted in `lost`.
fn release_held(s: &mut Session, bound: usize) {
    let held = std::mem::take(&mut s.held);
    let mut rest = &held[..];
    while let FrameStatus::Complete { len } = frame::peek(rest, usize::MAX) {
        let framed = &rest[..HEADER_LEN + len];
        if s.queued() + framed.len() > bound {
            s.lost += 1;
        } else {
            s.wbuf.extend_from_slice(framed);
        }
        rest = &rest[framed.len()..];
    }
}

/// The control server. See the module docs.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    poll: Poll,
    events: Events,
    listener: UnixListener,
    waker: Arc<Waker>,
    sessions: HashMap<Token, Session>,
    next_token: usize,
    next_session_id: u64,
    handler: Handler,
    /// Sessions with input left over after their per-wake-up budget.
    backlog: Vec<Token>,
    /// Events drained from the switch (reused).
    event_buf: Vec<Event>,
    /// Sessions that got notifications in this iteration (reused).
    notified: Vec<Token>,
    /// Tokens to service in the current iteration (reused).
    ready: Vec<Token>,
    /// Accepting failed (out of descriptors): retry at the next wake-up.
    accept_retry: bool,
    /// The descriptor of the switch's link announcements, registered with the poller (token
    /// `LINKS`) while [`Server::run`] runs.
    links_fd: Option<std::os::fd::RawFd>,
    scratch: Box<[u8]>,
    warn_limit: RateLimit,
    /// Bytes staged in multi-message bundles, all sessions.
    staging: StagingBudget,
    /// Device and inode of the socket file we created, to remove only ours on drop.
    socket_id: (u64, u64),
    /// `<path>.lock`, locked (`flock`) while the server exists: one daemon per socket path.
    /// (Declared last: dropped after the socket file is removed.)
    _lock: PathLock,
}

impl Server {
    /// Creates the socket (and its parent directory) and prepares the event loop.
    ///
    /// A stale socket file (nobody answers) is removed; a live one is left alone.
    ///
    /// # Errors
    /// [`ServerError::AlreadyRunning`] if another daemon answers on the path,
    /// [`ServerError::NotASocket`] if the path is something else, [`ServerError::Config`] for
    /// out-of-range settings, [`ServerError::Io`] / [`ServerError::Poll`] for OS errors.
    pub fn bind(config: ServerConfig) -> Result<Self, ServerError> {
        check_config(&config)?;
        let path = config.path.clone();
        let io_err = |what: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| ServerError::Io { what, path, source }
        };
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| Path::new("."))
            .to_path_buf();
        // 0755 whatever the umask (the umask only takes bits away).
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&parent)
            .map_err(io_err("creating directory", &parent))?;
        check_directory(&parent)?;
        // One daemon per path: the probe, the removal of a stale socket and the rename below
        // happen under the lock, held until the server is dropped.
        let mut lock_name = path.as_os_str().to_owned();
        lock_name.push(".lock");
        let lock_path = PathBuf::from(lock_name);
        let lock = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io_err("opening", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(ServerError::AlreadyRunning { path });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_err("locking", &lock_path)(e)),
        }
        // A server that was stopping may have removed the file we locked (Drop): then a
        // newer one may hold the file now at the path.
        let held = lock.metadata().map_err(io_err("inspecting", &lock_path))?;
        match fs::symlink_metadata(&lock_path) {
            Ok(m) if (m.dev(), m.ino()) == (held.dev(), held.ino()) => {}
            _ => return Err(ServerError::AlreadyRunning { path }),
        }
        // Ours from here: removed (still locked) when bind fails or the server is dropped.
        let lock = PathLock {
            _file: lock,
            path: lock_path,
        };
        remove_stale_socket(&path)?;
        // Bind in a private directory (0700 whatever the umask), set the mode, then rename
        // into place: nobody else can reach the socket before it has its mode, and nobody
        // else can swap the name that is chmodded.
        let private = parent.join(format!(".{:x}.d", std::process::id()));
        let _ = fs::remove_dir_all(&private);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&private)
            .map_err(io_err("creating directory", &private))?;
        let tmp = private.join("s");
        for p in [&path, &tmp] {
            let len = p.as_os_str().len();
            if len > MAX_SOCKET_PATH {
                return Err(ServerError::Config {
                    field: "path",
                    reason: if p == &path {
                        format!(
                            "{} is {len} bytes long; a Unix socket path has at most {MAX_SOCKET_PATH}",
                            path.display()
                        )
                    } else {
                        format!(
                            "the socket is first bound at {} ({len} bytes, at most \
                             {MAX_SOCKET_PATH}), then renamed: use a shorter directory",
                            p.display()
                        )
                    },
                });
            }
        }
        let placed = UnixListener::bind(&tmp)
            .map_err(io_err("binding", &tmp))
            .and_then(|listener| {
                fs::set_permissions(&tmp, fs::Permissions::from_mode(config.socket_mode))
                    .map_err(io_err("setting permissions of", &tmp))?;
                fs::rename(&tmp, &path).map_err(io_err("renaming into", &path))?;
                Ok(listener)
            });
        let _ = fs::remove_dir_all(&private);
        let listener = placed?;
        let meta = fs::symlink_metadata(&path).map_err(io_err("inspecting", &path))?;
        let socket_id = (meta.dev(), meta.ino());

        let poll = Poll::new().map_err(ServerError::Poll)?;
        let mut listener = listener;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(ServerError::Poll)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(ServerError::Poll)?);
        info!(path = %path.display(), "control socket listening");
        Ok(Self {
            handler: Handler {
                daemon: config.daemon.clone(),
                max_frame_bytes: config.max_frame_bytes,
            },
            events: Events::with_capacity(256),
            sessions: HashMap::new(),
            next_token: FIRST_SESSION,
            next_session_id: 1,
            backlog: Vec::new(),
            event_buf: Vec::new(),
            notified: Vec::new(),
            ready: Vec::new(),
            accept_retry: false,
            links_fd: None,
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
            warn_limit: RateLimit::new(10, Duration::from_secs(5)),
            staging: StagingBudget::new(config.max_bundle_bytes, config.max_bundle_bytes_total),
            socket_id,
            _lock: lock,
            config,
            poll,
            listener,
            waker,
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.config.path
    }

    /// The settings in force.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Number of open sessions.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// A handle that wakes [`Server::run`] from another thread.
    pub fn shutdown_waker(&self) -> ShutdownWaker {
        ShutdownWaker(Arc::clone(&self.waker))
    }

    /// Serves requests until `shutdown` is set (checked at every wake-up, at least every
    /// [`ServerConfig::poll_timeout`]); runs [`Switch::housekeeping`] every
    /// [`ServerConfig::housekeeping_interval`]. Sessions stay open when it returns; dropping the
    /// server closes them and removes the socket file.
    ///
    /// # Errors
    /// The event loop itself failed (not a client: client errors only close that client).
    pub fn run(&mut self, switch: &mut Switch, shutdown: &AtomicBool) -> Result<(), ServerError> {
        // Workers wake the loop when a packet-in lands on an empty queue.
        let waker = Arc::clone(&self.waker);
        switch.set_control_waker(Box::new(move || {
            let _ = waker.wake();
        }));
        self.watch_links(switch);
        let res = self.serve(switch, shutdown);
        if let Some(fd) = self.links_fd.take() {
            // (The switch may outlive this run, and another run may bring another switch.)
            let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        }
        res
    }

    /// The loop of [`Server::run`].
    fn serve(&mut self, switch: &mut Switch, shutdown: &AtomicBool) -> Result<(), ServerError> {
        let mut next_housekeeping = Instant::now() + self.config.housekeeping_interval;
        loop {
            if shutdown.load(Ordering::Acquire) {
                debug!(sessions = self.sessions.len(), "control loop stopping");
                return Ok(());
            }
            let now = Instant::now();
            if now >= next_housekeeping {
                switch.housekeeping();
                next_housekeeping = now + self.config.housekeeping_interval;
            }
            let timeout = if self.backlog.is_empty() && !switch.has_events() {
                self.config
                    .poll_timeout
                    .min(next_housekeeping.saturating_duration_since(now))
            } else {
                Duration::ZERO
            };
            match self.poll.poll(&mut self.events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ServerError::Poll(e)),
            }
            let mut ready = std::mem::take(&mut self.ready);
            ready.clear();
            ready.append(&mut self.backlog);
            ready.extend(self.events.iter().map(mio::event::Event::token));
            ready.sort_unstable();
            ready.dedup();
            if self.accept_retry && !ready.contains(&LISTENER) {
                ready.push(LISTENER);
            }
            // Sessions first: one that hung up in this turn must not count against the
            // session limit when the listener's new connections are accepted.
            for token in ready.iter().copied() {
                match token {
                    LISTENER | WAKER => {}
                    LINKS => {
                        // (Edge-triggered: what is left for the next turn is not signalled
                        // again.)
                        if switch.link_events() {
                            self.backlog.push(LINKS);
                        }
                    }
                    token => self.service(token, switch),
                }
            }
            if ready.contains(&LISTENER) {
                self.accept();
            }
            self.ready = ready;
            self.dispatch_events(switch);
        }
    }

    /// Registers the switch's watch on the kernel's link announcements with the poller for
    /// this run, so that a port's link change is applied and reported when the kernel
    /// announces it; without it (the socket could not be opened) the once-a-second poll of
    /// housekeeping still sees it.
    fn watch_links(&mut self, switch: &mut Switch) {
        let fd = match switch.watch_links() {
            Ok(fd) => fd,
            Err(e) => {
                warn!(error = %e, "no link announcements: port links polled once a second");
                return;
            }
        };
        match self
            .poll
            .registry()
            .register(&mut SourceFd(&fd), LINKS, Interest::READABLE)
        {
            Ok(()) => {
                self.links_fd = Some(fd);
                // Announcements that came before the registration are not signalled.
                self.backlog.push(LINKS);
            }
            Err(e) => warn!(error = %e, "no link announcements: port links polled once a second"),
        }
    }

    /// Drains up to [`EVENTS_PER_WAKEUP`] switch events and queues them as notifications for
    /// the sessions subscribed to them (or counts them lost), then sends what can be sent.
    fn dispatch_events(&mut self, switch: &mut Switch) {
        let mut events = std::mem::take(&mut self.event_buf);
        events.clear();
        if switch.drain_events(&mut events, EVENTS_PER_WAKEUP) == 0 {
            self.event_buf = events;
            return;
        }
        let max_frame_bytes = self.config.max_frame_bytes;
        let bound = self.notify_bound();
        let mut notified = std::mem::take(&mut self.notified);
        notified.clear();
        if self.sessions.values().any(|s| s.sub.any()) {
            for event in events.drain(..) {
                let n = notification(event);
                if !self.sessions.values().any(|s| n.wanted_by(&s.sub)) {
                    continue;
                }
                let payload = match encode_notification(&n) {
                    // Room for the largest `lost` count written into it.
                    Ok(p) if p.len() + 20 <= max_frame_bytes => p,
                    other => {
                        match other {
                            Ok(p) => {
                                warn!(bytes = p.len(), "notification larger than a frame, dropped");
                            }
                            Err(e) => warn!(error = %e, "could not encode a notification"),
                        }
                        // Lost for every session that wanted it: its next notification says
                        // so (found by an audit: until 2026-12-07 such a one vanished).
                        for s in self.sessions.values_mut() {
                            if n.wanted_by(&s.sub) {
                                s.lost += 1;
                            }
                        }
                        continue;
                    }
                };
                for (token, s) in &mut self.sessions {
                    if !n.wanted_by(&s.sub) {
                        continue;
                    }
                    let spliced;
                    let body: &[u8] = if s.lost == 0 {
                        &payload
                    } else if let Some(b) = with_lost(&payload, s.lost) {
                        spliced = b;
                        &spliced
                    } else {
                        &payload
                    };
                    // While a dump is sent, held back until its last part.
                    let holding = s.dump.is_some();
                    let queued = if holding { s.held.len() } else { s.queued() };
                    let queue = if holding { &mut s.held } else { &mut s.wbuf };
                    if queued + HEADER_LEN + body.len() > bound {
                        s.lost += 1;
                        continue;
                    }
                    if frame::write(queue, body, max_frame_bytes).is_ok()
                        && !holding
                        && !notified.contains(token)
                    {
                        notified.push(*token);
                    }
                }
            }
        }
        events.clear();
        self.event_buf = events;
        for token in notified.drain(..) {
            let Some(s) = self.sessions.get_mut(&token) else {
                continue;
            };
            if s.flush().is_err()
                && let Some(s) = self.sessions.remove(&token)
            {
                self.close_session(s);
            }
        }
        self.notified = notified;
    }

    /// The notification bound: a notification is dropped for a session whose send queue it
    /// would take above this.
    fn notify_bound(&self) -> usize {
        self.config
            .max_notify_queued_bytes
            .min(self.config.max_queued_bytes)
    }

    fn warn_allowed(&mut self) -> Option<u64> {
        self.warn_limit.allow(Instant::now())
    }

    fn next_token(&mut self) -> Token {
        loop {
            let token = Token(self.next_token);
            self.next_token = self.next_token.checked_add(1).unwrap_or(FIRST_SESSION);
            if !self.sessions.contains_key(&token) {
                return token;
            }
        }
    }

    fn accept(&mut self) {
        self.accept_retry = false;
        loop {
            let mut stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Typically EMFILE: leave the connection queued and try again later.
                    if let Some(suppressed) = self.warn_allowed() {
                        warn!(error = %e, suppressed, "accepting a control connection failed");
                    }
                    self.accept_retry = true;
                    return;
                }
            };
            if self.sessions.len() >= self.config.max_sessions {
                if let Some(suppressed) = self.warn_allowed() {
                    warn!(
                        max = self.config.max_sessions,
                        suppressed, "control connection refused: too many sessions"
                    );
                }
                let mut out = Vec::new();
                push_error(
                    &mut out,
                    0,
                    ProtoError::new(
                        ErrorCode::Limit,
                        format!("too many sessions (max {})", self.config.max_sessions),
                    ),
                    self.config.max_frame_bytes,
                );
                // Best effort: a fresh socket has room for one small frame.
                let _ = stream.write(&out);
                continue;
            }
            let token = self.next_token();
            if let Err(e) = self.poll.registry().register(
                &mut stream,
                token,
                Interest::READABLE | Interest::WRITABLE,
            ) {
                if let Some(suppressed) = self.warn_allowed() {
                    warn!(error = %e, suppressed, "registering a control connection failed");
                }
                continue;
            }
            let id = self.next_session_id;
            self.next_session_id += 1;
            debug!(session = id, "control session opened");
            self.sessions.insert(token, Session::new(id, stream));
        }
    }

    fn service(&mut self, token: Token, switch: &mut Switch) {
        let Some(mut session) = self.sessions.remove(&token) else {
            return;
        };
        let next = self.service_session(&mut session, token, switch);
        // Also when the session is closing: what its requests changed is published.
        switch.commit();
        match next {
            Next::Keep => {
                self.sessions.insert(token, session);
            }
            Next::Close => self.close_session(session),
        }
    }

    /// Forgets a session: its open bundles are discarded and their bytes given back.
    fn close_session(&mut self, mut s: Session) {
        let _ = self.poll.registry().deregister(&mut s.stream);
        self.staging.release(s.bundles.bytes());
        debug!(session = s.id, "control session closed");
    }

    fn service_session(&mut self, s: &mut Session, token: Token, switch: &mut Switch) -> Next {
        if s.flush().is_err() {
            return Next::Close;
        }
        let max_frame_bytes = self.config.max_frame_bytes;
        let bound = self.notify_bound();
        let mut pending = false;
        // A dump in progress first: the session's next requests wait for its last part.
        match pump(s, switch, max_frame_bytes, bound) {
            Err(_) => return Next::Close,
            Ok(true) => {
                self.backlog.push(token);
                pending = true;
            }
            Ok(false) => {}
        }
        let mut budget = FRAMES_PER_WAKEUP;
        'io: loop {
            // Handle the complete frames already buffered (none while a dump is sent).
            let mut consumed = 0;
            while !s.closing && s.dump.is_none() {
                match frame::peek(&s.rbuf[consumed..], max_frame_bytes) {
                    FrameStatus::Incomplete { .. } => break,
                    FrameStatus::TooLong { announced } => {
                        if let Some(suppressed) = self.warn_allowed() {
                            warn!(
                                session = s.id,
                                announced,
                                max = max_frame_bytes,
                                suppressed,
                                "control frame too long, closing"
                            );
                        }
                        push_error(
                            &mut s.wbuf,
                            0,
                            ProtoError::new(
                                ErrorCode::BadFrame,
                                format!(
                                    "frame of {announced} bytes exceeds the maximum {max_frame_bytes}"
                                ),
                            ),
                            max_frame_bytes,
                        );
                        s.closing = true;
                    }
                    FrameStatus::Complete { len } => {
                        if budget == 0 {
                            self.backlog.push(token);
                            pending = true;
                            s.rbuf.drain(..consumed);
                            break 'io;
                        }
                        budget -= 1;
                        if s.queued() > self.config.max_queued_bytes
                            && (Self::publish_then_flush(s, switch).is_err()
                                || s.queued() > self.config.max_queued_bytes)
                        {
                            if let Some(suppressed) = self.warn_allowed() {
                                warn!(
                                    session = s.id,
                                    queued = s.queued(),
                                    suppressed,
                                    "control client does not read its replies, disconnecting"
                                );
                            }
                            return Next::Close;
                        }
                        let start = consumed + HEADER_LEN;
                        let payload = &s.rbuf[start..start + len];
                        let mut notify = (s.sub, s.lost);
                        self.handle_frame(
                            s.id,
                            payload,
                            &mut s.wbuf,
                            &mut notify,
                            &mut s.bundles,
                            &mut s.dump,
                            switch,
                        );
                        s.sub = notify.0;
                        consumed = start + len;
                    }
                }
            }
            s.rbuf.drain(..consumed);
            if s.rbuf.capacity() > READ_CHUNK && s.rbuf.len() < READ_CHUNK {
                s.rbuf.shrink_to(READ_CHUNK);
            }
            if s.closing || s.read_closed {
                break;
            }
            // Read more, never beyond one frame; behind a dump that is being sent, up to
            // `max_queued_bytes` of requests more (a client may write its next requests before
            // it reads the dump, and block until they are read).
            let ahead = if s.dump.is_some() {
                self.config.max_queued_bytes
            } else {
                0
            };
            let room = (ahead + HEADER_LEN + max_frame_bytes).saturating_sub(s.rbuf.len());
            let n = room.min(self.scratch.len());
            if n == 0 {
                if s.dump.is_some() {
                    if let Some(suppressed) = self.warn_allowed() {
                        warn!(
                            session = s.id,
                            buffered = s.rbuf.len(),
                            suppressed,
                            "control client writes requests behind a dump it does not read, disconnecting"
                        );
                    }
                    return Next::Close;
                }
                break;
            }
            match s.stream.read(&mut self.scratch[..n]) {
                Ok(0) => s.read_closed = true,
                Ok(got) => s.rbuf.extend_from_slice(&self.scratch[..got]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Next::Close,
            }
        }
        // Flow changes made by these requests go to the workers before their replies go out.
        let flushed = Self::publish_then_flush(s, switch);
        if s.closing {
            s.drain_input(&mut self.scratch);
            return Next::Close;
        }
        if flushed.is_err() {
            return Next::Close;
        }
        if s.dump.is_some() {
            // The dump's first parts (after the publication: they may list flows just added).
            match pump(s, switch, max_frame_bytes, bound) {
                Err(_) => return Next::Close,
                // Parts left and room for them, or requests waiting behind a finished dump.
                Ok(again) if again || (s.dump.is_none() && !s.rbuf.is_empty()) => {
                    self.backlog.push(token);
                    pending = true;
                }
                Ok(_) => pending |= s.dump.is_some(),
            }
        }
        if s.read_closed && !pending && s.queued() == 0 {
            // The peer is done and has every reply; a truncated frame left behind is dropped.
            return Next::Close;
        }
        Next::Keep
    }

    /// Publishes pending flow changes ([`Switch::commit`]), then sends queued replies: a
    /// reply never reaches a client before the change it reports is published.
    fn publish_then_flush(s: &mut Session, switch: &mut Switch) -> io::Result<()> {
        switch.commit();
        s.flush()
    }

    /// Decodes and runs one request, appending its reply frames to `out`, or for a dump
    /// setting `dump` (with the request's `xid`). `notify` is the session's subscription
    /// (changed by `subscribe`) and its lost count; `bundles` its open multi-message bundles.
    #[expect(
        clippy::too_many_arguments,
        reason = "a session's parts, borrowed apart from its receive buffer"
    )]
    fn handle_frame(
        &mut self,
        session: u64,
        payload: &[u8],
        out: &mut Vec<u8>,
        notify: &mut (Subscription, u64),
        bundles: &mut Bundles,
        dump: &mut Option<(u64, Dump)>,
        switch: &mut Switch,
    ) {
        let max_frame_bytes = self.config.max_frame_bytes;
        match decode_request(payload) {
            Err(DecodeError { xid, error }) => {
                if let Some(suppressed) = self.warn_allowed() {
                    warn!(
                        session,
                        xid,
                        code = error.code.as_str(),
                        field = error.field.as_deref().unwrap_or(""),
                        suppressed,
                        "control request rejected"
                    );
                }
                push_error(out, xid, error, max_frame_bytes);
            }
            Ok(Decoded { xid, msg, .. }) => {
                let span = debug_span!("request", session, xid, r#type = msg.type_name());
                let _entered = span.enter();
                debug!("control request");
                let sub = match &msg {
                    Request::Subscribe(req) => Some((req.subscription(), true)),
                    Request::Unsubscribe(_) => Some((Subscription::default(), false)),
                    _ => None,
                };
                if let Some((sub, subscribe)) = sub {
                    notify.0 = sub;
                    let reply = SubscribeReply {
                        packet_in: sub.packet_in,
                        flow_removed: sub.flow_removed,
                        port_status: sub.port_status,
                        lost: notify.1,
                    };
                    let reply = if subscribe {
                        Reply::Subscribe(reply)
                    } else {
                        Reply::Unsubscribe(reply)
                    };
                    push_reply(out, xid, &reply, max_frame_bytes);
                    return;
                }
                let staged = match &msg {
                    Request::BundleOpen(req) => Some(
                        bundles
                            .open(req.bundle_id)
                            .map(|()| Reply::BundleOpen(EmptyReply {})),
                    ),
                    Request::BundleAdd(req) => Some(
                        bundles
                            .add(req, payload.len(), &mut self.staging)
                            .map(|ops| Reply::BundleAdd(BundleAddReply { ops })),
                    ),
                    Request::BundleCommit(req) => Some(
                        bundles
                            .commit(req.bundle_id, switch, &mut self.staging)
                            .map(Reply::BundleCommit),
                    ),
                    Request::BundleDiscard(req) => Some(
                        bundles
                            .discard(req.bundle_id, &mut self.staging)
                            .map(|()| Reply::BundleDiscard(EmptyReply {})),
                    ),
                    _ => None,
                };
                let result = match staged {
                    Some(r) => r.map(|reply| Answer::Now(vec![reply])),
                    None => self.handler.handle(switch, msg),
                };
                match result {
                    Ok(Answer::Now(parts)) => {
                        for part in &parts {
                            push_reply(out, xid, part, max_frame_bytes);
                        }
                    }
                    Ok(Answer::Dump(d)) => *dump = Some((xid, d)),
                    Err(error) => {
                        debug!(
                            code = error.code.as_str(),
                            field = error.field.as_deref().unwrap_or(""),
                            message = %error.message,
                            "control request failed"
                        );
                        push_error(out, xid, error, max_frame_bytes);
                    }
                }
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Remove the socket file only if it is still the one we created.
        if let Ok(meta) = fs::symlink_metadata(&self.config.path)
            && (meta.dev(), meta.ino()) == self.socket_id
        {
            let _ = fs::remove_file(&self.config.path);
        }
    }
}

fn check_config(c: &ServerConfig) -> Result<(), ServerError> {
    let bad = |field: &'static str, reason: String| Err(ServerError::Config { field, reason });
    if c.max_sessions == 0 {
        return bad("max_sessions", "must be at least 1".into());
    }
    if !(4096..=u32::MAX as usize).contains(&c.max_frame_bytes) {
        return bad(
            "max_frame_bytes",
            format!("{} outside 4096..={}", c.max_frame_bytes, u32::MAX),
        );
    }
    if c.max_queued_bytes == 0 {
        return bad("max_queued_bytes", "must be at least 1".into());
    }
    if c.max_notify_queued_bytes == 0 {
        return bad("max_notify_queued_bytes", "must be at least 1".into());
    }
    if c.max_bundle_bytes == 0 {
        return bad("max_bundle_bytes", "must be at least 1".into());
    }
    if c.max_bundle_bytes_total == 0 {
        return bad("max_bundle_bytes_total", "must be at least 1".into());
    }
    if c.poll_timeout.is_zero() || c.poll_timeout > Duration::from_secs(1) {
        return bad(
            "poll_timeout",
            format!("{:?} outside (0, 1 s]", c.poll_timeout),
        );
    }
    if c.housekeeping_interval.is_zero() {
        return bad("housekeeping_interval", "must be positive".into());
    }
    if c.socket_mode > 0o7777 {
        return bad("socket_mode", format!("{:o} is not a mode", c.socket_mode));
    }
    Ok(())
}

/// The pipeline fields a packet-in reports when they are not zero.
const PACKET_IN_FIELDS: [datapath::ofp::field::Field; 16] = {
    use datapath::ofp::field::Field;
    [
        Field::Metadata,
        Field::Reg(0),
        Field::Reg(1),
        Field::Reg(2),
        Field::Reg(3),
        Field::Reg(4),
        Field::Reg(5),
        Field::Reg(6),
        Field::Reg(7),
        Field::TunId,
        Field::TunSrc,
        Field::TunDst,
        Field::CtState,
        Field::CtZone,
        Field::CtMark,
        Field::InPort,
    ]
};

/// The notification of a switch event (with `lost` 0).
fn notification(event: Event) -> Notification {
    match event {
        Event::PacketIn(pi) => {
            let mut fields = MatchDesc::new();
            for f in PACKET_IN_FIELDS {
                let v = f.get(&pi.key);
                if v != 0 || f == datapath::ofp::field::Field::InPort {
                    fields.insert(f.name(), FieldValue::of(f, v, None));
                }
            }
            Notification::PacketIn(PacketInEvent {
                in_port: pi.in_port,
                table: pi.table,
                cookie: pi.cookie,
                reason: pi.reason.as_str().to_owned(),
                total_len: pi.total_len,
                data: hex_encode(&pi.data),
                fields,
                lost: 0,
            })
        }
        Event::FlowRemoved(fr) => Notification::FlowRemoved(FlowRemovedEvent {
            table: fr.flow.table,
            priority: fr.flow.priority,
            cookie: fr.flow.cookie,
            fields: match_to_desc(&fr.flow.fields),
            reason: fr.reason.as_str().to_owned(),
            duration_ms: u64::try_from(fr.duration.as_millis()).unwrap_or(u64::MAX),
            idle_timeout: fr.flow.idle_timeout,
            hard_timeout: fr.flow.hard_timeout,
            packets: fr.packets,
            bytes: fr.bytes,
            lost: 0,
        }),
        Event::PortStatus(ps) => Notification::PortStatus(PortStatusEvent {
            reason: ps.change.as_str().to_owned(),
            port: port_desc(&ps.port),
            lost: 0,
        }),
    }
}

/// Refuses a socket directory another user could write: it must be owned by root or by
/// this process's user and not writable by group or others (unless sticky, like `/tmp`:
/// then others cannot rename or remove our files).
fn check_directory(dir: &Path) -> Result<(), ServerError> {
    let unsafe_dir = |reason: String| ServerError::UnsafeDirectory {
        path: dir.to_path_buf(),
        reason,
    };
    let meta = fs::metadata(dir).map_err(|source| ServerError::Io {
        what: "inspecting",
        path: dir.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(unsafe_dir("not a directory".into()));
    }
    // Our effective user owns our /proc entry.
    let me = fs::metadata("/proc/self").map(|m| m.uid()).ok();
    if meta.uid() != 0 && Some(meta.uid()) != me {
        return Err(unsafe_dir(format!("owned by uid {}", meta.uid())));
    }
    let mode = meta.mode();
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(unsafe_dir(format!(
            "mode {:o} lets group or others replace the socket",
            mode & 0o7777
        )));
    }
    Ok(())
}

/// Removes `path` if it is a socket nobody answers on.
fn remove_stale_socket(path: &Path) -> Result<(), ServerError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ServerError::Io {
                what: "inspecting",
                path: path.to_path_buf(),
                source,
            });
        }
    };
    if !meta.file_type().is_socket() {
        return Err(ServerError::NotASocket {
            path: path.to_path_buf(),
        });
    }
    // Non-blocking connect: accepted or backlog full (EAGAIN) = alive; refused = stale.
    match UnixStream::connect(path) {
        Ok(_) => Err(ServerError::AlreadyRunning {
            path: path.to_path_buf(),
        }),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(ServerError::AlreadyRunning {
            path: path.to_path_buf(),
        }),
        Err(e)
            if e.kind() == io::ErrorKind::ConnectionRefused
                || e.kind() == io::ErrorKind::NotFound =>
        {
            match fs::remove_file(path) {
                Ok(()) => {
                    info!(path = %path.display(), "removed stale control socket");
                    Ok(())
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(source) => Err(ServerError::Io {
                    what: "removing stale socket",
                    path: path.to_path_buf(),
                    source,
                }),
            }
        }
        Err(source) => Err(ServerError::Io {
            what: "probing",
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(tag: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        PathBuf::from(format!(
            "/tmp/vsw-srv-{tag}-{}-{nanos}/ctl.sock",
            std::process::id()
        ))
    }

    fn config(path: &Path) -> ServerConfig {
        ServerConfig {
            path: path.to_path_buf(),
            ..ServerConfig::default()
        }
    }

    /// A socket path the kernel takes (up to 107 bytes) binds: the server bound at
    /// `<path>.<pid>.d/s` first, so paths of ~97 bytes or more were refused with an error
    /// naming that internal path (found by an audit, 2026-12-07). One too long for the kernel
    /// is refused by name.
    #[test]
    fn a_socket_path_up_to_the_kernels_limit_binds() {
        let dir = PathBuf::from(format!("/tmp/vsw-sp-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        let prefix = format!("{}/", dir.display());
        let named = |len: usize| {
            PathBuf::from(format!(
                "{prefix}{}.sock",
                "x".repeat(len - prefix.len() - 5)
            ))
        };
        let path = named(MAX_SOCKET_PATH);
        assert_eq!(path.as_os_str().len(), 107);
        let res = Server::bind(config(&path)).map(drop);
        let long = Server::bind(config(&named(MAX_SOCKET_PATH + 1))).map(drop);
        let _ = fs::remove_dir_all(&dir);
        res.unwrap();
        let e = long.unwrap_err().to_string();
        assert!(e.contains("108 bytes") && e.contains("107"), "{e}");
    }

    #[test]
    fn bind_creates_parent_dir_and_sets_mode_and_cleans_up() {
        let path = temp_path("mode");
        let server = Server::bind(config(&path)).unwrap();
        let meta = fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o7777, 0o660);
        drop(server);
        assert!(!path.exists());
        let _ = fs::remove_dir(path.parent().unwrap());
    }

    #[test]
    fn refuses_to_start_when_another_daemon_answers() {
        let path = temp_path("live");
        let first = Server::bind(config(&path)).unwrap();
        let err = Server::bind(config(&path)).unwrap_err();
        assert!(matches!(err, ServerError::AlreadyRunning { .. }), "{err}");
        assert!(err.to_string().contains("another vswitchd is running"));
        // The first one's socket is untouched.
        assert!(path.exists());
        drop(first);
        let _ = fs::remove_dir(path.parent().unwrap());
    }

    #[test]
    fn replaces_a_stale_socket() {
        let path = temp_path("stale");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        // A socket file nobody listens on.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let server = Server::bind(config(&path)).unwrap();
        drop(server);
        let _ = fs::remove_dir(path.parent().unwrap());
    }

    #[test]
    fn leaves_a_non_socket_alone() {
        let path = temp_path("file");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, b"precious").unwrap();
        let err = Server::bind(config(&path)).unwrap_err();
        assert!(matches!(err, ServerError::NotASocket { .. }), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"precious");
        fs::remove_file(&path).unwrap();
        let _ = fs::remove_dir(path.parent().unwrap());
    }

    #[test]
    fn refuses_a_directory_others_could_write_or_own() {
        let path = temp_path("dirs");
        let dir = path.parent().unwrap();
        fs::create_dir_all(dir).unwrap();
        fs::set_permissions(dir, fs::Permissions::from_mode(0o777)).unwrap();
        let err = Server::bind(config(&path)).unwrap_err();
        assert!(matches!(err, ServerError::UnsafeDirectory { .. }), "{err}");
        assert!(!path.exists());
        // Sticky like /tmp: others cannot rename or remove our files.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o1777)).unwrap();
        drop(Server::bind(config(&path)).unwrap());
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
        if fs::metadata("/proc/self").map(|m| m.uid()).ok() == Some(0) {
            std::os::unix::fs::chown(dir, Some(65534), Some(65534)).unwrap();
            let err = Server::bind(config(&path)).unwrap_err();
            assert!(matches!(err, ServerError::UnsafeDirectory { .. }), "{err}");
        }
        assert_eq!(fs::read_dir(dir).unwrap().count(), 0, "left files behind");
        let _ = fs::remove_dir(dir);
    }

    #[test]
    fn the_lock_refuses_a_second_server_even_without_a_socket() {
        let path = temp_path("lock");
        let first = Server::bind(config(&path)).unwrap();
        // The socket file is gone (removed by someone), the first server still runs.
        fs::remove_file(&path).unwrap();
        let err = Server::bind(config(&path)).unwrap_err();
        assert!(matches!(err, ServerError::AlreadyRunning { .. }), "{err}");
        drop(first);
        drop(Server::bind(config(&path)).unwrap());
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 0);
        let _ = fs::remove_dir(path.parent().unwrap());
    }

    #[test]
    fn rejects_out_of_range_settings() {
        let path = temp_path("cfg");
        for c in [
            ServerConfig {
                max_sessions: 0,
                ..config(&path)
            },
            ServerConfig {
                max_frame_bytes: 10,
                ..config(&path)
            },
            ServerConfig {
                poll_timeout: Duration::from_secs(2),
                ..config(&path)
            },
        ] {
            assert!(matches!(
                Server::bind(c).unwrap_err(),
                ServerError::Config { .. }
            ));
        }
        assert!(!path.exists());
    }

    #[test]
    fn error_text_is_cut_at_a_char_boundary() {
        let mut s = "é".repeat(10);
        truncate(&mut s, 5);
        assert_eq!(s, "éé…");
    }
}
