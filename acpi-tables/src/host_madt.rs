//! The host firmware's MADT ("APIC"): where its I/O APICs are and how ISA
//! IRQs map to their inputs (ACPI 6.x §5.2.12: a 44-byte header, then
//! variable-length entries of type and length). Firmware data: every entry
//! is bounded by its own length and by the table, nothing panics.

use alloc::vec::Vec;

const ENTRIES_OFFSET: usize = 44;
const TYPE_IO_APIC: u8 = 1;
const TYPE_INTERRUPT_OVERRIDE: u8 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostIoApic {
    pub id: u8,
    pub address: u32,
    /// The first GSI its inputs carry.
    pub gsi_base: u32,
}

/// An ISA IRQ that is not wired to the GSI of the same number, or not with
/// ISA's polarity and trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostOverride {
    pub source_irq: u8,
    pub gsi: u32,
    /// MPS INTI flags: polarity in bits 1:0, trigger mode in bits 3:2.
    pub flags: u16,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostMadt {
    pub io_apics: Vec<HostIoApic>,
    pub overrides: Vec<HostOverride>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostMadtError {
    NotMadt,
    /// The header's length disagrees with the bytes.
    BadLength,
    /// An entry runs past the table or is shorter than its type needs.
    BadEntry {
        offset: usize,
    },
}

/// How an ISA IRQ reaches the I/O APIC: its GSI and whether the input is
/// level-triggered and active low (ISA's default: edge, active high).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IsaRoute {
    pub gsi: u32,
    pub level_triggered: bool,
    pub active_low: bool,
}

impl HostMadt {
    pub fn isa_route(&self, irq: u8) -> IsaRoute {
        match self.overrides.iter().find(|entry| entry.source_irq == irq) {
            Some(entry) => IsaRoute {
                gsi: entry.gsi,
                // 00 = bus default (ISA: high, edge), 01 = high/edge, 11 = low/level.
                active_low: entry.flags & 0b11 == 0b11,
                level_triggered: (entry.flags >> 2) & 0b11 == 0b11,
            },
            None => IsaRoute {
                gsi: u32::from(irq),
                level_triggered: false,
                active_low: false,
            },
        }
    }

    /// Where a PCI function's INTx arrives, given the Interrupt Line its
    /// firmware wrote (`None` for 0 and 0xFF: not routed). PCI interrupts
    /// are level-triggered. A line below 16 is an ISA IRQ the chipset's
    /// PIRQ router drives (as on PIIX-style emulated machines): it follows
    /// the MADT's override for that IRQ where there is one (an override
    /// that leaves polarity or trigger to the bus default gets PCI's level
    /// trigger and ISA's active-high polarity, which is what such routers
    /// present to the I/O APIC); a line of 16 or more names the GSI itself,
    /// level-triggered and active low (PCI's default). Firmware that routes
    /// INTx only through ACPI `_PRT` (no usable Interrupt Line) is not
    /// covered: Keel has no AML interpreter.
    pub fn pci_intx_route(&self, interrupt_line: u8) -> Option<IsaRoute> {
        match interrupt_line {
            0 | 0xff => None,
            line if line < 16 => {
                let isa = self.isa_route(line);
                let flags = self
                    .overrides
                    .iter()
                    .find(|entry| entry.source_irq == line)
                    .map_or(0, |entry| entry.flags);
                Some(IsaRoute {
                    gsi: isa.gsi,
                    level_triggered: (flags >> 2) & 0b11 != 0b01,
                    active_low: flags & 0b11 == 0b11,
                })
            }
            line => Some(IsaRoute {
                gsi: u32::from(line),
                level_triggered: true,
                active_low: true,
            }),
        }
    }

    /// A PCI function's INTx at host GSI `gsi`, as Dom0 named it: below
    /// 16 the same as [`HostMadt::pci_intx_route`] for that ISA IRQ;
    /// otherwise level-triggered, active low.
    pub fn pci_intx_gsi(&self, gsi: u32) -> IsaRoute {
        match u8::try_from(gsi) {
            Ok(line @ 1..=15) => self.pci_intx_route(line).unwrap_or(IsaRoute {
                gsi,
                level_triggered: true,
                active_low: false,
            }),
            _ => IsaRoute {
                gsi,
                level_triggered: true,
                active_low: true,
            },
        }
    }

    /// The I/O APIC that has input `gsi`, and the input's number on it
    /// (every I/O APIC has at least 24 inputs on the machines Keel targets;
    /// the exact count is in its version register, which the caller reads).
    pub fn io_apic_for(&self, gsi: u32) -> Option<(HostIoApic, u32)> {
        self.io_apics
            .iter()
            .filter(|apic| apic.gsi_base <= gsi)
            .max_by_key(|apic| apic.gsi_base)
            .map(|apic| (*apic, gsi - apic.gsi_base))
    }
}

