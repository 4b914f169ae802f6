//! Follows a log file an emulator appends to, like `tail -f`.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;

pub struct LogFollower {
    path: PathBuf,
    contents: Vec<u8>,
}

impl LogFollower {
    pub fn new(path: PathBuf) -> Self {
        LogFollower {
            path,
            contents: Vec::new(),
        }
    }

    /// Reads what was appended since the last call and returns it. A file
    /// the emulator has not created yet reads as empty.
    pub fn read_new(&mut self) -> io::Result<&[u8]> {
        let already_read = self.contents.len();
        let mut file = match File::open(&self.path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(&[]),
            Err(error) => return Err(error),
        };
        file.seek(SeekFrom::Start(already_read as u64))?;
        file.read_to_end(&mut self.contents)?;
        Ok(&self.contents[already_read..])
    }

    /// Everything read so far; serial output is not guaranteed UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.contents).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn returns_only_appended_bytes() {
        let dir = std::env::temp_dir().join(format!("keel-follow-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("serial.log");
        let _ = std::fs::remove_file(&path);
        let mut follower = LogFollower::new(path.clone());
        assert_eq!(follower.read_new().unwrap(), b"");

        let mut file = File::create(&path).unwrap();
        file.write_all(b"keel: one\n").unwrap();
        assert_eq!(follower.read_new().unwrap(), b"keel: one\n");
        file.write_all(b"keel: two").unwrap();
        assert_eq!(follower.read_new().unwrap(), b"keel: two");
        assert_eq!(follower.read_new().unwrap(), b"");
        assert_eq!(follower.text(), "keel: one\nkeel: two");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
