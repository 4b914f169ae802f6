use super::*;
use crate::mmio::{Gpr, RegisterOperand};

fn decode64(bytes: &[u8]) -> Result<MmioInstruction, DecodeError> {
    decode_mmio(bytes, CodeBitness::Bits64)
}

const fn reg(gpr: Gpr) -> RegisterOperand {
    RegisterOperand { gpr, high_byte: false }
}

const fn high(gpr: Gpr) -> RegisterOperand {
    RegisterOperand { gpr, high_byte: true }
}

fn store(len: usize, size: AccessSize, source: StoreSource) -> MmioInstruction {
    MmioInstruction {
        len,
        size,
        kind: MmioKind::Store { source },
    }
}

fn load(len: usize, size: AccessSize, dest: RegisterOperand, extend: Extend) -> MmioInstruction {
    MmioInstruction {
        len,
        size,
        kind: MmioKind::Load { dest, extend },
    }
}

#[test]
fn mov_dword_store_from_register() {
    // mov dword ptr [rax], ecx
    assert_eq!(
        decode64(&[0x89, 0x08]),
        Ok(store(2, AccessSize::Dword, StoreSource::Register(reg(Gpr::Rcx))))
    );
}

#[test]
fn mov_dword_load_with_displacement_ignores_trailing_bytes() {
    // mov eax, dword ptr [rdx+0x10]; nop; nop
    assert_eq!(
        decode64(&[0x8B, 0x42, 0x10, 0x90, 0x90]),
        Ok(load(3, AccessSize::Dword, reg(Gpr::Rax), Extend::None))
    );
}

#[test]
fn mov_byte_immediate_store() {
    // mov byte ptr [rdi], 0x5
    assert_eq!(
        decode64(&[0xC6, 0x07, 0x05]),
        Ok(store(3, AccessSize::Byte, StoreSource::Immediate(5)))
    );
}

#[test]
fn mov_word_immediate_store() {
    // mov word ptr [rax], 0x1234
    assert_eq!(
        decode64(&[0x66, 0xC7, 0x00, 0x34, 0x12]),
        Ok(store(5, AccessSize::Word, StoreSource::Immediate(0x1234)))
    );
}

#[test]
fn qword_immediate_store_sign_extends_imm32() {
    // mov qword ptr [rax], -1
    assert_eq!(
        decode64(&[0x48, 0xC7, 0x00, 0xFF, 0xFF, 0xFF, 0xFF]),
        Ok(store(7, AccessSize::Qword, StoreSource::Immediate(u64::MAX)))
    );
}

#[test]
fn mov_qword_store_from_extended_register() {
    // mov qword ptr [rax], r9
    assert_eq!(
        decode64(&[0x4C, 0x89, 0x08]),
        Ok(store(3, AccessSize::Qword, StoreSource::Register(reg(Gpr::R9))))
    );
}

#[test]
fn mov_word_store_with_operand_size_prefix() {
    // mov word ptr [rax], cx
    assert_eq!(
        decode64(&[0x66, 0x89, 0x08]),
        Ok(store(3, AccessSize::Word, StoreSource::Register(reg(Gpr::Rcx))))
    );
}

#[test]
fn movzx_word_load_into_32_bit_register() {
    // movzx eax, word ptr [rcx]
    let to = AccessSize::Dword;
    assert_eq!(
        decode64(&[0x0F, 0xB7, 0x01]),
        Ok(load(3, AccessSize::Word, reg(Gpr::Rax), Extend::Zero { to }))
    );
}

#[test]
fn movsx_byte_load_into_64_bit_register() {
    // movsx rax, byte ptr [rcx]
    let to = AccessSize::Qword;
    assert_eq!(
        decode64(&[0x48, 0x0F, 0xBE, 0x01]),
        Ok(load(4, AccessSize::Byte, reg(Gpr::Rax), Extend::Sign { to }))
    );
}

#[test]
fn movsxd_dword_load_into_64_bit_register() {
    // movsxd r8, dword ptr [rcx]
    let to = AccessSize::Qword;
    assert_eq!(
        decode64(&[0x4C, 0x63, 0x01]),
        Ok(load(3, AccessSize::Dword, reg(Gpr::R8), Extend::Sign { to }))
    );
}

