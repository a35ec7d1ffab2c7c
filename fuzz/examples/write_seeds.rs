//! Writes the seed corpus (`corpus/<target>/`); regenerate with
//!
//! ```text
//! cargo run -p vswitch-fuzz --example write_seeds
//! ```
//!
//! `parse_frame` seeds are real frames from the kernel capture `kernel-traffic.pcap` (found in
//! `$VSWITCH_PCAP`, `datapath/testdata/` or `../shared/testdata/`), `control_decode` seeds are
//! framed messages made with the `control` encoder, `mac_table_ops` seeds are op sequences
//! written out by hand below.
#![allow(clippy::unwrap_used, clippy::print_stdout, reason = "a developer tool")]

use std::fs;
use std::path::{Path, PathBuf};

use control::proto::{self, frame};

/// Frames of the capture to keep (1-based, as tcpdump numbers them), with a file name.
const FRAMES: [(usize, &str); 14] = [
    (1, "icmp6_neighbor_solicit"),
    (3, "ipv6_hop_by_hop_mldv2"),
    (16, "icmp4_echo"),
    (31, "vxlan_arp"),
    (33, "vxlan_icmp4"),
    (37, "ipv4_first_fragment"),
    (38, "ipv4_later_fragment"),
    (43, "ipv6_fragment"),
    (50, "tcp4_syn_options"),
    (53, "tcp4_data"),
    (60, "udp4"),
    (62, "udp6"),
    (66, "tcp6_syn"),
    (68, "vxlan_icmp6"),
];

/// Frame size limit for the seeds (the protocol's default is 1 MiB).
const MAX_FRAME_LEN: usize = 1 << 20;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn pcap_path() -> PathBuf {
    if let Some(p) = std::env::var_os("VSWITCH_PCAP") {
        return p.into();
    }
    let candidates = [
        root().join("../datapath/testdata/kernel-traffic.pcap"),
        root().join("../../shared/testdata/kernel-traffic.pcap"),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .expect("kernel-traffic.pcap not found: set VSWITCH_PCAP")
}

fn write(target: &str, name: &str, data: &[u8]) {
    let d = root().join("corpus").join(target);
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join(format!("{name}.bin")), data).unwrap();
}

fn framed(payload: &[u8]) -> Vec<u8> {
    frame::encode(payload, MAX_FRAME_LEN).unwrap()
}

