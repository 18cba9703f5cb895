//! The top of the spec: version, root, hostname, mounts, hooks and annotations, with
//! the process and Linux sections delegated to their modules.

use oci_spec::runtime::{Hook, Hooks, Mount, Root, Spec};

use super::{
    linux, list_from_proto, list_to_proto, non_empty, non_empty_vec, non_zero, opt_path_to_string,
    path_to_string, process_from_proto, process_to_proto, OciConvertError, Result, Within,
};
use crate::oci;

/// Converts a protocol `Spec` (`CreateContainerRequest.OCI`) into an oci-spec `Spec`.
pub fn spec_from_proto(spec: &oci::Spec) -> Result<Spec> {
    let mut out = Spec::default();
    out.set_version(spec.Version.clone());
    out.set_process(
        spec.Process
            .as_ref()
            .map(process_from_proto)
            .transpose()
            .within("process")?,
    );
    out.set_root(spec.Root.as_ref().map(root_from_proto));
    out.set_hostname(non_empty(&spec.Hostname));
    out.set_domainname(None);
    out.set_mounts(list_from_proto(&spec.Mounts, "mounts", mount_from_proto)?);
    out.set_hooks(
        spec.Hooks
            .as_ref()
            .map(hooks_from_proto)
            .transpose()
            .within("hooks")?,
    );
    out.set_annotations((!spec.Annotations.is_empty()).then(|| spec.Annotations.clone()));
    out.set_linux(
        spec.Linux
            .as_ref()
            .map(linux::linux_from_proto)
            .transpose()
            .within("linux")?,
    );
    out.set_solaris(None);
    out.set_windows(None);
    out.set_vm(None);
    out.set_zos(None);
    Ok(out)
}

/// Converts an oci-spec `Spec` into the protocol's `Spec`.
pub fn spec_to_proto(spec: &Spec) -> Result<oci::Spec> {
    Ok(oci::Spec {
        Version: spec.version().clone(),
        Process: spec
            .process()
            .as_ref()
            .map(process_to_proto)
            .transpose()
            .within("process")?
            .into(),
        Root: spec
            .root()
            .as_ref()
            .map(root_to_proto)
            .transpose()
            .within("root")?
            .into(),
        Hostname: spec.hostname().clone().unwrap_or_default(),
        Mounts: list_to_proto(spec.mounts(), "mounts", mount_to_proto)?,
        Hooks: spec
            .hooks()
            .as_ref()
            .map(hooks_to_proto)
            .transpose()
            .within("hooks")?
            .into(),
        Annotations: spec.annotations().clone().unwrap_or_default(),
        Linux: spec
            .linux()
            .as_ref()
            .map(linux::linux_to_proto)
            .transpose()
            .within("linux")?
            .into(),
        ..Default::default()
    })
}

fn root_from_proto(root: &oci::Root) -> Root {
    let mut out = Root::default();
    out.set_path(root.Path.clone().into());
    out.set_readonly(root.Readonly.then_some(true));
    out
}

fn root_to_proto(root: &Root) -> Result<oci::Root> {
    Ok(oci::Root {
        Path: path_to_string(root.path(), "path")?,
        Readonly: root.readonly().unwrap_or(false),
        ..Default::default()
    })
}

fn mount_from_proto(mount: &oci::Mount) -> Result<Mount> {
    if mount.destination.is_empty() {
        return Err(OciConvertError::missing("destination"));
    }
    let mut out = Mount::default();
    out.set_destination(mount.destination.clone().into());
    out.set_typ(non_empty(&mount.type_));
    out.set_source(non_empty(&mount.source).map(Into::into));
    out.set_options(non_empty_vec(&mount.options));
    Ok(out)
}

fn mount_to_proto(mount: &Mount) -> Result<oci::Mount> {
    Ok(oci::Mount {
        destination: path_to_string(mount.destination(), "destination")?,
        source: opt_path_to_string(mount.source().as_deref(), "source")?,
        type_: mount.typ().clone().unwrap_or_default(),
        options: mount.options().clone().unwrap_or_default(),
        ..Default::default()
    })
}

