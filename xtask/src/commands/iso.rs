//! `cargo xtask iso`

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use keel_boot_tests::iso::{build_boot_iso, BootEntry};
use keel_boot_tests::Dom0Modules;

use crate::commands::build::profile;
use crate::workspace::Workspace;
use crate::{cargo, guest, prerequisites, say};

/// The ISO `iso` and `run` build: `target/keel/keel.iso`.
const ISO_NAME: &str = "keel";

/// Builds the hypervisor and the ISO booting it with `cmdline`, carrying
/// Dom0's kernel and initramfs as modules when `dom0` is given (fetched and
/// built first if needed).
pub fn build(workspace: &Workspace, cmdline: &str, dom0: Option<&Dom0Modules>, debug: bool) -> Result<PathBuf> {
    prerequisites::ensure(&[prerequisites::ISO_TOOLS])?;
    let modules = match dom0 {
        Some(dom0) => {
            guest::ensure_dom0_images(workspace)?;
            dom0.iso_modules(&workspace.layout)?
        }
        None => Vec::new(),
    };
    let elf = cargo::build_hypervisor(workspace, profile(debug))?;
    say!(
        "building ISO {ISO_NAME} (cmdline {cmdline:?}{})",
        match dom0 {
            Some(dom0) => format!(", Dom0 command line {:?}", dom0.linux_cmdline),
            None => String::new(),
        }
    );
    let entry = BootEntry::Keel {
        hypervisor: &elf,
        cmdline,
        modules: &modules,
    };
    build_boot_iso(&workspace.layout, ISO_NAME, &entry)
}

pub fn run(
    workspace: &Workspace,
    cmdline: &str,
    dom0: Option<&Dom0Modules>,
    out: Option<&Path>,
    debug: bool,
) -> Result<()> {
    let iso = build(workspace, cmdline, dom0, debug)?;
    let iso = match out {
        Some(out) => {
            fs::copy(&iso, out).with_context(|| format!("cannot copy the ISO to {}", out.display()))?;
            out.to_path_buf()
        }
        None => iso,
    };
    say!("ISO: {}", iso.display());
    Ok(())
}
