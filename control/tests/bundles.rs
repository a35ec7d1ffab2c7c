//! Multi-message bundles (`bundle_open`, `bundle_add`, `bundle_commit`, `bundle_discard`)
//! against a real server driving a real switch, with the default 1 MiB frame limit; bundles
//! that mix flow, group and meter mods.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::TestServer;
use control::client::DEFAULT_BUNDLE_CHUNK_BYTES;
use control::proto::{
    BundleOpDesc, DEFAULT_MAX_FRAME_BYTES, ErrorCode, FlowFilterRequest, FlowModRequest,
    GroupModRequest, GroupTypeDesc, MAX_BUNDLE_OPS, MAX_OPEN_BUNDLES, ModCommandDesc,
};
use control::{Client, ClientError};
use datapath::port::mem::MemPeer;
use serde_json::json;

fn fm(body: serde_json::Value) -> FlowModRequest {
    serde_json::from_value(body).expect("a valid flow_mod body")
}

/// Flow `i` of table 1: distinct match, a few actions (about 150 bytes of JSON).
fn rule(i: u32) -> FlowModRequest {
    fm(json!({
        "command": "add", "table": 1, "priority": 10,
        "match": {"eth_type": "0x0800", "ip_proto": 17,
                  "ip_dst": format!("10.{}.{}.{}", i >> 16, (i >> 8) & 0xff, i & 0xff),
                  "udp_dst": 1000 + (i % 50_000)},
        "actions": [{"set_field": {"ip_dscp": i % 64}}, {"output": 2}]
    }))
}

/// A valid op that changes nothing (no flow in table 9).
fn harmless() -> FlowModRequest {
    fm(json!({"command": "delete_strict", "table": 9}))
}

/// `(code, field)` of an error reply.
fn remote(r: Result<impl std::fmt::Debug, ClientError>) -> (ErrorCode, String) {
    match r {
        Err(ClientError::Remote(e)) => (
            e.error_code().expect("a known code"),
            e.field.unwrap_or_default(),
        ),
        other => panic!("expected an error reply, got {other:?}"),
    }
}

fn flow_count(c: &mut Client) -> u64 {
    c.flow_aggregate(FlowFilterRequest::default())
        .expect("flow_aggregate")
        .flows
}

#[test]
fn thirty_thousand_ops_over_many_frames_are_applied_atomically() {
    let server = TestServer::start("bnd-big");
    let mut c = server.client();
    let hello = c.hello().unwrap();
    assert_eq!(hello.max_frame_bytes, DEFAULT_MAX_FRAME_BYTES as u64);
    for t in [
        "bundle_open",
        "bundle_add",
        "bundle_commit",
        "bundle_discard",
    ] {
        assert!(hello.capabilities.iter().any(|c| c == t), "{t}");
    }
    let ops: Vec<FlowModRequest> = (0..30_000).map(rule).collect();
    // Too large for one `bundle` frame.
    let one = c.bundle(ops.clone());
    assert!(matches!(one, Err(ClientError::Encode(_))), "{one:?}");
    let mut c = server.client();

    c.bundle_open(1).unwrap();
    for (k, chunk) in ops.chunks(1000).enumerate() {
        let staged = c.bundle_add(1, chunk.to_vec()).unwrap();
        assert_eq!(staged, (k as u64 + 1) * 1000);
    }
    // Staged, not applied: another session sees the tables unchanged.
    let mut other = server.client();
    assert_eq!(flow_count(&mut other), 1);
    let r = c.bundle_commit(1).unwrap();
    assert_eq!(
        (r.ops, r.added, r.modified, r.removed),
        (30_000, 30_000, 0, 0)
    );
    assert_eq!(flow_count(&mut other), 30_001);
    let t1 = c
        .flow_aggregate(serde_json::from_value(json!({"table": 1})).unwrap())
        .unwrap();
    assert_eq!(t1.flows, 30_000);
    // The commit closed the bundle.
    assert_eq!(
        remote(c.bundle_commit(1)),
        (ErrorCode::NotFound, "body.bundle_id".to_owned())
    );

    // The convenience path: a delete and the same 30,000 again, chunked by the client.
    let mut again = vec![fm(json!({"command": "delete", "table": 1}))];
    again.extend(ops);
    let r = c.bundle_chunked(again, DEFAULT_BUNDLE_CHUNK_BYTES).unwrap();
    assert_eq!((r.ops, r.added, r.removed), (30_001, 30_000, 30_000));
    assert_eq!(flow_count(&mut other), 30_001);
    // A small list goes as one `bundle`.
    let r = c
        .bundle_chunked(vec![harmless(), rule(1)], DEFAULT_BUNDLE_CHUNK_BYTES)
        .unwrap();
    assert_eq!((r.ops, r.added, r.removed), (2, 1, 1));
}

