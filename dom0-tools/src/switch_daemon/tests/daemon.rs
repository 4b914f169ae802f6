//! The daemon as a process: `ensure_running`, `status`, `run`, its
//! arguments. The switch process is this test binary running
//! [`stand_in_switch`], which calls the real [`run`].

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;

use super::*;
use crate::backend::runfiles::{holder, Holder};
use crate::switch_daemon::files::{SwitchFiles, SwitchLock};
use crate::switch_daemon::{ensure_running_within, run, status, SwitchArgs, SwitchStatus, DEFAULT_TAP};
use crate::sys::{send_signal, Signal};

const STAND_IN: &str = "switch_daemon::tests::daemon::stand_in_switch";

/// Not a test: the switch process `ensure_running` starts in
/// [`ensure_running_starts_one_switch_that_stops_on_sigterm`], run as
/// `<test binary> --ignored --exact STAND_IN --nocapture -- switch
/// --run-dir DIR` (libtest takes what follows `--` as more filters).
#[test]
#[ignore = "the switch process of another test"]
fn stand_in_switch() {
    let args: Vec<String> = std::env::args().collect();
    let Some(at) = args.iter().position(|arg| arg == "--run-dir") else {
        return;
    };
    let Some(dir) = args.get(at + 1) else {
        return;
    };
    // Never outlive a failed test by long.
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(60));
        std::process::exit(3);
    });
    let args = SwitchArgs {
        run_dir: PathBuf::from(dir),
        tap: DEFAULT_TAP.into(),
        no_tap: true,
    };
    run(&args, &mut std::io::stderr()).unwrap();
}

