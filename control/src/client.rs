//! Blocking client of the control socket, used by `vsctl`, the CNI plugin and tests.
//!
//! One request at a time: [`Client::request`] sends a request with a fresh `xid`, then reads
//! until the reply with that `xid` is complete (multipart replies are merged). Every wait is
//! bounded by [`ClientConfig::timeout`]. After an I/O error or a timeout the connection is in an
//! unknown state and further requests fail with [`ClientError::Poisoned`]; connect again.
//!
//! **Notifications.** After [`Client::subscribe`], the server sends `packet_in`, `flow_removed`
//! and `port_status` messages at any time, also between a request and its reply. Those that
//! arrive while a request waits are queued (up to [`MAX_PENDING_NOTIFICATIONS`]; beyond that they
//! are counted in [`Client::notifications_dropped`]) and handed out, in order, by
//! [`Client::next_notification`].
//!
//! ```no_run
//! # fn main() -> Result<(), control::ClientError> {
//! let mut client = control::Client::connect(control::DEFAULT_SOCKET_PATH)?;
//! for port in client.ports()? {
//!     println!("{} {}", port.id, port.name);
//! }
//! # Ok(())
//! # }
//! ```

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::proto::frame::{self, HEADER_LEN};
use crate::proto::{
    BundleAddRequest, BundleIdRequest, BundleOpDesc, BundleReply, BundleRequest,
    FlowAggregateReply, FlowDesc, FlowFilterRequest, FlowModReply, FlowModRequest, TableStatsReply,
};
use crate::proto::{
    DEFAULT_MAX_FRAME_BYTES, Decoded, EchoRequest, EmptyRequest, ErrorCode, ErrorReply, HelloReply,
    HelloRequest, MacDesc, MacFilter, PortAddRequest, PortDelRequest, PortDesc, PortStatsDesc,
    PortStatsRequest, ProtoError, Reply, Request, SwitchShowReply, VERSION, encode_request,
};
use crate::proto::{
    GroupDesc, GroupDumpRequest, GroupModReply, GroupModRequest, MeterDesc, MeterDumpRequest,
    MeterModReply, MeterModRequest,
};
use crate::proto::{
    Notification, PacketOutRequest, ServerMessage, SubscribeReply, SubscribeRequest,
    decode_server_message,
};

/// Notifications a client queues while it waits for replies; more are dropped and counted.
pub const MAX_PENDING_NOTIFICATIONS: usize = 65_536;

/// Default bytes of op JSON per `bundle_add` in [`Client::bundle_chunked`].
pub const DEFAULT_BUNDLE_CHUNK_BYTES: usize = 512 * 1024;

/// Bytes of a frame [`Client::bundle_chunked`] keeps for the envelope around the ops.
const BUNDLE_ENVELOPE_SLACK: usize = 1024;

/// One message read from the socket.
enum Incoming {
    /// A message this client knows.
    Message(Decoded<ServerMessage>),
    /// A well-formed message of a type this client does not know, sent on the server's own
    /// account (`xid` 0): skipped.
    Unknown,
}

/// Settings of a client connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// Longest wait for one request (send + whole reply). Default 10 s.
    pub timeout: Duration,
    /// Largest frame payload accepted and sent. Default 1 MiB.
    pub max_frame_bytes: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
        }
    }
}

/// Errors of the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be connected.
    #[error("connecting to {path}")]
    Connect {
        /// Socket path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Reading or writing the socket failed.
    #[error("control socket I/O")]
    Io(#[source] io::Error),
    /// No complete reply within the timeout.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The server closed the connection.
    #[error("the server closed the connection")]
    Closed,
    /// An earlier error left the connection in an unknown state.
    #[error("connection unusable after an earlier error; reconnect")]
    Poisoned,
    /// The server answered with an `error` reply.
    #[error("{0}")]
    Remote(ErrorReply),
    /// The server sent something this client cannot use.
    #[error("protocol violation by the server: {0}")]
    Protocol(String),
    /// The request could not be encoded (too long for a frame).
    #[error("request not sent: {0}")]
    Encode(ProtoError),
}

impl ClientError {
    /// The server's error reply, if this is one.
    pub fn remote(&self) -> Option<&ErrorReply> {
        match self {
            Self::Remote(e) => Some(e),
            _ => None,
        }
    }

    /// The server's error code, if this is an error reply with a code this version knows.
    pub fn code(&self) -> Option<ErrorCode> {
        self.remote().and_then(ErrorReply::error_code)
    }
}

/// A blocking connection to the control socket.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    config: ClientConfig,
    next_xid: u64,
    poisoned: bool,
    /// Notifications received while waiting for replies, oldest first.
    pending: VecDeque<Notification>,
    /// Notifications dropped because `pending` was full.
    dropped: u64,
    /// The server's frame limit, from its `hello_reply` (asked for once, when needed).
    server_max_frame: Option<usize>,
    /// Next id [`Client::bundle_chunked`] tries for its bundle.
    next_bundle_id: u32,
}

