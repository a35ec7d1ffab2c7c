//! Flow messages against a real server driving a real switch: flow_mod, flow_dump,
//! flow_aggregate, table_stats, barrier, bundle, and hostile flow requests.

mod common;

use common::{TestServer, raw, read_reply, send_frame};
use control::proto::{
    self, ActionDesc, ErrorCode, FlowCommand, FlowDesc, FlowFilterRequest, FlowModRequest,
    MatchDesc, Reply, Request,
};
use control::{Client, ClientError};
use datapath::ofp::MatchField;
use datapath::ofp::action::{Action, Instructions};
use datapath::ofp::field::Field;
use datapath::ofp::pipeline::FlowMod;
use serde_json::json;

/// A flow-mod from its JSON body.
fn fm(body: serde_json::Value) -> FlowModRequest {
    serde_json::from_value(body).expect("a valid flow_mod body")
}

fn filter(body: serde_json::Value) -> FlowFilterRequest {
    serde_json::from_value(body).expect("a valid filter body")
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

fn dump_all(c: &mut Client) -> Vec<FlowDesc> {
    c.flow_dump(FlowFilterRequest::default())
        .expect("dumping the flows")
}

/// (table, priority, match) of each flow, for comparing dumps.
fn summary(flows: &[FlowDesc]) -> Vec<(u8, u16, MatchDesc)> {
    flows
        .iter()
        .map(|f| (f.table, f.priority, f.fields.clone()))
        .collect()
}

#[test]
fn default_table_is_the_learning_bridge() {
    let server = TestServer::start("flow-default");
    let mut c = server.client();
    let flows = dump_all(&mut c);
    assert_eq!(flows.len(), 1);
    assert_eq!((flows[0].table, flows[0].priority), (0, 0));
    assert!(flows[0].fields.is_empty());
    assert_eq!(flows[0].instructions.apply, vec![ActionDesc::Normal]);
    assert_eq!(flows[0].idle_ms, None);
    let hello = c.hello().unwrap();
    for t in [
        "flow_mod",
        "flow_dump",
        "flow_aggregate",
        "table_stats",
        "barrier",
        "bundle",
    ] {
        assert!(hello.capabilities.iter().any(|c| c == t), "{t}");
    }
    let stats = c.table_stats().unwrap();
    assert_eq!(stats.tables.len(), 1);
    assert_eq!((stats.tables[0].table, stats.tables[0].active), (0, 1));
    assert!(stats.max_flows_per_table > 0);
}

#[test]
fn add_dump_modify_delete_with_cookie_masks_and_out_port() {
    let server = TestServer::start("flow-crud");
    let mut c = server.client();
    for (i, (dst, cookie, port)) in [
        ("10.1.0.0/16", 0x101, 1),
        ("10.1.2.0/24", 0x102, 2),
        ("10.2.0.0/16", 0x201, 2),
    ]
    .into_iter()
    .enumerate()
    {
        let r = c
            .flow_mod(fm(json!({
                "command": "add", "table": 1, "priority": 100 + i,
                "match": {"eth_type": "0x0800", "ip_dst": dst},
                "actions": [{"output": port}],
                "cookie": cookie, "idle_timeout": 30
            })))
            .unwrap();
        assert_eq!((r.added, r.modified, r.removed), (1, 0, 0));
    }
    let flows = c.flow_dump(filter(json!({"table": 1}))).unwrap();
    assert_eq!(flows.len(), 3);
    // Highest priority first; values come back in canonical form.
    assert_eq!(flows[0].priority, 102);
    assert_eq!(flows[0].fields["ip_dst"], "10.2.0.0/16".into());
    assert_eq!(flows[0].fields["eth_type"], "0x0800".into());
    assert_eq!(flows[0].idle_timeout, 30);
    // Non-strict dump: 10.1/16 selects itself and the more specific 10.1.2/24.
    let sel = c
        .flow_dump(filter(
            json!({"match": {"eth_type": 2048, "ip_dst": "10.1.0.0/255.255.0.0"}}),
        ))
        .unwrap();
    assert_eq!(sel.len(), 2);
    // Cookie mask: the 0x1xx flows.
    let agg = c
        .flow_aggregate(filter(json!({"cookie": 0x100, "cookie_mask": 0xf00})))
        .unwrap();
    assert_eq!(agg.flows, 2);
    assert_eq!((agg.packets, agg.bytes), (0, 0));
    // out_port: the flows outputting to port 2.
    let sel = c.flow_dump(filter(json!({"out_port": 2}))).unwrap();
    assert_eq!(sel.len(), 2);

    // A delete of the 0x1xx flows that output to port 3: none.
    let r = c
        .flow_mod(fm(json!({
            "command": "delete", "cookie": 0x100, "cookie_mask": 0xf00, "out_port": 3
        })))
        .unwrap();
    assert_eq!(r.removed, 0);
    // Modify the 0x1xx flows: `out_port` is ignored by a modify (OpenFlow 1.3.5 §7.3.4.2),
    // so both change, not only the one that outputs to port 2.
    let r = c
        .flow_mod(fm(json!({
            "command": "modify", "cookie": 0x100, "cookie_mask": 0xf00, "out_port": 2,
            "actions": ["flood"]
        })))
        .unwrap();
    assert_eq!((r.added, r.modified, r.removed), (0, 2, 0));
    let flows = c.flow_dump(filter(json!({"table": 1}))).unwrap();
    let changed = flows.iter().find(|f| f.cookie == 0x102).unwrap();
    assert_eq!(changed.instructions.apply, vec![ActionDesc::Flood]);
    // The cookie and timeouts stay.
    assert_eq!(changed.idle_timeout, 30);

    // Delete by cookie in every table: the two 0x1xx flows.
    let r = c
        .flow_mod(fm(
            json!({"command": "delete", "cookie": 0x100, "cookie_mask": 0xf00}),
        ))
        .unwrap();
    assert_eq!(r.removed, 2);
    let flows = c.flow_dump(filter(json!({"table": 1}))).unwrap();
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0].cookie, 0x201);
    // Adding the same match and priority replaces.
    let r = c
        .flow_mod(fm(json!({
            "command": "add", "table": 1, "priority": 102,
            "match": {"eth_type": "0x0800", "ip_dst": "10.2.0.0/16"}, "actions": ["normal"]
        })))
        .unwrap();
    assert_eq!((r.added, r.removed), (1, 1));
    // Delete everything: the learning-bridge flow too.
    let r = c
        .flow_mod(FlowModRequest::new(FlowCommand::Delete))
        .unwrap();
    assert_eq!(r.removed, 2);
    assert!(dump_all(&mut c).is_empty());
    assert!(c.table_stats().unwrap().tables.is_empty());
}

