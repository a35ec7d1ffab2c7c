use datapath::ofp::build_match;
use proptest::prelude::*;

use super::*;

fn ports(name: &str) -> Option<u32> {
    match name {
        "p1" => Some(1),
        "p2" => Some(2),
        "web" => Some(7),
        _ => None,
    }
}

fn names(p: u32) -> Option<String> {
    match p {
        1 => Some("p1".into()),
        2 => Some("p2".into()),
        7 => Some("web".into()),
        _ => None,
    }
}

fn add(s: &str) -> FlowMod {
    match parse_flow(s, FlowModCommand::Add, &ports) {
        Ok(p) => p.flow_mod,
        Err(e) => panic!("{}", e.render(s)),
    }
}

fn err(s: &str, command: FlowModCommand) -> ParseError {
    match parse_flow(s, command, &ports) {
        Ok(p) => panic!("{s:?} parsed: {:?}", p.flow_mod),
        Err(e) => e,
    }
}

fn mf(field: Field, value: u128, mask: Option<u128>) -> MatchField {
    MatchField { field, value, mask }
}

/// The normalised match (as the datapath stores it).
fn norm(fields: &[MatchField]) -> Vec<MatchField> {
    build_match(fields).expect("valid match").1
}

#[test]
fn the_documented_example_parses() {
    let fm = add("table=0,priority=100,ip,nw_dst=10.1.0.0/16,tcp,tp_dst=80 actions=output:p2");
    assert_eq!(fm.table, Some(0));
    assert_eq!(fm.priority, 100);
    assert_eq!(
        norm(&fm.fields),
        vec![
            mf(Field::EthType, 0x0800, None),
            mf(Field::IpDst, 0x0a01_0000, Some(0xffff_0000)),
            mf(Field::IpProto, 6, None),
            mf(Field::TcpDst, 80, None),
        ]
    );
    assert_eq!(
        fm.instructions,
        Instructions::apply(vec![Action::Output(2)])
    );
}

#[test]
fn defaults_follow_openflow() {
    let fm = add("actions=normal");
    assert_eq!(fm.table, Some(0));
    assert_eq!(fm.priority, DEFAULT_PRIORITY);
    assert!(fm.fields.is_empty());
    let d = parse_flow("", FlowModCommand::Delete, &ports)
        .unwrap()
        .flow_mod;
    assert_eq!(d.table, None);
    assert_eq!(d.command, FlowModCommand::Delete);
}

