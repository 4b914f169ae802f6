//! The only module with `unsafe`: mapped PCI BARs (mmap, volatile register
//! and window access), the terminal's raw mode (termios), and the few
//! process calls the backend needs (signals, poll, setsid). Everything
//! here checks its bounds itself so callers stay in safe code.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::time::Duration;

/// A shared, read-write mapping of a sysfs PCI resource file.
pub struct Mapping {
    base: NonNull<u8>,
    len: usize,
}

impl Mapping {
    /// Maps the first `len` bytes of `file` (a `resourceN` file opened
    /// read-write), shared so that stores reach the device.
    pub fn new(file: &File, len: usize) -> io::Result<Self> {
        Self::new_at(file, 0, len)
    }

    /// Maps `len` bytes of `file` from `offset` (a multiple of the page
    /// size), shared and read-write.
    pub fn new_at(file: &File, offset: u64, len: usize) -> io::Result<Self> {
        let offset = libc::off_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        if len == 0 {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
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
                offset,
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

    /// Length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Copies from memory another party writes concurrently (a DomU's RAM
    /// in the window): volatile loads the compiler cannot merge, repeat or
    /// drop, each of the largest naturally aligned size that fits
    /// ([`access_size`]), so an aligned ring field (a `u16` index, a `u32`,
    /// a `u64` address) is read by one load and never torn.
    pub fn read_volatile(&self, offset: usize, out: &mut [u8]) {
        self.check(offset, out.len(), 1);
        let mut at = 0;
        while at < out.len() {
            let size = access_size(offset + at, out.len() - at);
            if size == 8 {
                // The aligned middle, a word per iteration (data buffers
                // are kilobytes: this loop is the backend's copy cost).
                let words = (out.len() - at) / 8;
                // SAFETY: the words lie inside the mapping (the whole range
                // was checked) and are 8-aligned (`access_size`); `out` has
                // room for them (`words` counts what is left of it) and is
                // written unaligned.
                unsafe {
                    let source = self.base.as_ptr().add(offset + at).cast::<u64>();
                    let target = out.as_mut_ptr().add(at).cast::<u64>();
                    if words >= STRING_COPY_WORDS {
                        string_copy(source, target, words);
                    } else {
                        for word in 0..words {
                            target.add(word).write_unaligned(source.add(word).read_volatile());
                        }
                    }
                }
                at += words * 8;
                continue;
            }
            // SAFETY: `offset + at .. + size` is inside the mapping (checked
            // above for the whole range) and aligned to `size` (the base is
            // page-aligned, `access_size` aligned the offset); the memory is
            // a live shared mapping no Rust reference covers.
            let bytes: [u8; 8] = unsafe {
                let pointer = self.base.as_ptr().add(offset + at);
                match size {
                    8 => pointer.cast::<u64>().read_volatile().to_ne_bytes(),
                    4 => widen(&pointer.cast::<u32>().read_volatile().to_ne_bytes()),
                    2 => widen(&pointer.cast::<u16>().read_volatile().to_ne_bytes()),
                    _ => [pointer.read_volatile(), 0, 0, 0, 0, 0, 0, 0],
                }
            };
            out[at..at + size].copy_from_slice(&bytes[..size]);
            at += size;
        }
    }

    /// Copies into memory another party reads concurrently, as
    /// [`Self::read_volatile`] does the other way (an aligned `u16` ring
    /// index is written by one store).
    pub fn write_volatile(&mut self, offset: usize, data: &[u8]) {
        self.check(offset, data.len(), 1);
        let mut at = 0;
        while at < data.len() {
            let size = access_size(offset + at, data.len() - at);
            if size == 8 {
                let words = (data.len() - at) / 8;
                // SAFETY: as in `read_volatile`'s word loop, the other way.
                unsafe {
                    let source = data.as_ptr().add(at).cast::<u64>();
                    let target = self.base.as_ptr().add(offset + at).cast::<u64>();
                    if words >= STRING_COPY_WORDS {
                        string_copy(source, target, words);
                    } else {
                        for word in 0..words {
                            target.add(word).write_volatile(source.add(word).read_unaligned());
                        }
                    }
                }
                at += words * 8;
                continue;
            }
            let mut bytes = [0u8; 8];
            bytes[..size].copy_from_slice(&data[at..at + size]);
            let [b0, b1, b2, b3, ..] = bytes;
            // SAFETY: as in `read_volatile`.
            unsafe {
                let pointer = self.base.as_ptr().add(offset + at);
                match size {
                    8 => pointer.cast::<u64>().write_volatile(u64::from_ne_bytes(bytes)),
                    4 => pointer
                        .cast::<u32>()
                        .write_volatile(u32::from_ne_bytes([b0, b1, b2, b3])),
                    2 => pointer.cast::<u16>().write_volatile(u16::from_ne_bytes([b0, b1])),
                    _ => pointer.write_volatile(b0),
                }
            }
            at += size;
        }
    }
}

/// Copies below this many words take a word loop of volatile accesses:
/// ring fields and descriptors (a few words) are read and written one
/// 8-byte access each, in order; data buffers (a frame, a sector and up)
/// take one string copy ([`string_copy`]).
const STRING_COPY_WORDS: usize = 64;

/// Copies `words` 8-byte words from `source` to `target` with `rep movsq`
/// in inline assembly: opaque to the compiler like a volatile access (one
/// side is memory another party touches concurrently), one instruction per
/// word where a loop costs about five, and a fast string copy on real
/// processors. Each aligned word is moved whole.
///
/// # Safety
///
/// `source` must be valid for `words` 8-byte reads and `target` for
/// `words` 8-byte writes, and the ranges must not overlap.
unsafe fn string_copy(source: *const u64, target: *mut u64, words: usize) {
    // SAFETY: the contract gives `words` readable words at `source` and
    // writable ones at `target`, not overlapping; `rep movsq` with the
    // direction flag clear (the ABI guarantees it) copies exactly RCX words
    // forward from RSI to RDI and touches nothing else.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        core::arch::asm!(
            "rep movsq",
            inout("rcx") words => _,
            inout("rsi") source => _,
            inout("rdi") target => _,
            options(nostack, preserves_flags)
        );
    }
    // Elsewhere (the tool is built for x86-64 Linux; this keeps host tests
    // building anywhere): volatile words, unaligned-tolerant on both sides.
    #[cfg(not(target_arch = "x86_64"))]
    for word in 0..words {
        // SAFETY: as above, each word in bounds.
        unsafe {
            let value = core::ptr::read_volatile(source.add(word).cast::<[u8; 8]>());
            core::ptr::write_volatile(target.add(word).cast::<[u8; 8]>(), value);
        }
    }
}

