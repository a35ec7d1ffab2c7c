//! Resource bounds of the control server that a client with access to the socket could pass
//! (found by an audit, 2026-12-07): the memory staged bundles hold, the work of a bundle of
//! strict ops, and the memory of dumps that a client asks for and does not read.

mod common;

use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::{TestServer, raw, read_reply, send_frame};
use control::proto::{ErrorCode, Notification, Reply, ServerMessage, decode_server_message};

/// The tests of this file run one at a time: one of them measures the process's memory.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Resident memory of this process (the test server runs in it), bytes.
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("reading status");
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb * 1024
}

fn request(s: &mut UnixStream, xid: u64, kind: &str, body: &str) -> Reply {
    let payload = format!(r#"{{"version":1,"xid":{xid},"type":"{kind}","body":{body}}}"#);
    send_frame(s, payload.as_bytes()).expect("sending");
    let d = read_reply(s).expect("a reply");
    assert_eq!(d.xid, xid);
    d.msg
}

/// The staging budget counts a `bundle_add` as its payload length plus a fixed amount per op
/// ("so memory stays bounded whatever the ops look like", bundle.rs), but an op's action list
/// is not limited before the commit: `"all",` is 6 bytes of JSON and ~40-80 bytes staged
/// (an `Action`, its index in the shorthand map, Vec growth). The memory held by staged
/// bundles is then many times the configured bound (by default 512 MiB in all).
#[test]
fn staged_bundles_hold_about_their_byte_budget_in_memory() {
    let _serial = serial();
    const BUDGET: usize = 48 << 20;
    let srv = TestServer::start_with(
        "audc-bmem",
        |c| control::ServerConfig {
            max_bundle_bytes: BUDGET,
            max_bundle_bytes_total: BUDGET,
            ..c
        },
        |_| Vec::new(),
    );
    let mut s = raw(&srv.path);
    // One op with as many one-word actions as a frame holds (~1 MiB).
    let actions = vec![r#""all""#; 170_000].join(",");
    let body =
        format!(r#"{{"bundle_id":1,"ops":[{{"command":"add","table":0,"actions":[{actions}]}}]}}"#);
    // Warm up the allocator with one add + discard, then measure.
    assert!(matches!(
        request(&mut s, 1, "bundle_open", r#"{"bundle_id":1}"#),
        Reply::BundleOpen(_)
    ));
    assert!(matches!(
        request(&mut s, 2, "bundle_add", &body),
        Reply::BundleAdd(_)
    ));
    assert!(matches!(
        request(&mut s, 3, "bundle_discard", r#"{"bundle_id":1}"#),
        Reply::BundleDiscard(_)
    ));
    std::thread::sleep(Duration::from_millis(200));
    let before = rss();
    assert!(matches!(
        request(&mut s, 4, "bundle_open", r#"{"bundle_id":1}"#),
        Reply::BundleOpen(_)
    ));
    let mut accepted = 0usize;
    let mut xid = 10;
    loop {
        xid += 1;
        match request(&mut s, xid, "bundle_add", &body) {
            Reply::BundleAdd(_) => accepted += body.len(),
            Reply::Error(e) => {
                assert_eq!(e.error_code(), Some(ErrorCode::Limit), "{e}");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(xid < 1000);
    }
    let grown = rss().saturating_sub(before);
    eprintln!(
        "staged {} bundle_adds, ~{} MiB counted against a budget of {} MiB; RSS grew by {} MiB",
        xid - 11,
        accepted >> 20,
        BUDGET >> 20,
        grown >> 20
    );
    assert!(
        grown <= 2 * BUDGET,
        "staged bundles hold {} MiB for a budget of {} MiB",
        grown >> 20,
        BUDGET >> 20
    );
    srv.stop();
}

/// A bundle of strict deletes finds each op's flow with one lookup.
#[test]
fn a_bundle_of_strict_deletes_does_not_scan_every_flow_per_op() {
    let _serial = serial();
    let srv = TestServer::start("audc-strict");
    let mut s = raw(&srv.path);
    add_flows(&mut s, 50_000, 0);
    // One frame: 18,000 strict deletes of a flow that does not exist, and one that does.
    let mut ops = vec![r#"{"command":"delete_strict","table":1,"priority":1}"#.to_owned(); 18_000];
    ops.push(
        r#"{"command":"delete_strict","table":1,"priority":10,"match":{"eth_type":"0x0800","ip_dst":"10.0.0.7"}}"#
            .to_owned(),
    );
    // (Answered at all: each op scanned the 50,000 flows before, ~200 s in a debug build; the
    // classifier finds a strict op's flow with one probe. How long it takes is for benches.)
    assert_eq!(run_bundle(&mut s, 21, &ops).removed, 1);
    srv.stop();
}

/// Sends one `bundle` of `ops` and returns its reply (`raw` gives up reading after 10 s).
fn run_bundle(s: &mut UnixStream, xid: u64, ops: &[String]) -> control::proto::BundleReply {
    let start = Instant::now();
    let reply = request(
        s,
        xid,
        "bundle",
        &format!(r#"{{"ops":[{}]}}"#, ops.join(",")),
    );
    eprintln!(
        "bundle of {} ops answered in {:?}",
        ops.len(),
        start.elapsed()
    );
    match reply {
        Reply::Bundle(r) => r,
        other => panic!("unexpected {other:?}"),
    }
}

/// A bundle of non-strict deletes, each with a flow's own match fields, finds each op's flows
/// with one probe of the classifier (2026-12-07: before, each op looked at every flow of its
/// tables, ~10,000 × 50,000 matches compared, minutes in a debug build); a delete with fewer
/// fields still takes every flow its match covers; deletes by a whole cookie use the cookie
/// index.
#[test]
fn a_bundle_of_non_strict_deletes_does_not_scan_every_flow_per_op() {
    let _serial = serial();
    let srv = TestServer::start("audc-nstrict");
    let mut s = raw(&srv.path);
    add_flows(&mut s, 50_000, 0);
    // One frame: 10,000 non-strict deletes of flows that do not exist, and one that does.
    let mut ops: Vec<String> = (0..10_000)
        .map(|i| {
            format!(
                r#"{{"command":"delete","table":1,"match":{{"eth_type":"0x0800","ip_dst":"10.9.{}.{}"}}}}"#,
                i >> 8,
                i & 255
            )
        })
        .collect();
    ops.push(
        r#"{"command":"delete","table":1,"match":{"eth_type":"0x0800","ip_dst":"10.0.0.7"}}"#
            .to_owned(),
    );
    assert_eq!(run_bundle(&mut s, 100, &ops).removed, 1);
    // A wider match takes all it covers: 10.0.1.0/24 holds 256 of the flows.
    let reply = request(
        &mut s,
        101,
        "flow_mod",
        r#"{"command":"delete","table":1,"match":{"eth_type":"0x0800","ip_dst":"10.0.1.0/24"}}"#,
    );
    let Reply::FlowMod(r) = reply else {
        panic!("unexpected {reply:?}");
    };
    assert_eq!(r.removed, 256);
    // 10,000 deletes by a whole cookie (each flow has its own, its number), any match: the
    // cookie index finds each op's flows (before, each op looked at every flow).
    let ops: Vec<String> = (30_000..40_000)
        .map(|i| {
            format!(r#"{{"command":"delete","table":1,"cookie":{i},"cookie_mask":18446744073709551615}}"#)
        })
        .collect();
    assert_eq!(run_bundle(&mut s, 102, &ops).removed, 10_000);
    srv.stop();
}

/// Adds `n` flows to table 1 (each with an action and a cookie, ~200 bytes of JSON dumped),
/// through one multi-message bundle; `flagged` of them (the first ones) with `send_flow_rem`.
fn add_flows(s: &mut UnixStream, n: u32, flagged: u32) {
    assert!(matches!(
        request(s, 1, "bundle_open", r#"{"bundle_id":7}"#),
        Reply::BundleOpen(_)
    ));
    let mut i = 0;
    let mut xid = 2;
    while i < n {
        let end = (i + 5000).min(n);
        let ops: Vec<String> = (i..end)
            .map(|i| {
                format!(
                    r#"{{"command":"add","table":1,"priority":10,"cookie":{i},"flags":{{"send_flow_rem":{}}},"match":{{"eth_type":"0x0800","ip_dst":"10.{}.{}.{}"}},"actions":[{{"output":1}}]}}"#,
                    i < flagged,
                    i >> 16,
                    (i >> 8) & 255,
                    i & 255
                )
            })
            .collect();
        let body = format!(r#"{{"bundle_id":7,"ops":[{}]}}"#, ops.join(","));
        let reply = request(s, xid, "bundle_add", &body);
        assert!(matches!(reply, Reply::BundleAdd(_)), "{reply:?}");
        xid += 1;
        i = end;
    }
    let reply = request(s, xid, "bundle_commit", r#"{"bundle_id":7}"#);
    assert!(matches!(reply, Reply::BundleCommit(_)), "{reply:?}");
}

/// Reads one frame and decodes it as a reply or a notification.
fn read_message(s: &mut UnixStream) -> (u64, ServerMessage) {
    use std::io::Read;
    let mut header = [0u8; 4];
    s.read_exact(&mut header).expect("reading a header");
    let mut payload = vec![0; u32::from_be_bytes(header) as usize];
    s.read_exact(&mut payload).expect("reading a body");
    let d = decode_server_message(&payload).expect("a decodable message");
    (d.xid, d.msg)
}

/// Waits until the server has written something to `s` (without reading it).
fn wait_readable(s: &UnixStream) {
    use mio::unix::SourceFd;
    use std::os::fd::AsRawFd;
    let fd = s.as_raw_fd();
    let mut poll = mio::Poll::new().expect("a poller");
    poll.registry()
        .register(&mut SourceFd(&fd), mio::Token(0), mio::Interest::READABLE)
        .expect("registering");
    let mut events = mio::Events::with_capacity(1);
    poll.poll(&mut events, Some(Duration::from_secs(20)))
        .expect("polling");
    assert!(!events.is_empty(), "no reply within 20 s");
}

/// A dump is encoded part by part as its client reads (2026-12-07: before, the whole reply was
/// queued at once): sessions that ask for a dump of large tables and do not read hold a part
/// or two each, not the tables' JSON (here 4 × ~10 MB before, whatever `max_queued_bytes`
/// says). Each dump is then read whole and complete.
#[test]
fn sessions_that_ask_for_dumps_and_do_not_read_hold_little_memory() {
    let _serial = serial();
    const FLOWS: u32 = 40_000;
    const SESSIONS: usize = 4;
    let srv = TestServer::start("audc-dump");
    let mut ctl = raw(&srv.path);
    add_flows(&mut ctl, FLOWS, 0);
    // Warm up: one dump read whole (the allocator's arenas, the flows' JSON once).
    {
        let mut c = srv.client();
        assert_eq!(
            c.flow_dump(Default::default()).unwrap().len(),
            FLOWS as usize + 1
        );
    }
    std::thread::sleep(Duration::from_millis(200));
    let before = rss();
    let mut sessions: Vec<UnixStream> = (0..SESSIONS).map(|_| raw(&srv.path)).collect();
    let dump = r#"{"version":1,"xid":5,"type":"flow_dump","body":{"table":1}}"#;
    for s in &mut sessions {
        send_frame(s, dump.as_bytes()).expect("sending");
    }
    // Every dump has started (its first parts are in the socket), none is read.
    for s in &sessions {
        wait_readable(s);
    }
    // (And the server still answers others meanwhile.)
    assert!(matches!(
        request(&mut ctl, 100, "echo", r#"{"data":"x"}"#),
        Reply::Echo(_)
    ));
    std::thread::sleep(Duration::from_millis(200));
    let grown = rss().saturating_sub(before);
    eprintln!(
        "{SESSIONS} unread dumps of {FLOWS} flows: RSS grew by {} KiB",
        grown >> 10
    );
    assert!(
        grown < 16 << 20,
        "{SESSIONS} unread dumps of {FLOWS} flows hold {} MiB",
        grown >> 20
    );
    for s in &mut sessions {
        let mut flows = 0;
        let mut parts = 0;
        loop {
            let d = read_reply(s).expect("a part");
            assert_eq!(d.xid, 5);
            let Reply::FlowDump(part) = d.msg else {
                panic!("unexpected {:?}", d.msg);
            };
            flows += part.flows.len();
            parts += 1;
            if !part.more {
                break;
            }
        }
        assert_eq!(flows, FLOWS as usize);
        assert!(parts >= 40, "{parts} parts");
    }
    srv.stop();
}

/// While a session's dump is being sent, its next requests wait for the dump's last part, a
/// notification for it comes after that last part (never between parts), other sessions are
/// served, and the dump lists the flows as they were at its request (a flow removed
/// meanwhile is in it).
#[test]
fn a_dump_in_progress_keeps_its_session_in_order_and_others_served() {
    let _serial = serial();
    const FLOWS: u32 = 30_000;
    let srv = TestServer::start("audc-dorder");
    let mut ctl = raw(&srv.path);
    add_flows(&mut ctl, FLOWS, 1);
    let mut s = raw(&srv.path);
    assert!(matches!(
        request(
            &mut s,
            1,
            "subscribe",
            r#"{"packet_in":false,"flow_removed":true,"port_status":false}"#
        ),
        Reply::Subscribe(_)
    ));
    // A dump and, behind it, an echo; nothing read yet.
    send_frame(
        &mut s,
        br#"{"version":1,"xid":2,"type":"flow_dump","body":{"table":1}}"#,
    )
    .unwrap();
    send_frame(
        &mut s,
        br#"{"version":1,"xid":3,"type":"echo","body":{"data":"after"}}"#,
    )
    .unwrap();
    wait_readable(&s);
    // Another session removes the flagged flow (cookie 0) while the dump waits for its reader.
    let reply = request(
        &mut ctl,
        200,
        "flow_mod",
        r#"{"command":"delete_strict","table":1,"priority":10,"match":{"eth_type":"0x0800","ip_dst":"10.0.0.0"}}"#,
    );
    let Reply::FlowMod(r) = reply else {
        panic!("unexpected {reply:?}");
    };
    assert_eq!(r.removed, 1);
    // Now read everything the session gets.
    let mut flows = 0;
    let mut removed_listed = false;
    let mut last_part = None;
    let mut removal = None;
    let mut echo = None;
    let mut i = 0;
    while echo.is_none() {
        let (xid, msg) = read_message(&mut s);
        match msg {
            ServerMessage::Reply(Reply::FlowDump(part)) => {
                assert_eq!(xid, 2);
                assert!(last_part.is_none(), "a part after the last one");
                flows += part.flows.len();
                removed_listed |= part.flows.iter().any(|f| f.cookie == 0);
                if !part.more {
                    last_part = Some(i);
                }
            }
            ServerMessage::Notification(Notification::FlowRemoved(f)) => {
                assert_eq!(f.cookie, 0);
                assert!(removal.is_none());
                removal = Some(i);
            }
            ServerMessage::Reply(Reply::Echo(e)) => {
                assert_eq!((xid, e.data.as_str()), (3, "after"));
                echo = Some(i);
            }
            other => panic!("unexpected {other:?}"),
        }
        i += 1;
    }
    let (last_part, removal, echo) = (
        last_part.expect("the last part"),
        removal.expect("the flow_removed notification"),
        echo.unwrap(),
    );
    assert!(last_part > 10, "the dump was in one part: {last_part}");
    assert!(
        removal > last_part,
        "a notification between the parts of a dump"
    );
    assert!(echo > last_part);
    assert_eq!(flows, FLOWS as usize);
    assert!(
        removed_listed,
        "the flow removed during the dump is not in it"
    );
    srv.stop();
}
