//! Turns kernel image bytes into a runnable guest. Guest memory is reached
//! only through [`keel_memory::GuestMemory`] (RAM made of any number of
//! regions, or a plain byte buffer whose index is the guest-physical
//! address), and every placement is checked against the layout and against
//! what is RAM before anything is written, so a malformed image or layout
//! yields a [`LoadError`] and leaves guest memory untouched.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod boot_params;
pub mod bzimage;
pub mod error;
mod guest_memory;
pub mod linux;
pub mod long_mode;
#[cfg(test)]
mod test_image;

pub use boot_params::{build_zero_page, E820Type, GuestMemoryLayout, ReservedRange, ZeroPage, ZeroPageContents};
pub use bzimage::BzImage;
pub use error::{GuestRegion, LoadError, RegionKind};
pub use guest_memory::PAGE_SIZE;
pub use linux::{load_linux, LinuxEntry, LinuxLayout};
pub use long_mode::{long_mode_tables_size, setup_long_mode, LongModeLayout, LongModeState};
