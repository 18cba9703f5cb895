//! The `hull` command end to end, under QEMU (TCG here): `check`, a guest that
//! dies early, `boot` to agent-ready with the built image, `ps`/`rm` from
//! separate processes (a removed guest powers off), and `run` with a busybox
//! root filesystem: output, exit status, stdin, a terminal, `kill`, `exec`,
//! several containers in one sandbox, Ctrl-C and a killed `hull run`. Every
//! test runs with its own state directory and checks that nothing is left: no
//! QEMU, vsock back end or virtiofsd naming it, no mount under it, no sandbox
//! in it. Each boot costs seconds under TCG, so scenarios that can share a
//! sandbox share one.

use std::process::{Command, Output};

use hull_image_tests::cli::{built_image, busybox_rootfs, finish, signal, text, Hull};
use hull_image_tests::env;

#[test]
fn check_reports_kvm_and_vsock_as_they_are() {
    let Some(bin) = env::hull_bin() else { return };
    let out = Command::new(bin).arg("check").output().unwrap();
    let report = text(&out.stdout);
    let kvm_line = report
        .lines()
        .find(|l| l.trim_start().starts_with("kvm"))
        .unwrap();
    let kvm_ok = hull_runtime::kvm::probe().is_ok();
    assert_eq!(kvm_line.contains(" ok "), kvm_ok, "{report}");
    if !kvm_ok {
        assert!(kvm_line.contains("TCG will be used"), "{report}");
    }
    let vsock_line = report
        .lines()
        .find(|l| l.trim_start().starts_with("vhost-vsock"))
        .unwrap();
    let vsock_ok = hull_runtime::host::vhost_vsock_usable();
    assert_eq!(vsock_line.contains(" ok "), vsock_ok, "{report}");
    let channel = report
        .lines()
        .find(|l| l.contains("agent channel"))
        .unwrap();
    assert!(channel.contains("will use"), "{report}");
    if !vsock_ok && hull_runtime::vm::process::find_program("vhost-device-vsock").is_some() {
        assert!(channel.contains("vhost-device-vsock"), "{report}");
    }
}

#[test]
fn a_guest_whose_init_exits_fails_fast_with_the_console() {
    let Some(hull) = Hull::new() else { return };
    let Some(kernel) = env::kernel() else { return };
    if env::arch() != std::env::consts::ARCH {
        // The image made here has no manifest (hull boots it as the host's
        // architecture) and an initrd with the host's busybox.
        return env::skip("a hand-made image of the host's architecture only");
    }
    let image = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&kernel, image.path().join("vmlinuz")).unwrap();
    let init = "#!/bin/sh\necho init-giving-up\nexit 3\n";
    env::busybox_initrd(&image.path().join("initrd.img"), init, &[]).unwrap();
    let out = hull.run(&["boot", "--image", &image.path().display().to_string()]);
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("the guest kernel panicked: Attempted to kill init"),
        "{err}"
    );
    assert!(err.contains("--- console (last lines) ---"), "{err}");
    hull.assert_clean();
}

