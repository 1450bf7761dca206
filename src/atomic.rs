//! Files written under a temporary name beside their destination and renamed into place only
//! when complete: a reader never sees half a file, and an error (or a panic) before the rename
//! leaves nothing behind. Every output of seisfuse goes through [`OutputFile`].

use anyhow::{Context, Result};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The folder a file goes into ("." for a bare file name).
pub fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Creates `dir` and its missing parents (`mkdir -p`); returns the folders it created,
/// innermost first, for [`remove_created`] to undo after an error.
pub fn create_dir_all_tracked(dir: &Path) -> Result<Vec<PathBuf>> {
    let created = missing_dirs(dir);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(created)
}

/// `dir` and its parents that do not exist, innermost first.
pub fn missing_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut p = Some(dir);
    while let Some(d) = p.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        out.push(d.to_path_buf());
        p = d.parent();
    }
    out
}

/// Removes the folders [`create_dir_all_tracked`] created, those that are empty.
pub fn remove_created(created: &[PathBuf]) {
    for d in created {
        let _ = std::fs::remove_dir(d);
    }
}

/// A file being written under a temporary name beside its destination. [`commit`] renames it
/// into place; dropping it uncommitted (an error, a panic) removes the temporary file.
///
/// [`commit`]: OutputFile::commit
#[derive(Debug)]
pub struct OutputFile {
    dest: PathBuf,
    tmp: PathBuf,
    w: Option<std::io::BufWriter<File>>,
}

impl OutputFile {
    pub fn create(dest: &Path) -> Result<Self> {
        let tmp = temp_path(dest)?;
        let f = File::create(&tmp).with_context(|| {
            format!(
                "cannot create {} (the temporary file for {})",
                tmp.display(),
                dest.display()
            )
        })?;
        Ok(OutputFile {
            dest: dest.to_path_buf(),
            tmp,
            w: Some(std::io::BufWriter::new(f)),
        })
    }

    /// Where the file goes.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Flushes, syncs and renames the file into place.
    pub fn commit(mut self) -> Result<()> {
        let w = self.w.take().expect("not committed twice");
        let f = w
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("writing {}", self.dest.display()))?;
        f.sync_all()
            .with_context(|| format!("writing {}", self.dest.display()))?;
        drop(f);
        std::fs::rename(&self.tmp, &self.dest).with_context(|| {
            format!(
                "cannot rename {} to {}",
                self.tmp.display(),
                self.dest.display()
            )
        })?;
        Ok(())
    }
}

impl Write for OutputFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.w.as_mut().expect("open").write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.w.as_mut().expect("open").write_all(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.w.as_mut().expect("open").flush()
    }
}

/// Seeking flushes the buffer first (for formats whose header is written last, like HDF5's
/// superblock).
impl std::io::Seek for OutputFile {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.w.as_mut().expect("open").seek(pos)
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        if self.w.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// `.NAME.tmpPID` beside `dest` (hidden; never mistaken for a finished output).
pub fn temp_path(dest: &Path) -> Result<PathBuf> {
    let name = dest
        .file_name()
        .ok_or_else(|| anyhow::anyhow!("{} is not a file path", dest.display()))?
        .to_string_lossy()
        .into_owned();
    Ok(parent_of(dest).join(format!(".{name}.tmp{}", std::process::id())))
}

/// Writes `bytes` to `dest` through an [`OutputFile`].
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = OutputFile::create(dest)?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", dest.display()))?;
    f.commit()
}

/// Several outputs committed together: each is written to its temporary file first, and only
/// when all are complete are they renamed into place (an error before that leaves none).
#[derive(Debug, Default)]
pub struct Staged {
    files: Vec<OutputFile>,
}

impl Staged {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn add(&mut self, f: OutputFile) {
        self.files.push(f);
    }
    pub fn commit(self) -> Result<()> {
        for f in self.files {
            f.commit()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncommitted_files_leave_nothing() {
        let d = std::env::temp_dir().join(format!("seisfuse-atomic-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("x.bin");
        {
            let mut f = OutputFile::create(&p).unwrap();
            f.write_all(b"half").unwrap();
        }
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0);
        write_atomic(&p, b"whole").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"whole");
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
        let _ = std::fs::remove_dir_all(&d);
    }
}
