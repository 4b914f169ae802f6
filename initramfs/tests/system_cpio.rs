//! Cross-checks against GNU cpio when it is installed; skipped otherwise.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use keel_initramfs::Initramfs;

fn cpio_available() -> bool {
    let available = Command::new("cpio").arg("--version").output().is_ok();
    if !available {
        eprintln!("note: cpio not installed, skipping the GNU cpio cross-check");
    }
    available
}

fn run_cpio(args: &[&str], dir: Option<&PathBuf>, archive: &[u8]) -> Output {
    let mut command = Command::new("cpio");
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let mut child = command.spawn().unwrap();
    child.stdin.take().unwrap().write_all(archive).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "cpio {args:?}: {output:?}");
    output
}

#[test]
fn cpio_lists_every_path() {
    if !cpio_available() {
        return;
    }
    let mut image = Initramfs::new();
    image
        .file("init", 0o755, b"#!/bin/sh\n".to_vec())
        .unwrap()
        .symlink("bin/sh", "busybox")
        .unwrap()
        .char_device("dev/console", 0o600, 5, 1)
        .unwrap()
        .char_device("dev/null", 0o666, 1, 3)
        .unwrap();
    let output = run_cpio(&["-t", "-H", "newc", "--quiet"], None, &image.to_cpio());
    let listing = String::from_utf8(output.stdout).unwrap();
    let paths: Vec<&str> = listing.lines().collect();
    assert_eq!(paths, ["bin", "bin/sh", "dev", "dev/console", "dev/null", "init"]);
}

#[test]
fn cpio_extracts_contents_modes_and_links() {
    if !cpio_available() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("keel-initramfs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut image = Initramfs::new();
    image
        .file("etc/motd", 0o640, b"hello from keel\n".to_vec())
        .unwrap()
        .symlink("etc/issue", "motd")
        .unwrap();
    run_cpio(&["-i", "-d", "-H", "newc", "--quiet"], Some(&dir), &image.to_cpio());

    let motd = dir.join("etc/motd");
    let contents = std::fs::read(&motd).unwrap();
    let link = std::fs::read_link(dir.join("etc/issue")).unwrap();
    #[cfg(unix)]
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(&motd).unwrap().permissions().mode() & 0o7777
    };
    std::fs::remove_dir_all(&dir).unwrap();

    assert_eq!(contents, b"hello from keel\n");
    assert_eq!(link, PathBuf::from("motd"));
    #[cfg(unix)]
    assert_eq!(mode, 0o640);
}
