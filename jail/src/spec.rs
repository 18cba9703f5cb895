//! Checking an OCI runtime spec before anything is created.
//!
//! Every field the jail does not honour is refused here with an error naming it, so
//! nothing in a spec is silently ignored. [`parse_json`] turns `config.json` text into
//! a [`Spec`], naming the field when a value is malformed (an unknown namespace type,
//! an invalid capability name, a malformed seccomp profile).

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{Capability, LinuxNamespaceType, LinuxSeccomp, Mount, Process, Spec};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A spec the jail cannot run, with the field at fault.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// A field holds a bad value or is missing.
    #[error("{field}: {problem}")]
    Invalid {
        /// The JSON path of the field ("process.args", "linux.namespaces[2].type").
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A field asks for something the jail does not support.
    #[error("{field}: not supported by hull-jail")]
    Unsupported {
        /// The JSON path of the field.
        field: String,
    },
}

impl SpecError {
    /// The field the error names.
    pub fn field(&self) -> &str {
        match self {
            SpecError::Invalid { field, .. } | SpecError::Unsupported { field } => field,
        }
    }
}

pub(crate) fn invalid(field: impl Into<String>, problem: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        field: field.into(),
        problem: problem.into(),
    }
}

fn unsupported(field: impl Into<String>) -> SpecError {
    SpecError::Unsupported {
        field: field.into(),
    }
}

/// Parses `config.json` text, naming the field when a value is malformed.
pub fn parse_json(text: &str) -> Result<Spec, SpecError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| invalid("config.json", e.to_string()))?;
    check_sections(&value)?;
    serde_json::from_value(value).map_err(|e| invalid("config.json", e.to_string()))
}

/// Decodes each section on its own, so a decoding error names the section and
/// the item in it.
fn check_sections(value: &Value) -> Result<(), SpecError> {
    check::<oci_spec::runtime::Root>(value, "root")?;
    check::<Vec<Mount>>(value, "mounts")?;
    check::<oci_spec::runtime::Hooks>(value, "hooks")?;
    if let Some(process) = value.get("process") {
        check_capabilities(process)?;
        check::<Process>(value, "process")?;
    }
    let Some(linux) = value.get("linux") else {
        return Ok(());
    };
    check_items(linux, "linux.namespaces", "type", |v| {
        let name = v.as_str().unwrap_or_default();
        LinuxNamespaceType::try_from(name)
            .map(|_| ())
            .map_err(|_| format!("unknown namespace type {v}"))
    })?;
    if let Some(seccomp) = linux.get("seccomp") {
        check_seccomp(seccomp)?;
    }
    check::<oci_spec::runtime::LinuxResources>(linux, "linux.resources")?;
    check::<Vec<oci_spec::runtime::LinuxDevice>>(linux, "linux.devices")?;
    check::<oci_spec::runtime::Linux>(value, "linux")
}

fn check<T: DeserializeOwned>(parent: &Value, path: &str) -> Result<(), SpecError> {
    let key = path.rsplit('.').next().unwrap_or(path);
    match parent.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(v) => serde_json::from_value::<T>(v.clone())
            .map(|_| ())
            .map_err(|e| invalid(path, e.to_string())),
    }
}

/// Runs `f` on `key` of every item of the array at `path`, naming the failing item.
fn check_items(
    parent: &Value,
    path: &str,
    key: &str,
    f: impl Fn(&Value) -> Result<(), String>,
) -> Result<(), SpecError> {
    let name = path.rsplit('.').next().unwrap_or(path);
    let Some(items) = parent.get(name).and_then(Value::as_array) else {
        return Ok(());
    };
    for (i, item) in items.iter().enumerate() {
        let v = item.get(key).unwrap_or(&Value::Null);
        f(v).map_err(|p| invalid(format!("{path}[{i}].{key}"), p))?;
    }
    Ok(())
}

fn check_capabilities(process: &Value) -> Result<(), SpecError> {
    let Some(caps) = process.get("capabilities") else {
        return Ok(());
    };
    for set in [
        "bounding",
        "effective",
        "inheritable",
        "permitted",
        "ambient",
    ] {
        let Some(items) = caps.get(set).and_then(Value::as_array) else {
            continue;
        };
        for (i, item) in items.iter().enumerate() {
            if serde_json::from_value::<Capability>(item.clone()).is_err() {
                let field = format!("process.capabilities.{set}[{i}]");
                return Err(invalid(field, format!("invalid capability name {item}")));
            }
        }
    }
    Ok(())
}