fn main() {
    let file = fs::read(pcap_path()).unwrap();
    let frames = vswitch_fuzz::pcap::frames(&file).unwrap();
    for (n, name) in FRAMES {
        write("parse_frame", &format!("{n:02}_{name}"), frames[n - 1]);
    }
    // A VLAN-tagged and a QinQ-tagged copy of the UDP frame.
    let udp = frames[59];
    let mut tagged = udp[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x20, 0x64]);
    tagged.extend_from_slice(&udp[12..]);
    write("parse_frame", "60_udp4_vlan100", &tagged);
    let mut qinq = udp[..12].to_vec();
    qinq.extend_from_slice(&[0x88, 0xa8, 0x00, 0x0a, 0x81, 0x00, 0x20, 0x64]);
    qinq.extend_from_slice(&udp[12..]);
    write("parse_frame", "60_udp4_qinq", &qinq);

    // offload_segment: frames with the virtio-net header a TAP or AF_PACKET port reads, made
    // from the captured TCP and UDP frames with 600 more payload bytes.
    let grow = |f: &[u8]| {
        assert_eq!(f[14], 0x45, "IPv4 without options");
        let mut g = f.to_vec();
        g.extend(std::iter::repeat_n(0x5a, 600));
        vswitch_fuzz::fix_ipv4_len(&mut g, 14);
        g
    };
    let (tcp, udp4) = (grow(frames[52]), grow(frames[59]));
    let seg = |name: &str, flags: u8, gso: u8, csum: (usize, u16), f: &[u8]| {
        let start = u16::try_from(csum.0).unwrap();
        let v = vswitch_fuzz::with_vnet_hdr(flags, gso, 100, (start, csum.1), f);
        write("offload_segment", name, &v);
    };
    seg("tcp4_gso", 1, 1, (34, 16), &tcp);
    seg("tcp4_csum_only", 1, 0, (34, 16), frames[52]);
    seg("udp4_uso", 1, 5, (34, 6), &udp4);
    let (vx, at) = vswitch_fuzz::udp_tunnel(&tcp, None, 0);
    seg("vxlan_tcp4_gso_as_plain_tcp", 1, 1, (at + 34, 16), &vx);
    seg("vxlan_tcp4_gso_marked", 1, 0x21, (at + 34, 16), &vx);
    let (gn, at) = vswitch_fuzz::udp_tunnel(&tcp, Some(8), 0x1234);
    seg("geneve_tcp4_gso_outer_csum", 9, 0x21, (at + 34, 16), &gn);

    let requests = [
        (
            1,
            r#"{"version":1,"xid":1,"type":"hello","body":{"versions":[1],"client":"vsctl 0.1.0"}}"#,
        ),
        (
            2,
            r#"{"version":1,"xid":2,"type":"port_add","body":{"name":"veth0","vlan":{"trunks":[10,20],"native":10}}}"#,
        ),
        (
            3,
            r#"{"version":1,"xid":3,"type":"mac_flush","body":{"vlan":10,"port":"veth0"}}"#,
        ),
        (
            4,
            r#"{"version":1,"xid":4,"type":"echo","body":{"data":"ping"}}"#,
        ),
    ];
    let mut all = Vec::new();
    for (xid, json) in requests {
        let d = proto::decode_request(json.as_bytes()).unwrap();
        assert_eq!(d.xid, xid);
        // Written as the encoder writes them, so the seeds stay valid.
        let payload = proto::encode_request(d.xid, &d.msg).unwrap();
        let name = d.msg.type_name();
        write(
            "control_decode",
            &format!("request_{name}"),
            &framed(&payload),
        );
        all.extend_from_slice(&framed(&payload));
    }
    write("control_decode", "requests_back_to_back", &all);
    let replies = [
        r#"{"version":1,"xid":3,"type":"mac_flush_reply","body":{"flushed":3}}"#,
        r#"{"version":1,"xid":9,"type":"error","body":{"code":4,"name":"bad_field","message":"VLAN 70000 outside 1..=4094","field":"body.vlan.trunks[2]"}}"#,
    ];
    for json in replies {
        let d = proto::decode_reply(json.as_bytes()).unwrap();
        let payload = proto::encode_reply(d.xid, &d.msg).unwrap();
        write(
            "control_decode",
            &format!("reply_{}", d.msg.type_name()),
            &framed(&payload),
        );
    }
    write(
        "control_decode",
        "header_too_long",
        &[0xff, 0xff, 0xff, 0xff, b'{'],
    );

    // capacity byte, then (op, arg[, port]) triples; see fuzz/src/mac_table.rs.
    let ops: [(&str, &[u8]); 4] = [
        // Capacity 4: learn five addresses (the fifth is refused), look them up.
        (
            "fill_then_lookup",
            &[
                3, 0, 1, 1, 0, 2, 1, 0, 3, 2, 0, 4, 2, 0, 5, 3, 3, 1, 3, 5, 3, 2,
            ],
        ),
        // Capacity 8: an address moves between ports, time passes, aging removes it.
        (
            "move_and_age",
            &[
                7, 0, 9, 1, 0, 9, 2, 3, 9, 7, 200, 0, 10, 1, 5, 100, 3, 9, 3, 10,
            ],
        ),
        // Capacity 2: flush a port, then the freed slots are reused.
        (
            "flush_port_reuse",
            &[1, 0, 1, 1, 0, 2, 1, 6, 1, 0, 3, 2, 0, 4, 2, 3, 3, 3, 4],
        ),
        // VLAN 4097 aliases VLAN 1 (only 12 bits are kept).
        (
            "vlan_alias",
            &[15, 0, 0x01, 1, 3, 0xc1, 0, 0xc1, 2, 3, 0x01],
        ),
    ];
    for (name, bytes) in ops {
        write("mac_table_ops", name, bytes);
    }
}
