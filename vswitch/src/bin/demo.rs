//! `vswitch-demo`: the README's first command. Builds three throwaway "containers" (network
//! namespaces: two on veth pairs served through AF_XDP, one on a tap), starts `vswitchd`
//! between them, runs ping and a verified TCP transfer, shows a flow dropping traffic and
//! being removed, prints port counters and the MAC table, and removes everything it created —
//! also on Ctrl-C.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use testbed::{Container, Daemon};

/// `print!` for the demo's output, where a closed output (the demo piped into `head`) is not
/// an error: the demo goes on and removes what it created. (`print!` panics on a failed write,
/// and release builds abort on panic, skipping the guards that remove namespaces, devices and
/// the daemon.)
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($t)*);
    }};
}

/// `println!` as [`say!`] is `print!`.
macro_rules! sayln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

fn sibling(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let p = exe.parent().context("no parent dir")?.join(name);
    if !p.exists() {
        bail!(
            "{} not found next to {} (build the workspace binaries first)",
            name,
            exe.display()
        );
    }
    Ok(p)
}

fn vsctl(vsctl: &Path, socket: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(vsctl)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()?;
    if !out.status.success() {
        bail!(
            "vsctl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn step(stop: &AtomicBool, what: &str) -> Result<()> {
    if stop.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    sayln!("\n==> {what}");
    Ok(())
}

fn demo(stop: &AtomicBool) -> Result<()> {
    if !testbed::privileged() {
        bail!("the demo creates network namespaces and devices: run it as root");
    }
    let vswitchd = sibling("vswitchd")?;
    let vsctl_bin = sibling("vsctl")?;
    let vsnet = sibling("vsnet")?;

    step(stop, "starting vswitchd (one worker, adaptive polling)")?;
    let d = Daemon::start(&vswitchd, &["--poll-mode", "adaptive"])?;
    let sock = d.socket.clone();
    sayln!(
        "vswitchd pid {} on {}",
        d.pid().unwrap_or(0),
        sock.display()
    );

    step(
        stop,
        "creating containers c1, c2 (veth → AF_XDP port) and c3 (tap port)",
    )?;
    let c1 = Container::veth("vsdemo", 1, "10.200.0.1")?;
    let c2 = Container::veth("vsdemo", 2, "10.200.0.2")?;
    vsctl(
        &vsctl_bin,
        &sock,
        &["add-port", &c1.port, "--type", "afxdp"],
    )?;
    vsctl(
        &vsctl_bin,
        &sock,
        &["add-port", &c2.port, "--type", "afxdp"],
    )?;
    let tap = testbed::unique("vst");
    vsctl(&vsctl_bin, &sock, &["add-port", &tap, "--type", "tap"])?;
    let c3 = Container::tap("vsdemo", 3, "10.200.0.3", &tap)?;
    say!("{}", vsctl(&vsctl_bin, &sock, &["list-ports"])?);

    step(stop, "ping c1 → c2 and c1 → c3")?;
    for (to, name) in [(&c2, "c2"), (&c3, "c3")] {
        let out = c1
            .ns
            .command("ping")
            .args(["-c", "3", "-i", "0.2", "-W", "2", &to.addr])
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let summary = text
            .lines()
            .find(|l| l.contains("packets transmitted"))
            .unwrap_or("no reply");
        sayln!("c1 → {name} ({}): {summary}", to.addr);
        if !out.status.success() {
            bail!("ping c1 → {name} failed");
        }
    }

    for (from, to, label) in [
        (&c1, &c2, "c1 → c2 (AF_XDP ↔ AF_XDP)"),
        (&c3, &c1, "c3 → c1 (tap → AF_XDP)"),
    ] {
        step(
            stop,
            &format!("TCP transfer of 200 MB {label}, verified by hash"),
        )?;
        let t = testbed::tcp_transfer(&vsnet, from, to, 200_000_000, 5201)?;
        sayln!("sent:     {}\nreceived: {}", t.sent, t.received);
        if let Some(secs) = t.secs().filter(|s| *s > 0.0) {
            sayln!("throughput: {:.2} Gbit/s", 200e6 * 8.0 / secs / 1e9);
        }
        if !t.intact(200_000_000) {
            bail!("TCP transfer {label}: bytes or hashes differ");
        }
        sayln!("bytes verified: identical");
    }

    step(
        stop,
        "a flow: drop ICMP to c2 (vsctl add-flow), ping fails, dump-flows, del-flows, ping works",
    )?;
    let flow = format!("priority=100,icmp,nw_dst={}", c2.addr);
    vsctl(
        &vsctl_bin,
        &sock,
        &["add-flow", &format!("{flow} actions=drop")],
    )?;
    let ping = |count: &str| -> Result<bool> {
        Ok(c1
            .ns
            .command("ping")
            .args(["-c", count, "-i", "0.2", "-W", "1", &c2.addr])
            .output()?
            .status
            .success())
    };
    if ping("3")? {
        bail!("ping c1 → c2 passed a drop flow");
    }
    sayln!("c1 → c2: no reply while the flow is in place");
    say!("{}", vsctl(&vsctl_bin, &sock, &["dump-flows"])?);
    vsctl(&vsctl_bin, &sock, &["del-flows", "--strict", &flow])?;
    if !ping("1")? {
        bail!("ping c1 → c2 failed after the flow was deleted");
    }
    sayln!("c1 → c2: replies again after del-flows");

    step(stop, "port counters (vsctl dump-ports)")?;
    say!("{}", vsctl(&vsctl_bin, &sock, &["dump-ports"])?);
    step(stop, "MAC table (vsctl dump-macs)")?;
    say!("{}", vsctl(&vsctl_bin, &sock, &["dump-macs"])?);
    step(stop, "switch (vsctl show)")?;
    say!("{}", vsctl(&vsctl_bin, &sock, &["show"])?);

    step(
        stop,
        "cleaning up: stopping vswitchd, deleting namespaces and devices",
    )?;
    drop((c1, c2, c3));
    drop(d);
    Ok(())
}

fn main() -> std::process::ExitCode {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, Arc::clone(&stop));
    }
    match demo(&stop) {
        Ok(()) => {
            sayln!("\ndemo finished; everything it created is gone");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "demo failed: {e:#}\n(everything it created has been removed)"
            );
            std::process::ExitCode::FAILURE
        }
    }
}
