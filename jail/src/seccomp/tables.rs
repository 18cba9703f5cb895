//! Syscall numbers and audit architecture values per architecture. The numbers
//! come from the kernel's own syscall tables ([`syscall_tables`], generated), so
//! the filter compiles for every architecture on any host and on stable Rust.

use oci_spec::runtime::Arch;

use super::syscall_tables;

/// An architecture a filter section is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterArch {
    /// x86-64.
    X86_64,
    /// 32-bit x86 binaries on an x86-64 kernel.
    X86,
    /// x32 binaries on an x86-64 kernel (x86-64 numbers with bit 30 set).
    X32,
    /// AArch64.
    Aarch64,
    /// 32-bit ARM (EABI) binaries on an AArch64 kernel.
    Arm,
    /// 64-bit little-endian POWER.
    Ppc64le,
    /// 64-bit IBM Z.
    S390x,
}

/// The x32 ABI marks its syscall numbers with this bit.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

impl FilterArch {
    /// The architecture this binary was built for.
    pub fn native() -> FilterArch {
        if cfg!(target_arch = "aarch64") {
            FilterArch::Aarch64
        } else if cfg!(target_arch = "powerpc64") {
            FilterArch::Ppc64le
        } else if cfg!(target_arch = "s390x") {
            FilterArch::S390x
        } else {
            FilterArch::X86_64
        }
    }

    /// The `AUDIT_ARCH_*` value the kernel reports in `seccomp_data.arch`.
    pub fn audit_arch(self) -> u32 {
        match self {
            FilterArch::X86_64 | FilterArch::X32 => 0xc000_003e,
            FilterArch::X86 => 0x4000_0003,
            FilterArch::Aarch64 => 0xc000_00b7,
            FilterArch::Arm => 0x4000_0028,
            FilterArch::Ppc64le => 0xc000_0015,
            FilterArch::S390x => 0x8000_0016,
        }
    }

    /// Whether `seccomp_data` is big-endian (the high half of an argument first).
    pub fn big_endian(self) -> bool {
        self == FilterArch::S390x
    }

    /// The secondary ABIs a kernel of this architecture may also run.
    pub fn compat_arches(self) -> &'static [FilterArch] {
        match self {
            FilterArch::X86_64 => &[FilterArch::X86, FilterArch::X32],
            FilterArch::Aarch64 => &[FilterArch::Arm],
            _ => &[],
        }
    }

    /// The filter architecture an OCI `SCMP_ARCH_*` value names, if the jail has a
    /// table for it.
    pub fn from_oci(arch: Arch) -> Option<FilterArch> {
        match arch {
            Arch::ScmpArchNative => Some(FilterArch::native()),
            Arch::ScmpArchX86_64 => Some(FilterArch::X86_64),
            Arch::ScmpArchX86 => Some(FilterArch::X86),
            Arch::ScmpArchX32 => Some(FilterArch::X32),
            Arch::ScmpArchAarch64 => Some(FilterArch::Aarch64),
            Arch::ScmpArchArm => Some(FilterArch::Arm),
            Arch::ScmpArchPpc64le => Some(FilterArch::Ppc64le),
            Arch::ScmpArchS390x => Some(FilterArch::S390x),
            _ => None,
        }
    }

    fn table(self) -> &'static [(&'static str, u32)] {
        match self {
            FilterArch::X86_64 => syscall_tables::X86_64,
            FilterArch::X32 => syscall_tables::X32,
            FilterArch::X86 => syscall_tables::X86,
            FilterArch::Aarch64 => syscall_tables::AARCH64,
            FilterArch::Arm => syscall_tables::ARM,
            FilterArch::Ppc64le => syscall_tables::PPC64LE,
            FilterArch::S390x => syscall_tables::S390X,
        }
    }

    /// The number of syscall `name` on this architecture, if it has one.
    pub fn syscall(self, name: &str) -> Option<u32> {
        let table = self.table();
        let i = table.binary_search_by(|(n, _)| (*n).cmp(name)).ok()?;
        Some(table[i].1)
    }

    /// Every syscall name of this architecture.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        self.table().iter().map(|(n, _)| *n)
    }

    /// Whether any architecture the jail knows has a syscall called `name`.
    pub fn known_anywhere(name: &str) -> bool {
        ALL.iter().any(|a| a.syscall(name).is_some())
    }
}

const ALL: [FilterArch; 7] = [
    FilterArch::X86_64,
    FilterArch::X86,
    FilterArch::X32,
    FilterArch::Aarch64,
    FilterArch::Arm,
    FilterArch::Ppc64le,
    FilterArch::S390x,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_give_the_kernel_numbers() {
        assert_eq!(FilterArch::X86_64.syscall("mkdir"), Some(83));
        assert_eq!(FilterArch::X86_64.syscall("mkdirat"), Some(258));
        assert_eq!(FilterArch::Aarch64.syscall("mkdirat"), Some(34));
        assert_eq!(FilterArch::Aarch64.syscall("mkdir"), None);
        assert_eq!(FilterArch::Ppc64le.syscall("mkdir"), Some(39));
        assert_eq!(FilterArch::S390x.syscall("mkdir"), Some(39));
        assert_eq!(FilterArch::X86.syscall("mkdir"), Some(39));
        assert_eq!(FilterArch::X32.syscall("read"), Some(X32_SYSCALL_BIT));
        assert!(FilterArch::known_anywhere("mkdir"));
        assert!(!FilterArch::known_anywhere("mkdirr"));
        // x32 has numbers of its own for some calls.
        assert_eq!(
            FilterArch::X32.syscall("rt_sigaction"),
            Some(512 | X32_SYSCALL_BIT)
        );
        assert_eq!(FilterArch::X86_64.syscall("rt_sigaction"), Some(13));
    }

    #[test]
    fn tables_are_sorted_for_binary_search() {
        for arch in ALL {
            let names: Vec<&str> = arch.names().collect();
            assert!(names.windows(2).all(|w| w[0] < w[1]), "{arch:?}");
            assert!(names.len() > 300, "{arch:?}: {}", names.len());
        }
    }
}