#[test]
fn a_bad_op_fails_the_commit_by_its_index_in_the_bundle_and_closes_it() {
    let server = TestServer::start("bnd-bad");
    let mut c = server.client();
    let mut ops: Vec<FlowModRequest> = (0..5000).map(rule).collect();
    // Chunk 3 (ops 2000..3000): tcp_dst without ip_proto=6, found at commit.
    ops[2500] = fm(json!({
        "command": "add", "table": 1, "match": {"eth_type": "0x0800", "tcp_dst": 80},
        "actions": ["normal"]
    }));
    c.bundle_open(9).unwrap();
    for chunk in ops.chunks(1000) {
        c.bundle_add(9, chunk.to_vec()).unwrap();
    }
    match c.bundle_commit(9) {
        Err(ClientError::Remote(e)) => {
            assert_eq!(e.error_code(), Some(ErrorCode::BadMatch));
            assert_eq!(e.field.as_deref(), Some("bundle.ops[2500].match.tcp_dst"));
            assert!(e.message.contains("ip_proto=6"), "{}", e.message);
        }
        other => panic!("expected bad_match, got {other:?}"),
    }
    assert_eq!(flow_count(&mut c), 1, "a failed commit changed the flows");
    // The bundle is gone (OpenFlow: a failed commit closes it).
    assert_eq!(
        remote(c.bundle_commit(9)),
        (ErrorCode::NotFound, "body.bundle_id".to_owned())
    );
    assert_eq!(remote(c.bundle_discard(9)).0, ErrorCode::NotFound);
    // The id can be used again.
    c.bundle_open(9).unwrap();
    c.bundle_discard(9).unwrap();

    // Through the convenience path: the same global index, nothing changed.
    assert_eq!(
        remote(c.bundle_chunked(ops.clone(), 100_000)),
        (
            ErrorCode::BadMatch,
            "bundle.ops[2500].match.tcp_dst".to_owned()
        )
    );
    // A syntax error in a later chunk is named by its index in the whole list, and the
    // half-built bundle is discarded (all 4 ids free again).
    let mut syntax = ops;
    syntax[2500] = rule(2500);
    syntax[4321] = fm(json!({"command": "add", "match": {"ip_dst": "10.0.0.300"}}));
    assert_eq!(
        remote(c.bundle_chunked(syntax, 100_000)),
        (
            ErrorCode::BadField,
            "bundle.ops[4321].match.ip_dst".to_owned()
        )
    );
    assert_eq!(flow_count(&mut c), 1);
    for id in 100..100 + MAX_OPEN_BUNDLES as u32 {
        c.bundle_open(id).unwrap();
    }
}

#[test]
fn discard_unknown_ids_and_syntax_errors_in_bundle_add() {
    let server = TestServer::start("bnd-discard");
    let mut c = server.client();
    for r in [
        remote(c.bundle_add(77, vec![harmless()])),
        remote(c.bundle_commit(77)),
        remote(c.bundle_discard(77)),
    ] {
        assert_eq!(r, (ErrorCode::NotFound, "body.bundle_id".to_owned()));
    }
    // Discard: nothing applied, the bundle is gone.
    c.bundle_open(3).unwrap();
    assert_eq!(c.bundle_add(3, (0..10).map(rule).collect()).unwrap(), 10);
    c.bundle_discard(3).unwrap();
    assert_eq!(remote(c.bundle_commit(3)).0, ErrorCode::NotFound);
    assert_eq!(flow_count(&mut c), 1);

    // Opening an open id: `exists`.
    c.bundle_open(4).unwrap();
    assert_eq!(
        remote(c.bundle_open(4)),
        (ErrorCode::Exists, "body.bundle_id".to_owned())
    );
    // A syntax error in bundle_add: named in that message, nothing of it staged, earlier
    // ops kept.
    assert_eq!(c.bundle_add(4, (0..10).map(rule).collect()).unwrap(), 10);
    let bad = vec![
        rule(10),
        fm(json!({"command": "add", "match": {"eth_type": "0x0800", "ip_dst": "10.0.0.300"}})),
    ];
    assert_eq!(
        remote(c.bundle_add(4, bad)),
        (ErrorCode::BadField, "body.ops[1].match.ip_dst".to_owned())
    );
    let bad = vec![fm(
        json!({"command": "add", "actions": [{"set_field": {"ip_dst": "x"}}]}),
    )];
    assert_eq!(
        remote(c.bundle_add(4, bad)).1,
        "body.ops[0].actions[0].set_field.ip_dst"
    );
    assert_eq!(c.bundle_add(4, Vec::<BundleOpDesc>::new()).unwrap(), 10);
    let r = c.bundle_commit(4).unwrap();
    assert_eq!((r.ops, r.added), (10, 10));
    assert_eq!(flow_count(&mut c), 11);
}

