//! `keel-stress virtio-hostile` on Linux: takes the virtio-blk function
//! away from its kernel driver and gives `keel_guest_tools::virtio_hostile`'s
//! driver the registers and DMA pages it needs, all through sysfs and
//! procfs (root only):
//!
//! - `driver/unbind`: the kernel driver lets go (its BAR claims too, which
//!   would make the mapping below fail under CONFIG_IO_STRICT_DEVMEM);
//! - `enable`, then `config` (the command register): memory and I/O
//!   decoding and bus mastering on, INTx off (nothing here handles the
//!   interrupt; the line may be shared); MSI-X Enable cleared if set;
//! - `resourceN` of the BAR with the common configuration, mapped shared
//!   (uncached, as the kernel maps PCI resource files): each register
//!   access is one volatile load or store of its width, which Keel traps;
//! - the notification BAR's `resourceN` file, written with `pwrite` of 2
//!   bytes: for an I/O BAR the kernel does exactly one `outw` to BAR
//!   start + offset (`pci_write_resource_io`, there since Linux 3.6), after
//!   checking the range. Neither `ioperm` nor the port number is needed,
//!   and the kernel's lockdown rules (which refuse both alike) apply;
//! - DMA pages: anonymous, `MAP_POPULATE | MAP_LOCKED`, `mlock`ed and
//!   written once, and translated to guest-physical addresses through
//!   `/proc/self/pagemap` (checked again after every scenario: a locked
//!   page could still be migrated).

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use keel_guest_tools::virtio_hostile::driver::{run_all, Driver, Hardware};
use keel_guest_tools::virtio_hostile::{
    pagemap_frame, parse_capabilities, Capabilities, Options, Page, DEVICE_ID, MSIX_CONTROL, MSIX_ENABLE, PCI_COMMAND,
    PCI_COMMAND_INTX_DISABLE, PCI_COMMAND_IO, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY, SCENARIOS, VENDOR_ID,
};

use crate::mapped::{Bar, DmaPages, PAGE_SIZE};

const PCI_DEVICES: &str = "/sys/bus/pci/devices";
const PAGEMAP: &str = "/proc/self/pagemap";
/// How long the driver sleeps between two polls.
const POLL_INTERVAL: Duration = Duration::from_millis(1);

/// Runs every scenario on the function `options.device`; true when all passed.
pub fn run(options: &Options, say: &dyn Fn(String)) -> bool {
    let mut device = match LinuxDevice::open(options, say) {
        Ok(device) => device,
        Err(why) => {
            say(format!("keel-stress: virtio-hostile FAILED {why}"));
            return false;
        }
    };
    let caps = device.caps;
    let pages: Vec<String> = Page::ALL
        .iter()
        .map(|&page| format!("{page:?}={:#x}", device.page_gpa(page)).to_lowercase())
        .collect();
    let mut driver = Driver::new(&mut device, caps, options.wait, options.seed);
    let (features, capacity) = match driver.probe() {
        Ok(found) => found,
        Err(why) => {
            say(format!("keel-stress: virtio-hostile FAILED {why}"));
            return false;
        }
    };
    say(format!(
        "keel-stress: virtio-hostile start {} (features {features:#x}, capacity {capacity} sectors, \
         wait {} s, seed {}, pages {})",
        options.device,
        options.wait.as_secs(),
        options.seed,
        pages.join(" ")
    ));
    let ok = run_all(&mut driver, &SCENARIOS, say);
    say(if ok {
        "keel-stress: virtio-hostile done".to_string()
    } else {
        "keel-stress: virtio-hostile FAILED".to_string()
    });
    ok
}

enum Notify {
    /// An I/O (or memory) BAR's sysfs file, written with `pwrite`.
    File(File),
    /// The notification region lies in the mapped BAR.
    Mapped,
}

struct LinuxDevice {
    caps: Capabilities,
    bar: Bar,
    notify: Notify,
    dma: DmaPages,
    frames: Vec<u64>,
    pagemap: File,
}

fn read_text(path: &Path) -> Result<String, String> {
    fs::read_to_string(path)
        .map(|text| text.trim().to_string())
        .map_err(|error| format!("{}: {error}", path.display()))
}