#[test]
fn strict_forms_need_the_exact_match_and_priority() {
    let server = TestServer::start("flow-strict");
    let mut c = server.client();
    let base = json!({"eth_type": "0x0800", "ip_proto": 6, "tcp_dst": 80});
    c.flow_mod(fm(
        json!({"command": "add", "priority": 10, "match": base, "actions": [{"output": 1}]}),
    ))
    .unwrap();
    c.flow_mod(fm(
        json!({"command": "add", "priority": 20, "match": base, "actions": [{"output": 2}]}),
    ))
    .unwrap();
    // Wrong priority: nothing.
    let r = c
        .flow_mod(fm(json!({"command": "modify_strict", "priority": 15, "match": base, "actions": ["flood"]})))
        .unwrap();
    assert_eq!(r.modified, 0);
    // A less specific match is not strict-equal.
    let r = c
        .flow_mod(fm(
            json!({"command": "delete_strict", "priority": 10, "match": {"eth_type": 2048}}),
        ))
        .unwrap();
    assert_eq!(r.removed, 0);
    let r = c
        .flow_mod(fm(json!({"command": "modify_strict", "priority": 20, "match": base, "actions": ["flood"]})))
        .unwrap();
    assert_eq!(r.modified, 1);
    let strict = c
        .flow_dump(filter(
            json!({"match": base, "strict": true, "priority": 20}),
        ))
        .unwrap();
    assert_eq!(strict.len(), 1);
    assert_eq!(strict[0].instructions.apply, vec![ActionDesc::Flood]);
    let r = c
        .flow_mod(fm(
            json!({"command": "delete_strict", "priority": 10, "match": base}),
        ))
        .unwrap();
    assert_eq!(r.removed, 1);
    // Non-strict delete of the wider match takes the rest (but not the default flow, which
    // is less specific).
    let r = c
        .flow_mod(fm(
            json!({"command": "delete", "match": {"eth_type": 2048}}),
        ))
        .unwrap();
    assert_eq!(r.removed, 1);
    assert_eq!(dump_all(&mut c).len(), 1);
    // priority without strict is refused.
    let e = c.flow_dump(filter(json!({"priority": 3}))).unwrap_err();
    assert_eq!(remote(e).1, "body.priority");
}

