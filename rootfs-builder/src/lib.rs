//! Builds Hull guest images: merges and verifies kernel configs, assembles the rootfs
//! tree, writes the initrd and the disk image, and describes them in a manifest.
//!
//! Every output is reproducible: the same inputs and `SOURCE_DATE_EPOCH` give the same
//! bytes (sorted entries, fixed owners, clamped times, fixed UUIDs, salts and hash
//! seeds, deterministic compression). Outputs are written under a temporary name and
//! renamed into place, so a failed build leaves nothing at the final path.
//!
//! Limitations: the disk image relies on e2fsprogs (`mkfs.ext4`, `debugfs`),
//! erofs-utils (`mkfs.erofs`) and cryptsetup (`veritysetup`) being installed; the
//! initrd needs no external tool.

pub mod arch;
pub mod atomic;
pub mod compress;
pub mod cpio;
pub mod disk;
pub mod elf;
pub mod epoch;
pub mod extra;
pub mod initrd;
pub mod jsonpath;
pub mod kernel_config;
pub mod manifest;
pub mod rootfs;
pub mod tree;
pub mod verify;
