//! The Rust targets and components the build needs, added to the active
//! toolchain when missing.
//!
//! rustup installs a toolchain file's `targets` and `components` only when it
//! installs the toolchain itself; a machine that already has the pinned
//! toolchain (any machine that used it before) lacks them until someone runs
//! `rustup target add`. So before the first cross build xtask compares what
//! `rust-toolchain.toml` asks for with what rustup reports as installed, and
//! adds the difference.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::say;
use crate::workspace::Workspace;

/// What `rust-toolchain.toml` pins.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
pub struct ToolchainFile {
    pub toolchain: Pinned,
}

#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Pinned {
    pub channel: Option<String>,
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub components: Vec<String>,
}

impl ToolchainFile {
    pub fn parse(text: &str) -> Result<Self> {
        toml::from_str(text).context("rust-toolchain.toml is not a valid toolchain file")
    }

    pub fn read(workspace_root: &Path) -> Result<Self> {
        let path = workspace_root.join("rust-toolchain.toml");
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&text)
    }
}

/// What rustup must add: the targets and components the file names that
/// the installed lists lack, in the file's order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Missing {
    pub targets: Vec<String>,
    pub components: Vec<String>,
}

impl Missing {
    /// The rustup commands that add what is missing, as argument lists.
    pub fn rustup_commands(&self) -> Vec<Vec<String>> {
        let mut commands = Vec::new();
        for (kind, names) in [("target", &self.targets), ("component", &self.components)] {
            if !names.is_empty() {
                let mut command = vec![kind.to_string(), "add".to_string()];
                command.extend(names.iter().cloned());
                commands.push(command);
            }
        }
        commands
    }
}

/// `rustup component list --installed` prints names with the host triple
/// appended (`clippy-x86_64-unknown-linux-gnu`); the toolchain file names
/// them bare. A component counts as installed if either form is listed.
fn component_installed(name: &str, host: &str, installed: &[&str]) -> bool {
    installed.iter().any(|line| {
        *line == name
            || line
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|triple| triple == host)
    })
}

/// What is missing from a toolchain on `host` (its triple) whose
/// `rustup target|component list --installed` printed these lists.
pub fn missing(file: &Pinned, host: &str, installed_targets: &str, installed_components: &str) -> Missing {
    let targets: Vec<&str> = installed_targets.lines().map(str::trim).collect();
    let components: Vec<&str> = installed_components.lines().map(str::trim).collect();
    Missing {
        targets: file
            .targets
            .iter()
            .filter(|target| !targets.contains(&target.as_str()))
            .cloned()
            .collect(),
        components: file
            .components
            .iter()
            .filter(|component| !component_installed(component, host, &components))
            .cloned()
            .collect(),
    }
}

