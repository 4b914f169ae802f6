//! `keel console --hvc`: a DomU's virtio console (its `/dev/hvc0`), which
//! the domain's backend serves on a Unix socket
//! (`backend::console_link`). The same following loop as Keel's console
//! ([`crate::console::attach`]) runs over [`HvcConsole`].

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::console::{Endpoint, Input, Output};
use crate::sys::poll_any;

/// A connection to a virtio console's socket.
pub struct HvcConsole {
    stream: UnixStream,
}

impl HvcConsole {
    /// Connects to the socket at `path` (the backend replays the output it
    /// kept, then follows; a client connected before is dropped).
    pub fn connect(path: &Path) -> Result<Self> {
        let stream = UnixStream::connect(path).with_context(|| format!("cannot connect to {}", path.display()))?;
        stream.set_nonblocking(true)?;
        Ok(Self { stream })
    }
}

impl Endpoint for HvcConsole {
    fn read(&mut self) -> Result<Output> {
        let mut bytes = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            match self.stream.read(&mut buffer) {
                // The backend closed the socket: the domain is gone (or
                // another client took over).
                Ok(0) if bytes.is_empty() => return Ok(Output::Gone),
                Ok(0) => break,
                Ok(read) => {
                    bytes.extend_from_slice(&buffer[..read]);
                    if bytes.len() >= 64 * 1024 {
                        break;
                    }
                }
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == ErrorKind::ConnectionReset => return Ok(Output::Gone),
                Err(error) => return Err(error.into()),
            }
        }
        Ok(Output::Bytes { bytes, lost: 0 })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<Input> {
        match self.stream.write(bytes) {
            Ok(taken) => Ok(Input::Taken(taken)),
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => Ok(Input::Taken(0)),
            Err(error) if matches!(error.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => Ok(Input::Gone),
            Err(error) => Err(error.into()),
        }
    }

    fn wait(&mut self, poll: Duration) {
        // Output wakes us at once; typed input waits for the next turn.
        let _ = poll_any(&[self.stream.as_raw_fd()], poll);
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;

    use super::*;
    use crate::console::{attach, ConsoleEnd, ConsoleOptions};

    #[test]
    fn output_is_followed_until_the_text_and_typed_bytes_reach_the_socket() {
        let dir = std::env::temp_dir().join(format!("keel-tools-hvc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("console-3.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let backend = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream.write_all(b"boot...\nlogin: ").unwrap();
            let mut typed = [0u8; 5];
            stream.read_exact(&mut typed).unwrap();
            stream.write_all(b"polo ").unwrap();
            stream.write_all(&typed).unwrap();
            typed
        });
        let mut console = HvcConsole::connect(&path).unwrap();
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        sender.send(b"marco".to_vec()).unwrap();
        let options = ConsoleOptions {
            until: Some("polo marco".into()),
            timeout: Some(Duration::from_secs(10)),
            interactive: false,
            poll: Duration::from_millis(5),
        };
        let (mut out, mut notes) = (Vec::new(), Vec::new());
        let end = attach(
            &mut console,
            "web (id 3)",
            &options,
            Some(receiver),
            &mut out,
            &mut notes,
        )
        .unwrap();
        assert_eq!(end, ConsoleEnd::Matched);
        assert_eq!(String::from_utf8(out).unwrap(), "boot...\nlogin: polo marco");
        assert_eq!(&backend.join().unwrap(), b"marco");
        // The backend is gone now: a new attach says so.
        let options = ConsoleOptions { until: None, ..options };
        let (mut out, mut notes) = (Vec::new(), Vec::new());
        let end = attach(&mut console, "web (id 3)", &options, None, &mut out, &mut notes).unwrap();
        assert_eq!(end, ConsoleEnd::DomainGone);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
