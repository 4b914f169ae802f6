//! The cargo invocations xtask makes, with their output on the terminal.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};
use keel_boot_tests::layout::{DOM0_TOOLS_PACKAGE, DOM0_TOOLS_TARGET, HYPERVISOR_PACKAGE, HYPERVISOR_TARGET};
use keel_boot_tests::Profile;

use crate::say;
use crate::workspace::Workspace;

fn cargo(workspace: &Workspace) -> Command {
    // The cargo that runs xtask, so the pinned toolchain is used.
    let program = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(program);
    command.current_dir(&workspace.root);
    command
}

fn run_visible(mut command: Command, what: &str) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot run cargo for {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

pub fn build_hypervisor(workspace: &Workspace, profile: Profile) -> Result<PathBuf> {
    crate::toolchain::ensure(workspace)?;
    say!("building hypervisor ({} profile)", profile.dir_name());
    let mut command = cargo(workspace);
    command.args(["build", "-p", HYPERVISOR_PACKAGE, "--target", HYPERVISOR_TARGET]);
    if profile == Profile::Release {
        command.arg("--release");
    }
    run_visible(command, "building the hypervisor")?;
    let elf = workspace.layout.hypervisor_elf(profile);
    if !elf.is_file() {
        bail!("cargo reported success but {} does not exist", elf.display());
    }
    Ok(elf)
}

/// Dom0's `keel` tool: a static binary (glibc linked in, no dynamic loader),
/// since Dom0's initramfs has only busybox. With `--target`, RUSTFLAGS apply
/// to the target's code only, not to build scripts and proc macros. The
/// release profile's debug info is stripped: it would only make Dom0's
/// initramfs bigger (symbols stay, so panics still name functions).
pub fn build_dom0_tools(workspace: &Workspace) -> Result<PathBuf> {
    say!("building Dom0's tools ({DOM0_TOOLS_PACKAGE}, static, for {DOM0_TOOLS_TARGET})");
    let mut command = cargo(workspace);
    command
        .args([
            "build",
            "-p",
            DOM0_TOOLS_PACKAGE,
            "--release",
            "--target",
            DOM0_TOOLS_TARGET,
        ])
        .env("RUSTFLAGS", "-C target-feature=+crt-static -C strip=debuginfo")
        // It would take precedence over RUSTFLAGS.
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    run_visible(command, "building Dom0's tools")?;
    let binary = workspace.layout.dom0_tools();
    if !binary.is_file() {
        bail!("cargo reported success but {} does not exist", binary.display());
    }
    Ok(binary)
}

/// The programs the test DomUs run (`guest-tools`): built like Dom0's tool,
/// static for the same target, since the DomU initramfs has only busybox.
pub const GUEST_TOOLS_PACKAGE: &str = "keel-guest-tools";
/// Its load generator (`keel-stress spin|wrmsr ...`).
pub const GUEST_STRESS_BINARY: &str = "keel-stress";

/// Builds `keel-stress` (cargo decides what is stale) as a static binary
/// for the DomU initramfs (`guest::ensure_dom0_images` calls it before
/// making that image); returns its path.
pub fn build_guest_tools(workspace: &Workspace) -> Result<PathBuf> {
    say!("building the DomU test tools ({GUEST_TOOLS_PACKAGE}, static, for {DOM0_TOOLS_TARGET})");
    let mut command = cargo(workspace);
    command
        .args([
            "build",
            "-p",
            GUEST_TOOLS_PACKAGE,
            "--release",
            "--target",
            DOM0_TOOLS_TARGET,
        ])
        // The same flags as Dom0's tool, so neither build invalidates the other.
        .env("RUSTFLAGS", "-C target-feature=+crt-static -C strip=debuginfo")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    run_visible(command, "building the DomU test tools")?;
    let binary = workspace
        .layout
        .target_dir()
        .join(DOM0_TOOLS_TARGET)
        .join(Profile::Release.dir_name())
        .join(GUEST_STRESS_BINARY);
    if !binary.is_file() {
        bail!("cargo reported success but {} does not exist", binary.display());
    }
    Ok(binary)
}

/// Unit tests of every crate, the hypervisor's host-testable library
/// included (its no_std binary has `test = false`).
pub fn test_host_crates(workspace: &Workspace) -> Result<()> {
    say!("running host unit tests (cargo test --workspace)");
    let mut command = cargo(workspace);
    command.args(["test", "--workspace"]);
    run_visible(command, "host unit tests")
}