#[test]
fn open_bundles_and_staged_ops_are_limited() {
    let server = TestServer::start("bnd-limits");
    let mut c = server.client();
    for id in 0..MAX_OPEN_BUNDLES as u32 {
        c.bundle_open(id).unwrap();
    }
    assert_eq!(
        remote(c.bundle_open(1000)),
        (ErrorCode::Limit, "body.bundle_id".to_owned())
    );
    c.bundle_discard(2).unwrap();
    c.bundle_open(1000).unwrap();

    // 200,000 ops staged in bundle 0 (the limit), then one more is refused.
    for _ in 0..MAX_BUNDLE_OPS / 10_000 {
        c.bundle_add(0, vec![harmless(); 10_000]).unwrap();
    }
    assert_eq!(
        remote(c.bundle_add(0, vec![harmless()])),
        (ErrorCode::Limit, "body.ops".to_owned())
    );
    // Nothing of the refused message was staged; the bundle still commits.
    assert_eq!(
        c.bundle_add(0, Vec::<BundleOpDesc>::new()).unwrap(),
        MAX_BUNDLE_OPS as u64
    );
    let r = c.bundle_commit(0).unwrap();
    assert_eq!((r.ops, r.removed), (MAX_BUNDLE_OPS as u64, 0));
    // The session is still usable.
    assert_eq!(c.echo("ok").unwrap(), "ok");
}

#[test]
fn staged_bytes_are_bounded_per_session_and_in_all() {
    let server = TestServer::start_with(
        "bnd-bytes",
        |c| control::ServerConfig {
            max_bundle_bytes: 5 << 20,
            max_bundle_bytes_total: (5 << 20) + (1 << 19),
            ..c
        },
        |_| Vec::new(),
    );
    let mut a = server.client();
    a.bundle_open(1).unwrap();
    // About 165 bytes of JSON + 240 per op + ~340 of staged match fields and actions:
    // 5,000 ops cost about 3.7 MB.
    a.bundle_add(1, (0..5000).map(rule).collect()).unwrap();
    let e = a
        .bundle_add(1, (5000..10_000).map(rule).collect())
        .unwrap_err();
    let r = e.remote().expect("an error reply");
    assert_eq!(
        (r.error_code(), r.field.as_deref()),
        (Some(ErrorCode::Limit), Some("body.ops"))
    );
    assert!(r.message.contains("this session"), "{}", r.message);
    // Another session is within its own bound but not within the total.
    let mut b = server.client();
    b.bundle_open(1).unwrap();
    let e = b.bundle_add(1, (0..5000).map(rule).collect()).unwrap_err();
    let r = e.remote().expect("an error reply");
    assert_eq!(r.error_code(), Some(ErrorCode::Limit));
    assert!(r.message.contains("all sessions"), "{}", r.message);
    // Closing session `a` discards its bundle and gives its bytes back.
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match b.bundle_add(1, (0..5000).map(rule).collect()) {
            Ok(n) => {
                assert_eq!(n, 5000);
                break;
            }
            // The server notices the close at its next wake-up.
            Err(e) if e.code() == Some(ErrorCode::Limit) => {
                assert!(Instant::now() < deadline, "bytes never released");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("{e}"),
        }
    }
    let r = b.bundle_commit(1).unwrap();
    assert_eq!(r.added, 5000);
}

