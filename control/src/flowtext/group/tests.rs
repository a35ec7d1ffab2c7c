use datapath::ofp::field::Field;

use super::*;

fn ports(name: &str) -> Option<u32> {
    match name {
        "p1" => Some(1),
        "p2" => Some(2),
        "p3" => Some(3),
        _ => None,
    }
}

fn names(p: u32) -> Option<String> {
    match p {
        1 => Some("p1".into()),
        2 => Some("p2".into()),
        3 => Some("p3".into()),
        _ => None,
    }
}

fn group(s: &str) -> GroupMod {
    match parse_group(s, ModCommand::Add, &ports) {
        Ok(p) => p.group_mod,
        Err(e) => panic!("{}", e.render(s)),
    }
}

fn meter(s: &str) -> MeterMod {
    match parse_meter(s, ModCommand::Add) {
        Ok(p) => p.meter_mod,
        Err(e) => panic!("{}", e.render(s)),
    }
}

fn bucket(weight: u16, watch_port: Option<u32>, actions: Vec<Action>) -> Bucket {
    Bucket {
        weight,
        watch_port,
        actions,
    }
}

#[test]
fn the_documented_group_parses() {
    let gm = group(
        "group_id=1,type=select,bucket=weight:10,actions=output:p2,bucket=weight:10,actions=output:p3",
    );
    assert_eq!(
        gm,
        GroupMod {
            command: ModCommand::Add,
            id: Some(1),
            kind: GroupType::Select,
            buckets: vec![
                bucket(10, None, vec![Action::Output(2)]),
                bucket(10, None, vec![Action::Output(3)]),
            ],
        }
    );
}

#[test]
fn many_valid_group_forms() {
    let out = |p| vec![Action::Output(p)];
    let cases: Vec<(&str, GroupType, Vec<Bucket>)> = vec![
        // Bare actions, `actions=` form, several actions per bucket.
        (
            "group_id=2,type=all,bucket=output:1,bucket=actions=output:2,dec_ttl",
            GroupType::All,
            vec![
                bucket(0, None, out(1)),
                bucket(0, None, vec![Action::Output(2), Action::DecTtl]),
            ],
        ),
        // Select buckets default to weight 1; `weight=` also reads.
        (
            "group_id=3,type=select,bucket=output:p1,bucket=weight=5,output:p2",
            GroupType::Select,
            vec![bucket(1, None, out(1)), bucket(5, None, out(2))],
        ),
        // Fast failover, both spellings, watch_port by name and number.
        (
            "group_id=4,type=ff,bucket=watch_port:p1,output:p1,bucket=watch_port=2,actions=output:2",
            GroupType::FastFailover,
            vec![bucket(0, Some(1), out(1)), bucket(0, Some(2), out(2))],
        ),
        (
            "group_id=4,type=fast_failover,bucket=watch_port:3,actions=output:3",
            GroupType::FastFailover,
            vec![bucket(0, Some(3), out(3))],
        ),
        (
            "group_id=5 type=indirect bucket=actions=set_field:10.0.0.9->ip_dst,output:2",
            GroupType::Indirect,
            vec![bucket(
                0,
                None,
                vec![
                    Action::SetField {
                        field: Field::IpDst,
                        value: 0x0a00_0009,
                    },
                    Action::Output(2),
                ],
            )],
        ),
        // No buckets; an empty bucket; a drop bucket; upper-case keywords.
        ("group_id=6,type=all", GroupType::All, vec![]),
        (
            "GROUP_ID=7,TYPE=ALL,bucket=,bucket=actions=drop,bucket=drop",
            GroupType::All,
            vec![
                bucket(0, None, vec![]),
                bucket(0, None, vec![]),
                bucket(0, None, vec![]),
            ],
        ),
        // Actions datapath validation refuses are still syntax (the server judges them).
        (
            "group_id=8,type=all,bucket=group:2,bucket=push_vlan:0x8100,mod_vlan_vid:5,output:1",
            GroupType::All,
            vec![
                bucket(0, None, vec![Action::Group(2)]),
                bucket(
                    0,
                    None,
                    vec![
                        Action::PushVlan(0x8100),
                        Action::SetField {
                            field: Field::VlanVid,
                            value: 5,
                        },
                        Action::Output(1),
                    ],
                ),
            ],
        ),
        (
            "group_id=0x10,type=select,bucket=weight:0,output:1,bucket=weight:65535,in_port",
            GroupType::Select,
            vec![
                bucket(0, None, out(1)),
                bucket(65535, None, vec![Action::InPort]),
            ],
        ),
    ];
    for (text, kind, buckets) in cases {
        let gm = group(text);
        assert_eq!(gm.kind, kind, "{text}");
        assert_eq!(gm.buckets, buckets, "{text}");
    }
    // Modify reads like add.
    let m = parse_group(
        "group_id=1,type=all,bucket=output:1",
        ModCommand::Modify,
        &ports,
    )
    .unwrap()
    .group_mod;
    assert_eq!((m.command, m.id), (ModCommand::Modify, Some(1)));
}

