//! The container scenarios of the host tests (hull-jail directly, and the agent
//! over a Unix socket), run again inside one real guest: the built image booted
//! once under QEMU with a shared directory, each scenario in containers of its
//! own, driven through the agent's RPCs. The guest kernel runs cgroup v2, so
//! this is where the v2 controllers (pids, memory with OOM events, freezer,
//! update, stats) are exercised end to end.
//!
//! One boot serves every scenario (a TCG boot takes seconds); each scenario
//! reports on its own, the run goes on after a failure, and the test fails at
//! the end naming every scenario that did. Then the VM is stopped and nothing
//! of it may be left: no process naming its run directory, no mount below it,
//! the directory gone.
//!
//! Leaks are counted inside the guest by a probe container that joins the
//! guest's root PID namespace and sees the guest's cgroup tree (the agent's
//! open descriptors and mounts, the cgroups, the zombies), and from the
//! agent's own `GetMetrics`.
//!
//! Skipped (with the reason printed) without root, QEMU, a built image or a
//! static busybox for the guest. Nothing here asserts on time.

#![cfg(feature = "bench")]

use std::path::Path;
use std::time::{Duration, Instant};

use hull_image_tests::bench::prometheus::Samples;
use hull_image_tests::env;
use hull_image_tests::guest::calls::{self, Stream};
use hull_image_tests::guest::{self, Guest, GuestError};
use hull_protocols::agent::*;
use hull_protocols::oci;
use hull_protocols::oci_convert::spec_to_proto;
use hull_protocols::oci_spec::runtime::Spec;
use hull_protocols::ttrpc::Code;
use hull_runtime::agent::AgentClient;
use hull_runtime::agent_call;
use hull_runtime::host;
use hull_runtime::image::Image;
use serde_json::{json, Value};

/// Generous: TCG on a loaded two-core machine.
const BOOT_LIMIT: Duration = Duration::from_secs(300);
/// How long to wait for something a running container does (a file it
/// writes, an OOM event).
const EVENT_LIMIT: Duration = Duration::from_secs(60);
/// Container lives in the output and leak scenario.
const CYCLES: usize = 50;
/// Bytes each of them writes.
const OUTPUT_BYTES: usize = 65536;
const SIGKILL: u32 = 9;
/// CAP_CHOWN (bit 0) and CAP_KILL (bit 5).
const CHOWN_AND_KILL: &str = "0000000000000021";

type Outcome = Result<(), String>;

/// Fails the scenario with a message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

