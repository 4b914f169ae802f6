//! What Dom0's and the DomUs' initramfs images share: the busybox skeleton
//! (busybox, `/init`, mount points, the device nodes the kernel needs before
//! devtmpfs is mounted) and the cache that rebuilds an image only when its
//! contents change. `dom0_initramfs` and `domu_initramfs` say what each
//! image holds on top.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use keel_initramfs::{Archives, Initramfs};

use crate::say;

/// The skeleton every image starts from. busybox installs its applet links
/// itself at boot (`busybox --install -s /bin` in /init), so only busybox
/// is listed here.
pub fn busybox_skeleton(init_script: &str, busybox: Vec<u8>) -> Result<Initramfs> {
    let mut image = Initramfs::new();
    image
        .directory("bin", 0o755)?
        .directory("dev", 0o755)?
        .directory("proc", 0o555)?
        .directory("sys", 0o555)?
        .directory("tmp", 0o1777)?
        .directory("root", 0o700)?
        .file("bin/busybox", 0o755, busybox)?
        .file("init", 0o755, init_script.as_bytes())?
        // The kernel opens /dev/console for init before devtmpfs exists.
        .char_device("dev/console", 0o600, 5, 1)?
        .char_device("dev/null", 0o666, 1, 3)?;
    Ok(image)
}

/// Writes `image` to `path` as its initrd (`Initramfs::to_initrd`: the
/// gzip-compressed archive, then the uncompressed archive of its stored
/// files, if any) unless the file there already has exactly these contents;
/// `what` names it in progress lines.
pub fn write_cached(what: &str, path: &Path, image: &Initramfs) -> Result<()> {
    // The uncompressed archives are cheap to make; compressing is not, so
    // their fingerprint decides whether to rebuild (every member, its mode,
    // which archive it is in and the image's layout all show in it).
    let archives = image.archives();
    let fingerprint = fingerprint(&archives);
    let stamp = stamp_path(path);
    let built = fs::read_to_string(&stamp).unwrap_or_default();
    if path.is_file() && built.trim() == fingerprint {
        say!("{what}: up to date ({})", path.display());
        return Ok(());
    }
    say!("building {what} {}", path.display());
    let initrd = archives
        .to_initrd()
        .with_context(|| format!("cannot compress the {what}"))?;
    // No stamp while the image is half written.
    let _ = fs::remove_file(&stamp);
    fs::write(path, &initrd).with_context(|| format!("cannot write {}", path.display()))?;
    fs::write(&stamp, format!("{fingerprint}\n")).with_context(|| format!("cannot write {}", stamp.display()))?;
    if archives.stored.is_empty() {
        say!("{what}: {} KiB", initrd.len() >> 10);
    } else {
        let stored = archives.stored.len();
        say!(
            "{what}: {} KiB ({} KiB gzip-compressed, then {} KiB stored uncompressed)",
            initrd.len() >> 10,
            (initrd.len() - stored) >> 10,
            stored >> 10
        );
    }
    Ok(())
}

fn stamp_path(image: &Path) -> PathBuf {
    let mut name = image.as_os_str().to_owned();
    name.push(".contents");
    PathBuf::from(name)
}

/// Only compared with the stamp this same program wrote: a hash that
/// changes between Rust releases merely causes one rebuild. Both archives
/// count, each with its length, so moving a file from one to the other
/// changes it too.
pub fn fingerprint(archives: &Archives) -> String {
    let mut hasher = DefaultHasher::new();
    archives.compressed.hash(&mut hasher);
    archives.stored.hash(&mut hasher);
    format!(
        "{:016x} {}+{}",
        hasher.finish(),
        archives.compressed.len(),
        archives.stored.len()
    )
}

/// Reading images back, for the tests of every image.
#[cfg(test)]
pub mod inspect {
    use keel_initramfs::Initramfs;

    /// (path, mode) of every member of a newc archive.
    pub fn list_newc(archive: &[u8]) -> Vec<(String, u32)> {
        let field = |header: &[u8], index: usize| {
            let text = std::str::from_utf8(&header[6 + 8 * index..14 + 8 * index]).unwrap();
            usize::from_str_radix(text, 16).unwrap()
        };
        let align = |offset: usize| (offset + 3) & !3;
        let mut members = Vec::new();
        let mut offset = 0;
        loop {
            let header = &archive[offset..offset + 110];
            assert_eq!(&header[..6], b"070701");
            let (mode, file_size, name_size) = (field(header, 1), field(header, 6), field(header, 11));
            let name_start = offset + 110;
            let name = String::from_utf8(archive[name_start..name_start + name_size - 1].to_vec()).unwrap();
            if name == "TRAILER!!!" {
                return members;
            }
            members.push((name, mode as u32));
            offset = align(align(name_start + name_size) + file_size);
        }
    }

    /// Every member, whichever archive of the initrd it is in.
    pub fn members(image: &Initramfs) -> Vec<(String, u32)> {
        list_newc(&image.to_cpio())
    }

    /// The members of the gzip-compressed archive.
    pub fn compressed_members(image: &Initramfs) -> Vec<(String, u32)> {
        list_newc(&image.archives().compressed)
    }

    /// The members of the uncompressed archive after it (none without one).
    pub fn stored_members(image: &Initramfs) -> Vec<(String, u32)> {
        let stored = image.archives().stored;
        if stored.is_empty() {
            Vec::new()
        } else {
            list_newc(&stored)
        }
    }

    /// The names of `members`.
    pub fn names(members: &[(String, u32)]) -> Vec<&str> {
        members.iter().map(|(name, _)| name.as_str()).collect()
    }

