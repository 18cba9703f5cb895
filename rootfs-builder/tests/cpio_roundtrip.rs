//! The initrd's cpio archive against the system `cpio`: a tree with files, dirs,
//! symlinks, a hard link, a fifo, a device node and odd modes goes in, `cpio -i`
//! brings it back out, and everything must match.

mod common;

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

use common::{ok, EPOCH};

const OLD_MTIME: i64 = 1000;

/// Makes the test tree; returns whether it holds a device node (root only).
fn make_tree(root: &Path) -> bool {
    let mode =
        |p: &str, m: u32| fs::set_permissions(root.join(p), fs::Permissions::from_mode(m)).unwrap();
    for dir in ["bin", "data", "etc", "tmp"] {
        fs::create_dir(root.join(dir)).unwrap();
    }
    fs::write(root.join("bin/tool"), b"#!tool\n").unwrap();
    mode("bin/tool", 0o4755);
    fs::write(root.join("bin/group"), b"g").unwrap();
    mode("bin/group", 0o2711);
    fs::write(root.join("data/locked"), b"").unwrap();
    mode("data/locked", 0o000);
    let big: Vec<u8> = (0..100_003u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(root.join("data/big"), &big).unwrap();
    fs::hard_link(root.join("data/big"), root.join("data/hard")).unwrap();
    fs::write(root.join("etc/a b"), b"space").unwrap();
    fs::write(root.join("etc/old"), b"old").unwrap();
    let touched = Command::new("touch")
        .args(["-d", &format!("@{OLD_MTIME}")])
        .arg(root.join("etc/old"))
        .status()
        .unwrap();
    assert!(touched.success());
    mode("tmp", 0o1777);
    symlink("bin/tool", root.join("lnk")).unwrap();
    symlink("/nowhere/at/all", root.join("dangle")).unwrap();
    let fifo = Command::new("mkfifo")
        .arg(root.join("pipe"))
        .status()
        .unwrap();
    assert!(fifo.success());
    if !common::is_root("a device node in the cpio round trip") {
        return false;
    }
    fs::create_dir(root.join("dev")).unwrap();
    let mknod = Command::new("mknod")
        .arg(root.join("dev/null"))
        .args(["c", "1", "3"])
        .status();
    mknod.unwrap().success()
}

fn extract(archive: &Path, into: &Path) {
    fs::create_dir(into).unwrap();
    let status = Command::new("cpio")
        .args(["-i", "-d", "-m", "-u", "--quiet", "--no-absolute-filenames"])
        .current_dir(into)
        .stdin(fs::File::open(archive).unwrap())
        .status()
        .unwrap();
    assert!(status.success(), "cpio -i failed");
}

fn listing(archive: &Path) -> String {
    let out = Command::new("cpio")
        .args(["-t", "-v", "--numeric-uid-gid", "--quiet"])
        .stdin(fs::File::open(archive).unwrap())
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "cpio -t failed");
    String::from_utf8(out.stdout).unwrap()
}

/// Compares one source path with its extracted copy.
fn compare(src: &Path, got: &Path, rel: &str, epoch: i64) {
    let (a, b) = (
        fs::symlink_metadata(src).unwrap(),
        fs::symlink_metadata(got).unwrap(),
    );
    assert_eq!(a.file_type(), b.file_type(), "{rel}: type");
    if !a.file_type().is_symlink() {
        assert_eq!(a.mode() & 0o7777, b.mode() & 0o7777, "{rel}: mode");
    }
    let want_mtime = if rel == "etc/old" {
        OLD_MTIME
    } else {
        a.mtime().min(epoch)
    };
    if !a.is_dir() && !a.file_type().is_symlink() {
        // cpio -i sets directory times before filling them and never sets symlink
        // times; check the others.
        assert_eq!(b.mtime(), want_mtime, "{rel}: mtime");
    }
    if a.file_type().is_symlink() {
        assert_eq!(
            fs::read_link(src).unwrap(),
            fs::read_link(got).unwrap(),
            "{rel}: target"
        );
    } else if a.is_file() {
        assert_eq!(
            fs::read(src).unwrap(),
            fs::read(got).unwrap(),
            "{rel}: contents"
        );
    } else if a.file_type().is_char_device_like() {
        assert_eq!(a.rdev(), b.rdev(), "{rel}: rdev");
    }
}

