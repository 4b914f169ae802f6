//! Terminal modes and pseudo-terminals, through libc.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

fn check(result: libc::c_int) -> io::Result<libc::c_int> {
    if result == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

fn attributes(fd: BorrowedFd<'_>) -> io::Result<libc::termios> {
    // SAFETY: termios is plain data; tcgetattr fills it in.
    let mut termios: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor and a pointer to a live termios.
    check(unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut termios) })?;
    Ok(termios)
}

fn set_attributes(fd: BorrowedFd<'_>, termios: &libc::termios) -> io::Result<()> {
    // SAFETY: a valid descriptor and a pointer to a live termios.
    check(unsafe { libc::tcsetattr(fd.as_raw_fd(), libc::TCSANOW, termios) })?;
    Ok(())
}

/// What raw mode leaves of output processing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Output {
    /// Bytes pass unchanged.
    Raw,
    /// "\n" still becomes "\r\n": Keel's own messages end lines with a bare
    /// "\n" (Linux's "\r\n" becomes "\r\r\n", which shows the same).
    NewlineToCrLf,
}

/// Switches the terminal `fd` to raw mode (no echo, no line editing, no
/// signal keys); returns its previous attributes.
fn make_raw(fd: BorrowedFd<'_>, output: Output) -> io::Result<libc::termios> {
    let original = attributes(fd)?;
    let mut raw = original;
    // SAFETY: modifies the termios it is given, nothing else.
    unsafe { libc::cfmakeraw(&mut raw) };
    if output == Output::NewlineToCrLf {
        raw.c_oflag |= libc::OPOST | libc::ONLCR;
    }
    set_attributes(fd, &raw)?;
    Ok(original)
}

/// The user's terminal in raw mode (newlines still start a new line), put
/// back as it was when dropped (also when unwinding from a panic).
pub struct RawMode {
    terminal: OwnedFd,
    original: libc::termios,
}

impl RawMode {
    pub fn enable(terminal: BorrowedFd<'_>) -> io::Result<RawMode> {
        let terminal = terminal.try_clone_to_owned()?;
        let original = make_raw(terminal.as_fd(), Output::NewlineToCrLf)?;
        Ok(RawMode { terminal, original })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // Nothing better to do if the terminal is gone.
        let _ = set_attributes(self.terminal.as_fd(), &self.original);
    }
}

/// A pseudo-terminal pair; the emulator opens the slave side by its path.
pub struct Pty {
    pub master: OwnedFd,
    /// Kept open for the whole run: while no slave is open, reading the
    /// master fails (before the emulator opens it, after it exits).
    _slave: OwnedFd,
    pub slave_path: PathBuf,
}

impl Pty {
    /// A pair whose master is non-blocking and whose slave is already raw,
    /// so nothing typed before the emulator opens it is echoed back.
    pub fn open() -> io::Result<Pty> {
        let (mut master, mut slave) = (-1, -1);
        // SAFETY: openpty writes two descriptors; the null name, termios and
        // window size pointers are allowed.
        check(unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        })?;
        // SAFETY: openpty succeeded: both are open descriptors we now own.
        let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        for fd in [&master, &slave] {
            // Not inherited by the emulator (or anything else we start).
            // SAFETY: fcntl on a descriptor we own.
            check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) })?;
        }
        // SAFETY: as above.
        let flags = check(unsafe { libc::fcntl(master.as_raw_fd(), libc::F_GETFL) })?;
        // SAFETY: as above.
        check(unsafe { libc::fcntl(master.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
        make_raw(slave.as_fd(), Output::Raw)?;
        let slave_path = tty_name(slave.as_fd())?;
        Ok(Pty {
            master,
            _slave: slave,
            slave_path,
        })
    }
}

fn tty_name(fd: BorrowedFd<'_>) -> io::Result<PathBuf> {
    let mut name = [0 as libc::c_char; 256];
    // SAFETY: ttyname_r writes a NUL-terminated name of at most name.len()
    // bytes, or returns an error number.
    let error = unsafe { libc::ttyname_r(fd.as_raw_fd(), name.as_mut_ptr(), name.len()) };
    if error != 0 {
        return Err(io::Error::from_raw_os_error(error));
    }
    // SAFETY: on success the buffer holds a NUL-terminated string.
    let name = unsafe { CStr::from_ptr(name.as_ptr()) };
    Ok(PathBuf::from(name.to_string_lossy().into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::{Read, Write};

    #[test]
    fn bytes_written_to_the_slave_come_out_of_the_master_unchanged() {
        let pty = Pty::open().unwrap();
        assert!(pty.slave_path.starts_with("/dev/pts"), "{:?}", pty.slave_path);
        let mut slave = File::options().write(true).open(&pty.slave_path).unwrap();
        slave.write_all(b"a\nb\r\n\x03").unwrap();
        let mut master = File::from(pty.master.try_clone().unwrap());
        let mut read = [0u8; 16];
        let count = master.read(&mut read).unwrap();
        assert_eq!(&read[..count], b"a\nb\r\n\x03", "raw: no newline translation");
    }
}
