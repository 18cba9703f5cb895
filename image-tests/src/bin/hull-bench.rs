//! `hull-bench`: measures a built image (`make bench`) and writes
//! `<build dir>/bench.json` and `bench.md`, printing the table. Exits non-zero
//! when a figure that should be measurable could not be measured.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use hull_image_tests::bench::{self, Config};
use hull_image_tests::env;

/// Measures boot time, memory, sizes and throughput of a built Hull image.
#[derive(Debug, Parser)]
#[command(name = "hull-bench")]
struct Args {
    /// Runs per figure (default: $HULL_BENCH_RUNS, else 10).
    #[arg(long, short = 'n')]
    runs: Option<usize>,
    /// The image directory (default: $HULL_BUILD_DIR, else build/<arch>).
    #[arg(long)]
    build_dir: Option<PathBuf>,
    /// Guest architecture (default: $HULL_ARCH, else the host's).
    #[arg(long)]
    arch: Option<String>,
    /// The `hull` binary (default: next to this one).
    #[arg(long)]
    hull: Option<PathBuf>,
    /// Skip the comparison with Debian's kernel.
    #[arg(long)]
    no_debian: bool,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("hull-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> anyhow::Result<bool> {
    let config = config(args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(bench::run(&config))?;
    let (json, md) = report
        .write(&config.build_dir)
        .with_context(|| format!("cannot write the report to {}", config.build_dir.display()))?;
    println!("{}", report.markdown());
    bench::announce(&json, &md);
    let failed = report.failed();
    for f in &failed {
        eprintln!("hull-bench: {} could not be measured", f.id);
    }
    Ok(failed.is_empty())
}

fn config(args: Args) -> anyhow::Result<Config> {
    let runs = match args.runs {
        Some(n) => n,
        None => match std::env::var("HULL_BENCH_RUNS") {
            Ok(v) => v
                .parse()
                .with_context(|| format!("HULL_BENCH_RUNS={v:?} is not a number"))?,
            Err(_) => bench::DEFAULT_RUNS,
        },
    };
    anyhow::ensure!(runs > 0, "runs must be at least 1");
    let hull = args.hull.or_else(|| {
        let exe = std::env::current_exe().ok()?;
        Some(exe.parent()?.join("hull"))
    });
    Ok(Config {
        build_dir: args.build_dir.unwrap_or_else(env::build_dir),
        arch: args.arch.unwrap_or_else(env::arch),
        runs,
        cache_dir: std::env::var_os("HULL_CACHE")
            .map_or_else(|| PathBuf::from("/var/cache/hull"), PathBuf::from),
        hull_bin: hull,
        no_debian: args.no_debian,
    })
}
