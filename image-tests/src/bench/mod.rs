//! The benchmark harness behind `make bench`: boots the built image under
//! hull-runtime's launcher and reports, each as median, min and max over N runs:
//! boot times (to `/init` and to agent ready; initrd, disk, and Debian's stock
//! kernel with Hull's initrd, with the ratio), container latencies and
//! throughput in one sandbox, `hull run` end to end, the agent's and the
//! guest's memory, and artifact sizes. The report records the machine, the
//! accelerator and the versions, and goes to `bench.json` and `bench.md`.
//!
//! Design: a figure that depends on a part this build lacks (an RPC the agent
//! answers UNIMPLEMENTED, a kernel without built-in vsock) is reported as not
//! measurable with the reason; one that should be measurable and is not fails
//! the run. Times are never asserted anywhere.
//!
//! Limitations: under TCG on a shared host the numbers move with host load
//! (the load average at the start is recorded); guest-side times need the
//! agent to export them in `GetMetrics`; container figures need a static
//! busybox for the guest's architecture (x86_64 here).

pub mod boot;
pub mod boot_figures;
pub mod console;
pub mod container_figures;
pub mod containers;
pub mod debian;
pub mod figure;
pub mod hull_run;
pub mod machine;
pub mod prometheus;
pub mod report;
pub mod sizes;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hull_runtime::host;
use hull_runtime::image::{Image, ImageError, RootKind};
use hull_runtime::profile::{ArchProfile, ProfileError};
use hull_runtime::vm::spec::{Accel, ChannelSpec, DEFAULT_MEMORY_MIB, DEFAULT_VCPUS};

use boot_figures::{chain, memory_figures, ratio, Target};
use figure::Figure;
use report::{Accelerator, Report};

/// Runs per figure when nothing else is asked for.
pub const DEFAULT_RUNS: usize = 10;
/// Limit for one boot to reach the agent (TCG on a busy host is slow).
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(180);

