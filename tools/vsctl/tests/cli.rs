//! `vsctl` against a real control server driving a real switch with in-memory ports.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use control::{Server, ServerConfig};
use datapath::port::mem::{MemPeer, MemPort, MemPortOptions};
use datapath::switch::{Switch, SwitchConfig, VlanMode};

struct Daemon {
    path: PathBuf,
    /// The test ends of `mem0` and `mem1`.
    peers: Vec<MemPeer>,
    shutdown: Arc<AtomicBool>,
    waker: control::server::ShutdownWaker,
    thread: Option<JoinHandle<()>>,
}

impl Daemon {
    fn start(tag: &str) -> Self {
        let path = PathBuf::from(format!("/tmp/vsctl-{tag}-{}/ctl.sock", std::process::id()));
        let mut server = Server::bind(ServerConfig {
            path: path.clone(),
            ..ServerConfig::default()
        })
        .expect("binding");
        let waker = server.shutdown_waker();
        let shutdown = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&shutdown);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut switch = Switch::start(SwitchConfig::default()).expect("starting the switch");
            let mut peers = Vec::new();
            for (name, vlan) in [
                ("mem0", VlanMode::default()),
                (
                    "mem1",
                    VlanMode::Trunk {
                        allowed: vec![10, 20],
                        native: Some(10),
                    },
                ),
            ] {
                let (port, peer) = MemPort::new(name, MemPortOptions::default());
                switch
                    .add_port_backend(Box::new(port), vlan)
                    .expect("adding a mem port");
                peers.push(peer);
            }
            let _ = ready_tx.send(peers.clone());
            server.run(&mut switch, &flag).expect("server loop");
            drop(server);
            drop(peers);
            switch.shutdown();
        });
        let peers = ready_rx.recv().expect("server thread ready");
        Self {
            path,
            peers,
            shutdown,
            waker,
            thread: Some(thread),
        }
    }

    fn vsctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_vsctl"))
            .env("VSWITCH_SOCKET", &self.path)
            .args(args)
            .output()
            .expect("running vsctl")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::Release);
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            let res = t.join();
            if !std::thread::panicking() {
                res.expect("server thread panicked");
            }
        }
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "vsctl failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).expect("utf-8 output")
}

#[test]
fn human_tables_are_aligned() {
    let d = Daemon::start("tables");
    assert_eq!(
        stdout(&d.vsctl(&["list-ports"])),
        "PORT  NAME  TYPE  QUEUES  WORKER  VLAN                   LINK  MTU  MACS\n\
         \x20  1  mem0  mem        1       0  access 1               up      -     0\n\
         \x20  2  mem1  mem        1       0  trunk 10,20 native 10  up      -     0\n"
    );
    let stats = stdout(&d.vsctl(&["dump-ports", "mem1"]));
    let lines: Vec<&str> = stats.lines().collect();
    assert_eq!(lines.len(), 2, "{stats}");
    assert!(lines[0].starts_with("PORT  NAME  RX_PKTS"), "{stats}");
    assert!(
        lines[1].contains("mem1") && lines[1].ends_with(" -"),
        "{stats}"
    );
    assert_eq!(stdout(&d.vsctl(&["dump-macs"])), "VLAN  MAC  PORT  AGE\n");
    assert_eq!(
        stdout(&d.vsctl(&["flush-macs", "--vlan", "10"])),
        "flushed 0 entries\n"
    );
    let show = stdout(&d.vsctl(&["show"]));
    assert!(show.starts_with("vswitchd "), "{show}");
    assert!(show.contains("mem1") && show.contains("WORKER"), "{show}");
}

#[test]
fn json_output_is_the_reply_body() {
    let d = Daemon::start("json");
    let ports: serde_json::Value =
        serde_json::from_str(&stdout(&d.vsctl(&["--json", "list-ports"]))).expect("JSON");
    assert_eq!(ports[1]["name"], "mem1");
    assert_eq!(ports[1]["vlan"]["trunks"], serde_json::json!([10, 20]));
    let stats: serde_json::Value =
        serde_json::from_str(&stdout(&d.vsctl(&["dump-ports", "--json"]))).expect("JSON");
    assert_eq!(stats[0]["rx_drops"]["truncated"], 0);
    let show: serde_json::Value =
        serde_json::from_str(&stdout(&d.vsctl(&["--json", "show"]))).expect("JSON");
    assert_eq!(show["hello"]["versions"], serde_json::json!([1]));
    assert_eq!(show["switch"]["ports"].as_array().map(Vec::len), Some(2));
}