#[test]
fn closing_the_session_discards_its_bundles() {
    let server = TestServer::start("bnd-close");
    let mut a = server.client();
    a.bundle_open(5).unwrap();
    a.bundle_add(5, (0..100).map(rule).collect()).unwrap();
    drop(a);
    // A new session cannot commit it, and nothing was applied.
    let mut b = server.client();
    assert_eq!(
        remote(b.bundle_commit(5)),
        (ErrorCode::NotFound, "body.bundle_id".to_owned())
    );
    assert_eq!(flow_count(&mut b), 1);
    // Bundle ids are per session: two sessions may use the same id.
    let mut c = server.client();
    b.bundle_open(5).unwrap();
    c.bundle_open(5).unwrap();
    b.bundle_add(5, vec![rule(1)]).unwrap();
    assert_eq!(c.bundle_commit(5).unwrap().ops, 0);
    assert_eq!(b.bundle_commit(5).unwrap().added, 1);
}

// ---------------------------------------------------------------------------------------------
// Bundles with group and meter mods
// ---------------------------------------------------------------------------------------------

/// An op from its JSON form, as the server reads it (a flow-mod body, `{"group_mod": …}`,
/// `{"meter_mod": …}`).
fn op(body: serde_json::Value) -> BundleOpDesc {
    serde_json::from_value(body).expect("a valid bundle op")
}

fn group_add(id: u32, kind: &str, ports: &[u32]) -> BundleOpDesc {
    let buckets: Vec<serde_json::Value> = ports
        .iter()
        .map(|p| json!({"actions": [{"output": p}]}))
        .collect();
    op(json!({"group_mod": {"command": "add", "group_id": id, "type": kind, "buckets": buckets}}))
}

fn group_user(in_port: u32, group: u32) -> BundleOpDesc {
    op(
        json!({"command": "add", "priority": 10, "match": {"in_port": in_port},
              "actions": [{"group": group}]}),
    )
}

/// What a bundle must leave alone: groups, meters and flows as dumped.
fn state(c: &mut Client) -> (String, String, usize) {
    let groups = format!("{:?}", c.group_dump(None).expect("group_dump"));
    let meters = format!("{:?}", c.meter_dump(None).expect("meter_dump"));
    (
        groups,
        meters,
        c.flow_dump(FlowFilterRequest::default())
            .expect("flow_dump")
            .len(),
    )
}

/// A 60-byte UDP/IPv4 frame from port `src`'s station to `dst`'s.
fn udp_frame(src: u8, dst: u8, sport: u16) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, dst, 2, 0, 0, 0, 0, src, 0x08, 0x00];
    f.extend_from_slice(&[0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&[10, 0, 0, src, 10, 0, 0, dst]);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&[0x10, 0x00, 0, 8, 0, 0]);
    f.resize(60, 0);
    f
}

/// Frames that arrive at `peer` within a short while.
fn drain(peer: &MemPeer) -> usize {
    let mut n = 0;
    while peer.recv_timeout(Duration::from_millis(200)).is_some() {
        n += 1;
    }
    n
}

#[test]
fn a_bundle_adds_a_select_group_and_the_flows_that_use_it_at_once() {
    let (tx, rx) = mpsc::channel();
    let server = TestServer::start_with(
        "bnd-grp-traffic",
        |c| c,
        move |sw| {
            let peers = common::mem_ports(sw, &["b1", "b2", "b3"]);
            let _ = tx.send(peers.clone());
            peers
        },
    );
    let peers = rx.recv().expect("the mem ports");
    let mut c = server.client();
    let r = c
        .bundle(vec![
            group_add(1, "select", &[2, 3]),
            op(
                json!({"meter_mod": {"command": "add", "meter_id": 1, "unit": "pktps",
                                    "rate": 1000000}}),
            ),
            op(
                json!({"command": "add", "priority": 10, "match": {"in_port": 1},
                      "actions": [{"meter": 1}, {"group": 1}]}),
            ),
        ])
        .unwrap();
    assert_eq!((r.ops, r.added, r.modified, r.removed), (3, 1, 0, 0));
    c.barrier().unwrap();
    let g = c.group_dump(Some(1)).unwrap();
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].buckets.len(), 2);
    assert_eq!(c.meter_dump(Some(1)).unwrap().len(), 1);

    // Connections spread over the two buckets; each frame leaves by exactly one.
    let sent = 64;
    for sport in 0..sent {
        assert!(peers[0].send(&udp_frame(1, 2, 1000 + sport)));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let (mut a, mut b) = (0, 0);
    while a + b < usize::from(sent) && Instant::now() < deadline {
        a += drain(&peers[1]);
        b += drain(&peers[2]);
    }
    assert_eq!(a + b, usize::from(sent), "{a} + {b}");
    assert!(a > 0 && b > 0, "select spread {a}/{b}");
}

