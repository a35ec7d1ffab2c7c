//! Shared helpers of the privileged end-to-end tests: a real `vswitchd`, real namespaces, real
//! traffic. Everything created is removed by Drop guards (testbed), even when a test panics.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use control::proto::msg::{
    MacDesc, MacFilter, PortAddRequest, PortDelRequest, PortStatsDesc, PortStatsRequest, PortType,
    SwitchShowReply, VlanSpec,
};
use control::{Client, Reply, Request};
use testbed::{Container, Daemon};

pub const VSNET: &str = env!("CARGO_BIN_EXE_vsnet");

pub fn vswitchd() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vswitchd"))
}

/// A running daemon and a client connected to it.
pub struct Lab {
    pub client: Client,
    pub daemon: Daemon,
}

impl Lab {
    pub fn start(args: &[&str]) -> Self {
        let daemon = Daemon::start(vswitchd(), args).expect("vswitchd starts");
        let client = Client::connect(&daemon.socket).expect("client connects");
        Self { client, daemon }
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
}

/// Parses `key=value` out of a vsnet output line.
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// Sends `bytes` of deterministic data over TCP from `from` to `to` and asserts the receiver
/// got exactly those bytes (same length and hash).
pub fn tcp_transfer(from: &Container, to: &Container, bytes: u64, port: u16) {
    let listen = format!("{}:{port}", to.addr);
    let sink = to
        .ns
        .command(VSNET)
        .args(["tcp-sink", "--listen", &listen, "--timeout", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let src = from
        .ns
        .exec(
            VSNET,
            &[
                "tcp-source",
                "--connect",
                &listen,
                "--bytes",
                &bytes.to_string(),
                "--seed",
                "42",
            ],
        )
        .expect("tcp source completes");
    let out = sink.wait_with_output().unwrap();
    let sent = String::from_utf8_lossy(&src.stdout).trim().to_owned();
    let got = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .to_owned();
    assert_eq!(
        field(&got, "bytes"),
        Some(bytes.to_string().as_str()),
        "sink: {got} / {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        field(&sent, "hash"),
        field(&got, "hash"),
        "payload hashes differ: {sent} vs {got}"
    );
    assert!(field(&got, "hash").is_some());
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
