//! Every request and reply survives encode → frame → decode unchanged, and the wire shape is
//! the documented one.

use std::collections::BTreeMap;

use control::proto::frame::{self, FrameStatus, HEADER_LEN};
use control::proto::*;
use serde_json::{Value, json};

fn requests() -> Vec<Request> {
    vec![
        Request::Hello(HelloRequest::default()),
        Request::Hello(HelloRequest {
            versions: vec![1],
            client: Some("vsctl 0.1.0".into()),
        }),
        Request::PortAdd(PortAddRequest::new("veth0")),
        Request::PortAdd(PortAddRequest {
            name: "veth1".into(),
            port_type: Some(PortType::Afxdp),
            queues: 4,
            vlan: Some(VlanSpec::access(10)),
            xdp_mode: Some(XdpModeSpec::Split),
            xdp_frags: true,
            mac_max: Some(16),
        }),
        Request::PortAdd(PortAddRequest {
            name: "tap0".into(),
            port_type: Some(PortType::Tap),
            queues: 1,
            vlan: Some(VlanSpec::trunk(vec![10, 20], Some(10))),
            xdp_mode: None,
            xdp_frags: false,
            mac_max: None,
        }),
        Request::PortAdd(PortAddRequest {
            name: "eth0".into(),
            port_type: Some(PortType::Afpacket),
            queues: 1,
            vlan: Some(VlanSpec::trunk(vec![], None)),
            xdp_mode: None,
            xdp_frags: false,
            mac_max: None,
        }),
        Request::PortAdd(PortAddRequest {
            name: "eth1".into(),
            port_type: Some(PortType::Auto),
            queues: 2,
            vlan: None,
            xdp_mode: None,
            xdp_frags: false,
            mac_max: None,
        }),
        Request::PortDel(PortDelRequest {
            name: "veth0".into(),
        }),
        Request::PortList(EmptyRequest {}),
        Request::PortStats(PortStatsRequest::default()),
        Request::PortStats(PortStatsRequest {
            name: Some("veth0".into()),
        }),
        Request::MacDump(MacFilter::default()),
        Request::MacDump(MacFilter {
            vlan: Some(10),
            port: Some("veth0".into()),
        }),
        Request::MacFlush(MacFilter::default()),
        Request::MacFlush(MacFilter {
            vlan: Some(4094),
            port: None,
        }),
        Request::SwitchShow(EmptyRequest {}),
        Request::Echo(EchoRequest::default()),
        Request::Echo(EchoRequest {
            data: "ping \u{1f600} \"quoted\"".into(),
        }),
        Request::FlowMod(sample_flow_mod()),
        Request::FlowMod(FlowModRequest {
            actions: None,
            instructions: Some(InstructionsDesc {
                apply: vec![ActionDesc::Output(1)],
                clear_actions: true,
                write: vec![ActionDesc::Group(3)],
                write_metadata: Some("0x1/0xff".into()),
                goto_table: Some(4),
            }),
            ..sample_flow_mod()
        }),
        Request::FlowMod(FlowModRequest::new(FlowCommand::Delete)),
        Request::FlowMod(FlowModRequest {
            cookie: 1,
            cookie_mask: 0xff,
            out_port: Some(3),
            table: Some(2),
            ..FlowModRequest::new(FlowCommand::DeleteStrict)
        }),
        Request::FlowDump(FlowFilterRequest::default()),
        Request::FlowDump(FlowFilterRequest {
            table: Some(1),
            fields: MatchDesc::from([("in_port".into(), 3.into())]),
            cookie: 5,
            cookie_mask: 7,
            out_port: Some(2),
            strict: true,
            priority: Some(9),
        }),
        Request::FlowAggregate(FlowFilterRequest::default()),
        Request::TableStats(EmptyRequest {}),
        Request::Barrier(EmptyRequest {}),
        Request::Bundle(BundleRequest {
            ops: vec![
                sample_flow_mod().into(),
                FlowModRequest::new(FlowCommand::Delete).into(),
            ],
        }),
        Request::Bundle(BundleRequest {
            ops: vec![
                sample_group_mod().into(),
                sample_flow_mod().into(),
                sample_meter_mod().into(),
                GroupModRequest::new(ModCommandDesc::Delete).into(),
            ],
        }),
        Request::BundleOpen(BundleIdRequest { bundle_id: 0 }),
        Request::BundleOpen(BundleIdRequest {
            bundle_id: u32::MAX,
        }),
        Request::BundleAdd(BundleAddRequest {
            bundle_id: 7,
            ops: vec![
                sample_flow_mod().into(),
                FlowModRequest::new(FlowCommand::Delete).into(),
                sample_meter_mod().into(),
                sample_group_mod().into(),
            ],
        }),
        Request::BundleAdd(BundleAddRequest {
            bundle_id: 7,
            ops: vec![],
        }),
        Request::BundleCommit(BundleIdRequest { bundle_id: 7 }),
        Request::BundleDiscard(BundleIdRequest { bundle_id: 7 }),
        Request::GroupMod(sample_group_mod()),
        Request::GroupMod(GroupModRequest {
            command: ModCommandDesc::Modify,
            group_id: Some(2),
            group_type: Some(GroupTypeDesc::FastFailover),
            buckets: vec![
                BucketDesc {
                    weight: None,
                    watch_port: Some(1),
                    actions: vec![ActionDesc::Output(1)],
                },
                BucketDesc::default(),
            ],
        }),
        Request::GroupMod(GroupModRequest::new(ModCommandDesc::Delete)),
        Request::GroupMod(GroupModRequest {
            group_id: Some(7),
            ..GroupModRequest::new(ModCommandDesc::Delete)
        }),
        Request::GroupDump(GroupDumpRequest::default()),
        Request::GroupDump(GroupDumpRequest { group_id: Some(0) }),
        Request::MeterMod(sample_meter_mod()),
        Request::MeterMod(MeterModRequest {
            command: ModCommandDesc::Modify,
            meter_id: Some(u32::MAX),
            unit: None,
            rate: Some(u64::MAX),
            burst: None,
        }),
        Request::MeterMod(MeterModRequest::new(ModCommandDesc::Delete)),
        Request::MeterDump(MeterDumpRequest::default()),
        Request::MeterDump(MeterDumpRequest { meter_id: Some(3) }),
        Request::Subscribe(SubscribeRequest::all()),
        Request::Subscribe(SubscribeRequest::only(true, false, true)),
        Request::Unsubscribe(EmptyRequest {}),
        Request::PacketOut(PacketOutRequest {
            in_port: 0,
            data: "ffffffffffff0200000000010806".into(),
            actions: None,
        }),
        Request::PacketOut(PacketOutRequest {
            in_port: 3,
            data: "00".repeat(60),
            actions: Some(vec![ActionDesc::DecTtl, ActionDesc::Output(2)]),
        }),
    ]
}

