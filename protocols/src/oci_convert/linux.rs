//! The Linux section: ID mappings, namespaces, devices, seccomp and the rest.

use oci_spec::runtime::{
    Arch, Linux, LinuxDevice, LinuxDeviceType, LinuxIdMapping, LinuxIdMappingBuilder,
    LinuxIntelRdt, LinuxNamespace, LinuxNamespaceType, LinuxSeccomp, LinuxSeccompAction,
    LinuxSeccompArg, LinuxSeccompArgBuilder, LinuxSeccompFilterFlag, LinuxSeccompOperator,
    LinuxSyscall,
};

use super::{
    list_from_proto, list_to_proto, non_empty, non_empty_vec, non_zero, opt_path_to_string,
    parse_name, path_to_string, resources, OciConvertError, Result, Within,
};
use crate::oci;
use crate::oci::linux_syscall::ErrnoRet;

pub(super) fn linux_from_proto(linux: &oci::Linux) -> Result<Linux> {
    let mut out = Linux::default();
    out.set_uid_mappings(list_from_proto(
        &linux.UIDMappings,
        "uidMappings",
        id_mapping,
    )?);
    out.set_gid_mappings(list_from_proto(
        &linux.GIDMappings,
        "gidMappings",
        id_mapping,
    )?);
    out.set_sysctl((!linux.Sysctl.is_empty()).then(|| linux.Sysctl.clone()));
    out.set_resources(
        linux
            .Resources
            .as_ref()
            .map(resources::resources_from_proto)
            .transpose()
            .within("resources")?,
    );
    out.set_cgroups_path(non_empty(&linux.CgroupsPath).map(Into::into));
    out.set_namespaces(list_from_proto(
        &linux.Namespaces,
        "namespaces",
        namespace_from_proto,
    )?);
    out.set_devices(list_from_proto(
        &linux.Devices,
        "devices",
        device_from_proto,
    )?);
    out.set_seccomp(
        linux
            .Seccomp
            .as_ref()
            .map(seccomp_from_proto)
            .transpose()
            .within("seccomp")?,
    );
    out.set_rootfs_propagation(non_empty(&linux.RootfsPropagation));
    out.set_masked_paths(non_empty_vec(&linux.MaskedPaths));
    out.set_readonly_paths(non_empty_vec(&linux.ReadonlyPaths));
    out.set_mount_label(non_empty(&linux.MountLabel));
    out.set_intel_rdt(linux.IntelRdt.as_ref().map(intel_rdt_from_proto));
    out.set_net_devices(None);
    out.set_memory_policy(None);
    out.set_personality(None);
    out.set_time_offsets(None);
    Ok(out)
}

pub(super) fn linux_to_proto(linux: &Linux) -> Result<oci::Linux> {
    Ok(oci::Linux {
        UIDMappings: list_to_proto(linux.uid_mappings(), "uidMappings", |m| {
            Ok(id_mapping_to_proto(m))
        })?,
        GIDMappings: list_to_proto(linux.gid_mappings(), "gidMappings", |m| {
            Ok(id_mapping_to_proto(m))
        })?,
        Sysctl: linux.sysctl().clone().unwrap_or_default(),
        Resources: linux
            .resources()
            .as_ref()
            .map(resources::resources_to_proto)
            .transpose()
            .within("resources")?
            .into(),
        CgroupsPath: opt_path_to_string(linux.cgroups_path().as_deref(), "cgroupsPath")?,
        Namespaces: list_to_proto(linux.namespaces(), "namespaces", namespace_to_proto)?,
        Devices: list_to_proto(linux.devices(), "devices", device_to_proto)?,
        Seccomp: linux.seccomp().as_ref().map(seccomp_to_proto).into(),
        RootfsPropagation: linux.rootfs_propagation().clone().unwrap_or_default(),
        MaskedPaths: linux.masked_paths().clone().unwrap_or_default(),
        ReadonlyPaths: linux.readonly_paths().clone().unwrap_or_default(),
        MountLabel: linux.mount_label().clone().unwrap_or_default(),
        IntelRdt: linux.intel_rdt().as_ref().map(intel_rdt_to_proto).into(),
        ..Default::default()
    })
}

fn id_mapping(mapping: &oci::LinuxIDMapping) -> Result<LinuxIdMapping> {
    LinuxIdMappingBuilder::default()
        .host_id(mapping.HostID)
        .container_id(mapping.ContainerID)
        .size(mapping.Size)
        .build()
        .map_err(|e| OciConvertError::rejected("", e))
}

fn id_mapping_to_proto(mapping: &LinuxIdMapping) -> oci::LinuxIDMapping {
    oci::LinuxIDMapping {
        HostID: mapping.host_id(),
        ContainerID: mapping.container_id(),
        Size: mapping.size(),
        ..Default::default()
    }
}

