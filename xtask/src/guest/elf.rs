//! Just enough ELF to tell whether a Linux binary can run in an initramfs
//! that has no dynamic loader: it must be a 64-bit x86-64 executable
//! without a `PT_INTERP` program header (static or static-pie).

use anyhow::{bail, Result};

const PT_INTERP: u32 = 3;
const EM_X86_64: u16 = 62;

fn u16_at(bytes: &[u8], offset: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(offset..offset + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(offset..offset + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], offset: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(offset..offset + 8)?.try_into().ok()?))
}

/// Fails unless `binary` is a static x86-64 ELF executable.
pub fn check_static_x86_64(binary: &[u8]) -> Result<()> {
    if !binary.starts_with(b"\x7fELF") {
        bail!("not an ELF file");
    }
    // ELFCLASS64, little-endian.
    if binary.get(4..6) != Some(&[2, 1][..]) {
        bail!("not a 64-bit little-endian ELF file");
    }
    if u16_at(binary, 0x12) != Some(EM_X86_64) {
        bail!("not an x86-64 binary");
    }
    let truncated = || anyhow::anyhow!("truncated ELF program headers");
    let table = u64_at(binary, 0x20).ok_or_else(truncated)?;
    let entry_size = u16_at(binary, 0x36).ok_or_else(truncated)?;
    let entries = u16_at(binary, 0x38).ok_or_else(truncated)?;
    let table = usize::try_from(table).map_err(|_| truncated())?;
    for index in 0..usize::from(entries) {
        let offset = table
            .checked_add(index * usize::from(entry_size))
            .ok_or_else(truncated)?;
        let kind = u32_at(binary, offset).ok_or_else(truncated)?;
        if kind == PT_INTERP {
            bail!("dynamically linked (it names a program interpreter), but Dom0 has no dynamic loader");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELF header and program headers of the given types.
    fn elf(program_headers: &[u32]) -> Vec<u8> {
        let mut image = vec![0u8; 64 + 56 * program_headers.len()];
        image[..4].copy_from_slice(b"\x7fELF");
        image[4] = 2;
        image[5] = 1;
        image[0x12..0x14].copy_from_slice(&EM_X86_64.to_le_bytes());
        image[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        image[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        image[0x38..0x3a].copy_from_slice(&(program_headers.len() as u16).to_le_bytes());
        for (index, kind) in program_headers.iter().enumerate() {
            let offset = 64 + 56 * index;
            image[offset..offset + 4].copy_from_slice(&kind.to_le_bytes());
        }
        image
    }

    #[test]
    fn a_static_binary_passes() {
        // PT_PHDR, PT_LOAD, PT_DYNAMIC (static-pie has one), PT_GNU_STACK.
        check_static_x86_64(&elf(&[6, 1, 2, 0x6474_e551])).unwrap();
    }

    #[test]
    fn a_dynamic_binary_is_refused() {
        let error = check_static_x86_64(&elf(&[6, PT_INTERP, 1])).unwrap_err();
        assert!(error.to_string().contains("dynamic"), "{error}");
    }

    #[test]
    fn other_files_are_refused() {
        assert!(check_static_x86_64(b"#!/bin/sh\n").is_err());
        let mut arm = elf(&[1]);
        arm[0x12..0x14].copy_from_slice(&183u16.to_le_bytes());
        assert!(check_static_x86_64(&arm).is_err());
        let mut short = elf(&[1, 1]);
        short.truncate(64 + 56);
        assert!(check_static_x86_64(&short).is_err());
    }

    #[test]
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    fn the_binary_running_these_tests_is_judged_by_its_interpreter() {
        // Host test binaries are dynamically linked unless built with crt-static.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let dynamic = cfg!(not(target_feature = "crt-static"));
        assert_eq!(check_static_x86_64(&me).is_err(), dynamic);
    }
}
