//! The benchmark report: the figures with the machine and versions they were
//! taken with, written as `bench.json` (for tools) and `bench.md` (a table for
//! people), each through a temporary file renamed into place.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::figure::{Figure, Unit, Value};
use super::machine::{Machine, Versions};

/// How the guest ran.
#[derive(Debug, Clone, Serialize)]
pub struct Accelerator {
    /// `kvm` or `tcg`.
    pub name: String,
    /// Why KVM was not used, when it was not.
    pub reason: Option<String>,
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Guest architecture.
    pub arch: String,
    /// Runs per repeated figure.
    pub runs: usize,
    /// When the run started (seconds since the epoch).
    pub started_unix: u64,
    /// The host.
    pub machine: Machine,
    /// The accelerator.
    pub accelerator: Accelerator,
    /// The host-guest channel used.
    pub channel: String,
    /// The VM booted: machine type, memory, vCPUs.
    pub vm: String,
    /// Versions of the measured parts.
    pub versions: Versions,
    /// The figures, in table order.
    pub figures: Vec<Figure>,
    /// Individual runs that failed (the figure then has fewer samples).
    pub errors: Vec<String>,
}

impl Report {
    /// Figures that should have been measured and were not.
    pub fn failed(&self) -> Vec<&Figure> {
        self.figures.iter().filter(|f| f.failed()).collect()
    }

    /// The report as a Markdown page.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let v = &self.versions;
        let _ = writeln!(out, "# Hull benchmarks ({})\n", self.arch);
        let _ = writeln!(
            out,
            "- Machine: {}, {} cores, {:.0} GiB RAM, host kernel {}, load average at start {}",
            m.cpu_model,
            m.cores,
            m.memory_bytes as f64 / GIB,
            m.host_kernel,
            m.load_average
        );
        let accel = match &self.accelerator.reason {
            Some(why) => format!("{} ({why})", self.accelerator.name),
            None => self.accelerator.name.clone(),
        };
        let _ = writeln!(
            out,
            "- Accelerator: {accel}; host-guest channel: {}",
            self.channel
        );
        let debian = v.debian_kernel.as_deref().unwrap_or("not used");
        let _ = writeln!(
            out,
            "- Versions: QEMU {}, Hull kernel {}, agent {}, Debian kernel {debian}, hull {}",
            v.qemu, v.kernel, v.agent, v.hull
        );
        let _ = writeln!(
            out,
            "- Each timed figure: median, min and max of {} runs\n",
            self.runs
        );
        self.table(&mut out);
        for e in &self.errors {
            let _ = writeln!(out, "\n- failed run: {e}");
        }
        out
    }

    fn table(&self, out: &mut String) {
        let _ = writeln!(out, "| Figure | Median | Min | Max | Runs |");
        let _ = writeln!(out, "|---|---:|---:|---:|---:|");
        let mut group = "";
        for f in &self.figures {
            if f.group != group {
                group = &f.group;
                let _ = writeln!(out, "| **{group}** | | | | |");
            }
            let _ = writeln!(out, "| {} | {} |", f.label, cells(f));
        }
    }

    /// Writes `bench.json` and `bench.md` into `dir`; returns their paths.
    pub fn write(&self, dir: &Path) -> std::io::Result<(PathBuf, PathBuf)> {
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        let json_path = dir.join("bench.json");
        let md_path = dir.join("bench.md");
        write_atomic(&json_path, &(json + "\n"))?;
        write_atomic(&md_path, &self.markdown())?;
        Ok((json_path, md_path))
    }
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
const MIB: f64 = 1024.0 * 1024.0;

fn cells(f: &Figure) -> String {
    match &f.value {
        Value::Measured {
            median,
            min,
            max,
            runs,
            ..
        } => format!(
            "{} | {} | {} | {runs}",
            number(*median, f.unit),
            number(*min, f.unit),
            number(*max, f.unit)
        ),
        Value::Single { value } => format!("{} | | | 1", number(*value, f.unit)),
        Value::NotMeasurable { reason } => format!("not measurable: {} | | | 0", escape(reason)),
        Value::Failed { reason } => format!("**failed**: {} | | | 0", escape(reason)),
    }
}

/// A number with its unit, rounded for reading.
pub fn number(value: f64, unit: Unit) -> String {
    match unit {
        Unit::Ms if value >= 100.0 => format!("{value:.0} ms"),
        Unit::Ms => format!("{value:.1} ms"),
        Unit::Bytes if value >= MIB => format!("{:.2} MiB", value / MIB),
        Unit::Bytes => format!("{:.0} KiB", value / 1024.0),
        Unit::PerSecond => format!("{value:.2}/s"),
        Unit::Ratio => format!("{value:.2}×"),
    }
}

fn escape(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::figure::summarise;
    use crate::bench::machine;

    fn report() -> Report {
        let figures = vec![
            Figure::new(
                "a",
                "Boot",
                "initrd: ready",
                Unit::Ms,
                summarise(&[2000.0, 2500.0, 3000.0]).unwrap(),
            ),
            Figure::new(
                "b",
                "Boot",
                "debian: ready",
                Unit::Ms,
                Value::NotMeasurable {
                    reason: "no vsock | modules".into(),
                },
            ),
            Figure::new(
                "c",
                "Sizes",
                "agent",
                Unit::Bytes,
                Value::Single { value: 3.5 * MIB },
            ),
        ];
        Report {
            arch: "x86_64".into(),
            runs: 3,
            started_unix: 0,
            machine: machine::machine(),
            accelerator: Accelerator {
                name: "tcg".into(),
                reason: Some("no KVM".into()),
            },
            channel: "hybrid vsock".into(),
            vm: "q35, 512 MiB, 1 vCPU".into(),
            versions: Versions::default(),
            figures,
            errors: vec![],
        }
    }

    #[test]
    fn table_has_groups_values_and_reasons() {
        let md = report().markdown();
        assert!(md.contains("| **Boot** | | | | |"), "{md}");
        assert!(
            md.contains("| initrd: ready | 2500 ms | 2000 ms | 3000 ms | 3 |"),
            "{md}"
        );
        assert!(md.contains("not measurable: no vsock \\| modules"), "{md}");
        assert!(md.contains("| agent | 3.50 MiB | | | 1 |"), "{md}");
        assert!(md.contains("tcg (no KVM)"));
    }

    #[test]
    fn files_are_written_and_parse() {
        let dir = tempfile::tempdir().unwrap();
        let (json, md) = report().write(dir.path()).unwrap();
        let value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
        assert_eq!(value["figures"][0]["status"], "measured");
        assert_eq!(value["figures"][0]["median"], 2500.0);
        assert_eq!(value["figures"][1]["status"], "not_measurable");
        assert!(std::fs::read_to_string(md)
            .unwrap()
            .starts_with("# Hull benchmarks"));
        assert!(report().failed().is_empty());
    }
}
