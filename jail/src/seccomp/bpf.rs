//! A small classic-BPF assembler with labels, and (for tests) an interpreter.
//!
//! Conditional jumps in classic BPF reach at most 255 instructions ahead; the
//! assembler reports a jump that does not fit instead of encoding a wrong one.
//! Long distances use `ja`, whose offset is 32 bits.

use serde::{Deserialize, Serialize};

/// `BPF_LD | BPF_W | BPF_ABS`: load a 32-bit word of `seccomp_data`.
pub const LD_ABS: u16 = 0x20;
/// `BPF_ALU | BPF_AND | BPF_K`.
pub const AND_K: u16 = 0x54;
/// `BPF_JMP | BPF_JA`.
pub const JA: u16 = 0x05;
/// `BPF_JMP | BPF_JEQ | BPF_K`.
pub const JEQ_K: u16 = 0x15;
/// `BPF_JMP | BPF_JGT | BPF_K`.
pub const JGT_K: u16 = 0x25;
/// `BPF_JMP | BPF_JGE | BPF_K`.
pub const JGE_K: u16 = 0x35;
/// `BPF_RET | BPF_K`.
pub const RET_K: u16 = 0x06;

/// The most instructions the kernel accepts in one filter.
pub const MAX_INSNS: usize = 4096;

/// One encoded instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Insn {
    /// Opcode.
    pub code: u16,
    /// Jump offset if true.
    pub jt: u8,
    /// Jump offset if false.
    pub jf: u8,
    /// Constant operand.
    pub k: u32,
}

impl Insn {
    /// As the kernel's `sock_filter`.
    pub fn to_sock_filter(self) -> libc::sock_filter {
        libc::sock_filter {
            code: self.code,
            jt: self.jt,
            jf: self.jf,
            k: self.k,
        }
    }
}

/// A jump destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The next instruction.
    Next,
    /// A label placed with [`Asm::place`].
    Label(usize),
}

/// Errors of the assembler.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BpfError {
    /// A conditional jump is longer than 255 instructions.
    #[error("conditional jump too long ({0} instructions)")]
    JumpTooLong(usize),
    /// The program is larger than the kernel accepts.
    #[error("filter too long ({0} instructions, at most 4096)")]
    TooLong(usize),
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    code: u16,
    jt: Target,
    jf: Target,
    k: u32,
    /// For `ja`: the label `k` refers to.
    ja: Option<usize>,
}

/// Builds a program with symbolic jump targets.
#[derive(Debug, Default)]
pub struct Asm {
    insns: Vec<Pending>,
    labels: Vec<Option<usize>>,
}

impl Asm {
    /// A fresh label, to be placed later.
    pub fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }

    /// Places `label` at the next instruction.
    pub fn place(&mut self, label: usize) {
        self.labels[label] = Some(self.insns.len());
    }

    /// `A = seccomp_data[offset]`.
    pub fn load(&mut self, offset: u32) {
        self.push(LD_ABS, Target::Next, Target::Next, offset);
    }

    /// `A &= k`.
    pub fn and(&mut self, k: u32) {
        self.push(AND_K, Target::Next, Target::Next, k);
    }

    /// Compare-and-jump: `code` is one of [`JEQ_K`], [`JGT_K`], [`JGE_K`].
    pub fn jump_if(&mut self, code: u16, k: u32, jt: Target, jf: Target) {
        self.push(code, jt, jf, k);
    }

    /// Unconditional jump to `label`.
    pub fn jump(&mut self, label: usize) {
        self.insns.push(Pending {
            code: JA,
            jt: Target::Next,
            jf: Target::Next,
            k: 0,
            ja: Some(label),
        });
    }

    /// Returns `action` from the filter.
    pub fn ret(&mut self, action: u32) {
        self.push(RET_K, Target::Next, Target::Next, action);
    }

    fn push(&mut self, code: u16, jt: Target, jf: Target, k: u32) {
        self.insns.push(Pending {
            code,
            jt,
            jf,
            k,
            ja: None,
        });
    }

    /// Resolves labels into offsets.
    pub fn finish(self) -> Result<Vec<Insn>, BpfError> {
        if self.insns.len() > MAX_INSNS {
            return Err(BpfError::TooLong(self.insns.len()));
        }
        let mut out = Vec::with_capacity(self.insns.len());
        for (pc, p) in self.insns.iter().enumerate() {
            let k = match p.ja {
                Some(label) => self.distance(pc, label) as u32,
                None => p.k,
            };
            out.push(Insn {
                code: p.code,
                jt: self.short(pc, p.jt)?,
                jf: self.short(pc, p.jf)?,
                k,
            });
        }
        Ok(out)
    }

    fn distance(&self, pc: usize, label: usize) -> usize {
        let at = self.labels[label].unwrap_or_else(|| panic!("bpf label {label} never placed"));
        at - (pc + 1)
    }

    fn short(&self, pc: usize, t: Target) -> Result<u8, BpfError> {
        match t {
            Target::Next => Ok(0),
            Target::Label(l) => {
                let d = self.distance(pc, l);
                u8::try_from(d).map_err(|_| BpfError::JumpTooLong(d))
            }
        }
    }
}