#[test]
fn many_valid_match_forms() {
    let cases: Vec<(&str, Vec<MatchField>)> = vec![
        ("in_port=3", vec![mf(Field::InPort, 3, None)]),
        ("in_port=web", vec![mf(Field::InPort, 7, None)]),
        (
            "dl_src=aa:bb:cc:dd:ee:ff",
            vec![mf(Field::EthSrc, 0xaabb_ccdd_eeff, None)],
        ),
        (
            "eth_dst=01:00:00:00:00:00/01:00:00:00:00:00",
            vec![mf(Field::EthDst, 0x0100_0000_0000, Some(0x0100_0000_0000))],
        ),
        ("dl_type=0x88cc", vec![mf(Field::EthType, 0x88cc, None)]),
        ("eth_type=2048", vec![mf(Field::EthType, 0x0800, None)]),
        ("dl_vlan=10", vec![mf(Field::VlanVid, 0x100a, None)]),
        ("vlan_vid=10", vec![mf(Field::VlanVid, 0x100a, None)]),
        ("dl_vlan=0xffff", vec![mf(Field::VlanVid, 0, None)]),
        (
            "vlan_tci=0/0x1000",
            vec![mf(Field::VlanVid, 0, Some(0x1000))],
        ),
        (
            "vlan_tci=0x1000/0x1000",
            vec![mf(Field::VlanVid, 0x1000, Some(0x1000))],
        ),
        (
            "dl_vlan=5,dl_vlan_pcp=3",
            vec![
                mf(Field::VlanVid, 0x1005, None),
                mf(Field::VlanPcp, 3, None),
            ],
        ),
        (
            "vlan_tci=0x7005",
            vec![
                mf(Field::VlanVid, 0x1005, None),
                mf(Field::VlanPcp, 3, None),
            ],
        ),
        (
            "ip,nw_src=10.0.0.0/255.0.0.0",
            vec![
                mf(Field::EthType, 0x0800, None),
                mf(Field::IpSrc, 0x0a00_0000, Some(0xff00_0000)),
            ],
        ),
        (
            "ip,ip_dst=10.0.0.0/255.0.255.0",
            vec![
                mf(Field::EthType, 0x0800, None),
                mf(Field::IpDst, 0x0a00_0000, Some(0xff00_ff00)),
            ],
        ),
        (
            "ipv6,ipv6_src=fe80::/10",
            vec![
                mf(Field::EthType, 0x86dd, None),
                mf(Field::Ipv6Src, 0xfe80 << 112, Some(0xffc0_u128 << 112)),
            ],
        ),
        (
            "ipv6,ipv6_dst=::1",
            vec![
                mf(Field::EthType, 0x86dd, None),
                mf(Field::Ipv6Dst, 1, None),
            ],
        ),
        (
            "ip,nw_proto=47",
            vec![
                mf(Field::EthType, 0x0800, None),
                mf(Field::IpProto, 47, None),
            ],
        ),
        (
            "ip,ip_dscp=46,nw_ecn=1,nw_ttl=64",
            vec![
                mf(Field::EthType, 0x0800, None),
                mf(Field::IpDscp, 46, None),
                mf(Field::IpEcn, 1, None),
                mf(Field::IpTtl, 64, None),
            ],
        ),
        (
            "ip,nw_tos=184",
            vec![
                mf(Field::EthType, 0x0800, None),
                mf(Field::IpDscp, 46, None),
            ],
        ),
        (
            "tcp,tp_src=0x50/0xfff0",
            vec![
                mf(Field::EthType, 0x0800, None),
                mf(Field::IpProto, 6, None),
                mf(Field::TcpSrc, 0x50, Some(0xfff0)),
            ],
        ),
        (
            "tp_dst=53 udp",
            vec![
                mf(Field::EthType, 0x0800, None),
                mf(Field::IpProto, 17, None),
                mf(Field::UdpDst, 53, None),
            ],
        ),
        (
            "udp6,udp_src=68",
            vec![
                mf(Field::EthType, 0x86dd, None),
                mf(Field::IpProto, 17, None),
                mf(Field::UdpSrc, 68, None),
            ],
        ),
        (
            "tcp6,tcp_dst=443",
            vec![
                mf(Field::EthType, 0x86dd, None),
                mf(Field::IpProto, 6, None),
                mf(Field::TcpDst, 443, None),
            ],
        ),
        (
            "tcp,tcp_flags=+syn-ack",
            vec![
                mf(Field::EthType, 0x0800, None),
                mf(Field::IpProto, 6, None),
                mf(Field::TcpFlags, 0x002, Some(0x012)),
            ],
        ),
        (
            "tcp,tcp_flags=0x002/0x012",
            vec![
                mf(Field::EthType, 0x0800, None),
                mf(Field::IpProto, 6, None),
                mf(Field::TcpFlags, 0x002, Some(0x012)),
            ],
        ),
        (
            "icmp,icmp_type=8,icmp_code=0",
            vec![
                mf(Field::EthType, 0x0800, None),
                mf(Field::IpProto, 1, None),
                mf(Field::IcmpType, 8, None),
                mf(Field::IcmpCode, 0, None),
            ],
        ),
        (
            "icmp6,icmp_type=135",
            vec![
                mf(Field::EthType, 0x86dd, None),
                mf(Field::IpProto, 58, None),
                mf(Field::Icmpv6Type, 135, None),
            ],
        ),
        (
            "icmp6,icmpv6_code=0",
            vec![
                mf(Field::EthType, 0x86dd, None),
                mf(Field::IpProto, 58, None),
                mf(Field::Icmpv6Code, 0, None),
            ],
        ),
        (
            "arp,arp_op=1,arp_spa=10.0.0.1,arp_tpa=10.0.0.0/8",
            vec![
                mf(Field::EthType, 0x0806, None),
                mf(Field::ArpOp, 1, None),
                mf(Field::ArpSpa, 0x0a00_0001, None),
                mf(Field::ArpTpa, 0x0a00_0000, Some(0xff00_0000)),
            ],
        ),
        (
            "arp,arp_sha=02:00:00:00:00:01,arp_tha=00:00:00:00:00:00",
            vec![
                mf(Field::EthType, 0x0806, None),
                mf(Field::ArpSha, 0x0200_0000_0001, None),
                mf(Field::ArpTha, 0, None),
            ],
        ),
        (
            "tun_id=0x10,tun_src=192.0.2.1,tun_dst=192.0.2.0/24",
            vec![
                mf(Field::TunId, 0x10, None),
                mf(Field::TunSrc, 0xc000_0201, None),
                mf(Field::TunDst, 0xc000_0200, Some(0xffff_ff00)),
            ],
        ),
        (
            "metadata=0x1/0xff,reg0=5,reg7=0x10/0xf0",
            vec![
                mf(Field::Metadata, 1, Some(0xff)),
                mf(Field::Reg(0), 5, None),
                mf(Field::Reg(7), 0x10, Some(0xf0)),
            ],
        ),
        (
            "ct_state=+trk+est-new,ct_zone=5,ct_mark=0x1/0x1",
            vec![
                mf(Field::CtState, 0x22, Some(0x23)),
                mf(Field::CtZone, 5, None),
                mf(Field::CtMark, 1, Some(1)),
            ],
        ),
        (
            "ct_state=0x20/0x20",
            vec![mf(Field::CtState, 0x20, Some(0x20))],
        ),
        // Repeating a shorthand is harmless; whitespace separates too.
        (
            "ip  tcp\ttcp_dst=22",
            vec![
                mf(Field::EthType, 0x0800, None),
                mf(Field::IpProto, 6, None),
                mf(Field::TcpDst, 22, None),
            ],
        ),
    ];
    for (text, expected) in cases {
        let line = format!("{text} actions=drop");
        let fm = add(&line);
        assert_eq!(norm(&fm.fields), norm(&expected), "{line}");
    }
}

