//! Containers joining the sandbox's shared namespaces.
//!
//! Kata runtimes send specs with ipc and uts namespaces that have no path (and no pid
//! namespace): the agent shares ipc and uts across the sandbox, and the pid namespace
//! when CreateSandbox or CreateContainer asked for `sandbox_pidns`. A namespace the
//! spec gives a path for is left alone.
//!
//! A spec hostname other than the sandbox's keeps a uts namespace of the container's
//! own, so the name it asks for is the one it sees (and the sandbox's is untouched).

use std::path::PathBuf;

use hull_protocols::oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::ContainerError;
use crate::sandbox::Sandbox;

/// Where a new container joins the sandbox's namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxJoin {
    /// The shared pid namespace, when the container is to share it.
    pub pid: Option<PathBuf>,
    pub ipc: PathBuf,
    pub uts: PathBuf,
    /// The hostname of the shared uts namespace.
    pub hostname: String,
}

/// What the sandbox offers a new container; `sandbox_pidns` is the request's flag.
pub fn sandbox_join(
    sandbox: &Sandbox,
    sandbox_pidns: bool,
) -> Result<Option<SandboxJoin>, ContainerError> {
    let want_pid = sandbox_pidns || sandbox.shares_pidns();
    let Some(shared) = sandbox.namespaces() else {
        return match want_pid {
            true => Err(ContainerError::NoSandboxNamespaces("sandbox_pidns")),
            false => Ok(None),
        };
    };
    let path = |typ| shared.path(typ).map_err(ContainerError::SandboxNamespaces);
    let pid = match want_pid {
        true => Some(path(LinuxNamespaceType::Pid)?),
        false => None,
    };
    Ok(Some(SandboxJoin {
        pid,
        ipc: path(LinuxNamespaceType::Ipc)?,
        uts: path(LinuxNamespaceType::Uts)?,
        hostname: shared.hostname().to_string(),
    }))
}

/// Points the spec's pathless pid (when shared), ipc and uts namespaces at the
/// sandbox's.
pub fn join(spec: &mut Spec, join: &SandboxJoin) {
    let Some(mut linux) = spec.linux().clone() else {
        return;
    };
    let hostname = spec.hostname().clone().unwrap_or_default();
    let share_uts = hostname.is_empty() || hostname == join.hostname;
    let mut namespaces = linux.namespaces().clone().unwrap_or_default();
    for ns in namespaces.iter_mut().filter(|n| n.path().is_none()) {
        let path = match ns.typ() {
            LinuxNamespaceType::Pid => join.pid.clone(),
            LinuxNamespaceType::Ipc => Some(join.ipc.clone()),
            LinuxNamespaceType::Uts if share_uts => Some(join.uts.clone()),
            _ => None,
        };
        if path.is_some() {
            ns.set_path(path);
        }
    }
    linux.set_namespaces(Some(namespaces));
    spec.set_linux(Some(linux));
    if share_uts {
        // The shared namespace already has this name; setting it again is not the
        // container's business.
        spec.set_hostname(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hull_protocols::oci_spec::runtime::{LinuxBuilder, LinuxNamespaceBuilder};

    fn spec(hostname: &str, types: &[(LinuxNamespaceType, Option<&str>)]) -> Spec {
        let namespaces = types
            .iter()
            .map(|(t, p)| {
                let mut b = LinuxNamespaceBuilder::default().typ(*t);
                if let Some(p) = p {
                    b = b.path(*p);
                }
                b.build().unwrap()
            })
            .collect::<Vec<_>>();
        let mut s = Spec::default();
        s.set_hostname(Some(hostname.to_string()));
        s.set_linux(Some(
            LinuxBuilder::default()
                .namespaces(namespaces)
                .build()
                .unwrap(),
        ));
        s
    }

    fn shared(pid: bool) -> SandboxJoin {
        SandboxJoin {
            pid: pid.then(|| "/proc/9/ns/pid".into()),
            ipc: "/proc/9/ns/ipc".into(),
            uts: "/proc/9/ns/uts".into(),
            hostname: "pod".into(),
        }
    }

    fn paths(s: &Spec) -> Vec<(LinuxNamespaceType, Option<PathBuf>)> {
        let linux = s.linux().as_ref().unwrap();
        let nss = linux.namespaces().as_ref().unwrap();
        nss.iter().map(|n| (n.typ(), n.path().clone())).collect()
    }

    #[test]
    fn pathless_namespaces_join_the_sandbox() {
        use LinuxNamespaceType::*;
        let mut s = spec(
            "pod",
            &[(Mount, None), (Ipc, None), (Uts, None), (Pid, None)],
        );
        join(&mut s, &shared(true));
        assert_eq!(
            paths(&s),
            vec![
                (Mount, None),
                (Ipc, Some("/proc/9/ns/ipc".into())),
                (Uts, Some("/proc/9/ns/uts".into())),
                (Pid, Some("/proc/9/ns/pid".into())),
            ]
        );
        assert_eq!(s.hostname(), &None);
    }

    #[test]
    fn own_pid_without_sandbox_pidns_and_given_paths_kept() {
        use LinuxNamespaceType::*;
        let mut s = spec("", &[(Ipc, Some("/x/ipc")), (Pid, None)]);
        join(&mut s, &shared(false));
        assert_eq!(paths(&s), vec![(Ipc, Some("/x/ipc".into())), (Pid, None)]);
    }

    #[test]
    fn another_hostname_keeps_its_own_uts_namespace() {
        use LinuxNamespaceType::*;
        let mut s = spec("other", &[(Uts, None), (Ipc, None)]);
        join(&mut s, &shared(false));
        assert_eq!(paths(&s)[0], (Uts, None));
        assert_eq!(s.hostname().as_deref(), Some("other"));
    }

    #[test]
    fn sandbox_pidns_without_a_sandbox_is_refused() {
        let err = sandbox_join(&Sandbox::default(), true).unwrap_err();
        assert_eq!(
            err.to_string(),
            "sandbox_pidns needs a sandbox holding shared namespaces (CreateSandbox first)"
        );
        assert_eq!(sandbox_join(&Sandbox::default(), false).unwrap(), None);
    }
}