#[test]
fn bundle_is_all_or_nothing_and_names_the_failing_op() {
    let server = TestServer::start("flow-bundle");
    let mut c = server.client();
    let before = dump_all(&mut c);
    let good = |i: u32| {
        fm(json!({
            "command": "add", "table": 2, "priority": 5,
            "match": {"in_port": i}, "actions": [{"output": 1}]
        }))
    };
    let bad = fm(json!({
        "command": "add", "table": 2,
        "match": {"eth_type": "0x0800", "ip_dst": "10.0.0.1/8"}, "actions": ["normal"]
    }));
    let e = c
        .bundle(vec![good(1), good(2), good(3), bad, good(4)])
        .unwrap_err();
    let (code, field, message) = remote(e);
    assert_eq!(code, ErrorCode::BadMatch);
    assert_eq!(field, "body.ops[3].match.ip_dst");
    assert!(message.contains("outside its mask"), "{message}");
    assert_eq!(summary(&dump_all(&mut c)), summary(&before));
    // A conversion error in a later op also changes nothing.
    let e = c
        .bundle(vec![
            good(1),
            fm(json!({"command": "add", "actions": [{"set_field": {"ip_dst": "x"}}]})),
        ])
        .unwrap_err();
    assert_eq!(remote(e).1, "body.ops[1].actions[0].set_field.ip_dst");
    // An error found by action validation names the action in the shorthand list.
    let e = c
        .bundle(vec![
            good(1),
            fm(json!({"command": "add", "table": 3, "actions": ["normal", {"goto_table": 1}]})),
        ])
        .unwrap_err();
    let (code, field, _) = remote(e);
    assert_eq!(
        (code, field.as_str()),
        (ErrorCode::BadAction, "body.ops[1].actions[1]")
    );
    assert_eq!(summary(&dump_all(&mut c)), summary(&before));
    // All good: applied together.
    let r = c
        .bundle(vec![
            good(1),
            good(2),
            fm(json!({"command": "delete", "table": 0})),
        ])
        .unwrap();
    assert_eq!((r.ops, r.added, r.removed), (3, 2, 1));
    let flows = dump_all(&mut c);
    assert_eq!(flows.len(), 2);
    assert!(flows.iter().all(|f| f.table == 2));
}