/// Runs `prog` over a `seccomp_data` as the kernel would (tests only).
#[cfg(test)]
pub fn run(prog: &[Insn], data: &[u8; 64], big_endian: bool) -> u32 {
    let mut a: u32 = 0;
    let mut pc = 0usize;
    loop {
        let i = prog[pc];
        pc += 1;
        match i.code {
            LD_ABS => {
                let o = i.k as usize;
                let w = [data[o], data[o + 1], data[o + 2], data[o + 3]];
                a = if big_endian {
                    u32::from_be_bytes(w)
                } else {
                    u32::from_le_bytes(w)
                };
            }
            AND_K => a &= i.k,
            JA => pc += i.k as usize,
            JEQ_K | JGT_K | JGE_K => {
                let taken = match i.code {
                    JEQ_K => a == i.k,
                    JGT_K => a > i.k,
                    _ => a >= i.k,
                };
                pc += if taken { i.jt as usize } else { i.jf as usize };
            }
            RET_K => return i.k,
            other => panic!("unknown bpf opcode {other:#x}"),
        }
    }
}

/// Lays out a `seccomp_data` (tests only).
#[cfg(test)]
pub fn data(nr: u32, arch: u32, args: [u64; 6], big_endian: bool) -> [u8; 64] {
    let mut d = [0u8; 64];
    let w32 = |v: u32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let w64 = |v: u64| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    d[0..4].copy_from_slice(&w32(nr));
    d[4..8].copy_from_slice(&w32(arch));
    for (i, v) in args.iter().enumerate() {
        d[16 + 8 * i..24 + 8 * i].copy_from_slice(&w64(*v));
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_resolve_forward() {
        let mut asm = Asm::default();
        let yes = asm.label();
        asm.load(0);
        asm.jump_if(JEQ_K, 5, Target::Label(yes), Target::Next);
        asm.ret(1);
        asm.place(yes);
        asm.ret(2);
        let prog = asm.finish().unwrap();
        assert_eq!(prog[1].jt, 1);
        assert_eq!(run(&prog, &data(5, 0, [0; 6], false), false), 2);
        assert_eq!(run(&prog, &data(6, 0, [0; 6], false), false), 1);
    }

    #[test]
    fn long_conditional_jumps_are_refused() {
        let mut asm = Asm::default();
        let far = asm.label();
        asm.jump_if(JEQ_K, 0, Target::Label(far), Target::Next);
        for _ in 0..300 {
            asm.ret(0);
        }
        asm.place(far);
        asm.ret(1);
        assert_eq!(asm.finish(), Err(BpfError::JumpTooLong(300)));
    }

    #[test]
    fn unconditional_jumps_go_far() {
        let mut asm = Asm::default();
        let far = asm.label();
        asm.jump(far);
        for _ in 0..300 {
            asm.ret(0);
        }
        asm.place(far);
        asm.ret(7);
        let prog = asm.finish().unwrap();
        assert_eq!(run(&prog, &data(0, 0, [0; 6], false), false), 7);
    }
}
