//! Boot and scenario tests per architecture, and the benchmarks, for built Hull images.

pub mod env;