fn this_binary() -> (PathBuf, Vec<String>) {
    let prefix = ["--ignored", "--exact", STAND_IN, "--nocapture", "--"];
    (
        std::env::current_exe().unwrap(),
        prefix.iter().map(|arg| arg.to_string()).collect(),
    )
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ensure_running_starts_one_switch_that_stops_on_sigterm() {
    let dir = scratch("daemon");
    let files = SwitchFiles::new(&dir);
    let (program, prefix) = this_binary();
    let pid = ensure_running_within(&dir, &program, &prefix, Duration::from_secs(10)).unwrap();
    assert_ne!(pid, std::process::id() as i32);
    assert_eq!(holder(&files.pid()).unwrap(), Holder::Backend(Some(pid)));
    // Running: the same one answers, nothing is started.
    let again = ensure_running_within(&dir, std::path::Path::new("/nonexistent"), &[], Duration::from_secs(5));
    assert_eq!(again.unwrap(), pid);
    wait_for("the ports file", || {
        status(&dir).unwrap()
            == SwitchStatus {
                pid: Some(pid),
                tap: None,
                ports: vec![],
            }
            && files.ports().exists()
    });
    let mut a = SwitchPort::connect(&dir, 4, 1, A).unwrap();
    let mut b = SwitchPort::connect(&dir, 5, 0, B).unwrap();
    wait_for("two ports", || status(&dir).unwrap().ports.len() == 2);
    let ports = status(&dir).unwrap().ports;
    assert_eq!((ports[0].domain, ports[0].device, ports[0].mac), (4, 1, A));
    assert_eq!((ports[1].domain, ports[1].device, ports[1].mac), (5, 0, B));
    assert!(a.send(&frame(BROADCAST, A, 9, 60)).unwrap());
    let mut buffer = [0; 128];
    wait_for("the frame", || b.recv(&mut buffer).unwrap() == Some(60));
    assert_eq!(buffer[..60], frame(BROADCAST, A, 9, 60));
    send_signal(pid, Signal::Term).unwrap();
    wait_for("the switch to exit", || holder(&files.pid()).unwrap() == Holder::Nobody);
    assert!(!files.socket().exists() && !files.ports().exists() && !files.pid().exists());
    assert_eq!(status(&dir).unwrap().pid, None);
    let log = std::fs::read_to_string(files.log()).unwrap();
    assert!(log.contains("keel switch: listening at "), "{log}");
    assert!(
        log.contains("port 1: domain 4 device 1 (02:00:00:00:00:0a) connected"),
        "{log}"
    );
    assert!(
        log.contains(
            "port 2: domain 5 device 0 (02:00:00:00:00:0b) gone: the switch stops; received 0 frames, sent 1;"
        ),
        "{log}"
    );
    assert!(log.contains("keel switch: stopped by a signal; exiting"), "{log}");
    // The ports find out at their next read.
    assert_eq!(a.recv(&mut buffer).unwrap(), None);
    assert!(!a.is_connected());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_running_switch_is_used_not_started_again() {
    let dir = scratch("running");
    let files = SwitchFiles::new(&dir);
    let lock = SwitchLock::acquire(&files).unwrap();
    let mut server = server(&dir);
    // Anything started would fail: /nonexistent cannot run.
    let pid = ensure_running_within(&dir, std::path::Path::new("/nonexistent"), &[], Duration::from_secs(5));
    assert_eq!(pid.unwrap(), std::process::id() as i32);
    let _a = connect(&dir, 3, A);
    let mut log = Vec::new();
    pump(&mut server, &mut log);
    let now = status(&dir).unwrap();
    assert_eq!(now.pid, Some(std::process::id() as i32));
    assert_eq!((now.ports.len(), now.ports[0].domain, now.tap), (1, 3, None));
    drop(server);
    drop(lock);
    assert_eq!(status(&dir).unwrap().pid, None);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_switch_that_fails_to_start_reports_its_log() {
    let dir = scratch("fail");
    let shell = |script: &str| vec!["-c".to_string(), script.to_string(), "keel".to_string()];
    std::fs::write(dir.join("switch.log"), "an older run's line\n").unwrap();
    let error = ensure_running_within(
        &dir,
        std::path::Path::new("/bin/sh"),
        &shell("echo \"keel: $1 $2 $3\" >&2; exit 1"),
        Duration::from_secs(5),
    )
    .unwrap_err()
    .to_string();
    let log = dir.join("switch.log");
    assert_eq!(
        error,
        format!(
            "the switch exited before it was ready (exit status: 1): keel: switch --run-dir {} (see {})",
            dir.display(),
            log.display()
        )
    );
    let error = ensure_running_within(
        &dir,
        std::path::Path::new("/bin/sh"),
        &shell("echo starting >&2; exec sleep 30"),
        Duration::from_millis(300),
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.starts_with("the switch was not ready after 0.3 s: starting (see "),
        "{error}"
    );
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .starts_with("an older run's line\n"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[derive(Debug, Parser)]
struct Command {
    #[command(flatten)]
    args: SwitchArgs,
}

#[test]
fn arguments_default_to_the_run_dir_and_keel0() {
    let parse = |line: &[&str]| Command::try_parse_from([&["keel-switch"], line].concat()).map(|command| command.args);
    assert_eq!(
        parse(&[]).unwrap(),
        SwitchArgs {
            run_dir: PathBuf::from("/run/keel"),
            tap: "keel0".into(),
            no_tap: false,
        }
    );
    let args = parse(&["--run-dir", "/tmp/x", "--no-tap"]).unwrap();
    assert_eq!((args.run_dir, args.no_tap), (PathBuf::from("/tmp/x"), true));
    assert_eq!(parse(&["--tap", "dom0"]).unwrap().tap, "dom0");
    assert!(parse(&["--tap", "dom0", "--no-tap"]).is_err());
    // A bad name is refused before anything is touched.
    let bad = SwitchArgs {
        run_dir: PathBuf::from("/nonexistent/keel"),
        tap: "no/slash".into(),
        no_tap: false,
    };
    let error = run(&bad, &mut Vec::new()).unwrap_err().to_string();
    assert_eq!(error, "--tap no/slash: not a valid interface name");
}
