//! Bad input gives a clear error naming the problem, and leaves nothing behind: no
//! output at the final path, no temporary next to it, an older output intact.

mod common;

use std::fs;
use std::path::Path;

use common::{fails, names, ok};

fn assert_contains(err: &str, needles: &[&str]) {
    for needle in needles {
        assert!(err.contains(needle), "{needle:?} not in: {err}");
    }
}

#[test]
fn missing_agent() {
    let dir = tempfile::tempdir().unwrap();
    let (agent, out) = (dir.path().join("no-agent"), dir.path().join("rootfs"));
    let err = fails(&[
        &"rootfs", &"--arch", &"x86_64", &"--agent", &agent, &"--out", &out,
    ]);
    assert_contains(&err, &["agent", "no-agent", "cannot read"]);
    assert!(names(dir.path()).is_empty());
}

#[test]
fn dynamic_agent() {
    let ls = Path::new("/bin/ls");
    if !ls.exists() {
        eprintln!("skipped: no /bin/ls to serve as a dynamic binary");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rootfs");
    let arch = if cfg!(target_arch = "x86_64") {
        "x86_64"
    } else {
        "aarch64"
    };
    let err = fails(&[&"rootfs", &"--arch", &arch, &"--agent", &ls, &"--out", &out]);
    assert_contains(&err, &["/bin/ls", "dynamically linked", "interpreter"]);
    assert!(names(dir.path()).is_empty());
}

#[test]
fn wrong_arch_agent() {
    let Some(agent) = common::static_agent() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rootfs");
    let err = fails(&[
        &"rootfs", &"--arch", &"aarch64", &"--agent", &agent, &"--out", &out,
    ]);
    assert_contains(&err, &["built for x86_64", "not for aarch64"]);
    let err = fails(&[
        &"rootfs", &"--arch", &"s390x", &"--agent", &agent, &"--out", &out,
    ]);
    assert_contains(&err, &["endian", "s390x"]);
    assert!(names(dir.path()).is_empty());
}

#[test]
fn unwritable_output_dir() {
    let Some(agent) = common::static_agent() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    fs::write(&file, b"not a directory").unwrap();
    let rootfs = common::rootfs(&agent, dir.path());

    for out in [
        file.join("rootfs"),
        Path::new("/proc/hull-test-rootfs").to_owned(),
    ] {
        let err = fails(&[
            &"rootfs", &"--arch", &"x86_64", &"--agent", &agent, &"--out", &out,
        ]);
        assert_contains(&err, &["cannot create a temporary"]);
        let err = fails(&[&"initrd", &"--rootfs", &rootfs, &"--out", &out]);
        assert_contains(&err, &["cannot create a temporary"]);
        let err = fails(&[&"disk", &"--rootfs", &rootfs, &"--out", &out]);
        assert_contains(&err, &["scratch directory"]);
    }
    assert_eq!(names(dir.path()), ["a-file", "rootfs"]);
}

#[test]
fn missing_extra_file_keeps_the_old_output() {
    let Some(agent) = common::static_agent() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rootfs");
    fs::create_dir(&out).unwrap();
    fs::write(out.join("previous"), b"kept").unwrap();
    let list = dir.path().join("extra.list");
    fs::write(
        &list,
        "# tools\n/nonexistent/hull-tool /usr/bin/tool 0755\n",
    )
    .unwrap();

    let err = fails(&[
        &"rootfs",
        &"--arch",
        &"x86_64",
        &"--agent",
        &agent,
        &"--out",
        &out,
        &"--extra-files",
        &list,
    ]);
    assert_contains(
        &err,
        &["extra.list:2", "/nonexistent/hull-tool", "does not exist"],
    );
    assert_eq!(names(dir.path()), ["extra.list", "rootfs"]);
    assert_eq!(names(&out), ["previous"]);
}

#[test]
fn extras_busybox_and_modules_land_in_the_tree() {
    let Some(agent) = common::static_agent() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("motd"), b"hello").unwrap();
    fs::write(d.join("extra.list"), "motd /etc/motd 0640\n").unwrap();
    fs::create_dir_all(d.join("mods/lib/modules/6.12.0/kernel")).unwrap();
    fs::write(d.join("mods/lib/modules/6.12.0/kernel/x.ko"), b"ko").unwrap();
    let out = d.join("rootfs");
    ok(&[
        &"rootfs",
        &"--arch",
        &"x86_64",
        &"--agent",
        &agent,
        &"--out",
        &out,
        &"--extra-files",
        &d.join("extra.list"),
        &"--with-busybox",
        &agent,
        &"--modules",
        &d.join("mods"),
    ]);
    use std::os::unix::fs::PermissionsExt;
    let motd = fs::metadata(out.join("etc/motd")).unwrap();
    assert_eq!(motd.permissions().mode() & 0o7777, 0o640);
    assert_eq!(
        fs::read(out.join("lib/modules/6.12.0/kernel/x.ko")).unwrap(),
        b"ko"
    );
    assert_eq!(
        fs::read_link(out.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(
        fs::read_link(out.join("init")).unwrap(),
        Path::new("sbin/init")
    );
    assert_eq!(
        fs::read(out.join("sbin/init")).unwrap(),
        fs::read(&agent).unwrap()
    );
    for empty in ["etc/resolv.conf", "etc/hostname"] {
        assert_eq!(fs::metadata(out.join(empty)).unwrap().len(), 0);
    }
    for dir in ["proc", "sys", "dev", "run", "tmp"] {
        assert!(out.join(dir).is_dir(), "{dir}");
    }
}

#[test]
fn missing_rootfs_for_initrd_and_disk() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-rootfs");
    let err = fails(&[
        &"initrd",
        &"--rootfs",
        &missing,
        &"--out",
        &dir.path().join("i.img"),
    ]);
    assert_contains(&err, &["no-rootfs", "not a directory"]);
    let out = dir.path().join("d.img");
    let err = fails(&[
        &"disk",
        &"--rootfs",
        &missing,
        &"--out",
        &out,
        &"--arch",
        &"x86_64",
    ]);
    assert_contains(&err, &["no-rootfs", "not a directory"]);
    assert!(names(dir.path()).is_empty());
}

#[test]
fn failing_disk_build_leaves_nothing() {
    let Some(agent) = common::static_agent() else {
        return;
    };
    if !common::have_tool("mkfs.ext4") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rootfs = common::rootfs(&agent, dir.path());
    fs::write(rootfs.join("etc/bad\"name"), b"x").unwrap();
    let out = dir.path().join("rootfs.img");
    let err = fails(&[&"disk", &"--rootfs", &rootfs, &"--out", &out]);
    assert_contains(&err, &["bad\\\"name", "quote"]);
    assert_eq!(names(dir.path()), ["rootfs"]);

    fs::remove_file(rootfs.join("etc/bad\"name")).unwrap();
    fs::remove_file(rootfs.join("sbin/init")).unwrap();
    let err = fails(&[&"disk", &"--rootfs", &rootfs, &"--out", &out]);
    assert_contains(&err, &["sbin/init", "--arch"]);
    let err = fails(&[
        &"disk",
        &"--rootfs",
        &rootfs,
        &"--out",
        &out,
        &"--arch",
        &"x86_64",
        &"--align",
        &"0",
    ]);
    assert_contains(&err, &["alignment 0 MiB"]);
    assert_eq!(names(dir.path()), ["rootfs"]);
}
