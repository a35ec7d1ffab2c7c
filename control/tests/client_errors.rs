//! The typed client against a real server: results, and structured errors for bad requests.

mod common;

use common::{TestServer, mem_ports};
use control::proto::{PortAddRequest, PortType, VlanSpec};
use control::{Client, ClientError, ErrorCode};

fn remote(e: ClientError) -> (ErrorCode, Option<String>) {
    match e {
        ClientError::Remote(r) => (r.error_code().expect("known code"), r.field),
        other => panic!("expected an error reply, got {other}"),
    }
}

#[test]
fn nonexistent_ports_are_structured_not_found_errors() {
    let srv = TestServer::start_with("nf", |c| c, |sw| mem_ports(sw, &["mem0"]));
    let mut c = srv.client();
    let before = c.ports().unwrap();

    let e = c.port_del("nope0").unwrap_err();
    assert!(e.to_string().contains("nope0"), "{e}");
    assert_eq!(remote(e), (ErrorCode::NotFound, Some("body.name".into())));
    assert_eq!(
        remote(c.port_stats(Some("nope0")).unwrap_err()),
        (ErrorCode::NotFound, Some("body.name".into()))
    );
    assert_eq!(
        remote(c.macs(None, Some("nope0")).unwrap_err()),
        (ErrorCode::NotFound, Some("body.port".into()))
    );
    assert_eq!(
        remote(c.mac_flush(Some(10), Some("nope0")).unwrap_err()),
        (ErrorCode::NotFound, Some("body.port".into()))
    );
    // Errors change nothing, and the session stays usable.
    assert_eq!(c.ports().unwrap(), before);
    srv.stop();
}

#[test]
fn bad_port_add_requests_are_refused_without_change() {
    let srv = TestServer::start_with("add", |c| c, |sw| mem_ports(sw, &["mem0"]));
    let mut c = srv.client();
    let before = c.ports().unwrap();

    assert_eq!(
        remote(c.port_add(PortAddRequest::new("mem0")).unwrap_err()),
        (ErrorCode::Exists, Some("body.name".into()))
    );
    let mut req = PortAddRequest::new("x0");
    req.vlan = Some(VlanSpec::access(5000));
    assert_eq!(
        remote(c.port_add(req).unwrap_err()),
        (ErrorCode::BadField, Some("body.vlan.access".into()))
    );
    let mut req = PortAddRequest::new("x0");
    req.vlan = Some(VlanSpec::trunk(vec![10, 0], None));
    assert_eq!(
        remote(c.port_add(req).unwrap_err()),
        (ErrorCode::BadField, Some("body.vlan.trunks[1]".into()))
    );
    let mut req = PortAddRequest::new("x0");
    req.queues = 1000;
    assert_eq!(
        remote(c.port_add(req).unwrap_err()),
        (ErrorCode::BadField, Some("body.queues".into()))
    );
    assert_eq!(
        remote(
            c.port_add(PortAddRequest::new("much-too-long-name"))
                .unwrap_err()
        ),
        (ErrorCode::BadField, Some("body.name".into()))
    );
    // A device that does not exist: the backend fails to open (as root: no device; without
    // privileges: the socket call fails) — either way `port_failed`.
    let mut req = PortAddRequest::new("vswnodev0");
    req.port_type = Some(PortType::Afpacket);
    let (code, _) = remote(c.port_add(req).unwrap_err());
    assert_eq!(code, ErrorCode::PortFailed);

    assert_eq!(c.ports().unwrap(), before);
    srv.stop();
}

#[test]
fn typed_helpers_return_the_switch_state() {
    let srv = TestServer::start_with("typed", |c| c, |sw| mem_ports(sw, &["mem0", "mem1"]));
    let mut c = srv.client();

    let hello = c.hello().unwrap();
    assert_eq!(hello.versions, vec![1]);
    assert!(hello.daemon.starts_with("vswitchd "));
    for t in control::Request::TYPES {
        assert!(hello.capabilities.iter().any(|c| c == t), "{t}");
    }

    let ports = c.ports().unwrap();
    let names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["mem0", "mem1"]);
    assert_eq!(ports[0].port_type, "mem");
    assert_eq!(ports[0].vlan.access, Some(1));

    let stats = c.port_stats(None).unwrap();
    assert_eq!(stats.len(), 2);
    assert_eq!(
        stats[0].rx_drops.len(),
        datapath::stats::DropReason::COUNT,
        "every reason is reported"
    );
    let one = c.port_stats(Some("mem1")).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].name, "mem1");

    assert!(c.macs(None, None).unwrap().is_empty());
    assert!(c.macs(Some(1), Some("mem0")).unwrap().is_empty());
    assert_eq!(c.mac_flush(None, None).unwrap(), 0);

    let show = c.show().unwrap();
    assert_eq!(show.ports.len(), 2);
    assert_eq!(show.workers as usize, show.worker_stats.len());
    assert_eq!(show.mac_table_max, 65_536);

    c.port_del("mem0").unwrap();
    let names: Vec<String> = c.ports().unwrap().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["mem1"]);
    assert_eq!(c.echo("bye").unwrap(), "bye");
    srv.stop();
}

#[test]
fn connecting_to_a_missing_socket_is_a_connect_error() {
    let path = common::temp_socket("missing");
    let e = Client::connect(&path).unwrap_err();
    assert!(matches!(e, ClientError::Connect { .. }), "{e}");
}
