//! Boot and scenario tests per architecture, and the benchmarks, for built Hull images.

pub mod env;
pub mod qemu_tcg;
