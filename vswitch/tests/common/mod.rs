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
