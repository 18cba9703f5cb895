//! The OCI seccomp profile compiled to a classic BPF filter, in pure Rust, for
//! x86_64, aarch64, ppc64le and s390x.
//!
//! Design: the parent compiles the profile (so a malformed one is refused before any
//! process exists) and hands the finished program to the child, which installs it.
//! The filter first checks `seccomp_data.arch`: the native architecture, plus the
//! compat ABIs the profile lists (x86 and x32 on x86_64, arm on aarch64), each get a
//! section; any other architecture is killed. In a section, rules run in profile
//! order and the first match wins; an unmatched call gets the default action.
//! Arguments are 64-bit, compared as two 32-bit halves.
//!
//! Limitations: `SCMP_ACT_NOTIFY` (and so `listenerPath` and the
//! `WAIT_KILLABLE_RECV` flag) is refused. A listed compat
//! architecture without a table (s390 on s390x) is killed, never allowed. A syscall
//! name that no table knows is an error; one that exists on some other
//! architecture only is skipped.

pub mod bpf;
#[rustfmt::skip]
pub mod syscall_tables;
pub mod tables;

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, LinuxSyscall,
};
use serde::{Deserialize, Serialize};

use crate::spec::{invalid, SpecError};
use bpf::{Asm, Insn, Target, JEQ_K, JGE_K, JGT_K};
use tables::{FilterArch, X32_SYSCALL_BIT};

const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_KILL_THREAD: u32 = 0;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

const FLAG_TSYNC: u32 = 1;
const FLAG_LOG: u32 = 2;
const FLAG_SPEC_ALLOW: u32 = 4;

/// The highest errno a filter may return.
const MAX_ERRNO: u32 = 4095;
/// Syscall arguments are numbered 0 to 5.
const MAX_ARG_INDEX: usize = 5;
/// Consecutive argument-less syscalls share one block of at most this many tests.
const CHUNK: usize = 128;
/// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;

/// A compiled filter, ready to install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Program {
    /// `SECCOMP_FILTER_FLAG_*` bits for `seccomp(2)`.
    pub flags: u32,
    /// The instructions.
    pub insns: Vec<Insn>,
}

impl Program {
    /// Installs the filter on the calling thread (and, with TSYNC, its process).
    pub fn install(&self) -> std::io::Result<()> {
        let prog: Vec<libc::sock_filter> = self.insns.iter().map(|i| i.to_sock_filter()).collect();
        crate::sys::seccomp_set_filter(self.flags, &prog)
    }
}

/// Compiles `profile` for the architecture this binary runs on.
pub fn compile(profile: &LinuxSeccomp) -> Result<Program, SpecError> {
    compile_for(profile, FilterArch::native())
}

/// One syscall test in a section.
struct Entry<'a> {
    nr: u32,
    args: &'a [LinuxSeccompArg],
    action: u32,
}

/// Compiles `profile` for a kernel of architecture `native`.
pub fn compile_for(profile: &LinuxSeccomp, native: FilterArch) -> Result<Program, SpecError> {
    let flags = filter_flags(profile)?;
    if profile.listener_path().is_some() {
        return Err(SpecError::Unsupported {
            field: "linux.seccomp.listenerPath".into(),
        });
    }
    let default = action_value(
        profile.default_action(),
        profile.default_errno_ret(),
        "linux.seccomp.defaultAction",
    )?;
    let rules = profile.syscalls().as_deref().unwrap_or_default();
    check_rules(rules)?;
    let arches = section_arches(profile, native);

    let mut asm = Asm::default();
    let kill = asm.label();
    let sections: Vec<(FilterArch, usize)> = arches.iter().map(|a| (*a, asm.label())).collect();
    emit_arch_dispatch(&mut asm, &sections, kill);
    let x32 = sections
        .iter()
        .find(|(a, _)| *a == FilterArch::X32)
        .map(|s| s.1);
    for (arch, label) in &sections {
        asm.place(*label);
        let entries = entries_for(rules, *arch)?;
        let escape = if *arch == FilterArch::X86_64 {
            Some(x32.unwrap_or(kill))
        } else {
            None
        };
        emit_section(&mut asm, escape, *arch, &entries, default);
    }
    asm.place(kill);
    asm.ret(RET_KILL_PROCESS);
    let insns = asm
        .finish()
        .map_err(|e| invalid("linux.seccomp", e.to_string()))?;
    Ok(Program { flags, insns })
}

