//! Dom0's network switch: `keel switch` (hidden; started on demand by
//! [`ensure_running`]) connects every DomU's virtio-net device, and Dom0
//! through a TAP interface, to one learning switch ([`crate::switch`]).
//!
//! - **Ports.** Each virtio-net device's backend (`keel backend`) holds one
//!   connection to `<run dir>/switch.sock` ([`SwitchPort`]). The socket is
//!   `AF_UNIX` `SOCK_SEQPACKET`: connected like a stream (the switch sees
//!   a backend go away, and a port is a connection), yet each message is
//!   one whole frame, so no length framing, no partial frames, and the
//!   kernel keeps frames of different ports apart. The socket is mode
//!   0600: only Dom0's root connects.
//! - **Hello and anti-spoofing.** A connection's first message is a hello
//!   naming the domain, the device and its MAC ([`protocol`]); one that
//!   starts otherwise is closed. From then on the switch forwards only
//!   frames whose source address is that MAC, so a DomU cannot pose as
//!   another station (or fill the address table with made-up ones). The
//!   TAP is exempt: Dom0 is trusted.
//! - **Dropping, never blocking.** Everything is non-blocking and one
//!   thread serves all ports with `poll`. A frame for a port whose socket
//!   buffer is full is dropped and counted, as a congested Ethernet switch
//!   does: a DomU that stops reading costs its own frames, never the other
//!   ports' progress. Each port (and the TAP) gets a budget of frames per
//!   wakeup so a busy one cannot starve the others. Nothing a port sends
//!   can make the switch panic: frames come from hostile guests.
//! - **The TAP.** Dom0's port 0 is a TAP interface (`keel0`), opened
//!   without a virtio header so Linux hands over whole, checksummed
//!   frames ([`tap`]). Dom0 configures its address itself (`ip addr add
//!   10.0.0.1/24 dev keel0`). Without the tun driver the switch logs one
//!   line and serves the DomUs only.
//!
//! Run files (pid lock, socket, ports list, log) are described in
//! [`files`]; the event loop is [`server::Server`].

mod ffi;
pub mod files;
pub mod port;
pub mod protocol;
pub mod server;
pub mod tap;
#[cfg(test)]
mod tests;

use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use self::files::{read_ports, SwitchFiles, SwitchLock};
pub use self::files::{PortRecord, TapRecord};
pub use self::port::SwitchPort;
use self::server::Server;
use self::tap::{valid_interface_name, Tap};
use crate::backend::runfiles::{create_run_dir, holder, Holder, RUN_DIR};
use crate::sys::{install_stop_handler, new_session_on_exec, stop_requested};

/// The listening socket's name in the run directory.
pub const SOCKET_NAME: &str = "switch.sock";
/// Dom0's TAP interface.
pub const DEFAULT_TAP: &str = "keel0";
/// How long [`ensure_running`] waits for a switch to listen.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one round of the loop waits, so a stop request is seen.
const POLL_TIMEOUT: Duration = Duration::from_secs(1);
const RETRY: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct SwitchArgs {
    /// Where the pid, socket, ports and log files are
    #[arg(long, value_name = "DIR", default_value = RUN_DIR)]
    pub run_dir: PathBuf,
    /// The TAP interface that is Dom0's port
    #[arg(long, value_name = "NAME", default_value = DEFAULT_TAP)]
    pub tap: String,
    /// Switch between DomUs only, without a TAP for Dom0
    #[arg(long, conflicts_with = "tap")]
    pub no_tap: bool,
}

/// What [`status`] finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchStatus {
    /// The switch's pid while one runs (None also for a switch so young it
    /// has not written it).
    pub pid: Option<i32>,
    /// Dom0's TAP, if the running switch has one.
    pub tap: Option<TapRecord>,
    /// The connected DomU ports, by port number.
    pub ports: Vec<PortRecord>,
}

/// Runs the switch until SIGTERM, SIGINT or SIGHUP; `log` is its stderr.
pub fn run(args: &SwitchArgs, log: &mut dyn Write) -> Result<()> {
    ensure!(
        args.no_tap || valid_interface_name(&args.tap),
        "--tap {}: not a valid interface name",
        args.tap
    );
    create_run_dir(&args.run_dir)?;
    let files = SwitchFiles::new(&args.run_dir);
    let _lock = SwitchLock::acquire(&files)?;
    install_stop_handler().context("cannot install the signal handlers")?;
    // Ours now: a dead switch's leftovers.
    let _ = std::fs::remove_file(files.socket());
    let _ = std::fs::remove_file(files.ports());
    let tap = if args.no_tap { None } else { open_tap(&args.tap, log) };
    let tap_note = match &tap {
        Some(tap) => format!(
            "Dom0's TAP {} ({}) is port 0",
            tap.name(),
            protocol::mac_text(&tap.mac())
        ),
        None => "no TAP".to_string(),
    };
    let mut server = Server::bind(&files.socket(), tap, Some(files.ports()))
        .with_context(|| format!("cannot listen at {}", files.socket().display()))?;
    writeln!(
        log,
        "keel switch: listening at {}; {tap_note}",
        files.socket().display()
    )?;
    while !stop_requested() {
        server.step(POLL_TIMEOUT, log).context("poll")?;
    }
    server.shutdown(log);
    let _ = writeln!(log, "keel switch: stopped by a signal; exiting");
    // Dropping the server removes the socket and the ports file, then the
    // lock goes.
    drop(server);
    Ok(())
}

