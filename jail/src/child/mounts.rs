//! The spec's mounts, made inside the rootfs before `pivot_root`.
//!
//! Destinations are resolved inside the rootfs with symlinks followed as if the
//! rootfs were `/`, so a symlink in an image cannot point a mount outside it.
//! Bind mounts are made first and then remounted with their flags (the kernel
//! ignores most flags on the first bind); propagation flags are applied last.
//! `cgroup` mounts give the container its own cgroup directories: the cgroup2
//! filesystem on v2, a tmpfs with each v1 hierarchy's directory bound in on v1.
//!
//! Limitations: id-mapped mounts (`idmap`, `ridmap`) and runc's `tmpcopyup` are
//! refused.

use std::fs;
use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, MsFlags};
use oci_spec::runtime::Mount;

use crate::config::InitConfig;

/// Errors of the spec's mounts.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// An option is not one the jail knows how to apply.
    #[error("option {0:?} is not supported")]
    UnsupportedOption(String),
    /// A mount call failed.
    #[error("mount {what} on {dest}")]
    Mount {
        /// The source or type.
        what: String,
        /// The destination inside the rootfs.
        dest: PathBuf,
        /// Why.
        #[source]
        source: nix::Error,
    },
    /// Creating the mount point failed.
    #[error("create mount point {0}")]
    MountPoint(PathBuf, #[source] std::io::Error),
    /// A bind mount's source is missing.
    #[error("bind source {0}")]
    Source(PathBuf, #[source] std::io::Error),
    /// Symlinks in the rootfs loop.
    #[error("too many symlinks resolving {0}")]
    SymlinkLoop(PathBuf),
}

/// Parsed mount options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for mount(2).
    pub flags: MsFlags,
    /// Propagation changes, applied one by one after the mount.
    pub propagation: Vec<MsFlags>,
    /// Filesystem-specific options, comma-joined into `data`.
    pub data: Vec<String>,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            propagation: Vec::new(),
            data: Vec::new(),
        }
    }
}

impl MountOptions {
    /// Whether this is a bind mount.
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }
}

