//! Where the workspace and its target directory are.

use std::env;
use std::path::{Path, PathBuf};

use keel_boot_tests::Layout;

pub struct Workspace {
    pub root: PathBuf,
    pub layout: Layout,
}

impl Workspace {
    pub fn locate() -> Self {
        // xtask lives one level below the workspace root.
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf();
        let target_dir = match env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => std::path::absolute(&dir).unwrap_or_else(|_| PathBuf::from(dir)),
            None => root.join("target"),
        };
        Workspace {
            root,
            layout: Layout::new(target_dir),
        }
    }
}
