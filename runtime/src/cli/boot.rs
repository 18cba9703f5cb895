//! `hull boot`: boot an image, wait for its agent, report the time it took;
//! with `--rm`, stop it again.

use std::process::ExitCode;
use std::time::Duration;

use hull_runtime::sandbox::{CreateOptions, Sandbox};

use super::VmArgs;

#[derive(Debug, clap::Args)]
pub struct BootArgs {
    #[command(flatten)]
    vm: VmArgs,
    /// Sandbox id (default: random).
    #[arg(long)]
    name: Option<String>,
    /// Stop the VM once the agent answered (also when hull is interrupted).
    #[arg(long)]
    rm: bool,
}

pub async fn run(args: BootArgs) -> anyhow::Result<ExitCode> {
    let sandbox = create(&args.vm, args.name.clone(), false, args.rm).await?;
    let ready = tokio::select! {
        r = sandbox.agent(Duration::from_secs(args.vm.agent_timeout)) => r,
        _ = tokio::signal::ctrl_c() => {
            sandbox.stop().await?;
            return Ok(ExitCode::from(130));
        }
    };
    let agent = match ready {
        Ok(agent) => agent,
        Err(e) => {
            let _ = sandbox.stop().await;
            return Err(e.into());
        }
    };
    let since_qemu = sandbox.since_qemu_start().unwrap_or_default();
    let since_launch = sandbox.launched.map(|t| t.elapsed()).unwrap_or_default();
    let version = agent.version().await.unwrap_or_else(|_| "unknown".into());
    println!(
        "{}: agent {version} ready {:.2} s after QEMU start ({:.2} s after launch)",
        sandbox.id(),
        since_qemu.as_secs_f64(),
        since_launch.as_secs_f64()
    );
    if args.rm {
        sandbox.stop().await?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Creates a sandbox from the common VM options, warning once when it runs
/// under TCG.
pub async fn create(
    vm: &VmArgs,
    id: Option<String>,
    share: bool,
    owned: bool,
) -> anyhow::Result<Sandbox> {
    let opts = CreateOptions {
        id,
        image: vm.image.clone(),
        vm: vm.options(),
        share,
        owned,
        hull_exe: super::hull_exe()?,
    };
    let sandbox = Sandbox::create(&opts).await?;
    if let Some(reason) = &sandbox.tcg_reason {
        tracing::warn!("{reason}; running under TCG emulation (slow)");
    }
    Ok(sandbox)
}