fn namespace_from_proto(ns: &oci::LinuxNamespace) -> Result<LinuxNamespace> {
    if ns.Type.is_empty() {
        return Err(OciConvertError::missing("type"));
    }
    let typ = LinuxNamespaceType::try_from(ns.Type.as_str())
        .map_err(|_| OciConvertError::unknown("type", "namespace type", &ns.Type))?;
    let mut out = LinuxNamespace::default();
    out.set_typ(typ);
    out.set_path(non_empty(&ns.Path).map(Into::into));
    Ok(out)
}

fn namespace_to_proto(ns: &LinuxNamespace) -> Result<oci::LinuxNamespace> {
    Ok(oci::LinuxNamespace {
        Type: namespace_type_name(ns.typ()).to_owned(),
        Path: opt_path_to_string(ns.path().as_deref(), "path")?,
        ..Default::default()
    })
}

/// The runtime-spec name of a namespace type (oci-spec displays `mnt` and `net`).
fn namespace_type_name(typ: LinuxNamespaceType) -> &'static str {
    match typ {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

fn device_from_proto(device: &oci::LinuxDevice) -> Result<LinuxDevice> {
    if device.Path.is_empty() {
        return Err(OciConvertError::missing("path"));
    }
    let typ: LinuxDeviceType = parse_name(&device.Type, "type", "device type")?;
    let mut out = LinuxDevice::default();
    out.set_path(device.Path.clone().into());
    out.set_typ(typ);
    out.set_major(device.Major);
    out.set_minor(device.Minor);
    out.set_file_mode(non_zero(device.FileMode));
    out.set_uid(non_zero(device.UID));
    out.set_gid(non_zero(device.GID));
    Ok(out)
}

fn device_to_proto(device: &LinuxDevice) -> Result<oci::LinuxDevice> {
    Ok(oci::LinuxDevice {
        Path: path_to_string(device.path(), "path")?,
        Type: device.typ().as_str().to_owned(),
        Major: device.major(),
        Minor: device.minor(),
        FileMode: device.file_mode().unwrap_or(0),
        UID: device.uid().unwrap_or(0),
        GID: device.gid().unwrap_or(0),
        ..Default::default()
    })
}

fn seccomp_from_proto(seccomp: &oci::LinuxSeccomp) -> Result<LinuxSeccomp> {
    let default_action: LinuxSeccompAction =
        parse_name(&seccomp.DefaultAction, "defaultAction", "seccomp action")?;
    let mut out = LinuxSeccomp::default();
    out.set_default_action(default_action);
    out.set_default_errno_ret(None);
    out.set_architectures(list_from_proto(
        &seccomp.Architectures,
        "architectures",
        |a| parse_name::<Arch>(a, "", "seccomp architecture"),
    )?);
    out.set_flags(list_from_proto(&seccomp.Flags, "flags", |f| {
        parse_name::<LinuxSeccompFilterFlag>(f, "", "seccomp flag")
    })?);
    out.set_listener_path(None);
    out.set_listener_metadata(None);
    out.set_syscalls(list_from_proto(
        &seccomp.Syscalls,
        "syscalls",
        syscall_from_proto,
    )?);
    Ok(out)
}

fn seccomp_to_proto(seccomp: &LinuxSeccomp) -> oci::LinuxSeccomp {
    oci::LinuxSeccomp {
        DefaultAction: seccomp.default_action().to_string(),
        Architectures: names(seccomp.architectures()),
        Flags: names(seccomp.flags()),
        Syscalls: seccomp
            .syscalls()
            .iter()
            .flatten()
            .map(syscall_to_proto)
            .collect(),
        ..Default::default()
    }
}

/// The display names of a list of enum values (`SCMP_ARCH_X86_64`, ...).
fn names<T: ToString>(items: &Option<Vec<T>>) -> Vec<String> {
    items.iter().flatten().map(ToString::to_string).collect()
}

fn syscall_from_proto(syscall: &oci::LinuxSyscall) -> Result<LinuxSyscall> {
    let action: LinuxSeccompAction = parse_name(&syscall.Action, "action", "seccomp action")?;
    let mut out = LinuxSyscall::default();
    out.set_names(syscall.Names.clone());
    out.set_action(action);
    out.set_errno_ret(syscall.ErrnoRet.as_ref().map(|ErrnoRet::Errnoret(e)| *e));
    out.set_args(list_from_proto(
        &syscall.Args,
        "args",
        seccomp_arg_from_proto,
    )?);
    Ok(out)
}

fn syscall_to_proto(syscall: &LinuxSyscall) -> oci::LinuxSyscall {
    oci::LinuxSyscall {
        Names: syscall.names().clone(),
        Action: syscall.action().to_string(),
        ErrnoRet: syscall.errno_ret().map(ErrnoRet::Errnoret),
        Args: syscall
            .args()
            .iter()
            .flatten()
            .map(seccomp_arg_to_proto)
            .collect(),
        ..Default::default()
    }
}

fn seccomp_arg_from_proto(arg: &oci::LinuxSeccompArg) -> Result<LinuxSeccompArg> {
    let op: LinuxSeccompOperator = parse_name(&arg.Op, "op", "seccomp operator")?;
    let index = usize::try_from(arg.Index)
        .map_err(|_| OciConvertError::out_of_range("index", arg.Index))?;
    let mut builder = LinuxSeccompArgBuilder::default()
        .index(index)
        .value(arg.Value)
        .op(op);
    if arg.ValueTwo != 0 {
        builder = builder.value_two(arg.ValueTwo);
    }
    builder
        .build()
        .map_err(|e| OciConvertError::rejected("", e))
}

fn seccomp_arg_to_proto(arg: &LinuxSeccompArg) -> oci::LinuxSeccompArg {
    oci::LinuxSeccompArg {
        // usize is at most 64 bits on every supported target.
        Index: arg.index() as u64,
        Value: arg.value(),
        ValueTwo: arg.value_two().unwrap_or(0),
        Op: arg.op().to_string(),
        ..Default::default()
    }
}

fn intel_rdt_from_proto(rdt: &oci::LinuxIntelRdt) -> LinuxIntelRdt {
    let mut out = LinuxIntelRdt::default();
    out.set_l3_cache_schema(non_empty(&rdt.L3CacheSchema));
    out
}

fn intel_rdt_to_proto(rdt: &LinuxIntelRdt) -> oci::LinuxIntelRdt {
    oci::LinuxIntelRdt {
        L3CacheSchema: rdt.l3_cache_schema().clone().unwrap_or_default(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Round-trips each name through `parse_name` and `Display`.
    fn assert_names_round_trip<T>(names: &[&str], kind: &'static str)
    where
        T: std::str::FromStr + ToString,
    {
        for name in names {
            let value: T = parse_name(name, "", kind).expect("known name");
            assert_eq!(value.to_string(), *name);
        }
    }

    #[test]
    fn seccomp_names_round_trip() {
        assert_names_round_trip::<LinuxSeccompAction>(
            &[
                "SCMP_ACT_KILL",
                "SCMP_ACT_KILL_THREAD",
                "SCMP_ACT_KILL_PROCESS",
                "SCMP_ACT_TRAP",
                "SCMP_ACT_ERRNO",
                "SCMP_ACT_NOTIFY",
                "SCMP_ACT_TRACE",
                "SCMP_ACT_LOG",
                "SCMP_ACT_ALLOW",
            ],
            "seccomp action",
        );
        assert_names_round_trip::<Arch>(
            &[
                "SCMP_ARCH_NATIVE",
                "SCMP_ARCH_X86",
                "SCMP_ARCH_X86_64",
                "SCMP_ARCH_X32",
                "SCMP_ARCH_ARM",
                "SCMP_ARCH_AARCH64",
                "SCMP_ARCH_MIPS64N32",
                "SCMP_ARCH_PPC64LE",
                "SCMP_ARCH_S390X",
                "SCMP_ARCH_RISCV64",
            ],
            "seccomp architecture",
        );
        assert_names_round_trip::<LinuxSeccompFilterFlag>(
            &[
                "SECCOMP_FILTER_FLAG_LOG",
                "SECCOMP_FILTER_FLAG_TSYNC",
                "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
            ],
            "seccomp flag",
        );
        assert_names_round_trip::<LinuxSeccompOperator>(
            &[
                "SCMP_CMP_NE",
                "SCMP_CMP_LT",
                "SCMP_CMP_LE",
                "SCMP_CMP_EQ",
                "SCMP_CMP_GE",
                "SCMP_CMP_GT",
                "SCMP_CMP_MASKED_EQ",
            ],
            "seccomp operator",
        );
    }

    #[test]
    fn short_namespace_names_are_accepted() {
        for (given, sent_back) in [("mnt", "mount"), ("net", "network"), ("pid", "pid")] {
            let proto = oci::LinuxNamespace {
                Type: given.into(),
                ..Default::default()
            };
            let ns = namespace_from_proto(&proto).expect("known namespace");
            let back = namespace_to_proto(&ns).expect("converts back");
            assert_eq!(back.Type, sent_back);
        }
    }

    #[test]
    fn errnoret_presence_is_kept() {
        let mut proto = oci::LinuxSyscall {
            Names: vec!["mkdir".into()],
            Action: "SCMP_ACT_ERRNO".into(),
            ..Default::default()
        };
        let syscall = syscall_from_proto(&proto).expect("converts");
        assert_eq!(syscall.errno_ret(), None);

        proto.set_errnoret(0);
        let syscall = syscall_from_proto(&proto).expect("converts");
        assert_eq!(syscall.errno_ret(), Some(0));
        assert_eq!(syscall_to_proto(&syscall), proto);
    }

    #[test]
    fn device_without_path_is_refused() {
        let proto = oci::LinuxDevice {
            Type: "c".into(),
            ..Default::default()
        };
        let err = device_from_proto(&proto).expect_err("path is required");
        assert_eq!(err.field(), "path");
    }
}
