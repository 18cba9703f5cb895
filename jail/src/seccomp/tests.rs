//! The emitter's output run through the test interpreter, on all four architectures.

use super::bpf::{data, run};
use super::*;

const ARCHES: [FilterArch; 4] = [
    FilterArch::X86_64,
    FilterArch::Aarch64,
    FilterArch::Ppc64le,
    FilterArch::S390x,
];

fn profile(v: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(v).unwrap()
}

fn eval(p: &Program, arch: FilterArch, audit: u32, nr: u32, args: [u64; 6]) -> u32 {
    let be = arch.big_endian();
    run(&p.insns, &data(nr, audit, args, be), be)
}

fn call(p: &Program, arch: FilterArch, name: &str, args: [u64; 6]) -> u32 {
    let nr = arch.syscall(name).unwrap();
    eval(p, arch, arch.audit_arch(), nr, args)
}

#[test]
fn denying_mkdir_returns_eperm_and_allows_the_rest() {
    let p = profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]
    }));
    for arch in ARCHES {
        let prog = compile_for(&p, arch).unwrap();
        assert_eq!(
            call(&prog, arch, "mkdirat", [0; 6]),
            RET_ERRNO | 1,
            "{arch:?}"
        );
        assert_eq!(call(&prog, arch, "read", [0; 6]), RET_ALLOW, "{arch:?}");
        if arch.syscall("mkdir").is_some() {
            assert_eq!(
                call(&prog, arch, "mkdir", [0; 6]),
                RET_ERRNO | 1,
                "{arch:?}"
            );
        }
    }
}

#[test]
fn default_action_and_errno_apply_to_unlisted_calls() {
    let p = profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                     {"names": ["kill"], "action": "SCMP_ACT_KILL_PROCESS"},
                     {"names": ["getpid"], "action": "SCMP_ACT_TRAP"},
                     {"names": ["getppid"], "action": "SCMP_ACT_LOG"},
                     {"names": ["gettid"], "action": "SCMP_ACT_TRACE", "errnoRet": 5},
                     {"names": ["close"], "action": "SCMP_ACT_ERRNO", "errnoRet": 9}]
    }));
    for arch in ARCHES {
        let prog = compile_for(&p, arch).unwrap();
        assert_eq!(call(&prog, arch, "write", [0; 6]), RET_ALLOW);
        assert_eq!(call(&prog, arch, "openat", [0; 6]), RET_ERRNO | 38);
        assert_eq!(call(&prog, arch, "kill", [0; 6]), RET_KILL_PROCESS);
        assert_eq!(call(&prog, arch, "getpid", [0; 6]), RET_TRAP);
        assert_eq!(call(&prog, arch, "getppid", [0; 6]), RET_LOG);
        assert_eq!(call(&prog, arch, "gettid", [0; 6]), RET_TRACE | 5);
        assert_eq!(call(&prog, arch, "close", [0; 6]), RET_ERRNO | 9);
    }
}

#[test]
fn a_foreign_architecture_is_killed() {
    let p = profile(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW"}));
    let prog = compile_for(&p, FilterArch::X86_64).unwrap();
    let nr = FilterArch::X86.syscall("read").unwrap();
    assert_eq!(
        eval(
            &prog,
            FilterArch::X86_64,
            FilterArch::X86.audit_arch(),
            nr,
            [0; 6]
        ),
        RET_KILL_PROCESS
    );
    assert_eq!(
        eval(&prog, FilterArch::X86_64, 0x1234, 0, [0; 6]),
        RET_KILL_PROCESS
    );
    // x32 calls are killed unless the profile lists x32.
    assert_eq!(
        eval(
            &prog,
            FilterArch::X86_64,
            FilterArch::X86_64.audit_arch(),
            X32_SYSCALL_BIT,
            [0; 6]
        ),
        RET_KILL_PROCESS
    );
}

#[test]
fn listed_compat_architectures_get_their_own_numbers() {
    let p = profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
    }));
    let prog = compile_for(&p, FilterArch::X86_64).unwrap();
    let x86 = FilterArch::X86;
    assert_eq!(
        eval(&prog, x86, x86.audit_arch(), 39, [0; 6]),
        RET_ERRNO | 1
    );
    assert_eq!(eval(&prog, x86, x86.audit_arch(), 83, [0; 6]), RET_ALLOW);
    let x64 = FilterArch::X86_64.audit_arch();
    assert_eq!(
        eval(&prog, x86, x64, 83 | X32_SYSCALL_BIT, [0; 6]),
        RET_ERRNO | 1
    );
    assert_eq!(eval(&prog, x86, x64, X32_SYSCALL_BIT, [0; 6]), RET_ALLOW);

    let arm = profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
    }));
    let prog = compile_for(&arm, FilterArch::Aarch64).unwrap();
    let nr = FilterArch::Arm.syscall("mkdir").unwrap();
    assert_eq!(
        eval(
            &prog,
            FilterArch::Arm,
            FilterArch::Arm.audit_arch(),
            nr,
            [0; 6]
        ),
        RET_ERRNO | 1
    );
}

