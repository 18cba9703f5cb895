//! The container process: arguments, user, capabilities and rlimits.

use oci_spec::runtime::{
    Box as ConsoleSize, BoxBuilder, Capabilities, Capability, LinuxCapabilities, PosixRlimit,
    PosixRlimitBuilder, PosixRlimitType, Process, User,
};

use super::{
    list_from_proto, list_to_proto, non_empty, non_empty_vec, parse_name, path_to_string,
    OciConvertError, Result, Within,
};
use crate::oci;

/// Converts a protocol `Process` (`ExecProcessRequest.process`, `Spec.Process`).
pub fn process_from_proto(process: &oci::Process) -> Result<Process> {
    let mut out = Process::default();
    out.set_terminal(process.Terminal.then_some(true));
    out.set_console_size(
        process
            .ConsoleSize
            .as_ref()
            .map(console_size_from_proto)
            .transpose()
            .within("consoleSize")?,
    );
    out.set_user(
        process
            .User
            .as_ref()
            .map(user_from_proto)
            .unwrap_or_default(),
    );
    out.set_args(non_empty_vec(&process.Args));
    out.set_env(non_empty_vec(&process.Env));
    out.set_cwd(process.Cwd.clone().into());
    out.set_capabilities(
        process
            .Capabilities
            .as_ref()
            .map(capabilities_from_proto)
            .transpose()
            .within("capabilities")?,
    );
    out.set_rlimits(list_from_proto(
        &process.Rlimits,
        "rlimits",
        rlimit_from_proto,
    )?);
    out.set_no_new_privileges(process.NoNewPrivileges.then_some(true));
    out.set_apparmor_profile(non_empty(&process.ApparmorProfile));
    out.set_oom_score_adj(Some(oom_score_adj_from_proto(process.OOMScoreAdj)?));
    out.set_selinux_label(non_empty(&process.SelinuxLabel));
    out.set_command_line(None);
    out.set_io_priority(None);
    out.set_scheduler(None);
    out.set_exec_cpu_affinity(None);
    Ok(out)
}

/// Converts an oci-spec `Process` into the protocol's `Process`.
pub fn process_to_proto(process: &Process) -> Result<oci::Process> {
    Ok(oci::Process {
        Terminal: process.terminal().unwrap_or(false),
        ConsoleSize: process
            .console_size()
            .map(console_size_to_proto)
            .transpose()
            .within("consoleSize")?
            .into(),
        User: Some(user_to_proto(process.user())).into(),
        Args: process.args().clone().unwrap_or_default(),
        Env: process.env().clone().unwrap_or_default(),
        Cwd: path_to_string(process.cwd(), "cwd")?,
        Capabilities: process
            .capabilities()
            .as_ref()
            .map(capabilities_to_proto)
            .into(),
        Rlimits: list_to_proto(process.rlimits(), "rlimits", |r| Ok(rlimit_to_proto(r)))?,
        NoNewPrivileges: process.no_new_privileges().unwrap_or(false),
        ApparmorProfile: process.apparmor_profile().clone().unwrap_or_default(),
        OOMScoreAdj: process.oom_score_adj().map_or(0, i64::from),
        SelinuxLabel: process.selinux_label().clone().unwrap_or_default(),
        ..Default::default()
    })
}

fn oom_score_adj_from_proto(value: i64) -> Result<i32> {
    i32::try_from(value)
        .ok()
        .filter(|v| (-1000..=1000).contains(v))
        .ok_or_else(|| OciConvertError::out_of_range("oomScoreAdj", value))
}

fn console_size_from_proto(size: &oci::Box) -> Result<ConsoleSize> {
    BoxBuilder::default()
        .height(u64::from(size.Height))
        .width(u64::from(size.Width))
        .build()
        .map_err(|e| OciConvertError::rejected("", e))
}

fn console_size_to_proto(size: ConsoleSize) -> Result<oci::Box> {
    let narrow = |value: u64, field| {
        u32::try_from(value).map_err(|_| OciConvertError::out_of_range(field, value))
    };
    Ok(oci::Box {
        Height: narrow(size.height(), "height")?,
        Width: narrow(size.width(), "width")?,
        ..Default::default()
    })
}

fn user_from_proto(user: &oci::User) -> User {
    let mut out = User::default();
    out.set_uid(user.UID);
    out.set_gid(user.GID);
    out.set_additional_gids(non_empty_vec(&user.AdditionalGids));
    out.set_username(non_empty(&user.Username));
    out
}

fn user_to_proto(user: &User) -> oci::User {
    oci::User {
        UID: user.uid(),
        GID: user.gid(),
        AdditionalGids: user.additional_gids().clone().unwrap_or_default(),
        Username: user.username().clone().unwrap_or_default(),
        ..Default::default()
    }
}

fn capabilities_from_proto(caps: &oci::LinuxCapabilities) -> Result<LinuxCapabilities> {
    let mut out = LinuxCapabilities::default();
    out.set_bounding(capability_set_from_proto(&caps.Bounding, "bounding")?);
    out.set_effective(capability_set_from_proto(&caps.Effective, "effective")?);
    out.set_inheritable(capability_set_from_proto(&caps.Inheritable, "inheritable")?);
    out.set_permitted(capability_set_from_proto(&caps.Permitted, "permitted")?);
    out.set_ambient(capability_set_from_proto(&caps.Ambient, "ambient")?);
    Ok(out)
}

