//! containerd's runtime v2 shim for Hull (`containerd-shim-hull-v2`), built on
//! hull-runtime.
//!
//! Limitation: not implemented yet; containerd gets a clear error when it tries to
//! start this shim.

fn main() {
    eprintln!("containerd-shim-hull-v2: not implemented yet; use the `hull` command");
    std::process::exit(1);
}
