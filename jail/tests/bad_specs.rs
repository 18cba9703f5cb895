//! Bad specs are refused with an error naming the field, before anything exists.

mod common;

use std::sync::Arc;

use common::{can_run, spec_json, Bundle, Jail};
use hull_jail::{Container, JailError, WaitpidReaper};

/// The field a refused spec names, whether parsing or creating refused it.
fn refused_field(jail: &Jail, bundle: &Bundle, v: &serde_json::Value) -> String {
    let spec = match hull_jail::spec::parse_json(&v.to_string()) {
        Ok(spec) => spec,
        Err(e) => return e.field().to_string(),
    };
    match Container::create(
        "bad",
        bundle.path(),
        spec,
        &jail.opts,
        Arc::new(WaitpidReaper),
    ) {
        Err(JailError::Spec(e)) => e.field().to_string(),
        Err(other) => panic!("not a spec error: {other}"),
        Ok(_) => panic!("bad spec accepted"),
    }
}

/// An edit that breaks a spec.
type Change = Box<dyn Fn(&mut serde_json::Value)>;

#[test]
fn each_bad_spec_names_its_field() {
    if !can_run() {
        return;
    }
    let (jail, bundle) = (Jail::new(), Bundle::new());
    let cases: Vec<(&str, Change)> = vec![
        (
            "process.args",
            Box::new(|v| v["process"]["args"] = serde_json::json!([])),
        ),
        (
            "root.path",
            Box::new(|v| v["root"]["path"] = serde_json::json!("../../etc")),
        ),
        (
            "linux.namespaces[2].type",
            Box::new(|v| v["linux"]["namespaces"][2]["type"] = serde_json::json!("bogus")),
        ),
        (
            "process.capabilities.bounding[1]",
            Box::new(|v| {
                v["process"]["capabilities"]["bounding"][1] = serde_json::json!("CAP_MAKE_COFFEE")
            }),
        ),
        (
            "linux.seccomp.syscalls[0]",
            Box::new(|v| {
                v["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_EXPLODE"}]})
            }),
        ),
        (
            "linux.seccomp.syscalls[0].names[0]",
            Box::new(|v| {
                v["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdri"], "action": "SCMP_ACT_ERRNO"}]})
            }),
        ),
        (
            "linux.sysctl.kernel.pid_max",
            Box::new(|v| v["linux"]["sysctl"] = serde_json::json!({"kernel.pid_max": "100"})),
        ),
        (
            "linux.namespaces",
            Box::new(|v| {
                v["linux"]["namespaces"] = serde_json::json!([{"type": "pid"}, {"type": "uts"}])
            }),
        ),
        (
            "mounts[0].options",
            Box::new(|v| v["mounts"][0]["options"] = serde_json::json!(["idmap"])),
        ),
        (
            "linux.resources.memory.kernel",
            Box::new(|v| v["linux"]["resources"] = serde_json::json!({"memory": {"kernel": 1}})),
        ),
    ];
    for (field, change) in cases {
        let mut v = spec_json("true");
        change(&mut v);
        assert_eq!(refused_field(&jail, &bundle, &v), field);
    }
    assert!(
        jail.cgroup_dirs().is_empty(),
        "a refused spec created cgroups"
    );
}
