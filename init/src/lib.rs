//! PID-1 duties for a guest init: early mounts, the console, the kernel command line,
//! reaping orphans and powering off when the init exits or fails.
