use iced_x86::{Decoder, DecoderError, DecoderOptions, Instruction, MemorySize, Mnemonic, OpKind};

use super::gpr::decode_register;
use super::{AccessSize, CodeBitness, DecodeError, Extend, MmioInstruction, MmioKind, StoreSource};

/// Which extending load an instruction performs.
#[derive(Clone, Copy)]
enum Extension {
    Zero,
    Sign,
}

/// Decodes the first instruction in `bytes` as an MMIO load or store.
///
/// Bytes after the instruction are ignored, so a full 15-byte fetch can be
/// passed as is. The memory address itself is not decoded: the EPT-violation
/// exit already reports the guest-physical address that was touched.
pub fn decode_mmio(bytes: &[u8], bitness: CodeBitness) -> Result<MmioInstruction, DecodeError> {
    let instruction = decode_first(bytes, bitness)?;
    let mnemonic = instruction.mnemonic();
    let extension = match mnemonic {
        Mnemonic::Mov => None,
        Mnemonic::Movzx => Some(Extension::Zero),
        Mnemonic::Movsx | Mnemonic::Movsxd => Some(Extension::Sign),
        _ => return Err(DecodeError::Unsupported { mnemonic }),
    };
    let bad_operands = DecodeError::UnsupportedOperands { mnemonic };
    let size = access_size(instruction.memory_size()).ok_or(bad_operands)?;
    let kind = match extension {
        None => decode_mov(&instruction, size),
        Some(extension) => decode_extending_load(&instruction, extension),
    }
    .ok_or(bad_operands)?;
    Ok(MmioInstruction {
        len: instruction.len(),
        size,
        kind,
    })
}

/// The first instruction in `bytes`, in `bitness` code: truncated bytes
/// and invalid encodings are errors.
pub(crate) fn decode_first(bytes: &[u8], bitness: CodeBitness) -> Result<Instruction, DecodeError> {
    let mut decoder =
        Decoder::try_new(bitness.bits(), bytes, DecoderOptions::NONE).map_err(|_| DecodeError::Invalid)?;
    let instruction = decoder.decode();
    if instruction.is_invalid() {
        return Err(match decoder.last_error() {
            DecoderError::NoMoreBytes => DecodeError::Truncated,
            _ => DecodeError::Invalid,
        });
    }
    Ok(instruction)
}

/// `mov` between memory and a register, or an immediate into memory.
fn decode_mov(instruction: &Instruction, size: AccessSize) -> Option<MmioKind> {
    match (instruction.op0_kind(), instruction.op1_kind()) {
        (OpKind::Memory, OpKind::Register) => {
            let (source, _) = decode_register(instruction.op1_register())?;
            Some(MmioKind::Store {
                source: StoreSource::Register(source),
            })
        }
        (OpKind::Register, OpKind::Memory) => {
            let (dest, _) = decode_register(instruction.op0_register())?;
            Some(MmioKind::Load {
                dest,
                extend: Extend::None,
            })
        }
        (OpKind::Memory, _) => {
            // iced already sign-extends `imm32` for 64-bit stores.
            let immediate = instruction.try_immediate(1).ok()?;
            Some(MmioKind::Store {
                source: StoreSource::Immediate(immediate & size.mask()),
            })
        }
        _ => None,
    }
}

/// `movzx`/`movsx`/`movsxd`: always a register destination, memory source.
fn decode_extending_load(instruction: &Instruction, extension: Extension) -> Option<MmioKind> {
    if (instruction.op0_kind(), instruction.op1_kind()) != (OpKind::Register, OpKind::Memory) {
        return None;
    }
    let (dest, to) = decode_register(instruction.op0_register())?;
    let extend = match extension {
        Extension::Zero => Extend::Zero { to },
        Extension::Sign => Extend::Sign { to },
    };
    Some(MmioKind::Load { dest, extend })
}

/// Width of the memory operand. Only the scalar integer sizes the accepted
/// mnemonics use can appear; anything else (e.g. a far pointer) is refused.
const fn access_size(memory: MemorySize) -> Option<AccessSize> {
    match memory {
        MemorySize::UInt8 | MemorySize::Int8 => Some(AccessSize::Byte),
        MemorySize::UInt16 | MemorySize::Int16 => Some(AccessSize::Word),
        MemorySize::UInt32 | MemorySize::Int32 => Some(AccessSize::Dword),
        MemorySize::UInt64 | MemorySize::Int64 => Some(AccessSize::Qword),
        _ => None,
    }
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
