//! Hostile inputs against a real server on a temporary socket. After each, the server must
//! still answer a well-behaved client.

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::{TestServer, assert_closed, raw, read_error, read_reply, send_frame};
use control::proto::{self, EchoReply, EchoRequest, ErrorCode, Reply, Request, encode_request};

fn echo_frame(xid: u64, data: &str) -> Vec<u8> {
    let payload = encode_request(
        xid,
        &Request::Echo(EchoRequest {
            data: data.to_owned(),
        }),
    )
    .expect("encoding an echo");
    proto::frame::encode(&payload, usize::MAX).expect("framing an echo")
}

fn expect_echo(s: &mut UnixStream, xid: u64, data: &str) {
    let d = read_reply(s).expect("connection closed instead of an echo reply");
    assert_eq!(d.xid, xid);
    assert_eq!(
        d.msg,
        Reply::Echo(EchoReply {
            data: data.to_owned()
        })
    );
}

#[test]
fn garbage_bytes_get_bad_frame_and_close() {
    let srv = TestServer::start("garbage");
    let mut s = raw(&srv.path);
    // "GET " read as a length is about 1.2 GB: over the limit, rejected before any body.
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (xid, e) = read_error(&mut s);
    assert_eq!(xid, 0);
    assert_eq!(e.error_code(), Some(ErrorCode::BadFrame));
    assert_closed(&mut s);
    srv.assert_alive();
    srv.stop();
}

#[test]
fn frame_announcing_4_gib_is_refused_without_reading_it() {
    let srv = TestServer::start("huge");
    let mut s = raw(&srv.path);
    s.write_all(&u32::MAX.to_be_bytes()).unwrap();
    let (_, e) = read_error(&mut s);
    assert_eq!(e.error_code(), Some(ErrorCode::BadFrame));
    assert!(e.message.contains("4294967295"), "{}", e.message);
    assert_closed(&mut s);
    srv.assert_alive();

    // Just over the limit is refused the same way.
    let mut s = raw(&srv.path);
    let over = u32::try_from(proto::DEFAULT_MAX_FRAME_BYTES + 1).unwrap();
    s.write_all(&over.to_be_bytes()).unwrap();
    let (_, e) = read_error(&mut s);
    assert_eq!(e.error_code(), Some(ErrorCode::BadFrame));
    assert_closed(&mut s);
    srv.assert_alive();
    srv.stop();
}

#[test]
fn invalid_utf8_gets_bad_frame_and_session_goes_on() {
    let srv = TestServer::start("utf8");
    let mut s = raw(&srv.path);
    send_frame(&mut s, b"{\"version\":1,\"xid\":1,\"type\":\"echo\xff\"}").unwrap();
    let (xid, e) = read_error(&mut s);
    assert_eq!(xid, 0);
    assert_eq!(e.error_code(), Some(ErrorCode::BadFrame));
    // Framing is intact: the same session keeps working.
    s.write_all(&echo_frame(2, "after")).unwrap();
    expect_echo(&mut s, 2, "after");
    srv.assert_alive();
    srv.stop();
}

