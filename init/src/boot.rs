//! The early boot sequence of a guest init, as a list of named steps.
//!
//! As PID 1: early mounts, the console as stdio, `lo` up, the hostname. As a normal
//! process: only become a child subreaper, so orphans of our children come back to the
//! reaper; machine-wide state is left alone.

use std::path::PathBuf;

use thiserror::Error;

use crate::kernel::Kernel;
use crate::mounts::{mount_early, EarlyMountError};

/// Errors of the boot sequence.
#[derive(Debug, Error)]
pub enum BootError {
    /// An early mount failed.
    #[error("early mounts failed")]
    Mounts(#[from] EarlyMountError),
    /// The hostname could not be set.
    #[error("cannot set hostname {0:?}")]
    Hostname(String, #[source] std::io::Error),
    /// The process could not become a child subreaper.
    #[error("cannot become a child subreaper")]
    Subreaper(#[source] std::io::Error),
}

/// What the boot sequence should do.
#[derive(Clone, Debug)]
pub struct BootOptions {
    /// Whether we are the init of the machine (or of a PID namespace).
    pub pid1: bool,
    /// The root the early mounts go below; `/` for a real init.
    pub root: PathBuf,
    /// The hostname to set, if any.
    pub hostname: Option<String>,
}

/// What the boot sequence did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BootReport {
    /// Mount points mounted by the early mounts.
    pub mounted: Vec<PathBuf>,
    /// Whether the console was attached to missing standard descriptors.
    pub console_attached: bool,
    /// Whether `lo` was brought up.
    pub loopback_up: bool,
}

/// Runs the early boot steps for `options`.
pub fn setup(kernel: &dyn Kernel, options: &BootOptions) -> Result<BootReport, BootError> {
    let mut report = BootReport::default();
    if !options.pid1 {
        kernel.set_child_subreaper().map_err(BootError::Subreaper)?;
        return Ok(report);
    }

    report.mounted = mount_early(kernel, &options.root)?;

    report.console_attached = attach_console(options);

    report.loopback_up = match kernel.link_up("lo") {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "cannot bring up lo");
            false
        }
    };

    if let Some(name) = &options.hostname {
        kernel
            .set_hostname(name)
            .map_err(|e| BootError::Hostname(name.clone(), e))?;
    }
    Ok(report)
}

fn attach_console(options: &BootOptions) -> bool {
    let console = options.root.join("dev/console");
    match crate::console::attach_if_missing(&console) {
        Ok(attached) => attached,
        Err(e) => {
            tracing::warn!(error = %e, "cannot attach the console");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::fake::{Call, Recorder};

    fn options(pid1: bool) -> BootOptions {
        BootOptions {
            pid1,
            root: PathBuf::from("/"),
            hostname: Some("guest".into()),
        }
    }

    #[test]
    fn pid1_mounts_brings_up_lo_and_sets_hostname() {
        let k = Recorder::new();
        let report = setup(&k, &options(true)).unwrap();
        assert_eq!(report.mounted.len(), crate::mounts::EARLY_MOUNTS.len());
        assert!(report.loopback_up);
        let calls = k.calls();
        let lo = calls.iter().position(|c| *c == Call::LinkUp("lo".into()));
        let host = calls
            .iter()
            .position(|c| *c == Call::SetHostname("guest".into()));
        assert!(lo.is_some() && host > lo);
        assert!(!calls.contains(&Call::ChildSubreaper));
    }

    #[test]
    fn normal_process_only_becomes_subreaper() {
        let k = Recorder::new();
        let report = setup(&k, &options(false)).unwrap();
        assert_eq!(report, BootReport::default());
        assert_eq!(k.calls(), vec![Call::ChildSubreaper]);
    }

    #[test]
    fn a_failed_mount_stops_the_sequence() {
        let k = Recorder::new();
        k.fail_at(std::path::Path::new("/proc"));
        let err = setup(&k, &options(true)).unwrap_err();
        assert_eq!(err.to_string(), "early mounts failed");
        assert!(k.calls().iter().all(|c| !matches!(c, Call::SetHostname(_))));
    }
}
