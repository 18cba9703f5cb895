//! Container figures inside one sandbox: a VM with a shared directory holding a
//! static busybox root filesystem, driven through the agent's container RPCs
//! (`CreateSandbox`, `CreateContainer`, `StartContainer`, `ExecProcess`,
//! `ReadStdout`, `WaitProcess`, `RemoveContainer`), timed on the host.
//!
//! Each container gets its own read-only root filesystem on the share, at the
//! Kata path `/run/kata-containers/shared/containers/<id>/rootfs`: a hard link
//! of one static busybox and links for its applets.
//!
//! Limitation: needs `/bin/busybox` on the host built for the guest's
//! architecture (Debian's busybox-static: x86_64 only).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hull_protocols::agent::{
    CreateContainerRequest, CreateSandboxRequest, ExecProcessRequest, ReadStreamRequest,
    RemoveContainerRequest, SignalProcessRequest, StartContainerRequest, Storage,
    WaitProcessRequest,
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

use super::boot::{self, BootError};

/// Where the agent mounts the shared directory.
pub const SHARED_MOUNT: &str = "/run/kata-containers/shared/containers/";
/// The busybox every root filesystem links to, inside the share.
const TEMPLATE: &str = ".busybox";
/// The applets the containers run.
const APPLETS: &[&str] = &["sh", "true", "echo", "sleep", "yes", "cat"];
/// Bytes asked for per ReadStdout (what the Go Kata runtime asks for).
const READ_LEN: u32 = 32768;
const SIGKILL: u32 = 9;

/// Errors of the container figures.
#[derive(Debug, thiserror::Error)]
pub enum ContainersError {
    /// The host has no busybox for the guest.
    #[error(
        "no static busybox for {0} guests on this host (/bin/busybox is Debian's x86_64 build)"
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

impl ContainersError {
    /// A one-line description: an RPC status as `<RPC> answered <CODE>: <message>`.
    pub fn describe(&self) -> String {
        if let ContainersError::Agent(AgentError::Rpc {
            rpc,
            source: ttrpc::Error::RpcStatus(status),
        }) = self
        {
            let code = status
                .code
                .enum_value()
                .map_or_else(|n| n.to_string(), |c| format!("{c:?}"));
            return format!("{rpc} answered {code}: {}", status.message);
        }
        super::boot_figures::chain(self)
    }

    /// Whether this is a NOT_FOUND answer (e.g. signalling a process that exited).
    pub fn not_found(&self) -> bool {
        matches!(self, ContainersError::Agent(AgentError::Rpc {
            source: ttrpc::Error::RpcStatus(status),
            ..
        }) if status.code.value() == ttrpc::Code::NOT_FOUND as i32)
    }

    /// The message of an UNIMPLEMENTED answer, when that is what this is.
    pub fn unimplemented(&self) -> Option<String> {
        let ContainersError::Agent(AgentError::Rpc { rpc, source }) = self else {
            return None;
        };
        let ttrpc::Error::RpcStatus(status) = source else {
            return None;
        };
        (status.code.value() == ttrpc::Code::UNIMPLEMENTED as i32).then(|| {
            format!(
                "the agent answers UNIMPLEMENTED to {rpc} ({})",
                status.message
            )
        })
    }
}

/// A booted sandbox ready for containers.
pub struct Sandbox {
    vm: Vm,
    client: AgentClient,
    next_id: u64,
    /// Containers created so far.
    pub created: u64,
    shared: PathBuf,
    _dir: tempfile::TempDir,
}

impl Sandbox {
    /// Boots `image` with a shared busybox root filesystem and creates the sandbox.
    pub async fn start(
        image: &Image,
        arch: &str,
        accel: Accel,
        timeout: Duration,
    ) -> Result<Self, ContainersError> {
        if arch != "x86_64" || !Path::new("/bin/busybox").is_file() {
            return Err(ContainersError::NoBusybox(arch.to_string()));
        }
        let dir = tempfile::Builder::new()
            .prefix("hull-bench-")
            .tempdir()
            .map_err(|e| ContainersError::Rootfs(std::env::temp_dir(), e))?;
        let shared = dir.path().join("shared");
        std::fs::create_dir_all(&shared).map_err(|e| ContainersError::Rootfs(shared.clone(), e))?;
        std::fs::copy("/bin/busybox", shared.join(TEMPLATE))
            .map_err(|e| ContainersError::Rootfs(shared.clone(), e))?;
        let mut opts = VmOptions::new("bench-ctr");
        opts.accel = Some(accel);
        opts.share_dir = Some(shared.clone());
        let spec = plan(image, &opts, dir.path())
            .map_err(BootError::from)?
            .spec;
        let share = spec.share.as_ref().map(|s| s.kind);
        let mut vm = Vm::start(spec.clone()).await.map_err(BootError::from)?;
        let client = boot::until(&mut vm, "agent ready", timeout, boot::wait_ready(&spec)).await?;
        let mut sandbox = Self {
            vm,
            client,
            next_id: 0,
            created: 0,
            shared,
            _dir: dir,
        };
        sandbox.create_sandbox(share).await?;
        Ok(sandbox)
    }

