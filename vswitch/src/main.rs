//! `vswitchd`: the vswitch daemon.
//!
//! Reads its configuration (TOML file + flags), checks its privileges, starts the datapath
//! workers, adds the configured ports, serves the control socket until SIGTERM/SIGINT/SIGHUP, then
//! detaches and closes every port and removes the socket.
#![forbid(unsafe_code)]

mod config;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use config::{Args, LogFormat};
use datapath::switch::Switch;
use datapath::sys::caps;

/// Refuses to start without the capabilities every port type needs (`caps::NEEDED`); warns
/// when AF_XDP ports will be refused (neither CAP_BPF nor CAP_SYS_ADMIN: `auto` ports then
/// get AF_PACKET).
fn check_capabilities() -> Result<()> {
    let set = caps::effective().context("reading /proc/self/status")?;
    let missing: Vec<&str> = caps::missing(set).iter().map(|c| c.name).collect();
    if !missing.is_empty() {
        bail!(
            "vswitchd lacks {}: run it as root (or grant these capabilities)",
            missing.join(", ")
        );
    }
    if !caps::may_load_bpf(set) {
        tracing::warn!(
            "no CAP_BPF or CAP_SYS_ADMIN: AF_XDP ports will be refused; `auto` ports get AF_PACKET"
        );
    }
    Ok(())
}

/// The signals that stop the daemon cleanly: SIGTERM, SIGINT, and SIGHUP (the terminal of a
/// daemon started from a shell went away; its default action would end the process without
/// detaching anything or removing the socket).
const STOP_SIGNALS: [std::ffi::c_int; 3] = [
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGHUP,
];

/// Logs to stderr with the filter `level` (the `--log-level` flag's, else `RUST_LOG` when set
/// and valid, else the configuration file's).
fn init_logging(level: &str, flag_given: bool, format: LogFormat) {
    let from_env = if flag_given {
        None
    } else {
        tracing_subscriber::EnvFilter::try_from_default_env().ok()
    };
    let filter = from_env.unwrap_or_else(|| tracing_subscriber::EnvFilter::new(level));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => b.init(),
        LogFormat::Json => b.json().init(),
    }
}

/// Starts a thread that, on a [`STOP_SIGNALS`] signal, sets `shutdown` and wakes the control loop, so
/// that the daemon stops at once whichever of its threads the kernel gave the signal to (the
/// flag alone would be seen at the loop's next timeout). The thread sleeps until a signal
/// comes.
fn wake_on_signals(
    shutdown: &Arc<AtomicBool>,
    waker: control::server::ShutdownWaker,
) -> Result<()> {
    let mut signals =
        signal_hook::iterator::Signals::new(STOP_SIGNALS).context("installing signal handler")?;
    let shutdown = Arc::clone(shutdown);
    std::thread::Builder::new()
        .name("vswitch-signals".into())
        .spawn(move || {
            if signals.forever().next().is_some() {
                shutdown.store(true, Ordering::Release);
                let _ = waker.wake();
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}

fn run() -> Result<()> {
    let args = Args::parse();
    let cfg = config::load(&args)?;
    if args.print_config {
        print!(
            "{}",
            toml::to_string_pretty(&cfg).context("printing configuration")?
        );
        return Ok(());
    }
    init_logging(&cfg.log_level, args.log_level.is_some(), cfg.log_format);
    check_capabilities()?;

    let shutdown = Arc::new(AtomicBool::new(false));
    for sig in STOP_SIGNALS {
        // A second signal while stopping ends the process at once, exit status 1 (the first
        // is seen between requests and waits for the workers to stop: a long request or a
        // stuck stop would otherwise need SIGKILL). Registered first, so that it sees the
        // flag as the signal before set it.
        signal_hook::flag::register_conditional_shutdown(sig, 1, Arc::clone(&shutdown))
            .context("installing signal handler")?;
        signal_hook::flag::register(sig, Arc::clone(&shutdown))
            .context("installing signal handler")?;
    }

    // Bind the socket first: refuses to start when another daemon owns it.
    let mut server = control::server::Server::bind(control::server::ServerConfig {
        path: cfg.socket.clone(),
        max_frame_bytes: cfg.control.max_frame_bytes,
        max_sessions: cfg.control.max_sessions,
        max_queued_bytes: cfg.control.max_queued_bytes,
        max_notify_queued_bytes: cfg.control.max_notify_queued_bytes,
        max_bundle_bytes: cfg.control.max_bundle_bytes,
        max_bundle_bytes_total: cfg.control.max_bundle_bytes_total,
        // A signal wakes the loop at once (below), so it need not look at the shutdown flag
        // between its once-a-second housekeeping runs: one wake-up a second when idle.
        poll_timeout: Duration::from_secs(1),
        ..control::server::ServerConfig::default()
    })
    .with_context(|| format!("control socket {}", cfg.socket.display()))?;
    wake_on_signals(&shutdown, server.shutdown_waker())?;

    let mut switch = Switch::start(cfg.switch_config()).context("starting the datapath")?;
    for p in &cfg.ports {
        let spec = p.spec()?;
        match switch.add_port(spec.clone()) {
            Ok(info) => {
                tracing::info!(port = %info.name, kind = %info.kind, "configured port up");
            }
            // A configured port whose device is not there yet (its container is not
            // running): it opens when the device appears, instead of keeping the switch
            // down for every other container (until 2026-12-07 the daemon exited).
            Err(datapath::switch::SwitchError::Port(datapath::port::PortError::NoDevice {
                ..
            })) => {
                let info = switch
                    .add_port_waiting(spec)
                    .with_context(|| format!("adding port {}", p.name))?;
                tracing::warn!(
                    port = %info.name,
                    id = info.id,
                    "configured port's device does not exist yet: the port opens when it appears"
                );
            }
            Err(e) => return Err(e).with_context(|| format!("adding port {}", p.name)),
        }
    }
    tracing::info!(socket = %cfg.socket.display(), workers = switch.info().workers, "vswitchd ready");
    let res = server.run(&mut switch, &shutdown);
    tracing::info!("shutting down");
    switch.shutdown();
    drop(server);
    res.context("control server")?;
    tracing::info!("stopped");
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vswitchd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
