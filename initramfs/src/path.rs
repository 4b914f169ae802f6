//! Validated archive paths.

use crate::error::InitramfsError;

/// Linux PATH_MAX counts the terminating NUL.
pub const MAX_PATH_LEN: usize = 4095;

/// A relative, normalised path inside the archive, e.g. `usr/bin/busybox`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ArchivePath(String);

impl ArchivePath {
    pub fn parse(path: &str) -> Result<Self, InitramfsError> {
        let owned = || path.to_owned();
        if path.is_empty() {
            return Err(InitramfsError::EmptyPath);
        }
        if path.contains('\0') {
            return Err(InitramfsError::NulInPath(owned()));
        }
        if path.starts_with('/') {
            return Err(InitramfsError::AbsolutePath(owned()));
        }
        if path.len() > MAX_PATH_LEN {
            return Err(InitramfsError::PathTooLong {
                path: owned(),
                len: path.len(),
                max: MAX_PATH_LEN,
            });
        }
        for component in path.split('/') {
            match component {
                "" => return Err(InitramfsError::EmptyComponent(owned())),
                "." => return Err(InitramfsError::CurrentDirComponent(owned())),
                ".." => return Err(InitramfsError::ParentComponent(owned())),
                _ => {}
            }
        }
        Ok(Self(owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The newc `namesize` field: length including the terminating NUL.
    pub fn name_size(&self) -> u32 {
        // `parse` bounds the length by MAX_PATH_LEN, far below u32::MAX.
        self.0.len() as u32 + 1
    }

    /// Every proper ancestor, outermost first: `a`, `a/b` for `a/b/c`.
    pub fn ancestors(&self) -> impl Iterator<Item = ArchivePath> + '_ {
        self.0
            .match_indices('/')
            .filter_map(|(slash, _)| self.0.get(..slash))
            .map(|ancestor| ArchivePath(ancestor.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_paths_are_kept_verbatim() {
        for path in ["init", "dev/console", "usr/lib/x86_64/libc.so.6", ".hidden", "a..b"] {
            assert_eq!(ArchivePath::parse(path).unwrap().as_str(), path);
        }
    }

    #[test]
    fn invalid_paths_get_specific_errors() {
        let s = |p: &str| p.to_owned();
        assert_eq!(ArchivePath::parse(""), Err(InitramfsError::EmptyPath));
        assert_eq!(
            ArchivePath::parse("/init"),
            Err(InitramfsError::AbsolutePath(s("/init")))
        );
        assert_eq!(
            ArchivePath::parse("a/../b"),
            Err(InitramfsError::ParentComponent(s("a/../b")))
        );
        assert_eq!(ArchivePath::parse(".."), Err(InitramfsError::ParentComponent(s(".."))));
        assert_eq!(
            ArchivePath::parse("./init"),
            Err(InitramfsError::CurrentDirComponent(s("./init")))
        );
        assert_eq!(
            ArchivePath::parse("a//b"),
            Err(InitramfsError::EmptyComponent(s("a//b")))
        );
        assert_eq!(
            ArchivePath::parse("bin/"),
            Err(InitramfsError::EmptyComponent(s("bin/")))
        );
        assert_eq!(ArchivePath::parse("a\0b"), Err(InitramfsError::NulInPath(s("a\0b"))));
    }

    #[test]
    fn path_length_is_bounded_by_path_max() {
        let longest = "a".repeat(MAX_PATH_LEN);
        assert!(ArchivePath::parse(&longest).is_ok());
        let too_long = "a".repeat(MAX_PATH_LEN + 1);
        assert!(matches!(
            ArchivePath::parse(&too_long),
            Err(InitramfsError::PathTooLong {
                len: 4096,
                max: 4095,
                ..
            })
        ));
    }

    #[test]
    fn ancestors_are_listed_outermost_first() {
        let path = ArchivePath::parse("usr/local/bin/tool").unwrap();
        let ancestors: Vec<String> = path.ancestors().map(|a| a.as_str().to_owned()).collect();
        assert_eq!(ancestors, ["usr", "usr/local", "usr/local/bin"]);
        assert_eq!(ArchivePath::parse("init").unwrap().ancestors().count(), 0);
    }
}