#[test]
fn group_deletes_select_one_or_all() {
    let del = |s: &str| {
        parse_group(s, ModCommand::Delete, &ports)
            .unwrap_or_else(|e| panic!("{}", e.render(s)))
            .group_mod
    };
    assert_eq!(del("").id, None);
    assert_eq!(del("group_id=all").id, None);
    assert_eq!(del("group_id=9").id, Some(9));
    assert_eq!(del("group_id=9").command, ModCommand::Delete);
}

/// (input, command, offending token, message fragment).
#[test]
fn every_group_syntax_error_points_at_its_token() {
    use ModCommand::{Add, Delete};
    let cases: [(&str, ModCommand, &str, &str); 25] = [
        ("type=all", Add, "", "missing group_id"),
        ("group_id=1", Add, "", "missing type"),
        ("group_id=x,type=all", Add, "group_id=x", "not a number"),
        (
            "group_id=4294967296,type=all",
            Add,
            "group_id=4294967296",
            "out of range",
        ),
        ("group_id=all,type=all", Add, "group_id=all", "delete only"),
        ("group_id=1,group_id=2,type=all", Add, "group_id=2", "twice"),
        ("group_id=1,type=all,type=all", Add, "type=all", "twice"),
        (
            "group_id=1,type=fancy",
            Add,
            "type=fancy",
            "unknown group type",
        ),
        ("group_id=1,type=", Add, "type=", "needs a value"),
        (
            "group_id=1,kind=all",
            Add,
            "kind=all",
            "unknown group setting",
        ),
        (
            "group_id=1,type=select,selection_method=hash",
            Add,
            "selection_method=hash",
            "not supported",
        ),
        (
            "group_id=1,bucket=output:1,type=all",
            Add,
            "type=all",
            "before the first bucket",
        ),
        (
            "group_id=1,type=all,bucket=weight:x",
            Add,
            "weight:x",
            "not a number",
        ),
        (
            "group_id=1,type=all,bucket=weight:70000",
            Add,
            "weight:70000",
            "out of range",
        ),
        (
            "group_id=1,type=all,bucket=weight:1,weight:2",
            Add,
            "weight:2",
            "twice",
        ),
        (
            "group_id=1,type=ff,bucket=watch_port:nope",
            Add,
            "watch_port:nope",
            "unknown port",
        ),
        (
            "group_id=1,type=ff,bucket=watch_port:1,watch_port:2",
            Add,
            "watch_port:2",
            "twice",
        ),
        (
            "group_id=1,type=ff,bucket=watch_group:1",
            Add,
            "watch_group:1",
            "not supported",
        ),
        (
            "group_id=1,type=all,bucket=bucket_id:1",
            Add,
            "bucket_id:1",
            "not supported",
        ),
        (
            "group_id=1,type=all,bucket=output:1,frob",
            Add,
            "frob",
            "unknown action",
        ),
        (
            "group_id=1,type=all,bucket=actions=drop,output:1",
            Add,
            "output:1",
            "only action",
        ),
        (
            "group_id=1,type=all,bucket=output:1,drop",
            Add,
            "drop",
            "only action",
        ),
        (
            "group_id=1,type=all,bucket=goto_table:1",
            Add,
            "goto_table:1",
            "instructions",
        ),
        (
            "group_id=1,bucket=output:1",
            Delete,
            "bucket=output:1",
            "not allowed",
        ),
        ("group_id=1,type=all", Delete, "type=all", "not allowed"),
    ];
    for (input, command, token, message) in cases {
        let e = match parse_group(input, command, &ports) {
            Ok(p) => panic!("{input:?} parsed: {:?}", p.group_mod),
            Err(e) => e,
        };
        assert_eq!(e.token, token, "{input}: {}", e.message);
        assert!(
            e.message.contains(message),
            "{input}: {:?} lacks {message:?}",
            e.message
        );
        assert_eq!(&input[e.span.start..e.span.end], token, "{input}");
    }
}