fn sample_group_mod() -> GroupModRequest {
    GroupModRequest {
        command: ModCommandDesc::Add,
        group_id: Some(1),
        group_type: Some(GroupTypeDesc::Select),
        buckets: vec![
            BucketDesc {
                weight: Some(10),
                watch_port: None,
                actions: vec![ActionDesc::Output(2)],
            },
            BucketDesc {
                weight: Some(5),
                watch_port: Some(3),
                actions: vec![
                    ActionDesc::SetField(MatchDesc::from([("ip_dst".into(), "10.0.0.9".into())])),
                    ActionDesc::Output(3),
                ],
            },
        ],
    }
}

fn sample_meter_mod() -> MeterModRequest {
    MeterModRequest {
        command: ModCommandDesc::Add,
        meter_id: Some(1),
        unit: Some(MeterUnitDesc::Pktps),
        rate: Some(100),
        burst: Some(10),
    }
}

fn sample_flow_mod() -> FlowModRequest {
    FlowModRequest {
        command: FlowCommand::Add,
        table: Some(0),
        priority: Some(100),
        fields: MatchDesc::from([
            ("eth_type".into(), "0x0800".into()),
            ("ip_dst".into(), "10.1.0.0/16".into()),
            ("ip_proto".into(), 6.into()),
            ("tcp_dst".into(), 80.into()),
        ]),
        instructions: None,
        actions: Some(vec![
            ActionDesc::SetField(MatchDesc::from([("ip_dst".into(), "10.0.0.9".into())])),
            ActionDesc::PushVlan("0x8100".into()),
            ActionDesc::PopVlan,
            ActionDesc::DecTtl,
            ActionDesc::Controller(ControllerDesc {
                max_len: Some(128),
                reason: Some("action".into()),
            }),
            ActionDesc::Output(2),
            ActionDesc::Normal,
            ActionDesc::GotoTable(1),
        ]),
        cookie: 0x55,
        cookie_mask: 0,
        idle_timeout: 10,
        hard_timeout: 20,
        flags: FlowFlagsDesc {
            send_flow_rem: true,
            check_overlap: true,
            reset_counts: false,
        },
        out_port: None,
    }
}

fn port(id: u32, name: &str) -> PortDesc {
    PortDesc {
        id,
        name: name.into(),
        port_type: "afxdp".into(),
        queues: 2,
        vlan: VlanDesc {
            access: None,
            trunks: Some(vec![10, 20]),
            native: Some(10),
        },
        worker: 1,
        queue_workers: vec![1, 0],
        link_up: true,
        xdp_mode: Some(XdpModeSpec::Native),
        xdp_frags: true,
        device_gone: id.is_multiple_of(2),
        mtu: (!id.is_multiple_of(3)).then_some(1500 + id),
        mac_max: if id.is_multiple_of(2) { 0 } else { 8 },
        mac_entries: u64::from(id) * 3,
    }
}

fn stats(id: u32, name: &str) -> PortStatsDesc {
    PortStatsDesc {
        id,
        name: name.into(),
        rx_pkts: 10,
        rx_bytes: 1500,
        tx_pkts: u64::MAX,
        tx_bytes: 7,
        rx_jumbo: 1,
        tx_jumbo: 0,
        rx_dropped: 3,
        tx_dropped: 0,
        rx_drops: BTreeMap::from([("truncated".into(), 3), ("bad_length".into(), 0)]),
        tx_drops: BTreeMap::from([("tx_queue_full".into(), 0)]),
    }
}

