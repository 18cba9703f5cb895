//! From the host's request to what the jail runs: the container's spec with its root
//! resolved under the agent's root and its own PID namespace, a systemd
//! `cgroupsPath` mapped to cgroupfs, and exec'd processes inheriting the init
//! process's settings.

use std::path::{Component, Path, PathBuf};

use hull_protocols::agent::{CreateContainerRequest, ExecProcessRequest, StringUser};
use hull_protocols::oci_convert::{process_from_proto, spec_from_proto};
use hull_protocols::oci_spec::runtime::{LinuxNamespaceBuilder, LinuxNamespaceType, Process, Spec};

use super::{cgroup_path, ContainerError};
use crate::config::Config;

/// Checks an id the host chose (a container or exec id): non-empty, one path
/// component, printable.
pub fn check_id(field: &str, id: &str) -> Result<(), ContainerError> {
    let bad = |problem: &str| ContainerError::BadField {
        field: field.to_string(),
        problem: problem.to_string(),
    };
    if id.is_empty() {
        return Err(bad("missing"));
    }
    if id.len() > 256 || id == "." || id == ".." {
        return Err(bad("not a valid id"));
    }
    if id.contains('/') || id.chars().any(char::is_control) {
        return Err(bad("must not contain '/' or control characters"));
    }
    Ok(())
}

/// Refuses the vsock stdio ports of CreateContainer and ExecProcess: the wire
/// contract gives their numbers but not who connects to whom nor how a stream starts
/// and ends, so the agent keeps to the pull model (ReadStdout, WriteStdin).
pub fn refuse_stdio_ports(ports: [u32; 3]) -> Result<(), ContainerError> {
    let names = ["stdin_port", "stdout_port", "stderr_port"];
    match ports.iter().zip(names).find(|(port, _)| **port != 0) {
        Some((_, field)) => Err(ContainerError::Unsupported(field)),
        None => Ok(()),
    }
}

/// The spec the jail gets for a new container: converted, the root resolved under
/// the agent's root, a PID namespace of its own, the cgroup placement cleaned up.
pub fn container_spec(
    config: &Config,
    req: &CreateContainerRequest,
) -> Result<Spec, ContainerError> {
    let proto = req.OCI.as_ref().ok_or_else(|| ContainerError::BadField {
        field: "OCI".into(),
        problem: "missing".into(),
    })?;
    let mut spec = spec_from_proto(proto).map_err(ContainerError::Spec)?;
    resolve_root(config, &mut spec)?;
    own_pid_namespace(&mut spec)?;
    map_systemd_cgroups_path(&mut spec)?;
    Ok(spec)
}

fn resolve_root(config: &Config, spec: &mut Spec) -> Result<(), ContainerError> {
    let bad = |problem: &str| ContainerError::BadField {
        field: "OCI.Root.Path".into(),
        problem: problem.to_string(),
    };
    let mut root = spec.root().clone().ok_or_else(|| bad("missing"))?;
    let path = root.path().clone();
    if !path.is_absolute() {
        return Err(bad("must be an absolute guest path"));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(bad("must not contain '..'"));
    }
    root.set_path(guest_path(config, &path));
    spec.set_root(Some(root));
    Ok(())
}

/// A guest path resolved under the agent's root.
pub fn guest_path(config: &Config, path: &Path) -> PathBuf {
    config.root.join(path.strip_prefix("/").unwrap_or(path))
}

/// The Kata runtimes drop the pid namespace from the spec and expect the agent to give
/// each container its own.
fn own_pid_namespace(spec: &mut Spec) -> Result<(), ContainerError> {
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut namespaces = linux.namespaces().clone().unwrap_or_default();
    if !namespaces
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::Pid)
    {
        let pid = LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Pid)
            .build()
            .map_err(|e| ContainerError::BadField {
                field: "OCI.Linux.Namespaces".into(),
                problem: e.to_string(),
            })?;
        namespaces.push(pid);
    }
    linux.set_namespaces(Some(namespaces));
    spec.set_linux(Some(linux));
    Ok(())
}

/// A systemd `cgroupsPath` becomes the cgroupfs path systemd would use.
fn map_systemd_cgroups_path(spec: &mut Spec) -> Result<(), ContainerError> {
    let Some(mut linux) = spec.linux().clone() else {
        return Ok(());
    };
    let Some(given) = linux
        .cgroups_path()
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned())
    else {
        return Ok(());
    };
    if !cgroup_path::is_systemd(&given) {
        return Ok(());
    }
    let mapped = cgroup_path::systemd_to_cgroupfs(&given)?;
    tracing::debug!(given, mapped, "systemd cgroupsPath mapped");
    linux.set_cgroups_path(Some(mapped.into()));
    spec.set_linux(Some(linux));
    Ok(())
}

