//! A sandbox of the built image ready for containers: the VM booted under
//! hull-runtime's launcher with a host directory shared into the guest (9p
//! under TCG, virtio-fs otherwise), the agent reached over its channel, and
//! `CreateSandbox` sent with the share as its storage, as Kata runtimes do.
//!
//! Container root filesystems are static busybox trees written into the share:
//! a hard link of one busybox and a link per applet, seen by the guest at the
//! Kata path `/run/kata-containers/shared/containers/<id>/rootfs`.
//!
//! Used by the benchmark's container figures and by the container scenarios
//! run inside a real guest (`tests/containers_vm.rs`).
//!
//! The containers run a static busybox for the guest's architecture: the
//! host's `/bin/busybox`, or for another architecture Debian's, fetched by
//! `scripts/deps.sh` into `$HULL_CACHE/busybox/<arch>/` ([`env::busybox_for`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use hull_protocols::agent::{
    CreateContainerRequest, CreateSandboxRequest, RemoveContainerRequest, StartContainerRequest,
    Storage, WaitProcessRequest,
};
use hull_protocols::oci;
use hull_protocols::oci_convert::spec_to_proto;
use hull_protocols::oci_spec::runtime::{RootBuilder, Spec};
use hull_protocols::ttrpc;
use hull_runtime::agent::{AgentClient, AgentError};
use hull_runtime::agent_call;
use hull_runtime::image::Image;
use hull_runtime::plan::{plan, VmOptions};
use hull_runtime::vm::spec::{Accel, ShareKind, SHARE_TAG};
use hull_runtime::vm::Vm;

use crate::bench::boot::{self, BootError};
use crate::env;

pub mod calls;

/// Where the agent mounts the shared directory.
pub const SHARED_MOUNT: &str = "/run/kata-containers/shared/containers/";
/// The busybox every root filesystem links to, inside the share.
const TEMPLATE: &str = ".busybox";
/// The host's static busybox (its applet list is the same for every
/// architecture: Debian builds one version of busybox-static for all).
const HOST_BUSYBOX: &str = "/bin/busybox";

