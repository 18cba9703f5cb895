//! Driving the `hull` command from tests: one state root per test, the
//! command run or spawned against it, waits for a container to run or for
//! clean-up, and the check that nothing of a test's sandboxes is left.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::env;

/// How long a `hull run` may take to get its container running (a TCG boot
/// on a busy machine).
pub const BOOT_DEADLINE: Duration = Duration::from_secs(180);
/// How long clean-up may take once it was triggered.
pub const CLEANUP_DEADLINE: Duration = Duration::from_secs(60);

/// The commands a busybox root filesystem links to busybox.
const TOOLS: &[&str] = &[
    "sh", "echo", "cat", "sleep", "true", "ps", "tty", "stty", "kill", "ls",
];

/// A state root for one test, and the `hull` binary.
pub struct Hull {
    bin: PathBuf,
    state: tempfile::TempDir,
}

impl Hull {
    /// `None` (the test skips, with the reason printed) without root or a
    /// built `hull`.
    pub fn new() -> Option<Self> {
        env::root()?;
        let bin = env::hull_bin()?;
        let state = tempfile::tempdir().ok()?;
        Some(Self { bin, state })
    }

    /// The state root (`HULL_STATE_DIR`).
    pub fn state(&self) -> &Path {
        self.state.path()
    }

    /// `hull ARGS` against this state root; the channel is chosen as on a
    /// user's machine unless the arguments say otherwise.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .env("HULL_STATE_DIR", self.state.path())
            .env_remove("HULL_CHANNEL");
        cmd
    }

    /// Runs hull to the end, stdin closed.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .expect("hull runs")
    }

    /// Runs hull with `input` on its stdin (a pipe, not a terminal).
    pub fn run_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("hull starts");
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output().expect("hull runs");
        writer.join().unwrap().expect("stdin written");
        out
    }

    /// Starts hull in the background, stdin closed, output captured.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("hull starts")
    }

    /// Waits until `hull exec CONTAINER -- true` works: the container runs.
    /// Panics (with the output of `run`) if `run` exits first.
    pub fn wait_running(&self, container: &str, run: &mut Child) {
        let deadline = Instant::now() + BOOT_DEADLINE;
        loop {
            if let Ok(Some(_)) = run.try_wait() {
                let out = finish(run);
                panic!("hull run ended early: {}", text(&out.stderr));
            }
            let exec = self.run(&["exec", container, "--", "true"]);
            if exec.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "container {container} not running: {}",
                text(&exec.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until `done` holds; panics with `what` after [`CLEANUP_DEADLINE`].
    pub fn wait_for(&self, what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + CLEANUP_DEADLINE;
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The containers recorded in sandbox `id`.
    pub fn containers(&self, id: &str) -> Vec<String> {
        let mut ids = names(&self.state.path().join(id).join("containers"));
        ids.retain(|n| !n.starts_with('.'));
        ids
    }

    /// The sandboxes in the state root.
    pub fn sandboxes(&self) -> Vec<String> {
        names(self.state.path())
    }

    /// No sandbox left in the state root and nothing running or mounted for
    /// it. Clean-up that is under way (a supervisor removing its directory)
    /// gets [`CLEANUP_DEADLINE`] to finish.
    pub fn assert_clean(&self) {
        let deadline = Instant::now() + CLEANUP_DEADLINE;
        while !self.sandboxes().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(
            self.sandboxes().is_empty(),
            "sandboxes left: {:?}",
            self.sandboxes()
        );
        env::assert_clean(self.state.path(), false);
    }
}

/// The sorted entry names of `dir` (none if it does not exist).
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The output and status of a child that has exited or is about to.
pub fn finish(child: &mut Child) -> Output {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_end(&mut stdout);
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_end(&mut stderr);
    }
    let status = child.wait().expect("child waited for");
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Sends `signal` to `child`.
pub fn signal(child: &Child, signal: i32) {
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on our own child's pid, which it still is (not yet waited for).
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

/// Output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The built image directory, when it holds a kernel and an initrd.
pub fn built_image() -> Option<String> {
    env::kernel()?;
    env::artifact("initrd.img")?;
    Some(env::build_dir().display().to_string())
}

/// A busybox root filesystem for the guest's architecture (the host's static
/// busybox, or the one `scripts/deps.sh` fetched for another architecture)
/// that lives as long as the returned directory, and its path; `None` (the
/// test skips, with the reason printed) without one.
pub fn busybox_rootfs() -> Option<(tempfile::TempDir, String)> {
    let arch = env::arch();
    let Some(busybox) = env::busybox_for(&arch) else {
        env::skip(&format!(
            "no static busybox for {arch} guests (`scripts/deps.sh --for qemu-{arch}` fetches it)"
        ));
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for d in ["bin", "proc", "sys", "dev", "tmp", "etc"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    for tool in TOOLS {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(tool)).unwrap();
    }
    let path = root.display().to_string();
    Some((dir, path))
}