fn replies() -> Vec<Reply> {
    vec![
        Reply::Hello(HelloReply {
            versions: vec![1],
            daemon: "vswitchd 0.1.0".into(),
            capabilities: Request::TYPES.iter().map(|s| s.to_string()).collect(),
            max_frame_bytes: 1 << 20,
        }),
        Reply::PortAdd(PortAddReply {
            port: port(1, "veth0"),
        }),
        Reply::PortDel(EmptyReply {}),
        Reply::PortList(PortListReply {
            ports: vec![port(1, "veth0"), port(2, "veth1")],
            more: false,
        }),
        Reply::PortList(PortListReply {
            ports: vec![],
            more: true,
        }),
        Reply::PortStats(PortStatsReply {
            ports: vec![stats(1, "veth0")],
            more: false,
        }),
        Reply::MacDump(MacDumpReply {
            entries: vec![MacDesc {
                vlan: 10,
                mac: "02:00:00:00:00:01".into(),
                port: 1,
                port_name: "veth0".into(),
                age_secs: 12,
            }],
            more: true,
        }),
        Reply::MacFlush(MacFlushReply { flushed: 42 }),
        Reply::SwitchShow(SwitchShowReply {
            workers: 2,
            cpus: vec![2, 3],
            poll_mode: "adaptive".into(),
            batch_hold_ns: 1000,
            mac_table_max: 65536,
            mac_entries: 5,
            mac_aging_secs: 300,
            mac_moves: 1,
            mac_evictions: 9,
            mac_port_max: 64,
            ports: vec![port(1, "veth0")],
            worker_stats: vec![
                WorkerDesc {
                    worker: 0,
                    cpu: Some(2),
                    batches: 5,
                    frames: 100,
                    sleeps: 3,
                    handoff_drops: 1,
                    mac_learn_full: 2,
                    mac_learn_port_full: 4,
                    cache: CacheDesc {
                        emc_hits: 7,
                        run_hits: 40,
                        megaflow_hits: 3,
                        misses: 2,
                        upcalls: 2,
                        upcall_drops: 1,
                        evictions: 0,
                        expired: 1,
                        revalidated: 4,
                        flushes: 1,
                        entries: 1,
                    },
                    packet_ins: 9,
                    packet_in_drops: 1,
                    packet_outs: 2,
                    packet_out_drops: 0,
                    busy_ns: 123_456_789,
                    full_batches: 42,
                    flush_ns: 98_765_432,
                    holds: 17,
                    staged_batches: 5,
                    rx_errors: 6,
                },
                WorkerDesc {
                    worker: 1,
                    cpu: None,
                    batches: 0,
                    frames: 0,
                    sleeps: 0,
                    handoff_drops: 0,
                    mac_learn_full: 0,
                    mac_learn_port_full: 0,
                    cache: CacheDesc::default(),
                    packet_ins: 0,
                    packet_in_drops: 0,
                    packet_outs: 0,
                    packet_out_drops: 0,
                    busy_ns: 0,
                    full_batches: 0,
                    flush_ns: 0,
                    holds: 0,
                    staged_batches: 0,
                    rx_errors: 0,
                },
            ],
            event_drops: 3,
        }),
        Reply::Echo(EchoReply {
            data: "pong".into(),
        }),
        Reply::FlowMod(FlowModReply {
            added: 1,
            modified: 0,
            removed: 1,
        }),
        Reply::FlowDump(FlowDumpReply {
            flows: vec![FlowDesc {
                table: 0,
                priority: 100,
                fields: MatchDesc::from([("in_port".into(), 1.into())]),
                instructions: InstructionsDesc {
                    apply: vec![ActionDesc::Output(2)],
                    ..InstructionsDesc::default()
                },
                cookie: 3,
                idle_timeout: 0,
                hard_timeout: 5,
                flags: FlowFlagsDesc::default(),
                packets: 3,
                bytes: 294,
                duration_ms: 12_345,
                idle_ms: Some(1000),
            }],
            more: true,
        }),
        Reply::FlowDump(FlowDumpReply::default()),
        Reply::FlowAggregate(FlowAggregateReply {
            flows: 2,
            packets: 3,
            bytes: 4,
        }),
        Reply::TableStats(TableStatsReply {
            tables: vec![TableStatsDesc {
                table: 0,
                active: 3,
                subtables: 2,
                lookups: 10,
                matched: 7,
            }],
            max_flows_per_table: 200_000,
        }),
        Reply::Barrier(EmptyReply {}),
        Reply::Bundle(BundleReply {
            ops: 2,
            added: 1,
            modified: 0,
            removed: 4,
        }),
        Reply::BundleOpen(EmptyReply {}),
        Reply::BundleAdd(BundleAddReply { ops: 30_000 }),
        Reply::BundleCommit(BundleReply {
            ops: 30_000,
            added: 29_999,
            modified: 0,
            removed: 1,
        }),
        Reply::BundleDiscard(EmptyReply {}),
        Reply::GroupMod(GroupModReply { removed_flows: 3 }),
        Reply::GroupDump(GroupDumpReply {
            groups: vec![GroupDesc {
                group_id: 1,
                group_type: GroupTypeDesc::Select,
                buckets: vec![
                    BucketStatsDesc {
                        weight: 10,
                        watch_port: None,
                        actions: vec![ActionDesc::Output(2)],
                        packets: 2,
                        bytes: 200,
                    },
                    BucketStatsDesc {
                        weight: 0,
                        watch_port: Some(4),
                        actions: vec![],
                        packets: 0,
                        bytes: 0,
                    },
                ],
                packets: 2,
                bytes: 200,
            }],
            more: true,
        }),
        Reply::GroupDump(GroupDumpReply::default()),
        Reply::MeterMod(MeterModReply { removed_flows: 0 }),
        Reply::MeterDump(MeterDumpReply {
            meters: vec![MeterDesc {
                meter_id: 1,
                unit: MeterUnitDesc::Pktps,
                rate: 100,
                burst: 10,
                packets_in: 50,
                bytes_in: 5000,
                packets_dropped: 20,
                bytes_dropped: 2000,
            }],
            more: false,
        }),
        Reply::Subscribe(SubscribeReply {
            packet_in: true,
            flow_removed: false,
            port_status: true,
            lost: 7,
        }),
        Reply::Unsubscribe(SubscribeReply::default()),
        Reply::PacketOut(EmptyReply {}),
        Reply::Error(ErrorReply::from(ProtoError::bad_field(
            "body.vlan.trunks[2]",
            "invalid value: integer `70000`, expected u16",
        ))),
        Reply::Error(ErrorReply::from(ProtoError::new(
            ErrorCode::Internal,
            "worker 0 did not respond",
        ))),
    ]
}

