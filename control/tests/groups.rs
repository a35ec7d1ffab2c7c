//! Group and meter messages against a real server driving a real switch: group_mod,
//! group_dump, meter_mod, meter_dump; flows that use them; coded errors that change nothing;
//! counters that follow traffic through in-memory ports.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::TestServer;
use control::proto::{
    ActionDesc, ErrorCode, FlowDesc, FlowFilterRequest, FlowModRequest, GroupDesc, GroupModRequest,
    GroupTypeDesc, MeterDesc, MeterModRequest, MeterUnitDesc, Request,
};
use control::{Client, ClientError};
use datapath::port::mem::MemPeer;
use serde_json::json;

fn group(body: serde_json::Value) -> GroupModRequest {
    serde_json::from_value(body).expect("a valid group_mod body")
}

fn meter(body: serde_json::Value) -> MeterModRequest {
    serde_json::from_value(body).expect("a valid meter_mod body")
}

fn fm(body: serde_json::Value) -> FlowModRequest {
    serde_json::from_value(body).expect("a valid flow_mod body")
}

fn remote(e: ClientError) -> (ErrorCode, String, String) {
    match e {
        ClientError::Remote(r) => (
            r.error_code().expect("a known code"),
            r.field.unwrap_or_default(),
            r.message,
        ),
        other => panic!("expected an error reply, got {other}"),
    }
}

fn flows(c: &mut Client) -> Vec<FlowDesc> {
    c.flow_dump(FlowFilterRequest::default())
        .expect("dumping the flows")
}

fn ids(groups: &[GroupDesc]) -> Vec<u32> {
    groups.iter().map(|g| g.group_id).collect()
}

#[test]
fn groups_are_added_dumped_modified_and_deleted() {
    let server = TestServer::start("grp-crud");
    let mut c = server.client();
    let hello = c.hello().unwrap();
    for t in ["group_mod", "group_dump", "meter_mod", "meter_dump"] {
        assert!(hello.capabilities.iter().any(|c| c == t), "{t}");
    }
    assert!(c.group_dump(None).unwrap().is_empty());
    let r = c
        .group_mod(group(json!({
            "command": "add", "group_id": 10, "type": "select",
            "buckets": [{"weight": 10, "actions": [{"output": 2}]}, {"actions": [{"output": 3}]}]
        })))
        .unwrap();
    assert_eq!(r.removed_flows, 0);
    c.group_mod(group(json!({
        "command": "add", "group_id": 2, "type": "fast_failover",
        "buckets": [{"watch_port": 1, "actions": [{"output": 1}]},
                    {"watch_port": 2, "actions": [{"output": 2}]}]
    })))
    .unwrap();
    c.group_mod(group(
        json!({"command": "add", "group_id": 0, "type": "all"}),
    ))
    .unwrap();
    // By id, with the default weight filled in and counters at zero.
    let all = c.group_dump(None).unwrap();
    assert_eq!(ids(&all), [0, 2, 10]);
    let g = &all[2];
    assert_eq!(g.group_type, GroupTypeDesc::Select);
    let weights: Vec<u16> = g.buckets.iter().map(|b| b.weight).collect();
    assert_eq!(weights, [10, 1]);
    assert_eq!(g.buckets[1].actions, vec![ActionDesc::Output(3)]);
    assert_eq!((g.packets, g.bytes, g.buckets[0].packets), (0, 0, 0));
    assert_eq!(all[1].buckets[1].watch_port, Some(2));
    assert!(all[0].buckets.is_empty());
    // One group; an unknown id is an empty list.
    assert_eq!(ids(&c.group_dump(Some(2)).unwrap()), [2]);
    assert!(c.group_dump(Some(99)).unwrap().is_empty());
    // Modify replaces the type and buckets.
    c.group_mod(group(json!({
        "command": "modify", "group_id": 10, "type": "indirect",
        "buckets": [{"actions": [{"set_field": {"eth_dst": "02:00:00:00:00:09"}}, {"output": 4}]}]
    })))
    .unwrap();
    let g = c.group_dump(Some(10)).unwrap().remove(0);
    assert_eq!(g.group_type, GroupTypeDesc::Indirect);
    assert_eq!(g.buckets.len(), 1);
    assert_eq!(g.buckets[0].weight, 0);
    // The dumped group reads back as the same group-mod.
    let again = GroupModRequest::from_group_mod(&g.to_group_mod().unwrap());
    assert_eq!(again.group_type, Some(GroupTypeDesc::Indirect));
    assert_eq!(again.buckets[0].actions, g.buckets[0].actions);
    // Delete one (an unknown id deletes nothing), then every group.
    let del = |id: Option<u32>| GroupModRequest {
        group_id: id,
        ..GroupModRequest::new(control::proto::ModCommandDesc::Delete)
    };
    assert_eq!(c.group_mod(del(Some(0))).unwrap().removed_flows, 0);
    assert_eq!(c.group_mod(del(Some(77))).unwrap().removed_flows, 0);
    assert_eq!(ids(&c.group_dump(None).unwrap()), [2, 10]);
    c.group_mod(del(None)).unwrap();
    assert!(c.group_dump(None).unwrap().is_empty());
    c.barrier().unwrap();
}