/// Opens and brings up the TAP; None (and one line in the log) if the
/// system has no TAP for us.
fn open_tap(name: &str, log: &mut dyn Write) -> Option<Tap> {
    match Tap::open(name) {
        Ok(tap) => {
            if let Err(error) = tap.set_up() {
                let _ = writeln!(
                    log,
                    "keel switch: cannot bring {name} up ({error}); `ip link set {name} up` does"
                );
            }
            Some(tap)
        }
        Err(error) => {
            let _ = writeln!(
                log,
                "keel switch: no TAP for Dom0 ({error:#}); switching between DomUs only"
            );
            None
        }
    }
}

/// The switch's command line: `program prefix... switch --run-dir DIR`.
pub fn command(run_dir: &Path, program: &Path, prefix: &[String]) -> Command {
    let mut command = Command::new(program);
    command.args(prefix).arg("switch").arg("--run-dir").arg(run_dir);
    command
}

/// Whether a switch accepts connections at `socket`.
fn accepts(socket: &Path) -> bool {
    ffi::seqpacket_socket().is_ok_and(|probe| ffi::connect(probe.as_fd(), socket).is_ok())
}

/// Starts the switch for `run_dir` (`program prefix... switch --run-dir
/// DIR`, in a new session, stdin and stdout on /dev/null, stderr appended
/// to `switch.log`) unless one runs there already, and waits until it
/// accepts connections. Returns its pid.
pub fn ensure_running(run_dir: &Path, program: &Path, prefix: &[String]) -> Result<i32> {
    ensure_running_within(run_dir, program, prefix, READY_TIMEOUT)
}

/// [`ensure_running`] with another timeout.
pub fn ensure_running_within(run_dir: &Path, program: &Path, prefix: &[String], timeout: Duration) -> Result<i32> {
    create_run_dir(run_dir)?;
    let files = SwitchFiles::new(run_dir);
    if let Holder::Backend(_) = holder(&files.pid())? {
        return wait_ready(&files, None, 0, timeout);
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(files.log())
        .with_context(|| format!("cannot open {}", files.log().display()))?;
    let log_start = log.metadata().map_or(0, |meta| meta.len());
    let mut command = command(run_dir, program, prefix);
    command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
    new_session_on_exec(&mut command);
    let child = command
        .spawn()
        .with_context(|| format!("cannot start the switch ({})", program.display()))?;
    wait_ready(&files, Some(child), log_start, timeout)
}

/// `": <last lines> (see <log>)"` for errors: what the log got from `start` on.
fn log_note(files: &SwitchFiles, start: u64) -> String {
    let text = std::fs::read(files.log()).unwrap_or_default();
    let text = String::from_utf8_lossy(text.get(usize::try_from(start).unwrap_or(0)..).unwrap_or_default());
    let lines: Vec<&str> = text.lines().filter(|line| !line.trim().is_empty()).collect();
    match lines[lines.len().saturating_sub(3)..].join("; ") {
        tail if tail.is_empty() => format!(" (see {})", files.log().display()),
        tail => format!(": {tail} (see {})", files.log().display()),
    }
}

/// Waits until a switch holds the pid file with its pid written and
/// accepts connections; `child` is the one we started, if any.
fn wait_ready(files: &SwitchFiles, mut child: Option<Child>, log_start: u64, timeout: Duration) -> Result<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        let holder = holder(&files.pid())?;
        if let Holder::Backend(Some(pid)) = holder {
            if accepts(&files.socket()) {
                // Not waited for: it outlives this process.
                return Ok(pid);
            }
        }
        if let Some(status) = child.as_mut().map(Child::try_wait).transpose()?.flatten() {
            // It may have lost a race to another switch: wait for that one.
            if holder == Holder::Nobody {
                bail!(
                    "the switch exited before it was ready ({status}){}",
                    log_note(files, log_start)
                );
            }
            child = None;
        } else if child.is_none() && holder == Holder::Nobody {
            bail!("the switch exited before it was ready{}", log_note(files, log_start));
        }
        if Instant::now() >= deadline {
            if let Some(mut child) = child {
                let _ = child.kill();
                let _ = child.wait();
            }
            bail!(
                "the switch was not ready after {} s{}",
                timeout.as_secs_f64(),
                log_note(files, log_start)
            );
        }
        std::thread::sleep(RETRY);
    }
}

/// Whether a switch runs for `run_dir`, its TAP and its ports (from
/// `switch.ports`; nothing when no switch holds the pid file).
pub fn status(run_dir: &Path) -> Result<SwitchStatus> {
    let files = SwitchFiles::new(run_dir);
    let pid = match holder(&files.pid())? {
        Holder::Nobody => {
            return Ok(SwitchStatus {
                pid: None,
                tap: None,
                ports: Vec::new(),
            })
        }
        Holder::Backend(pid) => pid,
    };
    let (tap, ports) = read_ports(&files.ports())?;
    Ok(SwitchStatus { pid, tap, ports })
}
