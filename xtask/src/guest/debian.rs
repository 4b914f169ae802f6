//! Taking single files out of Debian packages without installing them:
//! `apt-get download` the .deb, `dpkg-deb -x` it into a scratch directory,
//! copy out what is needed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{prerequisites, say};

/// A file taken from a package, and which package version it came from.
pub struct Extracted {
    /// `<package> <version>`, for the note kept next to the cached file.
    pub origin: String,
}

/// Copies `path_in_package` out of `package` to `destination` (replacing it
/// atomically), working in `scratch_dir`, which is removed afterwards.
pub fn extract_file(package: &str, path_in_package: &str, scratch_dir: &Path, destination: &Path) -> Result<Extracted> {
    extract_files(package, None, &[(path_in_package, destination)], scratch_dir)
}

/// Downloads `package` once (exactly `version` when given, else the version
/// apt offers) and copies each `(path in the package, destination)` out of
/// it, working in `scratch_dir`, which is removed afterwards. Every file is
/// copied next to its destination first and moved into place only once all
/// of them were found, so a package that lacks one leaves nothing new.
pub fn extract_files(
    package: &str,
    version: Option<&str>,
    files: &[(&str, &Path)],
    scratch_dir: &Path,
) -> Result<Extracted> {
    if scratch_dir.exists() {
        fs::remove_dir_all(scratch_dir).with_context(|| format!("cannot clear {}", scratch_dir.display()))?;
    }
    fs::create_dir_all(scratch_dir).with_context(|| format!("cannot create {}", scratch_dir.display()))?;

    let request = download_request(package, version);
    say!("downloading Debian package {request} (apt-get download)");
    let mut download = Command::new("apt-get");
    if prerequisites::running_as_root() {
        // apt's download sandbox user cannot write into a root-owned target
        // directory; it would fall back to root anyway, with a warning.
        download.args(["-o", "APT::Sandbox::User=root"]);
    }
    run_visible(
        download.args(["download", &request]).current_dir(scratch_dir),
        &format!("apt-get download {request}"),
    )?;
    let deb = downloaded_deb(scratch_dir, package)?;
    let found_version = deb_field(&deb, "Version")?;
    if let Some(version) = version.filter(|version| *version != found_version) {
        bail!("apt-get download {request} gave version {found_version}, not {version}");
    }

    let root = scratch_dir.join("root");
    say!("unpacking {} (dpkg-deb -x)", file_name(&deb));
    run_visible(
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root),
        &format!("dpkg-deb -x {}", deb.display()),
    )?;
    let mut partials = Vec::new();
    for (path_in_package, destination) in files {
        let source = root.join(path_in_package);
        if !source.is_file() {
            for (partial, _) in &partials {
                let _ = fs::remove_file(partial);
            }
            bail!("{package} {found_version} has no {path_in_package}");
        }
        let partial = partial_path(destination);
        fs::copy(&source, &partial).with_context(|| format!("cannot copy {} out of {package}", source.display()))?;
        partials.push((partial, *destination));
    }
    for (partial, destination) in partials {
        fs::rename(&partial, destination)
            .with_context(|| format!("cannot move {} into place", destination.display()))?;
    }
    // The unpacked tree (kernel modules included) is large and not needed.
    fs::remove_dir_all(scratch_dir).with_context(|| format!("cannot remove {}", scratch_dir.display()))?;
    Ok(Extracted {
        origin: format!("{package} {found_version}"),
    })
}

/// What `apt-get download` is asked for: `package` or `package=version`.
fn download_request(package: &str, version: Option<&str>) -> String {
    match version {
        Some(version) => format!("{package}={version}"),
        None => package.to_string(),
    }
}

