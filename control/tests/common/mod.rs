//! A real server on a temporary socket, driving a real `Switch`, for the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use control::proto::{self, Decoded, Reply};
use control::server::ShutdownWaker;
use control::{Client, ClientConfig, Server, ServerConfig};
use datapath::port::mem::{MemPeer, MemPort, MemPortOptions};
use datapath::switch::{Switch, SwitchConfig, VlanMode};

/// A unique socket path under /tmp (short: Unix socket paths are limited to 107 bytes).
pub fn temp_socket(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    PathBuf::from(format!(
        "/tmp/vsw-{tag}-{}-{n}-{nanos:x}/ctl.sock",
        std::process::id()
    ))
}

/// The server thread and how to stop it.
pub struct TestServer {
    pub path: PathBuf,
    shutdown: Arc<AtomicBool>,
    waker: ShutdownWaker,
    thread: Option<JoinHandle<()>>,
}

/// Adds in-memory ports named `names` (access VLAN 1); returns their peers.
pub fn mem_ports(switch: &mut Switch, names: &[&str]) -> Vec<MemPeer> {
    names
        .iter()
        .map(|name| {
            let (port, peer) = MemPort::new(name, MemPortOptions::default());
            switch
                .add_port_backend(Box::new(port), VlanMode::default())
                .expect("adding a mem port");
            peer
        })
        .collect()
}

impl TestServer {
    /// A server with default settings and no ports.
    pub fn start(tag: &str) -> Self {
        Self::start_with(tag, |c| c, |_| Vec::new())
    }

    /// A server with settings changed by `config` and a switch prepared by `setup`.
    pub fn start_with(
        tag: &str,
        config: impl FnOnce(ServerConfig) -> ServerConfig,
        setup: impl FnOnce(&mut Switch) -> Vec<MemPeer> + Send + 'static,
    ) -> Self {
        let path = temp_socket(tag);
        let mut server = Server::bind(config(ServerConfig {
            path: path.clone(),
            ..ServerConfig::default()
        }))
        .expect("binding the test server");
        let waker = server.shutdown_waker();
        let shutdown = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&shutdown);
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("control-test".into())
            .spawn(move || {
                let mut switch =
                    Switch::start(SwitchConfig::default()).expect("starting the switch");
                let peers = setup(&mut switch);
                let _ = ready_tx.send(());
                server.run(&mut switch, &flag).expect("server loop failed");
                drop(server);
                drop(peers);
                switch.shutdown();
            })
            .expect("spawning the server thread");
        ready_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server thread did not become ready");
        Self {
            path,
            shutdown,
            waker,
            thread: Some(thread),
        }
    }

    pub fn client(&self) -> Client {
        Client::connect_with(
            &self.path,
            ClientConfig {
                timeout: Duration::from_secs(10),
                ..ClientConfig::default()
            },
        )
        .expect("connecting to the test server")
    }

    /// A new client gets an echo answered (retrying while sessions of earlier tests close).
    pub fn assert_alive(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let attempt = Client::connect_with(
                &self.path,
                ClientConfig {
                    timeout: Duration::from_secs(5),
                    ..ClientConfig::default()
                },
            )
            .and_then(|mut c| c.echo("alive"));
            match attempt {
                Ok(data) => {
                    assert_eq!(data, "alive");
                    return;
                }
                Err(e) if Instant::now() < deadline => {
                    eprintln!("server not answering yet: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("server stopped answering: {e}"),
            }
        }
    }

    /// Stops the server and checks that its thread ended cleanly.
    pub fn stop(mut self) {
        self.halt(true);
    }

    /// Sets the shutdown flag without waking the loop; returns how long the thread took to end.
    pub fn stop_without_wake(mut self) -> Duration {
        let start = Instant::now();
        self.shutdown.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.join().expect("server thread panicked");
        }
        start.elapsed()
    }

    fn halt(&mut self, check: bool) {
        self.shutdown.store(true, Ordering::Release);
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            let res = t.join();
            if check {
                res.expect("server thread panicked");
            }
        }
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let check = !std::thread::panicking();
        self.halt(check);
    }
}

/// A raw connection for hostile inputs.
pub fn raw(path: &Path) -> UnixStream {
    let s = UnixStream::connect(path).expect("connecting");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.set_write_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

/// Sends one frame with `payload`.
pub fn send_frame(s: &mut UnixStream, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len()).expect("payload too long");
    s.write_all(&len.to_be_bytes())?;
    s.write_all(payload)
}

/// Reads one frame and decodes it as a reply; `None` on EOF or reset.
pub fn read_reply(s: &mut UnixStream) -> Option<Decoded<Reply>> {
    let mut header = [0u8; 4];
    match s.read_exact(&mut header) {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
            ) =>
        {
            return None;
        }
        Err(e) => panic!("reading a reply header: {e}"),
    }
    let len = u32::from_be_bytes(header) as usize;
    assert!(
        len <= proto::DEFAULT_MAX_FRAME_BYTES,
        "reply frame of {len} bytes"
    );
    let mut payload = vec![0; len];
    s.read_exact(&mut payload).expect("reading a reply body");
    Some(proto::decode_reply(&payload).expect("the server sent an undecodable reply"))
}

/// Reads one reply that must be an error; returns (xid, error).
pub fn read_error(s: &mut UnixStream) -> (u64, proto::ErrorReply) {
    let d = read_reply(s).expect("connection closed before the error reply");
    match d.msg {
        Reply::Error(e) => (d.xid, e),
        other => panic!("expected an error reply, got {other:?}"),
    }
}

/// After the server closed `s`: reading gives EOF (or a reset), never more data.
pub fn assert_closed(s: &mut UnixStream) {
    let mut buf = [0u8; 64];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => panic!("unexpected {n} more bytes from a closed connection"),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("connection not closed: {e}"),
        }
    }
}
