//! The container and process RPCs through the generated client (root only): the agent
//! runs as a normal process in fresh PID, mount and network namespaces (so whatever
//! it starts dies with the test), containers run a static busybox rootfs, and each
//! test's cgroups go under a parent of its own that is removed afterwards.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{code_of, ctx, AgentProcess};
use hull_protocols::agent::*;
use hull_protocols::agent_ttrpc::AgentServiceClient;
use hull_protocols::health::CheckRequest;
use hull_protocols::health_ttrpc::HealthClient;
use hull_protocols::oci;
use hull_protocols::ttrpc::Code;

/// Where the busybox rootfs lies, as a guest path under the agent's root.
const ROOTFS: &str = "/run/kata-containers/shared/containers/busybox/rootfs";

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn can_run() -> bool {
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

/// An agent in fresh namespaces with a busybox rootfs, and a cgroup parent of its own.
struct Guest {
    agent: Option<AgentProcess>,
    client: AgentServiceClient,
    health: HealthClient,
    cgroup_parent: String,
}

impl Guest {
    async fn start() -> Guest {
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
            "--",
            "/bin/busybox",
            "sh",
            "-c",
            "\"$0\" \"$@\"; exit $?",
        ];
        let agent = AgentProcess::start_with(&wrapper, &[]);
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

    fn agent(&self) -> &AgentProcess {
        self.agent.as_ref().expect("agent runs until drop")
    }

    /// A spec running `args` in the busybox rootfs.
    fn spec(&self, id: &str, args: &[&str]) -> oci::Spec {
        spec(args, &format!("/{}/{id}", self.cgroup_parent))
    }

    async fn create(&self, id: &str, args: &[&str]) {
        let req = CreateContainerRequest {
            container_id: id.into(),
            exec_id: id.into(),
            OCI: Some(self.spec(id, args)).into(),
            ..Default::default()
        };
        if let Err(e) = self.client.create_container(ctx(), &req).await {
            panic!("create {id}: {e:?}\n{}", self.agent().log());
        }
    }

    async fn run(&self, id: &str, args: &[&str]) {
        self.create(id, args).await;
        let req = StartContainerRequest {
            container_id: id.into(),
            ..Default::default()
        };
        self.client.start_container(ctx(), &req).await.unwrap();
    }

    async fn exec(&self, id: &str, exec_id: &str, args: &[&str]) {
        let process = spec(args, "").Process.unwrap();
        let req = ExecProcessRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
            process: Some(process).into(),
            ..Default::default()
        };
        self.client.exec_process(ctx(), &req).await.unwrap();
    }

    async fn wait(&self, id: &str, exec_id: &str) -> i32 {
        let req = WaitProcessRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
            ..Default::default()
        };
        self.client.wait_process(ctx(), &req).await.unwrap().status
    }

    /// Reads a stream to its end.
    async fn read_all(&self, id: &str, exec_id: &str, stderr: bool) -> Vec<u8> {
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

    async fn signal(&self, id: &str, exec_id: &str, signal: u32) {
        let req = SignalProcessRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
            signal,
            ..Default::default()
        };
        self.client.signal_process(ctx(), &req).await.unwrap();
    }

    async fn remove(&self, id: &str) {
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
    fn cgroup_dirs(&self, id: &str) -> Vec<PathBuf> {
        cgroup_roots()
            .into_iter()
            .map(|r| r.join(&self.cgroup_parent).join(id))
            .filter(|p| p.exists())
            .collect()
    }

    /// The agent's own pid: the child of the shell that is PID 1 of its namespace.
    fn agent_pid(&self) -> u32 {
        let shell = only_child(self.agent().child.id());
        only_child(shell)
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

fn only_child(pid: u32) -> u32 {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    children.split_whitespace().next().unwrap().parse().unwrap()
}

/// Removes a test's cgroup parent and the container cgroups in it, waiting for the
/// killed processes to leave them.
fn remove_cgroup_tree(dir: &Path) {
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
fn cgroup_roots() -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .filter(|l| l.contains(" - cgroup ") || l.contains(" - cgroup2 "))
        .filter_map(|l| l.split(' ').nth(4).map(PathBuf::from))
        .collect()
}

/// A static busybox tree: bin/busybox and a link per applet.
fn make_rootfs(root: &Path) {
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

fn namespace(typ: &str) -> oci::LinuxNamespace {
    oci::LinuxNamespace {
        Type: typ.into(),
        ..Default::default()
    }
}

/// A spec as the Kata runtimes send it: no pid or network namespace (the agent adds
/// the pid one), the rootfs on the shared-files path.
fn spec(args: &[&str], cgroups_path: &str) -> oci::Spec {
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
        Hostname: "box".into(),
        Mounts: vec![
            mount("/proc", "proc", &[]),
            mount("/dev", "tmpfs", &["nosuid", "mode=755", "size=65536k"]),
            mount(
                "/dev/pts",
                "devpts",
                &["nosuid", "noexec", "newinstance", "ptmxmode=0666"],
            ),
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

#[tokio::test(flavor = "current_thread")]
async fn echo_exit_codes_and_stdio() {
    if !can_run() {
        return;
    }
    let g = Guest::start().await;

    g.run("echo", &["/bin/echo", "hello"]).await;
    assert_eq!(g.read_all("echo", "", false).await, b"hello\n");
    assert_eq!(g.wait("echo", "").await, 0);
    assert_eq!(
        g.wait("echo", "echo").await,
        0,
        "the container id names init too"
    );

    g.run(
        "seven",
        &["/bin/sh", "-c", "echo out; echo err >&2; exit 7"],
    )
    .await;
    assert_eq!(g.wait("seven", "").await, 7);
    assert_eq!(g.read_all("seven", "", true).await, b"err\n", "late reader");
    assert_eq!(g.read_all("seven", "", false).await, b"out\n");

    g.run("cat", &["/bin/cat"]).await;
    let write = WriteStreamRequest {
        container_id: "cat".into(),
        data: b"through stdin\n".to_vec(),
        ..Default::default()
    };
    let written = g.client.write_stdin(ctx(), &write).await.unwrap();
    assert_eq!(written.len, 14);
    let close = CloseStdinRequest {
        container_id: "cat".into(),
        ..Default::default()
    };
    g.client.close_stdin(ctx(), &close).await.unwrap();
    assert_eq!(g.read_all("cat", "", false).await, b"through stdin\n");
    assert_eq!(g.wait("cat", "").await, 0);

    for id in ["echo", "seven", "cat"] {
        g.remove(id).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn sigkill_exec_and_removal() {
    if !can_run() {
        return;
    }
    let g = Guest::start().await;
    g.run("sleeper", &["/bin/sleep", "1000"]).await;

    g.exec("sleeper", "look", &["/bin/cat", "/proc/1/cmdline"])
        .await;
    assert_eq!(g.wait("sleeper", "look").await, 0);
    let cmdline = g.read_all("sleeper", "look", false).await;
    assert_eq!(
        cmdline, b"/bin/sleep\x001000\x00",
        "exec sees the init as pid 1"
    );

    g.exec("sleeper", "ps", &["/bin/ps", "-o", "pid,args"])
        .await;
    let ps = String::from_utf8(g.read_all("sleeper", "ps", false).await).unwrap();
    assert_eq!(g.wait("sleeper", "ps").await, 0);
    let lines: Vec<&str> = ps.lines().skip(1).collect();
    assert_eq!(lines.len(), 2, "init and ps only: {ps}");

    let missing = WaitProcessRequest {
        container_id: "sleeper".into(),
        exec_id: "nope".into(),
        ..Default::default()
    };
    let (code, _) = code_of(g.client.wait_process(ctx(), &missing).await);
    assert_eq!(code, Code::NOT_FOUND);

    g.signal("sleeper", "", libc::SIGKILL as u32).await;
    assert_eq!(g.wait("sleeper", "").await, 137);
    // The Go runtime kills again after the wait, and waits again.
    g.signal("sleeper", "", libc::SIGKILL as u32).await;
    assert_eq!(g.wait("sleeper", "").await, 137);
    let term = SignalProcessRequest {
        container_id: "sleeper".into(),
        signal: libc::SIGTERM as u32,
        ..Default::default()
    };
    let (code, message) = code_of(g.client.signal_process(ctx(), &term).await);
    assert_eq!(code, Code::NOT_FOUND);
    assert!(message.contains("ESRCH: No such process"), "{message}");

    assert!(
        !g.cgroup_dirs("sleeper").is_empty(),
        "cgroup while it exists"
    );
    g.remove("sleeper").await;
    assert!(
        g.cgroup_dirs("sleeper").is_empty(),
        "{:?}",
        g.cgroup_dirs("sleeper")
    );
    let mounts = std::fs::read_to_string(format!("/proc/{}/mountinfo", g.agent_pid())).unwrap();
    assert!(!mounts.contains("rootfs"), "{mounts}");
    let start = StartContainerRequest {
        container_id: "sleeper".into(),
        ..Default::default()
    };
    let (code, _) = code_of(g.client.start_container(ctx(), &start).await);
    assert_eq!(code, Code::NOT_FOUND);
}

#[tokio::test(flavor = "current_thread")]
async fn two_containers_and_state_errors() {
    if !can_run() {
        return;
    }
    let g = Guest::start().await;
    g.run("a", &["/bin/sh", "-c", "echo a; exec sleep 1000"])
        .await;
    g.create("b", &["/bin/sh", "-c", "echo b"]).await;

    let again = CreateContainerRequest {
        container_id: "a".into(),
        OCI: Some(g.spec("a", &["/bin/true"])).into(),
        ..Default::default()
    };
    let (code, _) = code_of(g.client.create_container(ctx(), &again).await);
    assert_eq!(code, Code::ALREADY_EXISTS);

    let exec_in_created = ExecProcessRequest {
        container_id: "b".into(),
        exec_id: "x".into(),
        process: g.spec("b", &["/bin/true"]).Process,
        ..Default::default()
    };
    let (code, _) = code_of(g.client.exec_process(ctx(), &exec_in_created).await);
    assert_eq!(code, Code::FAILED_PRECONDITION);

    let start_b = StartContainerRequest {
        container_id: "b".into(),
        ..Default::default()
    };
    g.client.start_container(ctx(), &start_b).await.unwrap();
    let (code, _) = code_of(g.client.start_container(ctx(), &start_b).await);
    assert_eq!(code, Code::FAILED_PRECONDITION, "start twice");
    assert_eq!(g.read_all("b", "", false).await, b"b\n");
    assert_eq!(g.wait("b", "").await, 0);

    let pause = PauseContainerRequest {
        container_id: "a".into(),
        ..Default::default()
    };
    g.client.pause_container(ctx(), &pause).await.unwrap();
    let resume = ResumeContainerRequest {
        container_id: "a".into(),
        ..Default::default()
    };
    g.client.resume_container(ctx(), &resume).await.unwrap();
    let (code, _) = code_of(g.client.resume_container(ctx(), &resume).await);
    assert_eq!(code, Code::FAILED_PRECONDITION, "resume when running");

    let stats = StatsContainerRequest {
        container_id: "a".into(),
        ..Default::default()
    };
    let stats = g.client.stats_container(ctx(), &stats).await.unwrap();
    let pids = stats.cgroup_stats.pids_stats.current;
    assert_eq!(pids, 1, "the sleeping init");

    let update = UpdateContainerRequest {
        container_id: "a".into(),
        resources: Some(oci::LinuxResources {
            Pids: Some(oci::LinuxPids {
                Limit: 20,
                ..Default::default()
            })
            .into(),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    };
    g.client.update_container(ctx(), &update).await.unwrap();

    let first = ReadStreamRequest {
        container_id: "a".into(),
        len: 100,
        ..Default::default()
    };
    let out = g.client.read_stdout(ctx(), &first).await.unwrap();
    assert_eq!(out.data, b"a\n", "output while it runs");
    g.remove("a").await;
    g.remove("b").await;

    g.create("never", &["/bin/true"]).await;
    g.remove("never").await;
    assert!(g.cgroup_dirs("never").is_empty(), "created, never started");
}

#[tokio::test(flavor = "current_thread")]
async fn bad_requests_are_refused_and_the_agent_keeps_serving() {
    if !can_run() {
        return;
    }
    let g = Guest::start().await;

    let mut bad = g.spec("bad", &["/bin/true"]);
    bad.Linux
        .as_mut()
        .unwrap()
        .Namespaces
        .push(namespace("bogus"));
    let req = CreateContainerRequest {
        container_id: "bad".into(),
        OCI: Some(bad).into(),
        ..Default::default()
    };
    let (code, message) = code_of(g.client.create_container(ctx(), &req).await);
    assert_eq!(code, Code::INVALID_ARGUMENT);
    assert!(message.contains("linux.namespaces[3].type"), "{message}");

    let mut no_args = g.spec("noargs", &[]);
    no_args.Process.as_mut().unwrap().Args.clear();
    let req = CreateContainerRequest {
        container_id: "noargs".into(),
        OCI: Some(no_args).into(),
        ..Default::default()
    };
    let (code, message) = code_of(g.client.create_container(ctx(), &req).await);
    assert_eq!(code, Code::INVALID_ARGUMENT);
    assert!(message.contains("process.args"), "{message}");

    let (code, _) = code_of(
        g.client
            .start_container(
                ctx(),
                &StartContainerRequest {
                    container_id: "ghost".into(),
                    ..Default::default()
                },
            )
            .await,
    );
    assert_eq!(code, Code::NOT_FOUND);

    g.health.check(ctx(), &CheckRequest::new()).await.unwrap();
    g.run("after", &["/bin/echo", "still here"]).await;
    assert_eq!(g.read_all("after", "", false).await, b"still here\n");
    assert_eq!(g.wait("after", "").await, 0);
    g.remove("after").await;
    assert!(g.cgroup_dirs("bad").is_empty() && g.cgroup_dirs("noargs").is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn no_output_is_lost() {
    if !can_run() {
        return;
    }
    let g = Guest::start().await;
    for i in 0..100 {
        let id = format!("out{i}");
        g.run(&id, &["/bin/dd", "if=/dev/zero", "bs=65536", "count=1"])
            .await;
        assert_eq!(g.wait(&id, "").await, 0);
        let out = g.read_all(&id, "", false).await;
        assert_eq!(out.len(), 65536, "run {i}");
        assert!(out.iter().all(|b| *b == 0));
        g.remove(&id).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn an_oom_kill_is_reported_by_get_oom_event() {
    if !can_run() {
        return;
    }
    let g = Guest::start().await;
    let limit = 16 * 1024 * 1024;
    let mut spec = g.spec(
        "hog",
        &[
            "/bin/dd",
            "if=/dev/zero",
            "of=/dev/null",
            "bs=64M",
            "count=1",
        ],
    );
    spec.Linux.as_mut().unwrap().Resources = Some(oci::LinuxResources {
        Memory: Some(oci::LinuxMemory {
            Limit: limit,
            Swap: limit,
            ..Default::default()
        })
        .into(),
        ..Default::default()
    })
    .into();
    let req = CreateContainerRequest {
        container_id: "hog".into(),
        OCI: Some(spec).into(),
        ..Default::default()
    };
    g.client.create_container(ctx(), &req).await.unwrap();
    let start = StartContainerRequest {
        container_id: "hog".into(),
        ..Default::default()
    };
    g.client.start_container(ctx(), &start).await.unwrap();
    assert_eq!(g.wait("hog", "").await, 137, "killed by the OOM killer");
    let event = g
        .client
        .get_oom_event(ctx(), &GetOOMEventRequest::new())
        .await
        .unwrap();
    assert_eq!(event.container_id, "hog");
    g.remove("hog").await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_terminal_reports_its_resize() {
    if !can_run() {
        return;
    }
    let g = Guest::start().await;
    let mut spec = g.spec("tty", &["/bin/sh", "-c", "stty size; read x; stty size"]);
    let process = spec.Process.as_mut().unwrap();
    process.Terminal = true;
    process.ConsoleSize = Some(oci::Box {
        Height: 24,
        Width: 80,
        ..Default::default()
    })
    .into();
    let req = CreateContainerRequest {
        container_id: "tty".into(),
        OCI: Some(spec).into(),
        ..Default::default()
    };
    g.client.create_container(ctx(), &req).await.unwrap();
    let start = StartContainerRequest {
        container_id: "tty".into(),
        ..Default::default()
    };
    g.client.start_container(ctx(), &start).await.unwrap();

    let read = ReadStreamRequest {
        container_id: "tty".into(),
        len: 1024,
        ..Default::default()
    };
    let mut first = String::new();
    while !first.contains("24 80") {
        let data = g.client.read_stdout(ctx(), &read).await.unwrap().data;
        assert!(!data.is_empty(), "ended early: {first:?}");
        first.push_str(&String::from_utf8_lossy(&data));
    }
    let resize = TtyWinResizeRequest {
        container_id: "tty".into(),
        row: 40,
        column: 120,
        ..Default::default()
    };
    g.client.tty_win_resize(ctx(), &resize).await.unwrap();
    let write = WriteStreamRequest {
        container_id: "tty".into(),
        data: b"go\n".to_vec(),
        ..Default::default()
    };
    g.client.write_stdin(ctx(), &write).await.unwrap();
    let rest = String::from_utf8(g.read_all("tty", "", false).await).unwrap();
    assert!(rest.contains("40 120"), "{rest:?}");
    assert_eq!(g.wait("tty", "").await, 0);
    assert!(g.read_all("tty", "", true).await.is_empty(), "no stderr");

    let (code, _) = code_of(
        g.client
            .tty_win_resize(
                ctx(),
                &TtyWinResizeRequest {
                    container_id: "tty".into(),
                    exec_id: "nope".into(),
                    ..Default::default()
                },
            )
            .await,
    );
    assert_eq!(code, Code::NOT_FOUND);
    g.remove("tty").await;
}
