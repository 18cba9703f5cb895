//! An agent in fresh namespaces (pid, mount, net, uts, ipc) with a busybox rootfs and a
//! cgroup parent of its own, for the root tests of containers in a sandbox.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use hull_protocols::agent::*;
use hull_protocols::agent_ttrpc::AgentServiceClient;
use hull_protocols::health_ttrpc::HealthClient;
use hull_protocols::oci;

use super::{ctx, AgentProcess};

/// Where the busybox rootfs lies, as a guest path under the agent's root.
pub const ROOTFS: &str = "/run/kata-containers/shared/containers/busybox/rootfs";

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Whether the tests can run: root, `unshare` and a static busybox.
pub fn can_run() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root (namespaces, mounts, cgroups)");
        return false;
    }
    for tool in ["/usr/bin/unshare", "/bin/busybox"] {
        if !Path::new(tool).exists() {
            eprintln!("skipped: needs {tool}");
            return false;
        }
    }
    true
}

/// The agent, its client and the test's cgroup parent.
pub struct Guest {
    pub agent: Option<AgentProcess>,
    pub client: AgentServiceClient,
    pub health: HealthClient,
    pub cgroup_parent: String,
}

impl Guest {
    /// Starts the agent with `flags` (`--system` lets it set the hostname and
    /// mount: all of that stays in its namespaces).
    pub async fn start(flags: &[&str]) -> Guest {
        // A shell stays PID 1 of the new PID namespace (the agent is its child, not
        // PID 1), so killing `unshare` kills everything the agent started.
        let wrapper = [
            "unshare",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount",
            "--mount-proc",
            "--net",
            "--uts",
            "--ipc",
            "--",
            "/bin/busybox",
            "sh",
            "-c",
            "\"$0\" \"$@\"; exit $?",
        ];
        let agent = AgentProcess::start_with(&wrapper, flags);
        make_rootfs(&agent.guest(ROOTFS));
        let (client, health) = agent.client().await;
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        Guest {
            agent: Some(agent),
            client,
            health,
            cgroup_parent: format!("hull-agent-test-{}-{n}", std::process::id()),
        }
    }

    pub fn agent(&self) -> &AgentProcess {
        self.agent.as_ref().expect("agent runs until drop")
    }

    /// The agent's own pid: the child of the shell that is PID 1 of its namespace.
    pub fn agent_pid(&self) -> u32 {
        let shell = only_child(self.agent().child.id());
        only_child(shell)
    }

    /// A spec running `args` in the busybox rootfs, in this test's cgroup parent.
    pub fn spec(&self, id: &str, args: &[&str]) -> oci::Spec {
        spec(args, &format!("/{}/{id}", self.cgroup_parent))
    }

    pub async fn create_sandbox(&self, hostname: &str, pidns: bool) {
        let req = CreateSandboxRequest {
            hostname: hostname.into(),
            sandbox_pidns: pidns,
            sandbox_id: "sb".into(),
            ..Default::default()
        };
        if let Err(e) = self.client.create_sandbox(ctx(), &req).await {
            panic!("create sandbox: {e:?}\n{}", self.agent().log());
        }
    }

    /// The CreateContainer request for `args` in container `id`.
    pub fn request(&self, id: &str, args: &[&str]) -> CreateContainerRequest {
        CreateContainerRequest {
            container_id: id.into(),
            exec_id: id.into(),
            OCI: Some(self.spec(id, args)).into(),
            ..Default::default()
        }
    }

    pub async fn create_with(&self, req: CreateContainerRequest) {
        let id = req.container_id.clone();
        if let Err(e) = self.client.create_container(ctx(), &req).await {
            panic!("create {id}: {e:?}\n{}", self.agent().log());
        }
    }

    pub async fn create(&self, id: &str, args: &[&str]) {
        self.create_with(self.request(id, args)).await;
    }

    pub async fn start_container(&self, id: &str) {
        let req = StartContainerRequest {
            container_id: id.into(),
            ..Default::default()
        };
        self.client.start_container(ctx(), &req).await.unwrap();
    }

    pub async fn run(&self, id: &str, args: &[&str]) {
        self.create(id, args).await;
        self.start_container(id).await;
    }