fn filter_flags(profile: &LinuxSeccomp) -> Result<u32, SpecError> {
    let mut flags = 0;
    for (i, f) in profile
        .flags()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                return Err(SpecError::Unsupported {
                    field: format!("linux.seccomp.flags[{i}]"),
                })
            }
        };
    }
    Ok(flags)
}

/// The native architecture first, then the compat ABIs the profile lists.
fn section_arches(profile: &LinuxSeccomp, native: FilterArch) -> Vec<FilterArch> {
    let mut out = vec![native];
    for arch in profile.architectures().as_deref().unwrap_or_default() {
        match FilterArch::from_oci(*arch) {
            Some(a) if native.compat_arches().contains(&a) && !out.contains(&a) => out.push(a),
            Some(_) => {}
            None => tracing::debug!(arch = ?arch, "seccomp architecture without a table is killed"),
        }
    }
    out
}

fn action_value(
    action: LinuxSeccompAction,
    errno: Option<u32>,
    field: &str,
) -> Result<u32, SpecError> {
    let data = errno.unwrap_or(libc::EPERM as u32);
    if errno.is_some_and(|e| e > MAX_ERRNO) {
        return Err(invalid(field, format!("errno {data} is above {MAX_ERRNO}")));
    }
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => RET_KILL_THREAD,
        LinuxSeccompAction::ScmpActKillProcess => RET_KILL_PROCESS,
        LinuxSeccompAction::ScmpActTrap => RET_TRAP,
        LinuxSeccompAction::ScmpActErrno => RET_ERRNO | data,
        LinuxSeccompAction::ScmpActTrace => RET_TRACE | data,
        LinuxSeccompAction::ScmpActLog => RET_LOG,
        LinuxSeccompAction::ScmpActAllow => RET_ALLOW,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(SpecError::Unsupported {
                field: format!("{field} (SCMP_ACT_NOTIFY)"),
            })
        }
    })
}

/// Checks names, actions and arguments of every rule, naming the one at fault.
fn check_rules(rules: &[LinuxSyscall]) -> Result<(), SpecError> {
    for (i, rule) in rules.iter().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        action_value(rule.action(), rule.errno_ret(), &format!("{field}.action"))?;
        if rule.names().is_empty() {
            return Err(invalid(format!("{field}.names"), "empty"));
        }
        for (j, name) in rule.names().iter().enumerate() {
            if !FilterArch::known_anywhere(name) {
                return Err(invalid(
                    format!("{field}.names[{j}]"),
                    format!("unknown syscall {name:?}"),
                ));
            }
        }
        for (j, arg) in rule
            .args()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            if arg.index() > MAX_ARG_INDEX {
                let f = format!("{field}.args[{j}].index");
                return Err(invalid(
                    f,
                    format!("{} is above {MAX_ARG_INDEX}", arg.index()),
                ));
            }
        }
    }
    Ok(())
}

fn entries_for(rules: &[LinuxSyscall], arch: FilterArch) -> Result<Vec<Entry<'_>>, SpecError> {
    let mut out = Vec::new();
    for rule in rules {
        let action = action_value(rule.action(), rule.errno_ret(), "linux.seccomp.syscalls")?;
        let args = rule.args().as_deref().unwrap_or_default();
        for name in rule.names() {
            if let Some(nr) = arch.syscall(name) {
                out.push(Entry { nr, args, action });
            }
        }
    }
    Ok(out)
}

/// `A = arch`, then a jump to each section's label; unknown arches are killed.
fn emit_arch_dispatch(asm: &mut Asm, sections: &[(FilterArch, usize)], kill: usize) {
    asm.load(OFF_ARCH);
    let mut seen = Vec::new();
    for (arch, label) in sections {
        // x32 shares x86-64's audit value; its section is reached from there.
        if seen.contains(&arch.audit_arch()) {
            continue;
        }
        seen.push(arch.audit_arch());
        let skip = asm.label();
        asm.jump_if(JEQ_K, arch.audit_arch(), Target::Next, Target::Label(skip));
        asm.jump(*label);
        asm.place(skip);
    }
    asm.jump(kill);
}