/// The process of an ExecProcess request, converted.
pub fn exec_process(req: &ExecProcessRequest) -> Result<Process, ContainerError> {
    let proto = req
        .process
        .as_ref()
        .ok_or_else(|| ContainerError::BadField {
            field: "process".into(),
            problem: "missing".into(),
        })?;
    let process =
        process_from_proto(proto).map_err(|e| ContainerError::Spec(e.within("process")))?;
    check_string_user(req.string_user.as_ref(), &process)?;
    Ok(process)
}

/// `string_user`, when given, must agree with the process's numeric user.
fn check_string_user(user: Option<&StringUser>, process: &Process) -> Result<(), ContainerError> {
    let Some(user) = user else { return Ok(()) };
    if user.uid.is_empty() || user.uid == process.user().uid().to_string() {
        return Ok(());
    }
    Err(ContainerError::Unsupported("string_user"))
}

/// `template` (the init process's settings) with what an exec carries: args, env,
/// cwd (the init's when empty), user, terminal and its size.
pub fn inherit(mut template: Process, exec: &Process) -> Process {
    template.set_args(exec.args().clone());
    template.set_env(exec.env().clone());
    if !exec.cwd().as_os_str().is_empty() {
        template.set_cwd(exec.cwd().clone());
    }
    template.set_user(exec.user().clone());
    template.set_terminal(exec.terminal());
    template.set_console_size(exec.console_size());
    template
}

#[cfg(test)]
mod tests {
    use super::*;
    use hull_protocols::oci;

    fn request(root: &str) -> CreateContainerRequest {
        let spec = oci::Spec {
            Version: "1.1.0".into(),
            Root: Some(oci::Root {
                Path: root.into(),
                ..Default::default()
            })
            .into(),
            Process: Some(oci::Process {
                Args: vec!["/bin/true".into()],
                Cwd: "/".into(),
                ..Default::default()
            })
            .into(),
            ..Default::default()
        };
        CreateContainerRequest {
            container_id: "c1".into(),
            OCI: Some(spec).into(),
            ..Default::default()
        }
    }

    fn config() -> Config {
        Config {
            root: "/tmp/agent-root".into(),
            ..Config::default()
        }
    }

    #[test]
    fn root_goes_under_the_agent_root_and_a_pid_namespace_is_added() {
        let spec = container_spec(&config(), &request("/run/c1/rootfs")).unwrap();
        let root = spec.root().as_ref().unwrap().path();
        assert_eq!(root, Path::new("/tmp/agent-root/run/c1/rootfs"));
        let namespaces = spec.linux().as_ref().unwrap().namespaces().clone().unwrap();
        assert!(namespaces
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::Pid));
    }

    #[test]
    fn bad_roots_and_ids_name_the_field() {
        for root in ["rootfs", "/run/../etc"] {
            let err = container_spec(&config(), &request(root)).unwrap_err();
            assert!(err.to_string().starts_with("OCI.Root.Path: "), "{err}");
        }
        let mut req = request("/r");
        req.OCI = None.into();
        let err = container_spec(&config(), &req).unwrap_err();
        assert_eq!(err.to_string(), "OCI: missing");
        for id in ["", "a/b", ".."] {
            assert!(check_id("container_id", id).is_err(), "{id:?}");
        }
        check_id("container_id", "abc-123").unwrap();
    }

    #[test]
    fn unsupported_fields_are_named() {
        refuse_stdio_ports([0, 0, 0]).unwrap();
        let err = refuse_stdio_ports([0, 1025, 0]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "stdout_port is not supported by the Hull agent"
        );
    }

    #[test]
    fn an_exec_inherits_the_init_settings_but_not_its_command() {
        let mut init = Process::default();
        init.set_no_new_privileges(Some(true));
        init.set_cwd("/work".into());
        let mut exec = Process::default();
        exec.set_args(Some(vec!["ps".into()]));
        exec.set_cwd(PathBuf::new());
        let p = inherit(init, &exec);
        assert_eq!(p.args().as_deref(), Some(&["ps".to_string()][..]));
        assert_eq!(p.no_new_privileges(), Some(true));
        assert_eq!(p.cwd(), Path::new("/work"));
    }
}
