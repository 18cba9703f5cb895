//! Boot and scenario tests per architecture, and the benchmarks, for built Hull images.

#[cfg(feature = "bench")]
pub mod bench;
pub mod env;
pub mod qemu_tcg;