#[test]
fn meters_are_added_dumped_modified_and_deleted() {
    let server = TestServer::start("mtr-crud");
    let mut c = server.client();
    assert!(c.meter_dump(None).unwrap().is_empty());
    c.meter_mod(meter(json!({
        "command": "add", "meter_id": 5, "unit": "pktps", "rate": 100, "burst": 10
    })))
    .unwrap();
    c.meter_mod(meter(
        json!({"command": "add", "meter_id": 1, "rate": 10000}),
    ))
    .unwrap();
    let all = c.meter_dump(None).unwrap();
    assert_eq!(
        all,
        vec![
            MeterDesc {
                meter_id: 1,
                unit: MeterUnitDesc::Kbps,
                rate: 10_000,
                ..MeterDesc::default()
            },
            MeterDesc {
                meter_id: 5,
                unit: MeterUnitDesc::Pktps,
                rate: 100,
                burst: 10,
                ..MeterDesc::default()
            },
        ]
    );
    c.meter_mod(meter(
        json!({"command": "modify", "meter_id": 5, "unit": "kbps", "rate": 64}),
    ))
    .unwrap();
    let m = c.meter_dump(Some(5)).unwrap();
    assert_eq!(
        (m[0].unit, m[0].rate, m[0].burst),
        (MeterUnitDesc::Kbps, 64, 0)
    );
    assert!(c.meter_dump(Some(6)).unwrap().is_empty());
    let r = c
        .meter_mod(meter(json!({"command": "delete", "meter_id": 1})))
        .unwrap();
    assert_eq!(r.removed_flows, 0);
    assert_eq!(c.meter_dump(None).unwrap().len(), 1);
    c.meter_mod(meter(json!({"command": "delete"}))).unwrap();
    assert!(c.meter_dump(None).unwrap().is_empty());
}

#[test]
fn flows_use_groups_and_meters_only_while_they_exist() {
    let server = TestServer::start("grp-flows");
    let mut c = server.client();
    let uses_group = json!({"command": "add", "priority": 5, "match": {"in_port": 1},
                            "actions": [{"group": 5}]});
    let e = c.flow_mod(fm(uses_group.clone())).unwrap_err();
    let (code, field, _) = remote(e);
    assert_eq!(
        (code, field.as_str()),
        (ErrorCode::NotFound, "body.actions[0]")
    );
    let uses_meter = json!({"command": "add", "priority": 6, "match": {"in_port": 3},
                            "actions": [{"meter": 3}, {"output": 1}]});
    let e = c.flow_mod(fm(uses_meter.clone())).unwrap_err();
    let (code, field, _) = remote(e);
    assert_eq!(
        (code, field.as_str()),
        (ErrorCode::NotFound, "body.actions[0]")
    );
    assert_eq!(flows(&mut c).len(), 1);

    c.group_mod(group(json!({
        "command": "add", "group_id": 5, "type": "all",
        "buckets": [{"actions": [{"output": 2}]}, {"actions": [{"output": 3}]}]
    })))
    .unwrap();
    c.meter_mod(meter(
        json!({"command": "add", "meter_id": 3, "unit": "pktps", "rate": 10}),
    ))
    .unwrap();
    c.flow_mod(fm(uses_group)).unwrap();
    c.flow_mod(fm(uses_meter)).unwrap();
    // A group in the action set, in another table.
    c.flow_mod(fm(json!({
        "command": "add", "table": 2, "match": {"in_port": 2},
        "instructions": {"write": [{"group": 5}]}
    })))
    .unwrap();
    assert_eq!(flows(&mut c).len(), 4);

    // Modifying a group keeps the flows.
    c.group_mod(group(json!({
        "command": "modify", "group_id": 5, "type": "all",
        "buckets": [{"actions": [{"output": 4}]}]
    })))
    .unwrap();
    assert_eq!(flows(&mut c).len(), 4);
    // Deleting it removes the two flows that use it; the reply counts them, the dump agrees.
    let r = c
        .group_mod(group(json!({"command": "delete", "group_id": 5})))
        .unwrap();
    assert_eq!(r.removed_flows, 2);
    let left = flows(&mut c);
    let prios: Vec<u16> = left.iter().map(|f| f.priority).collect();
    assert_eq!(prios, [6, 0]);
    let r = c.meter_mod(meter(json!({"command": "delete"}))).unwrap();
    assert_eq!(r.removed_flows, 1);
    let left = flows(&mut c);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].instructions.apply, vec![ActionDesc::Normal]);
    c.barrier().unwrap();
}

