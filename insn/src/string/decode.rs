use iced_x86::{Instruction, Mnemonic, OpKind, Register};

use super::{AddressSize, Segment, StringInstruction, StringOp};
use crate::mmio::{AccessSize, CodeBitness, DecodeError};

/// Decodes the first instruction in `bytes` as a string instruction Keel
/// performs (MOVS, STOS, LODS, INS, OUTS). CMPS and SCAS are refused: no
/// device register is compared against, and they only read.
pub fn decode_string(bytes: &[u8], bitness: CodeBitness) -> Result<StringInstruction, DecodeError> {
    let instruction = crate::mmio::decode_first(bytes, bitness)?;
    let mnemonic = instruction.mnemonic();
    let (op, size) = operation(mnemonic).ok_or(DecodeError::Unsupported { mnemonic })?;
    let bad_operands = DecodeError::UnsupportedOperands { mnemonic };
    // The string forms name their index register operands with these
    // kinds; the same mnemonics also name SSE instructions (MOVSD xmm).
    let address_size = string_operands(&instruction).ok_or(bad_operands)?;
    let source_segment = segment(instruction.memory_segment()).ok_or(bad_operands)?;
    Ok(StringInstruction {
        op,
        len: instruction.len(),
        size,
        address_size,
        source_segment,
        repeat: instruction.has_rep_prefix() || instruction.has_repne_prefix(),
    })
}

fn operation(mnemonic: Mnemonic) -> Option<(StringOp, AccessSize)> {
    use AccessSize::{Byte, Dword, Qword, Word};
    Some(match mnemonic {
        Mnemonic::Movsb => (StringOp::Movs, Byte),
        Mnemonic::Movsw => (StringOp::Movs, Word),
        Mnemonic::Movsd => (StringOp::Movs, Dword),
        Mnemonic::Movsq => (StringOp::Movs, Qword),
        Mnemonic::Stosb => (StringOp::Stos, Byte),
        Mnemonic::Stosw => (StringOp::Stos, Word),
        Mnemonic::Stosd => (StringOp::Stos, Dword),
        Mnemonic::Stosq => (StringOp::Stos, Qword),
        Mnemonic::Lodsb => (StringOp::Lods, Byte),
        Mnemonic::Lodsw => (StringOp::Lods, Word),
        Mnemonic::Lodsd => (StringOp::Lods, Dword),
        Mnemonic::Lodsq => (StringOp::Lods, Qword),
        Mnemonic::Insb => (StringOp::Ins, Byte),
        Mnemonic::Insw => (StringOp::Ins, Word),
        Mnemonic::Insd => (StringOp::Ins, Dword),
        Mnemonic::Outsb => (StringOp::Outs, Byte),
        Mnemonic::Outsw => (StringOp::Outs, Word),
        Mnemonic::Outsd => (StringOp::Outs, Dword),
        _ => return None,
    })
}

/// The address size, read off the string operands; `None` unless the
/// instruction has them (e.g. SSE `movsd xmm0, [rax]`).
fn string_operands(instruction: &Instruction) -> Option<AddressSize> {
    let mut size = None;
    for operand in 0..instruction.op_count() {
        let this = match instruction.op_kind(operand) {
            OpKind::MemorySegSI | OpKind::MemoryESDI => AddressSize::Bits16,
            OpKind::MemorySegESI | OpKind::MemoryESEDI => AddressSize::Bits32,
            OpKind::MemorySegRSI | OpKind::MemoryESRDI => AddressSize::Bits64,
            _ => continue,
        };
        size = Some(this);
    }
    size
}

fn segment(register: Register) -> Option<Segment> {
    Some(match register {
        Register::ES => Segment::Es,
        Register::CS => Segment::Cs,
        Register::SS => Segment::Ss,
        Register::DS => Segment::Ds,
        Register::FS => Segment::Fs,
        Register::GS => Segment::Gs,
        // STOS/INS have no rSI operand: report DS, which they never use.
        Register::None => Segment::Ds,
        _ => return None,
    })
}
