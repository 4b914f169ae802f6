//! Exit qualification for I/O instructions (SDM Vol. 3 Table 28-5).

use core::fmt;

use super::QualificationError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoDirection {
    Out,
    In,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoQualification {
    /// Access size in bytes: 1, 2 or 4.
    pub size: u8,
    pub direction: IoDirection,
    /// INS/OUTS rather than IN/OUT.
    pub string: bool,
    pub rep: bool,
    /// The port came from an immediate operand rather than DX.
    pub immediate: bool,
    pub port: u16,
}

impl IoQualification {
    pub fn from_raw(raw: u64) -> Result<Self, QualificationError> {
        let size = match raw & 0b111 {
            0 => 1,
            1 => 2,
            3 => 4,
            _ => return Err(QualificationError::InvalidIoSize { raw }),
        };
        Ok(Self {
            size,
            direction: if raw & (1 << 3) != 0 {
                IoDirection::In
            } else {
                IoDirection::Out
            },
            string: raw & (1 << 4) != 0,
            rep: raw & (1 << 5) != 0,
            immediate: raw & (1 << 6) != 0,
            port: (raw >> 16) as u16,
        })
    }
}

impl fmt::Display for IoQualification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rep = if self.rep { "rep " } else { "" };
        let mnemonic = match (self.direction, self.string) {
            (IoDirection::In, false) => "in",
            (IoDirection::Out, false) => "out",
            (IoDirection::In, true) => "ins",
            (IoDirection::Out, true) => "outs",
        };
        write!(f, "{rep}{mnemonic} port {:#06x}, {} byte(s)", self.port, self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_dx_al_to_com1() {
        let io = IoQualification::from_raw(0x03F8_0000).unwrap();
        assert_eq!(io.port, 0x3F8);
        assert_eq!(io.size, 1);
        assert_eq!(io.direction, IoDirection::Out);
        assert!(!io.string && !io.rep && !io.immediate);
        assert_eq!(io.to_string(), "out port 0x03f8, 1 byte(s)");
    }

    #[test]
    fn in_eax_dx() {
        let io = IoQualification::from_raw(0x0CFC_000B).unwrap();
        assert_eq!(io.port, 0xCFC);
        assert_eq!(io.size, 4);
        assert_eq!(io.direction, IoDirection::In);
        assert!(!io.immediate);
    }

    #[test]
    fn in_al_imm8() {
        let io = IoQualification::from_raw(0x0060_0048).unwrap();
        assert_eq!(io.port, 0x60);
        assert_eq!(io.size, 1);
        assert_eq!(io.direction, IoDirection::In);
        assert!(io.immediate);
    }

    #[test]
    fn rep_outsw() {
        let io = IoQualification::from_raw(0x01F0_0031).unwrap();
        assert_eq!(io.size, 2);
        assert!(io.string && io.rep);
        assert_eq!(io.to_string(), "rep outs port 0x01f0, 2 byte(s)");
    }

    #[test]
    fn invalid_size_is_an_error() {
        assert_eq!(
            IoQualification::from_raw(0x03F8_0002),
            Err(QualificationError::InvalidIoSize { raw: 0x03F8_0002 })
        );
    }
}