/// (request, code, field): group and meter mods that must fail and change nothing.
#[test]
fn hostile_group_and_meter_mods_get_coded_errors_and_change_nothing() {
    let server = TestServer::start("grp-hostile");
    let mut c = server.client();
    c.group_mod(group(json!({
        "command": "add", "group_id": 1, "type": "all",
        "buckets": [{"actions": [{"output": 1}]}]
    })))
    .unwrap();
    c.meter_mod(meter(json!({"command": "add", "meter_id": 1, "rate": 100})))
        .unwrap();
    let groups_before = c.group_dump(None).unwrap();
    let meters_before = c.meter_dump(None).unwrap();
    let flows_before = flows(&mut c);

    let out = |p: u32| json!({"actions": [{"output": p}]});
    let many_buckets: Vec<serde_json::Value> = (0..65).map(|_| out(1)).collect();
    let many_actions: Vec<serde_json::Value> = (0..65).map(|_| json!({"output": 1})).collect();
    let g = |v: serde_json::Value| Request::GroupMod(group(v));
    let m = |v: serde_json::Value| Request::MeterMod(meter(v));
    let cases = [
        (
            g(json!({"command": "add", "group_id": 1, "type": "all"})),
            ErrorCode::Exists,
            "body.group_id",
        ),
        (
            g(json!({"command": "modify", "group_id": 9, "type": "all"})),
            ErrorCode::NotFound,
            "body.group_id",
        ),
        (
            g(json!({"command": "add", "group_id": 2, "type": "indirect",
                     "buckets": [out(1), out(2)]})),
            ErrorCode::BadAction,
            "body.buckets",
        ),
        (
            g(
                json!({"command": "add", "group_id": 2, "type": "fast_failover",
                     "buckets": [out(1)]}),
            ),
            ErrorCode::BadAction,
            "body.buckets[0].watch_port",
        ),
        (
            g(
                json!({"command": "add", "group_id": 2, "type": "fast_failover",
                     "buckets": [{"watch_port": 0, "actions": [{"output": 1}]}]}),
            ),
            ErrorCode::BadAction,
            "body.buckets[0].watch_port",
        ),
        (
            g(json!({"command": "add", "group_id": 2, "type": "all",
                     "buckets": [{"actions": [{"output": 1}, {"group": 1}]}]})),
            ErrorCode::Unsupported,
            "body.buckets[0].actions[1]",
        ),
        (
            g(json!({"command": "add", "group_id": 2, "type": "all",
                     "buckets": [out(1), {"actions": ["normal"]}]})),
            ErrorCode::Unsupported,
            "body.buckets[1].actions[0]",
        ),
        (
            g(json!({"command": "add", "group_id": 2, "type": "all",
                     "buckets": [{"actions": [{"meter": 1}]}]})),
            ErrorCode::Unsupported,
            "body.buckets[0].actions[0]",
        ),
        (
            g(json!({"command": "add", "group_id": 2, "type": "all",
                     "buckets": [out(1), out(0)]})),
            ErrorCode::BadAction,
            "body.buckets[1].actions[0]",
        ),
        (
            g(json!({"command": "add", "group_id": 2, "type": "all",
                     "buckets": [{"actions": [{"push_vlan": "0x0800"}]}]})),
            ErrorCode::BadAction,
            "body.buckets[0].actions[0]",
        ),
        (
            g(json!({"command": "add", "group_id": 2, "type": "select",
                     "buckets": [{"weight": 0, "actions": [{"output": 1}]}]})),
            ErrorCode::BadAction,
            "body.buckets[0].weight",
        ),
        (
            g(json!({"command": "add", "group_id": 2, "type": "all",
                     "buckets": many_buckets})),
            ErrorCode::BadAction,
            "body.buckets",
        ),
        (
            g(json!({"command": "add", "group_id": 2, "type": "all",
                     "buckets": [{"actions": many_actions}]})),
            ErrorCode::BadAction,
            "body.buckets[0].actions",
        ),
        (
            g(json!({"command": "add", "group_id": 4_294_967_041u32, "type": "all"})),
            ErrorCode::BadField,
            "body.group_id",
        ),
        (
            g(json!({"command": "delete", "group_id": 4_294_967_295u32})),
            ErrorCode::BadField,
            "body.group_id",
        ),
        (
            g(json!({"command": "add", "group_id": 2})),
            ErrorCode::BadField,
            "body.type",
        ),
        (
            g(json!({"command": "add", "group_id": 2, "type": "all",
                     "buckets": [{"actions": [{"goto_table": 1}]}]})),
            ErrorCode::BadField,
            "body.buckets[0].actions[0]",
        ),
        (
            g(json!({"command": "add", "group_id": 2, "type": "all",
                     "buckets": [{"actions": [{"set_field": {"ip_dst": "10.0.0.300"}}]}]})),
            ErrorCode::BadField,
            "body.buckets[0].actions[0].set_field.ip_dst",
        ),
        (
            g(json!({"command": "delete", "group_id": 1, "type": "all"})),
            ErrorCode::BadField,
            "body.type",
        ),
        (
            m(json!({"command": "add", "meter_id": 2, "rate": 0})),
            ErrorCode::BadField,
            "body.rate",
        ),
        (
            m(json!({"command": "add", "meter_id": 2, "rate": 1_000_000_001u64})),
            ErrorCode::BadField,
            "body.rate",
        ),
        (
            m(json!({"command": "add", "meter_id": 2})),
            ErrorCode::BadField,
            "body.rate",
        ),
        (
            m(json!({"command": "add", "meter_id": 0, "rate": 5})),
            ErrorCode::BadField,
            "body.meter_id",
        ),
        (
            m(json!({"command": "add", "meter_id": 4_294_967_041u32, "rate": 5})),
            ErrorCode::BadField,
            "body.meter_id",
        ),
        (
            m(json!({"command": "add", "rate": 5})),
            ErrorCode::BadField,
            "body.meter_id",
        ),
        (
            m(json!({"command": "add", "meter_id": 1, "rate": 5})),
            ErrorCode::Exists,
            "body.meter_id",
        ),
        (
            m(json!({"command": "modify", "meter_id": 2, "rate": 5})),
            ErrorCode::NotFound,
            "body.meter_id",
        ),
        (
            m(json!({"command": "delete", "meter_id": 1, "rate": 5})),
            ErrorCode::BadField,
            "body.rate",
        ),
    ];
    for (request, code, field) in cases {
        let text = format!("{request:?}");
        let (got_code, got_field, message) = match c.exchange(&request).unwrap() {
            control::Reply::Error(e) => (
                e.error_code().expect("a known code"),
                e.field.unwrap_or_default(),
                e.message,
            ),
            other => panic!("{text} succeeded: {}", other.type_name()),
        };
        assert_eq!(
            (got_code, got_field.as_str()),
            (code, field),
            "{text}: {message}"
        );
        assert!(!message.is_empty());
    }
    assert_eq!(c.group_dump(None).unwrap(), groups_before);
    assert_eq!(c.meter_dump(None).unwrap(), meters_before);
    assert_eq!(flows(&mut c).len(), flows_before.len());
    assert_eq!(c.echo("ok").unwrap(), "ok");
}

