//! What the parent hands its re-executed child: everything it needs, already resolved.

use std::path::PathBuf;

use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};
use serde::{Deserialize, Serialize};

use crate::seccomp::Program;

/// How a container's init process is set up.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InitConfig {
    /// The container id (for hooks' state).
    pub id: String,
    /// The bundle directory (for hooks' state).
    pub bundle: PathBuf,
    /// The container's root filesystem, absolute and resolved.
    pub rootfs: PathBuf,
    /// The validated spec.
    pub spec: Spec,
    /// Stdio is one terminal (one descriptor attached) instead of three pipes.
    pub terminal: bool,
    /// Where the container's own cgroups live on the host, for `cgroup` mounts.
    pub cgroup_dirs: Vec<CgroupDir>,
    /// The compiled seccomp filter, if the spec has a profile.
    pub seccomp: Option<Program>,
}

/// One cgroup hierarchy's directory for the container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CgroupDir {
    /// The hierarchy's name below /sys/fs/cgroup ("memory", "cpu,cpuacct"), or ""
    /// for the cgroup v2 unified hierarchy.
    pub hierarchy: String,
    /// The container's directory in it, on the host.
    pub host_path: PathBuf,
}

/// How a process is started inside a running container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecConfig {
    /// The container id.
    pub id: String,
    /// The container's init process, whose namespaces and root are joined.
    pub init_pid: i32,
    /// The namespaces the container has of its own, joined through /proc/<pid>/ns.
    pub namespaces: Vec<LinuxNamespaceType>,
    /// The process to run.
    pub process: Process,
    /// The container's compiled seccomp filter, which applies to every process in it.
    pub seccomp: Option<Program>,
    /// Stdio is one terminal instead of three pipes.
    pub terminal: bool,
}
