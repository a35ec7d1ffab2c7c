//! The control server applies the kernel's link announcements as they come: with housekeeping
//! (and its once-a-second carrier poll) an hour away, a veth port's link going down and up is
//! still reported to a subscribed controller. Privileged: the test makes its own veth pair and
//! namespace (deleted on drop, also on panic); without root it prints why and passes, unless
//! `CI=true`.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::TestServer;
use control::proto::{Notification, SubscribeRequest};
use datapath::port::PortKind;
use datapath::switch::{PortSpec, VlanMode};

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The namespace and the veth's host end, deleted on drop.
struct Lab {
    ns: String,
    host: String,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host])
            .output();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

fn root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status.lines().find_map(|l| l.strip_prefix("Uid:"));
    if uid.and_then(|v| v.split_whitespace().nth(1)) == Some("0") {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "privileged test cannot run under CI=true: not root"
    );
    eprintln!("skipping privileged test: not root (needs CAP_NET_ADMIN for veths)");
    false
}

fn next_link(ctl: &mut control::Client) -> (String, String, bool) {
    match ctl.next_notification(Duration::from_secs(5)).unwrap() {
        Some(Notification::PortStatus(s)) => (s.reason, s.port.name, s.port.link_up),
        other => panic!("expected a port_status within 5 s, got {other:?}"),
    }
}

#[test]
fn link_changes_reach_a_controller_without_waiting_for_housekeeping() {
    if !root() {
        return;
    }
    let pid = std::process::id();
    let lab = Lab {
        ns: format!("cl{pid}ns"),
        host: format!("clh{pid}"),
    };
    let peer = format!("clp{pid}");
    ip(&["netns", "add", &lab.ns]);
    ip(&[
        "link", "add", &lab.host, "type", "veth", "peer", "name", &peer,
    ]);
    ip(&["link", "set", &peer, "netns", &lab.ns]);
    ip(&["link", "set", &lab.host, "up"]);
    ip(&["-n", &lab.ns, "link", "set", &peer, "up"]);
    let host = lab.host.clone();
    let server = TestServer::start_with(
        "links",
        |c| control::ServerConfig {
            housekeeping_interval: Duration::from_secs(3600),
            poll_timeout: Duration::from_secs(1),
            ..c
        },
        move |sw| {
            sw.add_port(PortSpec {
                name: host,
                kind: Some(PortKind::AfPacket),
                queues: 1,
                vlan: VlanMode::default(),
                xdp_mode: None,
                xdp_frags: false,
                mac_max: None,
            })
            .expect("adding the veth port");
            Vec::new()
        },
    );
    let mut ctl = server.client();
    ctl.subscribe(SubscribeRequest::only(false, false, true))
        .unwrap();
    assert!(ctl.ports().unwrap()[0].link_up);

    ip(&["-n", &lab.ns, "link", "set", &peer, "down"]);
    assert_eq!(
        next_link(&mut ctl),
        ("modify".into(), lab.host.clone(), false)
    );
    assert!(!ctl.ports().unwrap()[0].link_up);
    ip(&["-n", &lab.ns, "link", "set", &peer, "up"]);
    assert_eq!(
        next_link(&mut ctl),
        ("modify".into(), lab.host.clone(), true)
    );
    server.stop();
    drop(lab);
}
