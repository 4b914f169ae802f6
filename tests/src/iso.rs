//! Bootable GRUB ISOs: Keel with its command line and optional multiboot2
//! modules (Dom0's kernel and initramfs), or Linux alone for comparisons.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::case::TestCase;
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
        bail!("command line {cmdline:?}: character {bad:?} would be interpreted by GRUB");
    }
    Ok(())
}

/// A file GRUB loads as a multiboot2 module for Keel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsoModule {
    /// Its name under `/boot` on the ISO.
    pub file_name: String,
    /// The file on this machine.
    pub source: PathBuf,
    /// The module's command line (Keel reads its role from the first word).
    pub cmdline: String,
}

/// What the ISO's single GRUB menu entry boots.
#[derive(Debug, Clone, Copy)]
pub enum BootEntry<'a> {
    /// Keel through multiboot2, with its command line and modules.
    Keel {
        hypervisor: &'a Path,
        cmdline: &'a str,
        modules: &'a [IsoModule],
    },
    /// A Linux kernel and initramfs with no hypervisor: the bare-metal
    /// baseline of `bench boot`.
    Linux {
        kernel: &'a Path,
        initrd: &'a Path,
        cmdline: &'a str,
    },
}

const HYPERVISOR_FILE: &str = "keel.elf";
const LINUX_KERNEL_FILE: &str = "dom0-kernel";
const LINUX_INITRD_FILE: &str = "dom0-initrd";

/// `command /boot/<file> <arguments>`, with no trailing space when there
/// are no arguments.
fn boot_line(command: &str, file: &str, arguments: &str) -> String {
    format!("{command} /boot/{file} {}", arguments.trim())
        .trim_end()
        .to_string()
}

pub fn grub_config(entry: &BootEntry<'_>) -> String {
    let (title, lines) = match entry {
        BootEntry::Keel { cmdline, modules, .. } => {
            let mut lines = vec![boot_line("multiboot2", HYPERVISOR_FILE, cmdline)];
            // GRUB would otherwise hand over a gzip file (the initramfs)
            // decompressed: Keel gets each module exactly as on the ISO.
            lines.extend(
                modules
                    .iter()
                    .map(|module| boot_line("module2 --nounzip", &module.file_name, &module.cmdline)),
            );
            ("Keel", lines)
        }
        BootEntry::Linux { cmdline, .. } => (
            "Linux",
            vec![
                boot_line("linux", LINUX_KERNEL_FILE, cmdline),
                boot_line("initrd", LINUX_INITRD_FILE, ""),
            ],
        ),
    };
    let mut config = format!("set timeout=0\nset default=0\nmenuentry \"{title}\" {{\n");
    for line in lines.iter().map(String::as_str).chain(["boot"]) {
        config.push_str("    ");
        config.push_str(line);
        config.push('\n');
    }
    config.push_str("}\n");
    config
}

/// Every file the entry puts under `/boot`, as (name on the ISO, source);
/// checks every command line and file name on the way.
fn boot_files<'a>(entry: &BootEntry<'a>) -> Result<Vec<(&'a str, &'a Path)>> {
    match entry {
        BootEntry::Keel {
            hypervisor,
            cmdline,
            modules,
        } => {
            check_cmdline(cmdline)?;
            let mut files = vec![(HYPERVISOR_FILE, *hypervisor)];
            for module in modules.iter() {
                check_artifact_name(&module.file_name)?;
                check_cmdline(&module.cmdline)?;
                if files.iter().any(|(name, _)| *name == module.file_name) {
                    bail!("two modules named {:?}", module.file_name);
                }
                files.push((module.file_name.as_str(), module.source.as_path()));
            }
            Ok(files)
        }
        BootEntry::Linux {
            kernel,
            initrd,
            cmdline,
        } => {
            check_cmdline(cmdline)?;
            Ok(vec![(LINUX_KERNEL_FILE, *kernel), (LINUX_INITRD_FILE, *initrd)])
        }
    }
}

/// Builds `target/keel/<name>.iso` booting `kernel` with `cmdline`.
pub fn build_iso(layout: &Layout, kernel: &Path, name: &str, cmdline: &str) -> Result<PathBuf> {
    let entry = BootEntry::Keel {
        hypervisor: kernel,
        cmdline,
        modules: &[],
    };
    build_boot_iso(layout, name, &entry)
}

/// Builds the ISO of a boot test: `hypervisor` with the case's command line
/// and, for Dom0 tests, its kernel and initramfs modules (which must have
/// been fetched and built).
pub fn build_case_iso(layout: &Layout, hypervisor: &Path, case: &TestCase) -> Result<PathBuf> {
    let modules = match &case.dom0 {
        Some(dom0) => dom0.iso_modules(layout)?,
        None => Vec::new(),
    };
    let entry = BootEntry::Keel {
        hypervisor,
        cmdline: case.cmdline,
        modules: &modules,
    };
    build_boot_iso(layout, case.name, &entry)
}

