//! Creating and joining namespaces in the child.
//!
//! The user namespace comes first (so the others are owned by it), then the rest are
//! joined by path or created with one `unshare`. A new pid namespace only applies to
//! children, so the caller forks afterwards.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use nix::sched::{setns, unshare, CloneFlags};
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType, Spec};

use crate::config::ExecConfig;
use crate::protocol::{Channel, FromChild, ToChild};

/// Errors while entering namespaces.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    /// A namespace file could not be opened.
    #[error("open namespace {0}")]
    Open(PathBuf, #[source] std::io::Error),
    /// `setns` failed.
    #[error("join {0} namespace")]
    Join(String, #[source] nix::Error),
    /// `unshare` failed.
    #[error("create namespaces {0:?}")]
    Unshare(CloneFlags, #[source] nix::Error),
    /// Becoming root inside the new user namespace failed.
    #[error("become root in the user namespace (is uid/gid 0 mapped?)")]
    BecomeRoot(#[source] nix::Error),
    /// The parent did not answer as expected.
    #[error("waiting for the uid/gid maps")]
    Maps(#[source] crate::protocol::ProtocolError),
    /// The parent sent something else than the maps.
    #[error("unexpected message while waiting for the uid/gid maps")]
    MapsUnexpected,
    /// Setting the hostname or domain name failed.
    #[error("set {0}")]
    Name(&'static str, #[source] nix::Error),
    /// Entering the container's root failed.
    #[error("enter the container root")]
    Root(#[source] nix::Error),
}

/// The `CLONE_NEW*` flag of a namespace type.
pub fn clone_flag(typ: LinuxNamespaceType) -> CloneFlags {
    match typ {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// The name of a namespace type under /proc/<pid>/ns.
pub fn proc_name(typ: LinuxNamespaceType) -> &'static str {
    match typ {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

fn namespaces(spec: &Spec) -> &[LinuxNamespace] {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_deref())
        .unwrap_or_default()
}

/// Joins or creates the user namespace; for a new one the parent writes the maps.
pub fn enter_user(spec: &Spec, chan: &mut Channel) -> Result<(), NamespaceError> {
    let Some(ns) = namespaces(spec)
        .iter()
        .find(|n| n.typ() == LinuxNamespaceType::User)
    else {
        return Ok(());
    };
    match ns.path() {
        Some(path) => join_path(path.clone(), CloneFlags::CLONE_NEWUSER)?,
        None => {
            unshare(CloneFlags::CLONE_NEWUSER)
                .map_err(|e| NamespaceError::Unshare(CloneFlags::CLONE_NEWUSER, e))?;
            chan.send(&FromChild::UserNsReady, &[])
                .map_err(NamespaceError::Maps)?;
            let (msg, _) = chan.recv::<ToChild>().map_err(NamespaceError::Maps)?;
            if !matches!(msg, ToChild::UserMapsWritten) {
                return Err(NamespaceError::MapsUnexpected);
            }
        }
    }
    become_root()
}

fn become_root() -> Result<(), NamespaceError> {
    let root = Gid::from_raw(0);
    nix::unistd::setresgid(root, root, root).map_err(NamespaceError::BecomeRoot)?;
    let root = Uid::from_raw(0);
    nix::unistd::setresuid(root, root, root).map_err(NamespaceError::BecomeRoot)
}

fn join_path(path: PathBuf, flag: CloneFlags) -> Result<(), NamespaceError> {
    let file = File::open(&path).map_err(|e| NamespaceError::Open(path.clone(), e))?;
    setns(file.as_fd(), flag).map_err(|e| NamespaceError::Join(path.display().to_string(), e))
}

/// Joins the namespaces given by path and creates the others (all but user).
pub fn enter_others(spec: &Spec) -> Result<(), NamespaceError> {
    let mut create = CloneFlags::empty();
    let mut join = Vec::new();
    for ns in namespaces(spec) {
        if ns.typ() == LinuxNamespaceType::User {
            continue;
        }
        let flag = clone_flag(ns.typ());
        match ns.path() {
            // Open them all first: joining the mount namespace changes what paths mean.
            Some(p) => join.push((open(p.clone())?, flag, p.display().to_string())),
            None => create |= flag,
        }
    }
    for (fd, flag, name) in join {
        setns(fd.as_fd(), flag).map_err(|e| NamespaceError::Join(name, e))?;
    }
    if !create.is_empty() {
        unshare(create).map_err(|e| NamespaceError::Unshare(create, e))?;
    }
    Ok(())
}

fn open(path: PathBuf) -> Result<OwnedFd, NamespaceError> {
    File::open(&path)
        .map(OwnedFd::from)
        .map_err(|e| NamespaceError::Open(path, e))
}

/// Sets the hostname and domain name in the new UTS namespace.
pub fn set_names(spec: &Spec) -> Result<(), NamespaceError> {
    if let Some(name) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(name).map_err(|e| NamespaceError::Name("hostname", e))?;
    }
    if let Some(name) = spec.domainname().as_deref().filter(|h| !h.is_empty()) {
        set_domainname(name).map_err(|e| NamespaceError::Name("domainname", e))?;
    }
    Ok(())
}

fn set_domainname(name: &str) -> Result<(), nix::Error> {
    // SAFETY: the pointer and length describe `name`'s bytes for the whole call.
    let ret = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    nix::errno::Errno::result(ret).map(drop)
}

/// Joins a running container's namespaces (user first), returning its root
/// directory, opened before the mount namespace changes.
pub fn join_container(cfg: &ExecConfig) -> Result<OwnedFd, NamespaceError> {
    let proc = PathBuf::from(format!("/proc/{}", cfg.init_pid));
    let root = open(proc.join("root"))?;
    let mut order: Vec<LinuxNamespaceType> = cfg.namespaces.clone();
    // User first (it owns the rest), mount last (it changes how paths resolve).
    order.sort_by_key(|t| match t {
        LinuxNamespaceType::User => 0,
        LinuxNamespaceType::Mount => 2,
        _ => 1,
    });
    let mut fds = Vec::new();
    for typ in &order {
        fds.push((open(proc.join("ns").join(proc_name(*typ)))?, *typ));
    }
    for (fd, typ) in fds {
        setns(fd.as_fd(), clone_flag(typ))
            .map_err(|e| NamespaceError::Join(proc_name(typ).to_string(), e))?;
    }
    if cfg.namespaces.contains(&LinuxNamespaceType::User) {
        become_root()?;
    }
    Ok(root)
}

/// Makes `root` (the container's root, from [`join_container`]) this process's root.
pub fn enter_root(root: OwnedFd) -> Result<(), NamespaceError> {
    nix::unistd::fchdir(root.as_fd()).map_err(NamespaceError::Root)?;
    nix::unistd::chroot(".").map_err(NamespaceError::Root)?;
    nix::unistd::chdir("/").map_err(NamespaceError::Root)
}