#[test]
fn flow_settings_parse() {
    let fm = add(
        "table=3,priority=7,cookie=0x55,idle_timeout=10,hard_timeout=20,send_flow_rem,check_overlap actions=drop",
    );
    assert_eq!(
        (fm.table, fm.priority, fm.cookie, fm.cookie_mask),
        (Some(3), 7, 0x55, 0)
    );
    assert_eq!((fm.idle_timeout, fm.hard_timeout), (10, 20));
    assert!(fm.flags.send_flow_rem && fm.flags.check_overlap && !fm.flags.reset_counts);
    let d = parse_flow(
        "cookie=0x10/0xf0,out_port=p2,reset_counts",
        FlowModCommand::Delete,
        &ports,
    )
    .unwrap()
    .flow_mod;
    assert_eq!((d.cookie, d.cookie_mask, d.out_port), (0x10, 0xf0, Some(2)));
    let d = parse_flow("cookie=0x10", FlowModCommand::Delete, &ports)
        .unwrap()
        .flow_mod;
    assert_eq!(d.cookie_mask, u64::MAX);
    let d = parse_flow("cookie=0x10/-1", FlowModCommand::Delete, &ports)
        .unwrap()
        .flow_mod;
    assert_eq!((d.cookie, d.cookie_mask), (0x10, u64::MAX));
}

