use std::fmt;

/// Why an entry cannot be added to the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitramfsError {
    EmptyPath,
    /// Archive paths are relative to the initramfs root.
    AbsolutePath(String),
    /// `..` could escape the root when the kernel unpacks the archive.
    ParentComponent(String),
    /// `.` components are redundant and would create duplicate names.
    CurrentDirComponent(String),
    /// `a//b` or a trailing `/`.
    EmptyComponent(String),
    /// The kernel reads names as NUL-terminated strings.
    NulInPath(String),
    PathTooLong {
        path: String,
        len: usize,
        max: usize,
    },
    /// Only permission bits (0o7777) may be given; the file type is implied.
    InvalidMode {
        path: String,
        mode: u32,
    },
    /// Linux device numbers have a 12-bit major and a 20-bit minor.
    InvalidDeviceNumber {
        path: String,
        major: u32,
        minor: u32,
    },
    InvalidSymlinkTarget(String),
    DuplicatePath(String),
    /// `path` needs `parent` to be a directory, but it is something else.
    NotADirectory {
        path: String,
        parent: String,
    },
    /// newc stores sizes in 32 bits.
    FileTooLarge {
        path: String,
        size: usize,
    },
    TooManyEntries,
}

impl fmt::Display for InitramfsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyPath => write!(f, "empty path"),
            Self::AbsolutePath(path) => write!(f, "{path:?}: path must be relative"),
            Self::ParentComponent(path) => write!(f, "{path:?}: path must not contain `..`"),
            Self::CurrentDirComponent(path) => write!(f, "{path:?}: path must not contain `.`"),
            Self::EmptyComponent(path) => write!(f, "{path:?}: path has an empty component"),
            Self::NulInPath(path) => write!(f, "{path:?}: path contains NUL"),
            Self::PathTooLong { path, len, max } => {
                write!(f, "{path:?}: {len} bytes long, at most {max} allowed")
            }
            Self::InvalidMode { path, mode } => {
                write!(f, "{path:?}: mode {mode:#o} has bits outside 0o7777")
            }
            Self::InvalidDeviceNumber { path, major, minor } => {
                write!(f, "{path:?}: device {major}:{minor} out of range")
            }
            Self::InvalidSymlinkTarget(path) => {
                write!(f, "{path:?}: symlink target is empty, too long or contains NUL")
            }
            Self::DuplicatePath(path) => write!(f, "{path:?}: already in the archive"),
            Self::NotADirectory { path, parent } => {
                write!(f, "{path:?}: parent {parent:?} is not a directory")
            }
            Self::FileTooLarge { path, size } => {
                write!(f, "{path:?}: {size} bytes exceeds the 4 GiB newc limit")
            }
            Self::TooManyEntries => write!(f, "archive has run out of inode numbers"),
        }
    }
}

impl std::error::Error for InitramfsError {}
