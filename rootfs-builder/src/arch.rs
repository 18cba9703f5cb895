//! Target architectures Hull builds guest images for, and the per-architecture facts
//! the image builder needs (ELF machine, byte order, kernel console, partition types).
//!
//! Limitation: only the four 64-bit architectures Hull supports; 32-bit targets are
//! rejected by name.

use std::fmt;
use std::str::FromStr;

/// Errors from parsing an architecture name.
#[derive(Debug, thiserror::Error)]
pub enum ArchError {
    /// The name is not one of the supported architectures.
    #[error("unknown arch {0:?} (expected x86_64, aarch64, ppc64le or s390x)")]
    Unknown(String),
}

/// A guest architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// 64-bit x86.
    X86_64,
    /// 64-bit Arm.
    Aarch64,
    /// 64-bit POWER, little-endian.
    Ppc64le,
    /// IBM Z.
    S390x,
}

/// ELF byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endian {
    /// Least significant byte first (`ELFDATA2LSB`).
    Little,
    /// Most significant byte first (`ELFDATA2MSB`).
    Big,
}

impl Arch {
    /// All supported architectures.
    pub const ALL: [Arch; 4] = [Arch::X86_64, Arch::Aarch64, Arch::Ppc64le, Arch::S390x];

    /// The name used on the command line and in `build/<arch>/`.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
            Arch::Ppc64le => "ppc64le",
            Arch::S390x => "s390x",
        }
    }

    /// The ELF `e_machine` value of binaries for this architecture.
    pub fn elf_machine(self) -> u16 {
        match self {
            Arch::X86_64 => 62,
            Arch::Aarch64 => 183,
            Arch::Ppc64le => 21,
            Arch::S390x => 22,
        }
    }

    /// The byte order of binaries for this architecture.
    pub fn endian(self) -> Endian {
        match self {
            Arch::S390x => Endian::Big,
            _ => Endian::Little,
        }
    }

    /// The kernel `console=` arguments: the virtio console plus the platform's own.
    pub fn consoles(self) -> &'static str {
        match self {
            Arch::X86_64 => "console=hvc0 console=ttyS0",
            Arch::Aarch64 => "console=hvc0 console=ttyAMA0",
            Arch::Ppc64le => "console=hvc0",
            Arch::S390x => "console=hvc0 console=ttysclp0",
        }
    }

    /// The GPT partition type of a root partition, from the Discoverable Partitions
    /// Specification, so tools recognise what the partition holds.
    pub fn root_partition_type(self) -> &'static str {
        match self {
            Arch::X86_64 => "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
            Arch::Aarch64 => "b921b045-1df0-41c3-af44-4c6f280d3fae",
            Arch::Ppc64le => "c31c45e6-3f39-412e-80fb-4809c4980599",
            Arch::S390x => "5eead9a9-fe09-4a1e-a1d7-520d00531306",
        }
    }

    /// The GPT partition type of the dm-verity hash partition for the root.
    pub fn verity_partition_type(self) -> &'static str {
        match self {
            Arch::X86_64 => "2c7357ed-ebd2-46d9-aec1-23d437ec2bf5",
            Arch::Aarch64 => "df3300ce-d69f-4c92-978c-9bfb0f38d820",
            Arch::Ppc64le => "906bd944-4589-4aae-a4e4-dd983917446a",
            Arch::S390x => "b325bfbe-c7be-4ab8-8357-139e652d2f6b",
        }
    }
}

impl FromStr for Arch {
    type Err = ArchError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "x86_64" | "amd64" => Ok(Arch::X86_64),
            "aarch64" | "arm64" => Ok(Arch::Aarch64),
            "ppc64le" | "powerpc64le" => Ok(Arch::Ppc64le),
            "s390x" => Ok(Arch::S390x),
            other => Err(ArchError::Unknown(other.to_owned())),
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for arch in Arch::ALL {
            assert_eq!(arch.name().parse::<Arch>().unwrap(), arch);
        }
        assert_eq!("arm64".parse::<Arch>().unwrap(), Arch::Aarch64);
    }

    #[test]
    fn unknown_name_is_named_in_the_error() {
        let err = "riscv64".parse::<Arch>().unwrap_err();
        assert!(err.to_string().contains("riscv64"), "{err}");
    }

    #[test]
    fn only_s390x_is_big_endian() {
        let big: Vec<_> = Arch::ALL
            .into_iter()
            .filter(|a| a.endian() == Endian::Big)
            .collect();
        assert_eq!(big, [Arch::S390x]);
    }
}