impl Client {
    /// Connects with the default settings.
    ///
    /// # Errors
    /// [`ClientError::Connect`].
    pub fn connect(path: impl AsRef<Path>) -> Result<Self, ClientError> {
        Self::connect_with(path, ClientConfig::default())
    }

    /// Connects with `config`.
    ///
    /// # Errors
    /// [`ClientError::Connect`].
    pub fn connect_with(path: impl AsRef<Path>, config: ClientConfig) -> Result<Self, ClientError> {
        let path = path.as_ref();
        let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            stream,
            config,
            next_xid: 1,
            poisoned: false,
            pending: VecDeque::new(),
            dropped: 0,
            server_max_frame: None,
            next_bundle_id: 1,
        })
    }

    /// Changes the per-request timeout.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.config.timeout = timeout;
    }

    fn xid(&mut self) -> u64 {
        let xid = self.next_xid;
        // 0 is reserved for messages the server sends on its own.
        self.next_xid = self.next_xid.checked_add(1).unwrap_or(1);
        xid
    }

    /// Sends `request` and returns the server's reply, an `error` reply included (as
    /// [`Reply::Error`]). Multipart replies are merged into one.
    ///
    /// # Errors
    /// I/O, timeout, closed connection, or a reply that does not belong to the request.
    pub fn exchange(&mut self, request: &Request) -> Result<Reply, ClientError> {
        if self.poisoned {
            return Err(ClientError::Poisoned);
        }
        let result = self.exchange_inner(request);
        if matches!(
            result,
            Err(ClientError::Io(_)
                | ClientError::Timeout(_)
                | ClientError::Closed
                | ClientError::Protocol(_))
        ) {
            self.poisoned = true;
        }
        result
    }

    /// Sends `request` and returns its reply; an `error` reply becomes
    /// [`ClientError::Remote`].
    ///
    /// # Errors
    /// As [`Client::exchange`], plus [`ClientError::Remote`].
    pub fn request(&mut self, request: &Request) -> Result<Reply, ClientError> {
        match self.exchange(request)? {
            Reply::Error(e) => Err(ClientError::Remote(e)),
            reply => Ok(reply),
        }
    }

    fn exchange_inner(&mut self, request: &Request) -> Result<Reply, ClientError> {
        let deadline = Instant::now() + self.config.timeout;
        let xid = self.xid();
        let payload = encode_request(xid, request).map_err(ClientError::Encode)?;
        let framed =
            frame::encode(&payload, self.config.max_frame_bytes).map_err(ClientError::Encode)?;
        self.write_all(&framed, deadline)?;

        let mut reply: Option<Reply> = None;
        loop {
            let Incoming::Message(Decoded { xid: got, msg, .. }) = self.read_message(deadline)?
            else {
                continue;
            };
            let msg = match msg {
                ServerMessage::Notification(n) => {
                    self.queue_notification(n);
                    continue;
                }
                ServerMessage::Reply(r) => r,
            };
            if got != xid {
                if got == 0 {
                    if let Reply::Error(e) = msg {
                        // About the connection as a whole (too many sessions, bad frame).
                        return Ok(Reply::Error(e));
                    }
                    continue;
                }
                return Err(ClientError::Protocol(format!(
                    "reply with xid {got} while waiting for {xid}"
                )));
            }
            if let Reply::Error(e) = msg {
                return Ok(Reply::Error(e));
            }
            if !msg.answers(request) {
                return Err(ClientError::Protocol(format!(
                    "{} in reply to {}",
                    msg.type_name(),
                    request.type_name()
                )));
            }
            let reply = match reply.as_mut() {
                None => reply.insert(msg),
                Some(r) => {
                    r.merge(msg).map_err(|m| {
                        ClientError::Protocol(format!("{} inside a multipart reply", m.type_name()))
                    })?;
                    r
                }
            };
            if !reply.more() {
                break;
            }
        }
        reply.ok_or_else(|| ClientError::Protocol("no reply".into()))
    }

    fn remaining(&self, deadline: Instant) -> Result<Duration, ClientError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(ClientError::Timeout(self.config.timeout))
        } else {
            Ok(left)
        }
    }

    fn map_io(&self, e: io::Error) -> ClientError {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                ClientError::Timeout(self.config.timeout)
            }
            io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::UnexpectedEof => ClientError::Closed,
            _ => ClientError::Io(e),
        }
    }

    fn write_all(&mut self, mut buf: &[u8], deadline: Instant) -> Result<(), ClientError> {
        while !buf.is_empty() {
            let left = self.remaining(deadline)?;
            self.stream
                .set_write_timeout(Some(left))
                .map_err(ClientError::Io)?;
            match self.stream.write(buf) {
                Ok(0) => return Err(ClientError::Closed),
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.map_io(e)),
            }
        }
        Ok(())
    }

    fn read_exact(&mut self, mut buf: &mut [u8], deadline: Instant) -> Result<(), ClientError> {
        while !buf.is_empty() {
            let left = self.remaining(deadline)?;
            self.stream
                .set_read_timeout(Some(left))
                .map_err(ClientError::Io)?;
            match self.stream.read(buf) {
                Ok(0) => return Err(ClientError::Closed),
                Ok(n) => buf = &mut buf[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.map_io(e)),
            }
        }
        Ok(())
    }

    fn queue_notification(&mut self, n: Notification) {
        if self.pending.len() < MAX_PENDING_NOTIFICATIONS {
            self.pending.push_back(n);
        } else {
            self.dropped += 1;
        }
    }

    /// Reads one message.
    fn read_message(&mut self, deadline: Instant) -> Result<Incoming, ClientError> {
        let mut header = [0u8; HEADER_LEN];
        self.read_exact(&mut header, deadline)?;
        self.read_payload(header, deadline)
    }

    /// Reads the payload of the frame whose header is `header`, and decodes it.
    fn read_payload(
        &mut self,
        header: [u8; HEADER_LEN],
        deadline: Instant,
    ) -> Result<Incoming, ClientError> {
        let len = u32::from_be_bytes(header);
        let len = usize::try_from(len)
            .ok()
            .filter(|l| *l <= self.config.max_frame_bytes)
            .ok_or_else(|| {
                ClientError::Protocol(format!(
                    "frame of {len} bytes exceeds the maximum {}",
                    self.config.max_frame_bytes
                ))
            })?;
        let mut payload = vec![0u8; len];
        self.read_exact(&mut payload, deadline)?;
        match decode_server_message(&payload) {
            Ok(d) => Ok(Incoming::Message(d)),
            Err(e) if e.xid == 0 && e.error.code == ErrorCode::UnknownType => Ok(Incoming::Unknown),
            Err(e) => Err(ClientError::Protocol(e.to_string())),
        }
    }

    /// Notifications received and not yet taken with [`Client::next_notification`].
    pub fn pending_notifications(&self) -> usize {
        self.pending.len()
    }

    /// Notifications this client dropped because [`MAX_PENDING_NOTIFICATIONS`] were queued
    /// (the server counts its own drops in each notification's `lost`).
    pub fn notifications_dropped(&self) -> u64 {
        self.dropped
    }

    /// The next notification: a queued one, else one that starts arriving within `wait`
    /// (`Ok(None)` if none does; the connection stays usable). Once a message has started, the
    /// rest of it is awaited up to [`ClientConfig::timeout`].
    ///
    /// # Errors
    /// I/O, closed connection, a reply nobody asked for ([`ClientError::Protocol`]), or an
    /// `error` about the connection (`xid` 0) as [`ClientError::Remote`].
    pub fn next_notification(
        &mut self,
        wait: Duration,
    ) -> Result<Option<Notification>, ClientError> {
        if let Some(n) = self.pending.pop_front() {
            return Ok(Some(n));
        }
        if self.poisoned {
            return Err(ClientError::Poisoned);
        }
        let result = self.wait_notification(wait);
        if matches!(
            result,
            Err(ClientError::Io(_)
                | ClientError::Timeout(_)
                | ClientError::Closed
                | ClientError::Protocol(_))
        ) {
            self.poisoned = true;
        }
        result
    }

    fn wait_notification(&mut self, wait: Duration) -> Result<Option<Notification>, ClientError> {
        let until = Instant::now() + wait;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            // A zero read timeout means "block forever" to the OS.
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .map_err(ClientError::Io)?;
            let mut header = [0u8; HEADER_LEN];
            let got = match self.stream.read(&mut header) {
                Ok(0) => return Err(ClientError::Closed),
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.map_io(e)),
            };
            let deadline = Instant::now() + self.config.timeout;
            self.read_exact(&mut header[got..], deadline)?;
            match self.read_payload(header, deadline)? {
                Incoming::Unknown => {}
                Incoming::Message(Decoded {
                    msg: ServerMessage::Notification(n),
                    ..
                }) => return Ok(Some(n)),
                Incoming::Message(Decoded {
                    xid: 0,
                    msg: ServerMessage::Reply(Reply::Error(e)),
                    ..
                }) => return Err(ClientError::Remote(e)),
                Incoming::Message(Decoded { xid, msg, .. }) => {
                    let name = match &msg {
                        ServerMessage::Reply(r) => r.type_name(),
                        ServerMessage::Notification(n) => n.type_name(),
                    };
                    return Err(ClientError::Protocol(format!(
                        "{name} with xid {xid} while no request was waiting"
                    )));
                }
            }
            if Instant::now() >= until {
                return Ok(None);
            }
        }
    }

    /// `subscribe`: receive the notification kinds `request` asks for (replacing an earlier
    /// subscription); the reply says what is in force and how many notifications this session
    /// has lost so far.
    ///
    /// # Errors
    /// As [`Client::request`].
    pub fn subscribe(&mut self, request: SubscribeRequest) -> Result<SubscribeReply, ClientError> {
        match self.request(&Request::Subscribe(request))? {
            Reply::Subscribe(r) => Ok(r),
            other => Err(Self::unexpected(&other)),
        }
    }

    /// `unsubscribe`: no more notifications (those already sent may still be queued).
    ///
    /// # Errors
    /// As [`Client::request`].
    pub fn unsubscribe(&mut self) -> Result<SubscribeReply, ClientError> {
        match self.request(&Request::Unsubscribe(EmptyRequest {}))? {
            Reply::Unsubscribe(r) => Ok(r),
            other => Err(Self::unexpected(&other)),
        }
    }

    /// `packet_out`: injects a frame (through `actions`, or through the flow tables).
    ///
    /// # Errors
    /// As [`Client::request`] (`bad_field` on `body.data`, `not_found` on `body.in_port`,
    /// `bad_action` on `body.actions[i]` from the server).
    pub fn packet_out(&mut self, request: PacketOutRequest) -> Result<(), ClientError> {
        match self.request(&Request::PacketOut(request))? {
            Reply::PacketOut(_) => Ok(()),
            other => Err(Self::unexpected(&other)),
        }
    }

    fn unexpected(reply: &Reply) -> ClientError {
        ClientError::Protocol(format!("unexpected {}", reply.type_name()))
    }

    /// `hello`: versions, daemon version, capabilities.
    ///
    /// # Errors
    /// As [`Client::request`].
    pub fn hello(&mut self) -> Result<HelloReply, ClientError> {
        let request = Request::Hello(HelloRequest {
            versions: vec![VERSION],
            client: Some(format!("control-client {}", env!("CARGO_PKG_VERSION"))),
        });
        match self.request(&request)? {
            Reply::Hello(r) => {
                self.server_max_frame =
                    Some(usize::try_from(r.max_frame_bytes).unwrap_or(usize::MAX));
                Ok(r)
            }
            other => Err(Self::unexpected(&other)),
        }
    }

    /// `port_add`: opens a port; returns it as the switch reports it.
    ///
    /// # Errors
    /// As [`Client::request`] (`exists`, `bad_field`, `port_failed`, `limit` from the server).
    pub fn port_add(&mut self, request: PortAddRequest) -> Result<PortDesc, ClientError> {
        match self.request(&Request::PortAdd(request))? {
            Reply::PortAdd(r) => Ok(r.port),
            other => Err(Self::unexpected(&other)),
        }
    }

    /// `port_del`: removes a port.
    ///
    /// # Errors
    /// As [`Client::request`] (`not_found` from the server).
    pub fn port_del(&mut self, name: &str) -> Result<(), ClientError> {
        let request = Request::PortDel(PortDelRequest {
            name: name.to_owned(),
        });
        match self.request(&request)? {
            Reply::PortDel(_) => Ok(()),
            other => Err(Self::unexpected(&other)),
        }
    }

    /// `port_list`: the ports, by port number.
    ///
    /// # Errors
    /// As [`Client::request`].
    pub fn ports(&mut self) -> Result<Vec<PortDesc>, ClientError> {
        match self.request(&Request::PortList(EmptyRequest {}))? {
            Reply::PortList(r) => Ok(r.ports),
            other => Err(Self::unexpected(&other)),
        }
    }

    /// `port_stats`: counters of one port or of all.
    ///
    /// # Errors
    /// As [`Client::request`] (`not_found` from the server).
    pub fn port_stats(&mut self, name: Option<&str>) -> Result<Vec<PortStatsDesc>, ClientError> {
        let request = Request::PortStats(PortStatsRequest {
            name: name.map(str::to_owned),
        });
        match self.request(&request)? {
            Reply::PortStats(r) => Ok(r.ports),
            other => Err(Self::unexpected(&other)),
        }
    }

    /// `mac_dump`: learned addresses, optionally of one VLAN and/or one port.
    ///
    /// # Errors
    /// As [`Client::request`] (`not_found` for an unknown port).
    pub fn macs(
        &mut self,
        vlan: Option<u16>,
        port: Option<&str>,
    ) -> Result<Vec<MacDesc>, ClientError> {
        let request = Request::MacDump(MacFilter {
            vlan,
            port: port.map(str::to_owned),
        });
        match self.request(&request)? {
            Reply::MacDump(r) => Ok(r.entries),
            other => Err(Self::unexpected(&other)),
        }
    }

    /// `mac_flush`: forgets learned addresses; returns how many.
    ///
    /// # Errors
    /// As [`Client::request`] (`not_found` for an unknown port).
    pub fn mac_flush(&mut self, vlan: Option<u16>, port: Option<&str>) -> Result<u64, ClientError> {
        let request = Request::MacFlush(MacFilter {
            vlan,
            port: port.map(str::to_owned),
        });
        match self.request(&request)? {
            Reply::MacFlush(r) => Ok(r.flushed),
            other => Err(Self::unexpected(&other)),
        }
    }

    /// `switch_show`: settings, ports and worker counters.
    ///
    /// # Errors
    /// As [`Client::request`].
    pub fn show(&mut self) -> Result<SwitchShowReply, ClientError> {
        match self.request(&Request::SwitchShow(EmptyRequest {}))? {
            Reply::SwitchShow(r) => Ok(r),
            other => Err(Self::unexpected(&other)),
        }
    }

    /// `echo`: a round trip; returns the data sent.
    ///
    /// # Errors
    /// As [`Client::request`].
    pub fn echo(&mut self, data: &str) -> Result<String, ClientError> {
        let request = Request::Echo(EchoRequest {
            data: data.to_owned(),
        });
        match self.request(&request)? {
            Reply::Echo(r) => Ok(r.data),
            other => Err(Self::unexpected(&other)),
        }
    }
    /// `flow_mod`: adds, modifies or deletes flows.
    ///
    /// # Errors
    /// As [`Client::request`] (`bad_field`, `bad_match`, `bad_action`, `table_full`, … with the
    /// path of the offending part).
    pub fn flow_mod(&mut self, request: FlowModRequest) -> Result<FlowModReply, ClientError> {
        match self.request(&Request::FlowMod(request))? {
            Reply::FlowMod(r) => Ok(r),
            other => Err(Self::unexpected(&other)),
        }
    }

    /// `flow_dump`: the flows a filter selects (all parts merged).
    ///
    /// # Errors
    /// As [`Client::request`].
    pub fn flow_dump(&mut self, filter: FlowFilterRequest) -> Result<Vec<FlowDesc>, ClientError> {
        match self.request(&Request::FlowDump(filter))? {
            Reply::FlowDump(r) => Ok(r.flows),
            other => Err(Self::unexpected(&other)),
        }
    }

    /// `flow_aggregate`: count and counters of the flows a filter selects.
    ///
    /// # Errors
    /// As [`Client::request`].
    pub fn flow_aggregate(
        &mut self,
        filter: FlowFilterRequest,
    ) -> Result<FlowAggregateReply, ClientError> {
        match self.request(&Request::FlowAggregate(filter))? {
            Reply::FlowAggregate(r) => Ok(r),
            other => Err(Self::unexpected(&other)),
        }
    }

    /// `table_stats`: the non-empty tables.
    ///
    /// # Errors
    /// As [`Client::request`].
    pub fn table_stats(&mut self) -> Result<TableStatsReply, ClientError> {
        match self.request(&Request::TableStats(EmptyRequest {}))? {
            Reply::TableStats(r) => Ok(r),
            other => Err(Self::unexpected(&other)),
        }
    }

    /// `barrier`: returns once every worker runs with all earlier changes of this session.
    ///
    /// # Errors
    /// As [`Client::request`] (`internal` if a worker did not catch up).
    pub fn barrier(&mut self) -> Result<(), ClientError> {
        match self.request(&Request::Barrier(EmptyRequest {}))? {
            Reply::Barrier(_) => Ok(()),
            other => Err(Self::unexpected(&other)),
        }
    }

    /// `bundle`: applies flow, group and meter mods all or nothing, in order. `ops` may be
    /// [`FlowModRequest`]s, [`GroupModRequest`]s, [`MeterModRequest`]s or a mix as
    /// [`BundleOpDesc`]s.
    ///
    /// # Errors
    /// As [`Client::request`]; an error names the failing op (`body.ops[3]...`,
    /// `body.ops[1].group_mod.buckets[0]...`).
    pub fn bundle<O: Into<BundleOpDesc>>(
        &mut self,
        ops: Vec<O>,
    ) -> Result<BundleReply, ClientError> {
        let ops = ops.into_iter().map(Into::into).collect();
        match self.request(&Request::Bundle(BundleRequest { ops }))? {
            Reply::Bundle(r) => Ok(r),
            other => Err(Self::unexpected(&other)),
        }
    }

    /// `bundle_open`: opens an empty multi-message bundle in this session.
    ///
    /// # Errors
    /// As [`Client::request`] (`exists` if the id is open, `limit` with 4 bundles open, on
    /// `body.bundle_id`).
    pub fn bundle_open(&mut self, bundle_id: u32) -> Result<(), ClientError> {
        match self.request(&Request::BundleOpen(BundleIdRequest { bundle_id }))? {
            Reply::BundleOpen(_) => Ok(()),
            other => Err(Self::unexpected(&other)),
        }
    }

    /// `bundle_add`: stages `ops` in an open bundle; returns how many the bundle holds now.
    ///
    /// # Errors
    /// As [`Client::request`] (`not_found` on `body.bundle_id`; `limit` on `body.ops`; a
    /// syntax error of an op on `body.ops[i]…`, `i` its index in `ops`). Nothing of `ops` is
    /// staged when it fails; what earlier messages staged stays.
    pub fn bundle_add<O: Into<BundleOpDesc>>(
        &mut self,
        bundle_id: u32,
        ops: Vec<O>,
    ) -> Result<u64, ClientError> {
        let ops = ops.into_iter().map(Into::into).collect();
        match self.request(&Request::BundleAdd(BundleAddRequest { bundle_id, ops }))? {
            Reply::BundleAdd(r) => Ok(r.ops),
            other => Err(Self::unexpected(&other)),
        }
    }

    /// `bundle_commit`: applies the staged ops all or nothing and closes the bundle.
    ///
    /// # Errors
    /// As [`Client::request`] (`not_found` on `body.bundle_id`; an op's error named
    /// `bundle.ops[N]…`, `N` its index in the whole bundle). The bundle is closed also when
    /// the commit fails.
    pub fn bundle_commit(&mut self, bundle_id: u32) -> Result<BundleReply, ClientError> {
        match self.request(&Request::BundleCommit(BundleIdRequest { bundle_id }))? {
            Reply::BundleCommit(r) => Ok(r),
            other => Err(Self::unexpected(&other)),
        }
    }

    /// `bundle_discard`: closes a bundle without applying it.
    ///
    /// # Errors
    /// As [`Client::request`] (`not_found` on `body.bundle_id`).
    pub fn bundle_discard(&mut self, bundle_id: u32) -> Result<(), ClientError> {
        match self.request(&Request::BundleDiscard(BundleIdRequest { bundle_id }))? {
            Reply::BundleDiscard(_) => Ok(()),
            other => Err(Self::unexpected(&other)),
        }
    }

    /// The largest frame both ends accept: the server's (from `hello`, asked once) and ours.
    ///
    /// # Errors
    /// As [`Client::hello`].
    pub fn max_frame(&mut self) -> Result<usize, ClientError> {
        let server = match self.server_max_frame {
            Some(n) => n,
            None => {
                self.hello()?;
                self.server_max_frame.unwrap_or(DEFAULT_MAX_FRAME_BYTES)
            }
        };
        Ok(server.min(self.config.max_frame_bytes))
    }

    /// Applies `ops` all or nothing, whatever their size: as one `bundle` if it fits in a
    /// frame (see [`Client::max_frame`]), else as a multi-message bundle (`bundle_open`,
    /// `bundle_add`s of at most `chunk_bytes` of op JSON each, or less if the frame is
    /// smaller, then `bundle_commit`).
    ///
    /// An error about an op is reported with the field `bundle.ops[N]…`, `N` its index in
    /// `ops`, whichever messages carried it (`body.ops[i]` of a `bundle` or of a
    /// `bundle_add` is rewritten). After an error reply the multi-message bundle is closed
    /// (discarded if the commit was not reached).
    ///
    /// # Errors
    /// As [`Client::request`]; [`ClientError::Encode`] for one op larger than a frame.
    pub fn bundle_chunked<O: Into<BundleOpDesc>>(
        &mut self,
        ops: Vec<O>,
        chunk_bytes: usize,
    ) -> Result<BundleReply, ClientError> {
        let ops: Vec<BundleOpDesc> = ops.into_iter().map(Into::into).collect();
        let max_frame = self.max_frame()?;
        let budget = max_frame.saturating_sub(BUNDLE_ENVELOPE_SLACK);
        let sizes: Vec<usize> = ops
            .iter()
            .map(|op| serde_json::to_vec(op).map_or(0, |v| v.len()) + 1)
            .collect();
        let total: usize = sizes.iter().sum();
        if total <= budget {
            return self.bundle(ops).map_err(|e| rebase_op_error(e, 0));
        }
        let chunk = chunk_bytes.clamp(1, budget.max(1));
        let id = self.open_free_bundle()?;
        let mut start = 0;
        let mut ops = ops.into_iter();
        while start < sizes.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < sizes.len() && (end == start || bytes + sizes[end] <= chunk) {
                bytes += sizes[end];
                end += 1;
            }
            let part: Vec<BundleOpDesc> = ops.by_ref().take(end - start).collect();
            if let Err(e) = self.bundle_add(id, part) {
                if matches!(e, ClientError::Remote(_) | ClientError::Encode(_)) {
                    // Best effort: the session's close would discard it too.
                    let _ = self.bundle_discard(id);
                }
                return Err(rebase_op_error(e, start));
            }
            start = end;
        }
        self.bundle_commit(id).map_err(|e| rebase_op_error(e, 0))
    }

    /// Opens a bundle with an id this session does not use yet.
    fn open_free_bundle(&mut self) -> Result<u32, ClientError> {
        let mut tries = 0;
        loop {
            let id = self.next_bundle_id;
            self.next_bundle_id = self.next_bundle_id.wrapping_add(1);
            match self.bundle_open(id) {
                Err(e) if e.code() == Some(ErrorCode::Exists) && tries < 8 => tries += 1,
                other => return other.map(|()| id),
            }
        }
    }

    /// `group_mod`: adds, modifies or deletes groups; returns how many flows a delete removed
    /// with them.
    ///
    /// # Errors
    /// As [`Client::request`] (`exists`, `not_found`, `bad_field`, `bad_action`,
    /// `unsupported`, `limit`, with the path of the offending part).
    pub fn group_mod(&mut self, request: GroupModRequest) -> Result<GroupModReply, ClientError> {
        match self.request(&Request::GroupMod(request))? {
            Reply::GroupMod(r) => Ok(r),
            other => Err(Self::unexpected(&other)),
        }
    }

    /// `group_dump`: one group or all, with counters (all parts merged).
    ///
    /// # Errors
    /// As [`Client::request`].
    pub fn group_dump(&mut self, group_id: Option<u32>) -> Result<Vec<GroupDesc>, ClientError> {
        match self.request(&Request::GroupDump(GroupDumpRequest { group_id }))? {
            Reply::GroupDump(r) => Ok(r.groups),
            other => Err(Self::unexpected(&other)),
        }
    }

    /// `meter_mod`: adds, modifies or deletes meters; returns how many flows a delete removed
    /// with them.
    ///
    /// # Errors
    /// As [`Client::request`] (`exists`, `not_found`, `bad_field`, `limit`).
    pub fn meter_mod(&mut self, request: MeterModRequest) -> Result<MeterModReply, ClientError> {
        match self.request(&Request::MeterMod(request))? {
            Reply::MeterMod(r) => Ok(r),
            other => Err(Self::unexpected(&other)),
        }
    }

    /// `meter_dump`: one meter or all, with counters (all parts merged).
    ///
    /// # Errors
    /// As [`Client::request`].
    pub fn meter_dump(&mut self, meter_id: Option<u32>) -> Result<Vec<MeterDesc>, ClientError> {
        match self.request(&Request::MeterDump(MeterDumpRequest { meter_id }))? {
            Reply::MeterDump(r) => Ok(r.meters),
            other => Err(Self::unexpected(&other)),
        }
    }
}

