//! Test topologies: network namespaces ("containers"), veth pairs, tap devices and a running
//! `vswitchd`, each owned by a guard whose `Drop` removes what it created, even on panic.
//!
//! Used by the privileged integration tests, the demo and the benchmark harness. Everything is
//! named with a per-process prefix so that parallel runs never touch each other's devices, and
//! traffic only ever flows between devices created here.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A kernel parameter file (sysfs, procfs) set for a while and put back as it was on drop,
/// also when the holder stops on an error, a signal it handles or a panic.
#[derive(Debug)]
pub struct SetFor {
    path: PathBuf,
    old: String,
}

impl SetFor {
    /// Writes `value` to `path` and reads it back.
    ///
    /// # Errors
    /// The file is missing or unreadable, refuses the value, or reads back another.
    pub fn set(path: &Path, value: &str) -> Result<Self> {
        let old = std::fs::read_to_string(path)
            .with_context(|| format!("reading {}", path.display()))?
            .trim()
            .to_owned();
        std::fs::write(path, value)
            .with_context(|| format!("writing {value} to {}", path.display()))?;
        let guard = Self {
            path: path.to_owned(),
            old,
        };
        let now = std::fs::read_to_string(path)
            .with_context(|| format!("reading {} back", path.display()))?;
        if now.trim() != value {
            bail!(
                "{} reads {} after {value} was written",
                path.display(),
                now.trim()
            );
        }
        Ok(guard)
    }
}

impl Drop for SetFor {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(&self.path, &self.old) {
            eprintln!(
                "could not put {} back to {}: {e}",
                self.path.display(),
                self.old
            );
        }
    }
}

/// A short name unique to this process and call: `<prefix><pid%10000><seq>` (≤ 15 bytes).
pub fn unique(prefix: &str) -> String {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let name = format!("{prefix}{}{}", std::process::id() % 10_000, n);
    assert!(name.len() <= 15, "interface name too long: {name}");
    name
}

/// Runs a command, failing with its stderr when it exits non-zero.
pub fn run(cmd: &str, args: &[&str]) -> Result<Output> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("running {cmd} {args:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// `ip ARGS…`
pub fn ip(args: &[&str]) -> Result<Output> {
    run("ip", args)
}

/// Whether this process may create namespaces and devices (root with CAP_NET_ADMIN).
pub fn privileged() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 12) != 0)
}

/// For privileged tests: true to go on; false (after printing why) to skip. Under `CI=true` a
/// missing privilege is a failure, never a skip.
pub fn require_privileges(test: &str) -> bool {
    if privileged() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: needs root/CAP_NET_ADMIN, and CI=true forbids skipping"
    );
    eprintln!("skipping {test}: needs root with CAP_NET_ADMIN");
    false
}

/// A network namespace standing in for a container. Deleted on drop.
#[derive(Debug)]
pub struct Netns {
    /// Namespace name.
    pub name: String,
}

