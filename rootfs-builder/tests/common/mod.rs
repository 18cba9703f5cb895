//! Helpers shared by the integration tests: run the `hull-image` binary, find a
//! static stand-in for the agent, list directories.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The epoch the tests build with unless they say otherwise.
pub const EPOCH: &str = "1700000000";

/// Runs `hull-image` with `args` and `SOURCE_DATE_EPOCH=epoch`.
pub fn run_with_epoch(epoch: &str, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hull-image"));
    cmd.env("SOURCE_DATE_EPOCH", epoch).env_remove("HULL_LOG");
    for arg in args {
        cmd.arg(arg.as_ref());
    }
    cmd.output().expect("hull-image runs")
}

/// Runs `hull-image` with the default epoch.
pub fn run(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    run_with_epoch(EPOCH, args)
}

/// Runs `hull-image` and fails the test with its stderr if it fails.
pub fn ok(args: &[&dyn AsRef<std::ffi::OsStr>]) {
    let out = run(args);
    assert!(out.status.success(), "hull-image failed: {}", stderr(&out));
}

/// Runs `hull-image`, expects failure, returns stderr.
pub fn fails(args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    let out = run(args);
    assert!(!out.status.success(), "hull-image unexpectedly succeeded");
    stderr(&out)
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A static x86_64 binary to stand in for the agent: `HULL_TEST_AGENT`, else the
/// static busybox Debian ships. `None` (with the reason printed) when there is none.
pub fn static_agent() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("HULL_TEST_AGENT") {
        return Some(PathBuf::from(path));
    }
    if !cfg!(target_arch = "x86_64") {
        eprintln!("skipped: the stand-in agent is an x86_64 busybox; set HULL_TEST_AGENT");
        return None;
    }
    let busybox = PathBuf::from("/bin/busybox");
    let static_ok =
        hull_image::elf::check_static_executable(&busybox, hull_image::arch::Arch::X86_64);
    match static_ok {
        Ok(()) => Some(busybox),
        Err(e) => {
            eprintln!(
                "skipped: no static stand-in agent (/bin/busybox: {e}); install busybox-static"
            );
            None
        }
    }
}

/// Whether `tool` is on PATH; prints a skip reason when not.
pub fn have_tool(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipped: {tool} is not installed");
    }
    found
}

/// Whether the tests run as root; prints a skip reason when not.
pub fn is_root(why: &str) -> bool {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    let root = uid.trim_ascii() == b"0";
    if !root {
        eprintln!("skipped: {why} needs root");
    }
    root
}

/// Sorted names in `dir`.
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("readable dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// Builds a rootfs with the stand-in agent into `dir/rootfs`.
pub fn rootfs(agent: &Path, dir: &Path) -> PathBuf {
    let out = dir.join("rootfs");
    ok(&[
        &"rootfs", &"--arch", &"x86_64", &"--agent", &agent, &"--out", &out,
    ]);
    out
}