fn check_seccomp(seccomp: &Value) -> Result<(), SpecError> {
    if let Some(syscalls) = seccomp.get("syscalls").and_then(Value::as_array) {
        for (i, rule) in syscalls.iter().enumerate() {
            let field = format!("linux.seccomp.syscalls[{i}]");
            serde_json::from_value::<oci_spec::runtime::LinuxSyscall>(rule.clone())
                .map_err(|e| invalid(field, e.to_string()))?;
        }
    }
    serde_json::from_value::<LinuxSeccomp>(seccomp.clone())
        .map(|_| ())
        .map_err(|e| invalid("linux.seccomp", e.to_string()))
}

/// Checks a spec for a new container and resolves its root filesystem.
pub fn validate(spec: &Spec, bundle: &Path) -> Result<PathBuf, SpecError> {
    check_top_level(spec)?;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| invalid("process", "missing"))?;
    validate_process(process, "process")?;
    if let Some(mounts) = spec.mounts() {
        validate_mounts(mounts)?;
    }
    if let Some(linux) = spec.linux() {
        validate_linux(linux)?;
    }
    if let Some(hooks) = spec.hooks() {
        validate_hooks(hooks)?;
    }
    resolve_rootfs(spec, bundle)
}

fn check_top_level(spec: &Spec) -> Result<(), SpecError> {
    if spec.solaris().is_some() {
        return Err(unsupported("solaris"));
    }
    if spec.windows().is_some() {
        return Err(unsupported("windows"));
    }
    if spec.vm().is_some() {
        return Err(unsupported("vm"));
    }
    if spec.zos().is_some() {
        return Err(unsupported("zos"));
    }
    if spec.uid_mappings().is_some() || spec.gid_mappings().is_some() {
        return Err(unsupported("uidMappings"));
    }
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty())
        && !has_new_ns(spec, LinuxNamespaceType::Uts)
    {
        return Err(invalid("hostname", "needs a new uts namespace"));
    }
    Ok(())
}

fn has_new_ns(spec: &Spec, typ: LinuxNamespaceType) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|nss| nss.iter().any(|ns| ns.typ() == typ))
}

/// Checks a process (a container's init or an exec'd one); `field` is its path.
pub fn validate_process(process: &Process, field: &str) -> Result<(), SpecError> {
    let args = process.args().as_deref().unwrap_or_default();
    if args.is_empty() || args[0].is_empty() {
        return Err(invalid(format!("{field}.args"), "missing"));
    }
    if !process.cwd().is_absolute() {
        return Err(invalid(format!("{field}.cwd"), "must be an absolute path"));
    }
    let unsupported_fields = [
        (
            process
                .apparmor_profile()
                .as_deref()
                .is_some_and(|s| !s.is_empty()),
            "apparmorProfile",
        ),
        (
            process
                .selinux_label()
                .as_deref()
                .is_some_and(|s| !s.is_empty()),
            "selinuxLabel",
        ),
        (process.scheduler().is_some(), "scheduler"),
        (process.exec_cpu_affinity().is_some(), "execCPUAffinity"),
        (process.command_line().is_some(), "commandLine"),
        (
            process
                .user()
                .username()
                .as_deref()
                .is_some_and(|s| !s.is_empty()),
            "user.username",
        ),
    ];
    for (set, name) in unsupported_fields {
        if set {
            return Err(unsupported(format!("{field}.{name}")));
        }
    }
    for env in process.env().as_deref().unwrap_or_default() {
        if !env.contains('=') || env.contains('\0') {
            return Err(invalid(
                format!("{field}.env"),
                format!("{env:?} is not KEY=VALUE"),
            ));
        }
    }
    if let Some(adj) = process.oom_score_adj() {
        if !(-1000..=1000).contains(&adj) {
            return Err(invalid(
                format!("{field}.oomScoreAdj"),
                "must be within -1000..=1000",
            ));
        }
    }
    Ok(())
}