fn capabilities_to_proto(caps: &LinuxCapabilities) -> oci::LinuxCapabilities {
    oci::LinuxCapabilities {
        Bounding: capability_set_to_proto(caps.bounding()),
        Effective: capability_set_to_proto(caps.effective()),
        Inheritable: capability_set_to_proto(caps.inheritable()),
        Permitted: capability_set_to_proto(caps.permitted()),
        Ambient: capability_set_to_proto(caps.ambient()),
        ..Default::default()
    }
}

fn capability_set_from_proto(names: &[String], field: &str) -> Result<Option<Capabilities>> {
    let set = list_from_proto(names, field, |name| capability_from_name(name))?;
    Ok(set.map(|caps| caps.into_iter().collect()))
}

/// Parses `CAP_CHOWN` (or `CHOWN`).
fn capability_from_name(name: &str) -> Result<Capability> {
    let bare = name.strip_prefix("CAP_").unwrap_or(name);
    bare.parse()
        .map_err(|_| OciConvertError::unknown("", "capability", name))
}

/// The set as sorted `CAP_*` names, so that the wire form is deterministic.
fn capability_set_to_proto(set: &Option<Capabilities>) -> Vec<String> {
    let mut names: Vec<String> = set
        .iter()
        .flatten()
        .map(|cap| format!("CAP_{cap}"))
        .collect();
    names.sort_unstable();
    names
}

fn rlimit_from_proto(rlimit: &oci::POSIXRlimit) -> Result<PosixRlimit> {
    let typ: PosixRlimitType = parse_name(&rlimit.Type, "type", "rlimit")?;
    PosixRlimitBuilder::default()
        .typ(typ)
        .hard(rlimit.Hard)
        .soft(rlimit.Soft)
        .build()
        .map_err(|e| OciConvertError::rejected("", e))
}

fn rlimit_to_proto(rlimit: &PosixRlimit) -> oci::POSIXRlimit {
    oci::POSIXRlimit {
        Type: rlimit.typ().to_string(),
        Hard: rlimit.hard(),
        Soft: rlimit.soft(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RLIMITS: &[&str] = &[
        "RLIMIT_AS",
        "RLIMIT_CORE",
        "RLIMIT_CPU",
        "RLIMIT_DATA",
        "RLIMIT_FSIZE",
        "RLIMIT_LOCKS",
        "RLIMIT_MEMLOCK",
        "RLIMIT_MSGQUEUE",
        "RLIMIT_NICE",
        "RLIMIT_NOFILE",
        "RLIMIT_NPROC",
        "RLIMIT_RSS",
        "RLIMIT_RTPRIO",
        "RLIMIT_RTTIME",
        "RLIMIT_SIGPENDING",
        "RLIMIT_STACK",
    ];

    #[test]
    fn every_rlimit_name_round_trips() {
        for name in RLIMITS {
            let proto = oci::POSIXRlimit {
                Type: (*name).into(),
                Hard: 2,
                Soft: 1,
                ..Default::default()
            };
            let rlimit = rlimit_from_proto(&proto).expect("known rlimit");
            assert_eq!(rlimit_to_proto(&rlimit), proto);
        }
    }

    #[test]
    fn capabilities_accept_names_without_prefix_and_return_sorted() {
        let proto = oci::LinuxCapabilities {
            Bounding: vec![
                "SYS_ADMIN".into(),
                "CAP_AUDIT_WRITE".into(),
                "CAP_CHOWN".into(),
            ],
            ..Default::default()
        };
        let caps = capabilities_from_proto(&proto).expect("known capabilities");
        assert!(caps.effective().is_none());
        let back = capabilities_to_proto(&caps);
        assert_eq!(
            back.Bounding,
            ["CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_SYS_ADMIN"]
        );
    }

    #[test]
    fn lower_case_capability_is_refused() {
        let err = capability_from_name("cap_chown").expect_err("not a capability name");
        assert!(matches!(
            err,
            OciConvertError::Unknown {
                kind: "capability",
                ..
            }
        ));
    }

    #[test]
    fn exec_process_with_only_the_basics() {
        // What runtimes send in ExecProcess: user, args, env, cwd, terminal.
        let proto = oci::Process {
            User: Some(oci::User {
                UID: 0,
                GID: 0,
                ..Default::default()
            })
            .into(),
            Args: vec!["ls".into()],
            Env: vec!["A=b".into()],
            Cwd: "/".into(),
            ..Default::default()
        };
        let process = process_from_proto(&proto).expect("converts");
        assert_eq!(process.args().as_deref(), Some(&["ls".to_string()][..]));
        assert_eq!(process.terminal(), None);
        assert!(process.capabilities().is_none());
        assert!(process.rlimits().is_none());
        assert_eq!(process.no_new_privileges(), None);
        // Unset means 0, never the agent's own -1000.
        assert_eq!(process.oom_score_adj(), Some(0));
        assert_eq!(process_to_proto(&process).expect("converts back"), proto);
    }
}
