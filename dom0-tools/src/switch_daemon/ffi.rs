//! The switch daemon's system calls: `SOCK_SEQPACKET` Unix sockets, poll,
//! the TAP ioctls and a timerfd. The only `unsafe` code of the module,
//! each call in its own small function; callers get `io::Result`s and
//! owned descriptors (opened close-on-exec, so spawned processes inherit
//! none of them).
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::mem::{offset_of, size_of};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use libc::{c_char, c_int, c_short};

fn check(result: c_int) -> io::Result<c_int> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

/// Takes ownership of a descriptor a system call just returned.
fn owned(fd: c_int) -> io::Result<OwnedFd> {
    let fd = check(fd)?;
    // SAFETY: `fd` was just returned by the kernel (checked non-negative)
    // and nothing else owns it: it is closed exactly once, by the OwnedFd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message.to_string())
}

/// A non-blocking, close-on-exec `AF_UNIX` `SOCK_SEQPACKET` socket.
pub fn seqpacket_socket() -> io::Result<OwnedFd> {
    let kind = libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK;
    // SAFETY: integer arguments only; the result is checked by `owned`.
    owned(unsafe { libc::socket(libc::AF_UNIX, kind, 0) })
}

/// `path` as a socket address (it must fit `sun_path` with its NUL).
fn unix_address(path: &Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is a family number and a byte array: all zeros
    // is a valid value (and NUL-terminates any shorter path).
    let mut address: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    let bytes = path.as_os_str().as_bytes();
    if bytes.is_empty() || bytes.contains(&0) || bytes.len() >= address.sun_path.len() {
        return Err(invalid(
            "the socket path is empty, too long (107 bytes at most) or contains NUL",
        ));
    }
    address.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (slot, &byte) in address.sun_path.iter_mut().zip(bytes) {
        *slot = byte as c_char;
    }
    let len = offset_of!(libc::sockaddr_un, sun_path) + bytes.len() + 1;
    let len = libc::socklen_t::try_from(len).map_err(|_| invalid("socket path too long"))?;
    Ok((address, len))
}

/// Binds `socket` to `path` (which must not exist).
pub fn bind(socket: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let (address, len) = unix_address(path)?;
    // SAFETY: `address` is a valid sockaddr_un of at least `len` bytes that
    // lives across the call; the kernel only reads it.
    check(unsafe { libc::bind(socket.as_raw_fd(), (&raw const address).cast(), len) }).map(drop)
}

pub fn listen(socket: BorrowedFd<'_>, backlog: c_int) -> io::Result<()> {
    // SAFETY: integer arguments only.
    check(unsafe { libc::listen(socket.as_raw_fd(), backlog) }).map(drop)
}

/// Connects `socket` to the listener at `path`. Non-blocking: a listener
/// whose backlog is full answers EAGAIN instead of making us wait.
pub fn connect(socket: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let (address, len) = unix_address(path)?;
    // SAFETY: as in `bind`.
    check(unsafe { libc::connect(socket.as_raw_fd(), (&raw const address).cast(), len) }).map(drop)
}

/// The next pending connection, non-blocking and close-on-exec.
pub fn accept(listener: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let flags = libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK;
    // SAFETY: null address and length pointers are allowed (the peer's
    // address is not wanted); the result is checked by `owned`.
    owned(unsafe { libc::accept4(listener.as_raw_fd(), std::ptr::null_mut(), std::ptr::null_mut(), flags) })
}

fn length(result: isize) -> io::Result<usize> {
    usize::try_from(result).map_err(|_| io::Error::last_os_error())
}

/// Sends one message without blocking (EAGAIN when the socket's buffer is
/// full) and without SIGPIPE (EPIPE when the peer is gone).
pub fn send(socket: BorrowedFd<'_>, message: &[u8]) -> io::Result<usize> {
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    // SAFETY: the kernel reads at most `message.len()` bytes from a live
    // slice.
    length(unsafe { libc::send(socket.as_raw_fd(), message.as_ptr().cast(), message.len(), flags) })
}

/// Receives one message without blocking. Returns the message's real
/// length (MSG_TRUNC): more than `buffer.len()` means it was cut and the
/// rest discarded. 0 is the end of the connection.
pub fn recv(socket: BorrowedFd<'_>, buffer: &mut [u8]) -> io::Result<usize> {
    let flags = libc::MSG_DONTWAIT | libc::MSG_TRUNC;
    // SAFETY: the kernel writes at most `buffer.len()` bytes into a live,
    // exclusively borrowed slice (MSG_TRUNC changes only the result).
    length(unsafe { libc::recv(socket.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len(), flags) })
}

/// Asks for a send buffer of `bytes` (the kernel caps it at wmem_max).
pub fn set_send_buffer(socket: BorrowedFd<'_>, bytes: c_int) -> io::Result<()> {
    let size = size_of::<c_int>() as libc::socklen_t;
    // SAFETY: the option value is a c_int that lives across the call and
    // `size` is its size; the kernel only reads it.
    check(unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&raw const bytes).cast(),
            size,
        )
    })
    .map(drop)
}