fn validate_mounts(mounts: &[Mount]) -> Result<(), SpecError> {
    for (i, m) in mounts.iter().enumerate() {
        if !m.destination().is_absolute() {
            return Err(invalid(
                format!("mounts[{i}].destination"),
                "must be an absolute path",
            ));
        }
        if m.uid_mappings().is_some() || m.gid_mappings().is_some() {
            return Err(unsupported(format!("mounts[{i}].uidMappings")));
        }
        crate::child::mounts::parse_options(m.options().as_deref().unwrap_or_default())
            .map_err(|e| invalid(format!("mounts[{i}].options"), e.to_string()))?;
    }
    Ok(())
}

fn validate_linux(linux: &oci_spec::runtime::Linux) -> Result<(), SpecError> {
    let unsupported_fields = [
        (linux.net_devices().is_some(), "linux.netDevices"),
        (linux.intel_rdt().is_some(), "linux.intelRdt"),
        (linux.memory_policy().is_some(), "linux.memoryPolicy"),
        (linux.time_offsets().is_some(), "linux.timeOffsets"),
        (
            linux
                .mount_label()
                .as_deref()
                .is_some_and(|s| !s.is_empty()),
            "linux.mountLabel",
        ),
    ];
    for (set, name) in unsupported_fields {
        if set {
            return Err(unsupported(name));
        }
    }
    validate_namespaces(linux)?;
    if let Some(res) = linux.resources() {
        crate::cgroups::validate_resources(res)?;
    }
    if let Some(prop) = linux.rootfs_propagation() {
        crate::child::mounts::propagation_flag(prop)
            .ok_or_else(|| invalid("linux.rootfsPropagation", format!("unknown mode {prop:?}")))?;
    }
    if let Some(seccomp) = linux.seccomp() {
        crate::seccomp::compile(seccomp)?;
    }
    if linux
        .personality()
        .as_ref()
        .is_some_and(|p| p.flags().as_ref().is_some_and(|f| !f.is_empty()))
    {
        return Err(unsupported("linux.personality.flags"));
    }
    validate_sysctls(linux)
}

fn validate_sysctls(linux: &oci_spec::runtime::Linux) -> Result<(), SpecError> {
    let own = |t: LinuxNamespaceType| {
        linux
            .namespaces()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|n| n.typ() == t && n.path().is_none())
    };
    let (net, ipc, uts) = (
        own(LinuxNamespaceType::Network),
        own(LinuxNamespaceType::Ipc),
        own(LinuxNamespaceType::Uts),
    );
    for key in linux
        .sysctl()
        .as_ref()
        .map(|m| m.keys())
        .into_iter()
        .flatten()
    {
        if !crate::child::paths::sysctl_is_namespaced(key, net, ipc, uts) {
            let problem = "not namespaced (or its namespace is shared): it would change the host";
            return Err(invalid(format!("linux.sysctl.{key}"), problem));
        }
    }
    Ok(())
}

fn validate_namespaces(linux: &oci_spec::runtime::Linux) -> Result<(), SpecError> {
    let mut seen = HashSet::new();
    for (i, ns) in linux
        .namespaces()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        if !seen.insert(ns.typ()) {
            return Err(invalid(
                format!("linux.namespaces[{i}].type"),
                "listed twice",
            ));
        }
        if ns.typ() == LinuxNamespaceType::Time {
            return Err(unsupported(format!("linux.namespaces[{i}]")));
        }
        if let Some(path) = ns.path() {
            if !path.is_absolute() {
                return Err(invalid(
                    format!("linux.namespaces[{i}].path"),
                    "must be absolute",
                ));
            }
        }
    }
    let user_ns = seen.contains(&LinuxNamespaceType::User);
    let maps = linux.uid_mappings().is_some() || linux.gid_mappings().is_some();
    if maps && !user_ns {
        return Err(invalid("linux.uidMappings", "set without a user namespace"));
    }
    Ok(())
}

fn validate_hooks(hooks: &oci_spec::runtime::Hooks) -> Result<(), SpecError> {
    let lists = [
        ("hooks.prestart", hooks.prestart()),
        ("hooks.createRuntime", hooks.create_runtime()),
        ("hooks.createContainer", hooks.create_container()),
        ("hooks.startContainer", hooks.start_container()),
        ("hooks.poststart", hooks.poststart()),
        ("hooks.poststop", hooks.poststop()),
    ];
    for (name, list) in lists {
        for (i, hook) in list.as_deref().unwrap_or_default().iter().enumerate() {
            if !hook.path().is_absolute() {
                return Err(invalid(
                    format!("{name}[{i}].path"),
                    "must be an absolute path",
                ));
            }
            if hook.timeout().is_some_and(|t| t <= 0) {
                return Err(invalid(format!("{name}[{i}].timeout"), "must be positive"));
            }
        }
    }
    Ok(())
}

