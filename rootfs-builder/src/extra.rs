//! The `--extra-files` list: host files to copy into the rootfs.
//!
//! One entry per line: `host-path guest-path mode`, separated by whitespace, with the
//! mode in octal (`0755`). Blank lines and lines starting with `#` are ignored. A
//! relative host path is taken relative to the list's own directory. Guest paths are
//! absolute and may not contain `..`.
//!
//! Limitation: paths with spaces cannot be written; only regular files (or symlinks
//! to them) are copied, not directories.

use std::path::{Component, Path, PathBuf};

/// Highest mode accepted: permission bits plus setuid, setgid and sticky.
const MODE_MAX: u32 = 0o7777;

/// Errors from reading the extra-files list.
#[derive(Debug, thiserror::Error)]
pub enum ExtraError {
    /// The list itself cannot be read.
    #[error("cannot read extra-files list {0}")]
    Read(PathBuf, #[source] std::io::Error),
    /// A line does not have three fields.
    #[error("{list}:{line}: expected `host-path guest-path mode`")]
    Fields {
        /// The list file.
        list: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// The mode is not octal or too large.
    #[error("{list}:{line}: mode {mode:?} is not an octal mode up to 7777")]
    Mode {
        /// The list file.
        list: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The text found.
        mode: String,
    },
    /// The guest path is relative or escapes the root.
    #[error("{list}:{line}: guest path {guest:?} must be absolute without `..`")]
    GuestPath {
        /// The list file.
        list: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The text found.
        guest: String,
    },
    /// The host file does not exist or is not a regular file.
    #[error("{list}:{line}: extra file {host} does not exist or is not a regular file")]
    Missing {
        /// The list file.
        list: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The host path, resolved.
        host: PathBuf,
    },
}

/// One file to copy into the rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraFile {
    /// Where it comes from on the host.
    pub host: PathBuf,
    /// Where it goes, relative to the rootfs root.
    pub guest: PathBuf,
    /// Its mode bits.
    pub mode: u32,
}

/// Reads and checks the list at `list` (every host file must exist).
pub fn read_list(list: &Path) -> Result<Vec<ExtraFile>, ExtraError> {
    let text = std::fs::read_to_string(list).map_err(|e| ExtraError::Read(list.to_owned(), e))?;
    let base = list.parent().unwrap_or(Path::new("."));
    let mut files = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let file = parse_line(line, base, list, index + 1)?;
        if !file.host.is_file() {
            let (list, line, host) = (list.to_owned(), index + 1, file.host);
            return Err(ExtraError::Missing { list, line, host });
        }
        files.push(file);
    }
    Ok(files)
}

fn parse_line(
    line: &str,
    base: &Path,
    list: &Path,
    number: usize,
) -> Result<ExtraFile, ExtraError> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [host, guest, mode] = fields[..] else {
        return Err(ExtraError::Fields {
            list: list.to_owned(),
            line: number,
        });
    };
    let mode = u32::from_str_radix(mode, 8)
        .ok()
        .filter(|m| *m <= MODE_MAX)
        .ok_or_else(|| ExtraError::Mode {
            list: list.to_owned(),
            line: number,
            mode: mode.to_owned(),
        })?;
    let guest = guest_relative(guest).ok_or_else(|| ExtraError::GuestPath {
        list: list.to_owned(),
        line: number,
        guest: guest.to_owned(),
    })?;
    Ok(ExtraFile {
        host: base.join(host),
        guest,
        mode,
    })
}

/// Turns `/usr/bin/x` into `usr/bin/x`; `None` for relative paths, `..` or `/` itself.
pub fn guest_relative(guest: &str) -> Option<PathBuf> {
    let path = Path::new(guest);
    if !path.is_absolute() {
        return None;
    }
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(part) => out.push(part),
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list_with(dir: &Path, text: &str) -> PathBuf {
        let list = dir.join("extra.list");
        std::fs::write(&list, text).unwrap();
        list
    }

    #[test]
    fn parses_entries_relative_to_the_list() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tool"), b"x").unwrap();
        let list = list_with(dir.path(), "# comment\n\ntool /usr/bin/tool 4755\n");
        let files = read_list(&list).unwrap();
        assert_eq!(
            files,
            [ExtraFile {
                host: dir.path().join("tool"),
                guest: PathBuf::from("usr/bin/tool"),
                mode: 0o4755,
            }]
        );
    }

    #[test]
    fn missing_host_file_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let list = list_with(dir.path(), "\nnope /nope 0644\n");
        let err = read_list(&list).unwrap_err().to_string();
        assert!(err.contains(":2:") && err.contains("nope"), "{err}");
    }

    #[test]
    fn bad_fields_modes_and_guest_paths_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        for (line, needle) in [
            ("f /x", "expected"),
            ("f /x 0899", "0899"),
            ("f /x 17777", "17777"),
            ("f x 0644", "\"x\""),
            ("f /a/../../etc 0644", ".."),
            ("f / 0644", "\"/\""),
        ] {
            let list = list_with(dir.path(), line);
            let err = read_list(&list).unwrap_err().to_string();
            assert!(err.contains(needle), "{line}: {err}");
        }
    }
}