fn reference(op: LinuxSeccompOperator, a: u64, v: u64, v2: u64) -> bool {
    match op {
        LinuxSeccompOperator::ScmpCmpEq => a == v,
        LinuxSeccompOperator::ScmpCmpNe => a != v,
        LinuxSeccompOperator::ScmpCmpLt => a < v,
        LinuxSeccompOperator::ScmpCmpLe => a <= v,
        LinuxSeccompOperator::ScmpCmpGt => a > v,
        LinuxSeccompOperator::ScmpCmpGe => a >= v,
        LinuxSeccompOperator::ScmpCmpMaskedEq => a & v == v2,
    }
}

#[test]
fn argument_operators_match_64_bit_semantics_on_every_arch() {
    let ops = [
        LinuxSeccompOperator::ScmpCmpEq,
        LinuxSeccompOperator::ScmpCmpNe,
        LinuxSeccompOperator::ScmpCmpLt,
        LinuxSeccompOperator::ScmpCmpLe,
        LinuxSeccompOperator::ScmpCmpGt,
        LinuxSeccompOperator::ScmpCmpGe,
        LinuxSeccompOperator::ScmpCmpMaskedEq,
    ];
    let values: [u64; 9] = [
        0,
        1,
        0xffff_ffff,
        0x1_0000_0000,
        0x1_0000_0001,
        0x2_0000_0000,
        0xffff_ffff_ffff_ffff,
        0x8000_0000_0000_0000,
        0x0000_0001_ffff_fffe,
    ];
    for arch in ARCHES {
        for op in ops {
            for &v in &values {
                let v2 = v & 0x0000_0001_0000_00ff;
                let p = profile(serde_json::json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["ioctl"], "action": "SCMP_ACT_ERRNO",
                                  "args": [{"index": 3, "value": v, "valueTwo": v2, "op": op}]}]
                }));
                let prog = compile_for(&p, arch).unwrap();
                for &a in &values {
                    let mut args = [0u64; 6];
                    args[3] = a;
                    let got = call(&prog, arch, "ioctl", args) == (RET_ERRNO | 1);
                    assert_eq!(
                        got,
                        reference(op, a, v, v2),
                        "{arch:?} {op:?} a={a:#x} v={v:#x}"
                    );
                }
            }
        }
    }
}

#[test]
fn all_conditions_of_a_rule_must_hold() {
    let p = profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ERRNO",
                      "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_EQ"},
                               {"index": 2, "value": 9, "op": "SCMP_CMP_EQ"}]}]
    }));
    for arch in ARCHES {
        let prog = compile_for(&p, arch).unwrap();
        assert_eq!(
            call(&prog, arch, "socket", [16, 3, 9, 0, 0, 0]),
            RET_ERRNO | 1
        );
        assert_eq!(call(&prog, arch, "socket", [16, 3, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(call(&prog, arch, "socket", [2, 3, 9, 0, 0, 0]), RET_ALLOW);
    }
}

#[test]
fn bad_profiles_name_the_field() {
    let field = |v: serde_json::Value| compile(&profile(v)).unwrap_err().field().to_string();
    assert_eq!(
        field(serde_json::json!({"defaultAction": "SCMP_ACT_NOTIFY"})),
        "linux.seccomp.defaultAction (SCMP_ACT_NOTIFY)"
    );
    assert_eq!(
        field(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5000}]})),
        "linux.seccomp.syscalls[0].action"
    );
    assert_eq!(
        field(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["read", "no_such_call"], "action": "SCMP_ACT_ERRNO"}]})),
        "linux.seccomp.syscalls[0].names[1]"
    );
    assert_eq!(
        field(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]})),
        "linux.seccomp.syscalls[0].args[0].index"
    );
}

#[test]
fn a_profile_allowing_every_syscall_fits() {
    let mut names: Vec<&str> = ARCHES.iter().flat_map(|a| a.names()).collect();
    names.sort_unstable();
    names.dedup();
    let p = profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32",
                          "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390X"],
        "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]
    }));
    for arch in ARCHES {
        let prog = compile_for(&p, arch).unwrap();
        assert!(
            prog.insns.len() < bpf::MAX_INSNS,
            "{arch:?}: {}",
            prog.insns.len()
        );
        assert_eq!(call(&prog, arch, "read", [0; 6]), RET_ALLOW);
    }
}
