//! Device rules on cgroup v2: a small eBPF program of type `CGROUP_DEVICE`,
//! generated from the OCI rules and attached to the container's cgroup.
//!
//! Semantics follow the v1 device controller: the last rule that matches a request
//! decides, and a request no rule matches is allowed (the usual spec starts with
//! "deny all"). An allow rule matches when it grants every requested access; a
//! deny rule when it names any of them.
//!
//! Limitation: each update replaces the program; with several programs attached
//! by others, all of them must allow a request.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

const BPF_PROG_LOAD: i32 = 5;
const BPF_PROG_ATTACH: i32 = 8;
const BPF_PROG_DETACH: i32 = 9;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

const LDX_W: u8 = 0x61;
const MOV64_K: u8 = 0xb7;
const MOV64_X: u8 = 0xbf;
const AND64_K: u8 = 0x57;
const RSH64_K: u8 = 0x77;
const JNE_K: u8 = 0x55;
const JEQ_K: u8 = 0x15;
const EXIT: u8 = 0x95;

/// Registers: r1 context, r2 type, r3 access, r4 major, r5 minor, r6 scratch.
fn prologue() -> Vec<Insn> {
    vec![
        insn(LDX_W, 2, 1, 0, 0),
        insn(AND64_K, 2, 0, 0, 0xffff),
        insn(LDX_W, 3, 1, 0, 0),
        insn(RSH64_K, 3, 0, 0, 16),
        insn(LDX_W, 4, 1, 4, 0),
        insn(LDX_W, 5, 1, 8, 0),
    ]
}

fn access_bits(access: &str) -> i32 {
    access.chars().fold(0, |acc, c| {
        acc | match c {
            'm' => ACC_MKNOD,
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            _ => 0,
        }
    })
}

/// The tests of one rule; each jumps past the rule's end on a mismatch.
fn rule_block(rule: &LinuxDeviceCgroup) -> Vec<Insn> {
    let mut tests = Vec::new();
    match rule.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::C | LinuxDeviceType::U => tests.push((JNE_K, 2, DEV_CHAR)),
        LinuxDeviceType::B => tests.push((JNE_K, 2, DEV_BLOCK)),
        _ => {}
    }
    if let Some(major) = rule.major().filter(|m| *m >= 0) {
        tests.push((JNE_K, 4, major as i32));
    }
    if let Some(minor) = rule.minor().filter(|m| *m >= 0) {
        tests.push((JNE_K, 5, minor as i32));
    }
    let access = access_bits(rule.access().as_deref().unwrap_or("rwm"));
    // Instructions after each test: the access check (3), the return (2).
    let mut out = Vec::new();
    let total = tests.len() + 5;
    for (i, (code, reg, imm)) in tests.iter().enumerate() {
        let skip = (total - i - 1) as i16;
        out.push(insn(*code, *reg, 0, skip, *imm));
    }
    out.push(insn(MOV64_X, 6, 3, 0, 0));
    if rule.allow() {
        // Every requested access granted: (req & !granted) == 0.
        out.push(insn(AND64_K, 6, 0, 0, !access & 0x7));
        out.push(insn(JNE_K, 6, 0, 2, 0));
    } else {
        // Any requested access denied: (req & denied) != 0.
        out.push(insn(AND64_K, 6, 0, 0, access));
        out.push(insn(JEQ_K, 6, 0, 2, 0));
    }
    out.push(insn(MOV64_K, 0, 0, 0, rule.allow() as i32));
    out.push(insn(EXIT, 0, 0, 0, 0));
    out
}

/// The program for `rules`.
pub fn program(rules: &[LinuxDeviceCgroup]) -> Vec<Insn> {
    let mut prog = prologue();
    for rule in rules.iter().rev() {
        prog.extend(rule_block(rule));
    }
    prog.push(insn(MOV64_K, 0, 0, 0, 1));
    prog.push(insn(EXIT, 0, 0, 0, 0));
    prog
}

#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

fn bpf<T>(cmd: i32, attr: &T) -> io::Result<i32> {
    // SAFETY: `attr` is a valid, fully initialised attribute struct of the size
    // passed, living for the call; the kernel only reads it for these commands.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *const T,
            std::mem::size_of::<T>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ret as i32)
}

/// Loads the program for `rules` and attaches it to the cgroup directory `dir`,
/// replacing `previous` (the program this jail attached before), if any.
pub fn attach(
    dir: &Path,
    rules: &[LinuxDeviceCgroup],
    previous: Option<&OwnedFd>,
) -> io::Result<OwnedFd> {
    let prog = program(rules);
    let license = b"Apache-2.0\0";
    let attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: 0,
        prog_name: *b"hull_devices\0\0\0\0",
        prog_ifindex: 0,
        expected_attach_type: BPF_CGROUP_DEVICE,
    };
    let fd = bpf(BPF_PROG_LOAD, &attr)?;
    // SAFETY: the kernel just returned this descriptor; we are its only owner.
    let prog_fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let cgroup = std::fs::File::open(dir)?;
    let attach = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog_fd.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
    };
    bpf(BPF_PROG_ATTACH, &attach)?;
    if let Some(old) = previous {
        let detach = AttachAttr {
            attach_bpf_fd: old.as_raw_fd() as u32,
            attach_flags: 0,
            ..attach
        };
        bpf(BPF_PROG_DETACH, &detach)?;
    }
    Ok(prog_fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(v: serde_json::Value) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_value(v).unwrap()
    }

    /// Runs the generated program over a request, as the kernel would.
    fn run(prog: &[Insn], typ: i32, access: i32, major: i32, minor: i32) -> i64 {
        let ctx = [((access << 16) | typ) as u32, major as u32, minor as u32];
        let mut r = [0i64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_W => r[dst] = ctx[i.off as usize / 4] as i64,
                MOV64_K => r[dst] = i.imm as i64,
                MOV64_X => r[dst] = r[src],
                AND64_K => r[dst] &= i.imm as i64,
                RSH64_K => r[dst] = ((r[dst] as u64) >> i.imm) as i64,
                JNE_K if r[dst] != i.imm as i64 => pc += i.off as usize,
                JEQ_K if r[dst] == i.imm as i64 => pc += i.off as usize,
                JNE_K | JEQ_K => {}
                EXIT => return r[0],
                other => panic!("opcode {other:#x}"),
            }
        }
    }

    #[test]
    fn the_last_matching_rule_decides() {
        let p = program(&rules(serde_json::json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "r"},
            {"allow": true, "type": "c", "major": 136, "access": "rw"},
            {"allow": false, "type": "c", "major": 136, "minor": 2, "access": "w"}
        ])));
        assert_eq!(run(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 1, 3), 1);
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 1, 3), 0, "type must match");
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 5), 1);
        assert_eq!(run(&p, DEV_CHAR, ACC_WRITE, 1, 5), 0, "access not granted");
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 136, 9), 1, "any minor");
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 136, 2), 1, "deny names only w");
        assert_eq!(run(&p, DEV_CHAR, ACC_WRITE, 136, 2), 0);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 4, 1), 0, "deny all");
    }

    #[test]
    fn no_rules_allow_everything() {
        assert_eq!(run(&program(&[]), DEV_BLOCK, ACC_MKNOD, 8, 0), 1);
    }
}
