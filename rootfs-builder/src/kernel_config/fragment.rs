//! Config fragments: finding them under `kernel/configs/`, parsing them, and merging
//! them in a defined order into one set of requested options.
//!
//! Order: `common/*.conf`, then `<arch>/*.conf`, then each feature set's `*.conf` in
//! the order the feature sets were named, then extra fragments in the order given;
//! within a folder, files sort by name. Setting an option twice to the same value is
//! fine; setting it twice to different values is an error naming both places, so no
//! fragment silently overrides another.
//!
//! Limitation: a feature set cannot turn off what `common/` turns on; options a
//! feature set must flip (such as `MODULES`) stay out of `common/` and are left to
//! allnoconfig.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The options `hull-image` sets itself; fragments may not set them.
pub const RESERVED: &[&str] = &["LOCALVERSION"];

/// The per-arch allow-list of options that do not exist on that arch.
pub const ALLOW_LIST: &str = "unavailable.txt";

/// The folder of fragments every build uses.
const COMMON: &str = "common";

/// The value standing for `# CONFIG_X is not set`.
pub const NOT_SET: &str = "n";

/// Errors from finding, reading or merging fragments.
#[derive(Debug, thiserror::Error)]
pub enum FragmentError {
    /// A folder of fragments is missing or holds no `*.conf` file.
    #[error("no *.conf fragments in {0}")]
    EmptyFolder(PathBuf),
    /// A feature set name is not a plain folder name under the configs folder.
    #[error("unknown kernel feature set {name:?} (no folder {path})")]
    UnknownFeature {
        /// The name as given.
        name: String,
        /// The folder looked for.
        path: PathBuf,
    },
    /// A file could not be read.
    #[error("cannot read {0}")]
    Read(PathBuf, #[source] io::Error),
    /// A line is neither an option, a `not set` line, a comment nor blank.
    #[error("{origin}: {reason}: {line:?}")]
    Syntax {
        /// Where the line is.
        origin: Origin,
        /// What is wrong with it.
        reason: &'static str,
        /// The line itself.
        line: String,
    },
    /// The same option is requested with two different values.
    #[error(
        "CONFIG_{} is set twice to different values: {} at {}, {} at {}",
        .0.name, .0.first_value, .0.first, .0.second_value, .0.second
    )]
    Conflict(Box<Conflict>),
    /// A fragment sets an option `hull-image` owns.
    #[error("{origin}: CONFIG_{name} is set by hull-image itself; remove it from the fragment")]
    Reserved {
        /// The option, without `CONFIG_`.
        name: String,
        /// Where a fragment set it.
        origin: Origin,
    },
}

/// Two fragments asking for different values of one option.
#[derive(Debug)]
pub struct Conflict {
    /// The option, without `CONFIG_`.
    pub name: String,
    /// Where it was first set.
    pub first: Origin,
    /// The first value.
    pub first_value: String,
    /// Where it was set again.
    pub second: Origin,
    /// The second value.
    pub second_value: String,
}

/// A place in a fragment: file and 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The fragment file.
    pub path: PathBuf,
    /// The line number, from 1.
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.path.display(), self.line)
    }
}

/// One requested option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The option name without `CONFIG_`.
    pub name: String,
    /// `y`, `m`, `n` (not set), a quoted string or a number, as written in `.config`.
    pub value: String,
    /// The fragment line that asked for it first.
    pub origin: Origin,
}

/// The merged requests, in the order they were first made.
#[derive(Debug, Default)]
pub struct Requests {
    entries: Vec<Request>,
    index: HashMap<String, usize>,
}

impl Requests {
    /// Adds a request; the same value again is ignored, a different one is a conflict.
    pub fn add(&mut self, request: Request) -> Result<(), FragmentError> {
        if RESERVED.contains(&request.name.as_str()) {
            return Err(FragmentError::Reserved {
                name: request.name,
                origin: request.origin,
            });
        }
        if let Some(&at) = self.index.get(&request.name) {
            let first = &self.entries[at];
            if first.value == request.value {
                return Ok(());
            }
            return Err(FragmentError::Conflict(Box::new(Conflict {
                name: request.name,
                first: first.origin.clone(),
                first_value: first.value.clone(),
                second: request.origin,
                second_value: request.value,
            })));
        }
        self.index.insert(request.name.clone(), self.entries.len());
        self.entries.push(request);
        Ok(())
    }

    /// All requests in order.
    pub fn iter(&self) -> impl Iterator<Item = &Request> {
        self.entries.iter()
    }

