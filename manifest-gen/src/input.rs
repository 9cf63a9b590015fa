//! Every file manifest-gen reads (the overlay declaration, the operator's secret.env, the
//! tree's own files in `check`, the documents of `docs`) is read as the service reads
//! `API_KEY_FILE` ([`contract::files::read_small_file`]): a regular file only (a FIFO would
//! block, `/dev/zero` would fill memory), opened without blocking, with a bound enforced while
//! reading. Anything else is an [`InputFileError`], which exits with [`EXIT_BAD_INPUT`].

use std::fmt;
use std::path::{Path, PathBuf};

use contract::files::{FileProblem, read_small_file};

/// The exit code of a bad input file (as clap's for a bad argument).
pub const EXIT_BAD_INPUT: u8 = 2;

/// The largest overlay declaration read (the committed one is about 1.5 KiB).
pub const MAX_DECLARATION_BYTES: usize = 64 * 1024;
/// The largest secret.env read: the API server's limit on a Secret's data.
pub const MAX_SECRET_ENV_BYTES: usize = crate::overrides::MAX_DATA_BYTES;
/// The largest file of the generated tree `check` reads: a generated file holds at most one
/// ConfigMap's data (1 MiB), quoted.
pub const MAX_TREE_FILE_BYTES: usize = 2 * 1024 * 1024;
/// The largest document `docs` reads (README.md, docs/*.md).
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// A file manifest-gen cannot use: what it is for, where, why, and what was expected.
#[derive(Debug)]
pub struct InputFileError {
    /// What the file is, e.g. "the overlay declaration".
    pub what: String,
    pub path: PathBuf,
    pub problem: FileProblem,
    pub limit: usize,
}

impl InputFileError {
    /// True when the file does not exist (some callers treat that as empty).
    pub fn is_missing(&self) -> bool {
        matches!(&self.problem, FileProblem::Unreadable(e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}

impl fmt::Display for InputFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}; expected a regular file of UTF-8 text of at most {} bytes",
            self.what,
            self.path.display(),
            self.problem,
            self.limit
        )
    }
}

impl std::error::Error for InputFileError {}

/// Reads `path` (described as `what` in errors) as UTF-8 text of at most `limit` bytes.
pub fn read(what: &str, path: &Path, limit: usize) -> Result<String, InputFileError> {
    read_small_file(path, limit).map_err(|problem| InputFileError {
        what: what.to_string(),
        path: path.to_path_buf(),
        problem,
        limit,
    })
}

/// The exit code for `err`: [`EXIT_BAD_INPUT`] when a bad input file caused it, 1 otherwise.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err
        .chain()
        .any(|cause| cause.downcast_ref::<InputFileError>().is_some())
    {
        EXIT_BAD_INPUT
    } else {
        1
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_file_the_problem_and_the_bound_and_map_to_exit_2() {
        let err = read("the overlay declaration", Path::new("/dev/zero"), 16).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the overlay declaration /dev/zero is a character device, not a regular file; expected a regular file of UTF-8 text of at most 16 bytes"
        );
        let wrapped = anyhow::Error::new(err).context("while loading");
        assert_eq!(exit_code(&wrapped), EXIT_BAD_INPUT);
        assert_eq!(exit_code(&anyhow::anyhow!("other")), 1);
        assert!(
            read("x", Path::new("/nonexistent/x"), 16)
                .unwrap_err()
                .is_missing()
        );
    }
}