#[test]
fn high_byte_load_and_store() {
    // mov ah, byte ptr [rbx]
    assert_eq!(
        decode64(&[0x8A, 0x23]),
        Ok(load(2, AccessSize::Byte, high(Gpr::Rax), Extend::None))
    );
    // mov byte ptr [rax], bh
    assert_eq!(
        decode64(&[0x88, 0x38]),
        Ok(store(2, AccessSize::Byte, StoreSource::Register(high(Gpr::Rbx))))
    );
}

#[test]
fn rex_byte_register_is_low_byte_not_high_byte() {
    // mov byte ptr [rax], spl (same ModRM as `ah`, REX turns it into SPL)
    assert_eq!(
        decode64(&[0x40, 0x88, 0x20]),
        Ok(store(3, AccessSize::Byte, StoreSource::Register(reg(Gpr::Rsp))))
    );
}

#[test]
fn absolute_moffs_load() {
    // mov eax, dword ptr [0xFEC00010] (64-bit moffs)
    let bytes = [0xA1, 0x10, 0x00, 0xC0, 0xFE, 0, 0, 0, 0];
    assert_eq!(
        decode64(&bytes),
        Ok(load(9, AccessSize::Dword, reg(Gpr::Rax), Extend::None))
    );
}

#[test]
fn decodes_32_and_16_bit_code() {
    // mov eax, dword ptr [edx+0x10]
    assert_eq!(
        decode_mmio(&[0x8B, 0x42, 0x10], CodeBitness::Bits32),
        Ok(load(3, AccessSize::Dword, reg(Gpr::Rax), Extend::None))
    );
    // mov word ptr [bx], ax: 16-bit default operand size
    assert_eq!(
        decode_mmio(&[0x89, 0x07], CodeBitness::Bits16),
        Ok(store(2, AccessSize::Word, StoreSource::Register(reg(Gpr::Rax))))
    );
}

#[test]
fn read_modify_write_is_unsupported_with_mnemonic() {
    // lock or dword ptr [rax], ecx
    assert_eq!(
        decode64(&[0xF0, 0x09, 0x08]),
        Err(DecodeError::Unsupported { mnemonic: Mnemonic::Or })
    );
}

#[test]
fn string_exchange_and_vector_moves_are_unsupported() {
    let cases: [(&[u8], Mnemonic); 3] = [
        (&[0xF3, 0xA4], Mnemonic::Movsb),              // rep movsb
        (&[0x87, 0x08], Mnemonic::Xchg),               // xchg [rax], ecx
        (&[0x66, 0x0F, 0x6F, 0x00], Mnemonic::Movdqa), // movdqa xmm0, [rax]
    ];
    for (bytes, mnemonic) in cases {
        assert_eq!(decode64(bytes), Err(DecodeError::Unsupported { mnemonic }));
    }
}

#[test]
fn unsupported_error_names_the_mnemonic() {
    let error = DecodeError::Unsupported {
        mnemonic: Mnemonic::Xchg,
    };
    assert_eq!(error.to_string(), "unsupported MMIO instruction `Xchg`");
}

#[test]
fn segment_register_mov_is_rejected() {
    // mov ds, word ptr [rax]
    assert_eq!(
        decode64(&[0x8E, 0x18]),
        Err(DecodeError::UnsupportedOperands {
            mnemonic: Mnemonic::Mov
        })
    );
}

#[test]
fn register_to_register_mov_has_no_memory_access() {
    // mov eax, ecx
    assert_eq!(
        decode64(&[0x89, 0xC8]),
        Err(DecodeError::UnsupportedOperands {
            mnemonic: Mnemonic::Mov
        })
    );
}

#[test]
fn truncated_bytes_are_reported() {
    assert_eq!(decode64(&[0x8B, 0x42]), Err(DecodeError::Truncated));
    assert_eq!(decode64(&[0x48, 0xC7, 0x00, 0xFF]), Err(DecodeError::Truncated));
    assert_eq!(decode64(&[]), Err(DecodeError::Truncated));
}

#[test]
fn invalid_encodings_are_reported() {
    // `push es` does not exist in 64-bit mode; LOCK is illegal on MOV.
    // Padded like a real 15-byte fetch.
    let mut push_es = [0x90; 15];
    push_es[0] = 0x06;
    assert_eq!(decode64(&push_es), Err(DecodeError::Invalid));
    assert_eq!(decode64(&[0xF0, 0x89, 0x08]), Err(DecodeError::Invalid));
}
