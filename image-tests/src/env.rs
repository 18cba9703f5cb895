//! What boot tests need from the machine they run on, found once and explained
//! when missing: the build directory with the kernel and images, root, QEMU, the
//! `hull` binary. Each finder prints `skipped: <reason>` and returns `None` when
//! its part is missing, so a test reads `let Some(k) = env::kernel() else { return };`.
//!
//! Also the checks every VM test ends with: no process of the test left, no mount
//! left under its state directory, the state directory gone.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The environment variable naming the build directory (`build/<arch>`).
pub const BUILD_DIR_ENV: &str = "HULL_BUILD_DIR";

/// Prints why a test is skipped.
pub fn skip(reason: &str) {
    eprintln!("skipped: {reason}");
}

/// The architecture under test: `HULL_ARCH`, or the host's.
pub fn arch() -> String {
    std::env::var("HULL_ARCH").unwrap_or_else(|_| match std::env::consts::ARCH {
        "powerpc64" => "ppc64le".to_string(),
        other => other.to_string(),
    })
}

/// The build directory: `HULL_BUILD_DIR`, or `build/<arch>` in the source tree.
pub fn build_dir() -> PathBuf {
    match std::env::var_os(BUILD_DIR_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../build")
            .join(arch()),
    }
}

/// A file of the build directory, or `None` (and a printed reason).
pub fn artifact(name: &str) -> Option<PathBuf> {
    let path = build_dir().join(name);
    if path.is_file() {
        return Some(path);
    }
    skip(&format!(
        "{} not built (set {BUILD_DIR_ENV} or run `make image`)",
        path.display()
    ));
    None
}

/// The guest kernel.
pub fn kernel() -> Option<PathBuf> {
    artifact("vmlinuz")
}

/// `Some(())` when running as root.
pub fn root() -> Option<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return Some(());
    }
    skip("needs root");
    None
}

/// The QEMU system emulator for the architecture under test.
pub fn qemu() -> Option<PathBuf> {
    let name = match arch().as_str() {
        "ppc64le" => "qemu-system-ppc64".to_string(),
        other => format!("qemu-system-{other}"),
    };
    let found = which(&name);
    if found.is_none() {
        skip(&format!("{name} is not installed (run `make deps`)"));
    }
    found
}

/// A static busybox that runs in `arch` guests: the host's `/bin/busybox` for
/// the host's own architecture, else the one `scripts/deps.sh` fetched from
/// Debian into `$HULL_CACHE/busybox/<arch>/`.
pub fn busybox_for(arch: &str) -> Option<PathBuf> {
    let path = if arch == std::env::consts::ARCH {
        PathBuf::from("/bin/busybox")
    } else {
        let cache = std::env::var_os("HULL_CACHE").unwrap_or_else(|| "/var/cache/hull".into());
        Path::new(&cache).join("busybox").join(arch).join("busybox")
    };
    path.is_file().then_some(path)
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The `hull` binary of the same cargo build as this test (built by
/// `cargo test --workspace`, or `cargo build -p hull-runtime`).
pub fn hull_bin() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    // target/<profile>/deps/<test> -> target/<profile>/hull
    let bin = exe.parent()?.parent()?.join("hull");
    if bin.is_file() {
        return Some(bin);
    }
    skip(&format!(
        "{} not built (run `cargo build -p hull-runtime`)",
        bin.display()
    ));
    None
}

/// Processes whose command line mentions `needle` (other than this one).
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name() != me.as_str())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
        .filter(|cmd| cmd.contains(needle))
        .collect()
}

/// Mount points at or below `dir` in this mount namespace.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

/// Panics unless nothing of a VM run under `state` is left: no process naming
/// it, no mount below it, and (when `removed`) the directory itself gone.
pub fn assert_clean(state: &Path, removed: bool) {
    let needle = state.display().to_string();
    let procs = processes_mentioning(&needle);
    assert!(procs.is_empty(), "processes left behind: {procs:#?}");
    let mounts = mounts_under(state);
    assert!(mounts.is_empty(), "mounts left behind: {mounts:#?}");
    if removed {
        assert!(!state.exists(), "{} was not removed", state.display());
    }
}

/// Writes a newc initrd at `out` holding a static busybox for the architecture
/// under test ([`busybox_for`]) and `init` as `/init`, plus `extra` files
/// (`(path in the image, host file)`). A missing busybox is `NotFound`.
pub fn busybox_initrd(out: &Path, init: &str, extra: &[(&str, &Path)]) -> std::io::Result<()> {
    let arch = arch();
    let busybox = busybox_for(&arch).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no static busybox for {arch} guests"),
        )
    })?;
    let tree = tempfile::tempdir()?;
    let root = tree.path();
    for dir in ["bin", "dev", "proc", "sys", "tmp", "lib", "lib64"] {
        std::fs::create_dir_all(root.join(dir))?;
    }
    std::fs::copy(busybox, root.join("bin/busybox"))?;
    std::os::unix::fs::symlink("busybox", root.join("bin/sh"))?;
    write_executable(&root.join("init"), init)?;
    for (name, host) in extra {
        let dest = root.join(name.trim_start_matches('/'));
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(host, dest)?;
    }
    let list = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd {} && find . | cpio -o -H newc --quiet > {}",
            root.display(),
            out.display()
        ))
        .status()?;
    if !list.success() {
        return Err(std::io::Error::other("cpio failed"));
    }
    Ok(())
}

fn write_executable(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}
