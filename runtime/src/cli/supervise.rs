//! `hull _supervise DIR`: the sandbox supervisor, started by `hull` itself.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use hull_runtime::state::StateDir;
use hull_runtime::supervisor;

#[derive(Debug, clap::Args)]
pub struct SuperviseArgs {
    /// The sandbox's state directory.
    dir: PathBuf,
}

pub fn run(args: &SuperviseArgs) -> anyhow::Result<ExitCode> {
    if !supervisor::is_state_dir(&args.dir) {
        bail!("{} is not a sandbox state directory", args.dir.display());
    }
    let (Some(root), Some(id)) = (args.dir.parent(), args.dir.file_name()) else {
        bail!("{} is not a sandbox state directory", args.dir.display());
    };
    let dir = StateDir::open(root, &id.to_string_lossy())?;
    supervisor::run(&dir).context("supervisor")?;
    Ok(ExitCode::SUCCESS)
}