fn write_text(path: &Path, text: &str) -> Result<(), String> {
    fs::write(path, text).map_err(|error| format!("writing `{text}` to {}: {error}", path.display()))
}

fn read_id(path: &Path) -> Result<u16, String> {
    let text = read_text(path)?;
    u16::from_str_radix(text.trim_start_matches("0x"), 16).map_err(|_| format!("{}: `{text}`", path.display()))
}

fn open_rw(path: &Path) -> Result<File, String> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|error| format!("{}: {error}", path.display()))
}

impl LinuxDevice {
    fn open(options: &Options, say: &dyn Fn(String)) -> Result<LinuxDevice, String> {
        let dir = PathBuf::from(PCI_DEVICES).join(&options.device);
        if !dir.exists() {
            return Err(format!(
                "no PCI function {} ({} missing)",
                options.device,
                dir.display()
            ));
        }
        let (vendor, device) = (read_id(&dir.join("vendor"))?, read_id(&dir.join("device"))?);
        if (vendor, device) != (VENDOR_ID, DEVICE_ID) {
            return Err(format!(
                "{} is {vendor:04x}:{device:04x}, not virtio-blk {VENDOR_ID:04x}:{DEVICE_ID:04x}",
                options.device
            ));
        }
        if let Ok(driver) = fs::read_link(dir.join("driver")) {
            let name = driver.file_name().map(|name| name.to_string_lossy().into_owned());
            write_text(&dir.join("driver/unbind"), &options.device)?;
            say(format!(
                "keel-stress: virtio-hostile unbound {} from {}",
                options.device,
                name.unwrap_or_default()
            ));
        }
        if read_text(&dir.join("enable"))? == "0" {
            write_text(&dir.join("enable"), "1")?;
        }
        let caps = prepare_config(&dir.join("config"))?;
        if caps.isr.bar != caps.common.bar || caps.device.is_some_and(|device| device.bar != caps.common.bar) {
            return Err(format!(
                "common, ISR and device configuration in different BARs: {caps:?}"
            ));
        }
        let resource = |bar: u8| dir.join(format!("resource{bar}"));
        let bar_file = open_rw(&resource(caps.common.bar))?;
        let bar_len = bar_file.metadata().map_err(|error| error.to_string())?.len() as usize;
        let needed = [
            u64::from(caps.common.offset) + 0x38,
            u64::from(caps.isr.offset) + 1,
            caps.device.map_or(0, |device| u64::from(device.offset) + 8),
        ];
        if needed.iter().any(|&end| end > bar_len as u64) {
            return Err(format!(
                "BAR {} is {bar_len} bytes, too small for {caps:?}",
                caps.common.bar
            ));
        }
        let bar = Bar::map(&bar_file, bar_len)
            .map_err(|error| format!("mapping {}: {error}", resource(caps.common.bar).display()))?;
        let notify = if caps.notify.bar == caps.common.bar {
            Notify::Mapped
        } else {
            Notify::File(open_rw(&resource(caps.notify.bar))?)
        };
        let dma = DmaPages::new(Page::ALL.len()).map_err(|error| format!("DMA pages: {error}"))?;
        let pagemap = File::open(PAGEMAP).map_err(|error| format!("{PAGEMAP}: {error}"))?;
        let frames = Page::ALL
            .iter()
            .map(|&page| frame(&pagemap, dma.address(page.index())))
            .collect::<Result<Vec<u64>, String>>()?;
        Ok(LinuxDevice {
            caps,
            bar,
            notify,
            dma,
            frames,
            pagemap,
        })
    }
}