fn rustup_output(workspace: &Workspace, arguments: &[&str]) -> Result<String> {
    let output = Command::new("rustup")
        .args(arguments)
        .current_dir(&workspace.root)
        .output()
        .with_context(|| format!("cannot run rustup {}", arguments.join(" ")))?;
    if !output.status.success() {
        bail!(
            "rustup {} failed ({}): {}",
            arguments.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn rustup_available() -> bool {
    Command::new("rustup")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success())
}

/// Makes sure the active toolchain has every target and component that
/// `rust-toolchain.toml` names, adding the missing ones with rustup. Runs
/// once per xtask process.
pub fn ensure(workspace: &Workspace) -> Result<()> {
    static DONE: OnceLock<()> = OnceLock::new();
    if DONE.get().is_some() {
        return Ok(());
    }
    let file = ToolchainFile::read(&workspace.root)?;
    if !rustup_available() {
        // A distribution's cargo: nothing xtask can add by itself.
        let sysroot_has = |target: &str| sysroot_has_target(workspace, target);
        let absent: Vec<&String> = file
            .toolchain
            .targets
            .iter()
            .filter(|target| !sysroot_has(target))
            .collect();
        if !absent.is_empty() {
            let names: Vec<&str> = absent.iter().map(|target| target.as_str()).collect();
            bail!(
                "this Rust toolchain has no standard library for {}; install rustup (https://rustup.rs) so the \
                 pinned toolchain and `rustup target add {}` can provide it",
                names.join(", "),
                names.join(" ")
            );
        }
        let _ = DONE.set(());
        return Ok(());
    }
    let targets = rustup_output(workspace, &["target", "list", "--installed"])?;
    let components = rustup_output(workspace, &["component", "list", "--installed"])?;
    let missing = missing(&file.toolchain, &host_triple(workspace)?, &targets, &components);
    for command in missing.rustup_commands() {
        say!(
            "the pinned toolchain lacks what rust-toolchain.toml names: rustup {}",
            command.join(" ")
        );
        let status = Command::new("rustup")
            .args(&command)
            .current_dir(&workspace.root)
            .status()
            .context("cannot run rustup")?;
        if !status.success() {
            bail!("rustup {} failed ({status})", command.join(" "));
        }
    }
    let _ = DONE.set(());
    Ok(())
}

/// The triple of the toolchain's host (`rustc -vV`'s `host:` line).
fn host_triple(workspace: &Workspace) -> Result<String> {
    let output = Command::new("rustc")
        .arg("-vV")
        .current_dir(&workspace.root)
        .output()
        .context("cannot run rustc -vV")?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(|host| host.trim().to_string())
        .context("rustc -vV printed no host triple")
}

/// Without rustup: whether `rustc --print sysroot` holds a standard library
/// for `target`.
fn sysroot_has_target(workspace: &Workspace, target: &str) -> bool {
    let Ok(output) = Command::new("rustc")
        .args(["--print", "sysroot"])
        .current_dir(&workspace.root)
        .output()
    else {
        return false;
    };
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_string();
    Path::new(&sysroot)
        .join("lib/rustlib")
        .join(target)
        .join("lib")
        .is_dir()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "x86_64-unknown-linux-gnu";
    const FILE: &str = r#"
[toolchain]
channel = "1.95.0"
components = ["rustfmt", "clippy"]
targets = ["x86_64-unknown-none"]
profile = "minimal"
"#;

    #[test]
    fn the_repository_toolchain_file_parses() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let file = ToolchainFile::read(root).unwrap();
        assert!(file.toolchain.targets.contains(&"x86_64-unknown-none".to_string()));
    }

    #[test]
    fn a_missing_target_is_added_with_rustup_target_add() {
        let file = ToolchainFile::parse(FILE).unwrap();
        let missing = missing(
            &file.toolchain,
            HOST,
            "x86_64-unknown-linux-gnu\n",
            "cargo-x86_64-unknown-linux-gnu\nclippy-x86_64-unknown-linux-gnu\nrustfmt-x86_64-unknown-linux-gnu\n",
        );
        assert_eq!(missing.targets, ["x86_64-unknown-none"]);
        assert!(missing.components.is_empty());
        assert_eq!(
            missing.rustup_commands(),
            [vec!["target", "add", "x86_64-unknown-none"]]
        );
    }

    #[test]
    fn nothing_is_added_when_everything_is_installed() {
        let file = ToolchainFile::parse(FILE).unwrap();
        let missing = missing(
            &file.toolchain,
            HOST,
            "x86_64-unknown-linux-gnu\nx86_64-unknown-none\n",
            "clippy\nrustfmt-x86_64-unknown-linux-gnu\n",
        );
        assert_eq!(missing, Missing::default());
        assert!(missing.rustup_commands().is_empty());
    }

    #[test]
    fn missing_components_get_their_own_command() {
        let file = ToolchainFile::parse(FILE).unwrap();
        let missing = missing(&file.toolchain, HOST, "", "rust-std-x86_64-unknown-linux-gnu\n");
        assert_eq!(
            missing.rustup_commands(),
            [
                vec!["target", "add", "x86_64-unknown-none"],
                vec!["component", "add", "rustfmt", "clippy"]
            ]
        );
    }

    #[test]
    fn a_component_name_prefix_is_not_mistaken_for_the_component() {
        // `rust` is not installed just because `rust-std-...` is.
        assert!(!component_installed(
            "rust",
            HOST,
            &["rust-std-x86_64-unknown-linux-gnu"]
        ));
        assert!(component_installed(
            "rust-std",
            HOST,
            &["rust-std-x86_64-unknown-linux-gnu"]
        ));
        assert!(!component_installed("clippy", HOST, &["clippy-preview"]));
        assert!(!component_installed(
            "clippy",
            HOST,
            &["clippy-aarch64-unknown-linux-gnu"]
        ));
    }

    #[test]
    fn a_malformed_toolchain_file_is_an_error() {
        assert!(ToolchainFile::parse("[toolchain\nchannel=").is_err());
    }
}
