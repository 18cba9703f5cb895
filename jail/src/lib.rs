//! Turns an OCI runtime spec into a running, confined process: namespaces, mounts,
//! pivot_root, cgroups, capabilities and seccomp.
