//! Shared helpers of the privileged end-to-end tests: a real `vswitchd`, real namespaces, real
//! traffic. Everything created is removed by Drop guards (testbed), even when a test panics.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use control::flowtext;
use control::proto::msg::{
    MacDesc, MacFilter, PortAddRequest, PortDelRequest, PortDesc, PortStatsDesc, PortStatsRequest,
    PortType, SwitchShowReply, VlanSpec,
};
use control::proto::{BundleReply, FlowDesc, FlowFilterRequest, FlowModReply, FlowModRequest};
use control::proto::{
    GroupDesc, GroupModReply, GroupModRequest, MeterDesc, MeterModReply, MeterModRequest,
};
use control::{Client, ClientConfig, ClientError, Reply, Request};
use datapath::ofp::pipeline::{FlowModCommand, ModCommand};
use testbed::{Container, Daemon};

pub const VSNET: &str = env!("CARGO_BIN_EXE_vsnet");

pub fn vswitchd() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vswitchd"))
}

/// A running daemon and a client connected to it.
pub struct Lab {
    pub client: Client,
    pub daemon: Daemon,
    /// Settings of `client` (and of [`Lab::connect`]).
    pub client_config: ClientConfig,
}

/// Removes a file when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Lab {
    pub fn start(args: &[&str]) -> Self {
        let daemon = Daemon::start(vswitchd(), args).expect("vswitchd starts");
        Self::with_client(daemon, ClientConfig::default())
    }

    /// A daemon started through `wrapper` (`Daemon::start_wrapped`: `setpriv … --`).
    pub fn start_wrapped(wrapper: &[&str], args: &[&str]) -> Self {
        let daemon = Daemon::start_wrapped(wrapper, vswitchd(), args).expect("vswitchd starts");
        Self::with_client(daemon, ClientConfig::default())
    }

    /// A daemon with default settings and a client that waits up to `timeout` per request.
    pub fn start_with_timeout(timeout: Duration, args: &[&str]) -> Self {
        let daemon = Daemon::start(vswitchd(), args).expect("vswitchd starts");
        let client_config = ClientConfig {
            timeout,
            ..ClientConfig::default()
        };
        Self::with_client(daemon, client_config)
    }

    /// `daemon` and a client connected to it with `client_config`.
    fn with_client(daemon: Daemon, client_config: ClientConfig) -> Self {
        let client =
            Client::connect_with(&daemon.socket, client_config.clone()).expect("client connects");
        Self {
            client,
            daemon,
            client_config,
        }
    }

    /// A daemon whose control frames may be up to `max_frame_bytes` (its `[control]
    /// max_frame_bytes` setting, through a configuration file), with a client that sends and
    /// accepts frames that large and waits up to `timeout` per request.
    pub fn start_with_max_frame(max_frame_bytes: usize, timeout: Duration, args: &[&str]) -> Self {
        let path = std::env::temp_dir().join(format!("{}.toml", testbed::unique("vscfg")));
        let _rm = RemoveOnDrop(path.clone());
        std::fs::write(
            &path,
            format!("[control]\nmax_frame_bytes = {max_frame_bytes}\n"),
        )
        .unwrap();
        let mut all = vec!["--config", path.to_str().unwrap()];
        all.extend_from_slice(args);
        let daemon = Daemon::start(vswitchd(), &all).expect("vswitchd starts");
        Self::with_client(
            daemon,
            ClientConfig {
                timeout,
                max_frame_bytes,
            },
        )
    }

    /// Another connection to the daemon, with the lab client's settings.
    pub fn connect(&self) -> Result<Client, ClientError> {
        Client::connect_with(&self.daemon.socket, self.client_config.clone())
    }

    pub fn request(&mut self, req: Request) -> Reply {
        self.client.request(&req).expect("request round-trips")
    }

    pub fn add_port(&mut self, name: &str, ty: PortType, vlan: Option<VlanSpec>) -> String {
        let mut r = PortAddRequest::new(name);
        r.port_type = Some(ty);
        r.vlan = vlan;
        match self.request(Request::PortAdd(r)) {
            Reply::PortAdd(p) => p.port.port_type,
            other => panic!("port_add {name}: {other:?}\n{}", self.daemon.log()),
        }
    }

    pub fn del_port(&mut self, name: &str) {
        match self.request(Request::PortDel(PortDelRequest { name: name.into() })) {
            Reply::PortDel(_) => {}
            other => panic!("port_del {name}: {other:?}"),
        }
    }

    pub fn stats(&mut self, name: &str) -> PortStatsDesc {
        match self.request(Request::PortStats(PortStatsRequest {
            name: Some(name.into()),
        })) {
            Reply::PortStats(mut s) => s.ports.remove(0),
            other => panic!("port_stats {name}: {other:?}"),
        }
    }

    pub fn macs(&mut self) -> Vec<MacDesc> {
        match self.request(Request::MacDump(MacFilter::default())) {
            Reply::MacDump(m) => m.entries,
            other => panic!("mac_dump: {other:?}"),
        }
    }

    pub fn show(&mut self) -> SwitchShowReply {
        match self.request(Request::SwitchShow(Default::default())) {
            Reply::SwitchShow(s) => s,
            other => panic!("switch_show: {other:?}"),
        }
    }

    pub fn ports(&mut self) -> Vec<PortDesc> {
        self.client.ports().expect("port_list")
    }

    /// The port number of the port named `name`.
    pub fn port_no(&mut self, name: &str) -> u32 {
        self.ports()
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no port {name}"))
            .id
    }

    /// One flow line (with an optional command word, see [`split_command`]) as a request,
    /// port names resolved through `port_list`.
    pub fn parse(&mut self, line: &str) -> FlowModRequest {
        let ports = self.ports();
        parse_line(&ports, line)
    }

    /// Sends one flow line as a `flow_mod` (no barrier).
    pub fn try_flow_mod(&mut self, line: &str) -> Result<FlowModReply, ClientError> {
        let req = self.parse(line);
        self.client.flow_mod(req)
    }

    /// Sends each line of `text` (blank lines and `#` comments skipped; a line may start with a
    /// command word, see [`split_command`]) as a `flow_mod`, then a barrier. Panics on an
    /// error, showing the line and the daemon's answer.
    pub fn flows(&mut self, text: &str) -> Vec<FlowModReply> {
        let ports = self.ports();
        let mut replies = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match self.client.flow_mod(parse_line(&ports, line)) {
                Ok(r) => replies.push(r),
                Err(e) => panic!("flow_mod `{line}`: {e}"),
            }
        }
        self.barrier();
        replies
    }

    /// Applies `lines` (as [`Lab::flows`]) all or nothing, without a barrier: one `bundle` if
    /// it fits in a frame, else a multi-message bundle ([`Client::bundle_chunked`]; an error
    /// about an op names it `bundle.ops[N]…`, `N` its index in `lines`).
    pub fn try_bundle(&mut self, lines: &[String]) -> Result<BundleReply, ClientError> {
        let ports = self.ports();
        let ops: Vec<FlowModRequest> = lines.iter().map(|l| parse_line(&ports, l)).collect();
        self.client
            .bundle_chunked(ops, control::client::DEFAULT_BUNDLE_CHUNK_BYTES)
    }

    /// Applies `lines` as [`Lab::try_bundle`], then a barrier; panics on an error.
    pub fn bundle(&mut self, lines: &[String]) -> BundleReply {
        let reply = self
            .try_bundle(lines)
            .unwrap_or_else(|e| panic!("bundle of {} ops: {e}", lines.len()));
        self.barrier();
        reply
    }

    /// `barrier`: every worker forwards with every change made so far.
    pub fn barrier(&mut self) {
        self.client.barrier().expect("barrier");
    }

    /// The flows `filter` selects (flow text without actions; "" = every flow).
    pub fn dump_flows(&mut self, filter: &str) -> Vec<FlowDesc> {
        let req = if filter.trim().is_empty() {
            FlowFilterRequest::default()
        } else {
            let ports = self.ports();
            FlowFilterRequest::from_flow_mod(&parse_fm(&ports, FlowModCommand::Delete, filter))
        };
        self.client.flow_dump(req).expect("flow_dump")
    }

    /// The one flow with exactly this match and priority (`priority=…,MATCH`), if any.
    pub fn dump_flow_strict(&mut self, flow: &str) -> Option<FlowDesc> {
        let ports = self.ports();
        let req =
            FlowFilterRequest::from_flow_mod(&parse_fm(&ports, FlowModCommand::DeleteStrict, flow));
        let mut flows = self.client.flow_dump(req).expect("flow_dump strict");
        assert!(flows.len() <= 1, "strict dump selected {flows:?}");
        flows.pop()
    }

    /// Flows in all tables (`table_stats`).
    pub fn flow_count(&mut self) -> u64 {
        let t = self.client.table_stats().expect("table_stats");
        t.tables.iter().map(|t| t.active).sum()
    }

    /// Sends one group line (`control::flowtext::parse_group`, ports by name) as a `group_mod`
    /// for `command` without a barrier; a syntax error panics with the caret rendering.
    pub fn try_group_mod(
        &mut self,
        command: ModCommand,
        text: &str,
    ) -> Result<GroupModReply, ClientError> {
        let ports = self.ports();
        let resolve = |name: &str| ports.iter().find(|p| p.name == name).map(|p| p.id);
        let parsed = flowtext::parse_group(text, command, &resolve)
            .unwrap_or_else(|e| panic!("group text does not parse: {}", e.render(text)));
        let r = self
            .client
            .group_mod(GroupModRequest::from_group_mod(&parsed.group_mod));
        if let Err(ClientError::Remote(e)) = &r {
            let at = e.field.as_deref().unwrap_or("");
            let span = parsed.span_of(at.strip_prefix("body.").unwrap_or(at));
            panic!(
                "group_mod refused: {}",
                flowtext::render_caret(text, span, &e.to_string())
            );
        }
        r
    }

    /// [`Lab::try_group_mod`], then a barrier; panics on an error.
    pub fn group_mod(&mut self, command: ModCommand, text: &str) -> GroupModReply {
        let r = self
            .try_group_mod(command, text)
            .unwrap_or_else(|e| panic!("group_mod `{text}`: {e}"));
        self.barrier();
        r
    }

    /// Sends one meter line (`control::flowtext::parse_meter`) as a `meter_mod` for `command`,
    /// then a barrier; panics on an error (with a caret under the token the server refused).
    pub fn meter_mod(&mut self, command: ModCommand, text: &str) -> MeterModReply {
        let parsed = flowtext::parse_meter(text, command)
            .unwrap_or_else(|e| panic!("meter text does not parse: {}", e.render(text)));
        let r = match self
            .client
            .meter_mod(MeterModRequest::from_meter_mod(&parsed.meter_mod))
        {
            Ok(r) => r,
            Err(ClientError::Remote(e)) => {
                let at = e.field.as_deref().unwrap_or("");
                let span = parsed.span_of(at.strip_prefix("body.").unwrap_or(at));
                panic!(
                    "meter_mod refused: {}",
                    flowtext::render_caret(text, span, &e.to_string())
                );
            }
            Err(e) => panic!("meter_mod `{text}`: {e}"),
        };
        self.barrier();
        r
    }

    /// Group `id` with its counters (`group_dump`); panics when it does not exist.
    pub fn group(&mut self, id: u32) -> GroupDesc {
        let mut g = self.client.group_dump(Some(id)).expect("group_dump");
        assert_eq!(g.len(), 1, "group_dump {id}: {g:?}");
        g.remove(0)
    }

    /// Meter `id` with its counters (`meter_dump`); panics when it does not exist.
    pub fn meter(&mut self, id: u32) -> MeterDesc {
        let mut m = self.client.meter_dump(Some(id)).expect("meter_dump");
        assert_eq!(m.len(), 1, "meter_dump {id}: {m:?}");
        m.remove(0)
    }

    /// A dumped group as group text (ports by name) with its counters, for messages.
    pub fn group_text(&mut self, g: &GroupDesc) -> String {
        let ports = self.ports();
        let names = |id: u32| ports.iter().find(|p| p.id == id).map(|p| p.name.clone());
        let text = g.to_group_mod().map_or_else(
            |e| format!("(unreadable group {}: {e})", g.group_id),
            |gm| flowtext::format_group_mod(&gm, &names),
        );
        let buckets: Vec<String> = g.buckets.iter().map(|b| b.packets.to_string()).collect();
        format!(
            "{text} packets={} buckets=[{}]",
            g.packets,
            buckets.join(",")
        )
    }

    /// A dumped flow as flow text (ports by name), for messages.
    pub fn flow_text(&mut self, f: &FlowDesc) -> String {
        let ports = self.ports();
        let names = |id: u32| ports.iter().find(|p| p.id == id).map(|p| p.name.clone());
        flowtext::format_flow_mod(&f.to_flow_mod().expect("readable flow"), &names)
    }
}

