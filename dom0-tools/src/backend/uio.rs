//! The real notification hardware ([`SlotHw`]): the slot's registers in
//! BAR 0 and the management function's interrupt through
//! `uio_pci_generic` (`/dev/uioN`), or polling when uio is unavailable.
//!
//! Unmasking: uio's own way is writing the 4-byte value 1 to `/dev/uioN`,
//! but `uio_pci_generic` has no `irqcontrol` and refuses that (ENOSYS);
//! its documented way (the kernel's uio-howto) is clearing the command
//! register's Interrupt Disable bit through the function's sysfs `config`
//! file. [`SlotHw::open`] tries the first once and falls back to the second.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Result;
use keel_abi::mgmt::virtio::{notify_arm_register, notify_register};
use keel_abi::mgmt::{events, regs, PCI_DEVICE_ID, PCI_VENDOR_ID, REGISTER_BYTES};

use super::notify::{NotifyHw, Slept, POLL_PERIOD};
use crate::device::map_resource_at;
use crate::sys::{poll_io, Mapping, PolledAny};

pub const UIO_DRIVER: &str = "uio_pci_generic";
/// How long a uio poll lasts at most (the loop's idle check comes anyway).
pub const UIO_NAP: Duration = Duration::from_secs(2);

/// Where [`uio_device`] looks: `/sys/bus/pci/devices`,
/// `/sys/bus/pci/drivers` and `/dev` on a real system.
pub struct Sysfs {
    pub devices: PathBuf,
    pub drivers: PathBuf,
    pub dev: PathBuf,
}

impl Sysfs {
    pub fn system() -> Self {
        Self {
            devices: PathBuf::from("/sys/bus/pci/devices"),
            drivers: PathBuf::from("/sys/bus/pci/drivers"),
            dev: PathBuf::from("/dev"),
        }
    }
}

