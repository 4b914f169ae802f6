//! `keel-stress`; see the library's documentation for the modes.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use keel_guest_tools::{open_msr_device, parse, spin, wrmsr_loop, Mode, MSR_DEVICE, USAGE};

mod hostile_ops;
mod intx_ops;
mod mapped;
mod virtio_hostile_ops;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = match parse(&args) {
        Ok(mode) => mode,
        Err(error) => {
            eprintln!("keel-stress: {error}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Each line is written whole and at once: the console is a serial port
    // that other output shares.
    let say = |line: String| {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{line}");
        let _ = stdout.flush();
    };
    match mode {
        Mode::Spin { duration } => {
            say(format!(
                "keel-stress: spinning ({})",
                forever_or(duration.map(|d| format!("{} s", d.as_secs())))
            ));
            let iterations = spin(duration);
            say(format!("keel-stress: spun {iterations} iterations"));
        }
        Mode::Wrmsr { msr, count, value } => {
            let device = match open_msr_device(Path::new(MSR_DEVICE)) {
                Ok(device) => device,
                Err(error) => {
                    eprintln!("keel-stress: cannot open {MSR_DEVICE} (is msr.ko loaded?): {error}");
                    return ExitCode::FAILURE;
                }
            };
            say(format!(
                "keel-stress: writing {value} to MSR {msr:#x} ({})",
                forever_or(count.map(|count| format!("{count} times")))
            ));
            match wrmsr_loop(&device, msr, count, value) {
                Ok(written) => say(format!("keel-stress: wrote MSR {msr:#x} {written} times")),
                Err(error) => {
                    eprintln!("keel-stress: writing MSR {msr:#x} through {MSR_DEVICE}: {error}");
                    return ExitCode::FAILURE;
                }
            }
        }
        Mode::Hostile(options) => {
            if !hostile_ops::run(options, &say) {
                return ExitCode::FAILURE;
            }
        }
        Mode::Intx(options) => {
            if !intx_ops::run(&options, &say) {
                return ExitCode::FAILURE;
            }
        }
        Mode::VirtioHostile(options) => {
            if !virtio_hostile_ops::run(&options, &say) {
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

fn forever_or(limit: Option<String>) -> String {
    limit.unwrap_or_else(|| "forever".to_string())
}