/// The propagation flag a name stands for.
pub fn propagation_flag(name: &str) -> Option<MsFlags> {
    Some(match name {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

/// (name, flag, whether the option sets (true) or clears (false) the flag)
const FLAGS: &[(&str, MsFlags, bool)] = &[
    ("ro", MsFlags::MS_RDONLY, true),
    ("rw", MsFlags::MS_RDONLY, false),
    ("nosuid", MsFlags::MS_NOSUID, true),
    ("suid", MsFlags::MS_NOSUID, false),
    ("nodev", MsFlags::MS_NODEV, true),
    ("dev", MsFlags::MS_NODEV, false),
    ("noexec", MsFlags::MS_NOEXEC, true),
    ("exec", MsFlags::MS_NOEXEC, false),
    ("sync", MsFlags::MS_SYNCHRONOUS, true),
    ("async", MsFlags::MS_SYNCHRONOUS, false),
    ("dirsync", MsFlags::MS_DIRSYNC, true),
    ("remount", MsFlags::MS_REMOUNT, true),
    ("mand", MsFlags::MS_MANDLOCK, true),
    ("nomand", MsFlags::MS_MANDLOCK, false),
    ("noatime", MsFlags::MS_NOATIME, true),
    ("atime", MsFlags::MS_NOATIME, false),
    ("nodiratime", MsFlags::MS_NODIRATIME, true),
    ("diratime", MsFlags::MS_NODIRATIME, false),
    ("relatime", MsFlags::MS_RELATIME, true),
    ("norelatime", MsFlags::MS_RELATIME, false),
    ("strictatime", MsFlags::MS_STRICTATIME, true),
    ("nostrictatime", MsFlags::MS_STRICTATIME, false),
    ("silent", MsFlags::MS_SILENT, true),
    ("loud", MsFlags::MS_SILENT, false),
    ("lazytime", MsFlags::MS_LAZYTIME, true),
    ("nolazytime", MsFlags::MS_LAZYTIME, false),
    ("bind", MsFlags::MS_BIND, true),
];

/// Parses OCI mount options into flags, propagation and data.
pub fn parse_options(options: &[String]) -> Result<MountOptions, MountError> {
    let mut out = MountOptions::default();
    for opt in options {
        let opt = opt.as_str();
        if let Some((_, flag, set)) = FLAGS.iter().find(|(n, _, _)| *n == opt) {
            out.flags.set(*flag, *set);
        } else if opt == "rbind" {
            out.flags |= MsFlags::MS_BIND | MsFlags::MS_REC;
        } else if let Some(p) = propagation_flag(opt) {
            out.propagation.push(p);
        } else if matches!(opt, "idmap" | "ridmap" | "tmpcopyup") || opt.starts_with("X-") {
            return Err(MountError::UnsupportedOption(opt.to_string()));
        } else if opt != "defaults" {
            out.data.push(opt.to_string());
        }
    }
    Ok(out)
}

/// Resolves `path` inside `root` as if `root` were `/`: `..` stops at the root and
/// symlinks (absolute or relative) are followed inside it. Missing components are
/// kept as they are.
pub fn secure_join(root: &Path, path: &Path) -> Result<PathBuf, MountError> {
    let mut pending: Vec<PathBuf> = vec![path.to_path_buf()];
    let mut resolved = PathBuf::new();
    let mut links = 0;
    while let Some(p) = pending.pop() {
        let mut comps: Vec<Component> = p.components().collect();
        comps.reverse();
        while let Some(c) = comps.pop() {
            match c {
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
                Component::ParentDir => {
                    resolved.pop();
                }
                Component::Normal(name) => {
                    let candidate = resolved.join(name);
                    match fs::read_link(root.join(&candidate)) {
                        Ok(target) => {
                            links += 1;
                            if links > 40 {
                                return Err(MountError::SymlinkLoop(path.to_path_buf()));
                            }
                            if target.is_absolute() {
                                resolved = PathBuf::new();
                            }
                            let rest: PathBuf = comps.iter().rev().collect();
                            pending.push(target.join(rest));
                            comps.clear();
                        }
                        Err(_) => resolved = candidate,
                    }
                }
            }
        }
    }
    Ok(root.join(resolved))
}

/// Makes every mount of the spec inside the rootfs.
pub fn mount_all(cfg: &InitConfig) -> Result<(), MountError> {
    for m in cfg.spec.mounts().as_deref().unwrap_or_default() {
        let opts = parse_options(m.options().as_deref().unwrap_or_default())?;
        let dest = secure_join(&cfg.rootfs, m.destination())?;
        if m.typ().as_deref() == Some("cgroup") || m.typ().as_deref() == Some("cgroup2") {
            mount_cgroup(cfg, &dest, &opts)?;
        } else if opts.is_bind() || m.typ().as_deref() == Some("bind") {
            mount_bind(cfg, m, &dest, &opts)?;
        } else {
            mount_fs(m, &dest, &opts)?;
        }
        apply_propagation(&dest, &opts)?;
    }
    Ok(())
}

fn fail(what: impl Into<String>, dest: &Path) -> impl FnOnce(nix::Error) -> MountError {
    let (what, dest) = (what.into(), dest.to_path_buf());
    move |source| MountError::Mount { what, dest, source }
}

fn mount_fs(m: &Mount, dest: &Path, opts: &MountOptions) -> Result<(), MountError> {
    fs::create_dir_all(dest).map_err(|e| MountError::MountPoint(dest.into(), e))?;
    let typ = m.typ().as_deref().unwrap_or("none");
    let source = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));
    let data = opts.data.join(",");
    let data = (!data.is_empty()).then_some(data.as_str());
    mount(Some(&source), dest, Some(typ), opts.flags, data).map_err(fail(typ, dest))
}

fn mount_bind(
    cfg: &InitConfig,
    m: &Mount,
    dest: &Path,
    opts: &MountOptions,
) -> Result<(), MountError> {
    let source = m.source().clone().unwrap_or_default();
    let source = if source.is_absolute() {
        source
    } else {
        cfg.bundle.join(source)
    };
    let meta = fs::metadata(&source).map_err(|e| MountError::Source(source.clone(), e))?;
    make_mount_point(dest, meta.is_dir())?;
    let bind = opts.flags & (MsFlags::MS_BIND | MsFlags::MS_REC);
    let none: Option<&str> = None;
    mount(Some(&source), dest, none, bind, none)
        .map_err(fail(source.display().to_string(), dest))?;
    let rest = opts.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    if !rest.is_empty() {
        let locked = super::rootfs::current_flags(dest).map_err(fail("statvfs", dest))?;
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | rest | locked;
        mount(none, dest, none, flags, none).map_err(fail("remount", dest))?;
    }
    Ok(())
}

fn make_mount_point(dest: &Path, dir: bool) -> Result<(), MountError> {
    let err = |e| MountError::MountPoint(dest.into(), e);
    if dir {
        return fs::create_dir_all(dest).map_err(err);
    }
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(err)?;
    }
    if !dest.exists() {
        fs::File::create(dest).map_err(err)?;
    }
    Ok(())
}

