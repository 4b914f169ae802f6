//! `keel-stress intx`: checks that an assigned e1000's level-triggered INTx
//! reaches this guest as a level, from user space. The function is bound to
//! `uio_pci_generic`, whose handler counts each interrupt (`/dev/uioN`)
//! after checking Interrupt Status and masking INTx with Interrupt Disable;
//! this program re-enables INTx through the function's configuration file.
//! The e1000's Interrupt Cause Set register raises a cause without any
//! traffic, and the line stays asserted until Interrupt Cause Read is read.
//!
//! Each round: raise a cause (one interrupt); re-enable INTx without
//! clearing it (the line is still asserted, so a second interrupt must
//! come: an edge-only forwarding would lose it); clear the cause and
//! re-enable (nothing more). At the end, with the cause clear and INTx
//! enabled, no interrupt may come for a while.
//!
//! Then BAR 0 moves: with memory decoding off the test writes a new
//! address 16 MiB lower, turns decoding on, and reads the STATUS register
//! through `/dev/mem` at the new address (the same value as before) and
//! through the old mapping (all ones: nothing is there any more); then it
//! moves the BAR back and reads it at the old address again.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keel_guest_tools::intx::Options;

use crate::mapped::Bar;

/// e1000 registers (Intel 8254x manual, §13): Interrupt Cause Read (read
/// clears), Cause Set, Mask Set, Mask Clear.
const ICR: usize = 0xc0;
const ICS: usize = 0xc8;
const IMS: usize = 0xd0;
const IMC: usize = 0xd8;
/// The cause the test raises: Transmit Descriptor Written Back.
const CAUSE: u64 = 1;
const E1000_BAR0_BYTES: usize = 128 << 10;
/// Device Status: reads without side effects.
const STATUS: usize = 0x08;
const COMMAND: u64 = 4;
const COMMAND_MEMORY: u16 = 1 << 1;
const BAR0: u64 = 0x10;
/// How far below its address the test moves BAR 0 (inside the guest's
/// PCI window, where nothing else of the test DomU is).
const MOVE_DOWN: u64 = 16 << 20;
const INTX_DISABLE: u16 = 1 << 10;
const UIO_DRIVER: &str = "/sys/bus/pci/drivers/uio_pci_generic";
/// Guest milliseconds an expected interrupt may take, and how long the
/// final check waits for one that must not come.
const EXPECTED_WITHIN_MS: i32 = 5000;
const QUIET_FOR_MS: i32 = 1000;

struct Device {
    config: File,
    uio: File,
    bar: Bar,
    count: u32,
}

pub fn run(options: &Options, say: &dyn Fn(String)) -> bool {
    let mut device = match Device::open(&options.device) {
        Ok(device) => device,
        Err(why) => {
            say(format!("keel-stress: intx FAILED {}: {why}", options.device));
            return false;
        }
    };
    let start = Instant::now();
    match device.rounds(options.rounds).and_then(|()| device.move_bar()) {
        Ok(moved) => {
            say(format!(
                "keel-stress: intx {}: {} interrupts in {} rounds, each cause re-fired while still asserted, \
                 none once cleared ({} ms); {moved}",
                options.device,
                device.count,
                options.rounds,
                start.elapsed().as_millis()
            ));
            true
        }
        Err(why) => {
            say(format!("keel-stress: intx FAILED {}: {why}", options.device));
            false
        }
    }
}

