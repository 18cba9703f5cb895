//! The agent as PID 1: boot steps, configuration from the kernel command line, serve,
//! then power off. Never returns.
//!
//! No assumption is made about the initrd: /proc, /sys, /dev and the rest are mounted
//! before anything reads them, and missing standard descriptors are attached to the
//! console. Flags on the command line (possible when a test starts the agent as the
//! init of a PID namespace) replace the kernel command line.

use std::path::Path;
use std::sync::Arc;

use hull_init::boot::{setup, BootOptions};
use hull_init::kernel::{Host, Kernel};
use hull_init::power::{install_panic_hook, power_off, OnFatal};

use crate::config::{self, Config, Invocation, Warning};

/// Runs PID 1 with the agent's own flags `args` (usually none).
pub fn main(args: Vec<String>) -> ! {
    let kernel: Arc<dyn Kernel> = Arc::new(Host);
    install_panic_hook(OnFatal::PowerOff(kernel.clone()));

    let options = BootOptions {
        pid1: true,
        root: "/".into(),
        hostname: None,
    };
    let report = match setup(kernel.as_ref(), &options) {
        Ok(report) => report,
        Err(e) => fail(kernel.as_ref(), &crate::status::message_of(&e)),
    };

    let (config, warnings) = configure(args);
    let log_problem = crate::logging::init(&config);
    tracing::info!(
        version = crate::guest::AGENT_VERSION,
        mounted = report.mounted.len(),
        lo = report.loopback_up,
        crng_ready = hull_init::random::crng_ready(),
        "hull-agent booting as pid 1"
    );
    log_warnings(log_problem, &warnings);

    let reason = match crate::serve(config, kernel.clone()) {
        Ok(()) => "sandbox destroyed".to_string(),
        Err(e) => {
            tracing::error!(error = %crate::status::message_of(&e), "agent failed");
            "agent failed".to_string()
        }
    };
    power_off(kernel.as_ref(), &reason)
}

/// The configuration: from flags if any were given, else from /proc/cmdline.
fn configure(args: Vec<String>) -> (Config, Vec<Warning>) {
    if args.is_empty() {
        let params = hull_init::cmdline::read(Path::new("/proc/cmdline")).unwrap_or_default();
        return config::from_cmdline(&params);
    }
    match config::parse_args(args) {
        Ok(Invocation::Run(config)) => (
            Config {
                pid1: true,
                system: true,
                ..config
            },
            Vec::new(),
        ),
        Ok(_) => (config::from_cmdline(&[]).0, Vec::new()),
        Err(e) => {
            let (config, _) = config::from_cmdline(&[]);
            let warning = Warning::BadValue {
                key: "flags".into(),
                value: String::new(),
                reason: e.to_string(),
            };
            (config, vec![warning])
        }
    }
}

fn log_warnings(log_problem: Option<String>, warnings: &[Warning]) {
    if let Some(problem) = log_problem {
        tracing::warn!("{problem}");
    }
    for warning in warnings {
        tracing::warn!("{warning}");
    }
}

/// A boot failure before logging exists: say it on the console, then power off.
fn fail(kernel: &dyn Kernel, message: &str) -> ! {
    eprintln!("hull-agent: {message}");
    power_off(kernel, message)
}