#[test]
fn a_missing_image_is_named_and_nothing_is_created() {
    let Some(hull) = Hull::new() else { return };
    let out = hull.run(&["boot", "--image", "/nonexistent/image"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("/nonexistent/image has no vmlinuz"));
    hull.assert_clean();
}

#[test]
fn boot_rm_reaches_the_agent_and_cleans_up() {
    let Some(hull) = Hull::new() else { return };
    let Some(image) = built_image() else { return };
    let out = hull.run(&["boot", "--rm", "--image", &image]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("ready"), "{}", text(&out.stdout));
    hull.assert_clean();
}

#[test]
fn a_booted_sandbox_is_listed_and_removed_by_other_processes() {
    let Some(hull) = Hull::new() else { return };
    let Some(image) = built_image() else { return };
    let out = hull.run(&["boot", "--name", "listed", "--image", &image]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let ps = text(&hull.run(&["ps"]).stdout);
    let line = ps
        .lines()
        .find(|l| l.starts_with("listed"))
        .unwrap_or_else(|| panic!("{ps}"));
    assert!(line.contains("running"), "{ps}");
    let rm = hull.run(&["rm", "listed"]);
    assert!(rm.status.success(), "{}", text(&rm.stderr));
    // Asked through the agent, the guest powered itself off (no QMP quit).
    assert_eq!(text(&rm.stdout), "listed: the guest powered off\n");
    hull.assert_clean();
}

#[test]
fn rm_force_removes_a_sandbox_at_once() {
    let Some(hull) = Hull::new() else { return };
    let Some(image) = built_image() else { return };
    let out = hull.run(&["boot", "--name", "forced", "--image", &image]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rm = hull.run(&["rm", "-f", "forced"]);
    assert!(rm.status.success(), "{}", text(&rm.stderr));
    hull.assert_clean();
}

/// Runs `hull run --rm --rootfs <busybox> -- CMD`.
fn run_container(hull: &Hull, image: &str, cmd: &[&str]) -> Option<Output> {
    let (_rootfs, root) = busybox_rootfs()?;
    let mut args = vec!["run", "--rm", "--image", &image, "--rootfs", &root, "--"];
    args.extend_from_slice(cmd);
    Some(hull.run(&args))
}

#[test]
fn run_echo_hello_prints_hello() {
    let Some(hull) = Hull::new() else { return };
    let Some(image) = built_image() else { return };
    let Some(out) = run_container(&hull, &image, &["echo", "hello"]) else {
        return;
    };
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello\n");
    hull.assert_clean();
}

#[test]
fn run_passes_stdin_through_and_exits_with_the_container_status() {
    let Some(hull) = Hull::new() else { return };
    let Some(image) = built_image() else { return };
    let Some((_rootfs, root)) = busybox_rootfs() else {
        return;
    };
    // More than one WriteStdin, and bytes that are not text.
    let input: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let args = [
        "run",
        "--rm",
        "-i",
        "--image",
        &image,
        "--rootfs",
        &root,
        "--",
        "sh",
        "-c",
        "cat; exit 7",
    ];
    let out = hull.run_with_input(&args, &input);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert!(
        out.stdout == input,
        "stdout differs ({} bytes)",
        out.stdout.len()
    );
    hull.assert_clean();
}

#[test]
fn run_refuses_a_missing_rootfs_before_booting() {
    let Some(hull) = Hull::new() else { return };
    let out = hull.run(&[
        "run",
        "--rm",
        "--rootfs",
        "/nonexistent/rootfs",
        "--",
        "true",
    ]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("/nonexistent/rootfs is not a directory"));
    hull.assert_clean();
}

#[test]
fn containers_share_a_sandbox_and_kill_ends_the_run() {
    let Some(hull) = Hull::new() else { return };
    let Some(image) = built_image() else { return };
    let Some((_rootfs, root)) = busybox_rootfs() else {
        return;
    };
    let mut first = hull.spawn(&[
        "run", "--rm", "--name", "k", "--image", &image, "--rootfs", &root, "--", "sleep", "1000",
    ]);
    hull.wait_running("k", &mut first);

    // exec sees the container's pid namespace: the sleep is its pid 1.
    let cmdline = hull.run(&["exec", "k", "--", "cat", "/proc/1/cmdline"]);
    assert!(cmdline.status.success(), "{}", text(&cmdline.stderr));
    assert_eq!(text(&cmdline.stdout), "sleep\u{0}1000\u{0}");
    let ps = hull.run(&["exec", "k", "--", "ps"]);
    assert!(
        text(&ps.stdout).contains("sleep 1000"),
        "{}",
        text(&ps.stdout)
    );

    second_containers_come_and_go(&hull, &root);
    a_terminal_without_one_on_the_host(&hull, &root);
    an_owned_container_goes_with_its_hull_run(&hull, &root);
    a_detached_container_is_killed_and_removed(&hull, &root);

    // Only the first container is left; killing it ends its hull run, which
    // removes the sandbox.
    assert_eq!(hull.containers("k"), vec!["k"]);
    let kill = hull.run(&["kill", "k", "KILL"]);
    assert!(kill.status.success(), "{}", text(&kill.stderr));
    let out = finish(&mut first);
    assert_eq!(out.status.code(), Some(137), "{}", text(&out.stderr));
    hull.assert_clean();
}

/// A second container runs beside the first and exits with its own status;
/// the first keeps running, the second is gone; its id could not be reused
/// while it lived.
fn second_containers_come_and_go(hull: &Hull, root: &str) {
    let taken = hull.run(&[
        "run",
        "--sandbox",
        "k",
        "--name",
        "k",
        "--rm",
        "--rootfs",
        root,
        "--",
        "true",
    ]);
    assert!(!taken.status.success());
    assert!(
        text(&taken.stderr).contains("id k is already in use"),
        "{}",
        text(&taken.stderr)
    );

    let second = hull.run(&[
        "run",
        "--sandbox",
        "k",
        "--name",
        "k2",
        "--rm",
        "--rootfs",
        root,
        "--",
        "sh",
        "-c",
        "echo second; exit 5",
    ]);
    assert_eq!(second.status.code(), Some(5), "{}", text(&second.stderr));
    assert_eq!(text(&second.stdout), "second\n");
    assert_eq!(hull.containers("k"), vec!["k"]);
    let gone = hull.run(&["exec", "k2", "--", "true"]);
    assert!(
        text(&gone.stderr).contains("no container k2"),
        "{}",
        text(&gone.stderr)
    );
    let first = hull.run(&["exec", "k", "--", "cat", "/proc/1/cmdline"]);
    assert!(
        text(&first.stdout).starts_with("sleep"),
        "{}",
        text(&first.stderr)
    );
}

/// `-t` gives the process a terminal although hull's own stdin is none.
fn a_terminal_without_one_on_the_host(hull: &Hull, root: &str) {
    let out = hull.run(&[
        "run",
        "--sandbox",
        "k",
        "--rm",
        "-t",
        "--rootfs",
        root,
        "--",
        "sh",
        "-c",
        "tty; stty size",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines().map(str::trim);
    assert!(
        lines.next().is_some_and(|l| l.starts_with("/dev/pts/")),
        "{stdout:?}"
    );
    let size = lines.next().unwrap_or_default();
    let numbers: Vec<&str> = size.split_whitespace().collect();
    assert_eq!(numbers.len(), 2, "{stdout:?}");
    assert!(
        numbers.iter().all(|n| n.parse::<u32>().is_ok()),
        "{stdout:?}"
    );
}

/// A `--rm` container whose `hull run` is SIGKILLed is removed by the
/// supervisor; the sandbox stays.
fn an_owned_container_goes_with_its_hull_run(hull: &Hull, root: &str) {
    let mut run = hull.spawn(&[
        "run",
        "--sandbox",
        "k",
        "--name",
        "k3",
        "--rm",
        "--rootfs",
        root,
        "--",
        "sleep",
        "1000",
    ]);
    hull.wait_running("k3", &mut run);
    signal(&run, libc::SIGKILL);
    let _ = run.wait();
    hull.wait_for("k3 to be removed", || hull.containers("k") == ["k"]);
    let gone = hull.run(&["exec", "k3", "--", "true"]);
    assert!(
        text(&gone.stderr).contains("no container k3"),
        "{}",
        text(&gone.stderr)
    );
}

/// `-d` starts a container and returns; `kill` and `rm` reach it by its id.
fn a_detached_container_is_killed_and_removed(hull: &Hull, root: &str) {
    let out = hull.run(&[
        "run",
        "--sandbox",
        "k",
        "-d",
        "--name",
        "k4",
        "--rootfs",
        root,
        "--",
        "sleep",
        "1000",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "k4\n");
    let ps = text(&hull.run(&["ps"]).stdout);
    let line = ps.lines().find(|l| l.starts_with("k ")).unwrap_or_default();
    assert!(line.contains(" k,k4 "), "{ps}");
    let kill = hull.run(&["kill", "k4", "KILL"]);
    assert!(kill.status.success(), "{}", text(&kill.stderr));
    let rm = hull.run(&["rm", "k4"]);
    assert!(rm.status.success(), "{}", text(&rm.stderr));
    assert_eq!(text(&rm.stdout), "k4: container removed from sandbox k\n");
}

#[test]
fn ctrl_c_ends_a_run_and_cleans_up() {
    let Some(hull) = Hull::new() else { return };
    let Some(image) = built_image() else { return };
    let Some((_rootfs, root)) = busybox_rootfs() else {
        return;
    };
    let mut run = hull.spawn(&[
        "run", "--rm", "--name", "c", "--image", &image, "--rootfs", &root, "--", "sleep", "1000",
    ]);
    hull.wait_running("c", &mut run);
    signal(&run, libc::SIGINT);
    let out = finish(&mut run);
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    hull.assert_clean();
}

#[test]
fn a_killed_hull_run_is_cleaned_up_by_the_supervisor() {
    let Some(hull) = Hull::new() else { return };
    let Some(image) = built_image() else { return };
    let Some((_rootfs, root)) = busybox_rootfs() else {
        return;
    };
    let mut run = hull.spawn(&[
        "run", "--rm", "--name", "x", "--image", &image, "--rootfs", &root, "--", "sleep", "1000",
    ]);
    hull.wait_running("x", &mut run);
    signal(&run, libc::SIGKILL);
    let _ = run.wait();
    hull.wait_for("the sandbox to go", || hull.sandboxes().is_empty());
    hull.assert_clean();
}

#[test]
fn unknown_ids_are_named() {
    let Some(hull) = Hull::new() else { return };
    let Some((_rootfs, root)) = busybox_rootfs() else {
        return;
    };
    let exec = hull.run(&["exec", "nosuch", "--", "true"]);
    assert!(!exec.status.success());
    assert!(
        text(&exec.stderr).contains("no container nosuch"),
        "{}",
        text(&exec.stderr)
    );
    let kill = hull.run(&["kill", "nosuch"]);
    assert!(
        text(&kill.stderr).contains("no container nosuch"),
        "{}",
        text(&kill.stderr)
    );
    let rm = hull.run(&["rm", "nosuch"]);
    assert!(
        text(&rm.stderr).contains("no sandbox or container nosuch"),
        "{}",
        text(&rm.stderr)
    );
    let run = hull.run(&[
        "run",
        "--sandbox",
        "nosuch",
        "--rootfs",
        &root,
        "--",
        "true",
    ]);
    assert!(!run.status.success());
    assert!(
        text(&run.stderr).contains("no sandbox nosuch"),
        "{}",
        text(&run.stderr)
    );
    let bad = hull.run(&[
        "run",
        "--sandbox",
        "s",
        "--name",
        "a/b",
        "--rootfs",
        &root,
        "--",
        "true",
    ]);
    assert!(
        text(&bad.stderr).contains("invalid id \"a/b\""),
        "{}",
        text(&bad.stderr)
    );
    let image = hull.run(&[
        "run",
        "--sandbox",
        "s",
        "--image",
        "/x",
        "--rootfs",
        &root,
        "--",
        "true",
    ]);
    assert!(
        text(&image.stderr).contains("--image does not apply"),
        "{}",
        text(&image.stderr)
    );
    hull.assert_clean();
}