    /// The mode of `path` in `image` (file type bits included).
    pub fn mode_of(image: &Initramfs, path: &str) -> u32 {
        members(image)
            .into_iter()
            .find(|(name, _)| name == path)
            .unwrap_or_else(|| panic!("no {path} in the initramfs"))
            .1
    }

    pub fn has(image: &Initramfs, path: &str) -> bool {
        members(image).iter().any(|(name, _)| name == path)
    }

    pub const DIRECTORY: u32 = 0o040_000;
    pub const REGULAR_FILE: u32 = 0o100_000;
    pub const CHAR_DEVICE: u32 = 0o020_000;
}

#[cfg(test)]
mod tests {
    use super::inspect::*;
    use super::*;

    fn skeleton() -> Initramfs {
        busybox_skeleton("#!/bin/busybox sh\n", b"\x7fELF busybox".to_vec()).unwrap()
    }

    #[test]
    fn init_and_busybox_are_executable_files() {
        assert_eq!(mode_of(&skeleton(), "init"), REGULAR_FILE | 0o755);
        assert_eq!(mode_of(&skeleton(), "bin/busybox"), REGULAR_FILE | 0o755);
    }

    #[test]
    fn console_and_null_exist_before_devtmpfs() {
        assert_eq!(mode_of(&skeleton(), "dev/console"), CHAR_DEVICE | 0o600);
        assert_eq!(mode_of(&skeleton(), "dev/null"), CHAR_DEVICE | 0o666);
    }

    #[test]
    fn mount_points_and_home_exist() {
        for directory in ["proc", "sys", "dev", "tmp", "root", "bin"] {
            assert_eq!(mode_of(&skeleton(), directory) & 0o170_000, DIRECTORY, "{directory}");
        }
        assert_eq!(mode_of(&skeleton(), "tmp"), DIRECTORY | 0o1777);
    }

    #[test]
    fn fingerprint_follows_the_contents() {
        let print =
            |init: &str, busybox: &[u8]| fingerprint(&busybox_skeleton(init, busybox.to_vec()).unwrap().archives());
        let one = print("#!/bin/busybox sh\n", b"a");
        assert_eq!(one, print("#!/bin/busybox sh\n", b"a"));
        assert_ne!(one, print("#!/bin/busybox sh\necho\n", b"a"), "init");
        assert_ne!(one, print("#!/bin/busybox sh\n", b"b"), "busybox");
    }

    #[test]
    fn fingerprint_tells_which_archive_a_file_is_in() {
        let with = |stored: bool| {
            let mut image = skeleton();
            if stored {
                image.stored_file("boot/vmlinuz", 0o644, b"bzImage".to_vec()).unwrap();
            } else {
                image.file("boot/vmlinuz", 0o644, b"bzImage".to_vec()).unwrap();
            }
            image
        };
        // The same tree, the same single archive...
        assert_eq!(with(true).to_cpio(), with(false).to_cpio());
        // ...but another initrd.
        assert_ne!(
            fingerprint(&with(true).archives()),
            fingerprint(&with(false).archives())
        );
    }

    #[test]
    fn stamp_sits_next_to_the_image() {
        assert_eq!(
            stamp_path(Path::new("/t/guest/dom0-initrd.gz")),
            Path::new("/t/guest/dom0-initrd.gz.contents")
        );
    }

    #[test]
    fn an_image_is_rewritten_only_when_its_contents_change() {
        let dir = std::env::temp_dir().join(format!("keel-initramfs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("test-initrd.gz");

        write_cached("test initramfs", &path, &skeleton()).unwrap();
        let gzip = fs::read(&path).unwrap();
        assert_eq!(gzip, skeleton().to_gzip().unwrap(), "nothing stored: one gzip stream");
        let stamp = fs::read_to_string(stamp_path(&path)).unwrap();
        assert_eq!(stamp.trim(), fingerprint(&skeleton().archives()));

        // Same contents: the file is left alone (a marker written into it survives).
        fs::write(&path, b"untouched").unwrap();
        write_cached("test initramfs", &path, &skeleton()).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"untouched");

        // Other contents: rebuilt.
        let mut other = skeleton();
        other.file("etc/extra", 0o644, b"x".to_vec()).unwrap();
        write_cached("test initramfs", &path, &other).unwrap();
        assert!(fs::read(&path).unwrap().starts_with(&[0x1f, 0x8b]));
        assert_ne!(fs::read_to_string(stamp_path(&path)).unwrap(), stamp);

        // A stamp without its image: rebuilt.
        fs::remove_file(&path).unwrap();
        write_cached("test initramfs", &path, &other).unwrap();
        assert!(path.is_file());

        // A stored file: the gzip stream, then its archive, uncompressed.
        let payload = b"\x1f\x8b already compressed payload".repeat(100);
        other.stored_file("boot/payload.gz", 0o644, payload.clone()).unwrap();
        write_cached("test initramfs", &path, &other).unwrap();
        let initrd = fs::read(&path).unwrap();
        let layout = keel_initramfs::read_initrd(&initrd).unwrap();
        assert_eq!(layout.archives, other.archives());
        let offset = layout.stored_offset.unwrap();
        assert_eq!(offset % 4, 0);
        assert!(initrd[layout.gzip_len..offset].iter().all(|&byte| byte == 0));
        assert!(initrd[offset..].windows(payload.len()).any(|window| window == payload));
        assert_eq!(
            fs::read_to_string(stamp_path(&path)).unwrap().trim(),
            fingerprint(&other.archives())
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
