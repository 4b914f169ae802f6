//! The emulated machine a run boots on.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Machine {
    /// Bochs: the emulator that implements VMX here (see shared/PLATFORM.md).
    Bochs(BochsMachine),
    Qemu(QemuMachine),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BochsMachine {
    pub memory_mib: u32,
    /// A Bochs `cpu: model=` name.
    pub cpu_model: &'static str,
    pub cpu_count: u32,
    /// A hard disk on the secondary IDE channel (`ata1-master`), its image
    /// written into the run directory when the run starts.
    pub disk: Option<BochsDisk>,
    /// An e1000 NIC (Bochs' 82540EM, PCI, INTA level-triggered) with no
    /// network behind it: a PCI function whose INTx PCI passthrough
    /// forwards.
    pub e1000: bool,
}

impl Default for BochsMachine {
    fn default() -> Self {
        BochsMachine {
            memory_mib: 512,
            cpu_model: "corei7_skylake_x",
            cpu_count: 1,
            disk: None,
            e1000: false,
        }
    }
}

/// Hard disk images a Bochs test adds (`crate::emulator::bochs` has their
/// geometry and contents).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BochsDisk {
    /// The disk `bochs-passthrough` hands to a DomU with the PIIX3 IDE
    /// function: known text in sectors 0 and 1.
    Passthrough,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QemuAccel {
    /// Software emulation: boots Keel but offers no VMX.
    Tcg,
    /// Hardware virtualization with the host CPU (needs nested VMX).
    Kvm,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuMachine {
    pub accel: QemuAccel,
    pub memory_mib: u32,
    /// A q35 machine with an Intel IOMMU (`intel-iommu,intremap=on`).
    pub iommu: bool,
    /// QEMU's `edu` teaching device (a DMA engine with an interrupt).
    pub edu: bool,
    /// QEMU's `e1000e` NIC (Intel 82574L, 8086:10d3, with MSI-X) in slot 2,
    /// where q35 puts its default NIC (which it replaces: `-nic none`), with
    /// no network behind it: the IOMMU self-test's MSI-X function.
    pub e1000e: bool,
    /// A second NVMe controller in slot 4 on a null block device (nothing
    /// to read, no image): the IOMMU self-test resets it with its PCI
    /// Express FLR, as passthrough resets an assigned function.
    pub flr_nvme: bool,
    /// An extra ACPI table the firmware passes on (`-acpitable`).
    pub extra_acpi_table: Option<ExtraAcpiTable>,
    /// An NVMe controller (QEMU's `nvme`, 1b36:0010, class 010802) in a
    /// fixed slot (`crate::emulator::qemu::NVME_SLOT`), its namespace a
    /// small raw image the run writes (`crate::emulator::qemu::nvme_image`:
    /// known text in sectors 0 and 1).
    pub nvme: bool,
}

/// ACPI tables a test adds to the firmware's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtraAcpiTable {
    /// A DMAR whose device scope claims more bytes than it has (checksum
    /// right), which Keel must refuse without enabling anything.
    MalformedDmar,
    /// A DMAR like QEMU's own for `intel-iommu,intremap=on` (one unit at
    /// 0xfed90000 for every device, the I/O APIC in its scope, interrupt
    /// remapping) plus a Reserved Memory Region for the `edu` device. QEMU
    /// lists it after its own DMAR, so Keel takes it with `iommu-dmar=last`.
    RmrrDmar,
}

/// The reserved region the `RmrrDmar` table gives edu: two pages of
/// conventional memory below 1 MiB (free in SeaBIOS's memory map, and never
/// handed out by Keel's allocator, which starts at 1 MiB).
pub const EDU_RMRR: (u64, u64) = (0x8_0000, 0x8_1fff);
/// Where QEMU's q35 puts `-device edu` behind the default VGA (00:01.0) and
/// the NIC (00:02.0, the default's slot: the e1000e `qemu_iommu` asks for
/// comes before edu): the RMRR's device scope names it.
pub const EDU_SLOT: (u8, u8) = (3, 0);