/// `add …`, `modify …`/`mod …`, `modify_strict …`, `delete …`/`del …`, `delete_strict …`
/// (vsctl's bundle syntax); a line without a command word is an add.
pub fn split_command(line: &str) -> (FlowModCommand, &str) {
    let line = line.trim();
    let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let command = match word {
        "add" => FlowModCommand::Add,
        "modify" | "mod" => FlowModCommand::Modify,
        "modify_strict" => FlowModCommand::ModifyStrict,
        "delete" | "del" => FlowModCommand::Delete,
        "delete_strict" => FlowModCommand::DeleteStrict,
        _ => return (FlowModCommand::Add, line),
    };
    (command, rest.trim_start())
}

/// Parses flow text for `command` with `control::flowtext`, port names resolved in `ports`;
/// panics with the caret rendering on a syntax error.
pub fn parse_fm(
    ports: &[PortDesc],
    command: FlowModCommand,
    text: &str,
) -> datapath::ofp::pipeline::FlowMod {
    let resolve = |name: &str| ports.iter().find(|p| p.name == name).map(|p| p.id);
    match flowtext::parse_flow(text, command, &resolve) {
        Ok(p) => p.flow_mod,
        Err(e) => panic!("flow text does not parse: {}", e.render(text)),
    }
}

/// One flow line (optional command word) as a `flow_mod` request.
pub fn parse_line(ports: &[PortDesc], line: &str) -> FlowModRequest {
    let (command, text) = split_command(line);
    FlowModRequest::from_flow_mod(&parse_fm(ports, command, text))
}

