//! The sandbox's hostname and DNS configuration.
//!
//! The hostname is set in the kernel (system mode only) and written to `/etc/hostname`;
//! the DNS lines go to `/etc/resolv.conf`. Both files are replaced atomically and their
//! previous content is kept for teardown.

use std::path::Path;

use hull_init::kernel::Kernel;

use super::undo::{Undo, UndoStack};
use super::SandboxError;
use crate::config::Config;
use crate::files::{read_if_exists, write_atomic};

/// The longest hostname the kernel accepts.
const HOSTNAME_MAX: usize = 64;

/// resolv.conf keywords a DNS line may start with.
const DNS_KEYWORDS: &[&str] = &["nameserver", "search", "domain", "options", "sortlist"];

/// Sets the hostname in the kernel and in `/etc/hostname`.
pub fn set_hostname(
    kernel: &dyn Kernel,
    config: &Config,
    name: &str,
    undo: &mut UndoStack,
) -> Result<(), SandboxError> {
    check_hostname(name)?;
    if !config.system {
        return Err(SandboxError::NeedsSystem("setting the hostname"));
    }
    let previous = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    kernel
        .set_hostname(name)
        .map_err(|e| SandboxError::Hostname(name.to_string(), e))?;
    undo.push(Undo::RestoreHostname(previous));
    replace_file(
        &config.etc_dir().join("hostname"),
        format!("{name}\n").as_bytes(),
        undo,
    )
}

/// Writes the DNS lines to `/etc/resolv.conf`.
pub fn set_dns(
    config: &Config,
    lines: &[String],
    undo: &mut UndoStack,
) -> Result<(), SandboxError> {
    for line in lines {
        check_dns_line(line)?;
    }
    if !config.may_write_guest_files() {
        return Err(SandboxError::NeedsSystem("writing /etc/resolv.conf"));
    }
    let mut content = lines.join("\n");
    content.push('\n');
    replace_file(
        &config.etc_dir().join("resolv.conf"),
        content.as_bytes(),
        undo,
    )
}

fn replace_file(path: &Path, data: &[u8], undo: &mut UndoStack) -> Result<(), SandboxError> {
    let err = |e| SandboxError::File(path.to_path_buf(), e);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    let previous = read_if_exists(path).map_err(err)?;
    write_atomic(path, data).map_err(err)?;
    undo.push(Undo::RestoreFile(path.to_path_buf(), previous));
    Ok(())
}

fn check_hostname(name: &str) -> Result<(), SandboxError> {
    let valid_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
    let ok = !name.is_empty() && name.len() <= HOSTNAME_MAX && name.chars().all(valid_char);
    if ok {
        Ok(())
    } else {
        Err(SandboxError::BadHostname(name.to_string()))
    }
}

fn check_dns_line(line: &str) -> Result<(), SandboxError> {
    let keyword = line.split_whitespace().next().unwrap_or("");
    let ok = DNS_KEYWORDS.contains(&keyword) && !line.contains(['\n', '\r', '\0']);
    if ok {
        Ok(())
    } else {
        Err(SandboxError::BadDns(line.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hull_init::kernel::fake::{Call, Recorder};

    fn config(root: &Path, system: bool) -> Config {
        Config {
            system,
            root: root.to_path_buf(),
            ..Config::default()
        }
    }

    #[test]
    fn hostname_goes_to_kernel_and_file() {
        let root = tempfile::tempdir().unwrap();
        let k = Recorder::new();
        let mut undo = UndoStack::default();
        set_hostname(&k, &config(root.path(), true), "pod-1", &mut undo).unwrap();
        assert_eq!(k.calls(), vec![Call::SetHostname("pod-1".into())]);
        let file = root.path().join("etc/hostname");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "pod-1\n");
        undo.unwind(&k);
        assert!(!file.exists());
    }

    #[test]
    fn hostname_is_validated_and_needs_system() {
        let root = tempfile::tempdir().unwrap();
        let k = Recorder::new();
        let mut undo = UndoStack::default();
        for bad in ["", "a b", "x;y", &"a".repeat(65)] {
            let err = set_hostname(&k, &config(root.path(), true), bad, &mut undo);
            assert!(matches!(err, Err(SandboxError::BadHostname(_))), "{bad}");
        }
        let err = set_hostname(&k, &config(root.path(), false), "ok", &mut undo);
        assert!(matches!(err, Err(SandboxError::NeedsSystem(_))));
        assert!(k.calls().is_empty());
    }

    #[test]
    fn dns_lines_are_written_and_checked() {
        let root = tempfile::tempdir().unwrap();
        let c = config(root.path(), false);
        let mut undo = UndoStack::default();
        let lines = vec![
            "nameserver 10.0.0.1".to_string(),
            "search svc.local".to_string(),
        ];
        set_dns(&c, &lines, &mut undo).unwrap();
        let text = std::fs::read_to_string(root.path().join("etc/resolv.conf")).unwrap();
        assert_eq!(text, "nameserver 10.0.0.1\nsearch svc.local\n");
        let bad = vec!["nameserver 1.1.1.1\nnameserver 2.2.2.2".to_string()];
        assert!(matches!(
            set_dns(&c, &bad, &mut undo),
            Err(SandboxError::BadDns(_))
        ));
        let bad = vec!["rm -rf /".to_string()];
        assert!(matches!(
            set_dns(&c, &bad, &mut undo),
            Err(SandboxError::BadDns(_))
        ));
    }
}
