use std::collections::BTreeMap;
use std::vec::Vec;

use super::*;
use crate::mmio::{AccessSize, CodeBitness, DecodeError};

fn decode64(bytes: &[u8]) -> StringInstruction {
    decode_string(bytes, CodeBitness::Bits64).expect("decodes")
}

#[test]
fn decodes_the_string_forms_with_size_segment_and_repeat() {
    let rep_movsb = decode64(&[0xF3, 0xA4]);
    assert_eq!(rep_movsb.op, StringOp::Movs);
    assert_eq!(rep_movsb.size, AccessSize::Byte);
    assert_eq!(rep_movsb.address_size, AddressSize::Bits64);
    assert_eq!(rep_movsb.source_segment, Segment::Ds);
    assert!(rep_movsb.repeat);
    assert_eq!(rep_movsb.len, 2);

    let movsq = decode64(&[0x48, 0xA5]);
    assert_eq!(
        (movsq.op, movsq.size, movsq.repeat),
        (StringOp::Movs, AccessSize::Qword, false)
    );

    // fs: rep outsw with a 32-bit address size.
    let outsw = decode64(&[0x64, 0x67, 0xF3, 0x66, 0x6F]);
    assert_eq!(outsw.op, StringOp::Outs);
    assert_eq!(outsw.size, AccessSize::Word);
    assert_eq!(outsw.address_size, AddressSize::Bits32);
    assert_eq!(outsw.source_segment, Segment::Fs);
    assert_eq!(outsw.len, 5);

    assert_eq!(decode64(&[0xF3, 0x48, 0xAB]).op, StringOp::Stos);
    assert_eq!(decode64(&[0xAC]).op, StringOp::Lods);
    let insd = decode64(&[0xF2, 0x6D]);
    assert_eq!(
        (insd.op, insd.size, insd.repeat),
        (StringOp::Ins, AccessSize::Dword, true)
    );
}

#[test]
fn the_code_size_sets_the_default_address_and_operand_sizes() {
    let sixteen = decode_string(&[0xA5], CodeBitness::Bits16).unwrap();
    assert_eq!(
        (sixteen.size, sixteen.address_size),
        (AccessSize::Word, AddressSize::Bits16)
    );
    let thirty_two = decode_string(&[0xA5], CodeBitness::Bits32).unwrap();
    assert_eq!(
        (thirty_two.size, thirty_two.address_size),
        (AccessSize::Dword, AddressSize::Bits32)
    );
    // 0x48 is DEC EAX in 32-bit code, not REX.W: it is not a string instruction.
    assert!(decode_string(&[0x48, 0xA5], CodeBitness::Bits32).is_err());
}

#[test]
fn refuses_compare_scan_sse_and_broken_bytes() {
    assert!(matches!(decode64(&[0xA4]).op, StringOp::Movs));
    assert!(matches!(
        decode_string(&[0xF3, 0xA6], CodeBitness::Bits64),
        Err(DecodeError::Unsupported { .. })
    ));
    assert!(matches!(
        decode_string(&[0xAE], CodeBitness::Bits64),
        Err(DecodeError::Unsupported { .. })
    ));
    // movsd xmm0, [rax]: the SSE instruction behind the same mnemonic.
    assert!(matches!(
        decode_string(&[0xF2, 0x0F, 0x10, 0x00], CodeBitness::Bits64),
        Err(DecodeError::UnsupportedOperands { .. })
    ));
    assert_eq!(decode_string(&[0xF3], CodeBitness::Bits64), Err(DecodeError::Truncated));
    assert_eq!(decode_string(&[], CodeBitness::Bits64), Err(DecodeError::Truncated));
}

/// Byte-addressed memory per segment, ports that record writes and answer
/// reads with their number, and an optional faulting offset.
#[derive(Default)]
struct FakeEnv {
    memory: BTreeMap<(u8, u64), u8>,
    port_writes: Vec<(u16, u64)>,
    port_reads: usize,
    fault_at: Option<u64>,
}

fn segment_key(segment: Segment) -> u8 {
    segment as u8
}

impl StringEnv for FakeEnv {
    type Error = u64;

    fn read(&mut self, segment: Segment, offset: u64, size: AccessSize) -> Result<u64, u64> {
        if self.fault_at == Some(offset) {
            return Err(offset);
        }
        let mut value = 0;
        for byte in 0..u64::from(size.bytes()) {
            let stored = self
                .memory
                .get(&(segment_key(segment), offset + byte))
                .copied()
                .unwrap_or(0);
            value |= u64::from(stored) << (8 * byte);
        }
        Ok(value)
    }

    fn write(&mut self, segment: Segment, offset: u64, size: AccessSize, value: u64) -> Result<(), u64> {
        self.check_write(segment, offset, size)?;
        for byte in 0..u64::from(size.bytes()) {
            self.memory
                .insert((segment_key(segment), offset + byte), (value >> (8 * byte)) as u8);
        }
        Ok(())
    }

    fn check_write(&mut self, _segment: Segment, offset: u64, _size: AccessSize) -> Result<(), u64> {
        match self.fault_at {
            Some(at) if at == offset => Err(offset),
            _ => Ok(()),
        }
    }

    fn port_in(&mut self, port: u16, _size: AccessSize) -> u64 {
        self.port_reads += 1;
        u64::from(port) | 0xAB00
    }

    fn port_out(&mut self, port: u16, _size: AccessSize, value: u64) {
        self.port_writes.push((port, value));
    }
}