/// `<file>.partial`, next to the file (`msr.ko` -> `msr.ko.partial`).
fn partial_path(destination: &Path) -> PathBuf {
    let mut name = destination.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// The packages `metapackage` depends on, as `apt-cache depends` lists them;
/// runs `apt-get update` once when apt knows nothing yet (a fresh machine)
/// and we may.
pub fn dependencies(metapackage: &str) -> Result<Vec<String>> {
    let first_try = apt_cache_depends(metapackage);
    if let Ok(found) = &first_try {
        if !found.is_empty() {
            return Ok(found.clone());
        }
    }
    if !prerequisites::running_as_root() {
        let reason = match first_try {
            Ok(_) => "it lists no dependencies".to_string(),
            Err(error) => format!("{error:#}"),
        };
        bail!("apt cannot find {metapackage} ({reason}); run `sudo apt-get update` first");
    }
    say!("apt knows no {metapackage}: updating the package lists");
    prerequisites::apt_get(&["update"])?;
    let found = apt_cache_depends(metapackage)?;
    if found.is_empty() {
        bail!("apt-cache lists no dependencies of {metapackage}, even after apt-get update");
    }
    Ok(found)
}

fn apt_cache_depends(package: &str) -> Result<Vec<String>> {
    let output = Command::new("apt-cache")
        .args(["depends", package])
        .output()
        .context("cannot run apt-cache")?;
    if !output.status.success() {
        bail!(
            "apt-cache depends {package} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(parse_depends(&String::from_utf8_lossy(&output.stdout)))
}

/// The `Depends:` entries of `apt-cache depends` output, in order. Virtual
/// packages (`<name>`) are skipped: they cannot be downloaded.
fn parse_depends(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|line| {
            // `|Depends:` marks an alternative to the next line; both count.
            let line = line.trim().trim_start_matches('|');
            line.strip_prefix("Depends:")
        })
        .map(str::trim)
        .filter(|name| !name.is_empty() && !name.starts_with('<'))
        .map(String::from)
        .collect()
}

/// The one `<package>_*.deb` apt-get left in `dir`.
fn downloaded_deb(dir: &Path, package: &str) -> Result<PathBuf> {
    let prefix = format!("{package}_");
    let mut debs = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        let name = file_name(&path);
        if name.starts_with(&prefix) && name.ends_with(".deb") {
            debs.push(path);
        }
    }
    match <[PathBuf; 1]>::try_from(debs) {
        Ok([deb]) => Ok(deb),
        Err(debs) => bail!(
            "expected one {prefix}*.deb in {} after apt-get download, found {}",
            dir.display(),
            debs.len()
        ),
    }
}

fn deb_field(deb: &Path, field: &str) -> Result<String> {
    let output = Command::new("dpkg-deb")
        .arg("-f")
        .arg(deb)
        .arg(field)
        .output()
        .context("cannot run dpkg-deb")?;
    let value = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if !output.status.success() || value.is_empty() {
        bail!("dpkg-deb -f {} {field} failed", deb.display());
    }
    Ok(value)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Runs a command with its output (apt's progress) on the terminal.
fn run_visible(command: &mut Command, what: &str) -> Result<()> {
    let status = command.status().with_context(|| format!("cannot run {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_lists_real_packages_in_order() {
        let output = "linux-image-cloud-amd64\n  Depends: linux-image-6.1.0-56-cloud-amd64\n";
        assert_eq!(parse_depends(output), ["linux-image-6.1.0-56-cloud-amd64"]);
    }

    #[test]
    fn alternatives_count_and_virtual_packages_and_other_relations_do_not() {
        let output = "\
busybox-static
  Conflicts: busybox
 |Depends: libc6
  Depends: <virtual-thing>
  Depends: zlib1g
  Recommends: foo
  Replaces: busybox
";
        assert_eq!(parse_depends(output), ["libc6", "zlib1g"]);
    }

    #[test]
    fn a_version_pins_the_download_and_partial_files_sit_next_to_theirs() {
        assert_eq!(download_request("busybox-static", None), "busybox-static");
        assert_eq!(
            download_request("linux-image-6.1.0-57-cloud-amd64", Some("6.1.192-3")),
            "linux-image-6.1.0-57-cloud-amd64=6.1.192-3"
        );
        assert_eq!(
            partial_path(Path::new("/t/guest/modules/msr.ko")),
            Path::new("/t/guest/modules/msr.ko.partial")
        );
        assert_eq!(
            partial_path(Path::new("/t/guest/vmlinuz")),
            Path::new("/t/guest/vmlinuz.partial")
        );
    }

    #[test]
    fn the_single_downloaded_deb_is_found() {
        let dir = std::env::temp_dir().join(format!("keel-debs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        assert!(downloaded_deb(&dir, "busybox-static").is_err(), "none yet");
        fs::write(dir.join("busybox-static_1%3a1.35.0-4_amd64.deb"), b"").unwrap();
        fs::write(dir.join("busybox_1.35.0-4_amd64.deb"), b"").unwrap();
        assert_eq!(
            downloaded_deb(&dir, "busybox-static").unwrap(),
            dir.join("busybox-static_1%3a1.35.0-4_amd64.deb")
        );
        fs::write(dir.join("busybox-static_2_amd64.deb"), b"").unwrap();
        assert!(downloaded_deb(&dir, "busybox-static").is_err(), "ambiguous");
        fs::remove_dir_all(&dir).unwrap();
    }
}