/// The rootfs: absolute as given, or relative to the bundle and inside it.
fn resolve_rootfs(spec: &Spec, bundle: &Path) -> Result<PathBuf, SpecError> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| invalid("root", "missing"))?;
    let path = root.path();
    if path.as_os_str().is_empty() {
        return Err(invalid("root.path", "missing"));
    }
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        let mut depth = 0usize;
        for c in path.components() {
            match c {
                Component::Normal(_) => depth += 1,
                Component::ParentDir if depth == 0 => {
                    return Err(invalid(
                        "root.path",
                        format!("{} escapes the bundle", path.display()),
                    ));
                }
                Component::ParentDir => depth -= 1,
                _ => {}
            }
        }
        bundle.join(path)
    };
    let resolved = joined
        .canonicalize()
        .map_err(|e| invalid("root.path", format!("{}: {e}", joined.display())))?;
    if !resolved.is_dir() {
        return Err(invalid(
            "root.path",
            format!("{} is not a directory", resolved.display()),
        ));
    }
    if !path.is_absolute() && !resolved.starts_with(bundle.canonicalize().unwrap_or_default()) {
        return Err(invalid(
            "root.path",
            format!("{} escapes the bundle", path.display()),
        ));
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> serde_json::Value {
        serde_json::json!({
            "ociVersion": "1.1.0",
            "root": {"path": "rootfs"},
            "process": {"args": ["/bin/true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}
        })
    }

    fn bundle() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        dir
    }

    fn error_field(v: serde_json::Value) -> String {
        let b = bundle();
        let spec = parse_json(&v.to_string());
        match spec {
            Err(e) => e.field().to_string(),
            Ok(spec) => validate(&spec, b.path()).unwrap_err().field().to_string(),
        }
    }

    #[test]
    fn minimal_spec_is_accepted() {
        let b = bundle();
        let spec = parse_json(&minimal().to_string()).unwrap();
        let root = validate(&spec, b.path()).unwrap();
        assert_eq!(root, b.path().join("rootfs").canonicalize().unwrap());
    }

    #[test]
    fn missing_args_names_process_args() {
        let mut v = minimal();
        v["process"]["args"] = serde_json::json!([]);
        assert_eq!(error_field(v), "process.args");
    }

    #[test]
    fn rootfs_outside_the_bundle_is_refused() {
        let mut v = minimal();
        v["root"]["path"] = serde_json::json!("../elsewhere");
        assert_eq!(error_field(v), "root.path");
        let mut v = minimal();
        v["root"]["path"] = serde_json::json!("rootfs/../../x");
        assert_eq!(error_field(v), "root.path");
    }

    #[test]
    fn unknown_namespace_type_names_the_item() {
        let mut v = minimal();
        v["linux"]["namespaces"][1]["type"] = serde_json::json!("bogus");
        assert_eq!(error_field(v), "linux.namespaces[1].type");
    }

    #[test]
    fn invalid_capability_names_the_item() {
        let mut v = minimal();
        v["process"]["capabilities"] = serde_json::json!({"bounding": ["CAP_CHOWN", "CAP_NOPE"]});
        assert_eq!(error_field(v), "process.capabilities.bounding[1]");
    }

    #[test]
    fn malformed_seccomp_names_the_rule() {
        let mut v = minimal();
        v["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_DANCE"}]
        });
        assert_eq!(error_field(v), "linux.seccomp.syscalls[0]");
        let mut v = minimal();
        v["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]
        });
        assert_eq!(error_field(v), "linux.seccomp.syscalls[0].args[0].index");
    }

    #[test]
    fn unsupported_fields_are_refused_by_name() {
        let mut v = minimal();
        v["process"]["apparmorProfile"] = serde_json::json!("docker-default");
        assert_eq!(error_field(v), "process.apparmorProfile");
        let mut v = minimal();
        v["linux"]["namespaces"] = serde_json::json!([{"type": "time"}]);
        assert_eq!(error_field(v), "linux.namespaces[0]");
    }

    #[test]
    fn hostname_needs_a_uts_namespace() {
        let mut v = minimal();
        v["hostname"] = serde_json::json!("box");
        assert_eq!(error_field(v), "hostname");
    }
}