    /// The agent client.
    pub fn client(&self) -> &AgentClient {
        &self.client
    }

    async fn create_sandbox(&mut self, share: Option<ShareKind>) -> Result<(), ContainersError> {
        let req = CreateSandboxRequest {
            hostname: "bench".into(),
            sandbox_id: "bench".into(),
            storages: share.map(share_storage).into_iter().collect(),
            ..Default::default()
        };
        agent_call!(self.client, create_sandbox, "CreateSandbox", &req)?;
        Ok(())
    }

    fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("bench-{}", self.next_id)
    }

    /// A new container id with its root filesystem on the share.
    pub fn prepare(&mut self) -> Result<String, ContainersError> {
        let id = self.new_id();
        busybox_rootfs(
            &self.shared.join(TEMPLATE),
            &self.shared.join(&id).join("rootfs"),
        )?;
        Ok(id)
    }

    /// Creates and starts prepared container `id` running `args`.
    pub async fn create_start_prepared(
        &mut self,
        id: &str,
        args: &[&str],
    ) -> Result<(), ContainersError> {
        create_start(&self.client, id, args).await?;
        self.created += 1;
        Ok(())
    }

    /// Prepares, creates and starts a container running `args`; returns its id.
    pub async fn create_start(&mut self, args: &[&str]) -> Result<String, ContainersError> {
        let id = self.prepare()?;
        self.create_start_prepared(&id, args).await?;
        Ok(id)
    }

    /// Waits for a container's init and removes the container.
    pub async fn finish(&self, id: &str) -> Result<(), ContainersError> {
        finish(&self.client, id).await?;
        self.forget(id);
        Ok(())
    }

    /// Removes container `id`.
    pub async fn remove(&self, id: &str) -> Result<(), ContainersError> {
        remove(&self.client, id).await?;
        self.forget(id);
        Ok(())
    }

    /// Deletes a removed container's root filesystem from the share.
    fn forget(&self, id: &str) {
        let _ = std::fs::remove_dir_all(self.shared.join(id));
    }

    /// One whole container life (create, start, wait for `true`, remove).
    pub async fn run_true(&mut self) -> Result<(), ContainersError> {
        let id = self.create_start(&["/bin/true"]).await?;
        self.finish(&id).await
    }

