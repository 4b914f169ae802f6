//! The disks of the split block device test (`bochs-split-blk`): two image
//! files Dom0's initramfs carries and `keel create` hands a DomU as
//! virtio-blk disks (`xtask/guest/domu-split-blk.toml`), each served by a
//! Dom0 backend process:
//!
//! | file in `target/guest/` | in Dom0 | in the DomU | what |
//! |---|---|---|---|
//! | `split-rw.ext4` | `/var/lib/keel/split-rw.ext4` | `/dev/vda`, read-write | a 16 MiB ext4 file system (`mkfs.ext4 -q -F -d <dir> <file> 16M`) holding `data.bin` (1 MiB of SplitMix64 bytes), `data.sha256` (its sum, as `sha256sum data.bin` prints it) and `ro.sha256` (the sum of `split-ro.img`'s first MiB, as `sha256sum` prints it for its standard input) |
//! | `split-ro.img` | `/var/lib/keel/split-ro.img` | `/dev/vdb`, read-only | 1 MiB and 300 bytes of SplitMix64 bytes: 2048 whole sectors and a partial one the DomU must not see |
//!
//! The DomU (`keel.domu=split-blk` in `xtask/guest/domu-init.sh`) checks
//! both against the sums; Dom0's root is an initramfs in RAM, so what the
//! DomU writes to its ext4 disk lasts until Dom0 powers off.
//!
//! Each image is cached with an `.origin` note naming its recipe (the
//! command and the sums of what goes in), and made again when it is missing
//! or the recipe changed. mkfs.ext4 gives every file system a new UUID and
//! time stamps, so a rebuilt ext4 image differs in those bytes only.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use keel_boot_tests::Layout;

use super::{cached_origin, forget_origin, write_origin};
use crate::{prerequisites, say};

/// Where Dom0 has the images (`xtask/guest/domu-split-blk.toml` and
/// `split-blk-test.sh` name these paths).
/// (Unpacked there by the scripts from `RW_IMAGE_PATH.gz`.)
#[cfg(test)]
pub const RW_IMAGE_PATH: &str = "var/lib/keel/split-rw.ext4";
pub const RO_IMAGE_PATH: &str = "var/lib/keel/split-ro.img";

/// The ext4 image's size, as mkfs.ext4 is given it, and in bytes and sectors.
const RW_SIZE_ARGUMENT: &str = "16M";
pub const RW_IMAGE_BYTES: u64 = 16 << 20;
#[cfg(test)]
pub const RW_SECTORS: u64 = RW_IMAGE_BYTES / SECTOR_BYTES;
/// `data.bin`'s size.
pub const DATA_BYTES: usize = 1 << 20;
/// The read-only image: not a whole number of sectors, so its capacity
/// (floor(size / 512) sectors) must leave the tail out.
pub const RO_IMAGE_BYTES: u64 = (1 << 20) + 300;
pub const RO_SECTORS: u64 = RO_IMAGE_BYTES / SECTOR_BYTES;
/// How much of the read-only image `ro.sha256` covers: its whole sectors.
pub const RO_CHECKED_BYTES: u64 = RO_SECTORS * SECTOR_BYTES;
const SECTOR_BYTES: u64 = 512;

/// The SplitMix64 seeds of `data.bin` and of the read-only image.
const DATA_SEED: u64 = 0x6b65_656c_2d72_7764; // "keel-rwd"
const RO_SEED: u64 = 0x6b65_656c_2d72_6f64; // "keel-rod"

/// The files of the ext4 image's root directory (domu-init.sh reads them).
pub const DATA_FILE: &str = "data.bin";
pub const DATA_SUM_FILE: &str = "data.sha256";
pub const RO_SUM_FILE: &str = "ro.sha256";

/// The cached images.
pub struct SplitDisks {
    /// `target/guest/split-rw.ext4`.
    pub rw: PathBuf,
    /// `target/guest/split-ro.img`.
    pub ro: PathBuf,
}