/// Builds `target/keel/<name>.iso` whose GRUB boots `entry` at once.
pub fn build_boot_iso(layout: &Layout, name: &str, entry: &BootEntry<'_>) -> Result<PathBuf> {
    check_artifact_name(name)?;
    let files = boot_files(entry)?;
    let staging = layout.iso_staging_dir(name);
    if staging.exists() {
        fs::remove_dir_all(&staging).with_context(|| format!("cannot clear {}", staging.display()))?;
    }
    let grub_dir = staging.join("boot").join("grub");
    fs::create_dir_all(&grub_dir).with_context(|| format!("cannot create {}", grub_dir.display()))?;
    for (file_name, source) in files {
        fs::copy(source, staging.join("boot").join(file_name))
            .with_context(|| format!("cannot copy {} into the ISO", source.display()))?;
    }
    fs::write(grub_dir.join("grub.cfg"), grub_config(entry))?;

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

    fn keel(cmdline: &str) -> String {
        grub_config(&BootEntry::Keel {
            hypervisor: Path::new("/h"),
            cmdline,
            modules: &[],
        })
    }

    #[test]
    fn grub_config_boots_keel_immediately_with_the_cmdline() {
        assert_eq!(
            keel("guest=selftest exit=emulator"),
            "set timeout=0\nset default=0\nmenuentry \"Keel\" {\n    \
             multiboot2 /boot/keel.elf guest=selftest exit=emulator\n    boot\n}\n"
        );
    }

    #[test]
    fn empty_cmdline_leaves_no_trailing_space() {
        assert!(keel("").contains("    multiboot2 /boot/keel.elf\n"));
    }

    fn dom0_modules() -> Vec<IsoModule> {
        vec![
            IsoModule {
                file_name: "dom0-kernel".to_string(),
                source: PathBuf::from("/t/guest/vmlinuz"),
                cmdline: "dom0-kernel console=ttyS0 keel.test=1".to_string(),
            },
            IsoModule {
                file_name: "dom0-initrd".to_string(),
                source: PathBuf::from("/t/guest/dom0-initrd.gz"),
                cmdline: "dom0-initrd".to_string(),
            },
        ]
    }

    #[test]
    fn modules_follow_the_hypervisor_line_in_order() {
        let modules = dom0_modules();
        let config = grub_config(&BootEntry::Keel {
            hypervisor: Path::new("/h"),
            cmdline: "guest=dom0 exit=emulator",
            modules: &modules,
        });
        assert_eq!(
            config,
            "set timeout=0\nset default=0\nmenuentry \"Keel\" {\n    \
             multiboot2 /boot/keel.elf guest=dom0 exit=emulator\n    \
             module2 --nounzip /boot/dom0-kernel dom0-kernel console=ttyS0 keel.test=1\n    \
             module2 --nounzip /boot/dom0-initrd dom0-initrd\n    \
             boot\n}\n"
        );
    }

    #[test]
    fn linux_entry_boots_the_kernel_with_its_initrd() {
        let config = grub_config(&BootEntry::Linux {
            kernel: Path::new("/k"),
            initrd: Path::new("/i"),
            cmdline: "console=ttyS0 keel.test=1",
        });
        assert_eq!(
            config,
            "set timeout=0\nset default=0\nmenuentry \"Linux\" {\n    \
             linux /boot/dom0-kernel console=ttyS0 keel.test=1\n    \
             initrd /boot/dom0-initrd\n    \
             boot\n}\n"
        );
    }

    #[test]
    fn every_boot_file_is_staged_under_its_iso_name() {
        let modules = dom0_modules();
        let entry = BootEntry::Keel {
            hypervisor: Path::new("/h"),
            cmdline: "",
            modules: &modules,
        };
        assert_eq!(
            boot_files(&entry).unwrap(),
            [
                ("keel.elf", Path::new("/h")),
                ("dom0-kernel", Path::new("/t/guest/vmlinuz")),
                ("dom0-initrd", Path::new("/t/guest/dom0-initrd.gz")),
            ]
        );
    }

    #[test]
    fn modules_with_unsafe_names_cmdlines_or_duplicates_are_rejected() {
        let with = |change: &dyn Fn(&mut Vec<IsoModule>)| {
            let mut modules = dom0_modules();
            change(&mut modules);
            boot_files(&BootEntry::Keel {
                hypervisor: Path::new("/h"),
                cmdline: "",
                modules: &modules,
            })
            .is_err()
        };
        assert!(!with(&|_| {}));
        assert!(with(&|modules| modules[0].file_name = "../x".to_string()));
        assert!(with(&|modules| modules[0].cmdline = "a;b".to_string()));
        assert!(with(&|modules| modules[1].file_name = "dom0-kernel".to_string()));
        assert!(with(&|modules| modules[1].file_name = "keel.elf".to_string()));
    }

    #[test]
    fn cmdline_with_grub_syntax_is_rejected() {
        assert!(check_cmdline("log=debug guest=bench bench-iterations=1000").is_ok());
        for bad in ["a;b", "x=$y", "a\"b", "}", "a\nb", "#c"] {
            assert!(check_cmdline(bad).is_err(), "{bad:?}");
        }
    }
}
