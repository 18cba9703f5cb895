//! Checks that a binary can run as PID 1 of a Hull guest: a 64-bit ELF executable for
//! the target architecture, statically linked.
//!
//! "Static" means: no `PT_INTERP` program header and no `DT_NEEDED` entry in the
//! dynamic section. A static-PIE binary (the default for Rust's musl targets) is an
//! `ET_DYN` file with a dynamic section but no needed libraries, so it passes; a shared
//! library has needed entries or no entry point and fails.
//!
//! Limitation: only 64-bit ELF is accepted, since every Hull architecture is 64-bit.

use std::path::Path;

use crate::arch::{Arch, Endian};

const MAGIC: &[u8; 4] = b"\x7fELF";
const CLASS_64: u8 = 2;
const DATA_LSB: u8 = 1;
const DATA_MSB: u8 = 2;
const HEADER_LEN: usize = 64;
const PHDR_LEN: usize = 56;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DYN_LEN: usize = 16;

/// Why a binary is not a static executable for the target.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// The file cannot be read.
    #[error("cannot read the file (does it exist?)")]
    Read(#[source] std::io::Error),
    /// The file does not start with the ELF magic.
    #[error("not an ELF binary")]
    NotElf,
    /// The header or a program header lies outside the file.
    #[error("truncated ELF file ({0} out of bounds)")]
    Truncated(&'static str),
    /// A 32-bit binary.
    #[error("32-bit ELF binary; {0} needs a 64-bit one")]
    Not64Bit(Arch),
    /// The byte order does not match the target.
    #[error("{found:?}-endian ELF binary; {arch} needs {expected:?}-endian")]
    WrongEndian {
        /// The file's byte order.
        found: Endian,
        /// The target's byte order.
        expected: Endian,
        /// The target.
        arch: Arch,
    },
    /// Built for another machine.
    #[error("built for {found} (e_machine {machine}), not for {arch} (e_machine {expected})")]
    WrongMachine {
        /// The name of the file's machine.
        found: &'static str,
        /// The file's `e_machine`.
        machine: u16,
        /// The target.
        arch: Arch,
        /// The target's `e_machine`.
        expected: u16,
    },
    /// Not an executable (a relocatable object, a core file, a library).
    #[error("not an executable (ELF type {0})")]
    NotExecutable(u16),
    /// Has a program interpreter.
    #[error("dynamically linked (interpreter {0}); a static binary is needed")]
    Interpreter(String),
    /// Needs shared libraries.
    #[error("needs shared libraries; a static binary is needed")]
    NeedsLibraries,
}

/// Checks the binary at `path` (see the module doc for the rules).
pub fn check_static_executable(path: &Path, arch: Arch) -> Result<(), ElfError> {
    let bytes = std::fs::read(path).map_err(ElfError::Read)?;
    check_bytes(&bytes, arch)
}

/// The architecture a 64-bit ELF binary was built for, if it is one Hull supports.
pub fn detect_arch(path: &Path) -> Result<Option<Arch>, ElfError> {
    let bytes = std::fs::read(path).map_err(ElfError::Read)?;
    Ok(Arch::ALL.into_iter().find(|&arch| {
        Elf::parse(&bytes, arch)
            .and_then(|elf| elf.u16_at(18))
            .is_ok_and(|machine| machine == arch.elf_machine())
    }))
}

/// Checks an ELF image held in memory.
pub fn check_bytes(bytes: &[u8], arch: Arch) -> Result<(), ElfError> {
    let elf = Elf::parse(bytes, arch)?;
    let machine = elf.u16_at(18)?;
    if machine != arch.elf_machine() {
        return Err(ElfError::WrongMachine {
            found: machine_name(machine),
            machine,
            arch,
            expected: arch.elf_machine(),
        });
    }
    let kind = elf.u16_at(16)?;
    if !(kind == ET_EXEC || kind == ET_DYN) || elf.u64_at(24)? == 0 {
        return Err(ElfError::NotExecutable(kind));
    }
    elf.check_program_headers()
}

/// A bounds-checked view of a 64-bit ELF file in a known byte order.
struct Elf<'a> {
    bytes: &'a [u8],
    endian: Endian,
}

impl<'a> Elf<'a> {
    fn parse(bytes: &'a [u8], arch: Arch) -> Result<Self, ElfError> {
        if bytes.len() < 6 || &bytes[..4] != MAGIC {
            return Err(ElfError::NotElf);
        }
        if bytes[4] != CLASS_64 {
            return Err(ElfError::Not64Bit(arch));
        }
        let endian = match bytes[5] {
            DATA_LSB => Endian::Little,
            DATA_MSB => Endian::Big,
            _ => return Err(ElfError::NotElf),
        };
        if endian != arch.endian() {
            let expected = arch.endian();
            return Err(ElfError::WrongEndian {
                found: endian,
                expected,
                arch,
            });
        }
        if bytes.len() < HEADER_LEN {
            return Err(ElfError::Truncated("header"));
        }
        Ok(Self { bytes, endian })
    }

