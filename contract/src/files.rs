//! Reading the small files the service takes from outside (the mounted API key, the cgroup's
//! memory limit) without trusting them: only a regular file, opened without blocking, read
//! with a size bound.
//!
//! A FIFO would block start-up forever, `/dev/zero` would fill memory, a directory or a
//! device is a mistake: each is refused with a message that names what the path is.

use std::fmt;
use std::fs::{File, FileType, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The most a small input file may hold.
pub const MAX_SMALL_FILE_BYTES: usize = 4096;

/// Why a file cannot be used.
#[derive(Debug)]
pub enum FileProblem {
    /// It does not exist or cannot be opened or read.
    Unreadable(std::io::Error),
    /// It exists but is not a regular file (after following symlinks).
    NotRegular(&'static str),
    /// It holds more than the bound.
    TooLarge { limit: usize },
    /// Its content is not UTF-8.
    NotUtf8,
}

impl fmt::Display for FileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileProblem::Unreadable(err) => write!(f, "cannot be read ({err})"),
            FileProblem::NotRegular(what) => write!(f, "is {what}, not a regular file"),
            FileProblem::TooLarge { limit } => write!(f, "holds more than {limit} bytes"),
            FileProblem::NotUtf8 => f.write_str("does not hold UTF-8 text"),
        }
    }
}

impl std::error::Error for FileProblem {}

fn describe(kind: FileType) -> Option<&'static str> {
    if kind.is_file() {
        None
    } else if kind.is_dir() {
        Some("a directory")
    } else if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_char_device() {
        Some("a character device")
    } else if kind.is_block_device() {
        Some("a block device")
    } else if kind.is_socket() {
        Some("a socket")
    } else {
        Some("not a regular file")
    }
}

/// Reads `path` as UTF-8 text of at most `limit` bytes, refusing anything but a regular file.
pub fn read_small_file(path: &Path, limit: usize) -> Result<String, FileProblem> {
    // The type is checked before opening (opening a FIFO for reading blocks until a writer
    // appears), and again on the open file, in case the path changed in between: the open is
    // non-blocking, so even then it cannot hang.
    let kind = std::fs::metadata(path)
        .map_err(FileProblem::Unreadable)?
        .file_type();
    if let Some(what) = describe(kind) {
        return Err(FileProblem::NotRegular(what));
    }
    let file: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(FileProblem::Unreadable)?;
    let opened = file
        .metadata()
        .map_err(FileProblem::Unreadable)?
        .file_type();
    if let Some(what) = describe(opened) {
        return Err(FileProblem::NotRegular(what));
    }
    let mut bytes = Vec::with_capacity(limit.min(1024) + 1);
    file.take(u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(FileProblem::Unreadable)?;
    if bytes.len() > limit {
        return Err(FileProblem::TooLarge { limit });
    }
    String::from_utf8(bytes).map_err(|_| FileProblem::NotUtf8)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_read_within_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "token\n").unwrap();
        assert_eq!(read_small_file(&path, 16).unwrap(), "token\n");
        std::fs::write(&path, "x".repeat(17)).unwrap();
        assert!(matches!(
            read_small_file(&path, 16),
            Err(FileProblem::TooLarge { limit: 16 })
        ));
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(matches!(
            read_small_file(&path, 16),
            Err(FileProblem::NotUtf8)
        ));
    }

    #[test]
    fn devices_directories_and_fifos_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        for (path, what) in [
            (Path::new("/dev/zero"), "a character device"),
            (dir.path(), "a directory"),
            (fifo.as_path(), "a FIFO"),
        ] {
            let err = read_small_file(path, 16).unwrap_err();
            assert_eq!(err.to_string(), format!("is {what}, not a regular file"));
        }
        assert!(matches!(
            read_small_file(&dir.path().join("absent"), 16),
            Err(FileProblem::Unreadable(_))
        ));
    }
}