#[test]
fn many_valid_action_forms() {
    let cases: Vec<(&str, &str, Instructions)> = vec![
        ("", "drop", Instructions::default()),
        ("", "output:3", Instructions::apply(vec![Action::Output(3)])),
        (
            "",
            "output:p1,2,web",
            Instructions::apply(vec![
                Action::Output(1),
                Action::Output(2),
                Action::Output(7),
            ]),
        ),
        ("", "NORMAL", Instructions::apply(vec![Action::Normal])),
        (
            "",
            "flood,all,in_port",
            Instructions::apply(vec![Action::Flood, Action::All, Action::InPort]),
        ),
        (
            "",
            "controller",
            Instructions::apply(vec![Action::Controller {
                max_len: 65535,
                reason: PacketInReason::Action,
            }]),
        ),
        (
            "",
            "controller:128",
            Instructions::apply(vec![Action::Controller {
                max_len: 128,
                reason: PacketInReason::Action,
            }]),
        ),
        (
            "",
            "controller(max_len=64,reason=no_match)",
            Instructions::apply(vec![Action::Controller {
                max_len: 64,
                reason: PacketInReason::NoMatch,
            }]),
        ),
        (
            "ip",
            "set_field:10.0.0.9->ip_dst,mod_nw_src:10.0.0.1,dec_ttl",
            Instructions::apply(vec![
                Action::SetField {
                    field: Field::IpDst,
                    value: 0x0a00_0009,
                },
                Action::SetField {
                    field: Field::IpSrc,
                    value: 0x0a00_0001,
                },
                Action::DecTtl,
            ]),
        ),
        (
            "",
            "mod_dl_src:02:00:00:00:00:01,mod_dl_dst:02:00:00:00:00:02",
            Instructions::apply(vec![
                Action::SetField {
                    field: Field::EthSrc,
                    value: 0x0200_0000_0001,
                },
                Action::SetField {
                    field: Field::EthDst,
                    value: 0x0200_0000_0002,
                },
            ]),
        ),
        (
            "tcp",
            "mod_tp_src:1000,mod_tp_dst:80",
            Instructions::apply(vec![
                Action::SetField {
                    field: Field::TcpSrc,
                    value: 1000,
                },
                Action::SetField {
                    field: Field::TcpDst,
                    value: 80,
                },
            ]),
        ),
        (
            "udp",
            "mod_tp_dst:53",
            Instructions::apply(vec![Action::SetField {
                field: Field::UdpDst,
                value: 53,
            }]),
        ),
        (
            "ip",
            "mod_nw_tos:184",
            Instructions::apply(vec![Action::SetField {
                field: Field::IpDscp,
                value: 46,
            }]),
        ),
        (
            "",
            "push_vlan:0x8100,mod_vlan_vid:10,mod_vlan_pcp:3,output:1",
            Instructions::apply(vec![
                Action::PushVlan(0x8100),
                Action::SetField {
                    field: Field::VlanVid,
                    value: 10,
                },
                Action::SetField {
                    field: Field::VlanPcp,
                    value: 3,
                },
                Action::Output(1),
            ]),
        ),
        (
            "dl_vlan=5",
            "strip_vlan",
            Instructions::apply(vec![Action::PopVlan]),
        ),
        (
            "dl_vlan=5",
            "pop_vlan",
            Instructions::apply(vec![Action::PopVlan]),
        ),
        (
            "",
            "group:4,meter:2",
            Instructions::apply(vec![Action::Group(4), Action::Meter(2)]),
        ),
        (
            "",
            "goto_table:2",
            Instructions {
                goto_table: Some(2),
                ..Instructions::default()
            },
        ),
        (
            "",
            "output:1,resubmit(,5)",
            Instructions {
                apply: vec![Action::Output(1)],
                goto_table: Some(5),
                ..Instructions::default()
            },
        ),
        (
            "",
            "clear_actions,write_actions(output:2,set_field:5->reg1),write_metadata:0x1/0xff,goto_table:1",
            Instructions {
                apply: vec![],
                clear_actions: true,
                write: vec![
                    Action::Output(2),
                    Action::SetField {
                        field: Field::Reg(1),
                        value: 5,
                    },
                ],
                write_metadata: Some((1, 0xff)),
                goto_table: Some(1),
            },
        ),
        (
            "",
            "write_metadata:0x7",
            Instructions {
                write_metadata: Some((7, u64::MAX)),
                ..Instructions::default()
            },
        ),
    ];
    for (m, a, expected) in cases {
        let line = if m.is_empty() {
            format!("actions={a}")
        } else {
            format!("{m} actions={a}")
        };
        let fm = add(&line);
        assert_eq!(fm.instructions, expected, "{line}");
    }
}

