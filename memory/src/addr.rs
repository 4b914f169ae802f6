//! Address newtypes. Host-physical, guest-physical and host-virtual addresses
//! live in different address spaces, so mixing them up is a classic
//! hypervisor bug; distinct types with no `From` conversions between them make
//! every crossing explicit (`HostPhysAddr::new(gpa.as_u64())`).

use core::fmt;

pub const PAGE_SIZE_4K: u64 = 4 * 1024;
pub const PAGE_SIZE_2M: u64 = 2 * 1024 * 1024;
pub const PAGE_SIZE_1G: u64 = 1024 * 1024 * 1024;

macro_rules! address_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[repr(transparent)]
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(u64);

        impl $name {
            pub const fn new(raw: u64) -> Self {
                Self(raw)
            }

            pub const fn as_u64(self) -> u64 {
                self.0
            }

            /// Rounds down to a multiple of `align`.
            ///
            /// # Panics
            /// If `align` is not a power of two (alignments are constants in
            /// practice, so this is a programming error, never input-driven).
            pub const fn align_down(self, align: u64) -> Self {
                assert!(align.is_power_of_two(), "alignment must be a power of two");
                Self(self.0 & !(align - 1))
            }

            /// Rounds up to a multiple of `align`; `None` if that would pass
            /// the end of the 64-bit address space.
            ///
            /// # Panics
            /// If `align` is not a power of two.
            pub const fn align_up(self, align: u64) -> Option<Self> {
                assert!(align.is_power_of_two(), "alignment must be a power of two");
                match self.0.checked_add(align - 1) {
                    Some(bumped) => Some(Self(bumped & !(align - 1))),
                    None => None,
                }
            }

            /// # Panics
            /// If `align` is not a power of two.
            pub const fn is_aligned(self, align: u64) -> bool {
                assert!(align.is_power_of_two(), "alignment must be a power of two");
                self.0 & (align - 1) == 0
            }

            /// `self + bytes`, or `None` on overflow.
            pub const fn offset(self, bytes: u64) -> Option<Self> {
                match self.0.checked_add(bytes) {
                    Some(raw) => Some(Self(raw)),
                    None => None,
                }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:#x})"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }
    };
}

address_type!(
    /// An address in host physical memory (what the CPU puts on the bus).
    HostPhysAddr
);
address_type!(
    /// An address in a guest's physical address space, translated by EPT.
    GuestPhysAddr
);
address_type!(
    /// An address in the hypervisor's own virtual address space.
    HostVirtAddr
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_helpers_round_to_the_requested_boundary() {
        let addr = HostPhysAddr::new(0x1234_5678);
        assert_eq!(addr.align_down(PAGE_SIZE_4K), HostPhysAddr::new(0x1234_5000));
        assert_eq!(addr.align_up(PAGE_SIZE_4K), Some(HostPhysAddr::new(0x1234_6000)));
        assert_eq!(addr.align_up(PAGE_SIZE_2M), Some(HostPhysAddr::new(0x1240_0000)));
        assert!(!addr.is_aligned(PAGE_SIZE_4K));
        assert!(HostPhysAddr::new(0x4000_0000).is_aligned(PAGE_SIZE_1G));
    }

    #[test]
    fn aligned_address_is_unchanged_by_align_up() {
        let addr = GuestPhysAddr::new(0x20_0000);
        assert_eq!(addr.align_up(PAGE_SIZE_2M), Some(addr));
        assert_eq!(addr.align_down(PAGE_SIZE_2M), addr);
    }

    #[test]
    fn overflowing_arithmetic_returns_none() {
        let top = HostVirtAddr::new(u64::MAX - 10);
        assert_eq!(top.align_up(PAGE_SIZE_4K), None);
        assert_eq!(top.offset(11), None);
        assert_eq!(top.offset(10), Some(HostVirtAddr::new(u64::MAX)));
    }

    #[test]
    #[should_panic(expected = "power of two")]
    fn non_power_of_two_alignment_is_a_programming_error() {
        let _ = HostPhysAddr::new(0).align_down(3000);
    }

    #[test]
    fn formatting_is_hexadecimal() {
        let addr = HostPhysAddr::new(0xdead_b000);
        assert_eq!(format!("{addr}"), "0xdeadb000");
        assert_eq!(format!("{addr:?}"), "HostPhysAddr(0xdeadb000)");
        assert_eq!(format!("{:?}", GuestPhysAddr::new(16)), "GuestPhysAddr(0x10)");
    }
}
