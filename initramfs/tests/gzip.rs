//! The compressed form.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use flate2::read::GzDecoder;
use keel_initramfs::Initramfs;

fn image() -> Initramfs {
    let mut image = Initramfs::new();
    image
        .file("init", 0o755, b"#!/bin/sh\n".repeat(100))
        .unwrap()
        .char_device("dev/console", 0o600, 5, 1)
        .unwrap();
    image
}

#[test]
fn gzip_decompresses_to_the_cpio_bytes() {
    let image = image();
    let gzip = image.to_gzip().unwrap();
    assert_eq!(&gzip[..2], [0x1F, 0x8B], "gzip magic");
    let mut decompressed = Vec::new();
    GzDecoder::new(gzip.as_slice()).read_to_end(&mut decompressed).unwrap();
    assert_eq!(decompressed, image.to_cpio());
    assert!(gzip.len() < decompressed.len(), "repetitive input compresses");
}

#[test]
fn gzip_output_is_reproducible() {
    assert_eq!(image().to_gzip().unwrap(), image().to_gzip().unwrap());
}

#[test]
fn system_gzip_accepts_the_stream() {
    let Ok(mut child) = Command::new("gzip")
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    else {
        eprintln!("note: gzip not installed, skipping the system gzip cross-check");
        return;
    };
    let image = image();
    let gzip = image.to_gzip().unwrap();
    child.stdin.take().unwrap().write_all(&gzip).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(output.stdout, image.to_cpio());
}
