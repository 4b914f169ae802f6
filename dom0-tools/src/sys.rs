//! The only module with `unsafe`: mapped PCI BARs (mmap, volatile register
//! access) and the terminal's raw mode (termios). Everything here checks its
//! bounds itself so callers stay in safe code.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{fence, Ordering};

/// A shared, read-write mapping of a sysfs PCI resource file.
pub struct Mapping {
    base: NonNull<u8>,
    len: usize,
}

impl Mapping {
    /// Maps the first `len` bytes of `file` (a `resourceN` file opened
    /// read-write), shared so that stores reach the device.
    pub fn new(file: &File, len: usize) -> io::Result<Self> {
        // SAFETY: a fresh mapping at an address the kernel picks; it aliases
        // no Rust object. The fd stays valid for the call; the mapping keeps
        // its own reference to the file afterwards.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(base.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned NULL"))?;
        Ok(Self { base, len })
    }

    fn check(&self, offset: usize, len: usize, align: usize) {
        let fits = offset.checked_add(len).is_some_and(|end| end <= self.len);
        assert!(
            fits && offset.is_multiple_of(align),
            "access at {offset:#x}+{len} outside the mapping"
        );
    }

    /// A 32-bit volatile load (device registers need single, full-width
    /// accesses the compiler may not merge, split or drop).
    pub fn read32(&self, offset: usize) -> u32 {
        self.check(offset, 4, 4);
        // SAFETY: in bounds and 4-byte aligned (checked above; the base is
        // page-aligned) inside a live mapping.
        unsafe { self.base.as_ptr().add(offset).cast::<u32>().read_volatile() }
    }

    /// A 32-bit volatile store. The fences order it after every earlier
    /// access to shared memory (the request must be complete when Keel
    /// sees the doorbell) and before every later one (the response is read
    /// only after the call returned).
    pub fn write32(&mut self, offset: usize, value: u32) {
        self.check(offset, 4, 4);
        fence(Ordering::SeqCst);
        // SAFETY: as in `read32`.
        unsafe { self.base.as_ptr().add(offset).cast::<u32>().write_volatile(value) };
        fence(Ordering::SeqCst);
    }

    /// Copies `bytes` into the mapping at `offset`.
    pub fn copy_in(&mut self, offset: usize, bytes: &[u8]) {
        self.check(offset, bytes.len(), 1);
        // SAFETY: the destination range is inside the mapping (checked), and
        // a mapping of device memory cannot overlap a Rust slice.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.base.as_ptr().add(offset), bytes.len()) };
    }

    /// Copies `out.len()` bytes from the mapping at `offset` into `out`.
    pub fn copy_out(&self, offset: usize, out: &mut [u8]) {
        self.check(offset, out.len(), 1);
        // SAFETY: as in `copy_in`, with source and destination swapped.
        unsafe { std::ptr::copy_nonoverlapping(self.base.as_ptr().add(offset), out.as_mut_ptr(), out.len()) };
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` describe a mapping this object created and
        // nothing borrows it any more. A failure leaves it mapped until exit.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// Puts a terminal into raw mode (no echo, no line editing, no signals from
/// Ctrl-C, so every key reaches the guest) until dropped.
pub struct RawTerminal {
    fd: RawFd,
    saved: libc::termios,
}

impl RawTerminal {
    pub fn enter(terminal: &impl AsRawFd) -> io::Result<Self> {
        let fd = terminal.as_raw_fd();
        let mut saved = std::mem::MaybeUninit::<libc::termios>::uninit();
        // SAFETY: tcgetattr writes a whole termios through a valid pointer.
        if unsafe { libc::tcgetattr(fd, saved.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: tcgetattr succeeded, so it initialized `saved`.
        let saved = unsafe { saved.assume_init() };
        let mut raw = saved;
        // SAFETY: cfmakeraw only edits the termios it is given.
        unsafe { libc::cfmakeraw(&mut raw) };
        // SAFETY: a valid termios for a terminal fd.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &raw) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { fd, saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `enter` on the same fd.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;
    use std::io::{Read, Seek, Write};

    fn scratch_file(len: usize) -> (std::path::PathBuf, File) {
        let path = std::env::temp_dir().join(format!("keel-tools-sys-{}-{len}", std::process::id()));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        file.write_all(&vec![0; len]).unwrap();
        (path, file)
    }

    #[test]
    fn a_mapping_reads_and_writes_the_file_it_maps() {
        let (path, mut file) = scratch_file(8192);
        {
            let mut mapping = Mapping::new(&file, 8192).unwrap();
            mapping.write32(4, 0xdead_beef);
            assert_eq!(mapping.read32(4), 0xdead_beef);
            mapping.copy_in(4096, b"request");
            let mut out = [0; 7];
            mapping.copy_out(4096, &mut out);
            assert_eq!(&out, b"request");
        }
        // MAP_SHARED: the stores reached the file.
        let mut contents = Vec::new();
        file.rewind().unwrap();
        file.read_to_end(&mut contents).unwrap();
        assert_eq!(contents[4..8], 0xdead_beef_u32.to_le_bytes());
        assert_eq!(&contents[4096..4103], b"request");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    #[should_panic(expected = "outside the mapping")]
    fn accesses_past_the_mapping_panic_instead_of_faulting() {
        let (path, file) = scratch_file(4096);
        let mapping = Mapping::new(&file, 4096).unwrap();
        std::fs::remove_file(path).unwrap();
        mapping.read32(4096);
    }

    #[test]
    #[should_panic(expected = "outside the mapping")]
    fn unaligned_register_accesses_panic() {
        let (path, file) = scratch_file(4096);
        let mapping = Mapping::new(&file, 4096).unwrap();
        std::fs::remove_file(path).unwrap();
        mapping.read32(2);
    }

    fn termios(fd: RawFd) -> libc::termios {
        let mut settings = std::mem::MaybeUninit::<libc::termios>::uninit();
        // SAFETY: as in `RawTerminal::enter`.
        assert_eq!(unsafe { libc::tcgetattr(fd, settings.as_mut_ptr()) }, 0);
        // SAFETY: tcgetattr succeeded.
        unsafe { settings.assume_init() }
    }

    #[test]
    fn raw_mode_is_undone_on_drop() {
        let (mut controller, mut terminal) = (0, 0);
        // SAFETY: openpty writes two fds; the name, termios and winsize
        // arguments may be null.
        let opened = unsafe {
            libc::openpty(
                &mut controller,
                &mut terminal,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(opened, 0, "openpty: {}", io::Error::last_os_error());
        // SAFETY: fresh fds this test owns from here on.
        let (_controller, terminal): (File, File) = unsafe {
            (
                std::os::fd::FromRawFd::from_raw_fd(controller),
                std::os::fd::FromRawFd::from_raw_fd(terminal),
            )
        };
        let before = termios(terminal.as_raw_fd());
        assert_ne!(before.c_lflag & (libc::ICANON | libc::ECHO | libc::ISIG), 0);
        {
            let _raw = RawTerminal::enter(&terminal).unwrap();
            let raw = termios(terminal.as_raw_fd());
            assert_eq!(raw.c_lflag & (libc::ICANON | libc::ECHO | libc::ISIG), 0);
        }
        let after = termios(terminal.as_raw_fd());
        assert_eq!(
            (after.c_lflag, after.c_iflag, after.c_oflag),
            (before.c_lflag, before.c_iflag, before.c_oflag)
        );
        // Not a terminal: refused.
        assert!(RawTerminal::enter(&File::open("/dev/null").unwrap()).is_err());
    }
}