/// Errors of a container sandbox.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// The host has no busybox for the guest.
    #[error(
        "no static busybox for {0} guests (`scripts/deps.sh --for qemu-{0}` fetches Debian's)"
    )]
    NoBusybox(String),
    /// The root filesystem could not be written.
    #[error("cannot build the busybox root filesystem in {}", .0.display())]
    Rootfs(PathBuf, #[source] std::io::Error),
    /// Booting the sandbox failed.
    #[error("sandbox boot")]
    Boot(#[from] BootError),
    /// An RPC failed.
    #[error("agent")]
    Agent(#[from] AgentError),
    /// The container spec could not be built.
    #[error("container spec: {0}")]
    Spec(String),
    /// A process ended with another status than expected.
    #[error("{what} exited with {status}")]
    Status { what: String, status: i32 },
}

impl GuestError {
    /// A one-line description: an RPC status as `<RPC> answered <CODE>: <message>`.
    pub fn describe(&self) -> String {
        if let Some((rpc, status)) = self.rpc_status() {
            let code = status
                .code
                .enum_value()
                .map_or_else(|n| n.to_string(), |c| format!("{c:?}"));
            return format!("{rpc} answered {code}: {}", status.message);
        }
        crate::bench::boot_figures::chain(self)
    }

    /// The RPC and the status the agent answered, when this is such an answer.
    pub fn rpc_status(&self) -> Option<(&'static str, &ttrpc::Status)> {
        match self {
            GuestError::Agent(AgentError::Rpc {
                rpc,
                source: ttrpc::Error::RpcStatus(status),
            }) => Some((rpc, status)),
            _ => None,
        }
    }

    /// Whether this is a NOT_FOUND answer (e.g. signalling a process that exited).
    pub fn not_found(&self) -> bool {
        self.rpc_status()
            .is_some_and(|(_, s)| s.code.value() == ttrpc::Code::NOT_FOUND as i32)
    }

    /// The message of an UNIMPLEMENTED answer, when that is what this is.
    pub fn unimplemented(&self) -> Option<String> {
        let (rpc, status) = self.rpc_status()?;
        (status.code.value() == ttrpc::Code::UNIMPLEMENTED as i32).then(|| {
            format!(
                "the agent answers UNIMPLEMENTED to {rpc} ({})",
                status.message
            )
        })
    }
}

/// A booted sandbox with a shared directory for container root filesystems.
pub struct Guest {
    vm: Vm,
    client: AgentClient,
    shared: PathBuf,
    dir: tempfile::TempDir,
}

impl Guest {
    /// Boots `image` with a shared directory and creates sandbox `name`.
    pub async fn start(
        image: &Image,
        arch: &str,
        accel: Accel,
        timeout: Duration,
        name: &str,
    ) -> Result<Self, GuestError> {
        let busybox = env::busybox_for(arch).ok_or_else(|| GuestError::NoBusybox(arch.into()))?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("hull-{name}-"))
            .tempdir()
            .map_err(|e| GuestError::Rootfs(std::env::temp_dir(), e))?;
        let shared = dir.path().join("shared");
        std::fs::create_dir_all(&shared).map_err(|e| GuestError::Rootfs(shared.clone(), e))?;
        std::fs::copy(&busybox, shared.join(TEMPLATE))
            .map_err(|e| GuestError::Rootfs(shared.clone(), e))?;

        let mut opts = VmOptions::new(name);
        opts.accel = Some(accel);
        opts.share_dir = Some(shared.clone());
        let spec = plan(image, &opts, dir.path())
            .map_err(BootError::from)?
            .spec;
        let share = spec.share.as_ref().map(|s| s.kind);
        let mut vm = Vm::start(spec.clone()).await.map_err(BootError::from)?;
        let client = boot::until(&mut vm, "agent ready", timeout, boot::wait_ready(&spec)).await?;

        let guest = Self {
            vm,
            client,
            shared,
            dir,
        };
        guest.create_sandbox(name, share).await?;
        Ok(guest)
    }

    async fn create_sandbox(&self, name: &str, share: Option<ShareKind>) -> Result<(), GuestError> {
        let req = CreateSandboxRequest {
            hostname: name.into(),
            sandbox_id: name.into(),
            storages: share.map(share_storage).into_iter().collect(),
            ..Default::default()
        };
        agent_call!(self.client, create_sandbox, "CreateSandbox", &req)?;
        Ok(())
    }

    /// The agent client.
    pub fn client(&self) -> &AgentClient {
        &self.client
    }

    /// The VM's run directory (sockets, console log, the share).
    pub fn run_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Container `id`'s root filesystem on the host.
    pub fn host_rootfs(&self, id: &str) -> PathBuf {
        self.shared.join(id).join("rootfs")
    }

    /// Writes a busybox root filesystem for container `id` with `applets`.
    pub fn prepare_rootfs(&self, id: &str, applets: &[&str]) -> Result<(), GuestError> {
        busybox_rootfs(&self.shared.join(TEMPLATE), &self.host_rootfs(id), applets)
    }

    /// Deletes a removed container's root filesystem from the share.
    pub fn forget(&self, id: &str) {
        let _ = std::fs::remove_dir_all(self.shared.join(id));
    }

    /// Stops the VM.
    pub async fn stop(mut self) {
        self.vm.stop().await;
    }
}

/// The guest path of container `id`'s root filesystem.
pub fn guest_rootfs(id: &str) -> String {
    format!("{SHARED_MOUNT}{id}/rootfs")
}

/// Creates container `id` from `spec` and starts it.
pub async fn create_start(
    client: &AgentClient,
    id: &str,
    spec: oci::Spec,
) -> Result<(), GuestError> {
    let create = CreateContainerRequest {
        container_id: id.into(),
        exec_id: id.into(),
        OCI: Some(spec).into(),
        ..Default::default()
    };
    agent_call!(client, create_container, "CreateContainer", &create)?;
    let start = StartContainerRequest {
        container_id: id.into(),
        ..Default::default()
    };
    agent_call!(client, start_container, "StartContainer", &start)?;
    Ok(())
}

/// Waits for container `id`'s init, expects status 0, and removes the container.
pub async fn finish(client: &AgentClient, id: &str) -> Result<(), GuestError> {
    let status = wait(client, id, "").await?;
    if status != 0 {
        return Err(GuestError::Status {
            what: format!("container {id}"),
            status,
        });
    }
    remove(client, id).await
}

/// Removes container `id`.
pub async fn remove(client: &AgentClient, id: &str) -> Result<(), GuestError> {
    let req = RemoveContainerRequest {
        container_id: id.into(),
        ..Default::default()
    };
    agent_call!(client, remove_container, "RemoveContainer", &req)?;
    Ok(())
}

/// Waits for process `exec_id` of container `id` (empty: its init); returns
/// its status (the exit code, or 128 + the signal).
pub async fn wait(client: &AgentClient, id: &str, exec_id: &str) -> Result<i32, GuestError> {
    let req = WaitProcessRequest {
        container_id: id.into(),
        exec_id: exec_id.into(),
        ..Default::default()
    };
    Ok(agent_call!(client, wait_process, "WaitProcess", &req)?.status)
}

/// oci-spec's default spec (namespaces, mounts, capabilities, masked paths), as
/// `hull run` sends it, running `args` in container `id`'s read-only root.
pub fn default_spec(id: &str, args: &[&str]) -> Result<Spec, GuestError> {
    let invalid = |e: &dyn std::fmt::Display| GuestError::Spec(e.to_string());
    let mut spec = Spec::default();
    let root = RootBuilder::default()
        .path(guest_rootfs(id))
        .readonly(true)
        .build()
        .map_err(|e| invalid(&e))?;
    spec.set_root(Some(root));
    spec.set_hostname(Some("bench".into()));
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(args.iter().map(|a| a.to_string()).collect()));
    process.set_env(Some(vec!["PATH=/bin".into()]));
    spec.set_process(Some(process));
    Ok(spec)
}

