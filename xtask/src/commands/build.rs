//! `cargo xtask build`

use anyhow::Result;
use keel_boot_tests::Profile;

use crate::workspace::Workspace;
use crate::{cargo, say};

pub fn profile(debug: bool) -> Profile {
    if debug {
        Profile::Debug
    } else {
        Profile::Release
    }
}

pub fn run(workspace: &Workspace, debug: bool) -> Result<()> {
    let elf = cargo::build_hypervisor(workspace, profile(debug))?;
    say!("hypervisor ELF: {}", elf.display());
    Ok(())
}