#[test]
fn group_errors_render_a_caret_under_the_token() {
    let input = "group_id=1,type=all,bucket=output:1,frob";
    let e = parse_group(input, ModCommand::Add, &ports).unwrap_err();
    assert_eq!(
        e.render(input),
        "unknown action `frob`\n  group_id=1,type=all,bucket=output:1,frob\n                                      ^^^^"
    );
}

#[test]
fn server_error_fields_map_back_to_group_tokens() {
    let input =
        "group_id=1,type=ff,bucket=watch_port:1,output:1,bucket=weight:3,actions=output:2,group:2";
    let p = parse_group(input, ModCommand::Add, &ports).unwrap();
    let text = |at: &str| {
        let s = p.span_of(at);
        &input[s.start..s.end]
    };
    assert_eq!(text("group_id"), "group_id=1");
    assert_eq!(text("type"), "type=ff");
    assert_eq!(text("buckets[0].watch_port"), "watch_port:1");
    assert_eq!(text("buckets[0].actions[0]"), "output:1");
    assert_eq!(text("buckets[1].weight"), "weight:3");
    assert_eq!(text("buckets[1].actions[1]"), "group:2");
    assert_eq!(text("buckets[1].actions"), "output:2,group:2");
    // Missing parts fall back to the bucket, unknown paths to the line.
    assert_eq!(
        text("buckets[1].watch_port"),
        "bucket=weight:3,actions=output:2,group:2"
    );
    assert_eq!(
        text("buckets"),
        "bucket=watch_port:1,output:1,bucket=weight:3,actions=output:2,group:2"
    );
    assert_eq!(text("buckets[7]"), input);
    assert_eq!(text("nonsense"), input);
}

#[test]
fn groups_format_like_ovs_and_read_back() {
    let lines = [
        "group_id=1,type=select,bucket=weight:10,actions=output:p2,bucket=weight:10,actions=output:p3",
        "group_id=2,type=all,bucket=actions=output:p1,dec_ttl,bucket=actions=drop",
        "group_id=3,type=ff,bucket=watch_port:p1,actions=output:p1,bucket=watch_port:p2,actions=output:p2",
        "group_id=4,type=indirect,bucket=actions=set_field:10.0.0.9->ip_dst,output:7",
        "group_id=5,type=all",
        "group_id=6,type=all,bucket=weight:4,actions=push_vlan:0x8100,output:p1",
    ];
    for line in lines {
        let gm = group(line);
        let text = format_group_mod(&gm, &names);
        assert_eq!(text, line);
        assert_eq!(group(&text), gm, "{line}");
    }
    // Non-canonical input comes back canonical and equal.
    let gm = group("group_id=8 type=select bucket=output:1 bucket=weight=2,output:2");
    let text = format_group_mod(&gm, &names);
    assert_eq!(
        text,
        "group_id=8,type=select,bucket=weight:1,actions=output:p1,bucket=weight:2,actions=output:p2"
    );
    assert_eq!(group(&text), gm);
    // Without names, numbers.
    assert_eq!(
        format_group_mod(&gm, &|_| None),
        "group_id=8,type=select,bucket=weight:1,actions=output:1,bucket=weight:2,actions=output:2"
    );
    // Deletes.
    let del = parse_group("group_id=3", ModCommand::Delete, &ports).unwrap();
    assert_eq!(format_group_mod(&del.group_mod, &names), "group_id=3");
    let all = parse_group("", ModCommand::Delete, &ports).unwrap();
    let text = format_group_mod(&all.group_mod, &names);
    assert_eq!(text, "group_id=all");
    assert_eq!(
        parse_group(&text, ModCommand::Delete, &ports)
            .unwrap()
            .group_mod,
        all.group_mod
    );
}

