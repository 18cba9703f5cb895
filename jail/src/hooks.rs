//! OCI hooks: each runs with the container's state on stdin, must exit 0, and is
//! killed when its timeout passes.
//!
//! The parent runs prestart/createRuntime, poststart and poststop hooks in the
//! runtime's namespaces; the child runs createContainer and startContainer hooks
//! in the container's. Waiting goes through a [`Reaper`] so the caller's single
//! reaper stays the only one calling `waitpid`.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use oci_spec::runtime::{Hook, Spec};

use crate::reaper::{ExitStatus, Reaper};
use crate::sys;

/// Errors of a hook.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The hook could not be started.
    #[error("{kind} hook {path}: start")]
    Spawn {
        /// The hook list ("createRuntime" ...).
        kind: &'static str,
        /// The hook's binary.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for the hook failed.
    #[error("{kind} hook {path}: wait")]
    Wait {
        /// The hook list.
        kind: &'static str,
        /// The hook's binary.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The hook exited with a non-zero status.
    #[error("{kind} hook {path} exited with status {code}")]
    Failed {
        /// The hook list.
        kind: &'static str,
        /// The hook's binary.
        path: PathBuf,
        /// Exit code (128 + signal when killed).
        code: i32,
    },
    /// The hook ran past its timeout and was killed.
    #[error("{kind} hook {path} timed out after {secs} s")]
    Timeout {
        /// The hook list.
        kind: &'static str,
        /// The hook's binary.
        path: PathBuf,
        /// The timeout.
        secs: i64,
    },
}

/// The container state handed to hooks on stdin.
pub fn state_json(spec: &Spec, id: &str, status: &str, pid: i32, bundle: &Path) -> String {
    let annotations = spec.annotations().clone().unwrap_or_default();
    serde_json::json!({
        "ociVersion": spec.version(),
        "id": id,
        "status": status,
        "pid": pid,
        "bundle": bundle,
        "annotations": annotations,
    })
    .to_string()
}

/// Runs `hooks` in order, stopping at the first failure.
pub fn run_all(
    kind: &'static str,
    hooks: &[Hook],
    state: &str,
    reaper: &dyn Reaper,
) -> Result<(), HookError> {
    for hook in hooks {
        run_one(kind, hook, state, reaper)?;
    }
    Ok(())
}

fn run_one(
    kind: &'static str,
    hook: &Hook,
    state: &str,
    reaper: &dyn Reaper,
) -> Result<(), HookError> {
    let path = hook.path().clone();
    let spawn_err = |source| HookError::Spawn {
        kind,
        path: path.clone(),
        source,
    };
    let wait_err = |source| HookError::Wait {
        kind,
        path: path.clone(),
        source,
    };

    let mut child = command(hook).spawn().map_err(spawn_err)?;
    let pid = child.id() as i32;
    let pidfd = sys::pidfd_open(pid).map_err(wait_err)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its state may close stdin early.
        let _ = stdin.write_all(state.as_bytes());
    }

    let timeout = hook.timeout().map(|s| Duration::from_secs(s as u64));
    let exited = sys::pidfd_wait_exit(&pidfd, timeout).map_err(wait_err)?;
    if !exited {
        // The hook leads its own process group: take its children down with it.
        let _ =
            nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        let _ = sys::pidfd_send_signal(&pidfd, libc::SIGKILL);
    }
    let status = reaper.wait(pid).map_err(wait_err)?;
    if !exited {
        let secs = hook.timeout().unwrap_or_default();
        return Err(HookError::Timeout { kind, path, secs });
    }
    match status {
        ExitStatus::Exited(0) => Ok(()),
        other => Err(HookError::Failed {
            kind,
            path,
            code: other.code(),
        }),
    }
}

fn command(hook: &Hook) -> Command {
    let mut cmd = Command::new(hook.path());
    let args = hook.args().as_deref().unwrap_or_default();
    if let Some(argv0) = args.first() {
        cmd.arg0(argv0);
    }
    cmd.args(args.iter().skip(1));
    cmd.env_clear();
    for kv in hook.env().as_deref().unwrap_or_default() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    cmd.process_group(0);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reaper::WaitpidReaper;

    fn hook(script: &str, timeout: Option<i64>) -> Hook {
        let mut h = Hook::default();
        h.set_path(PathBuf::from("/bin/sh"));
        h.set_args(Some(vec!["sh".into(), "-c".into(), script.into()]));
        h.set_env(Some(vec!["GREETING=hi".into()]));
        h.set_timeout(timeout);
        h
    }

    #[test]
    fn hooks_get_state_and_env_and_run_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let o = out.display();
        let hooks = vec![
            hook(&format!("cat > {o}.state; echo one $GREETING >> {o}"), None),
            hook(&format!("echo two >> {o}"), Some(5)),
        ];
        run_all("createRuntime", &hooks, "{\"id\":\"c1\"}", &WaitpidReaper).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "one hi\ntwo\n");
        assert_eq!(
            std::fs::read_to_string(format!("{o}.state")).unwrap(),
            "{\"id\":\"c1\"}"
        );
    }

    #[test]
    fn a_failing_hook_stops_the_list() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let hooks = vec![
            hook("exit 3", None),
            hook(&format!("touch {}", out.display()), None),
        ];
        let err = run_all("poststart", &hooks, "{}", &WaitpidReaper).unwrap_err();
        assert!(matches!(err, HookError::Failed { code: 3, .. }), "{err}");
        assert!(!out.exists());
    }

    #[test]
    fn a_hook_past_its_timeout_is_killed() {
        let err = run_all(
            "createContainer",
            &[hook("sleep 30", Some(1))],
            "{}",
            &WaitpidReaper,
        )
        .unwrap_err();
        assert!(matches!(err, HookError::Timeout { secs: 1, .. }), "{err}");
    }
}
