//! Hostile text for the flow, group and meter parsers: never a panic, always a located error
//! or a valid result, whatever the input (random bytes, and mutations of valid flows).
#![allow(clippy::unwrap_used)]

use control::flowtext::{parse_flow, parse_group, parse_meter};
use datapath::ofp::pipeline::{FlowModCommand, ModCommand};
use proptest::prelude::*;

const VALID: &[&str] = &[
    "table=0,priority=100,ip,nw_dst=10.1.0.0/16,tcp,tp_dst=80 actions=output:p2",
    "in_port=p1,dl_vlan=42 actions=pop_vlan,output:1",
    "priority=5,udp6,ipv6_dst=fe80::/10,udp_dst=0x35/0xffff actions=set_field:10->ip_dscp,normal",
    "tcp,tcp_flags=+syn-ack actions=controller(max_len=64,reason=action)",
    "metadata=0x1/0xff,reg3=7 actions=write_metadata:0x2/0xf,goto_table:4",
    "arp,arp_tpa=10.0.0.1 actions=write_actions(output:2),clear_actions",
];

fn ports(name: &str) -> Option<u32> {
    match name {
        "p1" => Some(1),
        "p2" => Some(2),
        _ => None,
    }
}

fn check(input: &str) {
    for cmd in [FlowModCommand::Add, FlowModCommand::Delete] {
        if let Err(e) = parse_flow(input, cmd, &ports) {
            // The error points inside the input (or just past its end).
            assert!(
                e.span.start <= input.len() && e.span.end <= input.len(),
                "{e:?}"
            );
        }
    }
    let _ = parse_group(input, ModCommand::Add, &ports);
    let _ = parse_meter(input, ModCommand::Add);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_text_never_panics(s in "\\PC{0,120}") {
        check(&s);
    }

    #[test]
    fn mutated_valid_flows_never_panic(
        which in 0..VALID.len(),
        at in 0usize..200,
        cut in 0usize..20,
        insert in "[=,/:()>\\-+.a-z0-9 ]{0,6}",
    ) {
        let v = VALID[which];
        let at = at.min(v.len());
        let end = (at + cut).min(v.len());
        if v.is_char_boundary(at) && v.is_char_boundary(end) {
            let s = format!("{}{}{}", &v[..at], insert, &v[end..]);
            check(&s);
        }
    }
}

#[test]
fn the_valid_examples_parse() {
    for v in VALID {
        parse_flow(v, FlowModCommand::Add, &ports).unwrap();
    }
}
