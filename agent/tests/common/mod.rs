//! Starting the agent as a normal process on a Unix socket, and talking to it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hull_protocols::agent_ttrpc::AgentServiceClient;
use hull_protocols::health_ttrpc::HealthClient;
use hull_protocols::ttrpc::{self, context, r#async::Client, Code};

/// How long to wait for the agent's socket to appear (a readiness wait, not a check).
const READY_WAIT: Duration = Duration::from_secs(20);

/// A running agent, killed and cleaned up on drop.
pub struct AgentProcess {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub root: PathBuf,
}

impl AgentProcess {
    /// Starts `hull-agent --server-addr unix://<dir>/agent.sock --root <dir>/root`.
    pub fn start(extra: &[&str]) -> AgentProcess {
        Self::start_with(&[], extra)
    }

    /// Like [`AgentProcess::start`], with `wrapper` (e.g. `unshare ...`) in front.
    pub fn start_with(wrapper: &[&str], extra: &[&str]) -> AgentProcess {
        // Not under /tmp: an agent that is PID 1 of a namespace mounts its own /tmp.
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let socket = dir.path().join("agent.sock");
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(env!("CARGO_BIN_EXE_hull-agent"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_hull-agent")),
        };
        cmd.arg("--server-addr")
            .arg(format!("unix://{}", socket.display()))
            .arg("--root")
            .arg(&root)
            .args(["--log", "debug"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = cmd.spawn().unwrap();
        let mut agent = AgentProcess {
            child,
            dir,
            socket,
            root,
        };
        agent.wait_ready();
        agent
    }

    fn wait_ready(&mut self) {
        let deadline = std::time::Instant::now() + READY_WAIT;
        while std::time::Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("agent exited early ({status}):\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("agent socket never appeared:\n{}", self.log());
    }

    /// The agent's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    pub fn uri(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    pub async fn client(&self) -> (AgentServiceClient, HealthClient) {
        let client = Client::connect(&self.uri()).await.unwrap();
        (
            AgentServiceClient::new(client.clone()),
            HealthClient::new(client),
        )
    }

    /// A guest path inside the agent's root.
    pub fn guest(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A context with a generous deadline, so a broken agent fails the test instead of
/// hanging it.
pub fn ctx() -> context::Context {
    context::with_duration(Duration::from_secs(30))
}

/// The status code of a failed call.
pub fn code_of<T: std::fmt::Debug>(result: ttrpc::Result<T>) -> (Code, String) {
    match result {
        Err(ttrpc::Error::RpcStatus(status)) => (status.code(), status.message().to_string()),
        other => panic!("expected an error status, got {other:?}"),
    }
}

/// Whether the tests run as root with `unshare` available.
pub fn can_unshare() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    root && Path::new("/usr/bin/unshare").exists()
}
pub mod guest;