fn mount_cgroup(cfg: &InitConfig, dest: &Path, opts: &MountOptions) -> Result<(), MountError> {
    fs::create_dir_all(dest).map_err(|e| MountError::MountPoint(dest.into(), e))?;
    let unified = cfg.cgroup_dirs.iter().any(|d| d.hierarchy.is_empty());
    if unified || cfg.cgroup_dirs.is_empty() {
        let data: Option<&str> = None;
        return mount(Some("cgroup2"), dest, Some("cgroup2"), opts.flags, data)
            .map_err(fail("cgroup2", dest));
    }
    let tmpfs_flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(
        Some("tmpfs"),
        dest,
        Some("tmpfs"),
        tmpfs_flags,
        Some("mode=755"),
    )
    .map_err(fail("tmpfs", dest))?;
    for dir in &cfg.cgroup_dirs {
        let target = dest.join(&dir.hierarchy);
        fs::create_dir_all(&target).map_err(|e| MountError::MountPoint(target.clone(), e))?;
        let none: Option<&str> = None;
        let what = dir.host_path.display().to_string();
        mount(Some(&dir.host_path), &target, none, MsFlags::MS_BIND, none)
            .map_err(fail(what, &target))?;
        if opts.flags.contains(MsFlags::MS_RDONLY) {
            super::rootfs::remount_readonly(&target).map_err(fail("remount", &target))?;
        }
    }
    if opts.flags.contains(MsFlags::MS_RDONLY) {
        super::rootfs::remount_readonly(dest).map_err(fail("remount", dest))?;
    }
    Ok(())
}

fn apply_propagation(dest: &Path, opts: &MountOptions) -> Result<(), MountError> {
    let none: Option<&str> = None;
    for flag in &opts.propagation {
        mount(none, dest, none, *flag, none).map_err(fail("propagation", dest))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(list: &[&str]) -> MountOptions {
        parse_options(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn options_become_flags_propagation_and_data() {
        let o = opts(&["nosuid", "noexec", "ro", "mode=755", "size=64k", "rslave"]);
        assert_eq!(
            o.flags,
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY
        );
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
        assert_eq!(o.data, vec!["mode=755", "size=64k"]);
        assert!(opts(&["rbind", "ro"])
            .flags
            .contains(MsFlags::MS_REC | MsFlags::MS_BIND));
        assert!(!opts(&["ro", "rw"]).flags.contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn idmapped_mounts_are_refused() {
        assert!(parse_options(&["idmap".to_string()]).is_err());
    }

    #[test]
    fn symlinks_stay_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::create_dir_all(r.join("real/dir")).unwrap();
        std::os::unix::fs::symlink("/real", r.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../etc", r.join("real/escape")).unwrap();
        std::os::unix::fs::symlink("loop", r.join("loop")).unwrap();
        assert_eq!(
            secure_join(r, Path::new("/abs/dir")).unwrap(),
            r.join("real/dir")
        );
        assert_eq!(
            secure_join(r, Path::new("/real/escape/x")).unwrap(),
            r.join("etc/x")
        );
        assert_eq!(
            secure_join(r, Path::new("/../../proc")).unwrap(),
            r.join("proc")
        );
        assert!(secure_join(r, Path::new("/loop")).is_err());
    }
}