#[test]
fn malformed_requests_get_coded_errors_with_fields() {
    let srv = TestServer::start("fields");
    let mut s = raw(&srv.path);
    let cases: &[(&str, ErrorCode, Option<&str>)] = &[
        (
            r#"{"version":1,"xid":11,"type":"echo","body":{"data":"x","bogus":1}}"#,
            ErrorCode::BadField,
            Some("body.bogus"),
        ),
        (
            r#"{"version":1,"xid":12,"type":"echo","bogus":1}"#,
            ErrorCode::BadField,
            Some("bogus"),
        ),
        (
            r#"{"version":1,"xid":13,"type":"port_add","body":{"name":"a","queues":"two"}}"#,
            ErrorCode::BadField,
            Some("body.queues"),
        ),
        (
            r#"{"version":1,"xid":14,"type":"port_add","body":{"name":"a","vlan":{"trunks":[10,20,70000]}}}"#,
            ErrorCode::BadField,
            Some("body.vlan.trunks[2]"),
        ),
        (
            r#"{"version":1,"xid":15,"type":"port_add","body":{"name":"a","vlan":{"trunks":[10,20,4095]}}}"#,
            ErrorCode::BadField,
            Some("body.vlan.trunks[2]"),
        ),
        (
            r#"{"version":1,"xid":16,"type":"port_add","body":{"name":"a/b"}}"#,
            ErrorCode::BadField,
            Some("body.name"),
        ),
        (
            r#"{"version":1,"xid":17,"type":"port_add","body":{"name":"a","queues":0}}"#,
            ErrorCode::BadField,
            Some("body.queues"),
        ),
        (
            r#"{"version":1,"xid":18,"type":"port_del","body":{}}"#,
            ErrorCode::BadField,
            Some("body.name"),
        ),
        (
            r#"{"version":1,"xid":19,"type":"flow_add","body":{}}"#,
            ErrorCode::UnknownType,
            Some("type"),
        ),
        (
            r#"{"version":2,"xid":20,"type":"echo"}"#,
            ErrorCode::BadVersion,
            Some("version"),
        ),
        (
            r#"{"version":1,"xid":21,"type":"hello","body":{"versions":[2,3]}}"#,
            ErrorCode::BadVersion,
            Some("body.versions"),
        ),
        (
            r#"{"version":1,"xid":22,"type":"mac_dump","body":{"vlan":0}}"#,
            ErrorCode::BadField,
            Some("body.vlan"),
        ),
        (
            r#"{"version":1,"xid":23,"type":"echo","body":"x"}"#,
            ErrorCode::BadField,
            Some("body"),
        ),
        (r#"[]"#, ErrorCode::BadFrame, None),
    ];
    for (json, code, field) in cases {
        send_frame(&mut s, json.as_bytes()).unwrap();
        let (xid, e) = read_error(&mut s);
        assert_eq!(e.error_code(), Some(*code), "{json}: {e}");
        assert_eq!(e.name, code.as_str());
        assert_eq!(e.field.as_deref(), *field, "{json}: {e}");
        let want_xid: u64 = serde_json::from_str::<serde_json::Value>(json)
            .ok()
            .and_then(|v| v.get("xid").and_then(serde_json::Value::as_u64))
            .unwrap_or(0);
        assert_eq!(xid, want_xid, "{json}");
    }
    // Nothing above changed anything, and the session is still usable.
    let mut c = srv.client();
    assert!(c.ports().unwrap().is_empty());
    s.write_all(&echo_frame(99, "still here")).unwrap();
    expect_echo(&mut s, 99, "still here");
    srv.assert_alive();
    srv.stop();
}

#[test]
fn truncated_frame_then_close_is_harmless() {
    let srv = TestServer::start("trunc");
    for cut in [1, 3, 4, 10] {
        let mut s = raw(&srv.path);
        let frame = echo_frame(1, "truncated");
        s.write_all(&frame[..cut]).unwrap();
        drop(s);
        srv.assert_alive();
    }
    // Half-close after complete requests: the replies still arrive.
    let mut s = raw(&srv.path);
    s.write_all(&echo_frame(1, "a")).unwrap();
    s.write_all(&echo_frame(2, "b")).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    expect_echo(&mut s, 1, "a");
    expect_echo(&mut s, 2, "b");
    assert_closed(&mut s);
    srv.stop();
}

#[test]
fn two_hundred_connections_at_once() {
    let max = 64;
    let srv = TestServer::start_with("many", |c| c, |_| Vec::new());
    let mut conns: Vec<UnixStream> = (0..200).map(|_| raw(&srv.path)).collect();
    // Ask every connection for an echo; the first `max` sessions answer, the rest are refused.
    let mut answered = 0;
    let mut refused = 0;
    for (i, s) in conns.iter_mut().enumerate() {
        let xid = i as u64 + 1;
        // A refused connection may already be closed: writing can fail.
        let _ = s.write_all(&echo_frame(xid, "hi"));
    }
    for (i, s) in conns.iter_mut().enumerate() {
        let xid = i as u64 + 1;
        match read_reply(s) {
            Some(d) => match d.msg {
                Reply::Echo(r) => {
                    assert_eq!((d.xid, r.data.as_str()), (xid, "hi"));
                    answered += 1;
                }
                Reply::Error(e) => {
                    assert_eq!(e.error_code(), Some(ErrorCode::Limit), "{e}");
                    assert_eq!(d.xid, 0);
                    refused += 1;
                }
                other => panic!("unexpected {other:?}"),
            },
            None => refused += 1,
        }
    }
    assert_eq!(answered, max, "sessions served");
    assert_eq!(refused, 200 - max, "connections refused");
    drop(conns);
    srv.assert_alive();
    srv.stop();
}

#[test]
fn client_that_never_reads_is_disconnected_without_blocking_others() {
    let srv = TestServer::start_with(
        "noread",
        |c| control::ServerConfig {
            max_queued_bytes: 64 * 1024,
            ..c
        },
        |_| Vec::new(),
    );
    let path = srv.path.clone();
    let flooder = std::thread::spawn(move || {
        let mut s = UnixStream::connect(&path).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
        let data = "x".repeat(4096);
        // Far more replies than the queue bound plus the socket buffers hold.
        for xid in 1..=20_000u64 {
            if s.write_all(&echo_frame(xid, &data)).is_err() {
                return xid; // disconnected by the server, as it should
            }
        }
        0
    });
    // Meanwhile a well-behaved client keeps getting answers.
    let mut c = srv.client();
    let start = Instant::now();
    let mut rounds = 0u32;
    while !flooder.is_finished() && start.elapsed() < Duration::from_secs(60) {
        let t = Instant::now();
        assert_eq!(c.echo("ok").unwrap(), "ok");
        assert!(t.elapsed() < Duration::from_secs(2), "server was blocked");
        rounds += 1;
    }
    let stopped_at = flooder.join().unwrap();
    assert!(
        stopped_at > 0,
        "the non-reading client was never disconnected"
    );
    assert!(rounds > 0);
    srv.assert_alive();
    srv.stop();
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let srv = TestServer::start("pipeline");
    let mut s = raw(&srv.path);
    let mut batch = Vec::new();
    for xid in 1..=500u64 {
        batch.extend_from_slice(&echo_frame(xid, &xid.to_string()));
    }
    s.write_all(&batch).unwrap();
    for xid in 1..=500u64 {
        expect_echo(&mut s, xid, &xid.to_string());
    }
    srv.stop();
}

#[test]
fn reply_too_big_for_a_frame_becomes_a_limit_error() {
    let srv = TestServer::start("bigreply");
    let mut s = raw(&srv.path);
    // The request fits in a frame; its reply (same data, longer envelope) does not.
    let overhead = echo_frame(1, "y").len() - 4 - 1;
    let data = "y".repeat(proto::DEFAULT_MAX_FRAME_BYTES - overhead);
    let frame = echo_frame(1, &data);
    assert_eq!(frame.len() - 4, proto::DEFAULT_MAX_FRAME_BYTES);
    s.write_all(&frame).unwrap();
    let (xid, e) = read_error(&mut s);
    assert_eq!((xid, e.error_code()), (1, Some(ErrorCode::Limit)));
    s.write_all(&echo_frame(2, "small")).unwrap();
    expect_echo(&mut s, 2, "small");
    srv.stop();
}

#[test]
fn many_frames_in_one_write_and_one_frame_in_many_writes() {
    let srv = TestServer::start("split");
    let mut s = raw(&srv.path);
    let frame = echo_frame(7, "dribble");
    for b in &frame {
        s.write_all(std::slice::from_ref(b)).unwrap();
    }
    expect_echo(&mut s, 7, "dribble");
    srv.stop();
}

#[test]
fn second_server_on_the_same_path_is_refused() {
    let srv = TestServer::start("twice");
    let err = control::Server::bind(control::ServerConfig {
        path: srv.path.clone(),
        ..control::ServerConfig::default()
    })
    .unwrap_err();
    assert!(
        err.to_string().contains("another vswitchd is running"),
        "{err}"
    );
    srv.assert_alive();
    srv.stop();
}

#[test]
fn run_notices_shutdown_within_the_poll_timeout() {
    let srv = TestServer::start("shutdown");
    let _idle = srv.client();
    let took = srv.stop_without_wake();
    assert!(took < Duration::from_secs(2), "took {took:?}");
}