fn unframe(framed: &[u8]) -> &[u8] {
    match frame::peek(framed, DEFAULT_MAX_FRAME_BYTES) {
        FrameStatus::Complete { len } => {
            assert_eq!(framed.len(), HEADER_LEN + len);
            &framed[HEADER_LEN..]
        }
        other => panic!("not a complete frame: {other:?}"),
    }
}

#[test]
fn every_request_round_trips() {
    let reqs = requests();
    let mut seen: Vec<&str> = reqs.iter().map(Request::type_name).collect();
    seen.sort_unstable();
    seen.dedup();
    let mut all = Request::TYPES.to_vec();
    all.sort_unstable();
    assert_eq!(
        seen, all,
        "a request type is missing from the round-trip list"
    );

    for (i, req) in reqs.into_iter().enumerate() {
        let xid = u64::MAX - i as u64;
        let payload = encode_request(xid, &req).unwrap();
        let framed = frame::encode(&payload, DEFAULT_MAX_FRAME_BYTES).unwrap();
        let decoded = decode_request(unframe(&framed)).unwrap();
        assert_eq!(decoded.version, VERSION);
        assert_eq!(decoded.xid, xid);
        assert_eq!(decoded.msg, req);
    }
}

#[test]
fn every_reply_round_trips() {
    for (i, reply) in replies().into_iter().enumerate() {
        let xid = i as u64;
        let payload = encode_reply(xid, &reply).unwrap();
        let framed = frame::encode(&payload, DEFAULT_MAX_FRAME_BYTES).unwrap();
        let decoded = decode_reply(unframe(&framed)).unwrap();
        assert_eq!(decoded.xid, xid);
        assert_eq!(decoded.msg, reply);
    }
}

#[test]
fn replies_are_not_requests_and_requests_are_not_replies() {
    let payload = encode_reply(1, &Reply::Echo(EchoReply::default())).unwrap();
    let e = decode_request(&payload).unwrap_err();
    assert_eq!((e.xid, e.error.code), (1, ErrorCode::UnknownType));
    let payload = encode_request(2, &Request::Echo(EchoRequest::default())).unwrap();
    let e = decode_reply(&payload).unwrap_err();
    assert_eq!((e.xid, e.error.code), (2, ErrorCode::UnknownType));
}

#[test]
fn wire_shape_is_the_documented_one() {
    let req = Request::PortAdd(PortAddRequest {
        name: "veth0".into(),
        port_type: Some(PortType::Afxdp),
        queues: 2,
        vlan: Some(VlanSpec::trunk(vec![10, 20], Some(10))),
        xdp_mode: Some(XdpModeSpec::Native),
        xdp_frags: true,
        mac_max: None,
    });
    let v: Value = serde_json::from_slice(&encode_request(7, &req).unwrap()).unwrap();
    assert_eq!(
        v,
        json!({
            "version": 1, "xid": 7, "type": "port_add",
            "body": {"name": "veth0", "type": "afxdp", "queues": 2,
                     "vlan": {"trunks": [10, 20], "native": 10}, "xdp_mode": "native",
                     "xdp_frags": true}
        })
    );
    let v: Value =
        serde_json::from_slice(&encode_request(8, &Request::PortList(EmptyRequest {})).unwrap())
            .unwrap();
    assert_eq!(
        v,
        json!({"version": 1, "xid": 8, "type": "port_list", "body": {}})
    );
    let err = Reply::Error(ErrorReply::from(ProtoError::field(
        ErrorCode::NotFound,
        "body.name",
        "no port named veth9",
    )));
    let v: Value = serde_json::from_slice(&encode_reply(9, &err).unwrap()).unwrap();
    assert_eq!(
        v,
        json!({
            "version": 1, "xid": 9, "type": "error",
            "body": {"code": 5, "name": "not_found", "message": "no port named veth9",
                     "field": "body.name"}
        })
    );
}

/// One hostile payload and the error it must produce: (json, code, field).
fn check(payload: &[u8], code: ErrorCode, field: Option<&str>, xid: u64) {
    let e = decode_request(payload).expect_err("hostile payload accepted");
    assert_eq!(e.error.code, code, "{e}");
    assert_eq!(e.error.field.as_deref(), field, "{e}");
    assert_eq!(e.xid, xid, "{e}");
}

