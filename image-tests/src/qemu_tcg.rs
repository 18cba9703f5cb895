//! The kernel boot check's small QEMU launcher: boots a kernel with an initrd on
//! each architecture's usual machine (q35, virt, pseries, s390-ccw-virtio), with
//! the serial console on stdout, and waits for a marker line and for the guest to
//! power off. Also builds the initrd holding a single static test init.
//!
//! Limitations: console output only, no devices besides the console; the full VM
//! launcher (vsock, shares, QMP) is hull-runtime's.

use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How the guest's instructions run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation (host arch only, and only where KVM works).
    Kvm,
    /// QEMU's emulator.
    Tcg,
}

/// One boot to run.
#[derive(Debug, Clone)]
pub struct Boot {
    /// Guest architecture: x86_64, aarch64, ppc64le or s390x.
    pub arch: String,
    /// The qemu-system binary.
    pub qemu: PathBuf,
    /// The kernel image.
    pub kernel: PathBuf,
    /// The initrd.
    pub initrd: PathBuf,
    /// Accelerator.
    pub accel: Accel,
    /// How long to wait for the guest to power off before killing QEMU.
    pub timeout: Duration,
}

/// What a boot showed.
#[derive(Debug)]
pub struct Outcome {
    /// Everything the guest printed on the console.
    pub console: String,
    /// The first line containing the marker, if any.
    pub marker_line: Option<String>,
    /// Time from starting QEMU to the marker line.
    pub to_marker: Option<Duration>,
    /// QEMU's exit status if it ended by itself (the guest powered off or panicked).
    pub exit: Option<ExitStatus>,
}

/// Machine, console and kernel command line per architecture.
pub fn machine(arch: &str) -> io::Result<(Vec<&'static str>, &'static str)> {
    let (args, console): (&[&str], &str) = match arch {
        "x86_64" => (&["-M", "q35"], "console=ttyS0"),
        "aarch64" => (&["-M", "virt", "-cpu", "cortex-a72"], "console=ttyAMA0"),
        "ppc64le" => (&["-M", "pseries"], "console=hvc0"),
        "s390x" => (&["-M", "s390-ccw-virtio"], "console=ttysclp0"),
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unknown arch {other:?} (expected x86_64, aarch64, ppc64le or s390x)"),
            ))
        }
    };
    Ok((args.to_vec(), console))
}

/// Boots and collects the console until QEMU exits or the timeout passes.
pub fn boot(boot: &Boot, marker: &str) -> io::Result<Outcome> {
    let (machine_args, console) = machine(&boot.arch)?;
    let accel = match boot.accel {
        Accel::Kvm => "kvm",
        Accel::Tcg => "tcg",
    };
    let mut command = Command::new(&boot.qemu);
    command
        .args(machine_args)
        .args(["-accel", accel, "-m", "512M", "-smp", "1"])
        .args(["-nodefaults", "-no-user-config", "-display", "none"])
        .args(["-serial", "stdio", "-no-reboot"])
        .arg("-kernel")
        .arg(&boot.kernel)
        .arg("-initrd")
        .arg(&boot.initrd)
        .args(["-append", &format!("{console} panic=-1")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let child = QemuChild(command.spawn()?);
    watch(child, started, boot.timeout, marker)
}

/// Kills QEMU if the boot check stops early, so no emulator is left behind.
struct QemuChild(Child);

impl Drop for QemuChild {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn watch(
    mut child: QemuChild,
    started: Instant,
    timeout: Duration,
    marker: &str,
) -> io::Result<Outcome> {
    let lines = spawn_reader(child.0.stdout.take(), child.0.stderr.take());
    let deadline = started + timeout;
    let mut outcome = Outcome {
        console: String::new(),
        marker_line: None,
        to_marker: None,
        exit: None,
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                if outcome.marker_line.is_none() && line.contains(marker) {
                    outcome.to_marker = Some(started.elapsed());
                    outcome.marker_line = Some(line.trim_end().to_owned());
                }
                outcome.console.push_str(&line);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                outcome.exit = Some(child.0.wait()?);
                return Ok(outcome);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => return Ok(outcome),
        }
    }
}

/// Forwards stdout and stderr lines; the channel closes when both end.
fn spawn_reader(
    stdout: Option<impl io::Read + Send + 'static>,
    stderr: Option<impl io::Read + Send + 'static>,
) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let err_tx = tx.clone();
    if let Some(out) = stdout {
        std::thread::spawn(move || forward(out, &tx));
    }
    if let Some(err) = stderr {
        std::thread::spawn(move || forward(err, &err_tx));
    }
    rx
}

fn forward(stream: impl io::Read, tx: &mpsc::Sender<String>) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    while let Ok(n) = reader.read_until(b'\n', &mut buf) {
        if n == 0 || tx.send(String::from_utf8_lossy(&buf).into_owned()).is_err() {
            return;
        }
        buf.clear();
    }
}

