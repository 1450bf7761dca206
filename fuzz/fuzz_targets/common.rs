//! Shared by the targets: a file on tmpfs for the readers that map files.

use std::path::PathBuf;

/// `bytes` written to a per-process file (in /dev/shm when there is one), for readers that
/// memory-map a path.
pub fn as_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let p = dir.join(format!("seisfuse-fuzz-{}-{name}", std::process::id()));
    std::fs::write(&p, bytes).expect("write the input file");
    p
}