#[test]
fn hostile_payloads_get_precise_errors() {
    check(b"", ErrorCode::BadFrame, None, 0);
    check(b"\xff\xfe{}", ErrorCode::BadFrame, None, 0);
    check(
        b"{\"version\":1,\"xid\":1,\"type\":\"echo\",\"body\":{\"data\":\"\xc3\x28\"}}",
        ErrorCode::BadFrame,
        None,
        0,
    );
    check(b"not json", ErrorCode::BadFrame, None, 0);
    check(b"[1,2,3]", ErrorCode::BadFrame, None, 0);
    check(b"{\"version\":1,\"xid\":1", ErrorCode::BadFrame, None, 0);
    check(&[b'['; 100_000], ErrorCode::BadFrame, None, 0);
    check(
        br#"{"xid":4,"type":"echo"}"#,
        ErrorCode::BadField,
        Some("version"),
        4,
    );
    check(
        br#"{"version":0,"xid":4,"type":"echo"}"#,
        ErrorCode::BadVersion,
        Some("version"),
        4,
    );
    check(
        br#"{"version":99999999999,"xid":4,"type":"echo"}"#,
        ErrorCode::BadVersion,
        Some("version"),
        4,
    );
    check(
        br#"{"version":-1,"xid":4,"type":"echo"}"#,
        ErrorCode::BadField,
        Some("version"),
        4,
    );
    check(
        br#"{"version":1,"xid":-4,"type":"echo"}"#,
        ErrorCode::BadField,
        Some("xid"),
        0,
    );
    check(
        br#"{"version":1,"xid":1.5,"type":"echo"}"#,
        ErrorCode::BadField,
        Some("xid"),
        0,
    );
    check(
        br#"{"version":1,"xid":4}"#,
        ErrorCode::BadField,
        Some("type"),
        4,
    );
    check(
        br#"{"version":1,"xid":4,"type":7}"#,
        ErrorCode::BadField,
        Some("type"),
        4,
    );
    check(
        br#"{"version":1,"xid":4,"type":"reboot"}"#,
        ErrorCode::UnknownType,
        Some("type"),
        4,
    );
    check(
        br#"{"version":1,"xid":4,"type":"echo","extra":true}"#,
        ErrorCode::BadField,
        Some("extra"),
        4,
    );
    check(
        br#"{"version":1,"xid":4,"type":"echo","body":[]}"#,
        ErrorCode::BadField,
        Some("body"),
        4,
    );
    check(
        br#"{"version":1,"xid":4,"type":"echo","body":{"data":1}}"#,
        ErrorCode::BadField,
        Some("body.data"),
        4,
    );
    check(
        br#"{"version":1,"xid":4,"type":"echo","body":{"bogus":1}}"#,
        ErrorCode::BadField,
        Some("body.bogus"),
        4,
    );
    check(
        br#"{"version":1,"xid":4,"type":"port_del"}"#,
        ErrorCode::BadField,
        Some("body.name"),
        4,
    );
    check(
        br#"{"version":1,"xid":4,"type":"port_add","body":{"name":"a","queues":"two"}}"#,
        ErrorCode::BadField,
        Some("body.queues"),
        4,
    );
    check(
        br#"{"version":1,"xid":4,"type":"port_add","body":{"name":"a","type":"vhost"}}"#,
        ErrorCode::BadField,
        Some("body.type"),
        4,
    );
    check(
        br#"{"version":1,"xid":4,"type":"port_add","body":{"name":"a","vlan":{"trunks":[1,"x"]}}}"#,
        ErrorCode::BadField,
        Some("body.vlan.trunks[1]"),
        4,
    );
    check(
        br#"{"version":1,"xid":4,"type":"port_add","body":{"name":"a","vlan":{"acess":3}}}"#,
        ErrorCode::BadField,
        Some("body.vlan.acess"),
        4,
    );
    check(
        br#"{"version":1,"xid":4,"type":"mac_dump","body":{"vlan":65536}}"#,
        ErrorCode::BadField,
        Some("body.vlan"),
        4,
    );
    check(
        br#"{"version":1,"xid":4,"type":"port_stats","body":{"name":null,"x":[]}}"#,
        ErrorCode::BadField,
        Some("body.x"),
        4,
    );
}

#[test]
fn arbitrary_bytes_never_panic_the_decoder() {
    // A cheap deterministic fuzz: xorshift bytes, and mutations of a valid request.
    let valid = encode_request(
        3,
        &Request::PortAdd(PortAddRequest {
            name: "veth0".into(),
            port_type: Some(PortType::Tap),
            queues: 2,
            vlan: Some(VlanSpec::trunk(vec![1, 2], Some(1))),
            xdp_mode: None,
            xdp_frags: false,
            mac_max: None,
        }),
    )
    .unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let len = (next() % 96) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let _ = decode_request(&bytes);
        let _ = decode_reply(&bytes);
        let mut m = valid.clone();
        for _ in 0..(next() % 4 + 1) {
            let i = (next() as usize) % m.len();
            m[i] = next() as u8;
        }
        let _ = decode_request(&m);
        let _ = frame::peek(&bytes, 64);
    }
}

#[test]
fn flow_mod_wire_shape_is_the_documented_one() {
    let v: Value =
        serde_json::from_slice(&encode_request(3, &Request::FlowMod(sample_flow_mod())).unwrap())
            .unwrap();
    assert_eq!(
        v,
        json!({
            "version": 1, "xid": 3, "type": "flow_mod",
            "body": {
                "command": "add", "table": 0, "priority": 100,
                "match": {"eth_type": "0x0800", "ip_dst": "10.1.0.0/16", "ip_proto": 6,
                          "tcp_dst": 80},
                "actions": [{"set_field": {"ip_dst": "10.0.0.9"}}, {"push_vlan": "0x8100"},
                            "pop_vlan", "dec_ttl",
                            {"controller": {"max_len": 128, "reason": "action"}},
                            {"output": 2}, "normal", {"goto_table": 1}],
                "cookie": 85, "idle_timeout": 10, "hard_timeout": 20,
                "flags": {"send_flow_rem": true, "check_overlap": true}
            }
        })
    );
}