    /// How many options are requested.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is requested.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The requests as a `.config` fragment, for `KCONFIG_ALLCONFIG`.
    pub fn to_config_text(&self) -> String {
        self.entries.iter().map(config_line).collect()
    }
}

/// One option as a `.config` line.
pub fn config_line(request: &Request) -> String {
    if request.value == NOT_SET {
        format!("# CONFIG_{} is not set\n", request.name)
    } else {
        format!("CONFIG_{}={}\n", request.name, request.value)
    }
}

/// Lists the fragment files in merge order.
pub fn discover(
    configs: &Path,
    arch_dir: &str,
    features: &[String],
    extra: &[PathBuf],
) -> Result<Vec<PathBuf>, FragmentError> {
    let mut files = conf_files(&configs.join(COMMON))?;
    files.extend(conf_files(&configs.join(arch_dir))?);
    for feature in features {
        files.extend(conf_files(&feature_dir(configs, feature)?)?);
    }
    files.extend(extra.iter().cloned());
    Ok(files)
}

/// The folder of a feature set, refusing names that are not feature sets.
fn feature_dir(configs: &Path, name: &str) -> Result<PathBuf, FragmentError> {
    let path = configs.join(name);
    let plain = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !plain || name == COMMON || crate::arch::Arch::ALL.iter().any(|a| a.name() == name) {
        return Err(FragmentError::UnknownFeature {
            name: name.to_owned(),
            path,
        });
    }
    if !path.is_dir() {
        return Err(FragmentError::UnknownFeature {
            name: name.to_owned(),
            path,
        });
    }
    Ok(path)
}

/// The `*.conf` files of a folder, sorted by name; none is an error.
fn conf_files(dir: &Path) -> Result<Vec<PathBuf>, FragmentError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(FragmentError::EmptyFolder(dir.to_owned()))
        }
        Err(e) => return Err(FragmentError::Read(dir.to_owned(), e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| FragmentError::Read(dir.to_owned(), e))?
            .path();
        if path.extension().is_some_and(|e| e == "conf") && path.is_file() {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(FragmentError::EmptyFolder(dir.to_owned()));
    }
    files.sort();
    Ok(files)
}

/// Reads and merges fragments in the order given.
pub fn merge(files: &[PathBuf]) -> Result<Requests, FragmentError> {
    let mut requests = Requests::default();
    for path in files {
        let text = fs::read_to_string(path).map_err(|e| FragmentError::Read(path.clone(), e))?;
        for request in parse_fragment(path, &text)? {
            requests.add(request)?;
        }
    }
    Ok(requests)
}

/// Parses one fragment's text.
pub fn parse_fragment(path: &Path, text: &str) -> Result<Vec<Request>, FragmentError> {
    let mut requests = Vec::new();
    for (at, line) in text.lines().enumerate() {
        let origin = Origin {
            path: path.to_owned(),
            line: at + 1,
        };
        match parse_line(line) {
            Ok(Some((name, value))) => requests.push(Request {
                name: name.to_owned(),
                value,
                origin,
            }),
            Ok(None) => {}
            Err(reason) => {
                return Err(FragmentError::Syntax {
                    origin,
                    reason,
                    line: line.to_owned(),
                })
            }
        }
    }
    Ok(requests)
}

/// Parses a `.config`-style line into an option name (without `CONFIG_`) and value;
/// blank lines and comments give `None`.
pub fn parse_line(line: &str) -> Result<Option<(&str, String)>, &'static str> {
    let line = line.trim();
    if let Some(comment) = line.strip_prefix('#') {
        let not_set = comment
            .trim_start()
            .strip_prefix("CONFIG_")
            .and_then(|rest| rest.strip_suffix(" is not set"))
            .filter(|name| is_name(name));
        return Ok(not_set.map(|name| (name, NOT_SET.to_owned())));
    }
    if line.is_empty() {
        return Ok(None);
    }
    let setting = line
        .strip_prefix("CONFIG_")
        .ok_or("expected CONFIG_NAME=value, `# CONFIG_NAME is not set` or a comment")?;
    let (name, value) = setting
        .split_once('=')
        .ok_or("expected CONFIG_NAME=value")?;
    if !is_name(name) {
        return Err("bad option name");
    }
    if !is_value(value) {
        return Err("bad value (expected y, m, n, a number or a quoted string)");
    }
    Ok(Some((name, value.to_owned())))
}

/// Whether `name` is a Kconfig symbol name.
fn is_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `value` is a `.config` value: tristate, number, hex or quoted string.
fn is_value(value: &str) -> bool {
    let decimal = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    let quoted = value.len() >= 2 && value.starts_with('"') && value.ends_with('"');
    let hex = value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
        .is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()));
    matches!(value, "y" | "m" | "n")
        || quoted
        || hex
        || decimal(value.strip_prefix('-').unwrap_or(value))
}