/// [`default_spec`] in the protocol's form.
pub fn spec(id: &str, args: &[&str]) -> Result<oci::Spec, GuestError> {
    spec_to_proto(&default_spec(id, args)?).map_err(|e| GuestError::Spec(e.to_string()))
}

/// A process running `args` as root in `/` with `PATH=/bin`.
pub fn process(args: &[&str]) -> oci::Process {
    oci::Process {
        Args: args.iter().map(|a| a.to_string()).collect(),
        Env: vec!["PATH=/bin".into()],
        Cwd: "/".into(),
        User: Some(oci::User::default()).into(),
        NoNewPrivileges: true,
        ..Default::default()
    }
}

/// The share as a CreateSandbox storage, as Kata runtimes send it.
pub fn share_storage(kind: ShareKind) -> Storage {
    let (driver, fstype, options) = match kind {
        ShareKind::VirtioFs => ("virtio-fs", "virtiofs", vec![]),
        ShareKind::NineP => (
            "9p",
            "9p",
            vec![
                "trans=virtio",
                "version=9p2000.L",
                "cache=mmap",
                "nodev",
                "msize=8192",
            ],
        ),
    };
    Storage {
        driver: driver.into(),
        source: SHARE_TAG.into(),
        fstype: fstype.into(),
        options: options.into_iter().map(str::to_string).collect(),
        mount_point: SHARED_MOUNT.into(),
        ..Default::default()
    }
}

/// A root filesystem of a hard link to `busybox` and links for its `applets`.
fn busybox_rootfs(busybox: &Path, root: &Path, applets: &[&str]) -> Result<(), GuestError> {
    let err = |e| GuestError::Rootfs(root.to_path_buf(), e);
    for dir in ["bin", "proc", "dev", "tmp", "etc", "sys"] {
        std::fs::create_dir_all(root.join(dir)).map_err(err)?;
    }
    std::fs::hard_link(busybox, root.join("bin/busybox")).map_err(err)?;
    for applet in applets.iter().filter(|a| **a != "busybox") {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).map_err(err)?;
    }
    Ok(())
}

/// Every applet of the host's busybox (`busybox --list`).
pub fn busybox_applets() -> Result<Vec<String>, GuestError> {
    let out = std::process::Command::new(HOST_BUSYBOX)
        .arg("--list")
        .output()
        .map_err(|e| GuestError::Rootfs(PathBuf::from(HOST_BUSYBOX), e))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_points_at_the_containers_rootfs() {
        let s = spec("c1", &["/bin/true"]).unwrap();
        assert_eq!(
            s.Root.Path,
            "/run/kata-containers/shared/containers/c1/rootfs"
        );
        assert!(s.Root.Readonly);
        assert_eq!(s.Process.Args, vec!["/bin/true"]);
        assert_eq!(s.Process.Env, vec!["PATH=/bin"]);
        assert!(s.Linux.Namespaces.iter().any(|n| n.Type == "mount"));
    }

    #[test]
    fn nine_p_share_has_kata_options() {
        let s = share_storage(ShareKind::NineP);
        assert_eq!((s.driver.as_str(), s.source.as_str()), ("9p", "kataShared"));
        assert!(s.options.contains(&"trans=virtio".to_string()));
        assert_eq!(s.mount_point, SHARED_MOUNT);
        assert_eq!(share_storage(ShareKind::VirtioFs).fstype, "virtiofs");
    }

    #[test]
    fn rootfs_links_the_busybox_and_its_applets() {
        let dir = tempfile::tempdir().unwrap();
        let busybox = dir.path().join("busybox");
        std::fs::write(&busybox, b"static busybox").unwrap();
        let root = dir.path().join("c1/rootfs");
        busybox_rootfs(&busybox, &root, &["true", "busybox"]).unwrap();
        assert_eq!(
            std::fs::read(root.join("bin/true")).unwrap(),
            b"static busybox"
        );
        assert!(root.join("proc").is_dir());
        assert!(!root.join("bin/sh").exists());
    }
}
