//! MMIO emulation: a guest access to an emulated device page arrives as an
//! EPT violation; Keel fetches the instruction through the guest's page
//! tables, decodes it (`keel-insn`) and performs it against the device.

use keel_insn::mmio::{apply_load, decode_mmio, store_value, CodeBitness, MmioInstruction, MmioKind, StoreSource};
use keel_insn::string::{Segment, StringOp};
use keel_insn::walk::{fetch_instruction, PagingState, MAX_INSTRUCTION_LEN};
use keel_memory::GuestMemoryRead;

use crate::domain::GuestRam;
use crate::string_emulation::{Devices, StringError};
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
    bitness: CodeBitness,
    instruction: MmioInstruction,
}

impl DecodeCache {
    fn decode(
        &mut self,
        rip: u64,
        bytes: &[u8; MAX_INSTRUCTION_LEN],
        fetched: usize,
        bitness: CodeBitness,
    ) -> Option<MmioInstruction> {
        let slot = self.slots.get_mut((rip as usize) % CACHE_SLOTS)?;
        if let Some(hit) = slot.filter(|cached| {
            cached.rip == rip && cached.fetched == fetched && cached.bitness == bitness && &cached.bytes == bytes
        }) {
            return Some(hit.instruction);
        }
        let instruction = decode_mmio(bytes.get(..fetched)?, bitness).ok()?;
        *slot = Some(CachedDecode {
            rip,
            bytes: *bytes,
            fetched,
            bitness,
            instruction,
        });
        Some(instruction)
    }
}

/// Performs the faulting instruction: a plain move against the device at
/// `fault.gpa` (or [`Unbacked`] where there is none), or a string
/// instruction through [`crate::string_emulation`]. The instruction is
/// fetched through the guest's page tables from `memory`, at CS base + RIP
/// and decoded in the guest's current mode (CS.L/D): a table or instruction
/// byte outside guest RAM (a hole, device memory) makes it unfetchable,
/// never a read of something else.
pub fn emulate(
    platform: &mut VirtualPlatform,
    cache: &mut DecodeCache,
    memory: &mut GuestRam,
    vcpu: &mut impl Vcpu,
    fault: MemoryFault,
    is_device: bool,
) -> Result<(), StringError> {
    if fault.during_event_delivery {
        return Err(StringError::Stop(
            "the CPU touched device memory while delivering an event (IDT or stack there)",
        ));
    }
    if fault.guest_page_walk {
        return Err(StringError::Stop("the guest's page tables point into device memory"));
    }
    let fetched = fetch(&*memory, vcpu).map_err(StringError::Stop)?;
    let Some(instruction) = cache.decode(fetched.linear_ip, &fetched.bytes, fetched.len, fetched.bitness) else {
        // Not a plain move: a string copy to or from device memory
        // (`memcpy_fromio`, a `rep movs` out of /dev/mem) is the other
        // form guests use.
        return crate::string_emulation::emulate(
            memory,
            platform,
            vcpu,
            &fetched.bytes[..fetched.len],
            fetched.bitness,
            |string| !matches!(string.op, StringOp::Ins | StringOp::Outs),
        );
    };
    if is_device {
        perform(platform, vcpu, fault, instruction)
    } else {
        perform(&mut Unbacked, vcpu, fault, instruction)
    }
    .map_err(StringError::Stop)
}

/// INS/OUTS: a port exit whose data is in guest memory.
pub fn emulate_string_port(
    platform: &mut impl Devices,
    memory: &mut GuestRam,
    vcpu: &mut impl Vcpu,
    port: u16,
    write: bool,
) -> Result<(), StringError> {
    let fetched = fetch(&*memory, vcpu).map_err(StringError::Stop)?;
    let expected = if write { StringOp::Outs } else { StringOp::Ins };
    // The instruction takes its port from DX, as the exit reported it.
    let same_port = vcpu.regs().rdx as u16 == port;
    crate::string_emulation::emulate(
        memory,
        platform,
        vcpu,
        &fetched.bytes[..fetched.len],
        fetched.bitness,
        |string| string.op == expected && same_port,
    )
}

struct Fetched {
    linear_ip: u64,
    bytes: [u8; MAX_INSTRUCTION_LEN],
    len: usize,
    bitness: CodeBitness,
}

fn fetch<M: GuestMemoryRead + ?Sized>(memory: &M, vcpu: &impl Vcpu) -> Result<Fetched, &'static str> {
    let (cr0, cr3, cr4, efer) = vcpu.paging_registers();
    let paging = PagingState::new(cr0, cr3, cr4, efer);
    let bitness = vcpu.code_bitness();
    let cs_base = match bitness {
        CodeBitness::Bits64 => 0,
        CodeBitness::Bits16 | CodeBitness::Bits32 => vcpu.segment_base(Segment::Cs),
    };
    let linear_ip = cs_base.wrapping_add(vcpu.rip()) & bitness.linear_mask();
    let mut bytes = [0u8; MAX_INSTRUCTION_LEN];
    let len =
        fetch_instruction(memory, &paging, linear_ip, &mut bytes).map_err(|_| "the instruction cannot be fetched")?;
    Ok(Fetched {
        linear_ip,
        bytes,
        len,
        bitness,
    })
}

/// A plain MMIO move against `target`.
fn perform(
    target: &mut impl MmioTarget,
    vcpu: &mut impl Vcpu,
    fault: MemoryFault,
    instruction: MmioInstruction,
) -> Result<(), &'static str> {
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