/// (body, code, field) of flow_mods that must fail and change nothing.
#[test]
fn hostile_flow_mods_get_coded_errors_and_change_nothing() {
    let server = TestServer::start("flow-hostile");
    let mut c = server.client();
    let before = dump_all(&mut c);
    let many: Vec<serde_json::Value> = (0..2000).map(|_| json!({"output": 1})).collect();
    let cases = [
        (
            json!({"command": "add", "match": {"ip_dst": "10.0.0.300"}}),
            ErrorCode::BadField,
            "body.match.ip_dst",
        ),
        (
            json!({"command": "add", "match": {"eth_src": "aa:bb"}}),
            ErrorCode::BadField,
            "body.match.eth_src",
        ),
        (
            json!({"command": "add", "match": {"tcp_dst": "0x50/0xzz"}}),
            ErrorCode::BadField,
            "body.match.tcp_dst",
        ),
        (
            json!({"command": "add", "match": {"nosuch": 1}}),
            ErrorCode::BadField,
            "body.match.nosuch",
        ),
        (
            json!({"command": "add", "match": {"vlan_vid": 70000}}),
            ErrorCode::BadMatch,
            "body.match.vlan_vid",
        ),
        (
            json!({"command": "add", "match": {"in_port": "1/0xff"}}),
            ErrorCode::BadMatch,
            "body.match.in_port",
        ),
        (
            json!({"command": "add", "match": {"eth_type": "0x0800/0xff00"}}),
            ErrorCode::BadMatch,
            "body.match.eth_type",
        ),
        (
            json!({"command": "add", "match": {"tcp_dst": 80}}),
            ErrorCode::BadMatch,
            "body.match.tcp_dst",
        ),
        (
            json!({"command": "add", "match": {"eth_type": "0x0800", "ip_proto": 17, "tcp_dst": 80}}),
            ErrorCode::BadMatch,
            "body.match.tcp_dst",
        ),
        (
            json!({"command": "add", "match": {"ipv6_src": "::1"}}),
            ErrorCode::BadMatch,
            "body.match.ipv6_src",
        ),
        (
            json!({"command": "add", "table": 254}),
            ErrorCode::BadField,
            "body.table",
        ),
        (
            json!({"command": "delete", "table": 255}),
            ErrorCode::BadField,
            "body.table",
        ),
        (
            json!({"command": "add", "table": 5, "instructions": {"goto_table": 5}}),
            ErrorCode::BadAction,
            "body.instructions.goto_table",
        ),
        (
            json!({"command": "add", "table": 5, "actions": [{"goto_table": 2}]}),
            ErrorCode::BadAction,
            "body.actions[0]",
        ),
        (
            json!({"command": "add", "actions": [{"output": 0}]}),
            ErrorCode::BadAction,
            "body.actions[0]",
        ),
        (
            json!({"command": "add", "actions": ["normal", {"output": 4_000_000_000u32}]}),
            ErrorCode::BadAction,
            "body.actions[1]",
        ),
        (
            json!({"command": "add", "actions": [{"group": 7}]}),
            ErrorCode::NotFound,
            "body.actions[0]",
        ),
        (
            json!({"command": "add", "actions": [{"meter": 7}]}),
            ErrorCode::NotFound,
            "body.actions[0]",
        ),
        (
            json!({"command": "add", "actions": [{"controller": {"reason": "why"}}]}),
            ErrorCode::BadField,
            "body.actions[0].controller.reason",
        ),
        (
            json!({"command": "add", "actions": many}),
            ErrorCode::BadAction,
            "body.actions",
        ),
        (
            json!({"command": "add", "instructions": {"apply": ["pop_vlan"]}}),
            ErrorCode::BadAction,
            "body.instructions.apply[0]",
        ),
        (
            json!({"command": "add", "instructions": {"apply": [{"goto_table": 3}]}}),
            ErrorCode::BadField,
            "body.instructions.apply[0]",
        ),
        (
            json!({"command": "add", "actions": [{"set_field": {"in_port": 3}}]}),
            ErrorCode::BadAction,
            "body.actions[0]",
        ),
        (
            json!({"command": "add", "actions": [{"set_field": {"ip_dst": "1.2.3.4"}}]}),
            ErrorCode::BadAction,
            "body.actions[0]",
        ),
        (
            json!({"command": "add", "actions": [{"set_field": {"ip_dst": "1.2.3.4", "ip_src": "1.2.3.5"}}]}),
            ErrorCode::BadField,
            "body.actions[0].set_field",
        ),
        (
            json!({"command": "add", "actions": [{"push_vlan": "0x0800"}]}),
            ErrorCode::BadAction,
            "body.actions[0]",
        ),
        (
            json!({"command": "add", "actions": [{"push_vlan": "0x10000"}]}),
            ErrorCode::BadField,
            "body.actions[0].push_vlan",
        ),
        (
            json!({"command": "add", "actions": [], "instructions": {}}),
            ErrorCode::BadField,
            "body.actions",
        ),
        (
            json!({"command": "delete", "actions": ["normal"]}),
            ErrorCode::BadField,
            "body.actions",
        ),
        (
            json!({"command": "add", "actions": [{"write_metadata": "0x1/0x1ffffffffffffffff"}]}),
            ErrorCode::BadField,
            "body.actions[0].write_metadata",
        ),
        (
            json!({"command": "add", "match": {"eth_type": 2048}, "flags": {"check_overlap": true}, "priority": 0}),
            ErrorCode::Overlap,
            "body.match",
        ),
    ];
    for (body, code, field) in cases {
        let text = body.to_string();
        let e = c.flow_mod(fm(body)).unwrap_err();
        let (got_code, got_field, message) = remote(e);
        assert_eq!(
            (got_code, got_field.as_str()),
            (code, field),
            "{text}: {message}"
        );
        assert!(!message.is_empty());
    }
    assert_eq!(summary(&dump_all(&mut c)), summary(&before));
    // The session is still usable.
    assert_eq!(c.echo("ok").unwrap(), "ok");
}

