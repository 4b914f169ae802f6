//! Intel VMX building blocks for Keel.
//!
//! Everything here except [`instructions`] is pure decoding/encoding logic so
//! that it can be unit-tested on the host: the hypervisor reads raw MSR and
//! VMCS values with the thin unsafe wrappers in [`instructions`] and hands the
//! numbers to the typed decoders in the other modules.
//!
//! * [`msr`] – MSR numbers the VMX setup code reads or saves.
//! * [`caps`] – decoding of the VMX capability MSRs and control adjustment.
//! * [`controls`] – typed VM-execution, VM-exit and VM-entry control bits.
//! * [`fields`] – VMCS field encodings.
//! * [`exit`] – exit reasons and exit-qualification/interruption decoders.
//! * [`error`] – VM-instruction error numbers and VMfail outcomes.
//! * [`instructions`] – `vmxon`, `vmread`, `invept`, … (x86_64 only).
#![cfg_attr(not(test), no_std)]

pub mod caps;
pub mod controls;
pub mod error;
pub mod exit;
pub mod fields;
#[cfg(target_arch = "x86_64")]
pub mod instructions;
pub mod msr;

pub use error::{VmFail, VmInstructionError};
pub use exit::{ExitInfo, ExitReason};
pub use fields::{FieldWidth, VmcsField};