/// Reads a per-arch allow-list: one option per line (with or without `CONFIG_`),
/// `#` comments allowed. A missing file is an empty list.
pub fn read_allow_list(path: &Path) -> Result<BTreeSet<String>, FragmentError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(FragmentError::Read(path.to_owned(), e)),
    };
    let mut names = BTreeSet::new();
    for (at, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        let name = entry.strip_prefix("CONFIG_").unwrap_or(entry);
        if !is_name(name) {
            return Err(FragmentError::Syntax {
                origin: Origin {
                    path: path.to_owned(),
                    line: at + 1,
                },
                reason: "expected one option name per line",
                line: line.to_owned(),
            });
        }
        names.insert(name.to_owned());
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn lines_parse_to_name_and_value() {
        assert_eq!(parse_line("CONFIG_A=y").unwrap(), Some(("A", "y".into())));
        assert_eq!(
            parse_line("# CONFIG_B is not set").unwrap(),
            Some(("B", "n".into()))
        );
        assert_eq!(
            parse_line("CONFIG_C=\"x y\"").unwrap(),
            Some(("C", "\"x y\"".into()))
        );
        assert_eq!(parse_line("CONFIG_D=-1").unwrap(), Some(("D", "-1".into())));
        assert_eq!(
            parse_line("CONFIG_E=0x1f").unwrap(),
            Some(("E", "0x1f".into()))
        );
        assert_eq!(parse_line("# a comment").unwrap(), None);
        assert_eq!(parse_line("   ").unwrap(), None);
    }

    #[test]
    fn malformed_lines_are_refused() {
        assert!(parse_line("VIRTIO=y").is_err());
        assert!(parse_line("CONFIG_A").is_err());
        assert!(parse_line("CONFIG_A=yes").is_err());
        assert!(parse_line("CONFIG_A-B=y").is_err());
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let err = parse_fragment(Path::new("x.conf"), "CONFIG_A=y\nbogus\n").unwrap_err();
        assert!(err.to_string().starts_with("x.conf:2:"), "{err}");
    }

    #[test]
    fn same_value_twice_is_fine_a_different_one_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a.conf", "CONFIG_NET=y\nCONFIG_X=y\n");
        let b = write(
            dir.path(),
            "b.conf",
            "CONFIG_NET=y\n# CONFIG_X is not set\n",
        );
        let err = merge(&[a.clone(), a.clone()]).map(|r| r.len());
        assert_eq!(err.unwrap(), 2);
        let err = merge(&[a, b]).unwrap_err().to_string();
        assert!(err.contains("CONFIG_X is set twice"), "{err}");
        assert!(
            err.contains("a.conf:2") && err.contains("b.conf:2"),
            "{err}"
        );
    }

    #[test]
    fn reserved_options_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a.conf", "CONFIG_LOCALVERSION=\"-x\"\n");
        let err = merge(&[a]).unwrap_err().to_string();
        assert!(
            err.contains("CONFIG_LOCALVERSION is set by hull-image"),
            "{err}"
        );
    }

    #[test]
    fn discovery_order_is_common_arch_features_extra() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "common/b.conf", "");
        write(root, "common/a.conf", "");
        write(root, "common/notes.txt", "");
        write(root, "arm64/z.conf", "");
        write(root, "gpu/g.conf", "");
        write(root, "debug/d.conf", "");
        let extra = write(root, "elsewhere/e.conf", "");
        let files = discover(root, "arm64", &["gpu".into(), "debug".into()], &[extra]).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "common/a.conf",
                "common/b.conf",
                "arm64/z.conf",
                "gpu/g.conf",
                "debug/d.conf",
                "elsewhere/e.conf"
            ]
        );
    }

    #[test]
    fn unknown_feature_set_is_named() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "common/a.conf", "");
        write(dir.path(), "x86_64/a.conf", "");
        for bad in ["nope", "../common", "common", "x86_64"] {
            let err = discover(dir.path(), "x86_64", &[bad.into()], &[]).unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn allow_list_takes_names_with_or_without_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "u.txt", "# why\nCONFIG_A # no A here\nB\n\n");
        let names = read_allow_list(&path).unwrap();
        assert_eq!(names.into_iter().collect::<Vec<_>>(), ["A", "B"]);
        assert!(read_allow_list(&dir.path().join("none"))
            .unwrap()
            .is_empty());
    }
}