impl Device {
    /// Binds the function to `uio_pci_generic` and opens what the test uses.
    fn open(address: &str) -> Result<Device, String> {
        let dir = PathBuf::from("/sys/bus/pci/devices").join(address);
        let ids = |name: &str| -> Result<String, String> {
            let text = fs::read_to_string(dir.join(name)).map_err(|error| format!("{name}: {error}"))?;
            Ok(text.trim().trim_start_matches("0x").to_string())
        };
        let (vendor, device) = (ids("vendor")?, ids("device")?);
        if fs::read_link(dir.join("driver")).is_err() {
            // Binds every function with these ids that has no driver; an
            // id already added is EEXIST, which is fine.
            let _ = fs::write(Path::new(UIO_DRIVER).join("new_id"), format!("{vendor} {device}"));
        }
        let uio_dir = wait_for_uio(&dir)?;
        let uio = open_uio(&uio_dir)?;
        let config = OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.join("config"))
            .map_err(|error| format!("config: {error}"))?;
        let resource = OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.join("resource0"))
            .map_err(|error| format!("resource0: {error}"))?;
        let bar = Bar::map(&resource, E1000_BAR0_BYTES).map_err(|error| format!("mapping BAR 0: {error}"))?;
        let mut device = Device {
            config,
            uio,
            bar,
            count: 0,
        };
        device.bar.write(IMC, 4, 0xffff_ffff);
        device.bar.read(ICR, 4);
        device.count = device.take_count()?.unwrap_or(0);
        device.enable_intx()?;
        Ok(device)
    }

    fn rounds(&mut self, rounds: u32) -> Result<(), String> {
        self.bar.write(IMS, 4, CAUSE);
        for round in 1..=rounds {
            self.bar.write(ICS, 4, CAUSE);
            self.expect_interrupt(round, "after the cause was raised")?;
            // Still asserted: re-enabling INTx must bring it back.
            self.enable_intx()?;
            self.expect_interrupt(round, "after INTx was re-enabled with the cause still set")?;
            let cause = self.bar.read(ICR, 4);
            if cause & CAUSE == 0 {
                return Err(format!("round {round}: ICR {cause:#x} lacks the cause raised"));
            }
            self.enable_intx()?;
        }
        self.bar.write(IMC, 4, 0xffff_ffff);
        if self.wait(QUIET_FOR_MS)? {
            return Err(format!(
                "an interrupt came with the cause cleared and masked (count {})",
                self.count
            ));
        }
        Ok(())
    }

    fn expect_interrupt(&mut self, round: u32, when: &str) -> Result<(), String> {
        let before = self.count;
        if !self.wait(EXPECTED_WITHIN_MS)? {
            return Err(format!(
                "round {round}: no interrupt {when} within {EXPECTED_WITHIN_MS} ms (count {before})"
            ));
        }
        if self.count != before.wrapping_add(1) {
            return Err(format!(
                "round {round}: {} interrupts {when}, expected one",
                self.count.wrapping_sub(before)
            ));
        }
        Ok(())
    }

    /// Waits up to `ms` for the interrupt count to move; returns whether it did.
    fn wait(&mut self, ms: i32) -> Result<bool, String> {
        let mut poll = libc::pollfd {
            fd: self.uio.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(&mut poll, 1, ms) };
        if ready < 0 {
            return Err(format!("poll on the uio device: {}", io::Error::last_os_error()));
        }
        if ready == 0 {
            return Ok(false);
        }
        match self.take_count()? {
            Some(count) => {
                let moved = count != self.count;
                self.count = count;
                Ok(moved)
            }
            None => Ok(false),
        }
    }

    /// The uio interrupt count (a read returns it once it moved since the
    /// last read; this is only called when poll says it did).
    fn take_count(&mut self) -> Result<Option<u32>, String> {
        let mut poll = libc::pollfd {
            fd: self.uio.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: as in `wait`; a zero timeout only looks.
        if unsafe { libc::poll(&mut poll, 1, 0) } <= 0 {
            return Ok(None);
        }
        let mut bytes = [0u8; 4];
        self.uio
            .read_exact(&mut bytes)
            .map_err(|error| format!("reading the uio count: {error}"))?;
        Ok(Some(u32::from_ne_bytes(bytes)))
    }

    /// Moves BAR 0 down and back, checking the registers follow; says what
    /// it did.
    fn move_bar(&mut self) -> Result<String, String> {
        let status = self.bar.read(STATUS, 4);
        if status == u64::from(u32::MAX) {
            return Err("STATUS reads all ones before the move".to_string());
        }
        let old = u64::from(self.read_config32(BAR0)?) & !0xf;
        let new = old
            .checked_sub(MOVE_DOWN)
            .ok_or_else(|| format!("BAR 0 at {old:#x} is too low to move"))?;
        self.place_bar(new)?;
        let mem = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/mem")
            .map_err(|error| format!("/dev/mem: {error}"))?;
        let moved = Bar::map_at(&mem, new, E1000_BAR0_BYTES).map_err(|error| format!("mapping {new:#x}: {error}"))?;
        let at_new = moved.read(STATUS, 4);
        let at_old = self.bar.read(STATUS, 4);
        self.place_bar(old)?;
        let back = self.bar.read(STATUS, 4);
        if at_new != status {
            return Err(format!(
                "BAR 0 moved to {new:#x}: STATUS there reads {at_new:#x}, not {status:#x}"
            ));
        }
        if at_old != u64::from(u32::MAX) {
            return Err(format!(
                "BAR 0 moved to {new:#x}: its old address {old:#x} still reads {at_old:#x}"
            ));
        }
        if back != status {
            return Err(format!("BAR 0 moved back to {old:#x}: STATUS reads {back:#x}"));
        }
        Ok(format!(
            "BAR 0 moved from {old:#x} to {new:#x} and back, its registers followed (STATUS {status:#x})"
        ))
    }

    /// Writes BAR 0 with memory decoding off, then turns decoding on.
    fn place_bar(&mut self, address: u64) -> Result<(), String> {
        let command = self.read_command()?;
        self.write_command(command & !COMMAND_MEMORY)?;
        let low = u32::try_from(address).map_err(|_| format!("{address:#x} is above 4 GiB"))?;
        self.config
            .write_all_at(&low.to_le_bytes(), BAR0)
            .map_err(|error| format!("writing BAR 0: {error}"))?;
        let written = u64::from(self.read_config32(BAR0)?) & !0xf;
        self.write_command(command | COMMAND_MEMORY)?;
        if written != address {
            return Err(format!("BAR 0 reads {written:#x} after writing {address:#x}"));
        }
        Ok(())
    }

    fn read_config32(&self, offset: u64) -> Result<u32, String> {
        let mut bytes = [0u8; 4];
        self.config
            .read_exact_at(&mut bytes, offset)
            .map_err(|error| format!("reading configuration at {offset:#x}: {error}"))?;
        Ok(u32::from_le_bytes(bytes))
    }

    fn read_command(&self) -> Result<u16, String> {
        Ok(self.read_config32(COMMAND)? as u16)
    }

    fn write_command(&self, command: u16) -> Result<(), String> {
        self.config
            .write_all_at(&command.to_le_bytes(), COMMAND)
            .map_err(|error| format!("writing the command register: {error}"))
    }

    /// Clears Interrupt Disable (uio_pci_generic sets it in its handler).
    fn enable_intx(&mut self) -> Result<(), String> {
        let command = self.read_command()?;
        self.write_command(command & !INTX_DISABLE)
    }
}