/// The access for the next bytes of a copy at `offset` with `left` bytes
/// to go: the largest of 8, 4, 2 and 1 that `offset` is aligned to and
/// that does not pass the end.
pub fn access_size(offset: usize, left: usize) -> usize {
    [8, 4, 2]
        .into_iter()
        .find(|&size| offset.is_multiple_of(size) && left >= size)
        .unwrap_or(1)
}

fn widen<const N: usize>(bytes: &[u8; N]) -> [u8; 8] {
    let mut wide = [0; 8];
    wide[..N].copy_from_slice(bytes);
    wide
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` describe a mapping this object created and
        // nothing borrows it any more. A failure leaves it mapped until exit.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// Set by the handler [`install_stop_handler`] installs.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::SeqCst);
}

/// Makes SIGTERM, SIGINT and SIGHUP set a flag ([`stop_requested`])
/// instead of killing the process. Without SA_RESTART, a blocking `poll`
/// returns EINTR so the caller sees the flag at once.
pub fn install_stop_handler() -> io::Result<()> {
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: an all-zero sigaction is a valid value (no flags, empty
        // mask) that sigemptyset and the handler field then complete.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: initializes the mask of a sigaction this function owns.
        unsafe { libc::sigemptyset(&mut action.sa_mask) };
        // SAFETY: a valid sigaction whose handler only stores to an atomic.
        if unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether a stop signal arrived since [`install_stop_handler`].
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// How [`poll_any`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolledAny {
    TimedOut,
    Interrupted,
    /// Bit `n` set: the `n`-th descriptor is ready (readable, or writable
    /// for those polled for writing; or hung up: a read or write says
    /// which).
    Readable(u64),
}

/// Waits up to `timeout` until one of `fds` (at most 64) is readable.
pub fn poll_any(fds: &[RawFd], timeout: Duration) -> io::Result<PolledAny> {
    poll_io(fds, &[], timeout)
}

/// Waits up to `timeout` until one of `read` is readable or one of `write`
/// writable (at most 64 in all); bit `n` of [`PolledAny::Readable`] stands
/// for the `n`-th of `read` followed by `write`.
pub fn poll_io(read: &[RawFd], write: &[RawFd], timeout: Duration) -> io::Result<PolledAny> {
    if read.len() + write.len() > 64 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut entries: Vec<libc::pollfd> = read
        .iter()
        .map(|&fd| (fd, libc::POLLIN))
        .chain(write.iter().map(|&fd| (fd, libc::POLLOUT)))
        .map(|(fd, events)| libc::pollfd { fd, events, revents: 0 })
        .collect();
    let millis = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: `entries` is a valid array of `entries.len()` pollfds for the
    // duration of the call; poll only writes their `revents`.
    match unsafe { libc::poll(entries.as_mut_ptr(), entries.len() as libc::nfds_t, millis) } {
        0 => Ok(PolledAny::TimedOut),
        n if n > 0 => Ok(PolledAny::Readable(
            entries
                .iter()
                .enumerate()
                .filter(|(_, entry)| entry.revents != 0)
                .fold(0, |mask, (at, _)| mask | 1 << at),
        )),
        _ => {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                Ok(PolledAny::Interrupted)
            } else {
                Err(error)
            }
        }
    }
}

/// Signals [`send_signal`] sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Term,
    Kill,
}

/// Sends `signal` to process `pid`. Refuses pids below 2: 0 and -1 would
/// signal whole groups, 1 is init.
pub fn send_signal(pid: i32, signal: Signal) -> io::Result<()> {
    if pid < 2 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let number = match signal {
        Signal::Term => libc::SIGTERM,
        Signal::Kill => libc::SIGKILL,
    };
    // SAFETY: kill takes plain integers; `pid` names one process.
    if unsafe { libc::kill(pid, number) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes the program `command` runs start a new session (setsid), so that
/// it outlives the terminal and the process group that started it.
pub fn new_session_on_exec(command: &mut Command) {
    // SAFETY: the closure runs between fork and exec, where only
    // async-signal-safe calls are allowed: it calls setsid (which is) and
    // allocates nothing.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
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
    fn access_sizes_are_aligned_and_stop_at_the_end() {
        assert_eq!(access_size(0, 16), 8);
        assert_eq!(access_size(8, 7), 4);
        assert_eq!(access_size(2, 2), 2);
        assert_eq!(access_size(2, 8), 2);
        assert_eq!(access_size(4, 8), 4);
        assert_eq!(access_size(3, 8), 1);
        assert_eq!(access_size(0, 1), 1);
        assert_eq!(access_size(6, 1), 1);
    }

    #[test]
    fn volatile_copies_move_every_byte_at_any_alignment() {
        let (path, mut file) = scratch_file(8192);
        {
            let mut mapping = Mapping::new_at(&file, 4096, 4096).unwrap();
            assert_eq!(mapping.len(), 4096);
            let pattern: Vec<u8> = (0..64).map(|byte| byte * 3 + 1).collect();
            for offset in 0..9 {
                for len in 0..40 {
                    let data = &pattern[..len];
                    mapping.write_volatile(100 + offset, data);
                    let mut out = vec![0; len];
                    mapping.read_volatile(100 + offset, &mut out);
                    assert_eq!(out, data, "offset {offset} len {len}");
                }
            }
            mapping.write_volatile(4094, &[0xaa, 0xbb]);
        }
        // The second page of the file, at the mapping's offset.
        let mut contents = Vec::new();
        file.rewind().unwrap();
        file.read_to_end(&mut contents).unwrap();
        assert_eq!(
            contents[4096 + 108..4096 + 108 + 39],
            (0..39).map(|b| b * 3 + 1).collect::<Vec<u8>>()
        );
        assert_eq!(contents[8190..], [0xaa, 0xbb]);
        assert!(contents[..4096].iter().all(|&byte| byte == 0));
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn long_copies_take_the_string_copy_and_move_every_byte() {
        let (path, file) = scratch_file(16384);
        let mut mapping = Mapping::new(&file, 16384).unwrap();
        let pattern: Vec<u8> = (0..9000u32).map(|at| (at * 7 + at / 251) as u8).collect();
        // Around the switch from the word loop to the string copy, at an
        // aligned and an unaligned start, and a 4 KiB sector's worth.
        for (offset, len) in [(0, 504), (0, 512), (8, 520), (3, 9000), (4096, 4096), (5, 4099)] {
            let data = &pattern[..len];
            // A guard byte after the copy stays as it was.
            mapping.write_volatile(offset + len, &[0x5a]);
            mapping.write_volatile(offset, data);
            let mut out = vec![0; len];
            mapping.read_volatile(offset, &mut out);
            assert_eq!(out, data, "offset {offset} len {len}");
            let mut guard = [0u8; 1];
            mapping.read_volatile(offset + len, &mut guard);
            assert_eq!(guard, [0x5a], "offset {offset} len {len}");
        }
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    #[should_panic(expected = "outside the mapping")]
    fn volatile_copies_past_the_mapping_panic() {
        let (path, file) = scratch_file(4096);
        let mapping = Mapping::new(&file, 4096).unwrap();
        std::fs::remove_file(path).unwrap();
        mapping.read_volatile(4090, &mut [0; 7]);
    }

    #[test]
    fn signals_are_refused_for_process_groups_and_init() {
        for pid in [-1, 0, 1] {
            assert_eq!(
                send_signal(pid, Signal::Term).unwrap_err().raw_os_error(),
                Some(libc::EINVAL)
            );
        }
    }

    #[test]
    fn poll_times_out_on_a_silent_pipe_and_sees_a_readable_one() {
        let (reader, mut writer) = std::io::pipe().unwrap();
        let reader = File::from(std::os::fd::OwnedFd::from(reader));
        let (other, _other_writer) = std::io::pipe().unwrap();
        let fds = [other.as_raw_fd(), reader.as_raw_fd()];
        assert_eq!(poll_any(&fds, Duration::from_millis(10)).unwrap(), PolledAny::TimedOut);
        writer.write_all(b"x").unwrap();
        assert_eq!(
            poll_any(&fds, Duration::from_secs(5)).unwrap(),
            PolledAny::Readable(0b10)
        );
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
