//! A sandbox seen from a `hull` command: created by starting a supervisor
//! process, or opened from its state directory, with the agent reached over the
//! VM's channel.
//!
//! A creating command learns at once when the VM dies: it keeps a control
//! connection open on which the supervisor reports the end (with the console
//! tail), and every wait on the agent races that report. A command working in
//! a sandbox it opened can do the same with [`Sandbox::watch`].
//!
//! Containers are found by id across the state root (see
//! [`crate::state::find_container`]); [`Sandbox::add_container`] records and
//! shares one through the supervisor.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::agent::{AgentClient, AgentError};
use crate::control::{ControlClient, ControlError, Reply, Request};

use crate::image::{Image, ImageError};
use crate::plan::{self, PlanError, VmOptions};
use crate::state::{self, StateDir, StateError};
use crate::supervisor::{self, READY_FD};
use crate::vm::spec::VmSpec;

/// How long a stopped sandbox's supervisor may take to remove its state.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors of sandbox operations.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// State directory trouble.
    #[error("sandbox state")]
    State(#[from] StateError),
    /// The image is unusable.
    #[error("image")]
    Image(#[from] ImageError),
    /// The VM cannot be planned.
    #[error("VM configuration")]
    Plan(#[from] PlanError),
    /// The supervisor could not be started.
    #[error("cannot start the sandbox supervisor {}", .0.display())]
    Spawn(PathBuf, #[source] std::io::Error),
    /// The supervisor reported a start-up failure.
    #[error("sandbox {id} failed to start: {message}")]
    Start { id: String, message: String },
    /// The VM ended while we were waiting on it.
    #[error("sandbox {id}: VM ended while waiting for {what}: {exit}")]
    VmEnded {
        id: String,
        what: String,
        exit: String,
    },
    /// The agent failed.
    #[error("sandbox {0}")]
    Agent(String, #[source] AgentError),
    /// The supervisor failed.
    #[error("sandbox {0}")]
    Control(String, #[source] ControlError),
    /// The supervisor did not clean up in time.
    #[error("sandbox {0} did not go away within {1:?}")]
    Linger(String, Duration),
    /// The sandbox exists on disk but its supervisor does not run.
    #[error("sandbox {id} is not running ({why}); `hull rm -f {id}` removes it")]
    NotRunning { id: String, why: &'static str },
    /// The sandbox is still booting.
    #[error("sandbox {0} is still starting; try again when `hull ps` shows it running")]
    Starting(String),
}

/// What to create.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// The id; a random one when `None`.
    pub id: Option<String>,
    /// The image directory; the default one when `None`.
    pub image: Option<PathBuf>,
    /// The VM.
    pub vm: VmOptions,
    /// Share a directory with the guest (needed for containers).
    pub share: bool,
    /// Stop the sandbox when this process goes away.
    pub owned: bool,
    /// The `hull` binary to run the supervisor with.
    pub hull_exe: PathBuf,
}

/// A sandbox this process created or opened.
pub struct Sandbox {
    dir: StateDir,
    spec: VmSpec,
    /// The VM's end, as reported by the supervisor (created sandboxes only).
    exit: Option<watch::Receiver<Option<String>>>,
    /// When the supervisor was started.
    pub launched: Option<Instant>,
    /// Why KVM is not used, when it is not.
    pub tcg_reason: Option<String>,
}

impl Sandbox {
    /// Creates a sandbox: plans the VM, starts its supervisor, and returns once
    /// QEMU runs (the agent may not be up yet; see [`Sandbox::agent`]).
    pub async fn create(opts: &CreateOptions) -> Result<Self, SandboxError> {
        let id = opts.id.clone().unwrap_or_else(state::new_id);
        let dir = StateDir::create(&state::root(), &id)?;
        match Self::launch(&dir, opts).await {
            Ok(sandbox) => Ok(sandbox),
            Err(e) => {
                let _ = dir.remove();
                Err(e)
            }
        }
    }

    async fn launch(dir: &StateDir, opts: &CreateOptions) -> Result<Self, SandboxError> {
        let image = Image::open(opts.image.as_deref())?;
        let mut vm = opts.vm.clone();
        vm.name = dir.id().to_string();
        vm.share_dir = opts.share.then(|| dir.shared_dir());
        let plan = plan::plan(&image, &vm, dir.path())?;
        dir.write_spec(&plan.spec)?;
        let launched = Instant::now();
        start_supervisor(&opts.hull_exe, dir).await?;
        let exit = watch_exit(dir, opts.owned).await?;
        Ok(Self {
            dir: dir.clone(),
            spec: plan.spec,
            exit: Some(exit),
            launched: Some(launched),
            tcg_reason: plan.tcg_reason,
        })
    }

    /// Opens sandbox `id` (running or not).
    pub fn open(id: &str) -> Result<Self, SandboxError> {
        Self::from_dir(StateDir::open(&state::root(), id)?)
    }

    fn from_dir(dir: StateDir) -> Result<Self, SandboxError> {
        let spec = dir.read_spec()?;
        Ok(Self {
            dir,
            spec,
            exit: None,
            launched: None,
            tcg_reason: None,
        })
    }

    /// Opens sandbox `id`, which must be running.
    pub fn open_running(id: &str) -> Result<Self, SandboxError> {
        let sandbox = Self::open(id)?;
        sandbox.check_running()?;
        Ok(sandbox)
    }

    /// Opens the running sandbox holding container `container`.
    pub fn of_container(container: &str) -> Result<Self, SandboxError> {
        let sandbox = Self::from_dir(state::find_container(&state::root(), container)?)?;
        sandbox.check_running()?;
        Ok(sandbox)
    }

    fn check_running(&self) -> Result<(), SandboxError> {
        let id = self.id().to_string();
        match self.dir.read_state()? {
            None => Err(SandboxError::Starting(id)),
            Some(s) if !state::pid_alive(s.supervisor) => Err(SandboxError::NotRunning {
                id,
                why: "its supervisor is gone",
            }),
            Some(_) => Ok(()),
        }
    }

    /// From now on, [`Sandbox::race`] fails as soon as the VM ends.
    pub async fn watch(&mut self) -> Result<(), SandboxError> {
        if self.exit.is_none() {
            self.exit = Some(watch_exit(&self.dir, false).await?);
        }
        Ok(())
    }

    /// The sandbox id.
    pub fn id(&self) -> &str {
        self.dir.id()
    }

    /// Its state directory.
    pub fn dir(&self) -> &StateDir {
        &self.dir
    }

    /// The VM it runs.
    pub fn spec(&self) -> &VmSpec {
        &self.spec
    }

    /// Connects to the agent, retrying for up to `wait`; fails at once, with
    /// the console tail, if the VM ends meanwhile.
    pub async fn agent(&self, wait: Duration) -> Result<AgentClient, SandboxError> {
        let paths = self.spec.paths();
        let connect = AgentClient::connect(self.spec.channel, &paths, wait);
        self.race("the agent", connect)
            .await?
            .map_err(|e| SandboxError::Agent(self.id().to_string(), e))
    }

    /// Runs `fut` unless the VM ends first (then an error with why it ended).
    pub async fn race<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = T>,
    ) -> Result<T, SandboxError> {
        let Some(mut exit) = self.exit.clone() else {
            return Ok(fut.await);
        };
        tokio::select! {
            value = fut => Ok(value),
            ended = exit.wait_for(Option::is_some) => {
                let exit = ended.ok().and_then(|e| e.clone()).unwrap_or_else(|| "supervisor gone".into());
                Err(SandboxError::VmEnded { id: self.id().to_string(), what: what.to_string(), exit })
            }
        }
    }

    /// Time from QEMU's start until now (from the supervisor's record).
    pub fn since_qemu_start(&self) -> Option<Duration> {
        let state = self.dir.read_state().ok()??;
        let started = UNIX_EPOCH + Duration::from_millis(state.qemu_started_ms);
        SystemTime::now().duration_since(started).ok()
    }

    /// Sends a request to the supervisor.
    pub async fn control(&self, request: &Request) -> Result<Reply, SandboxError> {
        let mut client = self.connect_control().await?;
        self.call(&mut client, request).await
    }

    async fn call(
        &self,
        client: &mut ControlClient,
        request: &Request,
    ) -> Result<Reply, SandboxError> {
        client
            .call(request)
            .await
            .map_err(|e| SandboxError::Control(self.id().to_string(), e))
    }

    async fn connect_control(&self) -> Result<ControlClient, SandboxError> {
        ControlClient::connect(&self.dir.control_socket())
            .await
            .map_err(|e| SandboxError::Control(self.id().to_string(), e))
    }

    /// Records container `container` in this sandbox and shares `rootfs` for
    /// it; returns where the guest sees the root filesystem. With `owned`, the
    /// supervisor removes the container when the returned [`ContainerOwner`]
    /// is dropped (or this process dies) before [`Sandbox::remove_container`].
    pub async fn add_container(
        &self,
        container: &str,
        rootfs: &Path,
        owned: bool,
    ) -> Result<(String, ContainerOwner), SandboxError> {
        let mut client = self.connect_control().await?;
        let share = Request::Share {
            container: container.to_string(),
            rootfs: rootfs.to_path_buf(),
            owned,
        };
        let reply = self.call(&mut client, &share).await?;
        let guest_root = reply.guest_path.unwrap_or_default();
        Ok((guest_root, ContainerOwner { _client: client }))
    }

    /// Removes container `container`: in the guest, then its share and record.
    pub async fn remove_container(&self, container: &str) -> Result<(), SandboxError> {
        let remove = Request::Remove {
            container: container.to_string(),
        };
        self.control(&remove).await.map(|_| ())
    }

    /// Stops the VM (the guest is asked to power off first) and waits until
    /// the sandbox's state is gone; returns how the VM ended, when the
    /// supervisor said. A supervisor that is already shutting down may not
    /// answer; its state going away is what counts.
    pub async fn stop(&self) -> Result<Option<String>, SandboxError> {
        let asked = self.control(&Request::Stop).await;
        match (self.wait_removed().await, asked) {
            (Ok(()), Ok(reply)) => Ok(reply.exit),
            (Ok(()), Err(_)) => Ok(None),
            (Err(_), Err(e)) => Err(e),
            (Err(e), Ok(_)) => Err(e),
        }
    }

    async fn wait_removed(&self) -> Result<(), SandboxError> {
        let deadline = Instant::now() + REMOVE_TIMEOUT;
        while self.dir.path().exists() {
            if Instant::now() >= deadline {
                return Err(SandboxError::Linger(self.id().to_string(), REMOVE_TIMEOUT));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

/// The connection that owns a container added with `owned` (see
/// [`Sandbox::add_container`]).
pub struct ContainerOwner {
    _client: ControlClient,
}

/// Starts `hull _supervise <dir>` detached (own session, output to the
/// supervisor log) and waits for its start-up report.
async fn start_supervisor(exe: &Path, dir: &StateDir) -> Result<(), SandboxError> {
    let spawn_err = |e| SandboxError::Spawn(exe.to_path_buf(), e);
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| spawn_err(std::io::Error::from(e)))?;
    let log = std::fs::File::create(dir.supervisor_log()).map_err(spawn_err)?;
    let mut cmd = Command::new(exe);
    cmd.arg(supervisor::VERB)
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(spawn_err)?)
        .stderr(log);
    let write_fd = write.as_raw_fd();
    // SAFETY: between fork and exec the closure only makes async-signal-safe
    // calls (setsid, dup2, fcntl) on descriptors that exist in the child.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            if write_fd == READY_FD {
                libc::fcntl(READY_FD, libc::F_SETFD, 0);
            } else if libc::dup2(write_fd, READY_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(spawn_err)?;
    drop(write);
    let report = tokio::task::spawn_blocking(move || read_report(read))
        .await
        .unwrap_or_default();
    drop(child);
    match report.trim() {
        "ok" => Ok(()),
        other => Err(SandboxError::Start {
            id: dir.id().to_string(),
            message: start_failure(other, dir),
        }),
    }
}

/// The first line the supervisor writes (it keeps the pipe open afterwards).
fn read_report(read: OwnedFd) -> String {
    let mut file = std::fs::File::from(read);
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while let Ok(1) = file.read(&mut byte) {
        if byte[0] == b'\n' {
            break;
        }
        line.push(byte[0]);
    }
    String::from_utf8_lossy(&line).into_owned()
}

fn start_failure(report: &str, dir: &StateDir) -> String {
    if let Some(message) = report.strip_prefix("error: ") {
        return message.replace("\\n", "\n");
    }
    let log = std::fs::read_to_string(dir.supervisor_log()).unwrap_or_default();
    format!("supervisor exited without a report: {}", log.trim())
}

/// Opens the control connection that reports the VM's end (`hold` when the
/// sandbox is owned by this process).
async fn watch_exit(
    dir: &StateDir,
    owned: bool,
) -> Result<watch::Receiver<Option<String>>, SandboxError> {
    let mut client = ControlClient::connect(&dir.control_socket())
        .await
        .map_err(|e| SandboxError::Control(dir.id().to_string(), e))?;
    let (tx, rx) = watch::channel(None);
    let request = if owned { Request::Hold } else { Request::Wait };
    tokio::spawn(async move {
        let text = match client.call(&request).await {
            Ok(reply) => reply.exit.unwrap_or_default(),
            Err(e) => e.to_string(),
        };
        let _ = tx.send(Some(text));
    });
    Ok(rx)
}