#[test]
fn rep_movs_copies_and_counts_in_batches() {
    let movsb = decode64(&[0xF3, 0xA4]);
    let mut env = FakeEnv::default();
    for i in 0..10u64 {
        env.memory.insert((segment_key(Segment::Ds), 0x100 + i), i as u8 + 1);
    }
    let mut regs = StringRegs {
        rcx: 10,
        rsi: 0x100,
        rdi: 0x200,
        ..StringRegs::default()
    };
    assert_eq!(movsb.execute(&mut regs, &mut env, 4), Ok(Progress::More));
    assert_eq!((regs.rcx, regs.rsi, regs.rdi), (6, 0x104, 0x204));
    assert_eq!(movsb.execute(&mut regs, &mut env, 100), Ok(Progress::Done));
    assert_eq!((regs.rcx, regs.rsi, regs.rdi), (0, 0x10A, 0x20A));
    for i in 0..10u64 {
        assert_eq!(env.memory[&(segment_key(Segment::Es), 0x200 + i)], i as u8 + 1);
    }
    // An exhausted count does nothing.
    assert_eq!(movsb.execute(&mut regs, &mut env, 100), Ok(Progress::Done));
    assert_eq!(regs.rdi, 0x20A);
}

#[test]
fn direction_flag_and_address_size_wrap_the_indices() {
    // rep stosw with a 16-bit address size, going down from SI/DI = 0:
    // the index wraps within 16 bits and the upper bits stay.
    let stosw = decode_string(&[0xF3, 0xAB], CodeBitness::Bits16).unwrap();
    let mut env = FakeEnv::default();
    let mut regs = StringRegs {
        rax: 0x1234,
        rcx: 0xDEAD_0000_0002,
        rdi: 0xFFFF_0000_0000_0000,
        backwards: true,
        ..StringRegs::default()
    };
    assert_eq!(stosw.execute(&mut regs, &mut env, 10), Ok(Progress::Done));
    assert_eq!(regs.rdi, 0xFFFF_0000_0000_FFFC);
    assert_eq!(regs.rcx, 0xDEAD_0000_0000);
    assert_eq!(env.memory[&(segment_key(Segment::Es), 0)], 0x34);
    assert_eq!(env.memory[&(segment_key(Segment::Es), 0xFFFE)], 0x34);

    // A 32-bit count and index in 64-bit code zero-extend.
    let movsb32 = decode64(&[0x67, 0xF3, 0xA4]);
    let mut regs = StringRegs {
        rcx: 0xFFFF_FFFF_0000_0001,
        rsi: 0x1_FFFF_FFFF,
        rdi: 0x10,
        ..StringRegs::default()
    };
    assert_eq!(movsb32.execute(&mut regs, &mut env, 10), Ok(Progress::Done));
    assert_eq!((regs.rcx, regs.rsi, regs.rdi), (0, 0, 0x11));
}

#[test]
fn a_fault_leaves_the_completed_elements_and_the_rest_of_the_count() {
    let movsb = decode64(&[0xF3, 0xA4]);
    let mut env = FakeEnv {
        fault_at: Some(0x102),
        ..FakeEnv::default()
    };
    let mut regs = StringRegs {
        rcx: 8,
        rsi: 0x100,
        rdi: 0x900,
        ..StringRegs::default()
    };
    assert_eq!(movsb.execute(&mut regs, &mut env, 100), Err(0x102));
    assert_eq!((regs.rcx, regs.rsi, regs.rdi), (6, 0x102, 0x902));
}

#[test]
fn outs_and_ins_move_between_memory_and_port_dx() {
    let outsb = decode64(&[0xF3, 0x6E]);
    let mut env = FakeEnv::default();
    env.memory.insert((segment_key(Segment::Ds), 0x50), 0x11);
    env.memory.insert((segment_key(Segment::Ds), 0x51), 0x22);
    let mut regs = StringRegs {
        rcx: 2,
        rdx: 0x3F8,
        rsi: 0x50,
        ..StringRegs::default()
    };
    assert_eq!(outsb.execute(&mut regs, &mut env, 100), Ok(Progress::Done));
    assert_eq!(env.port_writes, [(0x3F8, 0x11), (0x3F8, 0x22)]);

    // INS into a faulting destination never reads the port.
    let insb = decode64(&[0x6C]);
    let mut env = FakeEnv {
        fault_at: Some(0x70),
        ..FakeEnv::default()
    };
    let mut regs = StringRegs {
        rdx: 0x60,
        rdi: 0x70,
        ..StringRegs::default()
    };
    assert_eq!(insb.execute(&mut regs, &mut env, 100), Err(0x70));
    assert_eq!(env.port_reads, 0);
    regs.rdi = 0x80;
    assert_eq!(insb.execute(&mut regs, &mut env, 100), Ok(Progress::Done));
    assert_eq!(env.memory[&(segment_key(Segment::Es), 0x80)], 0x60);
    assert_eq!(regs.rdi, 0x81);
}

#[test]
fn lods_merges_into_the_accumulator() {
    let lodsw = decode64(&[0x66, 0xAD]);
    let mut env = FakeEnv::default();
    env.memory.insert((segment_key(Segment::Ds), 0), 0xCD);
    env.memory.insert((segment_key(Segment::Ds), 1), 0xAB);
    let mut regs = StringRegs {
        rax: 0x1111_2222_3333_4444,
        ..StringRegs::default()
    };
    assert_eq!(lodsw.execute(&mut regs, &mut env, 1), Ok(Progress::Done));
    assert_eq!(regs.rax, 0x1111_2222_3333_ABCD);
}

#[test]
fn random_bytes_never_panic_the_decoder() {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..20_000 {
        let mut bytes = [0u8; 15];
        for byte in &mut bytes {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *byte = state as u8;
        }
        for bitness in [CodeBitness::Bits16, CodeBitness::Bits32, CodeBitness::Bits64] {
            if let Ok(instruction) = decode_string(&bytes, bitness) {
                assert!(instruction.len <= bytes.len());
            }
        }
    }
}