/// What goes into the images; computed afresh every time (a few MiB).
struct Contents {
    ro_image: Vec<u8>,
    /// `(name, contents)` of each file of the ext4 image, in
    /// [`DATA_FILE`], [`DATA_SUM_FILE`], [`RO_SUM_FILE`] order.
    rw_files: Vec<(&'static str, Vec<u8>)>,
    /// The `.origin` notes of both images: their recipes.
    ro_recipe: String,
    rw_recipe: String,
}

fn contents() -> Result<Contents> {
    let ro_image = pseudo_random(RO_SEED, RO_IMAGE_BYTES as usize);
    let data = pseudo_random(DATA_SEED, DATA_BYTES);
    let data_sum = sha256_hex(&data)?;
    let ro_sum = sha256_hex(&ro_image[..RO_CHECKED_BYTES as usize])?;
    let ro_recipe = format!(
        "keel split-ro.img: {RO_IMAGE_BYTES} bytes of SplitMix64 seed {RO_SEED:#x}, sha256 {}",
        sha256_hex(&ro_image)?
    );
    let rw_recipe = format!(
        "keel split-rw.ext4: mkfs.ext4 -q -F -d <dir> <file> {RW_SIZE_ARGUMENT}; \
         {DATA_FILE} {DATA_BYTES} bytes of SplitMix64 seed {DATA_SEED:#x}, sha256 {data_sum}; \
         {RO_SUM_FILE} {ro_sum}"
    );
    Ok(Contents {
        ro_image,
        rw_files: vec![
            (DATA_FILE, data),
            (DATA_SUM_FILE, sum_line(&data_sum, DATA_FILE).into_bytes()),
            // What `sha256sum` prints for its standard input (the DomU
            // pipes the disk's first MiB into it).
            (RO_SUM_FILE, sum_line(&ro_sum, "-").into_bytes()),
        ],
        ro_recipe,
        rw_recipe,
    })
}

/// A line of `sha256sum`'s output, which `sha256sum -c` reads back.
fn sum_line(hex: &str, name: &str) -> String {
    format!("{hex}  {name}\n")
}

pub fn rw_path(layout: &Layout) -> PathBuf {
    layout.guest_dir().join("split-rw.ext4")
}

pub fn ro_path(layout: &Layout) -> PathBuf {
    layout.guest_dir().join("split-ro.img")
}

/// Makes whichever image is missing or out of date; returns their paths.
pub fn ensure(layout: &Layout) -> Result<SplitDisks> {
    prerequisites::ensure(&[prerequisites::CHECKSUM_TOOLS])?;
    let contents = contents()?;
    let disks = SplitDisks {
        rw: rw_path(layout),
        ro: ro_path(layout),
    };
    if cached_origin(&disks.ro).as_deref() == Some(contents.ro_recipe.as_str()) {
        say!("split-blk read-only disk: up to date ({})", disks.ro.display());
    } else {
        forget_origin(&disks.ro);
        write_atomically(&disks.ro, &contents.ro_image)?;
        write_origin(&disks.ro, &contents.ro_recipe)?;
        say!(
            "split-blk read-only disk: {RO_IMAGE_BYTES} bytes in {}",
            disks.ro.display()
        );
    }
    if cached_origin(&disks.rw).as_deref() == Some(contents.rw_recipe.as_str()) {
        say!("split-blk ext4 disk: up to date ({})", disks.rw.display());
    } else {
        prerequisites::ensure(&[prerequisites::EXT4_TOOLS])?;
        forget_origin(&disks.rw);
        make_ext4(layout, &contents.rw_files, &disks.rw)?;
        write_origin(&disks.rw, &contents.rw_recipe)?;
        say!(
            "split-blk ext4 disk: {} MiB with {} in {}",
            RW_IMAGE_BYTES >> 20,
            contents
                .rw_files
                .iter()
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
                .join(", "),
            disks.rw.display()
        );
    }
    Ok(disks)
}

/// `<file>.partial`, renamed to `file` once complete.
fn partial_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

fn write_atomically(file: &Path, bytes: &[u8]) -> Result<()> {
    let partial = partial_path(file);
    fs::write(&partial, bytes).with_context(|| format!("cannot write {}", partial.display()))?;
    fs::rename(&partial, file).with_context(|| format!("cannot move {} into place", file.display()))
}

/// `mkfs.ext4 -q -F -d <files> <image> 16M`, the files staged in a scratch
/// directory next to the image (removed afterwards). No root needed.
fn make_ext4(layout: &Layout, files: &[(&str, Vec<u8>)], image: &Path) -> Result<()> {
    let staging = layout.guest_dir().join("split-rw-files");
    if staging.exists() {
        fs::remove_dir_all(&staging).with_context(|| format!("cannot clear {}", staging.display()))?;
    }
    fs::create_dir_all(&staging).with_context(|| format!("cannot create {}", staging.display()))?;
    for (name, bytes) in files {
        let path = staging.join(name);
        fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let partial = partial_path(image);
    let _ = fs::remove_file(&partial);
    say!("making {} (mkfs.ext4 -d)", image.display());
    let output = Command::new(prerequisites::MKFS_EXT4)
        .args(["-q", "-F", "-d"])
        .arg(&staging)
        .arg(&partial)
        .arg(RW_SIZE_ARGUMENT)
        .output()
        .with_context(|| format!("cannot run {}", prerequisites::MKFS_EXT4))?;
    let _ = fs::remove_dir_all(&staging);
    if !output.status.success() {
        let _ = fs::remove_file(&partial);
        bail!(
            "{} failed ({}): {}",
            prerequisites::MKFS_EXT4,
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let size = fs::metadata(&partial)
        .with_context(|| format!("mkfs.ext4 left no {}", partial.display()))?
        .len();
    if size != RW_IMAGE_BYTES {
        let _ = fs::remove_file(&partial);
        bail!("mkfs.ext4 made a {size}-byte image, not {RW_IMAGE_BYTES} bytes");
    }
    fs::rename(&partial, image).with_context(|| format!("cannot move {} into place", image.display()))
}

/// `len` bytes of SplitMix64 output from `seed`, each 64-bit word little
/// endian: the same bytes on every machine.
fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        bytes.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// The SHA-256 of `bytes` in hex, by the host's `sha256sum` (coreutils),
/// the same program as the DomU's busybox applet checks it with.
fn sha256_hex(bytes: &[u8]) -> Result<String> {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run sha256sum")?;
    // It reads everything before it writes its one line, so nothing blocks.
    child
        .stdin
        .take()
        .context("no pipe to sha256sum")?
        .write_all(bytes)
        .context("cannot feed sha256sum")?;
    let output = child.wait_with_output().context("sha256sum did not finish")?;
    if !output.status.success() {
        bail!(
            "sha256sum failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    match text.split_whitespace().next() {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|byte| byte.is_ascii_hexdigit()) => Ok(hex.to_string()),
        _ => bail!("sha256sum printed `{}`, no SHA-256", text.trim()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_gives_its_reference_sequence() {
        // SplitMix64 from seed 0: 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, ...
        let bytes = pseudo_random(0, 16);
        assert_eq!(bytes[..8], 0xe220_a839_7b1d_cdafu64.to_le_bytes());
        assert_eq!(bytes[8..], 0x6e78_9e6a_a1b9_65f4u64.to_le_bytes());
        assert_eq!(pseudo_random(7, 13), pseudo_random(7, 16)[..13]);
        assert_ne!(pseudo_random(DATA_SEED, 64), pseudo_random(RO_SEED, 64));
    }

    #[test]
    fn sha256_matches_the_standard_vectors() {
        assert_eq!(
            sha256_hex(b"").unwrap(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc").unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn the_read_only_image_has_a_partial_sector_the_domu_must_not_see() {
        assert_ne!(RO_IMAGE_BYTES % SECTOR_BYTES, 0);
        assert_eq!(RO_SECTORS, 2048);
        assert_eq!(RO_CHECKED_BYTES, 1 << 20);
        assert_eq!(RW_SECTORS, 32768);
    }

    #[test]
    fn the_ext4_files_carry_the_sums_the_domu_checks() {
        let contents = contents().unwrap();
        let names: Vec<&str> = contents.rw_files.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, [DATA_FILE, DATA_SUM_FILE, RO_SUM_FILE]);
        let data = &contents.rw_files[0].1;
        assert_eq!(data.len(), DATA_BYTES);
        assert_eq!(*data, pseudo_random(DATA_SEED, DATA_BYTES));
        let data_sum = String::from_utf8(contents.rw_files[1].1.clone()).unwrap();
        assert_eq!(data_sum, format!("{}  data.bin\n", sha256_hex(data).unwrap()));
        let ro_sum = String::from_utf8(contents.rw_files[2].1.clone()).unwrap();
        assert_eq!(
            ro_sum,
            format!("{}  -\n", sha256_hex(&contents.ro_image[..1 << 20]).unwrap())
        );
        assert_eq!(contents.ro_image.len() as u64, RO_IMAGE_BYTES);
        // The recipes name every input: one line each.
        assert!(contents.rw_recipe.contains(&data_sum[..64]), "{}", contents.rw_recipe);
        assert!(contents.rw_recipe.contains(&ro_sum[..64]), "{}", contents.rw_recipe);
        assert!(contents.rw_recipe.contains("mkfs.ext4 -q -F -d <dir> <file> 16M"));
        for recipe in [&contents.rw_recipe, &contents.ro_recipe] {
            assert!(!recipe.contains('\n'), "{recipe}");
        }
        // Deterministic.
        let again = super::contents().unwrap();
        assert_eq!(again.rw_recipe, contents.rw_recipe);
        assert_eq!(again.ro_recipe, contents.ro_recipe);
    }

    #[test]
    fn the_images_are_cached_in_target_guest() {
        let layout = Layout::new(PathBuf::from("/t"));
        assert_eq!(rw_path(&layout), PathBuf::from("/t/guest/split-rw.ext4"));
        assert_eq!(ro_path(&layout), PathBuf::from("/t/guest/split-ro.img"));
        assert_eq!(
            partial_path(Path::new("/t/guest/split-rw.ext4")),
            Path::new("/t/guest/split-rw.ext4.partial")
        );
    }

    /// Builds both images in a scratch target directory (with the host's
    /// mkfs.ext4, when there is one), and again only when out of date.
    #[test]
    fn ensure_makes_each_image_once_and_again_when_stale() {
        if !Path::new(prerequisites::MKFS_EXT4).exists() {
            eprintln!("no {}: skipped", prerequisites::MKFS_EXT4);
            return;
        }
        let root = std::env::temp_dir().join(format!("keel-split-disks-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let layout = Layout::new(root.join("target"));
        fs::create_dir_all(layout.guest_dir()).unwrap();
        let disks = ensure(&layout).unwrap();
        let expected = contents().unwrap();
        assert_eq!(fs::read(&disks.ro).unwrap(), expected.ro_image);
        assert_eq!(fs::metadata(&disks.rw).unwrap().len(), RW_IMAGE_BYTES);
        // The ext4 superblock's magic (0xef53 at 1024 + 56).
        let ext4 = fs::read(&disks.rw).unwrap();
        assert_eq!(ext4[1024 + 56..1024 + 58], [0x53, 0xef]);
        // The files are in it, whole (1 KiB blocks: data.bin's 1 MiB lies
        // in the image as is, the others' lines too).
        let data = &expected.rw_files[0].1;
        assert!(ext4.windows(4096).any(|window| window == &data[..4096]));
        for (_, line) in &expected.rw_files[1..] {
            assert!(ext4.windows(line.len()).any(|window| window == line.as_slice()));
        }
        assert_eq!(cached_origin(&disks.rw).as_deref(), Some(expected.rw_recipe.as_str()));
        assert_eq!(cached_origin(&disks.ro).as_deref(), Some(expected.ro_recipe.as_str()));
        // Up to date: left alone.
        fs::write(&disks.ro, b"untouched").unwrap();
        fs::write(&disks.rw, b"untouched").unwrap();
        ensure(&layout).unwrap();
        assert_eq!(fs::read(&disks.ro).unwrap(), b"untouched");
        assert_eq!(fs::read(&disks.rw).unwrap(), b"untouched");
        // Another recipe (an older xtask's), or no note: made again.
        write_origin(&disks.rw, "keel split-rw.ext4: an older recipe").unwrap();
        forget_origin(&disks.ro);
        ensure(&layout).unwrap();
        assert_eq!(fs::read(&disks.ro).unwrap(), expected.ro_image);
        assert_eq!(fs::metadata(&disks.rw).unwrap().len(), RW_IMAGE_BYTES);
        // A missing image, its note still there: made again.
        fs::remove_file(&disks.rw).unwrap();
        ensure(&layout).unwrap();
        assert_eq!(fs::metadata(&disks.rw).unwrap().len(), RW_IMAGE_BYTES);
        assert!(!layout.guest_dir().join("split-rw-files").exists(), "scratch left");
        assert!(!partial_path(&disks.rw).exists());
        fs::remove_dir_all(&root).unwrap();
    }
}
