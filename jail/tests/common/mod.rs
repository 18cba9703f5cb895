//! Shared helpers for the jail's root tests: a busybox rootfs, a base spec, and a
//! per-test cgroup parent that is removed afterwards.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hull_jail::{Container, JailOptions, Output, WaitpidReaper};
use oci_spec::runtime::Spec;

/// Whether the root tests can run here; prints why not.
pub fn can_run() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root (namespaces, mounts, cgroups)");
        return false;
    }
    if !Path::new("/bin/busybox").exists() {
        eprintln!("skipped: needs a static busybox at /bin/busybox");
        return false;
    }
    true
}

/// A bundle directory with a busybox rootfs.
pub struct Bundle {
    pub dir: tempfile::TempDir,
}

impl Bundle {
    pub fn new() -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("hull-jail-test")
            .tempdir()
            .unwrap();
        let root = dir.path().join("rootfs");
        for d in [
            "bin",
            "proc",
            "sys",
            "dev",
            "tmp",
            "etc",
            "opt/hidden",
            "root",
        ] {
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
        std::fs::write(root.join("etc/secret"), "s3cret\n").unwrap();
        std::fs::write(root.join("opt/hidden/file"), "hidden\n").unwrap();
        Bundle { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }
}

/// A spec running `script` with busybox sh, in fresh pid, mount, ipc, uts and net
/// namespaces.
pub fn spec_json(script: &str) -> serde_json::Value {
    serde_json::json!({
        "ociVersion": "1.1.0",
        "root": {"path": "rootfs"},
        "process": {
            "args": ["/bin/sh", "-c", script],
            "cwd": "/",
            "env": ["PATH=/bin", "HOME=/root"],
            "user": {"uid": 0, "gid": 0},
            "capabilities": {
                "bounding": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL", "CAP_SETUID", "CAP_SETGID", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL", "CAP_SETUID", "CAP_SETGID", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL", "CAP_SETUID", "CAP_SETGID", "CAP_NET_BIND_SERVICE"]
            },
            "noNewPrivileges": true
        },
        "hostname": "jailbox",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]}
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}, {"type": "network"}],
            "maskedPaths": ["/proc/kcore", "/proc/keys"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

pub fn spec(v: &serde_json::Value) -> Spec {
    hull_jail::spec::parse_json(&v.to_string()).unwrap()
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Jail options for tests: this crate's child binary, and a cgroup parent of this
/// test's own that [`Jail`]'s drop removes.
pub struct Jail {
    pub opts: JailOptions,
}

impl Jail {
    pub fn new() -> Jail {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let parent = format!("hull-jail-test-{}-{n}", std::process::id());
        Jail {
            opts: JailOptions {
                init_exe: PathBuf::from(env!("CARGO_BIN_EXE_hull-jail-init")),
                init_args: vec![],
                cgroup_parent: parent,
            },
        }
    }

    pub fn create(&self, bundle: &Bundle, id: &str, v: &serde_json::Value) -> Container {
        Container::create(
            id,
            bundle.path(),
            spec(v),
            &self.opts,
            Arc::new(WaitpidReaper),
        )
        .unwrap_or_else(|e| panic!("create {id}: {}", chain(&e)))
    }

    /// Creates, starts and waits for a container, collecting its output.
    pub fn run(&self, bundle: &Bundle, v: &serde_json::Value) -> Output {
        let mut c = self.create(bundle, "run", v);
        c.start().unwrap_or_else(|e| panic!("start: {}", chain(&e)));
        let out = c.init().wait_with_output().unwrap();
        c.destroy()
            .unwrap_or_else(|e| panic!("destroy: {}", chain(&e)));
        out
    }

    /// The cgroup directories of this test's parent that exist.
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        cgroup_roots()
            .into_iter()
            .map(|r| r.join(&self.opts.cgroup_parent))
            .filter(|p| p.exists())
            .collect()
    }
}

impl Drop for Jail {
    fn drop(&mut self) {
        for dir in self.cgroup_dirs() {
            if let Err(e) = std::fs::remove_dir(&dir) {
                eprintln!("leftover cgroup {}: {e}", dir.display());
            }
        }
    }
}

/// The roots of the mounted cgroup hierarchies.
pub fn cgroup_roots() -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .filter(|l| l.contains(" - cgroup ") || l.contains(" - cgroup2 "))
        .filter_map(|l| l.split(' ').nth(4).map(PathBuf::from))
        .collect()
}

pub fn chain(e: &dyn std::error::Error) -> String {
    hull_jail::child::error_chain(e)
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
