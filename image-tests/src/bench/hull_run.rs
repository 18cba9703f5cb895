//! `hull run --rm ... true` end to end: the `hull` command as a user runs it
//! (boot a sandbox, create and start the container, wait, tear everything
//! down), timed from spawning the command to its exit.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::figure::{summarise_or, Figure, Unit, Value};

const ID: &str = "containers.hull_run";
const LABEL: &str = "`hull run --rm` of `true`, end to end (boot, container, teardown)";

/// Measures `runs` runs of `hull run --rm --image <build_dir> --rootfs <busybox> -- /bin/true`;
/// `no_containers` is why the agent cannot run containers, when the container
/// section found it cannot (then nothing is run).
pub fn measure(
    hull: Option<&Path>,
    build_dir: &Path,
    arch: &str,
    runs: usize,
    no_containers: Option<String>,
) -> Figure {
    let value = match no_containers {
        Some(reason) => Value::NotMeasurable { reason },
        None => value(hull, build_dir, arch, runs),
    };
    Figure::new(ID, "Containers (one sandbox)", LABEL, Unit::Ms, value)
}

fn value(hull: Option<&Path>, build_dir: &Path, arch: &str, runs: usize) -> Value {
    let Some(hull) = hull.filter(|h| h.is_file()) else {
        return Value::Failed {
            reason: "the hull binary is not built (run `make tools`)".into(),
        };
    };
    if let Some(why) = no_run_verb(hull) {
        return Value::NotMeasurable { reason: why };
    }
    if arch != "x86_64" || !Path::new("/bin/busybox").is_file() {
        return Value::NotMeasurable {
            reason: format!("no static busybox root filesystem for {arch} on this host"),
        };
    }
    let rootfs = match busybox_tree() {
        Ok(dir) => dir,
        Err(e) => {
            return Value::Failed {
                reason: format!("cannot build a busybox rootfs: {e}"),
            }
        }
    };
    let mut samples = Vec::new();
    for round in 1..=runs {
        match run_once(hull, build_dir, rootfs.path()) {
            Ok(ms) => {
                eprintln!("bench: hull run {round}: {ms:.0} ms");
                samples.push(ms);
            }
            Err(stderr) => return failure(&stderr),
        }
    }
    summarise_or(
        &samples,
        Value::Failed {
            reason: "no runs".into(),
        },
    )
}

/// Why `hull` cannot run containers yet, if it cannot.
fn no_run_verb(hull: &Path) -> Option<String> {
    let out = Command::new(hull).args(["run", "--help"]).output();
    match out {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "`{} run` is not available: {}",
            hull.display(),
            last_line(&String::from_utf8_lossy(&o.stderr))
        )),
        Err(e) => Some(format!("cannot run {}: {e}", hull.display())),
    }
}

fn run_once(hull: &Path, build_dir: &Path, rootfs: &Path) -> Result<f64, String> {
    let started = Instant::now();
    let out = Command::new(hull)
        .args(["run", "--rm", "--image"])
        .arg(build_dir)
        .arg("--rootfs")
        .arg(rootfs)
        .args(["--", "/bin/true"])
        .output()
        .map_err(|e| e.to_string())?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if out.status.success() {
        return Ok(ms);
    }
    Err(format!(
        "{}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

/// Not measurable when the agent lacks the container RPCs; failed otherwise.
fn failure(stderr: &str) -> Value {
    let reason = format!("hull run failed: {}", last_line(stderr));
    if stderr.contains("UNIMPLEMENTED") {
        Value::NotMeasurable { reason }
    } else {
        Value::Failed { reason }
    }
}

fn last_line(text: &str) -> String {
    text.trim().lines().last().unwrap_or("").to_string()
}

fn busybox_tree() -> std::io::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("hull-bench-rootfs-")
        .tempdir()?;
    let bin: PathBuf = dir.path().join("bin");
    std::fs::create_dir_all(&bin)?;
    for d in ["proc", "dev", "tmp", "etc"] {
        std::fs::create_dir_all(dir.path().join(d))?;
    }
    std::fs::copy("/bin/busybox", bin.join("busybox"))?;
    for applet in ["sh", "true"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet))?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unimplemented_is_not_measurable_other_errors_fail() {
        let v = failure("error: agent call CreateContainer failed: rpc status: UNIMPLEMENTED\n");
        assert!(matches!(v, Value::NotMeasurable { .. }), "{v:?}");
        let v = failure("error: no image found\n");
        assert!(
            matches!(v, Value::Failed { ref reason } if reason.contains("no image found")),
            "{v:?}"
        );
    }

    #[test]
    fn without_container_rpcs_nothing_is_run() {
        let why = Some("the agent answers UNIMPLEMENTED to CreateContainer".to_string());
        let f = measure(None, Path::new("/x"), "x86_64", 1, why);
        assert!(
            matches!(f.value, Value::NotMeasurable { ref reason } if reason.contains("CreateContainer"))
        );
    }

    #[test]
    fn a_missing_binary_fails_the_figure() {
        let f = measure(
            Some(Path::new("/nonexistent/hull")),
            Path::new("/x"),
            "x86_64",
            1,
            None,
        );
        assert!(f.failed());
    }
}