/// (input, command, expected start of the offending token, token, part of the message)
#[test]
fn every_syntax_error_points_at_its_token() {
    use FlowModCommand::{Add, Delete};
    let cases: Vec<(&str, FlowModCommand, &str, &str)> = vec![
        (
            "nw_dstt=1.2.3.4 actions=drop",
            Add,
            "nw_dstt=1.2.3.4",
            "unknown field",
        ),
        ("ip,bogus actions=drop", Add, "bogus", "unknown keyword"),
        (
            "ip,nw_dst=10.0.0.300 actions=drop",
            Add,
            "nw_dst=10.0.0.300",
            "IPv4",
        ),
        (
            "ip,nw_dst=10.0.0.0/33 actions=drop",
            Add,
            "nw_dst=10.0.0.0/33",
            "prefix",
        ),
        (
            "ip,nw_dst=10.0.0.0/255.0.x.0 actions=drop",
            Add,
            "nw_dst=10.0.0.0/255.0.x.0",
            "mask",
        ),
        (
            "ipv6,ipv6_dst=fe80::zz actions=drop",
            Add,
            "ipv6_dst=fe80::zz",
            "IPv6",
        ),
        (
            "dl_src=aa:bb:cc:dd:ee actions=drop",
            Add,
            "dl_src=aa:bb:cc:dd:ee",
            "MAC",
        ),
        (
            "dl_type=0xgg actions=drop",
            Add,
            "dl_type=0xgg",
            "not a number",
        ),
        (
            "in_port=nosuch actions=drop",
            Add,
            "in_port=nosuch",
            "unknown port",
        ),
        ("table=254 actions=drop", Add, "table=254", "does not exist"),
        ("table=999 actions=drop", Add, "table=999", "out of range"),
        (
            "priority=70000 actions=drop",
            Add,
            "priority=70000",
            "out of range",
        ),
        (
            "dl_vlan=5000 actions=drop",
            Add,
            "dl_vlan=5000",
            "out of range",
        ),
        (
            "tp_dst=80 actions=drop",
            Add,
            "tp_dst=80",
            "needs the protocol",
        ),
        (
            "ip,tcp_flags=+syn+bogus actions=drop",
            Add,
            "tcp_flags=+syn+bogus",
            "unknown tcp flag",
        ),
        (
            "ct_state=+trk+trk actions=drop",
            Add,
            "ct_state=+trk+trk",
            "twice",
        ),
        (
            "ip_dst=+trk actions=drop",
            Add,
            "ip_dst=+trk",
            "only tcp_flags",
        ),
        ("ip,ipv6 actions=drop", Add, "ipv6", "given twice"),
        ("ip,nw_tos=3 actions=drop", Add, "nw_tos=3", "multiple of 4"),
        (
            "vlan_tci=0x2000/0x2000 actions=drop",
            Add,
            "vlan_tci=0x2000/0x2000",
            "partly masked",
        ),
        ("nw_dst= actions=drop", Add, "nw_dst=", "needs a value"),
        ("ip", Add, "", "missing actions"),
        ("ip actions=", Add, "actions=", "needs a list"),
        (
            "actions=output:nosuch",
            Add,
            "output:nosuch",
            "unknown port",
        ),
        ("actions=frobnicate", Add, "frobnicate", "unknown action"),
        ("actions=output:1,drop", Add, "drop", "only action"),
        (
            "actions=goto_table:1,output:2",
            Add,
            "output:2",
            "before goto_table",
        ),
        (
            "actions=goto_table:1,goto_table:2",
            Add,
            "goto_table:2",
            "only one",
        ),
        ("actions=resubmit:3", Add, "resubmit:3", "not supported"),
        (
            "actions=resubmit(1,3)",
            Add,
            "resubmit(1,3)",
            "port must be empty",
        ),
        (
            "actions=set_field:1.2.3.4",
            Add,
            "set_field:1.2.3.4",
            "VALUE->FIELD",
        ),
        (
            "actions=set_field:1->nosuch",
            Add,
            "set_field:1->nosuch",
            "unknown field",
        ),
        (
            "ip actions=set_field:10.0.0.0/8->ip_dst",
            Add,
            "set_field:10.0.0.0/8->ip_dst",
            "no mask",
        ),
        ("actions=mod_tp_dst:80", Add, "mod_tp_dst:80", "tcp or udp"),
        (
            "actions=controller(max_len=1,reason=why)",
            Add,
            "controller(max_len=1,reason=why)",
            "reason",
        ),
        (
            "actions=controller(foo=1)",
            Add,
            "controller(foo=1)",
            "takes max_len",
        ),
        (
            "actions=write_actions(output:1",
            Add,
            "write_actions(output:1",
            "missing `)`",
        ),
        (
            "actions=write_actions(output:1,bogus)",
            Add,
            "bogus",
            "unknown action",
        ),
        // The `name:arg` form with a `(` in its argument is not `write_actions(...)` (the
        // argument used to be located one byte off, past the end of the input).
        (
            "arp actions=write_actions:(,clear_actions",
            Add,
            "write_actions:(,clear_actions",
            "unknown action",
        ),
        (
            "actions=write_actions( output:1,bogus)",
            Add,
            "bogus",
            "unknown action",
        ),
        (
            "actions=push_vlan:0x10000",
            Add,
            "push_vlan:0x10000",
            "out of range",
        ),
        (
            "actions=write_metadata:0x1/0x1ffffffffffffffff",
            Add,
            "write_metadata:0x1/0x1ffffffffffffffff",
            "64 bits",
        ),
        ("ip actions=drop", Delete, "actions=drop", "not allowed"),
    ];
    for (input, command, token, message) in cases {
        let e = err(input, command);
        assert!(
            e.message.contains(message),
            "{input:?}: message {:?} lacks {message:?}",
            e.message
        );
        assert_eq!(e.token, token, "{input:?}: {}", e.render(input));
        if !token.is_empty() {
            assert_eq!(
                e.span.start,
                input.find(token).unwrap(),
                "{input:?}: {}",
                e.render(input)
            );
        } else {
            assert_eq!(e.span.start, input.len(), "{input:?}");
        }
        assert_eq!(&input[e.span.start..e.span.end], token);
    }
}