#[test]
fn multi_message_bundle_wire_shapes_are_the_documented_ones() {
    let shape = |xid: u64, r: &Request| -> Value {
        serde_json::from_slice(&encode_request(xid, r).unwrap()).unwrap()
    };
    assert_eq!(
        shape(1, &Request::BundleOpen(BundleIdRequest { bundle_id: 5 })),
        json!({"version": 1, "xid": 1, "type": "bundle_open", "body": {"bundle_id": 5}})
    );
    assert_eq!(
        shape(
            2,
            &Request::BundleAdd(BundleAddRequest {
                bundle_id: 5,
                ops: vec![FlowModRequest::new(FlowCommand::Delete).into()],
            })
        ),
        json!({"version": 1, "xid": 2, "type": "bundle_add",
               "body": {"bundle_id": 5, "ops": [{"command": "delete"}]}})
    );
    // Group and meter ops are one-key objects next to plain flow-mod bodies.
    let mut del_meter = MeterModRequest::new(ModCommandDesc::Delete);
    del_meter.meter_id = Some(4);
    let mut del_group = GroupModRequest::new(ModCommandDesc::Delete);
    del_group.group_id = Some(3);
    assert_eq!(
        shape(
            5,
            &Request::BundleAdd(BundleAddRequest {
                bundle_id: 5,
                ops: vec![
                    del_group.into(),
                    FlowModRequest::new(FlowCommand::Delete).into(),
                    del_meter.into(),
                ],
            })
        ),
        json!({"version": 1, "xid": 5, "type": "bundle_add",
               "body": {"bundle_id": 5, "ops": [
                   {"group_mod": {"command": "delete", "group_id": 3}},
                   {"command": "delete"},
                   {"meter_mod": {"command": "delete", "meter_id": 4}}]}})
    );
    assert_eq!(
        shape(3, &Request::BundleCommit(BundleIdRequest { bundle_id: 5 })),
        json!({"version": 1, "xid": 3, "type": "bundle_commit", "body": {"bundle_id": 5}})
    );
    assert_eq!(
        shape(4, &Request::BundleDiscard(BundleIdRequest { bundle_id: 5 })),
        json!({"version": 1, "xid": 4, "type": "bundle_discard", "body": {"bundle_id": 5}})
    );
    let reply = |xid: u64, r: &Reply| -> Value {
        serde_json::from_slice(&encode_reply(xid, r).unwrap()).unwrap()
    };
    assert_eq!(
        reply(1, &Reply::BundleOpen(EmptyReply {})),
        json!({"version": 1, "xid": 1, "type": "bundle_open_reply", "body": {}})
    );
    assert_eq!(
        reply(2, &Reply::BundleAdd(BundleAddReply { ops: 1000 })),
        json!({"version": 1, "xid": 2, "type": "bundle_add_reply", "body": {"ops": 1000}})
    );
    assert_eq!(
        reply(
            3,
            &Reply::BundleCommit(BundleReply {
                ops: 3,
                added: 2,
                modified: 0,
                removed: 1
            })
        ),
        json!({"version": 1, "xid": 3, "type": "bundle_commit_reply",
               "body": {"ops": 3, "added": 2, "modified": 0, "removed": 1}})
    );
    assert_eq!(
        reply(4, &Reply::BundleDiscard(EmptyReply {})),
        json!({"version": 1, "xid": 4, "type": "bundle_discard_reply", "body": {}})
    );
    // Strict requests: bundle_id is required, a u32, and nothing else is accepted.
    for (body, field) in [
        (r#"{}"#, "body.bundle_id"),
        (r#"{"bundle_id":-1}"#, "body.bundle_id"),
        (r#"{"bundle_id":4294967296}"#, "body.bundle_id"),
        (r#"{"bundle_id":1,"ops":[]}"#, "body.ops"),
    ] {
        let payload = format!(r#"{{"version":1,"xid":9,"type":"bundle_commit","body":{body}}}"#);
        check(payload.as_bytes(), ErrorCode::BadField, Some(field), 9);
    }
    let add = r#"{"version":1,"xid":10,"type":"bundle_add","body":{"bundle_id":1,"ops":[{"command":"add"},{"command":"nope"}]}}"#;
    check(
        add.as_bytes(),
        ErrorCode::BadField,
        Some("body.ops[1].command"),
        10,
    );
    let add = r#"{"version":1,"xid":11,"type":"bundle_add","body":{"bundle_id":1}}"#;
    check(add.as_bytes(), ErrorCode::BadField, Some("body.ops"), 11);
}

#[test]
fn hostile_flow_payloads_get_precise_errors() {
    let fm = |body: &str| format!(r#"{{"version":1,"xid":6,"type":"flow_mod","body":{body}}}"#);
    for (body, field) in [
        (r#"{}"#, "body.command"),
        (r#"{"command":"replace"}"#, "body.command"),
        (r#"{"command":"add","table":256}"#, "body.table"),
        (r#"{"command":"add","table":-1}"#, "body.table"),
        (r#"{"command":"add","priority":65536}"#, "body.priority"),
        (
            r#"{"command":"add","match":{"ip_dst":[1]}}"#,
            "body.match.ip_dst",
        ),
        (
            r#"{"command":"add","match":{"tcp_dst":-1}}"#,
            "body.match.tcp_dst",
        ),
        (
            r#"{"command":"add","actions":["teleport"]}"#,
            "body.actions[0]",
        ),
        (
            r#"{"command":"add","actions":["normal",{"output":-2}]}"#,
            "body.actions[1].output",
        ),
        (
            r#"{"command":"add","actions":[{"output":1,"flood":2}]}"#,
            "body.actions[0]",
        ),
        (
            r#"{"command":"add","instructions":{"apply":[],"bogus":1}}"#,
            "body.instructions.bogus",
        ),
        (
            r#"{"command":"add","flags":{"sticky":true}}"#,
            "body.flags.sticky",
        ),
        (r#"{"command":"add","cookie":"0x1"}"#, "body.cookie"),
        (r#"{"command":"add","extra":1}"#, "body.extra"),
    ] {
        check(fm(body).as_bytes(), ErrorCode::BadField, Some(field), 6);
    }
    let bundle = r#"{"version":1,"xid":7,"type":"bundle","body":{"ops":[{"command":"add"},{"command":"add","match":{"in_port":"x"},"bogus":1}]}}"#;
    check(
        bundle.as_bytes(),
        ErrorCode::BadField,
        Some("body.ops[1].bogus"),
        7,
    );
    let dump = r#"{"version":1,"xid":8,"type":"flow_dump","body":{"strict":"yes"}}"#;
    check(dump.as_bytes(), ErrorCode::BadField, Some("body.strict"), 8);
}

#[test]
fn group_and_meter_wire_shapes_are_the_documented_ones() {
    let v: Value =
        serde_json::from_slice(&encode_request(4, &Request::GroupMod(sample_group_mod())).unwrap())
            .unwrap();
    assert_eq!(
        v,
        json!({
            "version": 1, "xid": 4, "type": "group_mod",
            "body": {
                "command": "add", "group_id": 1, "type": "select",
                "buckets": [
                    {"weight": 10, "actions": [{"output": 2}]},
                    {"weight": 5, "watch_port": 3,
                     "actions": [{"set_field": {"ip_dst": "10.0.0.9"}}, {"output": 3}]}
                ]
            }
        })
    );
    let v: Value =
        serde_json::from_slice(&encode_request(5, &Request::MeterMod(sample_meter_mod())).unwrap())
            .unwrap();
    assert_eq!(
        v,
        json!({
            "version": 1, "xid": 5, "type": "meter_mod",
            "body": {"command": "add", "meter_id": 1, "unit": "pktps", "rate": 100, "burst": 10}
        })
    );
    let del = Request::GroupMod(GroupModRequest::new(ModCommandDesc::Delete));
    let v: Value = serde_json::from_slice(&encode_request(6, &del).unwrap()).unwrap();
    assert_eq!(v["body"], json!({"command": "delete"}));
    let reply = Reply::MeterDump(MeterDumpReply {
        meters: vec![MeterDesc {
            meter_id: 2,
            unit: MeterUnitDesc::Kbps,
            rate: 10_000,
            ..MeterDesc::default()
        }],
        more: false,
    });
    let v: Value = serde_json::from_slice(&encode_reply(7, &reply).unwrap()).unwrap();
    assert_eq!(
        v["body"],
        json!({"meters": [{"meter_id": 2, "unit": "kbps", "rate": 10000, "burst": 0,
                           "packets_in": 0, "bytes_in": 0, "packets_dropped": 0,
                           "bytes_dropped": 0}], "more": false})
    );
}

#[test]
fn hostile_group_and_meter_payloads_get_precise_errors() {
    let msg = |kind: &str, body: &str| {
        format!(r#"{{"version":1,"xid":9,"type":"{kind}","body":{body}}}"#)
    };
    for (kind, body, field) in [
        ("group_mod", r#"{}"#, "body.command"),
        ("group_mod", r#"{"command":"insert"}"#, "body.command"),
        (
            "group_mod",
            r#"{"command":"add","group_id":-1}"#,
            "body.group_id",
        ),
        (
            "group_mod",
            r#"{"command":"add","group_id":4294967296}"#,
            "body.group_id",
        ),
        (
            "group_mod",
            r#"{"command":"add","type":"random"}"#,
            "body.type",
        ),
        (
            "group_mod",
            r#"{"command":"add","buckets":{}}"#,
            "body.buckets",
        ),
        (
            "group_mod",
            r#"{"command":"add","buckets":[{},{"weight":70000}]}"#,
            "body.buckets[1].weight",
        ),
        (
            "group_mod",
            r#"{"command":"add","buckets":[{"actions":["normal","teleport"]}]}"#,
            "body.buckets[0].actions[1]",
        ),
        (
            "group_mod",
            r#"{"command":"add","buckets":[{"watch_group":1}]}"#,
            "body.buckets[0].watch_group",
        ),
        ("group_mod", r#"{"command":"add","extra":1}"#, "body.extra"),
        ("group_dump", r#"{"group_id":"1"}"#, "body.group_id"),
        ("group_dump", r#"{"type":"all"}"#, "body.type"),
        (
            "meter_mod",
            r#"{"command":"add","unit":"bps"}"#,
            "body.unit",
        ),
        ("meter_mod", r#"{"command":"add","rate":-5}"#, "body.rate"),
        ("meter_mod", r#"{"command":"add","bands":[]}"#, "body.bands"),
        ("meter_dump", r#"{"meter_id":1.5}"#, "body.meter_id"),
        ("subscribe", r#"{"packet_in":1}"#, "body.packet_in"),
        ("subscribe", r#"{"events":["packet_in"]}"#, "body.events"),
        ("unsubscribe", r#"{"packet_in":false}"#, "body.packet_in"),
        ("packet_out", r#"{"in_port":1}"#, "body.data"),
        (
            "packet_out",
            r#"{"data":"00","in_port":-1}"#,
            "body.in_port",
        ),
        (
            "packet_out",
            r#"{"data":"00","actions":["teleport"]}"#,
            "body.actions[0]",
        ),
        (
            "packet_out",
            r#"{"data":"00","buffer_id":1}"#,
            "body.buffer_id",
        ),
    ] {
        check(
            msg(kind, body).as_bytes(),
            ErrorCode::BadField,
            Some(field),
            9,
        );
    }
}

fn notifications() -> Vec<Notification> {
    vec![
        Notification::PacketIn(PacketInEvent {
            in_port: 1,
            table: 0,
            cookie: 0x2a,
            reason: "action".into(),
            total_len: 98,
            data: "ffffffffffff".into(),
            fields: MatchDesc::from([("in_port".into(), 1.into()), ("reg0".into(), "0x5".into())]),
            lost: 0,
        }),
        Notification::FlowRemoved(FlowRemovedEvent {
            table: 1,
            priority: 100,
            cookie: u64::MAX,
            fields: MatchDesc::from([("eth_type".into(), "0x0800".into())]),
            reason: "idle_timeout".into(),
            duration_ms: 1234,
            idle_timeout: 1,
            hard_timeout: 0,
            packets: 3,
            bytes: 294,
            lost: 2,
        }),
        Notification::PortStatus(PortStatusEvent {
            reason: "delete".into(),
            port: port(2, "veth1"),
            lost: u64::MAX,
        }),
    ]
}

#[test]
fn every_notification_round_trips_with_xid_0_and_lost_last() {
    let mut kinds: Vec<&str> = notifications()
        .iter()
        .map(Notification::type_name)
        .collect();
    kinds.sort_unstable();
    let mut all = Notification::TYPES.to_vec();
    all.sort_unstable();
    assert_eq!(kinds, all);
    for n in notifications() {
        let payload = encode_notification(&n).unwrap();
        let d = decode_server_message(&payload).unwrap();
        assert_eq!((d.version, d.xid), (VERSION, 0));
        assert_eq!(d.msg, ServerMessage::Notification(n.clone()));
        // The server writes each session's count into one encoding.
        let mut zero = n.clone();
        match &mut zero {
            Notification::PacketIn(p) => p.lost = 0,
            Notification::FlowRemoved(f) => f.lost = 0,
            Notification::PortStatus(p) => p.lost = 0,
        }
        let spliced = with_lost(&encode_notification(&zero).unwrap(), n.lost()).unwrap();
        assert_eq!(
            decode_server_message(&spliced).unwrap().msg,
            ServerMessage::Notification(n.clone())
        );
        // Replies still decode through the same function; notifications are not replies.
        assert_eq!(
            decode_reply(&payload).unwrap_err().error.code,
            ErrorCode::UnknownType
        );
    }
    let payload = encode_reply(4, &Reply::PacketOut(EmptyReply {})).unwrap();
    assert_eq!(
        decode_server_message(&payload).unwrap().msg,
        ServerMessage::Reply(Reply::PacketOut(EmptyReply {}))
    );
}

#[test]
fn notification_wire_shapes_are_the_documented_ones() {
    let v: Value =
        serde_json::from_slice(&encode_notification(&notifications()[0]).unwrap()).unwrap();
    assert_eq!(
        v,
        json!({"version": 1, "xid": 0, "type": "packet_in", "body": {
            "in_port": 1, "table": 0, "cookie": 42, "reason": "action", "total_len": 98,
            "data": "ffffffffffff", "match": {"in_port": 1, "reg0": "0x5"}, "lost": 0}})
    );
    let v: Value =
        serde_json::from_slice(&encode_notification(&notifications()[2]).unwrap()).unwrap();
    assert_eq!(v["type"], "port_status");
    assert_eq!(v["body"]["reason"], "delete");
    assert_eq!(v["body"]["port"]["name"], "veth1");
    let req = Request::PacketOut(PacketOutRequest {
        in_port: 2,
        data: "00".repeat(14),
        actions: Some(vec![ActionDesc::Output(1)]),
    });
    let v: Value = serde_json::from_slice(&encode_request(5, &req).unwrap()).unwrap();
    assert_eq!(
        v["body"],
        json!({"in_port": 2, "data": "00".repeat(14), "actions": [{"output": 1}]})
    );
    let v: Value = serde_json::from_slice(
        &encode_reply(
            6,
            &Reply::Subscribe(SubscribeReply {
                packet_in: true,
                flow_removed: true,
                port_status: false,
                lost: 0,
            }),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        v["body"],
        json!({"packet_in": true, "flow_removed": true, "port_status": false, "lost": 0})
    );
}

#[test]
fn bundle_op_errors_name_the_field_inside_the_op() {
    let decode = |ops: Value| -> (ErrorCode, String) {
        let payload = serde_json::to_vec(
            &json!({"version": 1, "xid": 9, "type": "bundle", "body": {"ops": ops}}),
        )
        .unwrap();
        let e = decode_request(&payload).unwrap_err();
        assert_eq!(e.xid, 9);
        (e.error.code, e.error.field.unwrap_or_default())
    };
    let flow = json!({"command": "delete"});
    assert_eq!(
        decode(
            json!([flow, {"group_mod": {"command": "add", "group_id": 1, "type": "all",
            "buckets": [{"actions": [{"output": 2}, {"output": "x"}]}]}}])
        ),
        (
            ErrorCode::BadField,
            "body.ops[1].group_mod.buckets[0].actions[1].output".to_owned()
        )
    );
    assert_eq!(
        decode(json!([flow, flow, {"meter_mod": {"command": "add", "meter_id": 1}, "x": 1}])),
        (ErrorCode::BadField, "body.ops[2]".to_owned())
    );
    assert_eq!(
        decode(json!([{"group_mod": {"group_id": 1}}])),
        (
            ErrorCode::BadField,
            "body.ops[0].group_mod.command".to_owned()
        )
    );
    assert_eq!(
        decode(json!([flow, {"command": "add", "priority": "x"}])),
        (ErrorCode::BadField, "body.ops[1].priority".to_owned())
    );
    assert_eq!(
        decode(json!([flow, {"bogus": 1, "command": "add"}])),
        (ErrorCode::BadField, "body.ops[1].bogus".to_owned())
    );
    assert_eq!(
        decode(json!([7])),
        (ErrorCode::BadField, "body.ops[0]".to_owned())
    );
}
