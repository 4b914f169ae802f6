//! String instructions (MOVS, STOS, LODS, INS, OUTS, with or without REP)
//! that Keel must perform itself: string port I/O always exits, and a
//! string copy whose source or destination is device memory (or a hole)
//! arrives as an EPT violation like any other MMIO access.
//!
//! [`decode_string`] names the operation, element size, address size,
//! source segment and repeat prefix; [`execute`] performs up to a bounded
//! number of elements against a [`StringEnv`] (the hypervisor's view of
//! guest memory and ports) and updates RSI/RDI/RCX with the architectural
//! address-size rules. A long REP runs over several exits: between batches
//! RIP stays on the instruction, so the guest can take interrupts in
//! between exactly as REP string instructions allow on hardware.

mod decode;
#[cfg(test)]
mod tests;

use crate::mmio::AccessSize;

pub use decode::decode_string;

/// Which string instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StringOp {
    /// Copy `[seg:rSI]` to `[ES:rDI]`.
    Movs,
    /// Store AL/AX/EAX/RAX at `[ES:rDI]`.
    Stos,
    /// Load `[seg:rSI]` into AL/AX/EAX/RAX.
    Lods,
    /// Read port DX into `[ES:rDI]`.
    Ins,
    /// Write `[seg:rSI]` to port DX.
    Outs,
}

/// A segment register an operand is addressed through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segment {
    Es,
    Cs,
    Ss,
    Ds,
    Fs,
    Gs,
}

/// Width of rSI/rDI/rCX as the instruction uses them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressSize {
    Bits16,
    Bits32,
    Bits64,
}

impl AddressSize {
    pub const fn mask(self) -> u64 {
        match self {
            Self::Bits16 => 0xFFFF,
            Self::Bits32 => 0xFFFF_FFFF,
            Self::Bits64 => u64::MAX,
        }
    }

    /// Writes `value` into the part of `register` this size names: a
    /// 16-bit update keeps bits 63:16, a 32-bit one zero-extends (as every
    /// 32-bit register write does in 64-bit mode).
    pub const fn merge(self, register: u64, value: u64) -> u64 {
        match self {
            Self::Bits16 => (register & !0xFFFF) | (value & 0xFFFF),
            Self::Bits32 => value & 0xFFFF_FFFF,
            Self::Bits64 => value,
        }
    }
}

/// A decoded string instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StringInstruction {
    pub op: StringOp,
    /// Instruction length in bytes.
    pub len: usize,
    /// Element size.
    pub size: AccessSize,
    pub address_size: AddressSize,
    /// The segment of the rSI operand (DS unless overridden); the rDI
    /// operand is always ES.
    pub source_segment: Segment,
    /// REP (or REPNE, which these instructions treat the same way).
    pub repeat: bool,
}

/// The registers a string instruction reads and updates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StringRegs {
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    /// RFLAGS.DF: the indices move down instead of up.
    pub backwards: bool,
}

/// Guest memory and ports as a string instruction reaches them. Memory
/// operands are (segment, offset) pairs: the environment adds the segment
/// base, translates through the guest's page tables and checks access.
pub trait StringEnv {
    /// Why an element could not be performed (a fault to inject, or a
    /// reason to stop the domain).
    type Error;
    fn read(&mut self, segment: Segment, offset: u64, size: AccessSize) -> Result<u64, Self::Error>;
    fn write(&mut self, segment: Segment, offset: u64, size: AccessSize, value: u64) -> Result<(), Self::Error>;
    /// Checks that `write` at this place would succeed, without writing.
    fn check_write(&mut self, segment: Segment, offset: u64, size: AccessSize) -> Result<(), Self::Error>;
    fn port_in(&mut self, port: u16, size: AccessSize) -> u64;
    fn port_out(&mut self, port: u16, size: AccessSize, value: u64);
}

/// Whether the instruction finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Every element is done: move RIP past the instruction.
    Done,
    /// The batch limit was reached with elements left: leave RIP on the
    /// instruction so it continues after the next entry.
    More,
}

impl StringInstruction {
    /// Performs up to `max_elements` elements (at least one). On an error,
    /// `regs` reflect the elements completed before it, as the CPU leaves
    /// them when a REP string instruction faults part-way.
    pub fn execute<E: StringEnv>(
        &self,
        regs: &mut StringRegs,
        env: &mut E,
        max_elements: u64,
    ) -> Result<Progress, E::Error> {
        let mask = self.address_size.mask();
        for _ in 0..max_elements.max(1) {
            if self.repeat && regs.rcx & mask == 0 {
                return Ok(Progress::Done);
            }
            self.element(regs, env)?;
            if !self.repeat {
                return Ok(Progress::Done);
            }
            let count = (regs.rcx & mask).wrapping_sub(1);
            regs.rcx = self.address_size.merge(regs.rcx, count);
        }
        Ok(if regs.rcx & mask == 0 {
            Progress::Done
        } else {
            Progress::More
        })
    }

    fn element<E: StringEnv>(&self, regs: &mut StringRegs, env: &mut E) -> Result<(), E::Error> {
        let size = self.size;
        let port = regs.rdx as u16;
        let source = regs.rsi & self.address_size.mask();
        let dest = regs.rdi & self.address_size.mask();
        match self.op {
            StringOp::Movs => {
                let value = env.read(self.source_segment, source, size)?;
                env.write(Segment::Es, dest, size, value)?;
                regs.rsi = self.step(regs.rsi, regs.backwards);
                regs.rdi = self.step(regs.rdi, regs.backwards);
            }
            StringOp::Stos => {
                env.write(Segment::Es, dest, size, regs.rax & size.mask())?;
                regs.rdi = self.step(regs.rdi, regs.backwards);
            }
            StringOp::Lods => {
                let value = env.read(self.source_segment, source, size)?;
                regs.rax = crate::mmio::apply_load(regs.rax, value, size, crate::mmio::Extend::None, false);
                regs.rsi = self.step(regs.rsi, regs.backwards);
            }
            StringOp::Ins => {
                // The CPU checks the destination before it reads the port:
                // a port read has side effects and must not be lost to a
                // fault on the write.
                env.check_write(Segment::Es, dest, size)?;
                let value = env.port_in(port, size) & size.mask();
                env.write(Segment::Es, dest, size, value)?;
                regs.rdi = self.step(regs.rdi, regs.backwards);
            }
            StringOp::Outs => {
                let value = env.read(self.source_segment, source, size)?;
                env.port_out(port, size, value & size.mask());
                regs.rsi = self.step(regs.rsi, regs.backwards);
            }
        }
        Ok(())
    }

    /// An index register after one element.
    fn step(&self, register: u64, backwards: bool) -> u64 {
        let delta = u64::from(self.size.bytes());
        let index = register & self.address_size.mask();
        let moved = if backwards {
            index.wrapping_sub(delta)
        } else {
            index.wrapping_add(delta)
        };
        self.address_size.merge(register, moved)
    }
}