#[test]
fn errors_render_a_caret_under_the_token() {
    let input = "table=0,nw_dstt=1.2.3.4 actions=drop";
    let e = err(input, FlowModCommand::Add);
    assert_eq!(
        e.render(input),
        "unknown field `nw_dstt`\n  table=0,nw_dstt=1.2.3.4 actions=drop\n          ^^^^^^^^^^^^^^^"
    );
    // At the end of the input: one caret after the last character.
    let e = err("ip", FlowModCommand::Add);
    assert!(
        e.render("ip").ends_with("\n  ip\n    ^"),
        "{}",
        e.render("ip")
    );
}

#[test]
fn datapath_errors_map_back_to_tokens() {
    let input =
        "table=1,priority=5,udp,tcp_dst=80 actions=output:1,set_field:1->in_port,goto_table:0";
    let p = parse_flow(input, FlowModCommand::Add, &ports).unwrap();
    let e = build_match(&p.flow_mod.fields).unwrap_err();
    assert_eq!(e.at, "match.tcp_dst");
    let span = p.span_of(&e.at);
    assert_eq!(&input[span.start..span.end], "tcp_dst=80");
    let at = |a: &str| {
        let s = p.span_of(a);
        input[s.start..s.end].to_owned()
    };
    assert_eq!(at("instructions.apply[1]"), "set_field:1->in_port");
    assert_eq!(at("instructions.goto_table"), "goto_table:0");
    assert_eq!(at("table"), "table=1");
    assert_eq!(at("priority"), "priority=5");
    assert_eq!(
        at("instructions.apply"),
        "actions=output:1,set_field:1->in_port,goto_table:0"
    );
    assert_eq!(at("match"), "table=1,priority=5,udp,tcp_dst=80");
    assert_eq!(at("nonsense"), input);
    // A shorthand is the token of the fields it sets.
    assert_eq!(at("match.ip_proto"), "udp");
    let input = "actions=write_actions(output:1,group:5)";
    let p = parse_flow(input, FlowModCommand::Add, &ports).unwrap();
    let s = p.span_of("instructions.write[1]");
    assert_eq!(&input[s.start..s.end], "group:5");
}

#[test]
fn formatting_reads_like_ovs_and_uses_port_names() {
    let fm =
        add("table=0,priority=100,ip,nw_dst=10.1.0.0/16,tcp,tp_dst=80,in_port=1 actions=output:p2");
    assert_eq!(
        format_flow_mod(&fm, &names),
        "table=0,priority=100,tcp,in_port=p1,nw_dst=10.1.0.0/16,tcp_dst=80 actions=output:p2"
    );
    assert_eq!(
        format_flow_mod(&fm, &|_| None),
        "table=0,priority=100,tcp,in_port=1,nw_dst=10.1.0.0/16,tcp_dst=80 actions=output:2"
    );
    let fm = add("priority=0 actions=normal");
    assert_eq!(
        format_flow_mod(&fm, &names),
        "table=0,priority=0 actions=NORMAL"
    );
    let fm = add("dl_vlan=0xffff,ct_state=+trk-new,cookie=0x5 actions=drop");
    assert_eq!(
        format_flow_mod(&fm, &names),
        "table=0,priority=32768,cookie=0x5,dl_vlan=0xffff,ct_state=-new+trk actions=drop"
    );
    // A port name that would read back as something else is printed as its number.
    assert_eq!(
        format_actions(&Instructions::apply(vec![Action::Output(9)]), &|_| Some(
            "normal".into()
        )),
        "output:9"
    );
}

