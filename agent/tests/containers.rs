//! The container and process RPCs through the generated client (root only): the agent
//! runs as a normal process in fresh PID, mount and network namespaces (so whatever
//! it starts dies with the test), containers run a static busybox rootfs, and each
//! test's cgroups go under a parent of its own that is removed afterwards.

mod common;

use common::guest::{can_run, namespace, Guest};
use common::{code_of, ctx};
use hull_protocols::agent::*;
use hull_protocols::health::CheckRequest;
use hull_protocols::oci;
use hull_protocols::ttrpc::Code;

#[tokio::test(flavor = "current_thread")]
async fn echo_exit_codes_and_stdio() {
    if !can_run() {
        return;
    }
    let g = Guest::start(&[]).await;

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
    let g = Guest::start(&[]).await;
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
    let g = Guest::start(&[]).await;
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
    let g = Guest::start(&[]).await;

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
    let g = Guest::start(&[]).await;
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
    let g = Guest::start(&[]).await;
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
    let g = Guest::start(&[]).await;
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