    /// `n` whole container lives at once; returns how long they took.
    pub async fn run_parallel(&mut self, n: usize) -> Result<Duration, ContainersError> {
        let ids = (0..n)
            .map(|_| self.prepare())
            .collect::<Result<Vec<_>, _>>()?;
        let mut set = tokio::task::JoinSet::new();
        let started = Instant::now();
        for id in ids.clone() {
            let client = self.client.clone();
            set.spawn(async move {
                create_start(&client, &id, &["/bin/true"]).await?;
                finish(&client, &id).await
            });
        }
        let mut results = Vec::with_capacity(n);
        while let Some(joined) = set.join_next().await {
            results.push(joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())));
        }
        let took = started.elapsed();
        self.created += n as u64;
        ids.iter().for_each(|id| self.forget(id));
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        Ok(took)
    }

    /// Starts `args` as a process in container `id`; returns its exec id.
    pub async fn exec(&mut self, id: &str, args: &[&str]) -> Result<String, ContainersError> {
        let exec_id = self.new_id();
        let req = ExecProcessRequest {
            container_id: id.into(),
            exec_id: exec_id.clone(),
            process: Some(process(args)).into(),
            ..Default::default()
        };
        agent_call!(self.client, exec_process, "ExecProcess", &req)?;
        Ok(exec_id)
    }

    /// Waits for process `exec_id` of container `id`; returns its status.
    pub async fn wait(&self, id: &str, exec_id: &str) -> Result<i32, ContainersError> {
        wait(&self.client, id, exec_id).await
    }

    /// One ReadStdout of process `exec_id`; returns the bytes read.
    pub async fn read_stdout(&self, id: &str, exec_id: &str) -> Result<usize, ContainersError> {
        let req = ReadStreamRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
            len: READ_LEN,
            ..Default::default()
        };
        let reply = agent_call!(self.client, read_stdout, "ReadStdout", &req)?;
        Ok(reply.data.len())
    }

    /// Kills process `exec_id` of container `id` and waits for it.
    pub async fn kill(&self, id: &str, exec_id: &str) -> Result<(), ContainersError> {
        let req = SignalProcessRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
            signal: SIGKILL,
            ..Default::default()
        };
        let signalled = agent_call!(self.client, signal_process, "SignalProcess", &req)
            .map(drop)
            .map_err(ContainersError::from);
        match signalled {
            // The process has already exited: only its status is left to collect.
            Err(e) if e.not_found() => {}
            other => other?,
        }
        wait(&self.client, id, exec_id).await.map(drop)
    }

    /// Stops the VM.
    pub async fn stop(mut self) {
        self.vm.stop().await;
    }
}

async fn create_start(
    client: &AgentClient,
    id: &str,
    args: &[&str],
) -> Result<(), ContainersError> {
    let create = CreateContainerRequest {
        container_id: id.into(),
        exec_id: id.into(),
        OCI: Some(spec(id, args)?).into(),
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

async fn finish(client: &AgentClient, id: &str) -> Result<(), ContainersError> {
    let status = wait(client, id, "").await?;
    if status != 0 {
        return Err(ContainersError::Status {
            what: format!("container {id}"),
            status,
        });
    }
    remove(client, id).await
}

async fn remove(client: &AgentClient, id: &str) -> Result<(), ContainersError> {
    let req = RemoveContainerRequest {
        container_id: id.into(),
        ..Default::default()
    };
    agent_call!(client, remove_container, "RemoveContainer", &req)?;
    Ok(())
}

async fn wait(client: &AgentClient, id: &str, exec_id: &str) -> Result<i32, ContainersError> {
    let req = WaitProcessRequest {
        container_id: id.into(),
        exec_id: exec_id.into(),
        ..Default::default()
    };
    Ok(agent_call!(client, wait_process, "WaitProcess", &req)?.status)
}

/// The OCI spec of bench container `id` running `args`: oci-spec's default
/// spec (namespaces, mounts, capabilities, masked paths), as `hull run` sends it,
/// with the root, hostname and process set.
pub fn spec(id: &str, args: &[&str]) -> Result<oci::Spec, ContainersError> {
    let invalid = |e: &dyn std::fmt::Display| ContainersError::Spec(e.to_string());
    let mut spec = Spec::default();
    let root = RootBuilder::default()
        .path(format!("{SHARED_MOUNT}{id}/rootfs"))
        .readonly(true)
        .build()
        .map_err(|e| invalid(&e))?;
    spec.set_root(Some(root));
    spec.set_hostname(Some("bench".into()));
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(args.iter().map(|a| a.to_string()).collect()));
    process.set_env(Some(vec!["PATH=/bin".into()]));
    spec.set_process(Some(process));
    spec_to_proto(&spec).map_err(|e| invalid(&e))
}

fn process(args: &[&str]) -> oci::Process {
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
fn share_storage(kind: ShareKind) -> Storage {
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

/// A root filesystem of a hard link to `busybox` and links for its applets.
fn busybox_rootfs(busybox: &Path, root: &Path) -> Result<(), ContainersError> {
    let err = |e| ContainersError::Rootfs(root.to_path_buf(), e);
    for dir in ["bin", "proc", "dev", "tmp", "etc"] {
        std::fs::create_dir_all(root.join(dir)).map_err(err)?;
    }
    std::fs::hard_link(busybox, root.join("bin/busybox")).map_err(err)?;
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).map_err(err)?;
    }
    Ok(())
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
        busybox_rootfs(&busybox, &root).unwrap();
        assert_eq!(
            std::fs::read(root.join("bin/true")).unwrap(),
            b"static busybox"
        );
        assert!(root.join("proc").is_dir());
    }
}
