//! MMIO emulation: a guest access to an emulated device page arrives as an
//! EPT violation; Keel fetches the instruction through the guest's page
//! tables, decodes it (`keel-insn`) and performs it against the device.

use keel_insn::mmio::{apply_load, decode_mmio, store_value, CodeBitness, MmioInstruction, MmioKind, StoreSource};
use keel_insn::walk::{fetch_instruction, PagingState, MAX_INSTRUCTION_LEN};
use keel_memory::GuestMemoryRead;

use crate::vcpu::{MemoryFault, Vcpu};
use crate::vplatform::VirtualPlatform;

/// Where an emulated MMIO access lands.
pub trait MmioTarget {
    fn read(&mut self, gpa: u64, size: u8) -> u64;
    fn write(&mut self, gpa: u64, size: u8, value: u64);
}

impl MmioTarget for VirtualPlatform {
    fn read(&mut self, gpa: u64, size: u8) -> u64 {
        self.mmio_read(gpa, size)
    }

    fn write(&mut self, gpa: u64, size: u8, value: u64) {
        self.mmio_write(gpa, size, value)
    }
}

/// Guest-physical addresses with neither RAM nor a device: like an empty
/// bus on a PC, reads return all ones and writes are dropped.
pub struct Unbacked;

impl MmioTarget for Unbacked {
    fn read(&mut self, _gpa: u64, size: u8) -> u64 {
        keel_devices::all_ones(size)
    }

    fn write(&mut self, _gpa: u64, _size: u8, _value: u64) {}
}

const CACHE_SLOTS: usize = 16;

/// Recently decoded MMIO instructions by RIP. Guests touch device registers
/// from a handful of places (the APIC EOI write above all), and decoding is
/// the expensive part of an MMIO exit. A hit still requires the freshly
/// fetched bytes to match, so changed code is decoded again.
#[derive(Default)]
pub struct DecodeCache {
    slots: [Option<CachedDecode>; CACHE_SLOTS],
}

#[derive(Clone, Copy)]
struct CachedDecode {
    rip: u64,
    bytes: [u8; MAX_INSTRUCTION_LEN],
    fetched: usize,
    instruction: MmioInstruction,
}

impl DecodeCache {
    fn decode(&mut self, rip: u64, bytes: &[u8; MAX_INSTRUCTION_LEN], fetched: usize) -> Option<MmioInstruction> {
        let slot = self.slots.get_mut((rip as usize) % CACHE_SLOTS)?;
        if let Some(hit) =
            slot.filter(|cached| cached.rip == rip && cached.fetched == fetched && &cached.bytes == bytes)
        {
            return Some(hit.instruction);
        }
        let instruction = decode_mmio(bytes.get(..fetched)?, CodeBitness::Bits64).ok()?;
        *slot = Some(CachedDecode {
            rip,
            bytes: *bytes,
            fetched,
            instruction,
        });
        Some(instruction)
    }
}

/// Performs the faulting instruction against `target` (the device at
/// `fault.gpa`, or [`Unbacked`]). The instruction is fetched through the
/// guest's page tables from `memory`: a table or instruction byte outside
/// guest RAM (a hole, device memory) makes it unfetchable, never a read of
/// something else.
pub fn emulate<M: GuestMemoryRead + ?Sized>(
    target: &mut impl MmioTarget,
    cache: &mut DecodeCache,
    memory: &M,
    vcpu: &mut impl Vcpu,
    fault: MemoryFault,
) -> Result<(), &'static str> {
    if fault.during_event_delivery {
        return Err("the CPU touched device memory while delivering an event (IDT or stack there)");
    }
    if fault.guest_page_walk {
        return Err("the guest's page tables point into device memory");
    }
    let (cr0, cr3, cr4, efer) = vcpu.paging_registers();
    let paging = PagingState::new(cr0, cr3, cr4, efer);
    let mut bytes = [0u8; MAX_INSTRUCTION_LEN];
    let rip = vcpu.rip();
    let fetched =
        fetch_instruction(memory, &paging, rip, &mut bytes).map_err(|_| "the instruction cannot be fetched")?;
    let instruction = cache
        .decode(rip, &bytes, fetched)
        .ok_or("the instruction is not a supported MMIO access")?;
    let size = instruction.size.bytes();
    let is_store = matches!(instruction.kind, MmioKind::Store { .. });
    if is_store != fault.write {
        return Err("the instruction at RIP does not match the faulting access");
    }
    match instruction.kind {
        MmioKind::Load { dest, extend } => {
            let value = target.read(fault.gpa, size);
            let old = vcpu.gpr(dest.gpr.number());
            vcpu.set_gpr(
                dest.gpr.number(),
                apply_load(old, value, instruction.size, extend, dest.high_byte),
            );
        }
        MmioKind::Store { source } => {
            let value = match source {
                StoreSource::Register(register) => {
                    store_value(vcpu.gpr(register.gpr.number()), instruction.size, register.high_byte)
                }
                StoreSource::Immediate(value) => value,
            };
            target.write(fault.gpa, size, value);
        }
    }
    vcpu.advance_rip(instruction.len as u64);
    Ok(())
}
