//! `cargo xtask iso`

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use keel_boot_tests::iso::build_iso;

use crate::commands::build::profile;
use crate::workspace::Workspace;
use crate::{cargo, prerequisites, say};

/// The ISO `iso` and `run` build: `target/keel/keel.iso`.
const ISO_NAME: &str = "keel";

/// Builds the hypervisor and the ISO booting it with `cmdline`.
pub fn build(workspace: &Workspace, cmdline: &str, debug: bool) -> Result<PathBuf> {
    prerequisites::ensure(&[prerequisites::ISO_TOOLS])?;
    let elf = cargo::build_hypervisor(workspace, profile(debug))?;
    say!("building ISO {ISO_NAME} (cmdline {cmdline:?})");
    build_iso(&workspace.layout, &elf, ISO_NAME, cmdline)
}

pub fn run(workspace: &Workspace, cmdline: &str, out: Option<&Path>, debug: bool) -> Result<()> {
    let iso = build(workspace, cmdline, debug)?;
    let iso = match out {
        Some(out) => {
            fs::copy(&iso, out)
                .with_context(|| format!("cannot copy the ISO to {}", out.display()))?;
            out.to_path_buf()
        }
        None => iso,
    };
    say!("ISO: {}", iso.display());
    Ok(())
}
