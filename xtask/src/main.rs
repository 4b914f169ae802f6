//! `cargo xtask <command>`: build, package, boot, test and benchmark Keel.

mod cargo;
mod cli;
mod commands;
mod console;
mod guest;
mod host_kvm;
mod prerequisites;
mod toolchain;
mod workspace;

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use clap::Parser;
use keel_boot_tests::Dom0Modules;

use cli::{Cli, Command};

/// Progress lines go to stderr so stdout carries only results (bench output
/// can be redirected as is).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => { eprintln!("xtask: {}", format_args!($($arg)*)) };
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    install_ctrl_c_handler();
    let workspace = workspace::Workspace::locate();
    let result = match cli.command {
        Command::Build { debug } => commands::build::run(&workspace, debug),
        Command::Iso {
            cmdline,
            dom0,
            linux_cmdline,
            out,
            debug,
        } => {
            let dom0 = dom0.then(|| Dom0Modules::with_linux_cmdline(&linux_cmdline));
            commands::iso::run(&workspace, &cmdline, dom0.as_ref(), out.as_deref(), debug)
        }
        Command::Run {
            emulator,
            cmdline,
            no_dom0,
            linux_cmdline,
            debug,
        } => {
            let dom0 = (!no_dom0).then(|| Dom0Modules::with_linux_cmdline(&linux_cmdline));
            commands::run::run(&workspace, emulator, cmdline, dom0.as_ref(), debug)
        }
        Command::Test {
            filter,
            no_host,
            no_fuzz,
        } => commands::test::run(&workspace, filter.as_deref(), no_host, no_fuzz),
        Command::Fuzz {
            target,
            all,
            seconds,
            reproduce,
        } => commands::fuzz::run(&workspace, target.as_deref(), all, seconds, reproduce.as_deref()),
        Command::Bench { benchmark } => commands::bench::run(&workspace, benchmark),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// First Ctrl-C: ask every running emulator watch to stop, so emulators are
/// killed and reported. Second: exit at once (the emulators die with us
/// through PR_SET_PDEATHSIG).
fn install_ctrl_c_handler() {
    static PRESSES: AtomicUsize = AtomicUsize::new(0);
    let installed = ctrlc::set_handler(|| {
        if PRESSES.fetch_add(1, Ordering::SeqCst) == 0 {
            keel_boot_tests::interrupt::request_stop();
            say!("stopping (Ctrl-C again to quit at once)");
        } else {
            std::process::exit(130);
        }
    });
    if let Err(error) = installed {
        say!("warning: no Ctrl-C handler ({error}); emulators may outlive an interrupt");
    }
}