/// Turns decoding and bus mastering on, INTx and MSI-X off, and reads the
/// capabilities.
fn prepare_config(path: &Path) -> Result<Capabilities, String> {
    let config = open_rw(path)?;
    let read_all = || {
        let mut bytes = vec![0u8; 256];
        config
            .read_exact_at(&mut bytes, 0)
            .map(|()| bytes)
            .map_err(|error| format!("reading {}: {error}", path.display()))
    };
    let write = |at: usize, value: u16| {
        config
            .write_all_at(&value.to_le_bytes(), at as u64)
            .map_err(|error| format!("writing {}: {error}", path.display()))
    };
    let bytes = read_all()?;
    let command = u16::from_le_bytes([bytes[PCI_COMMAND], bytes[PCI_COMMAND + 1]]);
    let on = PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE;
    if command & on != on {
        write(PCI_COMMAND, command | on)?;
    }
    let caps = parse_capabilities(&bytes)?;
    if let Some(msix) = caps.msix {
        let at = usize::from(msix) + MSIX_CONTROL;
        let Some(&[low, high]) = bytes.get(at..at + 2) else {
            return Err(format!(
                "the MSI-X capability at {msix:#x} runs past configuration space"
            ));
        };
        let control = u16::from_le_bytes([low, high]);
        if control & MSIX_ENABLE != 0 {
            write(at, control & !MSIX_ENABLE)?;
        }
    }
    let bytes = read_all()?;
    let command = u16::from_le_bytes([bytes[PCI_COMMAND], bytes[PCI_COMMAND + 1]]);
    if command & on != on {
        return Err(format!("command register {command:#06x} after setting {on:#06x}"));
    }
    Ok(caps)
}

/// The guest-physical address of the page at virtual `address`.
fn frame(pagemap: &File, address: usize) -> Result<u64, String> {
    let mut entry = [0u8; 8];
    pagemap
        .read_exact_at(&mut entry, (address / PAGE_SIZE * 8) as u64)
        .map_err(|error| format!("{PAGEMAP}: {error}"))?;
    pagemap_frame(u64::from_le_bytes(entry)).map(|frame| frame * PAGE_SIZE as u64)
}

impl LinuxDevice {
    fn page_offset(page: Page, offset: usize) -> usize {
        page.index() * PAGE_SIZE + offset
    }
}

impl Hardware for LinuxDevice {
    fn mmio_read(&mut self, offset: u64, size: u8) -> u64 {
        self.bar.read(offset as usize, size)
    }

    fn mmio_write(&mut self, offset: u64, size: u8, value: u64) {
        self.bar.write(offset as usize, size, value);
    }

    fn notify(&mut self, offset: u64, value: u16) -> Result<(), String> {
        match &self.notify {
            Notify::Mapped => {
                self.bar.write(offset as usize, 2, u64::from(value));
                Ok(())
            }
            Notify::File(file) => match file.write_at(&value.to_le_bytes(), offset) {
                Ok(2) => Ok(()),
                Ok(done) => Err(format!("notification: {done} of 2 bytes written")),
                Err(error) => Err(format!("notification: {error}")),
            },
        }
    }

    fn page_gpa(&self, page: Page) -> u64 {
        self.frames[page.index()]
    }

    fn dma_write(&mut self, page: Page, offset: usize, bytes: &[u8]) {
        assert!(offset + bytes.len() <= PAGE_SIZE, "DMA write past its page");
        self.dma.write(Self::page_offset(page, offset), bytes);
    }

    fn dma_read(&mut self, page: Page, offset: usize, buf: &mut [u8]) {
        assert!(offset + buf.len() <= PAGE_SIZE, "DMA read past its page");
        self.dma.read(Self::page_offset(page, offset), buf);
    }

    fn dma_publish_u16(&mut self, page: Page, offset: usize, value: u16) {
        self.dma.publish_u16(Self::page_offset(page, offset), value);
    }

    fn dma_observe_u16(&mut self, page: Page, offset: usize) -> u16 {
        self.dma.observe_u16(Self::page_offset(page, offset))
    }

    fn pause(&mut self) {
        std::thread::sleep(POLL_INTERVAL);
    }

    fn check_pages(&mut self) -> Result<(), String> {
        for page in Page::ALL {
            let now = frame(&self.pagemap, self.dma.address(page.index()))?;
            if now != self.frames[page.index()] {
                return Err(format!(
                    "DMA page {page:?} moved from {:#x} to {now:#x}",
                    self.frames[page.index()]
                ));
            }
        }
        Ok(())
    }
}