    fn slice(&self, offset: u64, len: usize, what: &'static str) -> Result<&'a [u8], ElfError> {
        let start = usize::try_from(offset).map_err(|_| ElfError::Truncated(what))?;
        let end = start.checked_add(len).ok_or(ElfError::Truncated(what))?;
        self.bytes.get(start..end).ok_or(ElfError::Truncated(what))
    }

    fn u16_at(&self, offset: u64) -> Result<u16, ElfError> {
        let b: [u8; 2] = self.slice(offset, 2, "field")?.try_into().expect("2 bytes");
        Ok(match self.endian {
            Endian::Little => u16::from_le_bytes(b),
            Endian::Big => u16::from_be_bytes(b),
        })
    }

    fn u32_at(&self, offset: u64) -> Result<u32, ElfError> {
        let b: [u8; 4] = self.slice(offset, 4, "field")?.try_into().expect("4 bytes");
        Ok(match self.endian {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        })
    }

    fn u64_at(&self, offset: u64) -> Result<u64, ElfError> {
        let b: [u8; 8] = self.slice(offset, 8, "field")?.try_into().expect("8 bytes");
        Ok(match self.endian {
            Endian::Little => u64::from_le_bytes(b),
            Endian::Big => u64::from_be_bytes(b),
        })
    }

    /// Rejects an interpreter or a needed library in any program header.
    fn check_program_headers(&self) -> Result<(), ElfError> {
        let phoff = self.u64_at(32)?;
        let phnum = u64::from(self.u16_at(56)?);
        for index in 0..phnum {
            let ph = phoff + index * PHDR_LEN as u64;
            self.slice(ph, PHDR_LEN, "program header")?;
            match self.u32_at(ph)? {
                PT_INTERP => return Err(ElfError::Interpreter(self.interpreter(ph)?)),
                PT_DYNAMIC => self.check_dynamic(ph)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn interpreter(&self, ph: u64) -> Result<String, ElfError> {
        let (offset, size) = (self.u64_at(ph + 8)?, self.u64_at(ph + 32)?);
        let len = usize::try_from(size).map_err(|_| ElfError::Truncated("interpreter"))?;
        let raw = self.slice(offset, len, "interpreter")?;
        let name = raw.split(|&b| b == 0).next().unwrap_or_default();
        Ok(String::from_utf8_lossy(name).into_owned())
    }

    fn check_dynamic(&self, ph: u64) -> Result<(), ElfError> {
        let (offset, size) = (self.u64_at(ph + 8)?, self.u64_at(ph + 32)?);
        for entry in 0..size / DYN_LEN as u64 {
            let at = offset + entry * DYN_LEN as u64;
            match self.u64_at(at)? {
                DT_NULL => break,
                DT_NEEDED => return Err(ElfError::NeedsLibraries),
                _ => {}
            }
        }
        Ok(())
    }
}

/// A readable name for the machines a wrong binary most likely comes from.
fn machine_name(machine: u16) -> &'static str {
    match machine {
        3 => "i386",
        8 => "mips",
        20 => "ppc",
        21 => "ppc64",
        22 => "s390",
        40 => "arm",
        62 => "x86_64",
        183 => "aarch64",
        243 => "riscv",
        258 => "loongarch",
        _ => "another machine",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a minimal ELF64 image: header, `phdrs` program headers, then `tail`.
    fn image(arch: Arch, kind: u16, phdrs: &[(u32, u64, u64)], tail: &[u8]) -> Vec<u8> {
        let e = arch.endian();
        let put16 = |v: u16| match e {
            Endian::Little => v.to_le_bytes().to_vec(),
            Endian::Big => v.to_be_bytes().to_vec(),
        };
        let put32 = |v: u32| match e {
            Endian::Little => v.to_le_bytes().to_vec(),
            Endian::Big => v.to_be_bytes().to_vec(),
        };
        let put64 = |v: u64| match e {
            Endian::Little => v.to_le_bytes().to_vec(),
            Endian::Big => v.to_be_bytes().to_vec(),
        };
        let mut b = MAGIC.to_vec();
        b.extend([
            CLASS_64,
            if e == Endian::Little {
                DATA_LSB
            } else {
                DATA_MSB
            },
            1,
        ]);
        b.resize(16, 0);
        b.extend(put16(kind));
        b.extend(put16(arch.elf_machine()));
        b.extend(put32(1));
        b.extend(put64(0x401000)); // entry
        b.extend(put64(HEADER_LEN as u64)); // phoff
        b.extend(put64(0)); // shoff
        b.extend(put32(0));
        b.extend(put16(HEADER_LEN as u16));
        b.extend(put16(PHDR_LEN as u16));
        b.extend(put16(phdrs.len() as u16));
        b.resize(HEADER_LEN, 0);
        for &(kind, offset, size) in phdrs {
            let start = b.len();
            b.extend(put32(kind));
            b.extend(put32(0));
            b.extend(put64(offset));
            b.resize(start + 32, 0);
            b.extend(put64(size));
            b.resize(start + PHDR_LEN, 0);
        }
        b.extend(tail);
        b
    }

    fn tail_offset(phdrs: usize) -> u64 {
        (HEADER_LEN + phdrs * PHDR_LEN) as u64
    }

    #[test]
    fn static_executables_pass_for_every_arch() {
        for arch in Arch::ALL {
            check_bytes(&image(arch, ET_EXEC, &[(1, 0, 0)], &[]), arch).unwrap();
        }
    }

    #[test]
    fn static_pie_without_needed_libraries_passes() {
        let mut dynamic = vec![0u8; 32];
        dynamic[0] = 0x1e; // DT_FLAGS, then DT_NULL
        let off = tail_offset(1);
        let bin = image(Arch::X86_64, ET_DYN, &[(PT_DYNAMIC, off, 32)], &dynamic);
        check_bytes(&bin, Arch::X86_64).unwrap();
    }

    #[test]
    fn needed_library_is_rejected() {
        let mut dynamic = vec![0u8; 32];
        dynamic[7] = DT_NEEDED as u8; // big-endian tag
        let off = tail_offset(1);
        let bin = image(Arch::S390x, ET_DYN, &[(PT_DYNAMIC, off, 32)], &dynamic);
        let err = check_bytes(&bin, Arch::S390x).unwrap_err();
        assert!(matches!(err, ElfError::NeedsLibraries), "{err}");
    }

    #[test]
    fn interpreter_is_named() {
        let interp = b"/lib/ld-musl-aarch64.so.1\0";
        let off = tail_offset(1);
        let bin = image(
            Arch::Aarch64,
            ET_DYN,
            &[(PT_INTERP, off, interp.len() as u64)],
            interp,
        );
        let err = check_bytes(&bin, Arch::Aarch64).unwrap_err();
        assert!(err.to_string().contains("ld-musl-aarch64.so.1"), "{err}");
    }

    #[test]
    fn wrong_machine_names_both() {
        let bin = image(Arch::X86_64, ET_EXEC, &[], &[]);
        let err = check_bytes(&bin, Arch::Ppc64le).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("x86_64") && text.contains("ppc64le"),
            "{text}"
        );
    }

    #[test]
    fn wrong_byte_order_is_rejected() {
        let mut bin = image(Arch::Ppc64le, ET_EXEC, &[], &[]);
        bin[5] = DATA_MSB;
        let err = check_bytes(&bin, Arch::Ppc64le).unwrap_err();
        assert!(matches!(err, ElfError::WrongEndian { .. }), "{err}");
    }

    #[test]
    fn garbage_and_truncation_are_rejected() {
        assert!(matches!(
            check_bytes(b"#!/bin/sh\n", Arch::X86_64),
            Err(ElfError::NotElf)
        ));
        let bin = image(Arch::X86_64, ET_EXEC, &[(1, 0, 0)], &[]);
        let err = check_bytes(&bin[..HEADER_LEN + 8], Arch::X86_64).unwrap_err();
        assert!(matches!(err, ElfError::Truncated(_)), "{err}");
    }

    #[test]
    fn detects_the_arch_of_a_file() {
        let dir = tempfile::tempdir().unwrap();
        for arch in Arch::ALL {
            let path = dir.path().join(arch.name());
            std::fs::write(&path, image(arch, ET_EXEC, &[], &[])).unwrap();
            assert_eq!(detect_arch(&path).unwrap(), Some(arch));
        }
        std::fs::write(dir.path().join("sh"), b"#!/bin/sh\n").unwrap();
        assert_eq!(detect_arch(&dir.path().join("sh")).unwrap(), None);
    }

    #[test]
    fn relocatable_objects_are_not_executables() {
        let bin = image(Arch::X86_64, 1, &[], &[]);
        let err = check_bytes(&bin, Arch::X86_64).unwrap_err();
        assert!(matches!(err, ElfError::NotExecutable(1)), "{err}");
    }
}