#[test]
fn a_bad_group_op_fails_the_bundle_and_changes_nothing() {
    let server = TestServer::start("bnd-grp-bad");
    let mut c = server.client();
    c.bundle(vec![
        group_add(7, "all", &[1]),
        op(json!({"command": "add", "table": 3, "priority": 1, "actions": [{"output": 1}]})),
    ])
    .unwrap();
    let before = state(&mut c);
    // A group in a bucket (no chaining): `unsupported`, as `group_mod` answers.
    let bad = op(
        json!({"group_mod": {"command": "add", "group_id": 2, "type": "all",
        "buckets": [{"actions": [{"output": 1}, {"group": 7}]}]}}),
    );
    let e = remote(c.bundle(vec![
        group_add(1, "all", &[2]),
        bad.clone(),
        group_user(1, 1),
    ]));
    assert_eq!(
        e,
        (
            ErrorCode::Unsupported,
            "body.ops[1].group_mod.buckets[0].actions[1]".to_owned()
        )
    );
    assert_eq!(state(&mut c), before);
    // The datapath's own checks name the op too (an existing id: `exists`).
    assert_eq!(
        remote(c.bundle(vec![group_user(1, 7), group_add(7, "all", &[2])])),
        (
            ErrorCode::Exists,
            "body.ops[1].group_mod.group_id".to_owned()
        )
    );
    // A malformed meter op is refused while decoding.
    assert_eq!(
        remote(c.bundle(vec![
            group_add(1, "all", &[2]),
            op(json!({"meter_mod": {"command": "add", "meter_id": 1, "rate": 0}})),
        ])),
        (ErrorCode::BadField, "body.ops[1].meter_mod.rate".to_owned())
    );
    assert_eq!(state(&mut c), before);
    // The same bundle as separate messages, with a bundle-wide index at the commit.
    c.bundle_open(1).unwrap();
    c.bundle_add(1, vec![harmless(), harmless()]).unwrap();
    c.bundle_add(1, vec![group_add(1, "all", &[2]), bad])
        .unwrap();
    assert_eq!(
        remote(c.bundle_commit(1)),
        (
            ErrorCode::Unsupported,
            "bundle.ops[3].group_mod.buckets[0].actions[1]".to_owned()
        )
    );
    assert_eq!(state(&mut c), before);
}

#[test]
fn a_flow_cannot_use_a_group_the_bundle_deleted_before_it() {
    let server = TestServer::start("bnd-grp-order");
    let mut c = server.client();
    c.group_mod(GroupModRequest {
        group_id: Some(5),
        group_type: Some(GroupTypeDesc::All),
        ..GroupModRequest::new(ModCommandDesc::Add)
    })
    .unwrap();
    let before = state(&mut c);
    let base = flow_count(&mut c);
    let del = op(json!({"group_mod": {"command": "delete", "group_id": 5}}));
    assert_eq!(
        remote(c.bundle(vec![del.clone(), group_user(1, 5)])),
        (ErrorCode::NotFound, "body.ops[1].actions[0]".to_owned())
    );
    assert_eq!(state(&mut c), before);
    // In the other order the flow is added, then deleted with its group.
    let r = c.bundle(vec![group_user(1, 5), del]).unwrap();
    assert_eq!((r.ops, r.added, r.removed), (2, 1, 1));
    assert!(c.group_dump(None).unwrap().is_empty());
    assert_eq!(flow_count(&mut c), base);
}