trait CharDev {
    fn is_char_device_like(&self) -> bool;
}

impl CharDev for fs::FileType {
    fn is_char_device_like(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        self.is_char_device() || self.is_block_device()
    }
}

fn walk(root: &Path, rel: &str, out: &mut Vec<String>) {
    for name in common::names(&root.join(rel)) {
        let path = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let is_dir = fs::symlink_metadata(root.join(&path)).unwrap().is_dir();
        out.push(path.clone());
        if is_dir {
            walk(root, &path, out);
        }
    }
}

#[test]
fn round_trip_through_system_cpio() {
    if !common::have_tool("cpio") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    fs::create_dir(&tree).unwrap();
    let has_dev = make_tree(&tree);
    let archive = dir.path().join("initrd.cpio");
    ok(&[
        &"initrd",
        &"--rootfs",
        &tree,
        &"--out",
        &archive,
        &"--compression",
        &"none",
    ]);

    let list = listing(&archive);
    let names: Vec<&str> = list
        .lines()
        .map(|l| l.rsplit_once(' ').map_or(l, |x| x.1))
        .collect();
    let mut expected = Vec::new();
    walk(&tree, "", &mut expected);
    if has_dev {
        expected.push("dev/console".into());
    }
    assert_eq!(list.lines().count(), expected.len(), "{list}");
    for line in list.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!((fields[2], fields[3]), ("0", "0"), "owner of {line}");
    }
    assert!(names.iter().any(|n| n.ends_with("bin/tool")), "{list}");

    let out = dir.path().join("out");
    extract(&archive, &out);
    let epoch: i64 = EPOCH.parse().unwrap();
    let mut paths = Vec::new();
    walk(&tree, "", &mut paths);
    for rel in &paths {
        compare(&tree.join(rel), &out.join(rel), rel, epoch);
    }
    let (big, hard) = (
        fs::metadata(out.join("data/big")).unwrap(),
        fs::metadata(out.join("data/hard")).unwrap(),
    );
    assert_eq!(big.ino(), hard.ino(), "hard link not restored");
    assert_eq!(big.nlink(), 2);
    if has_dev {
        let console = fs::metadata(out.join("dev/console")).unwrap();
        assert_eq!((console.rdev(), console.mode() & 0o7777), (0x0501, 0o600));
    }
}

#[test]
fn compressed_initrds_hold_the_same_archive() {
    if !common::have_tool("zstd") || !common::have_tool("gzip") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    fs::create_dir_all(tree.join("sbin")).unwrap();
    fs::write(tree.join("sbin/init"), vec![7u8; 50_000]).unwrap();
    let plain = dir.path().join("plain");
    ok(&[
        &"initrd",
        &"--rootfs",
        &tree,
        &"--out",
        &plain,
        &"--compression",
        &"none",
    ]);
    let raw = fs::read(&plain).unwrap();
    for (compression, tool) in [("zstd", "zstd"), ("gzip", "gzip")] {
        let out = dir.path().join(compression);
        ok(&[
            &"initrd",
            &"--rootfs",
            &tree,
            &"--out",
            &out,
            &"--compression",
            &compression,
        ]);
        let unpacked = Command::new(tool).arg("-dc").arg(&out).output().unwrap();
        assert!(unpacked.status.success(), "{tool} -dc failed");
        assert_eq!(
            unpacked.stdout, raw,
            "{compression} initrd differs from the plain archive"
        );
        assert!(fs::metadata(&out).unwrap().len() < raw.len() as u64 / 10);
    }
}