#[tokio::test]
async fn container_scenarios_in_one_guest() {
    if env::root().is_none() || env::qemu().is_none() || env::kernel().is_none() {
        return;
    }
    if env::artifact("initrd.img").is_none() {
        return;
    }
    let arch = env::arch();
    let image = Image::open(Some(&env::build_dir())).expect("the built image opens");
    let (accel, _) = host::choose_accel(&arch);
    let booted = Instant::now();
    let guest = match Guest::start(&image, &arch, accel, BOOT_LIMIT, "scenarios").await {
        Ok(guest) => guest,
        Err(e @ GuestError::NoBusybox(_)) => return env::skip(&e.to_string()),
        Err(e) => panic!("the sandbox did not come up: {}", e.describe()),
    };
    eprintln!("sandbox ready after {:?}", booted.elapsed());
    let run_dir = guest.run_dir().to_path_buf();

    let mut s = Scenarios::new(guest).expect("busybox applets");
    let failures = s.run_all().await;

    s.guest.stop().await;
    env::assert_clean(&run_dir, true);
    assert!(
        failures.is_empty(),
        "{} scenario(s) failed in the guest:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// What a container's init left: its status and both streams.
struct Output {
    status: i32,
    stdout: String,
    stderr: String,
}

/// The leak counters: from the probe (inside the guest) and `GetMetrics`.
#[derive(Debug, PartialEq, Eq)]
struct Counts {
    probe: String,
    metrics_fds: Option<u64>,
}

struct Scenarios {
    guest: Guest,
    applets: Vec<String>,
    next: u64,
}

impl Scenarios {
    fn new(guest: Guest) -> Result<Self, GuestError> {
        Ok(Self {
            guest,
            applets: guest::busybox_applets()?,
            next: 0,
        })
    }

    /// Runs every scenario; returns one line per failed one.
    async fn run_all(&mut self) -> Vec<String> {
        let mut failed = Vec::new();
        let mut record = |name: &str, outcome: Outcome, took: Duration| {
            match &outcome {
                Ok(()) => eprintln!("scenario {name}: ok ({took:.1?})"),
                Err(e) => eprintln!("scenario {name}: FAILED: {e}"),
            }
            if let Err(e) = outcome {
                failed.push(format!("{name}: {e}"));
            }
        };
        macro_rules! scenario {
            ($name:literal, $call:expr) => {{
                let started = Instant::now();
                let outcome = $call.await;
                record($name, outcome, started.elapsed());
            }};
        }
        scenario!("exit codes 0, 7, 137", self.exit_codes());
        scenario!("stdout and stderr apart", self.stdout_and_stderr());
        scenario!("stdin echoed by cat", self.stdin_through_cat());
        scenario!("terminal resize", self.terminal_resize());
        scenario!("env, cwd, user and groups", self.env_cwd_user());
        scenario!("hostname", self.hostname());
        scenario!("readonly rootfs", self.readonly_rootfs());
        scenario!("masked paths", self.masked_paths());
        scenario!("dropped capabilities", self.capabilities());
        scenario!("seccomp denies mkdir", self.seccomp());
        scenario!("exec sees the pid namespace", self.exec_pid_namespace());
        scenario!("hooks in order", self.hooks());
        scenario!("cgroup v2: pids limit", self.pids_limit());
        scenario!("cgroup v2: OOM kill and event", self.oom());
        scenario!("cgroup v2: pause and resume", self.pause_resume());
        scenario!("cgroup v2: update and stats", self.update_and_stats());
        scenario!("bad specs refused", self.bad_specs());
        scenario!("no lost output, no leaks", self.output_and_leaks());
        failed
    }

    fn client(&self) -> &AgentClient {
        self.guest.client()
    }

    /// A new container: its root filesystem on the share, and the default
    /// spec (writable root, hostname `guestbox`) running `sh -c script`.
    fn container(&mut self, name: &str, script: &str) -> Result<(String, Value), String> {
        self.next += 1;
        let id = format!("{name}-{}", self.next);
        let applets: Vec<&str> = self.applets.iter().map(String::as_str).collect();
        self.guest
            .prepare_rootfs(&id, &applets)
            .map_err(|e| e.describe())?;
        let spec =
            guest::default_spec(&id, &["/bin/sh", "-c", script]).map_err(|e| e.describe())?;
        let mut v = serde_json::to_value(spec).map_err(|e| e.to_string())?;
        v["root"]["readonly"] = json!(false);
        v["hostname"] = json!("guestbox");
        Ok((id, v))
    }

    async fn create(&self, id: &str, v: &Value) -> Outcome {
        let req = CreateContainerRequest {
            container_id: id.into(),
            exec_id: id.into(),
            OCI: Some(proto(v)?).into(),
            ..Default::default()
        };
        rpc(agent_call!(
            self.client(),
            create_container,
            "CreateContainer",
            &req
        ))
        .map(drop)
    }

    async fn start(&self, id: &str) -> Outcome {
        let req = StartContainerRequest {
            container_id: id.into(),
            ..Default::default()
        };
        rpc(agent_call!(
            self.client(),
            start_container,
            "StartContainer",
            &req
        ))
        .map(drop)
    }

    async fn run(&self, id: &str, v: &Value) -> Outcome {
        self.create(id, v).await?;
        self.start(id).await
    }

    async fn wait(&self, id: &str, exec_id: &str) -> Result<i32, String> {
        guest::wait(self.client(), id, exec_id)
            .await
            .map_err(|e| e.describe())
    }

    async fn read_all(&self, id: &str, exec_id: &str, stream: Stream) -> Result<String, String> {
        let bytes = calls::read_all(self.client(), id, exec_id, stream)
            .await
            .map_err(|e| e.describe())?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn remove(&self, id: &str) -> Outcome {
        guest::remove(self.client(), id)
            .await
            .map_err(|e| e.describe())?;
        self.guest.forget(id);
        Ok(())
    }

    /// Kills container `id`'s init (and so every process in its cgroup),
    /// expects 137, and removes it.
    async fn kill_remove(&self, id: &str) -> Outcome {
        rpc(calls::signal(self.client(), id, "", SIGKILL).await)?;
        let status = self.wait(id, "").await?;
        ensure!(status == 137, "killed init of {id} exited with {status}");
        self.remove(id).await
    }

    /// Output of process `exec_id` once it has ended, and its status.
    async fn output(&self, id: &str, exec_id: &str) -> Result<Output, String> {
        let stdout = self.read_all(id, exec_id, Stream::Stdout).await?;
        let stderr = self.read_all(id, exec_id, Stream::Stderr).await?;
        let status = self.wait(id, exec_id).await?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    /// Runs a container to its end and removes it.
    async fn run_to_end(&self, id: &str, v: &Value) -> Result<Output, String> {
        self.run(id, v).await?;
        let out = self.output(id, "").await?;
        self.remove(id).await?;
        Ok(out)
    }

    /// Runs `sh -c script` in running container `id` to its end.
    async fn exec_to_end(&mut self, id: &str, script: &str) -> Result<Output, String> {
        self.next += 1;
        let exec_id = format!("exec-{}", self.next);
        let process = guest::process(&["/bin/sh", "-c", script]);
        rpc(calls::exec(self.client(), id, &exec_id, process).await)?;
        self.output(id, &exec_id).await
    }

    async fn exit_codes(&mut self) -> Outcome {
        for (script, want) in [("exit 0", 0), ("exit 7", 7)] {
            let (id, v) = self.container("exit", script)?;
            let out = self.run_to_end(&id, &v).await?;
            ensure!(out.status == want, "`{script}` exited {}", out.status);
        }
        let (id, v) = self.container("killed", "exec sleep 1000")?;
        self.run(&id, &v).await?;
        self.kill_remove(&id).await
    }

    async fn stdout_and_stderr(&mut self) -> Outcome {
        let (id, v) = self.container("stdio", "echo to-out; echo to-err >&2")?;
        let out = self.run_to_end(&id, &v).await?;
        ensure!(out.stdout == "to-out\n", "stdout {:?}", out.stdout);
        ensure!(out.stderr == "to-err\n", "stderr {:?}", out.stderr);
        ensure!(out.status == 0, "status {}", out.status);
        Ok(())
    }

    async fn stdin_through_cat(&mut self) -> Outcome {
        let (id, v) = self.container("cat", "exec cat")?;
        self.run(&id, &v).await?;
        let data = b"through stdin of a guest container\n".to_vec();
        let write = WriteStreamRequest {
            container_id: id.clone(),
            data: data.clone(),
            ..Default::default()
        };
        let written = rpc(agent_call!(
            self.client(),
            write_stdin,
            "WriteStdin",
            &write
        ))?;
        ensure!(written.len as usize == data.len(), "wrote {}", written.len);
        let close = CloseStdinRequest {
            container_id: id.clone(),
            ..Default::default()
        };
        rpc(agent_call!(
            self.client(),
            close_stdin,
            "CloseStdin",
            &close
        ))?;
        let out = self.output(&id, "").await?;
        ensure!(out.stdout.as_bytes() == data, "cat gave {:?}", out.stdout);
        ensure!(out.status == 0, "cat exited {}", out.status);
        self.remove(&id).await
    }

    async fn terminal_resize(&mut self) -> Outcome {
        let (id, mut v) = self.container("tty", "stty size; read x; stty size")?;
        v["process"]["terminal"] = json!(true);
        v["process"]["consoleSize"] = json!({"height": 24, "width": 80});
        self.run(&id, &v).await?;
        let mut first = String::new();
        while !first.contains("24 80") {
            let data = rpc(calls::read(self.client(), &id, "", Stream::Stdout).await)?;
            ensure!(!data.is_empty(), "terminal ended early: {first:?}");
            first.push_str(&String::from_utf8_lossy(&data));
        }
        let resize = TtyWinResizeRequest {
            container_id: id.clone(),
            row: 40,
            column: 120,
            ..Default::default()
        };
        rpc(agent_call!(
            self.client(),
            tty_win_resize,
            "TtyWinResize",
            &resize
        ))?;
        let write = WriteStreamRequest {
            container_id: id.clone(),
            data: b"go\n".to_vec(),
            ..Default::default()
        };
        rpc(agent_call!(
            self.client(),
            write_stdin,
            "WriteStdin",
            &write
        ))?;
        let out = self.output(&id, "").await?;
        ensure!(
            out.stdout.contains("40 120"),
            "after resize: {:?}",
            out.stdout
        );
        ensure!(out.status == 0, "status {}", out.status);
        self.remove(&id).await
    }

    async fn env_cwd_user(&mut self) -> Outcome {
        let script = "echo $GREETING; pwd; id -u; id -g; id -G";
        let (id, mut v) = self.container("user", script)?;
        std::fs::create_dir_all(self.guest.host_rootfs(&id).join("tmp/work"))
            .map_err(|e| e.to_string())?;
        v["process"]["env"] = json!(["PATH=/bin", "GREETING=hello"]);
        v["process"]["cwd"] = json!("/tmp/work");
        v["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [2000]});
        let out = self.run_to_end(&id, &v).await?;
        let want = "hello\n/tmp/work\n1000\n1000\n1000 2000\n";
        ensure!(
            out.stdout == want,
            "{:?} (stderr {:?})",
            out.stdout,
            out.stderr
        );
        Ok(())
    }

    async fn hostname(&mut self) -> Outcome {
        let (id, v) = self.container("uts", "hostname")?;
        let out = self.run_to_end(&id, &v).await?;
        ensure!(
            out.stdout == "guestbox\n",
            "{:?} {:?}",
            out.stdout,
            out.stderr
        );
        Ok(())
    }

    async fn readonly_rootfs(&mut self) -> Outcome {
        let (id, mut v) = self.container("ro", "touch /newfile")?;
        v["root"]["readonly"] = json!(true);
        let host_file = self.guest.host_rootfs(&id).join("newfile");
        self.run(&id, &v).await?;
        let out = self.output(&id, "").await?;
        let created = host_file.exists();
        self.remove(&id).await?;
        ensure!(out.status != 0, "touch on a readonly root exited 0");
        ensure!(
            out.stderr.contains("Read-only file system"),
            "stderr {:?}",
            out.stderr
        );
        ensure!(!created, "the file reached the share");
        Ok(())
    }

    async fn masked_paths(&mut self) -> Outcome {
        let script =
            "cat /etc/secret; ls /opt/hidden; echo done; echo x > /proc/sys/kernel/hostname";
        let (id, mut v) = self.container("masked", script)?;
        let root = self.guest.host_rootfs(&id);
        write(&root.join("etc/secret"), "s3cret\n")?;
        write(&root.join("opt/hidden/file"), "hidden\n")?;
        let masked = v["linux"]["maskedPaths"].as_array_mut();
        let masked = masked.ok_or("the default spec has no maskedPaths")?;
        masked.extend([json!("/etc/secret"), json!("/opt/hidden")]);
        let out = self.run_to_end(&id, &v).await?;
        ensure!(out.stdout == "done\n", "stdout {:?}", out.stdout);
        ensure!(
            out.stderr.contains("Read-only file system"),
            "/proc/sys writable: {:?}",
            out.stderr
        );
        Ok(())
    }

    async fn capabilities(&mut self) -> Outcome {
        let script = "grep -E '^Cap(Eff|Prm|Bnd|Inh|Amb)' /proc/self/status";
        let (id, mut v) = self.container("caps", script)?;
        let two = json!(["CAP_CHOWN", "CAP_KILL"]);
        v["process"]["capabilities"] = json!({
            "bounding": two, "effective": two, "permitted": two,
            "inheritable": two, "ambient": two
        });
        let out = self.run_to_end(&id, &v).await?;
        for set in ["CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"] {
            let line = format!("{set}:\t{CHOWN_AND_KILL}");
            ensure!(out.stdout.contains(&line), "{set}: {:?}", out.stdout);
        }
        Ok(())
    }

    async fn seccomp(&mut self) -> Outcome {
        let script = "mkdir /made && echo made";
        let (id, v) = self.container("mkdir", script)?;
        let out = self.run_to_end(&id, &v).await?;
        ensure!(
            out.stdout == "made\n",
            "without a profile: {:?}",
            out.stderr
        );

        let (id, mut v) = self.container("seccomp", script)?;
        v["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64",
                              "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390X"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                          "errnoRet": 1}]
        });
        let made = self.guest.host_rootfs(&id).join("made");
        self.run(&id, &v).await?;
        let out = self.output(&id, "").await?;
        let exists = made.exists();
        self.remove(&id).await?;
        ensure!(
            out.stdout.is_empty(),
            "mkdir went through: {:?}",
            out.stdout
        );
        ensure!(
            out.stderr.contains("Operation not permitted"),
            "stderr {:?}",
            out.stderr
        );
        ensure!(out.status != 0 && !exists, "status {}", out.status);
        Ok(())
    }

    async fn exec_pid_namespace(&mut self) -> Outcome {
        let (id, v) = self.container("exec", "exec sleep 1000")?;
        self.run(&id, &v).await?;
        let out = self
            .exec_to_end(&id, "cat /proc/1/comm; hostname; echo $$")
            .await?;
        let lines: Vec<&str> = out.stdout.lines().collect();
        ensure!(
            lines.len() == 3 && lines[0] == "sleep" && lines[1] == "guestbox",
            "exec saw {:?} (stderr {:?})",
            out.stdout,
            out.stderr
        );
        let pid: i32 = lines[2]
            .parse()
            .map_err(|_| format!("pid {:?}", lines[2]))?;
        ensure!(pid > 1, "the exec'd shell is pid {pid}");
        ensure!(out.status == 0, "exec exited {}", out.status);
        self.kill_remove(&id).await
    }

    /// createRuntime, createContainer, poststart and poststop run in the
    /// agent's namespaces, so they run the rootfs's busybox by its guest path
    /// and log to the rootfs on the share; startContainer runs in the container.
    async fn hooks(&mut self) -> Outcome {
        let (id, mut v) = self.container("hooks", "true")?;
        let root = guest::guest_rootfs(&id);
        let busybox = format!("{root}/bin/busybox");
        let hook = |name: &str| json!({"path": busybox, "args": ["sh", "-c", format!("echo {name} >> {root}/hooklog")]});
        let save_state =
            format!("{busybox} cat > {root}/state.json; echo createRuntime >> {root}/hooklog");
        v["hooks"] = json!({
            "createRuntime": [{"path": busybox, "args": ["sh", "-c", save_state], "timeout": 10}],
            "createContainer": [hook("createContainer")],
            "startContainer": [{"path": "/bin/sh",
                                "args": ["sh", "-c", "echo startContainer >> /hooklog"]}],
            "poststart": [hook("poststart")],
            "poststop": [hook("poststop")]
        });
        let host_root = self.guest.host_rootfs(&id);
        self.run(&id, &v).await?;
        let status = self.wait(&id, "").await?;
        let log_before_remove = read(&host_root.join("hooklog"));
        let state = read(&host_root.join("state.json"));
        guest::remove(self.client(), &id)
            .await
            .map_err(|e| e.describe())?;
        let log = read(&host_root.join("hooklog"));
        self.guest.forget(&id);
        ensure!(status == 0, "init exited {status}");
        let want = "createRuntime\ncreateContainer\nstartContainer\npoststart\npoststop\n";
        ensure!(
            log == want,
            "hook log {log:?} (before removal {log_before_remove:?})"
        );
        let state: Value = serde_json::from_str(&state).map_err(|e| format!("state {e}"))?;
        ensure!(
            state["id"] == id.as_str(),
            "state given to createRuntime: {state}"
        );
        ensure!(state["status"] == "creating", "state: {state}");
        Ok(())
    }

    async fn pids_limit(&mut self) -> Outcome {
        let (id, mut v) = self.container("forkbomb", "exec sleep 1000")?;
        v["linux"]["resources"]["pids"] = json!({"limit": 16});
        self.run(&id, &v).await?;
        let bomb = "i=0; while [ $i -lt 64 ]; do sleep 1000 >/dev/null 2>&1 & i=$((i+1)); done; \
                    echo survived";
        let out = self.exec_to_end(&id, bomb).await?;
        let stats = self.stats(&id).await?;
        self.kill_remove(&id).await?;
        ensure!(out.status != 0, "the fork loop exited 0: {:?}", out.stdout);
        ensure!(out.stderr.contains("fork"), "stderr {:?}", out.stderr);
        ensure!(out.stdout.is_empty(), "stdout {:?}", out.stdout);
        let pids = &stats.pids_stats;
        ensure!(pids.limit == 16, "pids limit in stats: {}", pids.limit);
        ensure!(
            (10..=16).contains(&pids.current),
            "{} processes in a cgroup limited to 16",
            pids.current
        );
        Ok(())
    }

    async fn oom(&mut self) -> Outcome {
        let (id, mut v) =
            self.container("oom", "exec dd if=/dev/zero of=/dev/null bs=64M count=1")?;
        let limit = 16 << 20;
        v["linux"]["resources"]["memory"] = json!({"limit": limit, "swap": limit});
        self.run(&id, &v).await?;
        let status = self.wait(&id, "").await?;
        let event = agent_call!(
            self.client(),
            get_oom_event,
            "GetOOMEvent",
            &GetOOMEventRequest::new(),
            Some(EVENT_LIMIT)
        );
        self.remove(&id).await?;
        ensure!(status == 137, "the memory hog exited {status}");
        let event = rpc(event)?;
        ensure!(
            event.container_id == id,
            "OOM event for {:?}",
            event.container_id
        );
        Ok(())
    }

    /// A counter the container keeps in its root (on the share) stops while
    /// the container is paused and moves again after resume.
    async fn pause_resume(&mut self) -> Outcome {
        let script = "i=0; while :; do i=$((i+1)); echo $i > /count.new; mv /count.new /count; \
                      sleep 0.1; done";
        let (id, v) = self.container("freeze", script)?;
        let count = self.guest.host_rootfs(&id).join("count");
        self.run(&id, &v).await?;
        wait_count(&count, |n| n >= 2).await?;
        let req = PauseContainerRequest {
            container_id: id.clone(),
            ..Default::default()
        };
        rpc(agent_call!(
            self.client(),
            pause_container,
            "PauseContainer",
            &req
        ))?;
        let paused = wait_count(&count, |_| true).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let later = wait_count(&count, |_| true).await?;
        let req = ResumeContainerRequest {
            container_id: id.clone(),
            ..Default::default()
        };
        rpc(agent_call!(
            self.client(),
            resume_container,
            "ResumeContainer",
            &req
        ))?;
        let resumed = wait_count(&count, |n| n > later).await;
        self.kill_remove(&id).await?;
        ensure!(
            paused == later,
            "the counter moved while paused: {paused} -> {later}"
        );
        resumed.map(drop)
    }

    async fn update_and_stats(&mut self) -> Outcome {
        let (id, mut v) = self.container("update", "exec sleep 1000")?;
        v["linux"]["resources"]["pids"] = json!({"limit": 100});
        v["linux"]["resources"]["memory"] = json!({"limit": 64 << 20});
        self.run(&id, &v).await?;
        let resources = json!({"pids": {"limit": 50}, "cpu": {"shares": 512}});
        let resources = serde_json::from_value(resources).map_err(|e| e.to_string())?;
        let resources = hull_protocols::oci_convert::resources_to_proto(&resources)
            .map_err(|e| e.to_string())?;
        let req = UpdateContainerRequest {
            container_id: id.clone(),
            resources: Some(resources).into(),
            ..Default::default()
        };
        rpc(agent_call!(
            self.client(),
            update_container,
            "UpdateContainer",
            &req
        ))?;
        let cgroup = self.exec_to_end(&id, "cat /proc/self/cgroup").await?;
        let stats = self.stats(&id).await?;
        self.kill_remove(&id).await?;
        ensure!(
            cgroup.stdout.starts_with("0::/") && cgroup.stdout.lines().count() == 1,
            "not a cgroup v2 member: {:?}",
            cgroup.stdout
        );
        let (pids, memory) = (&stats.pids_stats, &stats.memory_stats.usage);
        ensure!(pids.limit == 50, "pids limit after update: {}", pids.limit);
        ensure!(pids.current == 1, "pids: {}", pids.current);
        ensure!(memory.limit == 64 << 20, "memory limit {}", memory.limit);
        ensure!(memory.usage > 0, "memory usage 0");
        let cpu = &stats.cpu_stats.cpu_usage;
        ensure!(cpu.total_usage > 0, "cpu usage 0: {cpu:?}");
        eprintln!("  v2 stats: pids {pids:?}, memory {memory:?}, cpu {cpu:?}");
        Ok(())
    }

    async fn stats(&self, id: &str) -> Result<CgroupStats, String> {
        let req = StatsContainerRequest {
            container_id: id.into(),
            ..Default::default()
        };
        let reply = rpc(agent_call!(
            self.client(),
            stats_container,
            "StatsContainer",
            &req
        ))?;
        Ok(reply.cgroup_stats.unwrap_or_default())
    }

    async fn bad_specs(&mut self) -> Outcome {
        let (id, v) = self.container("bad", "true")?;
        let base = proto(&v)?;
        let mut cases: Vec<(&str, oci::Spec, String)> = Vec::new();

        let mut s = base.clone();
        let index = s.Linux.Namespaces.len();
        s.Linux
            .mut_or_insert_default()
            .Namespaces
            .push(oci::LinuxNamespace {
                Type: "bogus".into(),
                ..Default::default()
            });
        cases.push(("unknown namespace", s, format!("namespaces[{index}].type")));

        let mut s = base.clone();
        s.Process.mut_or_insert_default().Args.clear();
        cases.push(("no args", s, "process.args".into()));

        let mut s = base.clone();
        s.Root.mut_or_insert_default().Path = "rootfs".into();
        cases.push(("relative root", s, "Root.Path".into()));

        let mut s = base.clone();
        let caps = s
            .Process
            .mut_or_insert_default()
            .Capabilities
            .mut_or_insert_default();
        caps.Bounding.push("CAP_BOGUS".into());
        cases.push(("bad capability", s, "capabilities".into()));

        let mut s = base.clone();
        s.Linux.mut_or_insert_default().Seccomp = Some(oci::LinuxSeccomp {
            DefaultAction: "SCMP_ACT_BOGUS".into(),
            ..Default::default()
        })
        .into();
        cases.push(("malformed seccomp", s, "seccomp".into()));

        for (what, spec, field) in cases {
            self.refused(&id, what, spec, &field).await?;
        }
        let check = self.client().check(hull_runtime::agent::CALL_TIMEOUT).await;
        check.map_err(|e| format!("health check after bad specs: {e}"))?;
        self.guest.forget(&id);
        let (id, v) = self.container("after", "echo still here")?;
        let out = self.run_to_end(&id, &v).await?;
        ensure!(
            out.stdout == "still here\n",
            "after bad specs: {:?}",
            out.stdout
        );
        Ok(())
    }

    async fn refused(&self, id: &str, what: &str, spec: oci::Spec, field: &str) -> Outcome {
        let req = CreateContainerRequest {
            container_id: id.into(),
            exec_id: id.into(),
            OCI: Some(spec).into(),
            ..Default::default()
        };
        let answer = agent_call!(self.client(), create_container, "CreateContainer", &req);
        let err = match answer.map_err(GuestError::from) {
            Ok(_) => return Err(format!("{what}: accepted")),
            Err(e) => e,
        };
        let Some((_, status)) = err.rpc_status() else {
            return Err(format!("{what}: {}", err.describe()));
        };
        ensure!(
            status.code.value() == Code::INVALID_ARGUMENT as i32,
            "{what}: {}",
            err.describe()
        );
        ensure!(
            status.message.contains(field),
            "{what}: the message does not name {field}: {:?}",
            status.message
        );
        Ok(())
    }

    /// `CYCLES` container lives that each write `OUTPUT_BYTES` and exit at
    /// once; every byte is read, and nothing is left in the guest afterwards.
    async fn output_and_leaks(&mut self) -> Outcome {
        let before = self.counts().await?;
        for run in 0..CYCLES {
            let script = format!("exec dd if=/dev/zero bs={OUTPUT_BYTES} count=1 2>/dev/null");
            let (id, v) = self.container("out", &script)?;
            let out = self.run_to_end(&id, &v).await?;
            ensure!(out.status == 0, "run {run}: status {}", out.status);
            ensure!(
                out.stdout.len() == OUTPUT_BYTES && out.stdout.bytes().all(|b| b == 0),
                "run {run}: {} of {OUTPUT_BYTES} bytes",
                out.stdout.len()
            );
        }
        let after = self.counts().await?;
        eprintln!("  before {before:?}\n  after  {after:?}");
        ensure!(before == after, "before {before:?}, after {after:?}");
        ensure!(
            before.probe.contains("zombies 0\n"),
            "zombies: {}",
            before.probe
        );
        Ok(())
    }

    async fn counts(&mut self) -> Result<Counts, String> {
        let metrics = rpc(agent_call!(
            self.client(),
            get_metrics,
            "GetMetrics",
            &GetMetricsRequest::new()
        ))?;
        let metrics_fds = Samples::parse(&metrics.metrics)
            .get("hull_agent_open_fds")
            .map(|f| f as u64);
        Ok(Counts {
            probe: self.probe().await?,
            metrics_fds,
        })
    }

    /// Runs the probe container: in the guest's root PID namespace, with the
    /// guest's cgroup tree bound at /cg, reporting what a leak would grow.
    async fn probe(&mut self) -> Result<String, String> {
        let script = "echo fds $(ls /proc/1/fd | wc -l); \
                      echo mounts $(wc -l < /proc/1/mountinfo); \
                      echo cgroups $(find /cg -type d | wc -l); \
                      echo zombies $(grep -l '^State:.Z' /proc/[0-9]*/status 2>/dev/null | wc -l); \
                      echo cgroup2 $(grep -c ' /sys/fs/cgroup .* cgroup2 ' /proc/1/mountinfo)";
        let (id, mut v) = self.container("probe", script)?;
        std::fs::create_dir_all(self.guest.host_rootfs(&id).join("cg"))
            .map_err(|e| e.to_string())?;
        let namespaces = v["linux"]["namespaces"]
            .as_array_mut()
            .ok_or("the default spec has no namespaces")?;
        namespaces.retain(|n| n["type"] != "pid");
        namespaces.push(json!({"type": "pid", "path": "/proc/1/ns/pid"}));
        let mounts = v["mounts"].as_array_mut().ok_or("no mounts")?;
        mounts.push(
            json!({"destination": "/cg", "type": "bind", "source": "/sys/fs/cgroup",
                           "options": ["rbind", "ro"]}),
        );
        let all = json!(["CAP_SYS_PTRACE", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH"]);
        v["process"]["capabilities"] = json!({"bounding": all, "effective": all, "permitted": all});
        let out = self.run_to_end(&id, &v).await?;
        ensure!(out.status == 0, "probe: {:?} {:?}", out.stdout, out.stderr);
        ensure!(
            out.stdout.contains("cgroup2 1\n"),
            "the guest has no cgroup2 at /sys/fs/cgroup: {:?}",
            out.stdout
        );
        Ok(out.stdout)
    }
}

/// The protocol's form of an OCI spec given as JSON.
fn proto(v: &Value) -> Result<oci::Spec, String> {
    let spec: Spec = serde_json::from_value(v.clone()).map_err(|e| format!("spec: {e}"))?;
    spec_to_proto(&spec).map_err(|e| format!("spec: {e}"))
}

/// An RPC's result with the error described.
fn rpc<T, E: Into<GuestError>>(result: Result<T, E>) -> Result<T, String> {
    result.map_err(|e| e.into().describe())
}

fn write(path: &Path, text: &str) -> Outcome {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Waits until the counter file holds a number that satisfies `done`.
async fn wait_count(path: &Path, done: impl Fn(u64) -> bool) -> Result<u64, String> {
    let deadline = Instant::now() + EVENT_LIMIT;
    loop {
        let text = read(path);
        if let Ok(n) = text.trim().parse::<u64>() {
            if done(n) {
                return Ok(n);
            }
        }
        if Instant::now() >= deadline {
            return Err(format!("the counter stayed at {text:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
