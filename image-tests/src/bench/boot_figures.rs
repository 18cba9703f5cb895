//! The boot section: Hull's kernel with the initrd and with the disk, and
//! Debian's stock kernel with Hull's initrd, booted in turn (one of each per
//! round, so a change in host load hits all alike), then summarised; also the
//! agent's memory right after boot.

use std::path::Path;
use std::time::Duration;

use hull_runtime::image::{Image, RootKind};
use hull_runtime::vm::spec::Accel;

use super::boot::{boot_once, BootOptions, BootRun};
use super::debian::DebianKernel;
use super::figure::{summarise_or, Figure, Unit, Value};
use super::prometheus::{self, Samples};

/// One kind of boot.
pub struct Target {
    /// Short key (`initrd`, `disk`, `debian`).
    pub key: &'static str,
    /// How it is named in the table.
    pub title: String,
    /// The image directory it boots.
    pub image: Image,
    /// Boot options.
    pub opts: BootOptions,
    /// Why agent readiness cannot be measured with it, if so.
    pub no_agent: Option<String>,
    /// The runs so far.
    pub runs: Vec<BootRun>,
    /// Failed runs.
    pub errors: Vec<String>,
    /// Keeps a temporary image directory alive.
    pub _dir: Option<tempfile::TempDir>,
}

impl Target {
    /// A target booting `image` from `root`.
    pub fn new(
        key: &'static str,
        title: &str,
        image: Image,
        root: RootKind,
        accel: Accel,
        timeout: Duration,
    ) -> Self {
        let opts = BootOptions {
            root,
            accel,
            wait_agent: true,
            timeout,
            kernel_params: Vec::new(),
        };
        Self {
            key,
            title: title.to_string(),
            image,
            opts,
            no_agent: None,
            runs: Vec::new(),
            errors: Vec::new(),
            _dir: None,
        }
    }

