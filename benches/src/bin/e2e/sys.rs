//! Running programs with timeouts, background processes killed by PID, CPU accounting from
//! `/proc`, the quiet-machine check, the measurement lock, and the Ctrl-C flag.

use std::fs::File;
use std::io::Read;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();

fn stop_flag() -> &'static Arc<AtomicBool> {
    STOP.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Makes SIGINT, SIGTERM and SIGHUP set a flag that every wait below checks: the run then
/// unwinds normally and the guards remove what it created.
pub fn install_signal_flag() -> Result<()> {
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(sig, Arc::clone(stop_flag()))
            .context("installing the signal handler")?;
    }
    Ok(())
}

/// True once a stop signal arrived.
pub fn stopped() -> bool {
    stop_flag().load(Ordering::Relaxed)
}

/// Fails with "interrupted" once a stop signal arrived.
pub fn check_stop() -> Result<()> {
    if stopped() {
        bail!("interrupted");
    }
    Ok(())
}

/// Sleeps, waking early (with an error) on a stop signal.
pub fn sleep(d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    loop {
        check_stop()?;
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

/// What a finished program left.
#[derive(Debug)]
pub struct Out {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Out {
    /// Fails with the program's stderr unless it exited 0.
    pub fn ok(self, what: &str) -> Result<Self> {
        if !self.status.success() {
            bail!(
                "{what} failed ({}): {} {}",
                self.status,
                self.stderr.trim(),
                self.stdout.trim()
            );
        }
        Ok(self)
    }
}

fn reader(mut r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        // A read error only shortens the captured text.
        let _ = r.read_to_end(&mut buf);
        let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
    });
    rx
}

/// Sends `sig` to the process group `pgid` (a group this process created for one child).
fn kill_group(sig: &str, pgid: u32) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

/// A program running in the background, started by this process in a process group of its
/// own (so that what it forks goes with it). Dropping it sends SIGTERM to that group, waits up
/// to 2 s, then SIGKILLs the group.
#[derive(Debug)]
pub struct Bg {
    name: String,
    child: Option<Child>,
    out: Option<Receiver<String>>,
    err: Option<Receiver<String>>,
}

impl Bg {
    /// Starts `cmd` with stdin closed and stdout/stderr captured.
    pub fn spawn(name: &str, cmd: &mut Command) -> Result<Self> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let out = child.stdout.take().map(reader);
        let err = child.stderr.take().map(reader);
        Ok(Self {
            name: name.to_owned(),
            child: Some(child),
            out,
            err,
        })
    }

    /// PID of the program.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True while it runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Sends a signal to the program and what it forked (its process group).
    pub fn signal(&mut self, sig: &str) {
        if self.running()
            && let Some(pid) = self.pid()
        {
            kill_group(sig, pid);
        }
    }

    fn kill_all(&self, child: &mut Child) {
        kill_group("KILL", child.id());
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Waits up to `timeout` for the program to exit by itself (SIGKILL after that, which is
    /// an error) and returns what it printed.
    pub fn wait(mut self, timeout: Duration) -> Result<Out> {
        let mut child = self.child.take().context("already waited")?;
        let end = Instant::now() + timeout;
        let status = loop {
            if let Some(st) = child.try_wait()? {
                break st;
            }
            if stopped() || Instant::now() >= end {
                self.kill_all(&mut child);
                let err = self.collect().1;
                if stopped() {
                    bail!("interrupted");
                }
                bail!(
                    "{} did not finish within {timeout:?} (killed): {}",
                    self.name,
                    err.trim()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let (stdout, stderr) = self.collect_or_kill(child.id());
        Ok(Out {
            status,
            stdout,
            stderr,
        })
    }

    /// Sends `sig`, then waits as [`Bg::wait`].
    pub fn stop_with(mut self, sig: &str, timeout: Duration) -> Result<Out> {
        self.signal(sig);
        self.wait(timeout)
    }

    /// What the program printed after it exited. A pipe still open after 0.5 s is held by
    /// something it forked: its process group (alive, so the id is still its own) is killed.
    fn collect_or_kill(&mut self, pgid: u32) -> (String, String) {
        let get = |r: Option<Receiver<String>>| {
            let r = r?;
            match r.recv_timeout(Duration::from_millis(500)) {
                Ok(s) => Some(s),
                Err(_) => {
                    kill_group("KILL", pgid);
                    r.recv_timeout(Duration::from_secs(2)).ok()
                }
            }
        };
        let o = get(self.out.take()).unwrap_or_default();
        let e = get(self.err.take()).unwrap_or_default();
        (o, e)
    }

    /// What the program printed; gives up on a pipe after 2 s.
    fn collect(&mut self) -> (String, String) {
        let get = |r: Option<Receiver<String>>| {
            r.and_then(|r| r.recv_timeout(Duration::from_secs(2)).ok())
                .unwrap_or_default()
        };
        (get(self.out.take()), get(self.err.take()))
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        kill_group("TERM", c.id());
        let end = Instant::now() + Duration::from_secs(2);
        while Instant::now() < end {
            if matches!(c.try_wait(), Ok(Some(_))) {
                let _ = self.collect_or_kill(c.id());
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill_all(&mut c);
        let _ = self.collect();
    }
}

/// Runs `cmd` to completion within `timeout` (killed and an error after that).
pub fn run_to(name: &str, cmd: &mut Command, timeout: Duration) -> Result<Out> {
    Bg::spawn(name, cmd)?.wait(timeout)
}

/// Runs `program args…` within `timeout`, failing unless it exits 0; returns stdout.
pub fn run(program: &str, args: &[&str], timeout: Duration) -> Result<String> {
    let what = format!("{program} {}", args.join(" "));
    Ok(run_to(&what, Command::new(program).args(args), timeout)?
        .ok(&what)?
        .stdout)
}

/// Timeout for the short configuration commands (ip, nft, ethtool, vsctl, ovs-vsctl).
pub const SHORT: Duration = Duration::from_secs(20);

/// Per-CPU jiffies from `/proc/stat`: (busy, total) per CPU, busy = total − idle − iowait.
#[derive(Debug, Clone)]
pub struct CpuSnap {
    cpus: Vec<(u64, u64)>,
}

impl CpuSnap {
    /// Number of CPUs.
    pub fn cpus_len(&self) -> usize {
        self.cpus.len()
    }
}

/// Reads `/proc/stat`.
pub fn cpu_snap() -> Result<CpuSnap> {
    let s = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let cpus = parse_cpu_lines(&s);
    if cpus.is_empty() {
        bail!("no cpu lines in /proc/stat");
    }
    Ok(CpuSnap { cpus })
}

/// (busy, total) jiffies of each CPU of a `/proc/stat` text, indexed by the CPU's number:
/// the file lists online CPUs only, so a CPU that is offline leaves a gap, (0, 0), rather than
/// shifting the CPUs after it onto its index.
fn parse_cpu_lines(stat: &str) -> Vec<(u64, u64)> {
    let mut cpus = Vec::new();
    for line in stat.lines() {
        let mut it = line.split_whitespace();
        let Some(n) = it
            .next()
            .and_then(|name| name.strip_prefix("cpu"))
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        // user nice system idle iowait irq softirq steal (guest time is inside user/nice).
        let v: Vec<u64> = it.take(8).filter_map(|x| x.parse().ok()).collect();
        if v.len() < 8 || n >= 4096 {
            continue;
        }
        let total: u64 = v.iter().sum();
        if cpus.len() <= n {
            cpus.resize(n + 1, (0, 0));
        }
        cpus[n] = (total - v[3] - v[4], total);
    }
    cpus
}

/// Busy % of each CPU between two snapshots.
pub fn busy_pct(a: &CpuSnap, b: &CpuSnap) -> Vec<f64> {
    a.cpus
        .iter()
        .zip(&b.cpus)
        .map(|(x, y)| {
            let total = y.1.saturating_sub(x.1);
            if total == 0 {
                0.0
            } else {
                100.0 * y.0.saturating_sub(x.0) as f64 / total as f64
            }
        })
        .collect()
}

/// User + system jiffies of a process (all its threads), from `/proc/PID/stat`.
pub fn proc_ticks(pid: u32) -> Option<u64> {
    stat_ticks(pid).map(|(_, ticks)| ticks)
}

/// The state letter and user + system ticks of `pid`, from one read of `/proc/PID/stat`.
fn stat_ticks(pid: u32) -> Option<(char, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let state = f.first()?.chars().next()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((state, utime + stime))
}

/// Sum of [`proc_ticks`] over `pids` (missing processes count 0).
pub fn procs_ticks(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|&p| proc_ticks(p)).sum()
}

/// [`procs_ticks`] of processes that all still run: `None` when one has exited (a zombie
/// not yet reaped, whose ticks stand still, or gone).
pub fn running_ticks(pids: &[u32]) -> Option<u64> {
    let mut sum = 0;
    for &pid in pids {
        let (state, ticks) = stat_ticks(pid)?;
        if matches!(state, 'Z' | 'X' | 'x') {
            return None;
        }
        sum += ticks;
    }
    Some(sum)
}

/// Jiffies per second (`getconf CLK_TCK`, 100 when unknown).
pub fn clk_tck() -> f64 {
    run("getconf", &["CLK_TCK"], SHORT)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Result of the quiet-machine check.
#[derive(Debug, Clone)]
pub struct Quiet {
    /// True when every CPU was below the limit over one second.
    pub ok: bool,
    /// Seconds spent waiting.
    pub waited: f64,
    /// Busy % per CPU in the last sample, not counting the switch's own processes.
    pub busy: Vec<f64>,
}

/// Waits (1 s samples, up to `max_wait`) until every CPU is less than `limit` % busy. The CPU
/// time of `switch_pids` (a busy-polling switch spins even when idle) is taken off
/// `switch_cpu`'s figure.
pub fn wait_quiet(
    switch_pids: &[u32],
    switch_cpu: usize,
    limit: f64,
    max_wait: Duration,
    tck: f64,
) -> Result<Quiet> {
    let t0 = Instant::now();
    loop {
        let a = cpu_snap()?;
        let pa = procs_ticks(switch_pids);
        let w0 = Instant::now();
        sleep(Duration::from_secs(1))?;
        let b = cpu_snap()?;
        let pb = procs_ticks(switch_pids);
        let secs = w0.elapsed().as_secs_f64();
        let mut busy = busy_pct(&a, &b);
        if let Some(c) = busy.get_mut(switch_cpu) {
            let own = 100.0 * (pb.saturating_sub(pa)) as f64 / tck / secs;
            *c = (*c - own).max(0.0);
        }
        let ok = busy.iter().all(|&x| x < limit);
        if ok || t0.elapsed() >= max_wait {
            return Ok(Quiet {
                ok,
                waited: t0.elapsed().as_secs_f64(),
                busy,
            });
        }
    }
}

/// Holds the machine-wide measurement lock (`flock` on a file) while alive.
#[derive(Debug)]
pub struct MeasureLock {
    _file: Option<File>,
}

impl MeasureLock {
    /// Takes the lock at `path` (waiting for it, checking for Ctrl-C), or nothing when `path`
    /// is `None`.
    pub fn take(path: Option<&Path>) -> Result<Self> {
        let Some(path) = path else {
            return Ok(Self { _file: None });
        };
        let f = File::options()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening lock file {}", path.display()))?;
        let t0 = Instant::now();
        let mut told = false;
        loop {
            match f.try_lock() {
                Ok(()) => return Ok(Self { _file: Some(f) }),
                Err(std::fs::TryLockError::WouldBlock) => {
                    if !told && t0.elapsed() > Duration::from_secs(5) {
                        eprintln!("  waiting for {} (another measurement)", path.display());
                        told = true;
                    }
                    sleep(Duration::from_millis(100))?;
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("locking {}", path.display()));
                }
            }
        }
    }
}

/// First line of `program args…` output (stdout, else stderr), or "?".
pub fn version_of(program: &str, args: &[&str]) -> String {
    match run_to(program, Command::new(program).args(args), SHORT) {
        Ok(o) => {
            let text = if o.stdout.trim().is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            strip_ansi(&text)
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("?")
                .to_owned()
        }
        Err(e) => format!("not available ({e})"),
    }
}

/// Removes ANSI colour sequences (sockperf colours some lines).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// The guest's halt-poll window of the `haltpoll` cpuidle driver (KVM guests): how long an
/// idle vCPU polls before it halts.
pub const HALT_POLL_NS: &str = "/sys/module/haltpoll/parameters/guest_halt_poll_ns";

/// The longest halt-poll window `--guest-halt-poll-ns` sets: 10 ms (the kernel takes any
/// number; an idle vCPU then spins that long after every wake-up).
pub const HALT_POLL_MAX_NS: u64 = 10_000_000;

/// The current UTC time as `YYYYMMDD-HHMMSS` and as RFC 3339.
pub fn now_stamps() -> (String, String) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let sod = secs % 86_400;
    let (h, m, s) = (sod / 3600, (sod % 3600) / 60, sod % 60);
    // Days since 1970-01-01 to a civil date (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    (
        format!("{y:04}{mo:02}{d:02}-{h:02}{m:02}{s:02}"),
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first CPU this process may run on (`Cpus_allowed_list` of /proc/self/status).
    fn an_allowed_cpu() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let list = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap()
            .trim();
        list.split([',', '-']).next().unwrap().parse().unwrap()
    }

    #[test]
    fn a_busy_cpu_is_not_quiet_unless_the_switch_keeps_it_busy() {
        let cpu = an_allowed_cpu();
        // A shell spinning on that CPU: this test's own process, ended by `Bg`'s drop (its
        // process group, by id), even on panic.
        let spin = Bg::spawn(
            "spinner",
            Command::new("taskset").args([
                "-c",
                &cpu.to_string(),
                "sh",
                "-c",
                "while :; do :; done",
            ]),
        )
        .unwrap();
        let spin_pid = spin.pid().unwrap();
        let tck = clk_tck();
        let busy = wait_quiet(&[], cpu, 50.0, Duration::from_secs(1), tck).unwrap();
        assert!(!busy.ok, "{busy:?}");
        assert!(busy.busy[cpu] >= 50.0, "{busy:?}");
        // The same spinner counted as the switch (a busy-polling switch spins when idle): its
        // time is taken off that CPU's figure — by most of a CPU, whatever else runs there.
        let own = wait_quiet(&[spin_pid], cpu, 50.0, Duration::from_secs(1), tck).unwrap();
        assert!(
            own.busy[cpu] + 30.0 < busy.busy[cpu],
            "{busy:?} then {own:?}"
        );
    }

    #[test]
    fn ansi_is_stripped() {
        assert_eq!(strip_ansi("a\u{1b}[2;35mb\u{1b}[0mc"), "abc");
    }

    #[test]
    fn cpu_figures_keep_their_cpu_numbers_when_one_is_offline() {
        let stat = "cpu  30 0 30 100 0 0 0 0 0 0\n\
                    cpu1 10 0 10 50 0 0 0 0 0 0\n\
                    cpu3 20 0 20 50 10 0 0 0 0 0\n\
                    intr 1 2 3\n";
        assert_eq!(
            parse_cpu_lines(stat),
            vec![(0, 0), (20, 70), (0, 0), (40, 100)]
        );
    }

    #[test]
    fn a_switch_that_is_gone_has_no_ticks_to_measure() {
        // A crashed vswitchd is a zombie until its Daemon guard reaps it, then gone: neither
        // may read as a switch that used no CPU (the idle goal would be met by a dead switch).
        let mut child = Command::new("sh").args(["-c", "exit 0"]).spawn().unwrap();
        let pid = child.id();
        let zombie = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| s.rsplit_once(") ").and_then(|(_, r)| r.chars().next()))
                == Some('Z')
        };
        let t0 = Instant::now();
        while !zombie() {
            assert!(t0.elapsed() < Duration::from_secs(10), "the child exits");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(running_ticks(&[pid]), None, "a zombie");
        child.wait().unwrap();
        assert_eq!(running_ticks(&[pid]), None, "reaped");
        let me = std::process::id();
        assert!(running_ticks(&[me]).is_some());
        assert_eq!(running_ticks(&[me, pid]), None, "one of two gone");
    }
}