#[test]
fn multi_message_bundles_carry_group_and_meter_ops() {
    let server = TestServer::start("bnd-grp-multi");
    let mut c = server.client();
    let base = flow_count(&mut c);
    c.bundle_open(2).unwrap();
    let meter = op(json!({"meter_mod": {"command": "add", "meter_id": 3, "rate": 500}}));
    assert_eq!(
        c.bundle_add(2, vec![meter, group_add(4, "indirect", &[2])])
            .unwrap(),
        2
    );
    // A syntax error in a group op stages nothing of its message.
    assert_eq!(
        remote(c.bundle_add(
            2,
            vec![
                harmless().into(),
                op(json!({"group_mod": {"command": "add", "group_id": 9}})),
            ]
        )),
        (ErrorCode::BadField, "body.ops[1].group_mod.type".to_owned())
    );
    let flows: Vec<BundleOpDesc> = (1..=3)
        .map(|p| {
            op(
                json!({"command": "add", "priority": 10, "match": {"in_port": p},
                      "actions": [{"meter": 3}, {"group": 4}]}),
            )
        })
        .collect();
    assert_eq!(c.bundle_add(2, flows).unwrap(), 5);
    // Nothing is applied before the commit.
    assert!(c.group_dump(None).unwrap().is_empty());
    assert!(c.meter_dump(None).unwrap().is_empty());
    let r = c.bundle_commit(2).unwrap();
    assert_eq!((r.ops, r.added, r.modified, r.removed), (5, 3, 0, 0));
    assert_eq!(c.group_dump(None).unwrap().len(), 1);
    assert_eq!(c.meter_dump(None).unwrap().len(), 1);
    assert_eq!(flow_count(&mut c), base + 3);

    // bundle_chunked splits mixed ops over messages and keeps their order.
    let mut ops: Vec<BundleOpDesc> = vec![harmless().into(); 3000];
    ops.push(op(
        json!({"meter_mod": {"command": "delete", "meter_id": 3}}),
    ));
    ops.push(op(
        json!({"group_mod": {"command": "modify", "group_id": 4, "type": "all",
                                     "buckets": [{"actions": [{"output": 3}]}]}}),
    ));
    let r = c.bundle_chunked(ops.clone(), 20_000).unwrap();
    assert!(c.meter_dump(None).unwrap().is_empty());
    assert_eq!((r.ops, r.added, r.removed), (3002, 0, 3));
    assert_eq!(flow_count(&mut c), base);
    // A datapath error of a meter op in a later message: its index in the whole list.
    ops.truncate(3000);
    ops.push(op(
        json!({"meter_mod": {"command": "modify", "meter_id": 99, "rate": 1}}),
    ));
    let e = remote(c.bundle_chunked(ops, 20_000));
    assert_eq!(e.0, ErrorCode::NotFound);
    assert!(e.1.starts_with("bundle.ops[3000].meter_mod"), "{e:?}");
}

#[test]
fn deleting_groups_and_meters_in_a_bundle_counts_their_flows_as_removed() {
    let server = TestServer::start("bnd-grp-del");
    let mut c = server.client();
    let base = flow_count(&mut c);
    let mut setup = vec![
        group_add(1, "all", &[2]),
        group_add(2, "all", &[3]),
        op(json!({"meter_mod": {"command": "add", "meter_id": 1, "rate": 100}})),
    ];
    setup.extend((1..=4).map(|p| group_user(p, 1)));
    setup.push(group_user(5, 2));
    setup.push(op(
        json!({"command": "add", "priority": 10, "match": {"in_port": 6},
                         "actions": [{"meter": 1}, {"output": 2}]}),
    ));
    setup.push(op(
        json!({"command": "add", "priority": 10, "match": {"in_port": 7},
                         "actions": [{"output": 2}]}),
    ));
    let r = c.bundle(setup).unwrap();
    assert_eq!((r.ops, r.added), (10, 7));
    let r = c
        .bundle(vec![
            op(json!({"group_mod": {"command": "delete", "group_id": 1}})),
            op(json!({"meter_mod": {"command": "delete"}})),
            harmless().into(),
        ])
        .unwrap();
    assert_eq!((r.ops, r.added, r.modified, r.removed), (3, 0, 0, 5));
    assert_eq!(flow_count(&mut c), base + 2);
    let groups: Vec<u32> = c
        .group_dump(None)
        .unwrap()
        .iter()
        .map(|g| g.group_id)
        .collect();
    assert_eq!(groups, [2]);
    assert!(c.meter_dump(None).unwrap().is_empty());
    // Deleting every group takes the last group user.
    let r = c
        .bundle(vec![BundleOpDesc::Group(GroupModRequest::new(
            ModCommandDesc::Delete,
        ))])
        .unwrap();
    assert_eq!((r.ops, r.removed), (1, 1));
}
