//! Boot and scenario tests per architecture, and the benchmarks, for built Hull images.

#[cfg(feature = "bench")]
pub mod bench;
pub mod cli;
pub mod env;
#[cfg(feature = "bench")]
pub mod guest;
pub mod qemu_tcg;