/// The function's `uio/uioN` directory, once the driver has bound.
fn wait_for_uio(dir: &Path) -> Result<PathBuf, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(entry) = fs::read_dir(dir.join("uio"))
            .ok()
            .and_then(|mut entries| entries.find_map(Result::ok))
        {
            return Ok(entry.path());
        }
        if Instant::now() > deadline {
            let driver = fs::read_link(dir.join("driver")).map(|path| path.display().to_string());
            return Err(format!(
                "no uio device 10 s after binding to uio_pci_generic (driver: {driver:?}; is uio_pci_generic.ko loaded?)"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `/dev/uioN`, made from its sysfs `dev` numbers if devtmpfs lacks it.
fn open_uio(uio_dir: &Path) -> Result<File, String> {
    let name = uio_dir
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let node = PathBuf::from("/dev").join(&name);
    if !node.exists() {
        let numbers = fs::read_to_string(uio_dir.join("dev")).map_err(|error| format!("{name}/dev: {error}"))?;
        let (major, minor) = numbers
            .trim()
            .split_once(':')
            .and_then(|(major, minor)| Some((major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?)))
            .ok_or_else(|| format!("{name}/dev reads '{}'", numbers.trim()))?;
        let path = std::ffi::CString::new(node.as_os_str().as_encoded_bytes()).map_err(|error| error.to_string())?;
        // SAFETY: a NUL-terminated path; mknod only creates a device node.
        let made = unsafe { libc::mknod(path.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(major, minor)) };
        if made != 0 {
            return Err(format!("mknod {}: {}", node.display(), io::Error::last_os_error()));
        }
    }
    File::open(&node).map_err(|error| format!("{}: {error}", node.display()))
}
