//! Exit qualification for control-register accesses (SDM Vol. 3 Table 28-3).

use core::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrAccessType {
    MovToCr,
    MovFromCr,
    Clts,
    Lmsw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrAccess {
    /// Control register number (0, 3, 4 or 8; CLTS/LMSW report 0).
    pub cr: u8,
    pub access: CrAccessType,
    /// General-purpose register for MOV CR: 0 = RAX, 1 = RCX, 2 = RDX,
    /// 3 = RBX, 4 = RSP, 5 = RBP, 6 = RSI, 7 = RDI, 8–15 = R8–R15.
    pub gpr: u8,
    /// LMSW: the operand was in memory (its linear address is in
    /// `GUEST_LINEAR_ADDRESS`).
    pub lmsw_memory_operand: bool,
    /// LMSW: the 16-bit source operand.
    pub lmsw_source: u16,
}

const GPR_NAMES: [&str; 16] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
];

impl CrAccess {
    pub fn from_raw(raw: u64) -> Self {
        Self {
            cr: (raw & 0xF) as u8,
            access: match (raw >> 4) & 0b11 {
                0 => CrAccessType::MovToCr,
                1 => CrAccessType::MovFromCr,
                2 => CrAccessType::Clts,
                _ => CrAccessType::Lmsw,
            },
            lmsw_memory_operand: raw & (1 << 6) != 0,
            gpr: ((raw >> 8) & 0xF) as u8,
            lmsw_source: (raw >> 16) as u16,
        }
    }

    /// Assembly name of [`CrAccess::gpr`].
    pub fn gpr_name(&self) -> &'static str {
        GPR_NAMES.get(usize::from(self.gpr)).copied().unwrap_or("?")
    }
}

impl fmt::Display for CrAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.access {
            CrAccessType::MovToCr => write!(f, "mov cr{}, {}", self.cr, self.gpr_name()),
            CrAccessType::MovFromCr => write!(f, "mov {}, cr{}", self.gpr_name(), self.cr),
            CrAccessType::Clts => f.write_str("clts"),
            CrAccessType::Lmsw => write!(f, "lmsw {:#06x}", self.lmsw_source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mov_to_cr3_from_rbx() {
        let cr = CrAccess::from_raw(0x303);
        assert_eq!(cr.cr, 3);
        assert_eq!(cr.access, CrAccessType::MovToCr);
        assert_eq!(cr.gpr, 3);
        assert_eq!(cr.to_string(), "mov cr3, rbx");
    }

    #[test]
    fn mov_from_cr4_to_r12() {
        let cr = CrAccess::from_raw(0xC14);
        assert_eq!(cr.cr, 4);
        assert_eq!(cr.access, CrAccessType::MovFromCr);
        assert_eq!(cr.gpr, 12);
        assert_eq!(cr.to_string(), "mov r12, cr4");
    }

    #[test]
    fn clts_and_lmsw() {
        assert_eq!(CrAccess::from_raw(0x20).access, CrAccessType::Clts);
        let lmsw = CrAccess::from_raw(0x0001_0070);
        assert_eq!(lmsw.access, CrAccessType::Lmsw);
        assert!(lmsw.lmsw_memory_operand);
        assert_eq!(lmsw.lmsw_source, 1);
        assert_eq!(lmsw.to_string(), "lmsw 0x0001");
    }
}