/// A 60-byte frame from port `src`'s station to `dst`'s (an experimental EtherType).
fn frame(src: u8, dst: u8) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, dst, 2, 0, 0, 0, 0, src, 0x88, 0xb5];
    f.resize(60, 0);
    f
}

fn received(peer: &MemPeer, want: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut n = 0;
    while n < want && Instant::now() < deadline {
        if peer.recv_timeout(Duration::from_millis(50)).is_some() {
            n += 1;
        }
    }
    // Anything more that is still on its way.
    while peer.recv_timeout(Duration::from_millis(100)).is_some() {
        n += 1;
    }
    n
}

/// Polls `read` until `done` holds (counters are written by the workers).
fn eventually<T: std::fmt::Debug>(mut read: impl FnMut() -> T, done: impl Fn(&T) -> bool) -> T {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let v = read();
        if done(&v) || Instant::now() >= deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn group_and_meter_counters_follow_traffic() {
    let (tx, rx) = mpsc::channel();
    let server = TestServer::start_with(
        "grp-traffic",
        |c| c,
        move |sw| {
            let peers = common::mem_ports(sw, &["m1", "m2", "m3"]);
            let _ = tx.send(peers.clone());
            peers
        },
    );
    let peers = rx.recv().expect("the mem ports");
    let mut c = server.client();
    c.group_mod(group(json!({
        "command": "add", "group_id": 1, "type": "all",
        "buckets": [{"actions": [{"output": 2}]}, {"actions": [{"output": 3}]}]
    })))
    .unwrap();
    c.meter_mod(meter(
        json!({"command": "add", "meter_id": 1, "unit": "pktps", "rate": 1, "burst": 1}),
    ))
    .unwrap();
    c.flow_mod(fm(
        json!({"command": "add", "priority": 10, "match": {"in_port": 1},
                         "actions": [{"group": 1}]}),
    ))
    .unwrap();
    c.flow_mod(fm(
        json!({"command": "add", "priority": 10, "match": {"in_port": 2},
                         "actions": [{"meter": 1}, {"output": 3}]}),
    ))
    .unwrap();
    c.barrier().unwrap();

    for _ in 0..5 {
        assert!(peers[0].send(&frame(1, 2)));
    }
    assert_eq!(received(&peers[1], 5), 5);
    assert_eq!(received(&peers[2], 5), 5);
    let g = eventually(
        || c.group_dump(Some(1)).unwrap().remove(0),
        |g| g.packets == 5 && g.buckets.iter().all(|b| b.packets == 5),
    );
    assert_eq!((g.packets, g.bytes), (5, 300));
    assert_eq!(
        g.buckets
            .iter()
            .map(|b| (b.packets, b.bytes))
            .collect::<Vec<_>>(),
        [(5, 300), (5, 300)]
    );

    // 1 packet/s with a burst of 1: of 20 frames at once, one or two pass.
    for _ in 0..20 {
        assert!(peers[1].send(&frame(2, 3)));
    }
    let passed = received(&peers[2], 1) as u64;
    let m = eventually(
        || c.meter_dump(Some(1)).unwrap().remove(0),
        |m| m.packets_in == 20,
    );
    assert_eq!((m.packets_in, m.bytes_in), (20, 1200));
    assert!((1..=2).contains(&passed), "{passed} passed");
    assert_eq!(m.packets_dropped, 20 - passed);
    assert_eq!(m.bytes_dropped, (20 - passed) * 60);
    // The drops are counted on the ingress port too.
    let stats = eventually(
        || c.port_stats(Some("m2")).unwrap().remove(0),
        |s| s.rx_drops.get("meter_drop") == Some(&(20 - passed)),
    );
    assert_eq!(stats.rx_drops.get("meter_drop"), Some(&(20 - passed)));
}

#[test]
fn a_large_group_dump_comes_back_in_parts() {
    use control::proto::{self, GroupDumpRequest, Reply};
    use datapath::ofp::action::Action;
    use datapath::ofp::group::{Bucket, GroupType};
    use datapath::ofp::pipeline::{GroupMod, ModCommand};

    const N: u32 = 600;
    let server = TestServer::start_with(
        "grp-huge",
        |c| c,
        |sw| {
            for id in 0..N {
                sw.group_mod(&GroupMod {
                    command: ModCommand::Add,
                    id: Some(id),
                    kind: GroupType::Select,
                    buckets: (1..=8)
                        .map(|p| Bucket {
                            weight: 1,
                            watch_port: None,
                            actions: vec![Action::Output(p)],
                        })
                        .collect(),
                })
                .expect("adding a group");
            }
            sw.commit();
            Vec::new()
        },
    );
    let mut s = common::raw(&server.path);
    let req = proto::encode_request(4, &Request::GroupDump(GroupDumpRequest::default())).unwrap();
    common::send_frame(&mut s, &req).unwrap();
    let mut got = Vec::new();
    let mut parts = 0;
    loop {
        let d = common::read_reply(&mut s).expect("connection closed mid-dump");
        assert_eq!(d.xid, 4);
        let Reply::GroupDump(part) = d.msg else {
            panic!(
                "expected a group_dump_reply part, got {}",
                d.msg.type_name()
            );
        };
        assert!(part.groups.len() <= 256);
        got.extend(part.groups.iter().map(|g| g.group_id));
        parts += 1;
        if !part.more {
            break;
        }
    }
    assert_eq!(got, (0..N).collect::<Vec<_>>());
    assert_eq!(parts, 3);
    // The client merges the parts.
    assert_eq!(server.client().group_dump(None).unwrap().len(), N as usize);
}