impl Netns {
    /// Creates a namespace with loopback up.
    pub fn new(prefix: &str) -> Result<Self> {
        let name = unique(prefix);
        ip(&["netns", "add", &name])?;
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// `ip -n NS ARGS…`
    pub fn ip(&self, args: &[&str]) -> Result<Output> {
        let mut a = vec!["-n", self.name.as_str()];
        a.extend_from_slice(args);
        ip(&a)
    }

    /// A command to run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs a program in the namespace and returns its output (error if it fails).
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<Output> {
        let out = self
            .command(program)
            .args(args)
            .output()
            .with_context(|| format!("running {program} in {}", self.name))?;
        if !out.status.success() {
            bail!(
                "{program} {} in {} failed: {}{}",
                args.join(" "),
                self.name,
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(out)
    }

    /// `ping -c COUNT` from the namespace; true when every reply came back.
    pub fn ping(&self, addr: &str, count: u32) -> bool {
        self.command("ping")
            .args(["-c", &count.to_string(), "-i", "0.2", "-W", "2", "-q", addr])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// `ping -c 1 -W SECS` once; true on a reply.
    pub fn ping_once(&self, addr: &str, wait_secs: u32) -> bool {
        self.command("ping")
            .args(["-c", "1", "-W", &wait_secs.to_string(), "-q", addr])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Devices inside go with it; a veth whose peer was inside goes too.
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!(
                "cleanup: could not delete netns {}: {e} (run: ip netns del {})",
                self.name, self.name
            );
        }
    }
}

/// One container attached to the switch: a namespace whose `eth0` is either a veth (the host
/// end given to the switch) or a tap (created by the switch, then moved in).
#[derive(Debug)]
pub struct Container {
    /// The namespace.
    pub ns: Netns,
    /// Name of the switch-side device (veth host end, or the tap).
    pub port: String,
    /// IPv4 address (without prefix) inside the namespace.
    pub addr: String,
    /// MAC address of `eth0` inside.
    pub mac: String,
    veth: bool,
}

/// Locally administered MAC for container `index`.
pub fn mac_for(index: u8) -> String {
    format!("02:00:00:00:{:02x}:{:02x}", std::process::id() % 256, index)
}

impl Container {
    /// A namespace with a veth pair: `eth0` inside with `addr/24`, the host end named `port`
    /// up, without addresses and with IPv6 off so the host stack stays quiet.
    pub fn veth(prefix: &str, index: u8, addr: &str) -> Result<Self> {
        Self::veth_queues(prefix, index, addr, 1)
    }

    /// As [`Container::veth`], with `queues` rx and tx queues on both ends of the pair.
    pub fn veth_queues(prefix: &str, index: u8, addr: &str, queues: usize) -> Result<Self> {
        let ns = Netns::new(prefix)?;
        let port = unique("vsp");
        let inner = unique("vsi");
        let q = queues.to_string();
        ip(&[
            "link",
            "add",
            &port,
            "numrxqueues",
            &q,
            "numtxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            &inner,
            "numrxqueues",
            &q,
            "numtxqueues",
            &q,
        ])?;
        let c = Self {
            ns,
            port,
            addr: addr.to_owned(),
            mac: mac_for(index),
            veth: true,
        };
        std::fs::write(
            format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", c.port),
            "1",
        )
        .ok();
        ip(&["link", "set", &c.port, "up"])?;
        ip(&["link", "set", &inner, "netns", &c.ns.name])?;
        c.ns.ip(&["link", "set", &inner, "name", "eth0"])?;
        c.configure_inside()?;
        Ok(c)
    }

    /// A container whose `eth0` is the tap `port` that the switch already opened: moves it in
    /// and configures it.
    pub fn tap(prefix: &str, index: u8, addr: &str, tap: &str) -> Result<Self> {
        let ns = Netns::new(prefix)?;
        ip(&["link", "set", tap, "netns", &ns.name])?;
        ns.ip(&["link", "set", tap, "name", "eth0"])?;
        let c = Self {
            ns,
            port: tap.to_owned(),
            addr: addr.to_owned(),
            mac: mac_for(index),
            veth: false,
        };
        c.configure_inside()?;
        Ok(c)
    }

    fn configure_inside(&self) -> Result<()> {
        self.ns.ip(&["link", "set", "eth0", "address", &self.mac])?;
        self.ns
            .ip(&["addr", "add", &format!("{}/24", self.addr), "dev", "eth0"])?;
        self.ns.ip(&["link", "set", "eth0", "up"])?;
        // No IPv6 chatter (router solicitations, MLD) unless a test asks for it.
        self.ns
            .exec("sysctl", &["-q", "-w", "net.ipv6.conf.eth0.disable_ipv6=1"])
            .ok();
        Ok(())
    }

    /// True when `eth0` is a veth (false: a tap).
    pub fn is_veth(&self) -> bool {
        self.veth
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if self.veth {
            // Deleting the host end removes the pair; harmless if the netns drop did it first.
            let _ = Command::new("ip")
                .args(["link", "del", &self.port])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A running `vswitchd` started by this process; killed (SIGTERM, then SIGKILL) on drop.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    /// Control socket path.
    pub socket: PathBuf,
    /// Directory holding the socket and the log.
    pub dir: PathBuf,
}

impl Daemon {
    /// Starts `binary` with `--socket` in a fresh directory plus `args`, and waits until the
    /// control socket accepts connections.
    pub fn start(binary: &Path, args: &[&str]) -> Result<Self> {
        Self::start_wrapped(&[], binary, args)
    }

    /// As [`Daemon::start`], run through `wrapper` (a command that ends by executing its last
    /// argument, such as `setpriv … --`, so that the PID is still the daemon's); empty: none.
    pub fn start_wrapped(wrapper: &[&str], binary: &Path, args: &[&str]) -> Result<Self> {
        let dir = std::env::temp_dir().join(unique("vsd"));
        std::fs::create_dir_all(&dir)?;
        let socket = dir.join("vswitchd.sock");
        let log = std::fs::File::create(dir.join("vswitchd.log"))?;
        let mut command = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        let child = command
            .arg("--socket")
            .arg(&socket)
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut d = Self {
            child: Some(child),
            socket,
            dir,
        };
        d.wait_ready(Duration::from_secs(10))?;
        Ok(d)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return Ok(());
            }
            if let Some(c) = self.child.as_mut()
                && let Some(st) = c.try_wait()?
            {
                bail!("vswitchd exited early ({st}): {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "vswitchd did not open {} in time: {}",
            self.socket.display(),
            self.log()
        )
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("vswitchd.log")).unwrap_or_default()
    }

    /// PID of the daemon.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends SIGKILL to the daemon (by PID: only the process this guard started) and reaps it.
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }

    /// Sends SIGTERM (by PID: only the process this guard started), without waiting.
    pub fn send_term(&self) -> Result<()> {
        self.send_signal("TERM")
    }

    /// Sends the signal named `sig` (`TERM`, `HUP`, …; by PID: only the process this guard
    /// started), without waiting.
    pub fn send_signal(&self, sig: &str) -> Result<()> {
        let Some(c) = self.child.as_ref() else {
            bail!("daemon already stopped");
        };
        run("kill", &[&format!("-{sig}"), &c.id().to_string()])?;
        Ok(())
    }

    /// Waits up to `timeout` for the daemon to exit: its status, or `None` if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<Option<std::process::ExitStatus>> {
        let t0 = Instant::now();
        loop {
            let Some(c) = self.child.as_mut() else {
                bail!("daemon already stopped");
            };
            if let Some(st) = c.try_wait()? {
                self.child = None;
                return Ok(Some(st));
            }
            if t0.elapsed() > timeout {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for a clean exit; returns its exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        self.send_term()?;
        if let Some(st) = self.wait_exit(timeout)? {
            return Ok(st);
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        bail!(
            "vswitchd did not exit within {timeout:?} of SIGTERM: {}",
            self.log()
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_ref() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
        if let Some(mut c) = self.child.take() {
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(5) {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// True when `ip -d link show DEV` mentions an attached XDP program.
pub fn xdp_attached(dev: &str) -> bool {
    Command::new("ip")
        .args(["-d", "link", "show", dev])
        .output()
        .map(|o| {
            let s = String::from_utf8_lossy(&o.stdout);
            s.contains("prog/xdp") || s.contains(" xdp") || s.contains("xdpgeneric")
        })
        .unwrap_or(false)
}

/// Polls `f` every 50 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    loop {
        if f() {
            return true;
        }
        if t0.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Parses `key=value` out of a `vsnet` output line.
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// What one [`tcp_transfer`] reported.
#[derive(Debug, Clone)]
pub struct Transfer {
    /// The sender's line: `bytes=N hash=H secs=S`.
    pub sent: String,
    /// The receiver's line, same format.
    pub received: String,
    /// The receiver's stderr (for failure messages).
    pub receiver_log: String,
}

impl Transfer {
    /// True when the receiver got `bytes` bytes with the sender's hash.
    pub fn intact(&self, bytes: u64) -> bool {
        field(&self.received, "bytes") == Some(bytes.to_string().as_str())
            && field(&self.sent, "hash").is_some()
            && field(&self.sent, "hash") == field(&self.received, "hash")
    }

    /// Seconds the receiver took, if it said.
    pub fn secs(&self) -> Option<f64> {
        field(&self.received, "secs").and_then(|s| s.parse().ok())
    }
}

/// Sends `bytes` of deterministic data over TCP from `from` to `to` with the `vsnet` binary
/// (`tcp-sink` in `to`, `tcp-source` in `from`) and returns what both ends reported.
pub fn tcp_transfer(
    vsnet: &Path,
    from: &Container,
    to: &Container,
    bytes: u64,
    port: u16,
) -> Result<Transfer> {
    let vsnet = vsnet.to_str().context("vsnet path is not UTF-8")?;
    let listen = format!("{}:{port}", to.addr);
    let sink = to
        .ns
        .command(vsnet)
        .args(["tcp-sink", "--listen", &listen, "--timeout", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(300));
    let src = from.ns.exec(
        vsnet,
        &[
            "tcp-source",
            "--connect",
            &listen,
            "--bytes",
            &bytes.to_string(),
            "--seed",
            "42",
        ],
    )?;
    let out = sink.wait_with_output()?;
    Ok(Transfer {
        sent: String::from_utf8_lossy(&src.stdout).trim().to_owned(),
        received: String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or("")
            .to_owned(),
        receiver_log: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parameter_set_for_the_run_is_put_back() {
        let path = std::env::temp_dir().join(format!("testbed-setfor-{}", std::process::id()));
        std::fs::write(&path, "0\n").unwrap();
        {
            let _g = SetFor::set(&path, "200000").unwrap();
            assert_eq!(std::fs::read_to_string(&path).unwrap(), "200000");
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "0");
        // Put back on unwinding too.
        let r = std::panic::catch_unwind(|| {
            let _g = SetFor::set(&path, "7").unwrap();
            panic!("a failed run");
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "0");
        std::fs::remove_file(&path).unwrap();
        // A missing file is an error that names it, and nothing is created.
        let err = SetFor::set(&path, "1").unwrap_err();
        assert!(
            format!("{err:#}").contains(&path.display().to_string()),
            "{err:#}"
        );
        assert!(!path.exists());
    }
}