#[allow(deprecated)] // Prestart is deprecated in the runtime-spec but still on the wire.
fn hooks_from_proto(hooks: &oci::Hooks) -> Result<Hooks> {
    let mut out = Hooks::default();
    out.set_prestart(list_from_proto(
        &hooks.Prestart,
        "prestart",
        hook_from_proto,
    )?);
    out.set_poststart(list_from_proto(
        &hooks.Poststart,
        "poststart",
        hook_from_proto,
    )?);
    out.set_poststop(list_from_proto(
        &hooks.Poststop,
        "poststop",
        hook_from_proto,
    )?);
    out.set_create_runtime(list_from_proto(
        &hooks.CreateRuntime,
        "createRuntime",
        hook_from_proto,
    )?);
    out.set_create_container(list_from_proto(
        &hooks.CreateContainer,
        "createContainer",
        hook_from_proto,
    )?);
    out.set_start_container(list_from_proto(
        &hooks.StartContainer,
        "startContainer",
        hook_from_proto,
    )?);
    Ok(out)
}

#[allow(deprecated)] // Prestart, as above.
fn hooks_to_proto(hooks: &Hooks) -> Result<oci::Hooks> {
    Ok(oci::Hooks {
        Prestart: list_to_proto(hooks.prestart(), "prestart", hook_to_proto)?,
        Poststart: list_to_proto(hooks.poststart(), "poststart", hook_to_proto)?,
        Poststop: list_to_proto(hooks.poststop(), "poststop", hook_to_proto)?,
        CreateRuntime: list_to_proto(hooks.create_runtime(), "createRuntime", hook_to_proto)?,
        CreateContainer: list_to_proto(hooks.create_container(), "createContainer", hook_to_proto)?,
        StartContainer: list_to_proto(hooks.start_container(), "startContainer", hook_to_proto)?,
        ..Default::default()
    })
}

fn hook_from_proto(hook: &oci::Hook) -> Result<Hook> {
    if hook.Path.is_empty() {
        return Err(OciConvertError::missing("path"));
    }
    let mut out = Hook::default();
    out.set_path(hook.Path.clone().into());
    out.set_args(non_empty_vec(&hook.Args));
    out.set_env(non_empty_vec(&hook.Env));
    out.set_timeout(non_zero(hook.Timeout));
    Ok(out)
}