    /// Debian's kernel with the initrd of `build_dir`: an image directory of
    /// links to both.
    pub fn debian(
        kernel: &DebianKernel,
        build_dir: &Path,
        accel: Accel,
        timeout: Duration,
    ) -> std::io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("hull-bench-debian-")
            .tempdir()?;
        std::os::unix::fs::symlink(&kernel.vmlinuz, dir.path().join("vmlinuz"))?;
        for name in ["initrd.img", "manifest.json"] {
            let from = build_dir.join(name);
            if from.exists() {
                std::os::unix::fs::symlink(std::path::absolute(&from)?, dir.path().join(name))?;
            }
        }
        let image = Image::open(Some(dir.path())).map_err(std::io::Error::other)?;
        let title = format!("Debian {} + Hull initrd", kernel.release);
        let mut target = Self::new("debian", &title, image, RootKind::Initrd, accel, timeout);
        target.no_agent = kernel.no_vsock_reason();
        target.opts.wait_agent = target.no_agent.is_none();
        target._dir = Some(dir);
        Ok(target)
    }

    /// Boots once more, keeping the result or the error.
    pub async fn boot(&mut self, round: usize) {
        match boot_once(&self.image, &self.opts).await {
            Ok(run) => {
                eprintln!(
                    "bench: {} boot {round}: /init {} ms, ready {} ms",
                    self.key,
                    ms(run.to_init),
                    ms(run.ready)
                );
                self.runs.push(run);
            }
            Err(e) => {
                let message = format!("{} boot {round}: {}", self.key, chain(&e));
                eprintln!("bench: {message}");
                self.errors.push(message);
            }
        }
    }

    /// The target's figures.
    pub fn figures(&self) -> Vec<Figure> {
        let init: Vec<f64> = self
            .runs
            .iter()
            .filter_map(|r| r.to_init)
            .map(millis)
            .collect();
        let ready: Vec<f64> = self
            .runs
            .iter()
            .filter_map(|r| r.ready)
            .map(millis)
            .collect();
        let guest = self.metric(prometheus::AGENT_STARTED, 1000.0);
        let ready_value = match &self.no_agent {
            Some(why) => Value::NotMeasurable {
                reason: why.clone(),
            },
            None => summarise_or(&ready, self.failed("agent ready")),
        };
        let guest_value = match &self.no_agent {
            Some(why) => Value::NotMeasurable {
                reason: why.clone(),
            },
            None => guest,
        };
        let id = |s: &str| format!("boot.{}.{s}", self.key);
        vec![
            Figure::new(
                &id("init"),
                "Boot",
                &format!(
                    "{}: launch → /init (host clock, agent's first console line)",
                    self.title
                ),
                Unit::Ms,
                summarise_or(&init, self.failed("/init")),
            ),
            Figure::new(
                &id("init_guest"),
                "Boot",
                &format!("{}: kernel start → /init (guest clock)", self.title),
                Unit::Ms,
                guest_value,
            ),
            Figure::new(
                &id("ready"),
                "Boot",
                &format!(
                    "{}: launch → agent ready (first Health.Check answered)",
                    self.title
                ),
                Unit::Ms,
                ready_value,
            ),
        ]
    }

    /// A metric over the runs, scaled; not measurable when the agent does not
    /// export it.
    pub fn metric(&self, name: &str, scale: f64) -> Value {
        let metrics: Vec<&Samples> = self
            .runs
            .iter()
            .filter_map(|r| r.metrics.as_ref())
            .collect();
        let values: Vec<f64> = metrics
            .iter()
            .filter_map(|m| m.get(name))
            .map(|v| v * scale)
            .collect();
        if metrics.is_empty() {
            return self.failed("the agent's metrics");
        }
        summarise_or(
            &values,
            Value::NotMeasurable {
                reason: format!("the agent's GetMetrics does not export {name}"),
            },
        )
    }

    /// Used guest memory over the runs.
    pub fn guest_used(&self) -> Value {
        let metrics: Vec<&Samples> = self
            .runs
            .iter()
            .filter_map(|r| r.metrics.as_ref())
            .collect();
        let values: Vec<f64> = metrics.iter().filter_map(|m| m.guest_used()).collect();
        if metrics.is_empty() {
            return self.failed("the agent's metrics");
        }
        summarise_or(
            &values,
            Value::NotMeasurable {
                reason: format!(
                    "the agent's GetMetrics does not export {} and {}",
                    prometheus::GUEST_MEM_TOTAL,
                    prometheus::GUEST_MEM_AVAILABLE
                ),
            },
        )
    }

    fn failed(&self, what: &str) -> Value {
        let first = self.errors.first().map_or("no run", String::as_str);
        Value::Failed {
            reason: format!("no {} boot reached {what}: {first}", self.key),
        }
    }

    /// The agent version the guest reported.
    pub fn agent_version(&self) -> Option<String> {
        self.runs.iter().find_map(|r| r.agent_version.clone())
    }
}

/// The ratio of two targets' medians of one figure (`other / base`).
pub fn ratio(id: &str, label: &str, base: &Figure, other: &Figure) -> Figure {
    let value = match (base.central(), other.central()) {
        (Some(b), Some(o)) if b > 0.0 => Value::Single { value: o / b },
        _ => Value::NotMeasurable {
            reason: format!("needs both {} and {}", base.id, other.id),
        },
    };
    Figure::new(id, "Boot", label, Unit::Ratio, value)
}

/// The memory figures after boot, from the initrd target's runs.
pub fn memory_figures(target: &Target) -> Vec<Figure> {
    vec![
        Figure::new(
            "memory.boot.agent_rss",
            "Memory",
            "agent VmRSS after boot",
            Unit::Bytes,
            target.metric(prometheus::AGENT_RSS, 1.0),
        ),
        Figure::new(
            "memory.boot.agent_anon",
            "Memory",
            "agent anonymous RSS (RssAnon) after boot",
            Unit::Bytes,
            target.metric(prometheus::AGENT_ANON, 1.0),
        ),
        Figure::new(
            "memory.boot.guest_used",
            "Memory",
            "guest used memory after boot (MemTotal - MemAvailable)",
            Unit::Bytes,
            target.guest_used(),
        ),
    ]
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.0}", millis(d)))
}

/// An error with its sources, on one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
