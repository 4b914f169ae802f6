//! Bootable GRUB ISOs of the hypervisor, one per hypervisor command line.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::layout::{check_artifact_name, Layout};

/// GRUB's BIOS platform files (Debian package grub-pc-bin).
pub const GRUB_BIOS_DIR: &str = "/usr/lib/grub/i386-pc";

/// Characters GRUB's script lexer passes through unchanged; anything else
/// (quotes, `$`, `;`, braces, `#`, ...) would be interpreted by GRUB.
fn is_plain_cmdline_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || " =,._:/+-@%".contains(c)
}

pub fn check_cmdline(cmdline: &str) -> Result<()> {
    if let Some(bad) = cmdline.chars().find(|c| !is_plain_cmdline_char(*c)) {
        bail!(
            "hypervisor command line {cmdline:?}: character {bad:?} would be interpreted by GRUB"
        );
    }
    Ok(())
}

pub fn grub_config(cmdline: &str) -> String {
    let kernel_line = format!("multiboot2 /boot/keel.elf {}", cmdline.trim());
    format!(
        "set timeout=0\nset default=0\nmenuentry \"Keel\" {{\n    {}\n    boot\n}}\n",
        kernel_line.trim_end()
    )
}

/// Builds `target/keel/<name>.iso` booting `kernel` with `cmdline`.
pub fn build_iso(layout: &Layout, kernel: &Path, name: &str, cmdline: &str) -> Result<PathBuf> {
    check_artifact_name(name)?;
    check_cmdline(cmdline)?;
    let staging = layout.iso_staging_dir(name);
    if staging.exists() {
        fs::remove_dir_all(&staging)
            .with_context(|| format!("cannot clear {}", staging.display()))?;
    }
    let grub_dir = staging.join("boot").join("grub");
    fs::create_dir_all(&grub_dir)
        .with_context(|| format!("cannot create {}", grub_dir.display()))?;
    fs::copy(kernel, staging.join("boot").join("keel.elf"))
        .with_context(|| format!("cannot copy the hypervisor from {}", kernel.display()))?;
    fs::write(grub_dir.join("grub.cfg"), grub_config(cmdline))?;

    let iso = layout.iso(name);
    // Quiet unless it fails: xorriso reports every step on stderr.
    let output = Command::new("grub-mkrescue")
        .arg("-d")
        .arg(GRUB_BIOS_DIR)
        .arg("-o")
        .arg(&iso)
        .arg(&staging)
        .output()
        .context("cannot run grub-mkrescue")?;
    if !output.status.success() {
        bail!(
            "grub-mkrescue failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(iso)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grub_config_boots_keel_immediately_with_the_cmdline() {
        assert_eq!(
            grub_config("guest=selftest exit=emulator"),
            "set timeout=0\nset default=0\nmenuentry \"Keel\" {\n    \
             multiboot2 /boot/keel.elf guest=selftest exit=emulator\n    boot\n}\n"
        );
    }

    #[test]
    fn empty_cmdline_leaves_no_trailing_space() {
        assert!(grub_config("").contains("    multiboot2 /boot/keel.elf\n"));
    }

    #[test]
    fn cmdline_with_grub_syntax_is_rejected() {
        assert!(check_cmdline("log=debug guest=bench bench-iterations=1000").is_ok());
        for bad in ["a;b", "x=$y", "a\"b", "}", "a\nb", "#c"] {
            assert!(check_cmdline(bad).is_err(), "{bad:?}");
        }
    }
}