fn hook_to_proto(hook: &Hook) -> Result<oci::Hook> {
    Ok(oci::Hook {
        Path: path_to_string(hook.path(), "path")?,
        Args: hook.args().clone().unwrap_or_default(),
        Env: hook.env().clone().unwrap_or_default(),
        Timeout: hook.timeout().unwrap_or(0),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::path::PathBuf;

    use oci_spec::runtime::{
        Arch, BoxBuilder, Capability, HookBuilder, LinuxBlockIoBuilder, LinuxCpuBuilder,
        LinuxDeviceBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxHugepageLimitBuilder,
        LinuxIdMappingBuilder, LinuxIntelRdt, LinuxInterfacePriorityBuilder, LinuxMemoryBuilder,
        LinuxNamespaceBuilder, LinuxNamespaceType, LinuxNetworkBuilder, LinuxPidsBuilder,
        LinuxResources, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompBuilder,
        LinuxSeccompFilterFlag, LinuxSeccompOperator, LinuxSyscallBuilder,
        LinuxThrottleDeviceBuilder, LinuxWeightDeviceBuilder, MountBuilder, PosixRlimitBuilder,
        PosixRlimitType, Process, User,
    };

    use super::*;

    fn full_process() -> Process {
        let caps = |list: &[Capability]| Some(list.iter().copied().collect());
        let mut capabilities = oci_spec::runtime::LinuxCapabilities::default();
        capabilities.set_bounding(caps(&[Capability::Chown, Capability::Kill]));
        capabilities.set_effective(caps(&[Capability::Chown]));
        capabilities.set_inheritable(None);
        capabilities.set_permitted(caps(&[Capability::Chown, Capability::NetBindService]));
        capabilities.set_ambient(caps(&[Capability::SysAdmin]));

        let mut user = User::default();
        user.set_uid(1000);
        user.set_gid(1001);
        user.set_additional_gids(Some(vec![10, 20]));
        user.set_username(Some("app".into()));

        let rlimit = PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .hard(2048u64)
            .soft(1024u64)
            .build()
            .expect("valid rlimit");

        let mut process = Process::default();
        process.set_terminal(Some(true));
        process.set_console_size(Some(
            BoxBuilder::default()
                .height(24u64)
                .width(80u64)
                .build()
                .expect("valid box"),
        ));
        process.set_user(user);
        process.set_args(Some(vec!["/bin/sh".into(), "-c".into(), "true".into()]));
        process.set_env(Some(vec!["PATH=/bin".into()]));
        process.set_cwd("/work".into());
        process.set_capabilities(Some(capabilities));
        process.set_rlimits(Some(vec![rlimit]));
        process.set_no_new_privileges(Some(true));
        process.set_apparmor_profile(Some("profile".into()));
        process.set_oom_score_adj(Some(-500));
        process.set_selinux_label(Some("label".into()));
        process
    }

    fn full_resources() -> LinuxResources {
        let deny_all = LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .expect("valid rule");
        let allow_null = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(1i64)
            .minor(0i64)
            .access("rw")
            .build()
            .expect("valid rule");
        let throttle = |rate: u64| {
            vec![LinuxThrottleDeviceBuilder::default()
                .major(8i64)
                .minor(0i64)
                .rate(rate)
                .build()
                .expect("valid throttle")]
        };
        let block_io = LinuxBlockIoBuilder::default()
            .weight(500u16)
            .leaf_weight(300u16)
            .weight_device(vec![LinuxWeightDeviceBuilder::default()
                .major(8i64)
                .minor(16i64)
                .weight(200u16)
                .build()
                .expect("valid weight device")])
            .throttle_read_bps_device(throttle(1))
            .throttle_write_bps_device(throttle(2))
            .throttle_read_iops_device(throttle(3))
            .throttle_write_iops_device(throttle(4))
            .build()
            .expect("valid block io");
        let network = LinuxNetworkBuilder::default()
            .class_id(7u32)
            .priorities(vec![LinuxInterfacePriorityBuilder::default()
                .name("eth0")
                .priority(3u32)
                .build()
                .expect("valid priority")])
            .build()
            .expect("valid network");

        let mut res = LinuxResources::default();
        res.set_devices(Some(vec![deny_all, allow_null]));
        res.set_memory(Some(
            LinuxMemoryBuilder::default()
                .limit(1i64 << 30)
                .reservation(1i64 << 29)
                .swap(-1i64)
                .kernel_tcp(4096i64)
                .swappiness(60u64)
                .disable_oom_killer(true)
                .build()
                .expect("valid memory"),
        ));
        res.set_cpu(Some(
            LinuxCpuBuilder::default()
                .shares(1024u64)
                .quota(-1i64)
                .period(100_000u64)
                .realtime_runtime(950i64)
                .realtime_period(1000u64)
                .cpus("0-1")
                .mems("0")
                .build()
                .expect("valid cpu"),
        ));
        res.set_pids(Some(
            LinuxPidsBuilder::default()
                .limit(100i64)
                .build()
                .expect("valid pids"),
        ));
        res.set_block_io(Some(block_io));
        res.set_hugepage_limits(Some(vec![LinuxHugepageLimitBuilder::default()
            .page_size("2MB")
            .limit(1i64 << 21)
            .build()
            .expect("valid hugepage limit")]));
        res.set_network(Some(network));
        res
    }

    fn full_seccomp() -> oci_spec::runtime::LinuxSeccomp {
        let arg = LinuxSeccompArgBuilder::default()
            .index(1usize)
            .value(0xffu64)
            .value_two(0x0fu64)
            .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
            .build()
            .expect("valid arg");
        let errno_zero = LinuxSyscallBuilder::default()
            .names(vec!["getcwd".to_string()])
            .action(LinuxSeccompAction::ScmpActErrno)
            .errno_ret(0u32)
            .args(vec![arg])
            .build()
            .expect("valid syscall");
        let allow = LinuxSyscallBuilder::default()
            .names(vec!["read".to_string(), "write".to_string()])
            .action(LinuxSeccompAction::ScmpActAllow)
            .build()
            .expect("valid syscall");
        LinuxSeccompBuilder::default()
            .default_action(LinuxSeccompAction::ScmpActErrno)
            .architectures(vec![Arch::ScmpArchX86_64, Arch::ScmpArchAarch64])
            .flags(vec![LinuxSeccompFilterFlag::SeccompFilterFlagLog])
            .syscalls(vec![errno_zero, allow])
            .build()
            .expect("valid seccomp")
    }

    fn full_linux() -> oci_spec::runtime::Linux {
        let namespace = |typ, path: Option<&str>| {
            let mut ns = LinuxNamespaceBuilder::default().typ(typ);
            if let Some(path) = path {
                ns = ns.path(path);
            }
            ns.build().expect("valid namespace")
        };
        let mapping = LinuxIdMappingBuilder::default()
            .host_id(100_000u32)
            .container_id(0u32)
            .size(65_536u32)
            .build()
            .expect("valid mapping");
        let device = LinuxDeviceBuilder::default()
            .path("/dev/fuse")
            .typ(LinuxDeviceType::C)
            .major(10i64)
            .minor(229i64)
            .file_mode(0o666u32)
            .uid(5u32)
            .gid(6u32)
            .build()
            .expect("valid device");
        let mut rdt = LinuxIntelRdt::default();
        rdt.set_l3_cache_schema(Some("L3:0=ff".into()));

        let mut linux = oci_spec::runtime::Linux::default();
        linux.set_uid_mappings(Some(vec![mapping]));
        linux.set_gid_mappings(Some(vec![mapping]));
        linux.set_sysctl(Some(HashMap::from([(
            "net.ipv4.ip_forward".into(),
            "1".into(),
        )])));
        linux.set_resources(Some(full_resources()));
        linux.set_cgroups_path(Some("/kubepods/pod1/c1".into()));
        linux.set_namespaces(Some(vec![
            namespace(LinuxNamespaceType::Pid, None),
            namespace(LinuxNamespaceType::Network, Some("/proc/1/ns/net")),
            namespace(LinuxNamespaceType::Mount, None),
            namespace(LinuxNamespaceType::Ipc, None),
            namespace(LinuxNamespaceType::Uts, None),
            namespace(LinuxNamespaceType::User, None),
            namespace(LinuxNamespaceType::Cgroup, None),
            namespace(LinuxNamespaceType::Time, None),
        ]));
        linux.set_devices(Some(vec![device]));
        linux.set_seccomp(Some(full_seccomp()));
        linux.set_rootfs_propagation(Some("rslave".into()));
        linux.set_masked_paths(Some(vec!["/proc/kcore".into()]));
        linux.set_readonly_paths(Some(vec!["/proc/sys".into()]));
        linux.set_mount_label(Some("mount-label".into()));
        linux.set_intel_rdt(Some(rdt));
        linux
    }

    #[allow(deprecated)] // Prestart hooks.
    fn full_spec() -> Spec {
        let hook = |path: &str| {
            HookBuilder::default()
                .path(path)
                .args(vec![path.to_string(), "arg".to_string()])
                .env(vec!["A=1".to_string()])
                .timeout(5i64)
                .build()
                .expect("valid hook")
        };
        let mut hooks = Hooks::default();
        hooks.set_prestart(Some(vec![hook("/bin/prestart")]));
        hooks.set_create_runtime(Some(vec![hook("/bin/create-runtime")]));
        hooks.set_create_container(Some(vec![hook("/bin/create-container")]));
        hooks.set_start_container(Some(vec![hook("/bin/start-container")]));
        hooks.set_poststart(Some(vec![hook("/bin/poststart")]));
        hooks.set_poststop(Some(vec![hook("/bin/poststop"), hook("/bin/poststop2")]));

        let mut root = Root::default();
        root.set_path("/run/kata-containers/shared/containers/c1/rootfs".into());
        root.set_readonly(Some(true));

        let mounts = vec![
            MountBuilder::default()
                .destination("/proc")
                .typ("proc")
                .source("proc")
                .build()
                .expect("valid mount"),
            MountBuilder::default()
                .destination("/etc/hosts")
                .typ("bind")
                .source("/run/shared/hosts")
                .options(vec!["rbind".to_string(), "ro".to_string()])
                .build()
                .expect("valid mount"),
        ];

        let mut spec = Spec::default();
        spec.set_version("1.2.0".into());
        spec.set_process(Some(full_process()));
        spec.set_root(Some(root));
        spec.set_hostname(Some("box".into()));
        spec.set_mounts(Some(mounts));
        spec.set_hooks(Some(hooks));
        spec.set_annotations(Some(HashMap::from([("io.example/key".into(), "v".into())])));
        spec.set_linux(Some(full_linux()));
        spec
    }

    #[test]
    fn full_spec_round_trips_through_protobuf() {
        let spec = full_spec();
        let proto = spec_to_proto(&spec).expect("spec converts to protobuf");
        let back = spec_from_proto(&proto).expect("protobuf converts back");
        assert_eq!(back, spec);

        // And the protobuf side is stable too, through its encoded bytes.
        let bytes = protobuf::Message::write_to_bytes(&proto).expect("encodes");
        let decoded: oci::Spec = protobuf::Message::parse_from_bytes(&bytes).expect("decodes");
        let again = spec_to_proto(&spec_from_proto(&decoded).expect("converts")).expect("back");
        assert_eq!(again, proto);
    }

    #[test]
    fn protobuf_names_follow_the_runtime_spec() {
        let proto = spec_to_proto(&full_spec()).expect("converts");
        let process = proto.Process.as_ref().expect("process present");
        let caps = process.Capabilities.as_ref().expect("capabilities present");
        assert_eq!(caps.Bounding, ["CAP_CHOWN", "CAP_KILL"]);
        assert!(caps.Inheritable.is_empty());
        assert_eq!(process.Rlimits[0].Type, "RLIMIT_NOFILE");

        let linux = proto.Linux.as_ref().expect("linux present");
        let types: Vec<&str> = linux.Namespaces.iter().map(|n| n.Type.as_str()).collect();
        assert_eq!(
            types,
            ["pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"]
        );
        let seccomp = linux.Seccomp.as_ref().expect("seccomp present");
        assert_eq!(seccomp.DefaultAction, "SCMP_ACT_ERRNO");
        assert_eq!(
            seccomp.Architectures,
            ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"]
        );
        assert_eq!(seccomp.Flags, ["SECCOMP_FILTER_FLAG_LOG"]);
        assert_eq!(seccomp.Syscalls[0].Args[0].Op, "SCMP_CMP_MASKED_EQ");
        // errnoRet 0 survives as a present oneof member.
        assert!(seccomp.Syscalls[0].has_errnoret());
        assert!(!seccomp.Syscalls[1].has_errnoret());
        assert_eq!(linux.Devices[0].Type, "c");
        assert_eq!(proto.Mounts[1].type_, "bind");
    }

    #[test]
    fn empty_protobuf_spec_maps_to_unset_fields() {
        let spec = spec_from_proto(&oci::Spec::default()).expect("converts");
        assert_eq!(spec.version(), "");
        assert!(spec.process().is_none());
        assert!(spec.root().is_none());
        assert!(spec.hostname().is_none());
        assert!(spec.mounts().is_none());
        assert!(spec.hooks().is_none());
        assert!(spec.annotations().is_none());
        assert!(spec.linux().is_none());
    }

    #[test]
    fn unknown_capability_names_its_field() {
        let mut proto = spec_to_proto(&full_spec()).expect("converts");
        let caps = proto
            .Process
            .as_mut()
            .and_then(|p| p.Capabilities.as_mut())
            .expect("capabilities present");
        caps.Permitted.push("CAP_BOGUS".into());

        let err = spec_from_proto(&proto).expect_err("bogus capability refused");
        assert_eq!(err.field(), "process.capabilities.permitted[2]");
        assert_eq!(
            err.to_string(),
            "process.capabilities.permitted[2]: unknown capability \"CAP_BOGUS\""
        );
    }

    #[test]
    fn unknown_namespace_type_names_its_field() {
        let mut proto = spec_to_proto(&full_spec()).expect("converts");
        let linux = proto.Linux.as_mut().expect("linux present");
        linux.Namespaces[3].Type = "netns".into();
        let err = spec_from_proto(&proto).expect_err("unknown namespace refused");
        assert_eq!(err.field(), "linux.namespaces[3].type");
        assert!(matches!(
            err,
            OciConvertError::Unknown {
                kind: "namespace type",
                ..
            }
        ));

        linux_mut(&mut proto).Namespaces[3].Type.clear();
        let err = spec_from_proto(&proto).expect_err("empty namespace type refused");
        assert!(matches!(err, OciConvertError::Missing { .. }));
        assert_eq!(err.to_string(), "linux.namespaces[3].type: missing");
    }

    fn linux_mut(spec: &mut oci::Spec) -> &mut oci::Linux {
        spec.Linux.as_mut().expect("linux present")
    }

    fn seccomp_mut(spec: &mut oci::Spec) -> &mut oci::LinuxSeccomp {
        linux_mut(spec).Seccomp.as_mut().expect("seccomp present")
    }

    #[test]
    fn bad_seccomp_values_name_their_fields() {
        type Case = (fn(&mut oci::LinuxSeccomp), &'static str);
        let cases: [Case; 5] = [
            (
                |s| s.Syscalls[1].Action = "SCMP_ACT_EXPLODE".into(),
                "linux.seccomp.syscalls[1].action",
            ),
            (|s| s.DefaultAction.clear(), "linux.seccomp.defaultAction"),
            (
                |s| s.Architectures.push("SCMP_ARCH_VAX".into()),
                "linux.seccomp.architectures[2]",
            ),
            (
                |s| s.Flags[0] = "SECCOMP_FILTER_FLAG_BOGUS".into(),
                "linux.seccomp.flags[0]",
            ),
            (
                |s| s.Syscalls[0].Args[0].Op = "SCMP_CMP_SOMETIMES".into(),
                "linux.seccomp.syscalls[0].args[0].op",
            ),
        ];
        for (break_it, field) in cases {
            let mut proto = spec_to_proto(&full_spec()).expect("converts");
            break_it(seccomp_mut(&mut proto));
            let err = spec_from_proto(&proto).expect_err("bad seccomp refused");
            assert_eq!(err.field(), field);
        }
    }

    #[test]
    fn other_bad_values_name_their_fields() {
        type Case = (fn(&mut oci::Spec), &'static str);
        let cases: [Case; 6] = [
            (
                |s| s.Process.as_mut().expect("process").Rlimits[0].Type = "RLIMIT_FUN".into(),
                "process.rlimits[0].type",
            ),
            (
                |s| s.Process.as_mut().expect("process").OOMScoreAdj = 5000,
                "process.oomScoreAdj",
            ),
            (
                |s| linux_mut(s).Devices[0].Type = "x".into(),
                "linux.devices[0].type",
            ),
            (|s| s.Mounts[1].destination.clear(), "mounts[1].destination"),
            (
                |s| s.Hooks.as_mut().expect("hooks").Poststop[1].Path.clear(),
                "hooks.poststop[1].path",
            ),
            (
                |s| {
                    let res = linux_mut(s).Resources.as_mut().expect("resources");
                    res.BlockIO.as_mut().expect("block io").Weight = 70_000;
                },
                "linux.resources.blockIO.weight",
            ),
        ];
        for (break_it, field) in cases {
            let mut proto = spec_to_proto(&full_spec()).expect("converts");
            break_it(&mut proto);
            let err = spec_from_proto(&proto).expect_err("bad value refused");
            assert_eq!(err.field(), field, "{err}");
        }
    }

    #[test]
    fn unrepresentable_oci_values_name_their_fields() {
        let mut spec = full_spec();
        let mut root = Root::default();
        root.set_path(PathBuf::from(OsStr::from_bytes(b"/bad/\xff")));
        spec.set_root(Some(root));
        let err = spec_to_proto(&spec).expect_err("non-UTF-8 path refused");
        assert!(matches!(err, OciConvertError::NotUtf8 { .. }));
        assert_eq!(err.field(), "root.path");

        let mut spec = full_spec();
        let mut process = full_process();
        process.set_console_size(Some(
            BoxBuilder::default()
                .height(u64::from(u32::MAX) + 1)
                .width(80u64)
                .build()
                .expect("valid box"),
        ));
        spec.set_process(Some(process));
        let err = spec_to_proto(&spec).expect_err("oversized console refused");
        assert_eq!(err.field(), "process.consoleSize.height");
    }
}