/// Waits until one of `fds` has an event or `timeout` passes; the number
/// of descriptors with events (0 also when a signal interrupted the wait).
pub fn poll(fds: &mut [libc::pollfd], timeout: Duration) -> io::Result<usize> {
    let millis = c_int::try_from(timeout.as_millis()).unwrap_or(c_int::MAX);
    let count = libc::nfds_t::try_from(fds.len()).map_err(|_| invalid("too many descriptors to poll"))?;
    // SAFETY: `fds` is a live, exclusively borrowed array of `count`
    // pollfds; the kernel writes only their `revents`.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), count, millis) };
    match usize::try_from(ready) {
        Ok(ready) => Ok(ready),
        Err(_) => {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                Ok(0)
            } else {
                Err(error)
            }
        }
    }
}

/// An interface request for `name` with nothing else set.
fn interface_request(name: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is a name and a union of integers, socket addresses and
    // a pointer: all zeros is a valid value (no flags, a null pointer).
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.contains(&0) || bytes.len() >= request.ifr_name.len() {
        return Err(invalid("an interface name has 1 to 15 bytes"));
    }
    for (slot, &byte) in request.ifr_name.iter_mut().zip(bytes) {
        *slot = byte as c_char;
    }
    Ok(request)
}

/// Makes `tun` (an open `/dev/net/tun`) the TAP interface `name`, creating
/// it if needed: Ethernet frames, no packet-information prefix, no virtio
/// header (so the kernel hands us whole, checksummed frames).
pub fn attach_tap(tun: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    let mut request = interface_request(name)?;
    request.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as c_short;
    // SAFETY: TUNSETIFF reads the ifreq (and may write the name back); it
    // is a live local that outlives the call.
    check(unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &raw mut request) }).map(drop)
}

/// An `AF_INET` datagram socket: the handle for interface ioctls.
fn control_socket() -> io::Result<OwnedFd> {
    // SAFETY: integer arguments only; the result is checked by `owned`.
    owned(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })
}

/// Runs the interface ioctl `request` on `ifreq`.
fn interface_ioctl(request: libc::c_ulong, ifreq: &mut libc::ifreq) -> io::Result<()> {
    let socket = control_socket()?;
    // SAFETY: the SIOC[GS]IF* requests used here read or write one ifreq,
    // which is exclusively borrowed for the call.
    check(unsafe { libc::ioctl(socket.as_raw_fd(), request as libc::Ioctl, std::ptr::from_mut(ifreq)) }).map(drop)
}

/// Sets IFF_UP on interface `name` (what `ip link set NAME up` does).
pub fn set_link_up(name: &str) -> io::Result<()> {
    let mut request = interface_request(name)?;
    interface_ioctl(libc::SIOCGIFFLAGS, &mut request)?;
    // SAFETY: SIOCGIFFLAGS succeeded, so the union holds the flags (and
    // any bit pattern is a valid c_short).
    let flags = unsafe { request.ifr_ifru.ifru_flags };
    request.ifr_ifru.ifru_flags = flags | libc::IFF_UP as c_short;
    interface_ioctl(libc::SIOCSIFFLAGS, &mut request)
}

/// Interface `name`'s Ethernet address.
pub fn hardware_address(name: &str) -> io::Result<[u8; 6]> {
    let mut request = interface_request(name)?;
    interface_ioctl(libc::SIOCGIFHWADDR, &mut request)?;
    // SAFETY: SIOCGIFHWADDR succeeded, so the union holds a sockaddr whose
    // data starts with the address (any bytes are valid c_chars).
    let data = unsafe { request.ifr_ifru.ifru_hwaddr.sa_data };
    let mut mac = [0u8; 6];
    for (byte, &value) in mac.iter_mut().zip(&data) {
        *byte = value as u8;
    }
    Ok(mac)
}

/// A non-blocking monotonic timerfd, disarmed.
pub fn timer() -> io::Result<File> {
    let flags = libc::TFD_NONBLOCK | libc::TFD_CLOEXEC;
    // SAFETY: integer arguments only; the result is checked by `owned`.
    owned(unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, flags) }).map(File::from)
}

/// Arms `timer` to expire every `period` from now (at least 1 ms), or
/// disarms it.
pub fn set_timer(timer: &File, period: Option<Duration>) -> io::Result<()> {
    let time = match period {
        Some(period) => {
            let period = period.max(Duration::from_millis(1));
            libc::timespec {
                tv_sec: libc::time_t::try_from(period.as_secs()).unwrap_or(libc::time_t::MAX),
                tv_nsec: period.subsec_nanos().into(),
            }
        }
        None => libc::timespec { tv_sec: 0, tv_nsec: 0 },
    };
    let spec = libc::itimerspec {
        it_interval: time,
        it_value: time,
    };
    // SAFETY: `spec` is a valid itimerspec that outlives the call; the old
    // value is not wanted (null is allowed).
    check(unsafe { libc::timerfd_settime(timer.as_raw_fd(), 0, &spec, std::ptr::null_mut()) }).map(drop)
}