pub fn parse(table: &[u8]) -> Result<HostMadt, HostMadtError> {
    if table.get(..4) != Some(b"APIC") {
        return Err(HostMadtError::NotMadt);
    }
    let length = table
        .get(4..8)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or(HostMadtError::BadLength)?;
    if length != table.len() || length < ENTRIES_OFFSET {
        return Err(HostMadtError::BadLength);
    }
    let mut madt = HostMadt::default();
    let mut offset = ENTRIES_OFFSET;
    while offset < length {
        let entry_type = table[offset];
        let entry_len = usize::from(*table.get(offset + 1).ok_or(HostMadtError::BadEntry { offset })?);
        let entry = table
            .get(
                offset
                    ..offset
                        .checked_add(entry_len)
                        .ok_or(HostMadtError::BadEntry { offset })?,
            )
            .filter(|entry| entry.len() >= 2)
            .ok_or(HostMadtError::BadEntry { offset })?;
        let u32_at = |at: usize| {
            entry
                .get(at..at + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        match entry_type {
            TYPE_IO_APIC => {
                let (Some(address), Some(gsi_base)) = (u32_at(4), u32_at(8)) else {
                    return Err(HostMadtError::BadEntry { offset });
                };
                madt.io_apics.push(HostIoApic {
                    id: entry[2],
                    address,
                    gsi_base,
                });
            }
            TYPE_INTERRUPT_OVERRIDE => {
                let (Some(gsi), Some(flags)) = (u32_at(4), entry.get(8..10)) else {
                    return Err(HostMadtError::BadEntry { offset });
                };
                madt.overrides.push(HostOverride {
                    source_irq: entry[3],
                    gsi,
                    flags: u16::from_le_bytes([flags[0], flags[1]]),
                });
            }
            _ => {}
        }
        offset += entry_len;
    }
    Ok(madt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn madt(entries: &[&[u8]]) -> Vec<u8> {
        let mut bytes = vec![0u8; ENTRIES_OFFSET];
        bytes[..4].copy_from_slice(b"APIC");
        for entry in entries {
            bytes.extend_from_slice(entry);
        }
        let length = bytes.len() as u32;
        bytes[4..8].copy_from_slice(&length.to_le_bytes());
        bytes
    }

    #[test]
    fn reads_io_apics_and_overrides() {
        let io_apic = [1, 12, 2, 0, 0x00, 0x00, 0xc0, 0xfe, 0, 0, 0, 0];
        let lapic = [0, 8, 0, 0, 1, 0, 0, 0];
        let timer = [2, 10, 0, 0, 2, 0, 0, 0, 0, 0];
        let sci = [2, 10, 0, 9, 9, 0, 0, 0, 0x0f, 0];
        let parsed = parse(&madt(&[&lapic, &io_apic, &timer, &sci])).unwrap();
        assert_eq!(
            parsed.io_apics,
            [HostIoApic {
                id: 2,
                address: 0xfec0_0000,
                gsi_base: 0
            }]
        );
        assert_eq!(parsed.isa_route(0).gsi, 2);
        assert_eq!(
            parsed.isa_route(9),
            IsaRoute {
                gsi: 9,
                level_triggered: true,
                active_low: true
            }
        );
        assert_eq!(
            parsed.isa_route(14),
            IsaRoute {
                gsi: 14,
                level_triggered: false,
                active_low: false
            }
        );
        assert_eq!(
            parsed.io_apic_for(14).map(|(apic, input)| (apic.id, input)),
            Some((2, 14))
        );
    }

    #[test]
    fn pci_intx_routes_are_level_triggered_and_follow_overrides() {
        let madt = HostMadt {
            io_apics: Vec::new(),
            overrides: alloc::vec![
                // QEMU's: IRQ 11 level, active high.
                HostOverride {
                    source_irq: 11,
                    gsi: 11,
                    flags: 0b1101
                },
                // Bus defaults: PCI's level trigger, active high.
                HostOverride {
                    source_irq: 10,
                    gsi: 20,
                    flags: 0
                },
                // Explicitly low and level.
                HostOverride {
                    source_irq: 5,
                    gsi: 5,
                    flags: 0b1111
                },
                // Explicitly edge: honoured (firmware knows its wiring).
                HostOverride {
                    source_irq: 7,
                    gsi: 7,
                    flags: 0b0101
                },
            ],
        };
        let route = |line| {
            madt.pci_intx_route(line)
                .map(|r| (r.gsi, r.level_triggered, r.active_low))
        };
        assert_eq!(route(0), None);
        assert_eq!(route(0xff), None);
        assert_eq!(route(11), Some((11, true, false)));
        assert_eq!(route(10), Some((20, true, false)));
        assert_eq!(route(5), Some((5, true, true)));
        assert_eq!(route(7), Some((7, false, false)));
        assert_eq!(route(9), Some((9, true, false)), "no override: same GSI, level");
        assert_eq!(route(19), Some((19, true, true)), "an I/O APIC input itself");
        let given = |gsi| {
            let route = madt.pci_intx_gsi(gsi);
            (route.gsi, route.level_triggered, route.active_low)
        };
        assert_eq!(given(10), (20, true, false), "an ISA IRQ follows its override");
        assert_eq!(given(0), (0, true, true));
        assert_eq!(given(300), (300, true, true), "past the ISA range and u8");
    }

    #[test]
    fn malformed_tables_are_errors() {
        assert_eq!(parse(b"FACP"), Err(HostMadtError::NotMadt));
        let mut short = madt(&[&[1, 12, 2, 0]]);
        assert_eq!(parse(&short), Err(HostMadtError::BadEntry { offset: 44 }));
        short.truncate(46);
        assert_eq!(parse(&short), Err(HostMadtError::BadLength));
        assert_eq!(parse(&madt(&[&[1, 0]])), Err(HostMadtError::BadEntry { offset: 44 }));
        assert_eq!(
            parse(&madt(&[&[1, 4, 0, 0]])),
            Err(HostMadtError::BadEntry { offset: 44 })
        );
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for len in 44..300 {
            let mut bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            bytes[..4].copy_from_slice(b"APIC");
            bytes[4..8].copy_from_slice(&(len as u32).to_le_bytes());
            let _ = parse(&bytes);
        }
    }
}