/// A program running in the background (in a test namespace) whose stdout lines are
/// collected as they come. Killed (by its PID) when dropped.
pub struct Background {
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
    what: String,
}

impl Background {
    /// Starts `cmd` with its stdout piped; with `ready`, waits (up to 10 s) until it printed
    /// that line.
    pub fn spawn(mut cmd: Command, what: &str, ready: Option<&str>) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {what}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let bg = Self {
            child: Some(child),
            lines,
            reader: Some(reader),
            what: what.to_owned(),
        };
        if let Some(r) = ready {
            assert!(
                bg.wait_line(Duration::from_secs(10), |l| l == r),
                "{what} did not print `{r}`"
            );
        }
        bg
    }

    /// The lines printed so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits (up to `timeout`) until the lines printed so far satisfy `f`, and returns them
    /// (satisfying or not): a line the program printed just before an event the test saw may
    /// not have been read from its pipe yet.
    pub fn wait_lines(&self, timeout: Duration, f: impl Fn(&[String]) -> bool) -> Vec<String> {
        testbed::wait_until(timeout, || f(&self.lines.lock().unwrap()));
        self.lines()
    }

    /// Waits until a printed line satisfies `f`.
    pub fn wait_line(&self, timeout: Duration, f: impl Fn(&str) -> bool) -> bool {
        testbed::wait_until(timeout, || self.lines.lock().unwrap().iter().any(|l| f(l)))
    }

    /// Waits for the program to exit by itself; its stdout lines.
    pub fn wait(mut self) -> Vec<String> {
        if let Some(mut c) = self.child.take() {
            let st = c.wait().unwrap();
            assert!(st.success(), "{} failed: {st}", self.what);
        }
        self.join()
    }

    /// Ends the program (SIGKILL to its PID) and returns its stdout lines.
    pub fn stop(mut self) -> Vec<String> {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.join()
    }

    fn join(&mut self) -> Vec<String> {
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        std::mem::take(&mut *self.lines.lock().unwrap())
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `vsnet udp-sink` in `c` on `listen`, for up to `count` datagrams or `timeout_secs`;
/// returns once it is listening. [`udp_received`] reads the result.
pub fn udp_sink(c: &Container, listen: &str, count: u64, timeout_secs: u64) -> Background {
    let mut cmd = c.ns.command(VSNET);
    cmd.args([
        "udp-sink",
        "--listen",
        listen,
        "--count",
        &count.to_string(),
        "--timeout",
        &timeout_secs.to_string(),
    ]);
    Background::spawn(cmd, &format!("udp-sink {listen}"), Some("listening"))
}

/// Waits for a [`udp_sink`] to finish; how many datagrams it received.
pub fn udp_received(sink: Background) -> u64 {
    let lines = sink.wait();
    lines
        .iter()
        .rev()
        .find_map(|l| field(l, "received"))
        .and_then(|v| v.parse().ok())
        .expect("udp-sink reports received=N")
}

/// `vsnet udp-source` in `from`: `count` datagrams of `size` bytes to `to` (`IP:PORT`).
pub fn udp_send(from: &Container, to: &str, count: u64, size: usize, gap_us: u64) {
    from.ns
        .exec(
            VSNET,
            &[
                "udp-source",
                "--to",
                to,
                "--count",
                &count.to_string(),
                "--size",
                &size.to_string(),
                "--gap-us",
                &gap_us.to_string(),
            ],
        )
        .expect("udp-source");
}

/// `vsnet raw-recv` on `dev` in `c` for up to `timeout_secs`: one hex line per frame.
pub fn raw_capture(c: &Container, dev: &str, timeout_secs: u64) -> Background {
    let mut cmd = c.ns.command(VSNET);
    cmd.args([
        "raw-recv",
        "--dev",
        dev,
        "--timeout",
        &timeout_secs.to_string(),
    ]);
    Background::spawn(cmd, &format!("raw-recv {dev}"), None)
}

/// Decodes a hex line of `vsnet raw-recv`.
pub fn unhex(line: &str) -> Option<Vec<u8>> {
    let line = line.trim();
    if !line.len().is_multiple_of(2) {
        return None;
    }
    (0..line.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(line.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Sends `bytes` of deterministic data over TCP from `from`, connecting to `connect`, to a
/// sink in `to` listening on `listen` (which may differ when flows rewrite addresses), and
/// asserts the sink got exactly those bytes (same length and hash).
pub fn tcp_transfer_via(from: &Container, connect: &str, to: &Container, listen: &str, bytes: u64) {
    let mut cmd = to.ns.command(VSNET);
    cmd.args(["tcp-sink", "--listen", listen, "--timeout", "30"]);
    let sink = Background::spawn(cmd, &format!("tcp-sink {listen}"), Some("listening"));
    let t0 = Instant::now();
    let src = from.ns.exec(
        VSNET,
        &[
            "tcp-source",
            "--connect",
            connect,
            "--bytes",
            &bytes.to_string(),
            "--seed",
            "7",
        ],
    );
    let src = match src {
        Ok(o) => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        Err(e) => panic!(
            "tcp-source to {connect} (sink {listen}) after {:?}: {e}",
            t0.elapsed()
        ),
    };
    let got = sink.wait();
    let received = got.last().cloned().unwrap_or_default();
    assert_eq!(
        field(&received, "bytes"),
        Some(bytes.to_string().as_str()),
        "sink {listen}: {received}"
    );
    assert_eq!(
        field(&src, "hash"),
        field(&received, "hash"),
        "payload hashes differ: {src} vs {received}"
    );
}

pub use testbed::field;

/// Sends `bytes` of deterministic data over TCP from `from` to `to` and asserts the receiver
/// got exactly those bytes (same length and hash).
pub fn tcp_transfer(from: &Container, to: &Container, bytes: u64, port: u16) {
    let t = testbed::tcp_transfer(Path::new(VSNET), from, to, bytes, port)
        .expect("tcp source completes");
    assert_eq!(
        field(&t.received, "bytes"),
        Some(bytes.to_string().as_str()),
        "sink: {} / {}",
        t.received,
        t.receiver_log
    );
    assert_eq!(
        field(&t.sent, "hash"),
        field(&t.received, "hash"),
        "payload hashes differ: {} vs {}",
        t.sent,
        t.received
    );
    assert!(t.intact(bytes));
}

/// Sends `count` UDP datagrams from `from` to `to`; returns how many arrived.
pub fn udp(from: &Container, to: &Container, count: u64, port: u16) -> u64 {
    let listen = format!("{}:{port}", to.addr);
    let sink = to
        .ns
        .command(VSNET)
        .args([
            "udp-sink",
            "--listen",
            &listen,
            "--count",
            &count.to_string(),
            "--timeout",
            "5",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    from.ns
        .exec(
            VSNET,
            &[
                "udp-source",
                "--to",
                &listen,
                "--count",
                &count.to_string(),
                "--size",
                "512",
                "--gap-us",
                "200",
            ],
        )
        .unwrap();
    let out = sink.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    field(text.lines().last().unwrap_or(""), "received")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