#[test]
fn format_then_parse_round_trips_flows() {
    let lines = [
        "table=0,priority=100,ip,nw_dst=10.1.0.0/16,tcp,tp_dst=80 actions=output:p2",
        "table=3,priority=1,cookie=0xff,idle_timeout=5,hard_timeout=9,send_flow_rem,arp,arp_op=2 actions=flood",
        "dl_vlan=7,dl_vlan_pcp=2 actions=pop_vlan,push_vlan:0x88a8,mod_vlan_vid:9,output:1",
        "vlan_tci=0/0x1000,in_port=2 actions=controller(max_len=99,reason=invalid_ttl),controller:5",
        "ipv6,ipv6_src=fe80::/10,ipv6_dst=2001:db8::/ffff:ffff:0:ffff:: actions=dec_ttl,set_field:2001:db8::1->ipv6_dst",
        "tcp,tcp_flags=0x800/0x800 actions=clear_actions,write_actions(group:1,output:2),write_metadata:0x10/0xf0,goto_table:4",
        "udp6,udp_dst=0x35/0xff ct_state=0x1/0x101 actions=all",
        "icmp6,icmpv6_type=128 actions=in_port",
        "reg3=0x1/0x3,metadata=0xabc,tun_id=0x5/0xf,ct_zone=3,ct_mark=9 actions=write_metadata:0x1",
    ];
    for line in lines {
        let fm = add(line);
        let text = format_flow_mod(&fm, &names);
        let again = add(&text);
        assert_eq!(norm(&again.fields), norm(&fm.fields), "{line} -> {text}");
        assert_eq!(again.instructions, fm.instructions, "{line} -> {text}");
        assert_eq!(
            (
                again.table,
                again.priority,
                again.cookie,
                again.idle_timeout,
                again.hard_timeout,
                again.flags
            ),
            (
                fm.table,
                fm.priority,
                fm.cookie,
                fm.idle_timeout,
                fm.hard_timeout,
                fm.flags
            ),
            "{line} -> {text}"
        );
        // A second formatting is the same text.
        assert_eq!(format_flow_mod(&again, &names), text);
    }
    // Delete forms keep cookie masks, out_port and the table wildcard.
    let d = parse_flow(
        "cookie=0x1/0x3,out_port=2,ip",
        FlowModCommand::DeleteStrict,
        &ports,
    )
    .unwrap()
    .flow_mod;
    let text = format_flow_mod(&d, &names);
    assert_eq!(text, "priority=32768,cookie=0x1/0x3,out_port=p2,ip");
    let again = parse_flow(&text, FlowModCommand::DeleteStrict, &ports)
        .unwrap()
        .flow_mod;
    assert_eq!(again, d);
}

#[test]
fn values_parse_and_format_per_field_kind() {
    // A mask wider than its field (a library caller's, never a validated flow's) is written,
    // not a panic (found by an audit, 2026-12-07: subtract with overflow).
    assert_eq!(
        format_value(Field::IpDst, 0, Some(0x1_ffff_ffff)),
        "0.0.0.0/255.255.255.255"
    );
    assert_eq!(
        format_value(Field::IpDst, 0, Some(0xffff_ffff)),
        "0.0.0.0/32"
    );
    assert_eq!(
        parse_value(Field::IpDst, "10.0.0.0/8"),
        Ok((0x0a00_0000, Some(0xff00_0000)))
    );
    assert_eq!(
        parse_value(Field::IpDst, "10.0.0.0/0"),
        Ok((0x0a00_0000, Some(0)))
    );
    assert_eq!(
        parse_value(Field::TcpDst, "0x50/0xfff0"),
        Ok((0x50, Some(0xfff0)))
    );
    assert_eq!(parse_value(Field::TcpDst, "80"), Ok((80, None)));
    assert!(parse_value(Field::TcpDst, "-80").is_err());
    assert!(parse_value(Field::TcpDst, "0x").is_err());
    assert!(parse_value(Field::TcpDst, "999999999999999999999999999999999999999999").is_err());
    assert_eq!(format_value(Field::EthType, 0x800, None), "0x0800");
    assert_eq!(format_value(Field::TcpDst, 80, None), "80");
    assert_eq!(
        format_value(Field::TcpDst, 0x50, Some(0xfff0)),
        "0x50/0xfff0"
    );
    assert_eq!(
        format_value(Field::IpDst, 0x0a00_0000, Some(0xff00_ff00)),
        "10.0.0.0/255.0.255.0"
    );
    assert_eq!(
        format_value(Field::Ipv6Src, 0xfe80 << 112, Some(0xffc0 << 112)),
        "fe80::/10"
    );
    assert_eq!(
        format_value(Field::EthDst, 0x0100_0000_0000, Some(0x0100_0000_0000)),
        "01:00:00:00:00:00/01:00:00:00:00:00"
    );
}

