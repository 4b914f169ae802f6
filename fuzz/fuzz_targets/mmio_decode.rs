//! MMIO instruction decoding, guest page walks and instruction fetches.
//!
//! The MMIO path of `keel_insn` on guest-controlled data (input format:
//! `keel_fuzz::paging`): `decode_mmio` on raw bytes in every code
//! bitness, or a guest page walk (`PagingState::translate`) and
//! instruction fetch (`fetch_instruction`) over random page tables and
//! control registers, then the decoder on the fetched bytes.
//!
//! Beyond "no panic": a decoded instruction lies within the bytes given,
//! decodes the same from exactly its own bytes and is refused when cut
//! short (what a fetch cut at an unreadable page relies on); operands fit
//! their sizes. A translation keeps the page offset, stays below
//! MAXPHYADDR, and grants a read wherever it grants a write or a fetch,
//! at the same address; a fetch returns the bytes at that address.
#![no_main]

use keel_fuzz::paging::{Case, WalkCase};
use keel_insn::mmio::{
    apply_load, decode_mmio, store_value, AccessSize, CodeBitness, DecodeError, Extend, MmioKind, StoreSource,
};
use keel_insn::walk::{fetch_instruction, translate, AccessKind, PagingMode, MAX_INSTRUCTION_LEN};
use keel_memory::{GuestMemoryRead, GuestPhysAddr};
use libfuzzer_sys::fuzz_target;

const BITNESSES: [CodeBitness; 3] = [CodeBitness::Bits16, CodeBitness::Bits32, CodeBitness::Bits64];

fuzz_target!(|data: &[u8]| {
    match Case::parse(data) {
        Case::Decode(bytes) => {
            for bitness in BITNESSES {
                check_decode(bytes, bitness);
            }
        }
        Case::Walk(case) => check_walk(&case),
    }
});

fn check_decode(bytes: &[u8], bitness: CodeBitness) {
    let Ok(instruction) = decode_mmio(bytes, bitness) else {
        return;
    };
    let len = instruction.len;
    assert!(
        (1..=MAX_INSTRUCTION_LEN).contains(&len) && len <= bytes.len(),
        "length {len} of {} bytes",
        bytes.len()
    );
    assert_eq!(
        decode_mmio(&bytes[..len], bitness),
        Ok(instruction),
        "the instruction's own bytes decode differently"
    );
    assert_eq!(
        decode_mmio(&bytes[..len - 1], bitness),
        Err(DecodeError::Truncated),
        "{:02x?} without its last byte is not reported truncated ({bitness:?})",
        &bytes[..len]
    );
    let size = instruction.size;
    match instruction.kind {
        MmioKind::Store { source } => match source {
            StoreSource::Immediate(value) => assert_eq!(value & !size.mask(), 0, "immediate wider than the store"),
            StoreSource::Register(register) => {
                assert!(!register.high_byte || size == AccessSize::Byte);
                let value = store_value(u64::MAX, size, register.high_byte);
                assert_eq!(value, size.mask());
            }
        },
        MmioKind::Load { dest, extend } => {
            assert!(!dest.high_byte || (size == AccessSize::Byte && extend == Extend::None));
            let to = match extend {
                Extend::None => size,
                Extend::Zero { to } | Extend::Sign { to } => {
                    // `movsxd r32, m32` (no REX.W) "extends" to the same width.
                    assert!(to.bytes() >= size.bytes(), "extending {size:?} to {to:?}");
                    to
                }
            };
            const OLD: u64 = 0x1122_3344_5566_7788;
            let new = apply_load(OLD, u64::MAX, size, extend, dest.high_byte);
            // Bits the destination does not cover keep their value; a
            // 32-bit write clears bits 63:32.
            let kept = match to {
                AccessSize::Qword | AccessSize::Dword => 0,
                AccessSize::Word => !0xFFFF,
                AccessSize::Byte if dest.high_byte => !0xFF00,
                AccessSize::Byte => !0xFF,
            };
            assert_eq!(
                new & kept,
                OLD & kept,
                "{instruction:?} touched bits outside its destination"
            );
        }
    }
}

fn check_walk(case: &WalkCase) {
    let WalkCase {
        paging,
        linear_ip,
        memory,
    } = case;
    let linear = *linear_ip;
    let phys_bits = paging.max_phys_addr_bits.clamp(12, 52);
    let [read, write, execute] = [AccessKind::Read, AccessKind::Write, AccessKind::Execute]
        .map(|access| paging.translate(memory, linear, access));
    for (access, result) in [
        (AccessKind::Read, read),
        (AccessKind::Write, write),
        (AccessKind::Execute, execute),
    ] {
        if let Ok(gpa) = result {
            assert_eq!(gpa & 0xFFF, linear & 0xFFF, "{access:?}: page offset changed");
            if paging.mode() == PagingMode::Disabled {
                assert_eq!(gpa, linear & 0xFFFF_FFFF);
            } else {
                // The frame is cut to MAXPHYADDR; the offset into a large
                // page (up to 30 bits) is the linear address's.
                let bits = phys_bits.max(30);
                assert!(gpa >> bits == 0, "{access:?}: {gpa:#x} above MAXPHYADDR {phys_bits}");
            }
            assert_eq!(read, Ok(gpa), "{access:?} allowed where a read is not");
        }
    }
    if paging.max_phys_addr_bits >= 52 {
        let free = translate(
            memory,
            paging.cr0,
            paging.cr3,
            paging.cr4,
            paging.efer,
            linear,
            AccessKind::Read,
        );
        assert_eq!(free, read);
    }

    let mut buf = [0; MAX_INSTRUCTION_LEN];
    let fetched = fetch_instruction(memory, paging, linear, &mut buf);
    let in_first_page = (4096 - linear % 4096).min(MAX_INSTRUCTION_LEN as u64) as usize;
    match fetched {
        Ok(len) => {
            assert!(
                len == MAX_INSTRUCTION_LEN || len == in_first_page,
                "fetched {len} bytes"
            );
            let gpa = execute.expect("fetched without an executable translation");
            let mut expected = vec![0; in_first_page];
            memory
                .read(GuestPhysAddr::new(gpa), &mut expected)
                .expect("fetched bytes that are not RAM");
            assert_eq!(buf[..in_first_page], expected[..]);
            for bitness in BITNESSES {
                check_decode(&buf[..len], bitness);
            }
        }
        Err(_) => {
            // Only the first page can fail a fetch: its translation or read.
            if let Ok(gpa) = execute {
                assert!(memory.check_ram(GuestPhysAddr::new(gpa), in_first_page as u64).is_err());
            }
        }
    }
}