impl ExtraAcpiTable {
    /// The file name in the run directory and its bytes.
    pub fn file(self) -> (&'static str, Vec<u8>) {
        use keel_iommu::dmar::{DmarBuilder, DrhdSpec, ScopeSpec};
        match self {
            Self::MalformedDmar => {
                let scope = ScopeSpec::endpoint(0, &[(3, 0)]).declared_len(0x20);
                let table = DmarBuilder::new(39)
                    .drhd(DrhdSpec::new(0xfed9_0000).include_pci_all().scope(scope))
                    .build();
                ("malformed-dmar.aml", table)
            }
            Self::RmrrDmar => {
                use keel_iommu::dmar::{DmarFlags, RmrrSpec};
                let table = DmarBuilder::new(39)
                    .flags(DmarFlags::INTR_REMAP)
                    .drhd(
                        DrhdSpec::new(0xfed9_0000)
                            .include_pci_all()
                            .scope(ScopeSpec::ioapic(0, 0xff, &[(0, 0)])),
                    )
                    .rmrr(RmrrSpec::new(0, EDU_RMRR.0, EDU_RMRR.1).scope(ScopeSpec::endpoint(0, &[EDU_SLOT])))
                    .build();
                ("rmrr-dmar.aml", table)
            }
        }
    }
}

impl Machine {
    pub fn bochs() -> Self {
        Machine::Bochs(BochsMachine::default())
    }

    pub fn qemu_tcg() -> Self {
        Machine::Qemu(QemuMachine {
            accel: QemuAccel::Tcg,
            memory_mib: 512,
            iommu: false,
            edu: false,
            e1000e: false,
            flr_nvme: false,
            extra_acpi_table: None,
            nvme: false,
        })
    }

    /// QEMU (TCG) as a q35 PC with an Intel IOMMU, the `edu` device, an
    /// e1000e NIC and an NVMe controller on a null device.
    pub fn qemu_iommu() -> Self {
        Machine::Qemu(QemuMachine {
            accel: QemuAccel::Tcg,
            memory_mib: 512,
            iommu: true,
            edu: true,
            e1000e: true,
            flr_nvme: true,
            extra_acpi_table: None,
            nvme: false,
        })
    }

    pub fn qemu_kvm() -> Self {
        Machine::Qemu(QemuMachine {
            accel: QemuAccel::Kvm,
            memory_mib: 512,
            iommu: false,
            edu: false,
            e1000e: false,
            flr_nvme: false,
            extra_acpi_table: None,
            nvme: false,
        })
    }

    /// QEMU with KVM (the host CPU, which must offer nested VMX) as a q35
    /// PC with an Intel IOMMU and an NVMe controller: a real PCI Express
    /// function whose DMA VT-d confines once Keel assigns it to a DomU.
    pub fn qemu_kvm_passthrough() -> Self {
        Machine::Qemu(QemuMachine {
            accel: QemuAccel::Kvm,
            memory_mib: 512,
            iommu: true,
            edu: false,
            e1000e: false,
            flr_nvme: false,
            extra_acpi_table: None,
            nvme: true,
        })
    }

    /// The same machine with `disk` on Bochs' secondary IDE channel (QEMU
    /// machines have no such option and stay as they are).
    pub fn with_bochs_disk(mut self, disk: BochsDisk) -> Self {
        if let Machine::Bochs(bochs) = &mut self {
            bochs.disk = Some(disk);
        }
        self
    }

    /// The same machine with an e1000 NIC (Bochs only).
    pub fn with_bochs_e1000(mut self) -> Self {
        if let Machine::Bochs(bochs) = &mut self {
            bochs.e1000 = true;
        }
        self
    }