#[test]
fn server_errors_print_message_and_field_and_fail() {
    let d = Daemon::start("errors");
    let o = d.vsctl(&["del-port", "nope0"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("body.name") && err.contains("nope0") && err.contains("not_found"),
        "{err}"
    );
    let o = d.vsctl(&["--json", "add-port", "mem0"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON error");
    assert_eq!(v["error"]["code"], 6);
    assert_eq!(v["error"]["field"], "body.name");
    let o = d.vsctl(&["add-port", "x0", "--trunks", "10,5000"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("body.vlan.trunks[1]"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Usage errors are clap's (status 2) and never reach the server.
    let o = d.vsctl(&["add-port", "x0", "--vlan", "3", "--trunks", "4"]);
    assert_eq!(o.status.code(), Some(2));
    // The state is unchanged.
    let ports: serde_json::Value =
        serde_json::from_str(&stdout(&d.vsctl(&["--json", "list-ports"]))).expect("JSON");
    assert_eq!(ports.as_array().map(Vec::len), Some(2));
}

#[test]
fn missing_daemon_is_reported() {
    let o = Command::new(env!("CARGO_BIN_EXE_vsctl"))
        .args(["--socket", "/tmp/vsctl-no-such-dir/ctl.sock", "list-ports"])
        .output()
        .expect("running vsctl");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is vswitchd running"));
}

fn stderr(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(1), "vsctl did not fail");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn temp_file(tag: &str, content: &str) -> PathBuf {
    let path = PathBuf::from(format!("/tmp/vsctl-{tag}-{}.flows", std::process::id()));
    std::fs::write(&path, content).expect("writing the flow file");
    path
}

#[test]
fn flows_are_added_dumped_modified_and_deleted() {
    let d = Daemon::start("flows");
    stdout(&d.vsctl(&[
        "add-flow",
        "table=0,priority=100,ip,nw_dst=10.1.0.0/16,tcp,tp_dst=80,in_port=mem0 actions=output:mem1",
    ]));
    let dump = stdout(&d.vsctl(&["dump-flows"]));
    let lines: Vec<&str> = dump.lines().collect();
    assert_eq!(lines.len(), 2, "{dump}");
    assert!(lines[0].starts_with(" cookie=0x0, duration="), "{dump}");
    assert!(
        lines[0].ends_with(
            "table=0, n_packets=0, n_bytes=0, priority=100,tcp,in_port=mem0,nw_dst=10.1.0.0/16,tcp_dst=80 actions=output:mem1"
        ),
        "{dump}"
    );
    assert!(lines[1].ends_with("priority=0 actions=NORMAL"), "{dump}");
    // A filter.
    let dump = stdout(&d.vsctl(&["dump-flows", "ip"]));
    assert_eq!(dump.lines().count(), 1, "{dump}");
    stdout(&d.vsctl(&[
        "mod-flows",
        "--strict",
        "priority=100,tcp,in_port=mem0,nw_dst=10.1.0.0/16,tcp_dst=80 actions=flood",
    ]));
    let dump = stdout(&d.vsctl(&["dump-flows", "ip"]));
    assert!(dump.trim_end().ends_with("actions=FLOOD"), "{dump}");
    let tables = stdout(&d.vsctl(&["dump-tables"]));
    assert_eq!(
        tables,
        "TABLE  ACTIVE  SUBTABLES  LOOKUPS  MATCHED\n    0       2          2        0        0\n"
    );
    stdout(&d.vsctl(&["del-flows", "tcp"]));
    assert_eq!(stdout(&d.vsctl(&["dump-flows"])).lines().count(), 1);
    stdout(&d.vsctl(&["del-flows"]));
    assert_eq!(stdout(&d.vsctl(&["dump-flows"])), "");
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&d.vsctl(&["--json", "dump-flows"]))).expect("JSON");
    assert_eq!(json, serde_json::json!([]));
}

#[test]
fn flow_errors_show_a_caret_under_the_token() {
    let d = Daemon::start("flowerr");
    // A syntax error, found locally.
    let err = stderr(&d.vsctl(&["add-flow", "ip,nw_dstt=1.2.3.4 actions=drop"]));
    assert!(
        err.contains(
            "unknown field `nw_dstt`\n  ip,nw_dstt=1.2.3.4 actions=drop\n     ^^^^^^^^^^^^^^^"
        ),
        "{err}"
    );
    // A model error, found by the server and mapped back to the token.
    let err = stderr(&d.vsctl(&["add-flow", "udp,tcp_dst=80 actions=normal"]));
    assert!(err.contains("bad_match"), "{err}");
    assert!(
        err.ends_with("  udp,tcp_dst=80 actions=normal\n      ^^^^^^^^^^\n"),
        "{err}"
    );
    let err = stderr(&d.vsctl(&["add-flow", "actions=normal,output:0"]));
    assert!(
        err.ends_with("  actions=normal,output:0\n                 ^^^^^^^^\n"),
        "{err}"
    );
    // Nothing changed.
    assert_eq!(stdout(&d.vsctl(&["dump-flows"])).lines().count(), 1);
}

#[test]
fn flow_files_are_all_or_nothing() {
    let d = Daemon::start("flowfile");
    let bad = temp_file(
        "bad",
        "# web\npriority=10,tcp,tp_dst=80 actions=output:mem1\n\npriority=10,udp,tcp_dst=53 actions=output:mem1\n",
    );
    let err = stderr(&d.vsctl(&["add-flows", bad.to_str().unwrap()]));
    assert!(err.contains(":4: "), "{err}");
    assert!(err.contains("^^^^^^^^^^"), "{err}");
    assert_eq!(stdout(&d.vsctl(&["dump-flows"])).lines().count(), 1);
    let good = temp_file(
        "good",
        "priority=10,tcp,tp_dst=80 actions=output:mem1\npriority=10,udp,udp_dst=53 actions=output:2\n",
    );
    stdout(&d.vsctl(&["add-flows", good.to_str().unwrap()]));
    assert_eq!(stdout(&d.vsctl(&["dump-flows"])).lines().count(), 3);
    let bundle = temp_file(
        "bundle",
        "delete udp\nmodify_strict priority=10,tcp,tcp_dst=80 actions=drop\nadd priority=5,arp actions=flood\n",
    );
    let out = stdout(&d.vsctl(&["--json", "bundle", bundle.to_str().unwrap()]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        (
            v["added"].as_u64(),
            v["modified"].as_u64(),
            v["removed"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    let dump = stdout(&d.vsctl(&["dump-flows"]));
    assert!(
        dump.contains("priority=10,tcp,tcp_dst=80 actions=drop"),
        "{dump}"
    );
    assert!(dump.contains("priority=5,arp actions=FLOOD"), "{dump}");
    for p in [bad, good, bundle] {
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn flow_files_larger_than_a_frame_are_applied_all_or_nothing() {
    let d = Daemon::start("bigfile");
    // 12,000 flows: about 1.5 MB of flow-mod JSON, more than the default 1 MiB frame.
    let lines: Vec<String> = (0..12_000u32)
        .map(|i| {
            format!(
                "table=1,priority=10,udp,nw_dst=10.{}.{}.1,udp_dst={} actions=set_field:{}->ip_dscp,output:mem1",
                i / 256,
                i % 256,
                1000 + i,
                i % 64
            )
        })
        .collect();
    let mut bad = lines.clone();
    bad[11_000] = "table=1,priority=10,udp,tcp_dst=80 actions=normal".to_owned();
    let bad_file = temp_file("bigbad", &(bad.join("\n") + "\n"));
    let err = stderr(&d.vsctl(&["add-flows", bad_file.to_str().unwrap()]));
    assert!(err.contains(":11001: "), "{err}");
    assert!(err.contains("bad_match"), "{err}");
    assert!(
        err.ends_with("  table=1,priority=10,udp,tcp_dst=80 actions=normal\n                          ^^^^^^^^^^\n"),
        "{err}"
    );
    assert_eq!(stdout(&d.vsctl(&["dump-flows"])).lines().count(), 1);
    let good_file = temp_file("biggood", &(lines.join("\n") + "\n"));
    let out = stdout(&d.vsctl(&["--json", "add-flows", good_file.to_str().unwrap()]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        (v["ops"].as_u64(), v["added"].as_u64()),
        (Some(12_000), Some(12_000))
    );
    assert_eq!(stdout(&d.vsctl(&["dump-flows"])).lines().count(), 12_001);
    // A bundle file replaces them in one step.
    let mut replace = vec!["delete table=1".to_owned()];
    replace.extend(
        lines
            .iter()
            .map(|l| format!("add {}", l.replace("output:mem1", "output:mem0"))),
    );
    let replace_file = temp_file("bigbundle", &(replace.join("\n") + "\n"));
    let out = stdout(&d.vsctl(&["--json", "bundle", replace_file.to_str().unwrap()]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        (
            v["ops"].as_u64(),
            v["added"].as_u64(),
            v["removed"].as_u64()
        ),
        (Some(12_001), Some(12_000), Some(12_000))
    );
    let dump = stdout(&d.vsctl(&["dump-flows", "table=1"]));
    assert_eq!(dump.lines().count(), 12_000);
    assert!(!dump.contains("mem1"), "old flows left");
    for p in [bad_file, good_file, replace_file] {
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn groups_are_added_dumped_modified_and_deleted() {
    let d = Daemon::start("groups");
    stdout(&d.vsctl(&[
        "add-group",
        "group_id=1,type=select,bucket=weight:10,actions=output:mem0,bucket=weight:10,actions=output:mem1",
    ]));
    stdout(&d.vsctl(&[
        "add-group",
        "group_id=2,type=ff,bucket=watch_port:mem1,output:2",
    ]));
    assert_eq!(
        stdout(&d.vsctl(&["dump-groups"])),
        " group_id=1,type=select,bucket=weight:10,actions=output:mem0,bucket=weight:10,actions=output:mem1 \
         packet_count=0,byte_count=0,bucket0:packet_count=0,byte_count=0,bucket1:packet_count=0,byte_count=0\n \
         group_id=2,type=ff,bucket=watch_port:mem1,actions=output:mem1 \
         packet_count=0,byte_count=0,bucket0:packet_count=0,byte_count=0\n"
    );
    // A flow may use the group; deleting the group deletes the flow.
    stdout(&d.vsctl(&["add-flow", "priority=5,in_port=mem0 actions=group:1"]));
    stdout(&d.vsctl(&["mod-group", "group_id=1,type=all,bucket=output:mem1"]));
    let one = stdout(&d.vsctl(&["dump-groups", "group_id=1"]));
    assert!(
        one.starts_with(" group_id=1,type=all,bucket=actions=output:mem1 packet_count=0"),
        "{one}"
    );
    assert_eq!(stdout(&d.vsctl(&["dump-groups", "7"])), "");
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&d.vsctl(&["--json", "dump-groups", "2"]))).expect("JSON");
    assert_eq!(json[0]["type"], "fast_failover");
    assert_eq!(json[0]["buckets"][0]["watch_port"], 2);
    let out = stdout(&d.vsctl(&["--json", "del-groups", "group_id=1"]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["removed_flows"], 1);
    assert_eq!(stdout(&d.vsctl(&["dump-flows"])).lines().count(), 1);
    stdout(&d.vsctl(&["del-groups"]));
    assert_eq!(stdout(&d.vsctl(&["dump-groups"])), "");
}

#[test]
fn meters_are_added_dumped_modified_and_deleted() {
    let d = Daemon::start("meters");
    stdout(&d.vsctl(&[
        "add-meter",
        "meter=1,pktps,burst,band=type=drop,rate=100,burst_size=10",
    ]));
    stdout(&d.vsctl(&["add-meter", "meter=2,kbps,band=type=drop,rate=10000"]));
    assert_eq!(
        stdout(&d.vsctl(&["dump-meters"])),
        "meter=1 pktps burst bands=type=drop rate=100 burst_size=10 \
         packet_in_count=0 byte_in_count=0 band: packet_count=0 byte_count=0\n\
         meter=2 kbps bands=type=drop rate=10000 \
         packet_in_count=0 byte_in_count=0 band: packet_count=0 byte_count=0\n"
    );
    stdout(&d.vsctl(&[
        "add-flow",
        "priority=5,in_port=mem0 actions=meter:2,output:mem1",
    ]));
    stdout(&d.vsctl(&["mod-meter", "meter=2,pktps,band=type=drop,rate=5"]));
    let one = stdout(&d.vsctl(&["dump-meters", "meter=2"]));
    assert!(
        one.starts_with("meter=2 pktps bands=type=drop rate=5 "),
        "{one}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&d.vsctl(&["--json", "dump-meters", "1"]))).expect("JSON");
    assert_eq!(json[0]["unit"], "pktps");
    assert_eq!(json[0]["burst"], 10);
    let out = stdout(&d.vsctl(&["--json", "del-meters"]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["removed_flows"], 1);
    assert_eq!(stdout(&d.vsctl(&["dump-meters"])), "");
    assert_eq!(stdout(&d.vsctl(&["dump-flows"])).lines().count(), 1);
}

/// The two lines vsctl prints under an error: the input, and carets under `token` in it.
fn caret_under(line: &str, token: &str) -> String {
    let col = line.find(token).expect("the token is in the line");
    format!(
        "  {line}\n  {}{}\n",
        " ".repeat(col),
        "^".repeat(token.len())
    )
}

#[test]
fn group_and_meter_errors_show_a_caret_under_the_token() {
    let d = Daemon::start("grperr");
    let fails = |args: &[&str], message: &str, token: &str| {
        let err = stderr(&d.vsctl(args));
        let line = args[args.len() - 1];
        assert!(err.contains(message), "{err}");
        assert!(err.ends_with(&caret_under(line, token)), "{err}");
    };
    // Syntax, found locally.
    fails(
        &["add-group", "group_id=1,type=fancy"],
        "unknown group type `fancy`",
        "type=fancy",
    );
    fails(
        &["add-meter", "meter=1,band=type=drop,rate=1,burst_size=3"],
        "`burst` flag",
        "burst_size=3",
    );
    // Model errors, found by the server and mapped back to the token.
    fails(
        &[
            "add-group",
            "group_id=1,type=all,bucket=output:mem0,bucket=output:mem1,group:2",
        ],
        "(unsupported)",
        "group:2",
    );
    fails(
        &["add-group", "group_id=3,type=ff,bucket=output:1"],
        "watch_port (bad_action)",
        "bucket=output:1",
    );
    fails(
        &[
            "add-group",
            "group_id=4,type=indirect,bucket=output:1,bucket=output:2",
        ],
        "exactly one bucket (bad_action)",
        "bucket=output:1,bucket=output:2",
    );
    fails(
        &["add-group", "group_id=4294967295,type=all"],
        "(bad_field)",
        "group_id=4294967295",
    );
    fails(
        &["add-meter", "meter=1,pktps,band=type=drop,rate=0"],
        "(bad_field)",
        "rate=0",
    );
    fails(
        &["add-meter", "meter=0,pktps,band=type=drop,rate=5"],
        "(bad_field)",
        "meter=0",
    );
    fails(
        &["mod-group", "group_id=9,type=all"],
        "(not_found)",
        "group_id=9",
    );
    stdout(&d.vsctl(&["add-meter", "meter=1,band=type=drop,rate=5"]));
    fails(
        &["add-meter", "meter=1,band=type=drop,rate=5"],
        "(exists)",
        "meter=1",
    );
    stdout(&d.vsctl(&["del-meters", "meter=1"]));
    let err = stderr(&d.vsctl(&["add-flow", "actions=group:9"]));
    assert!(err.contains("(not_found)"), "{err}");
    // Nothing changed.
    assert_eq!(stdout(&d.vsctl(&["dump-groups"])), "");
    assert_eq!(stdout(&d.vsctl(&["dump-meters"])), "");
}

/// A 98-byte UDP frame 10.0.0.1:1000 → 10.0.0.2:77 between stations 02:..:01 and 02:..:02.
fn udp_frame() -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    f.extend_from_slice(&[
        0x45, 0, 0, 84, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ]);
    let sum: u32 = f[14..34]
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    let sum = (sum & 0xffff) + (sum >> 16);
    let c = !u16::try_from((sum & 0xffff) + (sum >> 16)).expect("a folded checksum");
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&[0x03, 0xe8, 0, 77, 0, 64, 0, 0]);
    f.resize(98, 0xab);
    f
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `vsctl monitor ARGS` in the background and sends `frame` on mem0 every 100 ms until it
/// exits (it has subscribed by then); returns its output.
fn monitor_while_sending(d: &Daemon, args: &[&str], frame: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vsctl"))
        .env("VSWITCH_SOCKET", &d.path)
        .arg("monitor")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running vsctl monitor");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().expect("waiting for vsctl").is_none() {
        assert!(std::time::Instant::now() < deadline, "monitor did not stop");
        d.peers[0].send(frame);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.wait_with_output().expect("vsctl output")
}

#[test]
fn monitor_prints_packet_ins_and_packet_out_injects_frames() {
    let d = Daemon::start("monitor");
    stdout(&d.vsctl(&[
        "add-flow",
        "priority=100,udp,tp_dst=77,cookie=0x2a actions=controller",
    ]));
    let frame = udp_frame();

    let out = stdout(&monitor_while_sending(
        &d,
        &["packet_in", "--count", "2", "--timeout", "15"],
        &frame,
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(
        lines[0],
        "packet_in table=0 cookie=0x2a reason=action in_port=mem0 total_len=98 data_len=98 \
         udp,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02,nw_src=10.0.0.1,nw_dst=10.0.0.2,\
         nw_ttl=64,udp_src=1000,udp_dst=77"
    );

    // --json: one object per line.
    let out = stdout(&monitor_while_sending(
        &d,
        &["--json", "--count", "1", "--timeout", "15"],
        &frame,
    ));
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(v["type"], "packet_in");
    assert_eq!(v["body"]["cookie"], 42);
    assert_eq!(v["body"]["total_len"], 98);
    assert_eq!(v["body"]["data"], hex(&frame));
    assert_eq!(v["body"]["match"]["in_port"], 1);

    // Nothing to see: --timeout ends it quietly.
    let start = std::time::Instant::now();
    let out = stdout(&d.vsctl(&["monitor", "port_status", "--timeout", "1"]));
    assert!(out.is_empty(), "{out}");
    assert!(start.elapsed() < std::time::Duration::from_secs(5));

    // packet-out with actions: straight out of mem1.
    while d.peers[1].try_recv().is_some() {}
    let packet = format!("packet={}", hex(&frame));
    stdout(&d.vsctl(&[
        "packet-out",
        "in_port=controller",
        &packet,
        "actions=output:mem1",
    ]));
    let (got, _) = d.peers[1]
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("the frame on mem1");
    assert_eq!(got, frame);
    // Without actions: through the tables as if received on mem0 (the ports are in different
    // VLANs, so a flow does it).
    stdout(&d.vsctl(&[
        "add-flow",
        "priority=50,arp,in_port=mem0 actions=output:mem1",
    ]));
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
    arp.resize(60, 0);
    let packet = format!("packet={}", hex(&arp));
    stdout(&d.vsctl(&["packet-out", "in_port=mem0", &packet]));
    let (got, _) = d.peers[1]
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("the ARP frame on mem1");
    assert_eq!(got, arp);

    // Errors: the server's code, with a caret under the action.
    let o = d.vsctl(&[
        "packet-out",
        "in_port=mem0",
        &packet,
        "actions=output:mem1,dec_ttl",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("(bad_action)"), "{err}");
    assert!(
        err.contains("actions=output:mem1,dec_ttl\n") && err.contains("^^^^^^^"),
        "{err}"
    );
    let o = d.vsctl(&["packet-out", "in_port=nope", &packet]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no port named `nope`"));
    let o = d.vsctl(&["packet-out", "in_port=9", &packet]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not_found"));
    let o = d.vsctl(&["packet-out", "packet=0011"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad_field"));
    assert!(d.peers[1].try_recv().is_none());
}

#[test]
fn bundle_files_mix_flows_groups_and_meters() {
    let d = Daemon::start("grpbundle");
    let file = temp_file(
        "grpbundle",
        "# a group, a meter and the flows that use them, all at once\n\
         add-group group_id=1,type=select,bucket=output:mem0,bucket=output:mem1\n\
         priority=5,in_port=mem0 actions=group:1\n\
         add-meter meter=2,pktps,band=type=drop,rate=100\n\
         add priority=6,in_port=mem1 actions=meter:2,group:1\n",
    );
    let out = stdout(&d.vsctl(&["--json", "bundle", file.to_str().unwrap()]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        (
            v["ops"].as_u64(),
            v["added"].as_u64(),
            v["removed"].as_u64()
        ),
        (Some(4), Some(2), Some(0))
    );
    assert!(
        stdout(&d.vsctl(&["dump-groups"])).starts_with(" group_id=1,type=select,"),
        "groups"
    );
    assert!(stdout(&d.vsctl(&["dump-meters"])).starts_with("meter=2 pktps "));
    assert_eq!(stdout(&d.vsctl(&["dump-flows"])).lines().count(), 3);

    // A bad group line (found by the server): its line and token; nothing changed.
    let groups = stdout(&d.vsctl(&["dump-groups"]));
    // The flows without their durations.
    let flows = || -> Vec<String> {
        stdout(&d.vsctl(&["dump-flows"]))
            .lines()
            .map(|l| {
                l.split_once(" table=")
                    .map_or(l, |(_, rest)| rest)
                    .to_owned()
            })
            .collect()
    };
    let flows_before = flows();
    let bad_line = "group_id=3,type=all,bucket=output:mem0,group:1";
    let bad = temp_file(
        "grpbundle-bad",
        &format!(
            "del-groups group_id=1\n\
             del-meters meter=2\n\
             add-group {bad_line}\n\
             priority=7,in_port=mem0 actions=group:3\n"
        ),
    );
    let err = stderr(&d.vsctl(&["bundle", bad.to_str().unwrap()]));
    assert!(err.contains(":3: "), "{err}");
    assert!(err.contains("(unsupported)"), "{err}");
    assert!(err.ends_with(&caret_under(bad_line, "group:1")), "{err}");
    // A syntax error of a meter line, found locally.
    let syntax = temp_file("grpbundle-syntax", "del-groups\nadd-meter meter=x\n");
    let err = stderr(&d.vsctl(&["bundle", syntax.to_str().unwrap()]));
    assert!(err.contains(":2: "), "{err}");
    assert!(err.contains('^'), "{err}");
    assert_eq!(stdout(&d.vsctl(&["dump-groups"])), groups);
    assert_eq!(flows(), flows_before);
    assert!(stdout(&d.vsctl(&["dump-meters"])).starts_with("meter=2 pktps "));
    for p in [file, bad, syntax] {
        let _ = std::fs::remove_file(p);
    }
}

/// `--timeout` is 1..=86400 seconds: a huge one was taken and panicked (status 101) adding it
/// to the clock (the reply deadline, `monitor`'s end); found by an audit, 2026-12-07.
#[test]
fn a_huge_timeout_is_refused_not_a_panic() {
    let d = Daemon::start("vstimeout");
    for args in [
        &["--timeout", "18446744073709551615", "list-ports"][..],
        &[
            "--timeout",
            "18446744073709551615",
            "monitor",
            "--count",
            "0",
        ],
        &["--timeout", "0", "list-ports"],
    ] {
        let o = d.vsctl(args);
        assert_eq!(
            o.status.code(),
            Some(2),
            "vsctl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(String::from_utf8_lossy(&o.stderr).contains("--timeout"));
    }
    assert!(
        d.vsctl(&["--timeout", "86400", "list-ports"])
            .status
            .success()
    );
}
