//! Two builds from the same inputs give identical bytes, whatever the source files'
//! times; another SOURCE_DATE_EPOCH gives another initrd.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{run_with_epoch, EPOCH};

/// Builds rootfs, initrd, three disk variants and the manifest into `dir`.
fn build_all(agent: &Path, dir: &Path, epoch: &str, touch_to: Option<&str>) -> PathBuf {
    let step = |args: &[&dyn AsRef<std::ffi::OsStr>]| {
        let out = run_with_epoch(epoch, args);
        assert!(out.status.success(), "{}", common::stderr(&out));
    };
    fs::create_dir_all(dir).unwrap();
    let rootfs = dir.join("rootfs");
    step(&[
        &"rootfs", &"--arch", &"x86_64", &"--agent", &agent, &"--out", &rootfs,
    ]);
    if let Some(time) = touch_to {
        // Different (later) source times must not change anything after clamping.
        let status = Command::new("find")
            .arg(&rootfs)
            .args(["-exec", "touch", "-h", "-d", time, "{}", "+"])
            .status()
            .unwrap();
        assert!(status.success());
    }
    fs::copy(agent, dir.join("hull-agent")).unwrap();
    step(&[
        &"initrd",
        &"--rootfs",
        &rootfs,
        &"--out",
        &dir.join("initrd.img"),
    ]);
    step(&[
        &"disk",
        &"--rootfs",
        &rootfs,
        &"--out",
        &dir.join("rootfs.img"),
    ]);
    step(&[
        &"disk",
        &"--rootfs",
        &rootfs,
        &"--out",
        &dir.join("erofs.img"),
        &"--fs",
        &"erofs",
    ]);
    step(&[
        &"disk",
        &"--rootfs",
        &rootfs,
        &"--out",
        &dir.join("verity.img"),
        &"--verity",
    ]);
    step(&[&"manifest", &"--dir", &dir, &"--arch", &"x86_64"]);
    dir.to_owned()
}

fn have_disk_tools() -> bool {
    [
        "mkfs.ext4",
        "debugfs",
        "dumpe2fs",
        "mkfs.erofs",
        "veritysetup",
    ]
    .iter()
    .all(|t| common::have_tool(t))
}

#[test]
fn same_inputs_same_bytes() {
    let Some(agent) = common::static_agent() else {
        return;
    };
    if !have_disk_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = build_all(&agent, &dir.path().join("a"), EPOCH, None);
    let b = build_all(
        &agent,
        &dir.path().join("b"),
        EPOCH,
        Some("2030-01-02 03:04:05"),
    );
    for name in [
        "initrd.img",
        "rootfs.img",
        "rootfs.img.json",
        "erofs.img",
        "verity.img",
        "verity.img.json",
        "manifest.json",
    ] {
        let (x, y) = (
            fs::read(a.join(name)).unwrap(),
            fs::read(b.join(name)).unwrap(),
        );
        assert!(x == y, "{name} differs between two builds");
    }
}

#[test]
fn other_epoch_other_initrd() {
    let Some(agent) = common::static_agent() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rootfs = common::rootfs(&agent, dir.path());
    let mut images = Vec::new();
    for epoch in [EPOCH, "1700000001"] {
        let out = dir.path().join(format!("initrd-{epoch}"));
        let run = run_with_epoch(epoch, &[&"initrd", &"--rootfs", &rootfs, &"--out", &out]);
        assert!(run.status.success(), "{}", common::stderr(&run));
        images.push(fs::read(&out).unwrap());
    }
    assert_ne!(images[0], images[1]);
}

#[test]
fn malformed_epoch_is_refused() {
    let Some(agent) = common::static_agent() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rootfs = common::rootfs(&agent, dir.path());
    let out = dir.path().join("initrd.img");
    let run = run_with_epoch(
        "last tuesday",
        &[&"initrd", &"--rootfs", &rootfs, &"--out", &out],
    );
    assert!(!run.status.success());
    assert!(
        common::stderr(&run).contains("SOURCE_DATE_EPOCH"),
        "{}",
        common::stderr(&run)
    );
    assert!(!out.exists());
}