#[test]
fn barrier_replies_after_every_worker_caught_up() {
    let server = TestServer::start_with(
        "flow-barrier",
        |c| c,
        |sw| common::mem_ports(sw, &["m0", "m1"]),
    );
    let mut c = server.client();
    c.flow_mod(fm(json!({"command": "add", "priority": 9, "match": {"in_port": 1}, "actions": [{"output": 2}]})))
        .unwrap();
    c.barrier().unwrap();
    // Pipelined: the barrier reply comes after the flow_mod reply, in order.
    let mut s = raw(&server.path);
    let req = |xid: u64, r: &Request| proto::encode_request(xid, r).unwrap();
    send_frame(
        &mut s,
        &req(
            1,
            &Request::FlowMod(fm(json!({"command": "delete", "match": {"in_port": 1}}))),
        ),
    )
    .unwrap();
    send_frame(&mut s, &req(2, &Request::Barrier(proto::EmptyRequest {}))).unwrap();
    let a = read_reply(&mut s).unwrap();
    let b = read_reply(&mut s).unwrap();
    assert_eq!((a.xid, a.msg.type_name()), (1, "flow_mod_reply"));
    assert_eq!((b.xid, b.msg.type_name()), (2, "barrier_reply"));
    // switch_show reports the cache counters of each worker.
    let show = c.show().unwrap();
    assert!(!show.worker_stats.is_empty());
    let _ = show.worker_stats[0].cache.entries;
}

#[test]
fn a_200k_flow_dump_comes_back_in_bounded_parts() {
    const N: u32 = 200_000;
    let server = TestServer::start_with(
        "flow-huge",
        |c| c,
        |sw| {
            for i in 0..N {
                let f = FlowMod::add(
                    1,
                    10,
                    vec![
                        MatchField {
                            field: Field::EthType,
                            value: 0x0800,
                            mask: None,
                        },
                        MatchField {
                            field: Field::IpDst,
                            value: u128::from(0x0a00_0000 + i),
                            mask: None,
                        },
                    ],
                    Instructions::apply(vec![Action::Output(1)]),
                );
                sw.flow_mod(&f).expect("adding a flow");
            }
            sw.commit();
            Vec::new()
        },
    );
    let mut s = raw(&server.path);
    // Collecting 200,000 flows in a debug build on a busy 2-CPU machine can take longer than
    // the usual 10 s per reply (seen once under a parallel build); a hang still fails.
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let req = proto::encode_request(9, &Request::FlowDump(filter(json!({"table": 1})))).unwrap();
    send_frame(&mut s, &req).unwrap();
    let mut total = 0usize;
    let mut parts = 0usize;
    loop {
        // read_reply asserts each frame is within the default 1 MiB limit.
        let d = read_reply(&mut s).expect("connection closed mid-dump");
        assert_eq!(d.xid, 9);
        let Reply::FlowDump(part) = d.msg else {
            panic!(
                "expected a flow_dump_reply part, got {:?}",
                d.msg.type_name()
            );
        };
        assert!(part.flows.len() <= 1000);
        total += part.flows.len();
        parts += 1;
        if !part.more {
            break;
        }
    }
    assert_eq!(total, N as usize);
    assert!(parts >= 200, "{parts} parts");
    // The aggregate agrees, and table_stats counts them.
    let mut c = server.client();
    assert_eq!(
        c.flow_aggregate(filter(json!({"table": 1}))).unwrap().flows,
        u64::from(N)
    );
    let stats = c.table_stats().unwrap();
    assert!(
        stats
            .tables
            .iter()
            .any(|t| t.table == 1 && t.active == u64::from(N))
    );
}