fn driver_of(device: &Path) -> Option<String> {
    let target = std::fs::read_link(device.join("driver")).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

/// The `/dev/uioN` of PCI function `bdf`, binding it to `uio_pci_generic`
/// first if no driver has it; `Err` says why there is none.
pub fn uio_device(sysfs: &Sysfs, bdf: &str) -> Result<PathBuf, String> {
    let device = sysfs.devices.join(bdf);
    // Without an IRQ, uio binds but never wakes anyone.
    if std::fs::read_to_string(device.join("irq")).is_ok_and(|irq| irq.trim() == "0") {
        return Err(format!("{bdf} has no IRQ"));
    }
    match driver_of(&device) {
        Some(name) if name == UIO_DRIVER => {}
        Some(other) => return Err(format!("{bdf} is bound to {other}, not {UIO_DRIVER}")),
        None => {
            let driver = sysfs.drivers.join(UIO_DRIVER);
            if !driver.is_dir() {
                return Err(format!("{UIO_DRIVER} is not loaded"));
            }
            // Binds every unbound function with these ids; refused (EEXIST)
            // when the driver knows them already, hence the bind below.
            let _ = std::fs::write(
                driver.join("new_id"),
                format!("{PCI_VENDOR_ID:04x} {PCI_DEVICE_ID:04x}"),
            );
            if driver_of(&device).is_none() {
                // Another backend may bind it meanwhile: check, not trust.
                let _ = std::fs::write(driver.join("bind"), bdf);
            }
            if driver_of(&device).as_deref() != Some(UIO_DRIVER) {
                return Err(format!("{bdf} could not be bound to {UIO_DRIVER}"));
            }
        }
    }
    let name = std::fs::read_dir(device.join("uio"))
        .ok()
        .and_then(|entries| {
            entries
                .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
                .find(|name| name.starts_with("uio"))
        })
        .ok_or_else(|| format!("{bdf} is bound to {UIO_DRIVER} but has no uio device"))?;
    let path = sysfs.dev.join(&name);
    // devtmpfs creates the node with the device; give a slower /dev a moment.
    let deadline = Instant::now() + Duration::from_secs(1);
    while !path.exists() {
        if Instant::now() >= deadline {
            return Err(format!("{} does not exist", path.display()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(path)
}

/// The command register's offset in configuration space, and its
/// Interrupt Disable bit.
const PCI_COMMAND: u64 = 4;
const PCI_COMMAND_INTX_DISABLE: u16 = 1 << 10;

/// Clears Interrupt Disable in the command register of the function whose
/// configuration space `config` is (its sysfs `config` file): one 16-bit
/// read and, only if the bit is set, one 16-bit write. True if it wrote.
pub fn clear_intx_disable(config: &File) -> io::Result<bool> {
    let mut word = [0u8; 2];
    config.read_exact_at(&mut word, PCI_COMMAND)?;
    let command = u16::from_le_bytes(word);
    if command & PCI_COMMAND_INTX_DISABLE == 0 {
        return Ok(false);
    }
    config.write_all_at(&(command & !PCI_COMMAND_INTX_DISABLE).to_le_bytes(), PCI_COMMAND)?;
    Ok(true)
}

/// How the interrupt is unmasked.
enum Unmask {
    /// `write(uio, 1)` (a uio driver with `irqcontrol`).
    Uio,
    /// The command register through the sysfs `config` file.
    Config(File),
}

/// The uio device and how to unmask its interrupt.
struct Interrupt {
    uio: File,
    unmask: Unmask,
}

/// One window slot's notification registers, and the interrupt if uio
/// delivers it.
pub struct SlotHw {
    bar0: Mapping,
    slot: u64,
    interrupt: Option<Interrupt>,
}

/// Opens `/dev/uioN` and finds how to unmask: the uio write if the driver
/// takes it, else `dir/config`.
fn open_interrupt(dir: &Path, sysfs: &Sysfs, bdf: &str) -> Result<Interrupt, String> {
    let path = uio_device(sysfs, bdf)?;
    let mut uio = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|error| format!("{}: {error}", path.display()))?;
    if uio.write_all(&1u32.to_ne_bytes()).is_ok() {
        return Ok(Interrupt {
            uio,
            unmask: Unmask::Uio,
        });
    }
    let config_path = dir.join("config");
    let config = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&config_path)
        .map_err(|error| format!("{}: {error}", config_path.display()))?;
    clear_intx_disable(&config).map_err(|error| format!("{}: {error}", config_path.display()))?;
    Ok(Interrupt {
        uio,
        unmask: Unmask::Config(config),
    })
}

impl SlotHw {
    /// Maps BAR 0 of the function at `dir` and sets up the interrupt; a
    /// note on `log` says so when it falls back to polling. Returns the
    /// hardware and how long one sleep may last.
    pub fn open(dir: &Path, slot: u64, sysfs: &Sysfs, log: &mut dyn Write) -> Result<(Self, Duration)> {
        let mut bar0 = map_resource_at(dir, "resource0", 0, REGISTER_BYTES)?;
        let bdf = dir
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let interrupt = match open_interrupt(dir, sysfs, &bdf) {
            Ok(interrupt) => {
                // Other backends share the mask: add our event, keep theirs.
                let mask = bar0.read32(regs::EVENT_MASK as usize);
                bar0.write32(regs::EVENT_MASK as usize, mask | events::VIRTIO);
                Some(interrupt)
            }
            Err(reason) => {
                // No EVENT_MASK bit and no arming: an interrupt no driver
                // handles could get the line disabled.
                writeln!(
                    log,
                    "keel backend: no interrupt ({reason}); polling the notification register every {} ms",
                    POLL_PERIOD.as_millis()
                )?;
                None
            }
        };
        let nap = if interrupt.is_some() { UIO_NAP } else { POLL_PERIOD };
        Ok((Self { bar0, slot, interrupt }, nap))
    }

    /// "uio", "uio+config" (unmasked through the command register) or
    /// "polling", for the ready file.
    pub fn mode(&self) -> &'static str {
        match &self.interrupt {
            Some(Interrupt {
                unmask: Unmask::Uio, ..
            }) => "uio",
            Some(Interrupt {
                unmask: Unmask::Config(_),
                ..
            }) => "uio+config",
            None => "polling",
        }
    }
}

impl NotifyHw for SlotHw {
    fn arm(&mut self) {
        if self.interrupt.is_some() {
            self.bar0.write32(notify_arm_register(self.slot) as usize, 1);
        }
    }

    fn unmask(&mut self) -> io::Result<()> {
        match &mut self.interrupt {
            Some(Interrupt {
                uio,
                unmask: Unmask::Uio,
            }) => uio.write_all(&1u32.to_ne_bytes()),
            Some(Interrupt {
                unmask: Unmask::Config(config),
                ..
            }) => clear_intx_disable(config).map(drop),
            None => Ok(()),
        }
    }

    fn take_pending(&mut self) -> u32 {
        self.bar0.read32(notify_register(self.slot) as usize)
    }

    fn sleep(&mut self, timeout: Duration, inputs: &[RawFd], outputs: &[RawFd]) -> io::Result<Slept> {
        let mut fds: Vec<RawFd> = Vec::with_capacity(inputs.len() + 1);
        if let Some(Interrupt { uio, .. }) = &self.interrupt {
            fds.push(uio.as_raw_fd());
        }
        fds.extend_from_slice(inputs);
        if fds.is_empty() && outputs.is_empty() {
            std::thread::sleep(timeout);
            return Ok(Slept::TimedOut);
        }
        match poll_io(&fds, outputs, timeout)? {
            PolledAny::TimedOut => Ok(Slept::TimedOut),
            PolledAny::Interrupted => Ok(Slept::Signal),
            PolledAny::Readable(ready) => match &mut self.interrupt {
                Some(Interrupt { uio, .. }) if ready & 1 != 0 => {
                    // The interrupt count; reading it consumes the wakeup.
                    let mut count = [0; 4];
                    uio.read_exact(&mut count)?;
                    Ok(Slept::Interrupt)
                }
                _ => Ok(Slept::Input),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> (PathBuf, Sysfs) {
        let root = std::env::temp_dir().join(format!("keel-tools-uio-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let sysfs = Sysfs {
            devices: root.join("devices"),
            drivers: root.join("drivers"),
            dev: root.join("dev"),
        };
        for dir in [&sysfs.devices, &sysfs.drivers, &sysfs.dev] {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::create_dir_all(sysfs.devices.join("0000:00:03.0")).unwrap();
        (root, sysfs)
    }

    fn bind(sysfs: &Sysfs, driver: &str) {
        let dir = sysfs.drivers.join(driver);
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(&dir, sysfs.devices.join("0000:00:03.0/driver")).unwrap();
    }

    #[test]
    fn a_bound_function_gives_its_uio_device() {
        let (root, sysfs) = scratch("bound");
        bind(&sysfs, UIO_DRIVER);
        std::fs::create_dir_all(sysfs.devices.join("0000:00:03.0/uio/uio2")).unwrap();
        std::fs::write(sysfs.dev.join("uio2"), b"").unwrap();
        assert_eq!(uio_device(&sysfs, "0000:00:03.0"), Ok(sysfs.dev.join("uio2")));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn another_driver_or_no_uio_module_means_polling() {
        let (root, sysfs) = scratch("other");
        assert_eq!(
            uio_device(&sysfs, "0000:00:03.0"),
            Err("uio_pci_generic is not loaded".to_string())
        );
        bind(&sysfs, "keel-mgmt");
        assert_eq!(
            uio_device(&sysfs, "0000:00:03.0"),
            Err("0000:00:03.0 is bound to keel-mgmt, not uio_pci_generic".to_string())
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn an_unbound_function_is_offered_to_uio_pci_generic() {
        let (root, sysfs) = scratch("unbound");
        let driver = sysfs.drivers.join(UIO_DRIVER);
        std::fs::create_dir_all(&driver).unwrap();
        // Plain files do not bind anything: the result says so, and what
        // was written is what the kernel expects.
        assert_eq!(
            uio_device(&sysfs, "0000:00:03.0"),
            Err("0000:00:03.0 could not be bound to uio_pci_generic".to_string())
        );
        assert_eq!(std::fs::read_to_string(driver.join("new_id")).unwrap(), "4b45 0001");
        assert_eq!(std::fs::read_to_string(driver.join("bind")).unwrap(), "0000:00:03.0");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn unmasking_clears_only_interrupt_disable_and_only_when_set() {
        let path = std::env::temp_dir().join(format!("keel-tools-uio-config-{}", std::process::id()));
        // Vendor, device, then command = memory space | bus master | INTx disable.
        std::fs::write(&path, [0x45, 0x4b, 0x01, 0x00, 0x06, 0x04, 0x10, 0x00]).unwrap();
        let config = OpenOptions::new().read(true).write(true).open(&path).unwrap();
        assert!(clear_intx_disable(&config).unwrap());
        assert_eq!(
            std::fs::read(&path).unwrap(),
            [0x45, 0x4b, 0x01, 0x00, 0x06, 0x00, 0x10, 0x00]
        );
        assert!(!clear_intx_disable(&config).unwrap(), "nothing to write");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_function_without_an_irq_is_not_bound() {
        let (root, sysfs) = scratch("noirq");
        std::fs::create_dir_all(sysfs.drivers.join(UIO_DRIVER)).unwrap();
        std::fs::write(sysfs.devices.join("0000:00:03.0/irq"), "0\n").unwrap();
        assert_eq!(
            uio_device(&sysfs, "0000:00:03.0"),
            Err("0000:00:03.0 has no IRQ".to_string())
        );
        assert!(!sysfs.drivers.join(UIO_DRIVER).join("new_id").exists());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_missing_dev_node_is_named() {
        let (root, sysfs) = scratch("nodev");
        bind(&sysfs, UIO_DRIVER);
        assert_eq!(
            uio_device(&sysfs, "0000:00:03.0"),
            Err("0000:00:03.0 is bound to uio_pci_generic but has no uio device".to_string())
        );
        std::fs::create_dir_all(sysfs.devices.join("0000:00:03.0/uio/uio0")).unwrap();
        assert_eq!(
            uio_device(&sysfs, "0000:00:03.0"),
            Err(format!("{} does not exist", sysfs.dev.join("uio0").display()))
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
