//! Output files of the commands: checked before any work starts, written under a temporary
//! name beside the target and renamed into place only when complete, so an error never leaves
//! a partial file or replaces a good one. Also standard output that a closed pipe ends quietly.
//!
//! Use (see docs/cli-conventions.md):
//!
//! ```no_run
//! # use seisfuse::cli::output::{Outputs, OutputFile};
//! # fn f(input: &std::path::Path, out: &std::path::Path, force: bool) -> anyhow::Result<()> {
//! let mut outs = Outputs::new(force);
//! outs.input(input);
//! outs.file("--out", out)?;        // before reading or computing anything
//! // ... the work ...
//! let mut f = OutputFile::create(out)?; // a temporary file beside `out`
//! std::io::Write::write_all(&mut f, b"...")?;
//! f.commit()?;                       // renamed to `out`; dropped uncommitted it is removed
//! # Ok(()) }
//! ```

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The output paths of one command, checked together against each other and its inputs.
#[derive(Debug, Default)]
pub struct Outputs {
    force: bool,
    inputs: Vec<PathBuf>,
    outputs: Vec<(String, PathBuf)>,
}

impl Outputs {
    /// `force`: existing output files may be replaced.
    pub fn new(force: bool) -> Self {
        Outputs {
            force,
            ..Default::default()
        }
    }

    /// A file the command reads: no output may be it.
    pub fn input(&mut self, path: &Path) -> &mut Self {
        self.inputs.push(path.to_path_buf());
        self
    }

    /// Checks an output file given by `flag`: its folder exists and is writable, it is not a
    /// folder, not one of the inputs, not another output, and does not exist unless `force`.
    pub fn file(&mut self, flag: &str, path: &Path) -> Result<()> {
        let shown = path.display();
        if path.as_os_str().is_empty() {
            bail!("{flag} is empty; give a file path");
        }
        if path.file_name().is_none() || path.to_string_lossy().ends_with('/') {
            bail!("{flag} {shown} is not a file path (it names a folder)");
        }
        let parent = parent_of(path);
        check_dir_writable(flag, path, &parent)?;
        for i in &self.inputs {
            if same_file(i, path) {
                bail!(
                    "{flag} {shown} is also an input of this command; \
                     writing it would destroy the input: choose another output path"
                );
            }
        }
        for (f, o) in &self.outputs {
            if same_file(o, path) {
                bail!("{flag} and {f} both name {shown}; give each output its own path");
            }
        }
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => {
                bail!("{flag} {shown} is a folder; give a file path (e.g. {shown}/out.npy)")
            }
            Ok(m) if !m.file_type().is_file() && !m.file_type().is_symlink() => {
                bail!("{flag} {shown} exists and is not a regular file; choose another path")
            }
            Ok(_) if !self.force => {
                bail!("{flag} {shown} exists; pass --force to overwrite it or choose another path")
            }
            _ => {}
        }
        self.outputs.push((flag.to_string(), path.to_path_buf()));
        Ok(())
    }

    /// Checks an output folder given by `flag` (created by the command, with any missing
    /// parents, as `mkdir -p`): it is not a file, and the closest folder that exists is
    /// writable.
    pub fn dir(&mut self, flag: &str, path: &Path) -> Result<()> {
        let shown = path.display();
        if path.as_os_str().is_empty() {
            bail!("{flag} is empty; give a folder path");
        }
        let mut existing = path.to_path_buf();
        loop {
            match std::fs::metadata(&existing) {
                Ok(m) if m.is_dir() => break,
                Ok(_) => bail!(
                    "{flag} {shown}: {} exists and is not a folder",
                    existing.display()
                ),
                Err(_) => {
                    existing = match existing.parent() {
                        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                        _ => PathBuf::from("."),
                    }
                }
            }
        }
        check_dir_writable(flag, path, &existing)?;
        for (f, o) in &self.outputs {
            if same_file(o, path) {
                bail!("{flag} and {f} both name {shown}; give each output its own path");
            }
        }
        self.outputs.push((flag.to_string(), path.to_path_buf()));
        Ok(())
    }
}

fn check_dir_writable(flag: &str, path: &Path, dir: &Path) -> Result<()> {
    let shown = path.display();
    match std::fs::metadata(dir) {
        Err(_) => bail!(
            "{flag} {shown}: the folder {} does not exist; create it first or choose another path",
            dir.display()
        ),
        Ok(m) if !m.is_dir() => bail!("{flag} {shown}: {} is not a folder", dir.display()),
        Ok(_) => {}
    }
    // Permission bits do not tell the whole story (root, ACLs, read-only mounts): try.
    let probe = dir.join(format!(".seisfuse-probe-{}", std::process::id()));
    match File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => bail!(
            "{flag} {shown}: cannot write into the folder {} ({e}); choose another path",
            dir.display()
        ),
    }
}

/// Whether `a` and `b` are the same file: the same device and inode when both exist, else the
/// same absolute path after resolving the folder.
pub fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return x.dev() == y.dev() && x.ino() == y.ino();
        }
    }
    let norm = |p: &Path| -> PathBuf {
        let dir = parent_of(p);
        let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
        match p.file_name() {
            Some(n) => dir.join(n),
            None => dir,
        }
    };
    norm(a) == norm(b)
}

pub use crate::atomic::{parent_of, temp_path, write_atomic, OutputFile, Staged};

/// Prints a line to standard output, returning the error instead of panicking (a closed pipe
/// ends the program quietly: see [`is_broken_pipe`]).
pub fn write_stdout(args: std::fmt::Arguments) -> Result<()> {
    let mut o = std::io::stdout().lock();
    o.write_fmt(args)
        .and_then(|_| o.write_all(b"\n"))
        .context("writing to standard output")?;
    Ok(())
}

/// `println!` that returns a `Result` instead of panicking on a closed pipe.
#[macro_export]
macro_rules! outln {
    () => { $crate::cli::output::write_stdout(format_args!("")) };
    ($($t:tt)*) => { $crate::cli::output::write_stdout(format_args!($($t)*)) };
}

/// Whether the error comes from writing to a closed pipe (`seisfuse … | head -1`).
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// A panic hook that ends the process quietly with success when the panic is a failed print to
/// a closed pipe (a `println!`/`eprintln!` deep in a library); other panics go to `prev`.
pub fn install_broken_pipe_hook() {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to std") && msg.contains("Broken pipe") {
            std::process::exit(0);
        }
        prev(info)
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("seisfuse-out-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn checks_outputs() {
        let d = tmpdir("checks");
        let input = d.join("in.npy");
        std::fs::write(&input, b"x").unwrap();
        let mut o = Outputs::new(false);
        o.input(&input);
        let e = o.file("--out", &input).unwrap_err().to_string();
        assert!(e.contains("input"), "{e}");
        let e = o
            .file("--out", &d.join("missing/x.npy"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
        o.file("--out", &d.join("a.npy")).unwrap();
        let e = o.file("--probs", &d.join("a.npy")).unwrap_err().to_string();
        assert!(e.contains("--out") && e.contains("--probs"), "{e}");
        std::fs::write(d.join("b.npy"), b"y").unwrap();
        let e = o.file("--x", &d.join("b.npy")).unwrap_err().to_string();
        assert!(e.contains("--force"), "{e}");
        Outputs::new(true).file("--x", &d.join("b.npy")).unwrap();
        let e = o.file("--y", &d).unwrap_err().to_string();
        assert!(e.contains("folder"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
