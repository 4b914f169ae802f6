//! Guest page-table walks (Intel SDM vol. 3A ch. 4), read-only.
//!
//! The walk never sets accessed/dirty bits: the hypervisor only looks at what
//! the guest itself already executed, and writing guest page tables behind the
//! guest's back would race with its own updates.

mod entry;
mod error;
mod fetch;
mod paging;
#[cfg(test)]
mod test_memory;

pub use error::{PagingLevel, PagingMode, TranslationFault, WalkError};
pub use fetch::{fetch_instruction, MAX_INSTRUCTION_LEN};
pub use paging::{translate, AccessKind, PagingState};