#[test]
fn installed_groups_format_as_their_add_line() {
    let g = Group::new(
        9,
        GroupType::Select,
        vec![bucket(3, None, vec![Action::Output(1)])],
        1,
    )
    .unwrap();
    assert_eq!(
        format_group(&g, &names),
        "group_id=9,type=select,bucket=weight:3,actions=output:p1"
    );
}

#[test]
fn the_documented_meters_parse() {
    assert_eq!(
        meter("meter=1,pktps,burst,band=type=drop,rate=100,burst_size=10"),
        MeterMod {
            command: ModCommand::Add,
            id: Some(1),
            config: MeterConfig {
                unit: MeterUnit::Pktps,
                rate: 100,
                burst: 10
            },
        }
    );
    assert_eq!(
        meter("meter=1,kbps,band=type=drop,rate=10000").config,
        MeterConfig {
            unit: MeterUnit::Kbps,
            rate: 10000,
            burst: 0
        }
    );
}

#[test]
fn many_valid_meter_forms() {
    let cfg = |unit, rate, burst| MeterConfig { unit, rate, burst };
    let cases = [
        // kbps is the default unit; `stats` is accepted.
        ("meter=2,band=type=drop,rate=5", cfg(MeterUnit::Kbps, 5, 0)),
        (
            "meter=2,stats,pktps,band=type=drop,rate=5",
            cfg(MeterUnit::Pktps, 5, 0),
        ),
        // The dump form: spaces and `bands=`.
        (
            "meter=3 pktps burst stats bands=type=drop rate=100 burst_size=10",
            cfg(MeterUnit::Pktps, 100, 10),
        ),
        (
            "meter=3 kbps bands= type=drop rate=100",
            cfg(MeterUnit::Kbps, 100, 0),
        ),
        // Band items in any order, flags after the band, hex, upper case.
        (
            "METER=0x4,band=rate=7,TYPE=DROP,burst_size=2,burst,PKTPS",
            cfg(MeterUnit::Pktps, 7, 2),
        ),
        // `burst` without burst_size: the default burst.
        (
            "meter=5,burst,band=type=drop,rate=9",
            cfg(MeterUnit::Kbps, 9, 0),
        ),
        // Ranges are the server's business.
        ("meter=0,band=type=drop,rate=0", cfg(MeterUnit::Kbps, 0, 0)),
    ];
    for (text, config) in cases {
        assert_eq!(meter(text).config, config, "{text}");
    }
    assert_eq!(meter("meter=0x4,band=type=drop,rate=7").id, Some(4));
    let m = parse_meter("meter=1,band=type=drop,rate=1", ModCommand::Modify)
        .unwrap()
        .meter_mod;
    assert_eq!((m.command, m.id), (ModCommand::Modify, Some(1)));
    let del = |s: &str| parse_meter(s, ModCommand::Delete).unwrap().meter_mod.id;
    assert_eq!(del(""), None);
    assert_eq!(del("meter=all"), None);
    assert_eq!(del("meter=6"), Some(6));
}