    /// The same machine with `memory_mib` MiB of RAM.
    pub fn with_memory(mut self, memory_mib: u32) -> Self {
        match &mut self {
            Machine::Bochs(bochs) => bochs.memory_mib = memory_mib,
            Machine::Qemu(qemu) => qemu.memory_mib = memory_mib,
        }
        self
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Machine::Bochs(_) => f.write_str("Bochs"),
            Machine::Qemu(QemuMachine {
                accel: QemuAccel::Tcg, ..
            }) => f.write_str("QEMU (TCG)"),
            Machine::Qemu(QemuMachine {
                accel: QemuAccel::Kvm, ..
            }) => f.write_str("QEMU (KVM)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rmrr_dmar_gives_edu_its_region_and_covers_every_device() {
        let (name, bytes) = ExtraAcpiTable::RmrrDmar.file();
        assert_eq!(name, "rmrr-dmar.aml");
        let dmar = keel_iommu::parse_dmar(&bytes).unwrap();
        let edu = keel_iommu::SourceId::new(0, EDU_SLOT.0, EDU_SLOT.1).unwrap();
        let regions: Vec<_> = dmar.rmrrs_for(0, edu, &keel_iommu::dmar::NoBridges).collect();
        assert_eq!(regions.len(), 1);
        assert_eq!((regions[0].base, regions[0].limit), EDU_RMRR);
        let other = keel_iommu::SourceId::new(0, 2, 0).unwrap();
        assert_eq!(dmar.rmrrs_for(0, other, &keel_iommu::dmar::NoBridges).count(), 0);
        assert_eq!(
            dmar.unit_for(0, edu, &keel_iommu::dmar::NoBridges)
                .map(|unit| unit.register_base().as_u64()),
            Some(0xfed9_0000)
        );
        assert!(dmar.flags().contains(keel_iommu::dmar::DmarFlags::INTR_REMAP));
    }

    #[test]
    fn with_memory_changes_only_the_memory() {
        let Machine::Bochs(bochs) = Machine::bochs().with_memory(1024) else {
            panic!("not Bochs any more");
        };
        assert_eq!(bochs.memory_mib, 1024);
        assert_eq!(bochs.cpu_model, BochsMachine::default().cpu_model);
        assert_eq!(bochs.disk, None);
        assert_eq!(
            Machine::qemu_kvm().with_memory(2048),
            Machine::Qemu(QemuMachine {
                accel: QemuAccel::Kvm,
                memory_mib: 2048,
                iommu: false,
                edu: false,
                e1000e: false,
                flr_nvme: false,
                extra_acpi_table: None,
                nvme: false,
            })
        );
    }

    #[test]
    fn the_kvm_passthrough_machine_is_kvm_with_the_iommu_and_the_nvme_controller() {
        let machine = Machine::qemu_kvm_passthrough().with_memory(1024);
        assert_eq!(
            machine,
            Machine::Qemu(QemuMachine {
                accel: QemuAccel::Kvm,
                memory_mib: 1024,
                iommu: true,
                edu: false,
                e1000e: false,
                flr_nvme: false,
                extra_acpi_table: None,
                nvme: true,
            })
        );
        assert_eq!(machine.to_string(), "QEMU (KVM)");
        // No other machine has the controller.
        for other in [Machine::qemu_tcg(), Machine::qemu_iommu(), Machine::qemu_kvm()] {
            let Machine::Qemu(other) = other else { unreachable!() };
            assert!(!other.nvme);
        }
    }

    #[test]
    fn with_bochs_disk_adds_only_the_disk() {
        let Machine::Bochs(bochs) = Machine::bochs()
            .with_memory(1024)
            .with_bochs_disk(BochsDisk::Passthrough)
        else {
            panic!("not Bochs any more");
        };
        assert_eq!(
            bochs,
            BochsMachine {
                memory_mib: 1024,
                disk: Some(BochsDisk::Passthrough),
                ..BochsMachine::default()
            }
        );
        assert_eq!(
            Machine::qemu_tcg().with_bochs_disk(BochsDisk::Passthrough),
            Machine::qemu_tcg()
        );
    }
}
