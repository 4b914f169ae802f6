//! Starting and stopping backends from `keel create` and
//! `keel destroy` ([`Backends`]; the real one is [`Supervisor`]).
//!
//! A backend is this same binary run as `keel backend <id> --run-dir <dir>
//! --disk <path>,<mode> ... --vif mac=<mac> ...`, in a new session (setsid), stdin and stdout
//! on /dev/null, stderr in `<dir>/backend-<id>.log`. `keel create` boots
//! the domain once the ready file appears; see [`super::runfiles`].

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use keel_abi::mgmt::DomainId;

use super::runfiles::{create_run_dir, holder, DevicesRecord, Holder, ReadyInfo, RunFiles, RUN_DIR};
use crate::config::Disk;
use crate::switch_daemon;
use crate::sys::{new_session_on_exec, send_signal, Signal};
use crate::vif::Nic;

/// A domain's backend as `keel block-list` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendStatus {
    /// Its pid while it runs.
    pub running: Option<i32>,
    /// What its ready file says (also after it died: the disks are still
    /// the domain's).
    pub ready: Option<ReadyInfo>,
}

/// What a domain's backend serves: its disks, then its network interfaces,
/// then its console (device `n` is `disks[n]`, device `disks.len() + m` is
/// `nics[m]`, the console is the last).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendDevices {
    pub disks: Vec<Disk>,
    pub nics: Vec<Nic>,
    /// A virtio console, the last device.
    pub console: bool,
}

impl BackendDevices {
    /// As the run files keep it.
    pub fn record(&self) -> DevicesRecord {
        DevicesRecord {
            disks: self.disks.iter().map(Disk::spec).collect(),
            vifs: self.nics.iter().map(Nic::spec).collect(),
            console: self.console,
        }
    }

    /// Back from the run files.
    pub fn from_record(record: &DevicesRecord) -> Result<Self> {
        let disks = record
            .disks
            .iter()
            .map(|spec| Disk::parse(spec, std::path::Path::new("")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| anyhow::anyhow!("a kept disk: {reason}"))?;
        let nics = record
            .vifs
            .iter()
            .map(|spec| Nic::parse(spec))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| anyhow::anyhow!("a kept interface: {reason}"))?;
        Ok(Self {
            disks,
            nics,
            console: record.console,
        })
    }

    /// Devices in all.
    pub fn count(&self) -> usize {
        self.disks.len() + self.nics.len() + usize::from(self.console)
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }
}

/// What `keel create`, `keel destroy`, `keel block-list` and
/// `keel network-list` need from backends.
pub trait Backends {
    /// Starts domain `id`'s backend for `devices` (and the switch first
    /// when there are interfaces) and returns once it serves them.
    fn start(&mut self, id: DomainId, devices: &BackendDevices) -> Result<()>;
    /// Stops domain `id`'s backend; `false` when none was running.
    fn stop(&mut self, id: DomainId) -> Result<bool>;
    fn status(&mut self, id: DomainId) -> Result<BackendStatus>;
    /// Starts domain `id`'s backend again for what it was last started
    /// with (after it died); refused while one runs.
    fn restart(&mut self, id: DomainId) -> Result<()>;
}

pub struct Supervisor {
    pub run_dir: PathBuf,
    /// The program and the arguments before `backend`: this binary, or a
    /// stand-in in tests.
    pub program: PathBuf,
    pub prefix: Vec<String>,
    pub ready_timeout: Duration,
    /// How long SIGTERM has before SIGKILL, and SIGKILL before giving up.
    pub term_timeout: Duration,
    pub kill_timeout: Duration,
}

const POLL: Duration = Duration::from_millis(20);

impl Supervisor {
    /// This binary, `/run/keel`, 10 s to get ready, 3 s to stop.
    pub fn system() -> Self {
        Self {
            run_dir: PathBuf::from(RUN_DIR),
            program: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe")),
            prefix: Vec::new(),
            ready_timeout: Duration::from_secs(10),
            term_timeout: Duration::from_secs(3),
            kill_timeout: Duration::from_secs(2),
        }
    }