/// Errors that stop the bench before any figure.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The build directory is not a usable image.
    #[error("{} is not a built image; run `make image`", .0.display())]
    Image(PathBuf, #[source] ImageError),
    /// No machine profile for the architecture.
    #[error("QEMU profile")]
    Profile(#[from] ProfileError),
    /// QEMU is missing.
    #[error("{0} is not installed; run `make deps`")]
    NoQemu(String),
    /// The channel asked for (`HULL_CHANNEL`) is not available.
    #[error("agent channel")]
    Channel(#[from] host::ChannelChoiceError),
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct Config {
    /// `build/<arch>`.
    pub build_dir: PathBuf,
    /// Guest architecture.
    pub arch: String,
    /// Runs per figure.
    pub runs: usize,
    /// Cache folder (`$HULL_CACHE`); Debian's kernel goes to `<cache>/bench/`.
    pub cache_dir: PathBuf,
    /// The `hull` binary for the end-to-end figure.
    pub hull_bin: Option<PathBuf>,
    /// Skip the Debian kernel comparison.
    pub no_debian: bool,
}

/// Measures everything and returns the report (the caller writes it).
pub async fn run(config: &Config) -> Result<Report, BenchError> {
    let image = Image::open(Some(&config.build_dir))
        .map_err(|e| BenchError::Image(config.build_dir.clone(), e))?;
    let profile = ArchProfile::load(&config.arch)?;
    let qemu =
        host::find_qemu(&profile.binary).ok_or(BenchError::NoQemu(profile.binary.clone()))?;
    let (accel, reason) = host::choose_accel(&config.arch);
    let choice = host::ChannelChoice::from_env()?;
    let channel = host::choose_channel(profile.machine(None)?, choice)?.spec;
    let mut versions = machine::versions(&config.build_dir, &qemu);
    let mut report = Report {
        arch: config.arch.clone(),
        runs: config.runs,
        started_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        machine: machine::machine(),
        accelerator: Accelerator {
            name: accel.name().to_string(),
            reason,
        },
        channel: channel_name(channel).to_string(),
        vm: format!(
            "{}, {DEFAULT_MEMORY_MIB} MiB, {DEFAULT_VCPUS} vCPU",
            profile.machine(None)?.machine
        ),
        versions: versions.clone(),
        figures: Vec::new(),
        errors: Vec::new(),
    };

    let mut targets = boot_targets(config, &image, accel, &mut versions, &mut report.figures);
    for round in 1..=config.runs {
        for target in &mut targets {
            target.boot(round).await;
        }
    }
    boot_section(&targets, &mut report);
    if let Some(v) = targets.first().and_then(Target::agent_version) {
        versions.agent = v;
    }
    report.versions = versions;

    let setup = container_figures::Setup {
        image: &image,
        arch: &config.arch,
        accel,
        runs: config.runs,
        timeout: BOOT_TIMEOUT,
    };
    let containers = container_figures::measure(&setup).await;
    let no_containers = containers.first().and_then(|f| match &f.value {
        figure::Value::NotMeasurable { reason } => Some(reason.clone()),
        _ => None,
    });
    let hull = config.hull_bin.as_deref();
    let (dir, arch, runs) = (&config.build_dir, &config.arch, config.runs);
    let hull_run = hull_run::measure(hull, dir, arch, runs, no_containers);
    report.figures.push(hull_run);
    report.figures.extend(containers);
    report.figures.extend(sizes::measure(&config.build_dir));
    sort_by_group(&mut report.figures);
    Ok(report)
}

/// Table order: the sections in a fixed order, figures in measuring order.
fn sort_by_group(figures: &mut [Figure]) {
    const ORDER: [&str; 5] = [
        "Boot",
        "Memory",
        "Containers (one sandbox)",
        "Throughput",
        "Sizes",
    ];
    figures.sort_by_key(|f| {
        ORDER
            .iter()
            .position(|g| *g == f.group)
            .unwrap_or(ORDER.len())
    });
}

/// The boots to run: initrd, disk, and Debian's kernel (x86_64). A target that
/// cannot be set up at all becomes a failed or not-measurable figure at once.
fn boot_targets(
    config: &Config,
    image: &Image,
    accel: Accel,
    versions: &mut machine::Versions,
    figures: &mut Vec<Figure>,
) -> Vec<Target> {
    let mut targets = vec![Target::new(
        "initrd",
        "initrd",
        image.clone(),
        RootKind::Initrd,
        accel,
        BOOT_TIMEOUT,
    )];
    targets.push(Target::new(
        "disk",
        "disk",
        image.clone(),
        RootKind::Disk,
        accel,
        BOOT_TIMEOUT,
    ));
    match debian_target(config, accel, versions) {
        Ok(target) => targets.push(target),
        Err(value) => figures.push(Figure::new(
            "boot.debian.init",
            "Boot",
            "Debian kernel + Hull initrd",
            figure::Unit::Ms,
            value,
        )),
    }
    targets
}

fn debian_target(
    config: &Config,
    accel: Accel,
    versions: &mut machine::Versions,
) -> Result<Target, figure::Value> {
    let not = |reason: String| figure::Value::NotMeasurable { reason };
    if config.no_debian {
        return Err(not("skipped (--no-debian)".into()));
    }
    if config.arch != "x86_64" {
        return Err(not(format!(
            "no Debian cloud kernel wired for {}",
            config.arch
        )));
    }
    let kernel = debian::obtain(&config.cache_dir)
        .map_err(|e| not(format!("cannot obtain Debian's kernel: {}", chain(&e))))?;
    versions.debian_kernel = Some(kernel.release.clone());
    Target::debian(&kernel, &config.build_dir, accel, BOOT_TIMEOUT).map_err(|e| {
        figure::Value::Failed {
            reason: format!("cannot set up the Debian kernel image: {e}"),
        }
    })
}

fn boot_section(targets: &[Target], report: &mut Report) {
    for target in targets {
        report.figures.extend(target.figures());
        report.errors.extend(target.errors.iter().cloned());
    }
    let find = |key: &str| targets.iter().find(|t| t.key == key);
    if let (Some(ours), Some(debian)) = (find("initrd"), find("debian")) {
        let (a, b) = (&ours.figures()[0], &debian.figures()[0]);
        report.figures.push(ratio(
            "boot.debian_vs_hull.init",
            "Debian kernel / Hull kernel, launch → /init (medians)",
            a,
            b,
        ));
    }
    if let Some(ours) = find("initrd") {
        report.figures.extend(memory_figures(ours));
    }
}

fn channel_name(channel: ChannelSpec) -> &'static str {
    match channel {
        ChannelSpec::VhostVsock { .. } => "vhost-vsock",
        ChannelSpec::HybridVsock { .. } => "hybrid vsock (vhost-device-vsock)",
        ChannelSpec::Serial => "virtio-serial",
    }
}

/// Prints where the report went.
pub fn announce(json: &Path, md: &Path) {
    eprintln!("bench: wrote {} and {}", json.display(), md.display());
}