/// One architecture's rules. On x86-64, `x32` is where calls with the x32 bit go
/// (x32 shares x86-64's audit value): the x32 section, or the kill.
fn emit_section(
    asm: &mut Asm,
    x32: Option<usize>,
    arch: FilterArch,
    entries: &[Entry<'_>],
    default: u32,
) {
    if let Some(x32) = x32 {
        asm.load(OFF_NR);
        let native = asm.label();
        asm.jump_if(JGE_K, X32_SYSCALL_BIT, Target::Next, Target::Label(native));
        asm.jump(x32);
        asm.place(native);
    }
    let mut i = 0;
    while i < entries.len() {
        if entries[i].args.is_empty() {
            let end = plain_run_end(entries, i);
            emit_plain_block(asm, &entries[i..end]);
            i = end;
        } else {
            emit_arg_block(asm, &entries[i], arch.big_endian());
            i += 1;
        }
    }
    asm.ret(default);
}

fn plain_run_end(entries: &[Entry<'_>], start: usize) -> usize {
    let action = entries[start].action;
    let mut end = start;
    while end < entries.len()
        && end - start < CHUNK
        && entries[end].args.is_empty()
        && entries[end].action == action
    {
        end += 1;
    }
    end
}

/// Tests several numbers against `A = nr`, all returning the same action.
fn emit_plain_block(asm: &mut Asm, run: &[Entry<'_>]) {
    let hit = asm.label();
    let miss = asm.label();
    asm.load(OFF_NR);
    for e in run {
        asm.jump_if(JEQ_K, e.nr, Target::Label(hit), Target::Next);
    }
    asm.jump(miss);
    asm.place(hit);
    asm.ret(run[0].action);
    asm.place(miss);
}

/// One syscall with argument conditions, all of which must hold.
fn emit_arg_block(asm: &mut Asm, e: &Entry<'_>, big_endian: bool) {
    let fail = asm.label();
    asm.load(OFF_NR);
    asm.jump_if(JEQ_K, e.nr, Target::Next, Target::Label(fail));
    for arg in e.args {
        emit_condition(asm, arg, big_endian, fail);
    }
    asm.ret(e.action);
    asm.place(fail);
}

/// Jumps to `fail` unless the 64-bit argument satisfies the condition.
fn emit_condition(asm: &mut Asm, arg: &LinuxSeccompArg, big_endian: bool, fail: usize) {
    let base = OFF_ARGS + 8 * arg.index() as u32;
    let (lo_off, hi_off) = if big_endian {
        (base + 4, base)
    } else {
        (base, base + 4)
    };
    let (v_hi, v_lo) = split(arg.value());
    let pass = asm.label();
    let (f, p) = (Target::Label(fail), Target::Label(pass));
    match arg.op() {
        LinuxSeccompOperator::ScmpCmpEq => {
            asm.load(hi_off);
            asm.jump_if(JEQ_K, v_hi, Target::Next, f);
            asm.load(lo_off);
            asm.jump_if(JEQ_K, v_lo, Target::Next, f);
        }
        LinuxSeccompOperator::ScmpCmpNe => {
            asm.load(hi_off);
            asm.jump_if(JEQ_K, v_hi, Target::Next, p);
            asm.load(lo_off);
            asm.jump_if(JEQ_K, v_lo, f, Target::Next);
        }
        LinuxSeccompOperator::ScmpCmpGt | LinuxSeccompOperator::ScmpCmpGe => {
            let low_op = if arg.op() == LinuxSeccompOperator::ScmpCmpGt {
                JGT_K
            } else {
                JGE_K
            };
            asm.load(hi_off);
            asm.jump_if(JGT_K, v_hi, p, Target::Next);
            asm.jump_if(JEQ_K, v_hi, Target::Next, f);
            asm.load(lo_off);
            asm.jump_if(low_op, v_lo, Target::Next, f);
        }
        LinuxSeccompOperator::ScmpCmpLt | LinuxSeccompOperator::ScmpCmpLe => {
            // a < v  is  !(a >= v);  a <= v  is  !(a > v).
            let low_op = if arg.op() == LinuxSeccompOperator::ScmpCmpLt {
                JGE_K
            } else {
                JGT_K
            };
            asm.load(hi_off);
            asm.jump_if(JGT_K, v_hi, f, Target::Next);
            asm.jump_if(JEQ_K, v_hi, Target::Next, p);
            asm.load(lo_off);
            asm.jump_if(low_op, v_lo, f, Target::Next);
        }
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            let (d_hi, d_lo) = split(arg.value_two().unwrap_or(0));
            asm.load(hi_off);
            asm.and(v_hi);
            asm.jump_if(JEQ_K, d_hi, Target::Next, f);
            asm.load(lo_off);
            asm.and(v_lo);
            asm.jump_if(JEQ_K, d_lo, Target::Next, f);
        }
    }
    asm.place(pass);
}

fn split(v: u64) -> (u32, u32) {
    ((v >> 32) as u32, v as u32)
}

#[cfg(test)]
mod tests;
