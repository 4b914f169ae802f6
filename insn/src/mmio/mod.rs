//! Decoding the instruction behind an MMIO exit into a sized load or store.
//!
//! Only the forms Linux uses for device registers are accepted (its
//! `readl`/`writel` helpers and the moves compilers emit for `volatile`
//! accesses): `mov` in every direction and width, `mov` with an immediate,
//! and the extending loads `movzx`/`movsx`/`movsxd`. Anything else —
//! read-modify-write, string, exchange or vector instructions — is refused
//! with its mnemonic, because emulating it half-way would corrupt guest state.

mod decode;
mod error;
mod gpr;
mod instruction;
mod register_update;

pub(crate) use decode::decode_first;
pub use decode::decode_mmio;
pub use error::DecodeError;
pub use gpr::Gpr;
pub use iced_x86::Mnemonic;
pub use instruction::{AccessSize, CodeBitness, Extend, MmioInstruction, MmioKind, RegisterOperand, StoreSource};
pub use register_update::{apply_load, store_value};