/// Rewrites the field of an error about op `i` of a message (`body.ops[i]…`) or of a bundle
/// (`bundle.ops[i]…`) to `bundle.ops[offset + i]…`.
fn rebase_op_error(e: ClientError, offset: usize) -> ClientError {
    let ClientError::Remote(mut r) = e else {
        return e;
    };
    let rebased = r.field.as_deref().and_then(|f| {
        let rest = f
            .strip_prefix("body.ops[")
            .or_else(|| f.strip_prefix("bundle.ops["))?;
        let (i, tail) = rest.split_once(']')?;
        let i = i.parse::<usize>().ok()?.checked_add(offset)?;
        Some(format!("bundle.ops[{i}]{tail}"))
    });
    if rebased.is_some() {
        r.field = rebased;
    }
    ClientError::Remote(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(field: Option<&str>) -> ClientError {
        ClientError::Remote(ErrorReply::from(match field {
            Some(f) => ProtoError::field(ErrorCode::BadMatch, f, "x"),
            None => ProtoError::new(ErrorCode::Limit, "x"),
        }))
    }

    fn field(e: &ClientError) -> Option<&str> {
        e.remote()?.field.as_deref()
    }

    #[test]
    fn op_errors_are_named_by_their_index_in_the_whole_bundle() {
        let e = rebase_op_error(remote(Some("body.ops[3].match.ip_dst")), 1000);
        assert_eq!(field(&e), Some("bundle.ops[1003].match.ip_dst"));
        let e = rebase_op_error(remote(Some("bundle.ops[12345].actions[1]")), 0);
        assert_eq!(field(&e), Some("bundle.ops[12345].actions[1]"));
        let e = rebase_op_error(remote(Some("body.ops[7]")), 10);
        assert_eq!(field(&e), Some("bundle.ops[17]"));
        let e = rebase_op_error(remote(Some("body.ops")), 10);
        assert_eq!(field(&e), Some("body.ops"));
        let e = rebase_op_error(remote(None), 10);
        assert_eq!(field(&e), None);
        assert!(matches!(
            rebase_op_error(ClientError::Closed, 3),
            ClientError::Closed
        ));
    }
}