// ---------------------------------------------------------------------------------------------
// Property: formatting then parsing a valid match is the identity.
// ---------------------------------------------------------------------------------------------

/// A valid set of match fields: a protocol stack, then fields its prerequisites allow.
fn valid_match() -> impl Strategy<Value = Vec<MatchField>> {
    let stack = prop_oneof![
        Just((None, None)),
        Just((Some(0x0800u128), None)),
        Just((Some(0x0800), Some(6u128))),
        Just((Some(0x0800), Some(17))),
        Just((Some(0x0800), Some(1))),
        Just((Some(0x0800), Some(47))),
        Just((Some(0x86dd), None)),
        Just((Some(0x86dd), Some(6))),
        Just((Some(0x86dd), Some(17))),
        Just((Some(0x86dd), Some(58))),
        Just((Some(0x0806), None)),
        Just((Some(0x88cc), None)),
    ];
    let values =
        proptest::collection::vec((any::<u128>(), any::<u128>(), 0u8..3), field::ALL.len());
    (stack, values, any::<bool>()).prop_map(|((eth, proto), values, tagged)| {
        let mut out = Vec::new();
        if let Some(e) = eth {
            out.push(mf(Field::EthType, e, None));
        }
        if let Some(p) = proto {
            out.push(mf(Field::IpProto, p, None));
        }
        for (f, (v, m, how)) in field::ALL.iter().zip(values) {
            let f = *f;
            if matches!(f, Field::EthType | Field::IpProto) || how == 0 {
                continue;
            }
            let ok = match f.prereq() {
                field::Prereq::None => true,
                field::Prereq::Vlan => tagged,
                field::Prereq::Ip => matches!(eth, Some(0x0800 | 0x86dd)),
                field::Prereq::Ipv4 => eth == Some(0x0800),
                field::Prereq::Ipv6 => eth == Some(0x86dd),
                field::Prereq::Arp => eth == Some(0x0806),
                field::Prereq::Tcp => proto == Some(6),
                field::Prereq::Udp => proto == Some(17),
                field::Prereq::Icmp => eth == Some(0x0800) && proto == Some(1),
                field::Prereq::Icmpv6 => eth == Some(0x86dd) && proto == Some(58),
            };
            if !ok {
                continue;
            }
            let max = f.max_value();
            let (value, mask) = if how == 1 || !f.maskable() {
                (v & max, None)
            } else {
                let m = m & max;
                (v & m, Some(m))
            };
            let (value, mask) = if f == Field::VlanVid && tagged {
                // vlan_pcp needs the tag bit matched as present.
                (value | 0x1000, mask.map(|m| m | 0x1000))
            } else {
                (value, mask)
            };
            out.push(mf(f, value, mask));
        }
        if tagged && !out.iter().any(|m| m.field == Field::VlanVid) {
            out.push(mf(Field::VlanVid, 0x1000, Some(0x1000)));
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn formatting_then_parsing_a_match_is_identity(fields in valid_match()) {
        let (_, fields) = build_match(&fields).expect("the generator makes valid matches");
        let text = format_match(&fields, &|_| None);
        let line = format!("{text} actions=drop");
        let parsed = parse_flow(&line, FlowModCommand::Add, &|_| None)
            .map_err(|e| TestCaseError::fail(e.render(&line)))?;
        let (_, again) = build_match(&parsed.flow_mod.fields)
            .map_err(|e| TestCaseError::fail(format!("{line}: {e}")))?;
        prop_assert_eq!(again, fields, "{}", line);
    }
}