    fn files(&self, id: DomainId) -> RunFiles {
        RunFiles::new(&self.run_dir, id)
    }

    /// The backend's command line.
    pub fn command(&self, id: DomainId, devices: &BackendDevices) -> Command {
        let mut command = Command::new(&self.program);
        command
            .args(&self.prefix)
            .arg("backend")
            .arg(id.to_string())
            .arg("--run-dir")
            .arg(&self.run_dir);
        for disk in &devices.disks {
            command.arg("--disk").arg(disk.spec());
        }
        for nic in &devices.nics {
            command.arg("--vif").arg(nic.spec());
        }
        if devices.console {
            command.arg("--console");
        }
        command
    }

    /// " (the log says: ...; see <log>)" for error messages.
    fn log_note(&self, files: &RunFiles) -> String {
        match files.log_tail(3) {
            tail if tail.is_empty() => format!(" (see {})", files.log().display()),
            tail => format!(": {tail} (see {})", files.log().display()),
        }
    }

    /// Serializes starting, restarting and stopping domain `id`'s backend
    /// (two `keel backend-restart`s, or one racing `keel destroy`): an
    /// exclusive lock on `backend-<id>.lock`, held until dropped.
    fn lock(&self, id: DomainId) -> Result<File> {
        create_run_dir(&self.run_dir)?;
        let path = self.run_dir.join(format!("backend-{id}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        file.lock().with_context(|| format!("cannot lock {}", path.display()))?;
        Ok(file)
    }

    fn start_locked(&mut self, id: DomainId, devices: &BackendDevices) -> Result<()> {
        if !devices.nics.is_empty() {
            switch_daemon::ensure_running(&self.run_dir, &self.program, &self.prefix)
                .context("cannot start the network switch")?;
        }
        let files = self.files(id);
        if let Holder::Backend(pid) = holder(&files.pid())? {
            let pid = pid.map_or_else(|| "?".to_string(), |pid| pid.to_string());
            bail!("a backend (pid {pid}) already serves domain {id}");
        }
        files.remove();
        files.write_devices(&devices.record())?;
        let log = File::create(files.log()).with_context(|| format!("cannot create {}", files.log().display()))?;
        let mut command = self.command(id, devices);
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        new_session_on_exec(&mut command);
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start the backend ({})", self.program.display()))?;
        let deadline = Instant::now() + self.ready_timeout;
        loop {
            if files.ready().exists() {
                // Not waited for: it outlives this process (init reaps it).
                return Ok(());
            }
            if let Some(status) = child.try_wait()? {
                files.remove();
                bail!(
                    "the backend exited before it was ready ({status}){}",
                    self.log_note(&files)
                );
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                files.remove();
                bail!(
                    "the backend was not ready after {} s{}",
                    self.ready_timeout.as_secs_f64(),
                    self.log_note(&files)
                );
            }
            std::thread::sleep(POLL);
        }
    }

    fn stop_locked(&mut self, id: DomainId) -> Result<bool> {
        let files = self.files(id);
        let mut pid = match holder(&files.pid())? {
            Holder::Nobody => {
                // Files a dead backend left, if any.
                files.remove();
                let _ = std::fs::remove_file(files.devices());
                return Ok(false);
            }
            Holder::Backend(pid) => pid,
        };
        // Locked but empty: the backend is just starting; give it a moment.
        let deadline = Instant::now() + Duration::from_secs(1);
        while pid.is_none() && Instant::now() < deadline {
            std::thread::sleep(POLL);
            match holder(&files.pid())? {
                Holder::Nobody => return Ok(false),
                Holder::Backend(now) => pid = now,
            }
        }
        let Some(pid) = pid else {
            bail!("{} is locked but holds no pid", files.pid().display());
        };
        // ESRCH: it exited meanwhile; the wait below confirms.
        let _ = send_signal(pid, Signal::Term);
        if !self.wait_gone(&files, self.term_timeout)? {
            let _ = send_signal(pid, Signal::Kill);
            if !self.wait_gone(&files, self.kill_timeout)? {
                bail!("the backend of domain {id} (pid {pid}) does not exit");
            }
        }
        files.remove();
        let _ = std::fs::remove_file(files.devices());
        Ok(true)
    }

    /// Waits until nobody holds the pid file; false if `timeout` passed.
    fn wait_gone(&self, files: &RunFiles, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            if holder(&files.pid())? == Holder::Nobody {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Backends for Supervisor {
    fn start(&mut self, id: DomainId, devices: &BackendDevices) -> Result<()> {
        let _serialized = self.lock(id)?;
        self.start_locked(id, devices)
    }

    fn stop(&mut self, id: DomainId) -> Result<bool> {
        let _serialized = self.lock(id)?;
        self.stop_locked(id)
    }

    fn restart(&mut self, id: DomainId) -> Result<()> {
        let _serialized = self.lock(id)?;
        let files = self.files(id);
        if let Holder::Backend(pid) = holder(&files.pid())? {
            let pid = pid.map_or_else(|| "?".to_string(), |pid| pid.to_string());
            bail!("a backend (pid {pid}) already serves domain {id}");
        }
        let Some(record) = files.read_devices()? else {
            bail!("no backend was started for domain {id}: nothing to restart");
        };
        self.start_locked(id, &BackendDevices::from_record(&record)?)
    }
    fn status(&mut self, id: DomainId) -> Result<BackendStatus> {
        let files = self.files(id);
        let running = match holder(&files.pid())? {
            Holder::Nobody => None,
            Holder::Backend(pid) => pid,
        };
        Ok(BackendStatus {
            running,
            ready: files.read_ready()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const FLOCK: &str = "/usr/bin/flock";

    /// A supervisor whose "backend" is `sh -c script`: `$1` is `backend`,
    /// `$2` the domain id, `$4` the run directory.
    fn supervisor(name: &str, script: &str) -> Supervisor {
        let dir = std::env::temp_dir().join(format!("keel-tools-supervisor-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Supervisor {
            run_dir: dir,
            program: PathBuf::from("/bin/sh"),
            prefix: vec!["-c".into(), script.into(), "keel".into()],
            ready_timeout: Duration::from_secs(5),
            term_timeout: Duration::from_millis(500),
            kill_timeout: Duration::from_secs(2),
        }
    }

    /// Locks the pid file as the backend does, writes the pid and the
    /// ready file, then sleeps as that same process (`exec` keeps fd 9).
    const SERVING: &str = "exec 9>>\"$4/backend-$2.pid\"; /usr/bin/flock -x 9; echo $$ > \"$4/backend-$2.pid\"; \
        echo '{\"domain\":'$2',\"pid\":'$$',\"slot\":0,\"notifications\":\"polling\",\"disks\":[]}' \
        > \"$4/backend-$2.ready\"; exec sleep 30";

    fn disks() -> BackendDevices {
        BackendDevices {
            disks: vec![
                Disk::parse("/srv/root.img,rw", Path::new("")).unwrap(),
                Disk::parse("/srv/a,b.iso,ro", Path::new("")).unwrap(),
            ],
            nics: Vec::new(),
            console: false,
        }
    }

    #[test]
    fn the_command_line_names_the_domain_the_run_dir_each_disk_and_each_interface() {
        let supervisor = Supervisor {
            program: PathBuf::from("/usr/sbin/keel"),
            prefix: Vec::new(),
            ..supervisor("command", "")
        };
        let mut devices = disks();
        devices.nics.push(Nic::parse("mac=02:4b:45:00:00:0a,mtu=9000").unwrap());
        devices.console = true;
        let command = supervisor.command(5, &devices);
        assert_eq!(command.get_program(), "/usr/sbin/keel");
        let args: Vec<_> = command.get_args().map(|arg| arg.to_str().unwrap()).collect();
        let dir = supervisor.run_dir.to_str().unwrap();
        assert_eq!(
            args,
            [
                "backend",
                "5",
                "--run-dir",
                dir,
                "--disk",
                "/srv/root.img,rw",
                "--disk",
                "/srv/a,b.iso,ro",
                "--vif",
                "mac=02:4b:45:00:00:0a,mtu=9000",
                "--console"
            ]
        );
    }

    fn session_of(pid: i32) -> i32 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        // pid (comm) state ppid pgrp session ...
        let fields: Vec<_> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
        fields[3].parse().unwrap()
    }

    #[test]
    fn a_backend_starts_detached_and_stops_on_sigterm() {
        if !Path::new(FLOCK).exists() {
            eprintln!("skipped: no {FLOCK}");
            return;
        }
        let mut supervisor = supervisor("term", SERVING);
        supervisor.start(3, &disks()).unwrap();
        let status = supervisor.status(3).unwrap();
        let pid = status.running.expect("running");
        assert_eq!(status.ready.unwrap().pid, pid as u32);
        assert_eq!(session_of(pid), pid, "setsid");
        // A second start for the same domain is refused.
        assert!(supervisor
            .start(3, &disks())
            .unwrap_err()
            .to_string()
            .starts_with("a backend (pid "));
        let started = Instant::now();
        assert!(supervisor.stop(3).unwrap());
        assert!(started.elapsed() < Duration::from_millis(500), "SIGTERM was enough");
        let files = supervisor.files(3);
        assert!(!files.pid().exists() && !files.ready().exists());
        assert!(files.log().exists(), "the log stays");
        // Stopping again: nothing runs, not an error.
        assert!(!supervisor.stop(3).unwrap());
        assert_eq!(
            supervisor.status(3).unwrap(),
            BackendStatus {
                running: None,
                ready: None
            }
        );
        std::fs::remove_dir_all(&supervisor.run_dir).unwrap();
    }

    #[test]
    fn a_dead_backend_is_restarted_with_what_it_served() {
        if !Path::new(FLOCK).exists() {
            eprintln!("skipped: no {FLOCK}");
            return;
        }
        let mut supervisor = supervisor("restart", SERVING);
        assert_eq!(
            supervisor.restart(9).unwrap_err().to_string(),
            "no backend was started for domain 9: nothing to restart"
        );
        let mut devices = disks();
        devices.console = true;
        supervisor.start(9, &devices).unwrap();
        assert!(supervisor
            .restart(9)
            .unwrap_err()
            .to_string()
            .starts_with("a backend (pid "));
        // It dies without a word (SIGKILL leaves its files behind).
        let pid = supervisor.status(9).unwrap().running.unwrap();
        send_signal(pid, Signal::Kill).unwrap();
        let files = supervisor.files(9);
        assert!(supervisor.wait_gone(&files, Duration::from_secs(5)).unwrap());
        assert_eq!(
            files.read_devices().unwrap(),
            Some(DevicesRecord {
                disks: vec!["/srv/root.img,rw".into(), "/srv/a,b.iso,ro".into()],
                vifs: Vec::new(),
                console: true
            })
        );
        supervisor.restart(9).unwrap();
        let again = supervisor.status(9).unwrap().running.unwrap();
        assert_ne!(again, pid);
        // Stopping forgets what it served: nothing to restart after destroy.
        assert!(supervisor.stop(9).unwrap());
        assert!(!files.devices().exists());
        std::fs::remove_dir_all(&supervisor.run_dir).unwrap();
    }

    #[test]
    fn concurrent_restarts_leave_one_backend_holding_its_pid_file() {
        if !Path::new(FLOCK).exists() {
            eprintln!("skipped: no {FLOCK}");
            return;
        }
        // A slow starter: the window in which a second start used to
        // remove the first one's files.
        let slow = format!("sleep 0.3; {SERVING}");
        let mut main = supervisor("race", &slow);
        main.start(7, &disks()).unwrap();
        let pid = main.status(7).unwrap().running.unwrap();
        send_signal(pid, Signal::Kill).unwrap();
        let files = main.files(7);
        assert!(main.wait_gone(&files, Duration::from_secs(5)).unwrap());
        let threads: Vec<_> = (0..2)
            .map(|_| {
                // Another `keel` process: the same files, its own state.
                let mut twin = Supervisor {
                    run_dir: main.run_dir.clone(),
                    program: main.program.clone(),
                    prefix: main.prefix.clone(),
                    ..supervisor("unused", "")
                };
                std::thread::spawn(move || twin.restart(7).map_err(|error| error.to_string()))
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|thread| thread.join().unwrap()).collect();
        assert_eq!(results.iter().filter(|result| result.is_ok()).count(), 1, "{results:?}");
        assert!(results
            .iter()
            .any(|result| result.as_ref().is_err_and(|error| error.starts_with("a backend (pid "))));
        // The survivor is listed, through a pid file that is really there.
        assert!(main.status(7).unwrap().running.is_some(), "one backend runs");
        assert!(files.pid().exists());
        assert!(main.stop(7).unwrap());
        assert_eq!(holder(&files.pid()).unwrap(), Holder::Nobody);
        std::fs::remove_dir_all(&main.run_dir).unwrap();
    }

    #[test]
    fn a_backend_ignoring_sigterm_gets_sigkill() {
        if !Path::new(FLOCK).exists() {
            eprintln!("skipped: no {FLOCK}");
            return;
        }
        let mut supervisor = supervisor("kill", &format!("trap '' TERM; {SERVING}"));
        supervisor.start(4, &BackendDevices::default()).unwrap();
        let started = Instant::now();
        assert!(supervisor.stop(4).unwrap());
        assert!(started.elapsed() >= supervisor.term_timeout);
        assert_eq!(supervisor.status(4).unwrap().running, None);
        std::fs::remove_dir_all(&supervisor.run_dir).unwrap();
    }

    #[test]
    fn a_backend_that_fails_reports_its_log() {
        let mut supervisor = supervisor("fail", "echo 'keel: cannot map window slot 0' >&2; exit 1");
        let error = supervisor.start(6, &disks()).unwrap_err().to_string();
        let log = supervisor.files(6).log();
        assert_eq!(
            error,
            format!(
                "the backend exited before it was ready (exit status: 1): keel: cannot map window slot 0 (see {})",
                log.display()
            )
        );
        std::fs::remove_dir_all(&supervisor.run_dir).unwrap();
    }

    #[test]
    fn a_backend_that_never_gets_ready_is_killed() {
        let mut supervisor = supervisor("slow", "echo starting >&2; exec sleep 30");
        supervisor.ready_timeout = Duration::from_millis(300);
        let error = supervisor.start(7, &BackendDevices::default()).unwrap_err().to_string();
        assert!(
            error.starts_with("the backend was not ready after 0.3 s: starting (see "),
            "{error}"
        );
        std::fs::remove_dir_all(&supervisor.run_dir).unwrap();
    }

    #[test]
    fn stale_files_of_a_dead_backend_are_nobodys() {
        let mut supervisor = supervisor("stale", "");
        let files = supervisor.files(8);
        create_run_dir(&supervisor.run_dir).unwrap();
        std::fs::write(files.pid(), "999999\n").unwrap();
        std::fs::write(
            files.ready(),
            "{\"domain\":8,\"pid\":999999,\"slot\":0,\"notifications\":\"uio\",\"disks\":[]}",
        )
        .unwrap();
        let status = supervisor.status(8).unwrap();
        assert_eq!((status.running, status.ready.unwrap().pid), (None, 999999));
        assert!(!supervisor.stop(8).unwrap());
        assert!(!files.pid().exists() && !files.ready().exists());
        std::fs::remove_dir_all(&supervisor.run_dir).unwrap();
    }
}