#[test]
fn every_meter_syntax_error_points_at_its_token() {
    use ModCommand::{Add, Delete};
    let cases: [(&str, ModCommand, &str, &str); 20] = [
        ("band=type=drop,rate=1", Add, "", "missing meter"),
        ("meter=1,kbps", Add, "", "missing band"),
        ("meter=1,band=rate=1", Add, "band=rate=1", "needs type=drop"),
        (
            "meter=1,band=type=drop",
            Add,
            "band=type=drop",
            "needs rate",
        ),
        (
            "meter=x,band=type=drop,rate=1",
            Add,
            "meter=x",
            "not a number",
        ),
        (
            "meter=all,band=type=drop,rate=1",
            Add,
            "meter=all",
            "delete only",
        ),
        (
            "meter=1,meter=2,band=type=drop,rate=1",
            Add,
            "meter=2",
            "twice",
        ),
        (
            "meter=1,kbps,pktps,band=type=drop,rate=1",
            Add,
            "pktps",
            "twice",
        ),
        (
            "meter=1,rate=1,band=type=drop",
            Add,
            "rate=1",
            "belongs to the band",
        ),
        (
            "meter=1,band=type=drop,rate=1,band=type=drop",
            Add,
            "band=type=drop",
            "one band",
        ),
        (
            "meter=1,band=type=dscp_remark,rate=1",
            Add,
            "type=dscp_remark",
            "not supported",
        ),
        (
            "meter=1,band=type=drop,rate=1,prec_level=1",
            Add,
            "prec_level=1",
            "dscp_remark",
        ),
        (
            "meter=1,band=type=drop,rate=x",
            Add,
            "rate=x",
            "not a number",
        ),
        (
            "meter=1,band=type=drop,rate=1,rate=2",
            Add,
            "rate=2",
            "twice",
        ),
        (
            "meter=1,band=type=drop,rate=",
            Add,
            "rate=",
            "needs a value",
        ),
        (
            "meter=1,band=type=drop,rate=1,burst_size=5",
            Add,
            "burst_size=5",
            "`burst` flag",
        ),
        (
            "meter=1,fast,band=type=drop,rate=1",
            Add,
            "fast",
            "unknown meter setting",
        ),
        ("meter=1,kbps", Delete, "kbps", "only meter=N"),
        (
            "meter=1,band=type=drop,rate=1",
            Delete,
            "band=type=drop",
            "not allowed",
        ),
        ("meter=1,meter=2", Delete, "meter=2", "twice"),
    ];
    for (input, command, token, message) in cases {
        let e = match parse_meter(input, command) {
            Ok(p) => panic!("{input:?} parsed: {:?}", p.meter_mod),
            Err(e) => e,
        };
        assert_eq!(e.token, token, "{input}: {}", e.message);
        assert!(
            e.message.contains(message),
            "{input}: {:?} lacks {message:?}",
            e.message
        );
    }
}

#[test]
fn server_error_fields_map_back_to_meter_tokens() {
    let input = "meter=0,pktps,burst,band=type=drop,rate=0,burst_size=3";
    let p = parse_meter(input, ModCommand::Add).unwrap();
    let text = |at: &str| {
        let s = p.span_of(at);
        &input[s.start..s.end]
    };
    assert_eq!(text("meter_id"), "meter=0");
    assert_eq!(text("unit"), "pktps");
    assert_eq!(text("rate"), "rate=0");
    assert_eq!(text("burst"), "burst_size=3");
    assert_eq!(text("other"), input);
    let e = fail::<()>(input, p.span_of("rate"), "rate 0 is out of range").unwrap_err();
    assert_eq!(
        e.render(input),
        "rate 0 is out of range\n  meter=0,pktps,burst,band=type=drop,rate=0,burst_size=3\n                                     ^^^^^^"
    );
}

#[test]
fn meters_format_like_ovs_and_read_back() {
    for line in [
        "meter=1,pktps,burst,band=type=drop,rate=100,burst_size=10",
        "meter=1,kbps,band=type=drop,rate=10000",
        "meter=4294967040,kbps,burst,band=type=drop,rate=1000000000,burst_size=1",
    ] {
        let mm = meter(line);
        assert_eq!(format_meter_mod(&mm), line);
        assert_eq!(meter(&format_meter_mod(&mm)), mm);
    }
    let mm = meter("meter=2 band=type=drop rate=5");
    assert_eq!(format_meter_mod(&mm), "meter=2,kbps,band=type=drop,rate=5");
    for (text, back) in [("meter=3", "meter=3"), ("", "meter=all")] {
        let mm = parse_meter(text, ModCommand::Delete).unwrap().meter_mod;
        assert_eq!(format_meter_mod(&mm), back);
        assert_eq!(parse_meter(back, ModCommand::Delete).unwrap().meter_mod, mm);
    }
}