/// The Rust target the test init is built for on `arch`.
pub fn test_init_target(arch: &str) -> Option<&'static str> {
    Some(match arch {
        "x86_64" => "x86_64-unknown-linux-musl",
        "aarch64" => "aarch64-unknown-linux-musl",
        "ppc64le" => "powerpc64le-unknown-linux-gnu",
        "s390x" => "s390x-unknown-linux-gnu",
        _ => return None,
    })
}

/// Builds the static `hull-test-init` for `arch` with cargo, in a target folder of
/// its own next to `target_dir` (so the outer cargo's lock is not needed).
pub fn build_test_init(arch: &str, target_dir: &Path) -> io::Result<PathBuf> {
    let target = test_init_target(arch).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("unknown arch {arch}"))
    })?;
    let dir = target_dir.join("test-init");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "build",
            "--release",
            "-p",
            "hull-image-tests",
            "--bin",
            "hull-test-init",
            "--no-default-features",
        ])
        .args(["--target", target])
        .env("CARGO_TARGET_DIR", &dir)
        .status()?;
    if !status.success() {
        return Err(io::Error::other(format!(
            "cargo build of hull-test-init for {target} failed ({status})"
        )));
    }
    Ok(dir.join(target).join("release/hull-test-init"))
}

/// Writes a newc initrd holding `init` as `/init` plus empty `/dev` and `/proc`.
pub fn single_init_initrd(init: &Path, out: &Path) -> io::Result<()> {
    let tree = tempfile::tempdir()?;
    for dir in ["dev", "proc"] {
        std::fs::create_dir(tree.path().join(dir))?;
    }
    std::fs::copy(init, tree.path().join("init"))?;
    let status = Command::new("sh")
        .arg("-c")
        .arg("find . | LC_ALL=C sort | cpio -o -H newc --quiet > \"$1\"")
        .arg("sh")
        .arg(out)
        .current_dir(tree.path())
        .status()?;
    if !status.success() {
        return Err(io::Error::other("cpio failed (is cpio installed?)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_arch_has_a_machine_and_a_target() {
        for arch in ["x86_64", "aarch64", "ppc64le", "s390x"] {
            let (args, console) = machine(arch).unwrap();
            assert_eq!(args[0], "-M");
            assert!(console.starts_with("console="));
            assert!(test_init_target(arch).is_some());
        }
        let err = machine("riscv64").unwrap_err();
        assert!(err.to_string().contains("riscv64"), "{err}");
    }

    #[test]
    fn initrd_holds_the_init() {
        if Command::new("cpio").arg("--version").output().is_err() {
            eprintln!("skipped: cpio is not installed");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let init = dir.path().join("my-init");
        std::fs::write(&init, b"\x7fELF-not-really").unwrap();
        let out = dir.path().join("initrd");
        single_init_initrd(&init, &out).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        assert!(bytes.starts_with(b"070701"));
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("init\0") && text.contains("ELF-not-really"));
    }
}
