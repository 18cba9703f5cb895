//! The virtio-serial channel end to end, forced on hosts that have vsock:
//! `hull check` names the forced channel; `hull run` over the serial port
//! prints a container's output; and while one `hull run` stays attached to a
//! long-running container, `hull exec` from other processes (several at once)
//! and a detached second container work through the supervisor's agent
//! multiplexer. Every test runs with its own state directory and checks that
//! nothing is left: no QEMU or helper naming it, no mount under it, no sandbox.

use std::process::{Child, Command};

use hull_image_tests::cli::{built_image, busybox_rootfs, finish, text, Hull};
use hull_image_tests::env;

/// The channel recorded in sandbox `id`'s VM spec.
fn channel(hull: &Hull, id: &str) -> String {
    let spec = std::fs::read(hull.state().join(id).join("spec.json")).unwrap();
    let spec: serde_json::Value = serde_json::from_slice(&spec).unwrap();
    spec["channel"]["kind"].as_str().unwrap().to_string()
}

fn channel_line(report: &str) -> &str {
    report
        .lines()
        .find(|l| l.contains("agent channel"))
        .unwrap_or_else(|| panic!("no channel line: {report}"))
}

#[test]
fn check_reports_a_forced_serial_channel() {
    let Some(bin) = env::hull_bin() else { return };
    let check = |value: &str| {
        let out = Command::new(&bin)
            .arg("check")
            .env("HULL_CHANNEL", value)
            .output()
            .unwrap();
        text(&out.stdout)
    };
    let report = check("serial");
    let line = channel_line(&report);
    assert!(line.contains(" ok "), "{report}");
    assert!(line.contains("will use virtio-serial port"), "{report}");
    assert!(line.contains("forced by HULL_CHANNEL=serial"), "{report}");

    let report = check("carrier-pigeon");
    let line = channel_line(&report);
    assert!(line.contains(" no "), "{report}");
    assert!(line.contains("HULL_CHANNEL=\"carrier-pigeon\""), "{report}");
}

#[test]
fn run_over_the_serial_channel_prints_hello() {
    let Some(hull) = Hull::new() else { return };
    let Some(image) = built_image() else { return };
    let Some((_rootfs, root)) = busybox_rootfs() else {
        return;
    };
    let out = hull
        .command(&[
            "run", "--rm", "--image", &image, "--rootfs", &root, "--", "echo", "hello",
        ])
        .env("HULL_CHANNEL", "serial")
        .output()
        .expect("hull runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello\n");
    hull.assert_clean();
}

#[test]
fn exec_and_a_detached_container_work_beside_an_attached_run() {
    let Some(hull) = Hull::new() else { return };
    let Some(image) = built_image() else { return };
    let Some((_rootfs, root)) = busybox_rootfs() else {
        return;
    };
    let mut first = hull.spawn(&[
        "run",
        "--rm",
        "--channel",
        "serial",
        "--name",
        "s",
        "--image",
        &image,
        "--rootfs",
        &root,
        "--",
        "sleep",
        "1000",
    ]);
    hull.wait_running("s", &mut first);
    assert_eq!(channel(&hull, "s"), "serial");
    assert!(hull.state().join("s/agent.sock").exists());

    // While `first` stays attached, other processes reach the agent too.
    let cmdline = hull.run(&["exec", "s", "--", "cat", "/proc/1/cmdline"]);
    assert!(cmdline.status.success(), "{}", text(&cmdline.stderr));
    assert_eq!(text(&cmdline.stdout), "sleep\u{0}1000\u{0}");
    several_execs_at_once(&hull);
    a_detached_container_beside(&hull, &root);

    let kill = hull.run(&["kill", "s", "KILL"]);
    assert!(kill.status.success(), "{}", text(&kill.stderr));
    let out = finish(&mut first);
    assert_eq!(out.status.code(), Some(137), "{}", text(&out.stderr));
    hull.assert_clean();
}

/// Execs from separate processes at the same time each get their own output.
fn several_execs_at_once(hull: &Hull) {
    let words = ["one", "two", "three", "four"];
    let mut execs: Vec<Child> = words
        .iter()
        .map(|w| {
            hull.spawn(&[
                "exec",
                "s",
                "--",
                "sh",
                "-c",
                &format!("echo {w}; echo {w}"),
            ])
        })
        .collect();
    for (word, exec) in words.iter().zip(&mut execs) {
        let out = finish(exec);
        assert!(out.status.success(), "{word}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), format!("{word}\n{word}\n"));
    }
}

/// `hull run -d` in the running sandbox returns at once; its container
/// answers exec and goes with `hull rm`.
fn a_detached_container_beside(hull: &Hull, root: &str) {
    let run = hull.run(&[
        "run",
        "-d",
        "--sandbox",
        "s",
        "--name",
        "d",
        "--rootfs",
        root,
        "--",
        "sleep",
        "1000",
    ]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert_eq!(text(&run.stdout), "d\n");
    let exec = hull.run(&["exec", "d", "--", "echo", "beside"]);
    assert!(exec.status.success(), "{}", text(&exec.stderr));
    assert_eq!(text(&exec.stdout), "beside\n");
    let rm = hull.run(&["rm", "-f", "d"]);
    assert!(rm.status.success(), "{}", text(&rm.stderr));
    let exec = hull.run(&["exec", "d", "--", "true"]);
    assert!(!exec.status.success(), "d is gone");
}