    pub async fn exec(&self, id: &str, exec_id: &str, args: &[&str]) {
        let process = spec(args, "").Process.unwrap();
        let req = ExecProcessRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
            process: Some(process).into(),
            ..Default::default()
        };
        self.client.exec_process(ctx(), &req).await.unwrap();
    }

    /// The exit status of a process (`exec_id` empty: the container's init).
    pub async fn wait(&self, id: &str, exec_id: &str) -> i32 {
        let req = WaitProcessRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
            ..Default::default()
        };
        self.client.wait_process(ctx(), &req).await.unwrap().status
    }

    /// Reads a process's stdout (or stderr) to its end.
    pub async fn read_all(&self, id: &str, exec_id: &str, stderr: bool) -> Vec<u8> {
        let req = ReadStreamRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
            len: 32768,
            ..Default::default()
        };
        let mut all = Vec::new();
        loop {
            let reply = if stderr {
                self.client.read_stderr(ctx(), &req).await
            } else {
                self.client.read_stdout(ctx(), &req).await
            };
            let data = reply.unwrap().data;
            if data.is_empty() {
                return all;
            }
            all.extend(data);
        }
    }

    /// The init process's stdout (or stderr) to its end, as text.
    pub async fn read_text(&self, id: &str, stderr: bool) -> String {
        String::from_utf8_lossy(&self.read_all(id, "", stderr).await).into_owned()
    }

    /// Runs `args` to its end; its exit code and stdout.
    pub async fn output(&self, id: &str, args: &[&str]) -> (i32, String) {
        self.run(id, args).await;
        let out = self.read_text(id, false).await;
        let code = self.wait(id, "").await;
        if code != 0 {
            eprintln!("{id} stderr: {}", self.read_text(id, true).await);
        }
        (code, out)
    }

    pub async fn signal(&self, id: &str, exec_id: &str, signal: u32) {
        let req = SignalProcessRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
            signal,
            ..Default::default()
        };
        self.client.signal_process(ctx(), &req).await.unwrap();
    }

    pub async fn remove(&self, id: &str) {
        let req = RemoveContainerRequest {
            container_id: id.into(),
            timeout: 30,
            ..Default::default()
        };
        if let Err(e) = self.client.remove_container(ctx(), &req).await {
            panic!("remove {id}: {e:?}\n{}", self.agent().log());
        }
    }

    /// The container's cgroup directories that exist.
    pub fn cgroup_dirs(&self, id: &str) -> Vec<PathBuf> {
        cgroup_roots()
            .into_iter()
            .map(|r| r.join(&self.cgroup_parent).join(id))
            .filter(|p| p.exists())
            .collect()
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        // Killing unshare takes the whole PID namespace down, containers included.
        drop(self.agent.take());
        for root in cgroup_roots() {
            remove_cgroup_tree(&root.join(&self.cgroup_parent));
        }
    }
}

pub fn only_child(pid: u32) -> u32 {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    children.split_whitespace().next().unwrap().parse().unwrap()
}

/// Removes a test's cgroup parent and the cgroups in it, waiting for the killed
/// processes to leave them.
pub fn remove_cgroup_tree(dir: &Path) {
    if !dir.exists() {
        return;
    }
    for _ in 0..500 {
        let children: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default();
        for child in children {
            let _ = std::fs::remove_dir(child);
        }
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    eprintln!("leftover cgroup {}", dir.display());
}

/// The roots of the mounted cgroup hierarchies.
pub fn cgroup_roots() -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .filter(|l| l.contains(" - cgroup ") || l.contains(" - cgroup2 "))
        .filter_map(|l| l.split(' ').nth(4).map(PathBuf::from))
        .collect()
}

/// A static busybox tree: bin/busybox and a link per applet.
pub fn make_rootfs(root: &Path) {
    for d in ["bin", "proc", "sys", "dev", "tmp", "etc", "root"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    let list = std::process::Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .unwrap();
    for name in String::from_utf8_lossy(&list.stdout).lines() {
        if name != "busybox" {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(name)).unwrap();
        }
    }
}

fn mount(destination: &str, typ: &str, options: &[&str]) -> oci::Mount {
    oci::Mount {
        destination: destination.into(),
        source: typ.into(),
        type_: typ.into(),
        options: options.iter().map(|o| o.to_string()).collect(),
        ..Default::default()
    }
}

pub fn namespace(typ: &str) -> oci::LinuxNamespace {
    oci::LinuxNamespace {
        Type: typ.into(),
        ..Default::default()
    }
}

/// A spec as the Kata runtimes send it: mount, ipc and uts namespaces without paths,
/// no pid or network namespace, no hostname, the rootfs on the shared-files path.
pub fn spec(args: &[&str], cgroups_path: &str) -> oci::Spec {
    oci::Spec {
        Version: "1.1.0".into(),
        Process: Some(oci::Process {
            Args: args.iter().map(|a| a.to_string()).collect(),
            Env: vec!["PATH=/bin".into(), "HOME=/root".into()],
            Cwd: "/".into(),
            ..Default::default()
        })
        .into(),
        Root: Some(oci::Root {
            Path: ROOTFS.into(),
            ..Default::default()
        })
        .into(),
        Mounts: vec![
            mount("/proc", "proc", &[]),
            mount("/dev", "tmpfs", &["nosuid", "mode=755", "size=65536k"]),
            mount(
                "/dev/pts",
                "devpts",
                &["nosuid", "noexec", "newinstance", "ptmxmode=0666"],
            ),
            mount("/dev/mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
            mount("/tmp", "tmpfs", &["nosuid", "nodev"]),
        ],
        Linux: Some(oci::Linux {
            Namespaces: vec![namespace("mount"), namespace("ipc"), namespace("uts")],
            CgroupsPath: cgroups_path.into(),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    }
}
