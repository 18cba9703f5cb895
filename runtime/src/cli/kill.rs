//! `hull kill ID [SIGNAL]`: signal a container's init process through the agent.

use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use anyhow::bail;
use hull_runtime::agent::SignalProcessRequest;
use hull_runtime::agent_call;
use hull_runtime::sandbox::Sandbox;
use nix::sys::signal::Signal;

#[derive(Debug, clap::Args)]
pub struct KillArgs {
    /// The container id (a sandbox's id names its first container).
    id: String,
    /// Signal name (TERM, SIGKILL, ...) or number.
    #[arg(default_value = "TERM")]
    signal: String,
}

pub async fn run(args: KillArgs) -> anyhow::Result<ExitCode> {
    let signal = parse_signal(&args.signal)?;
    let sandbox = Sandbox::of_container(&args.id)?;
    let agent = sandbox.agent(Duration::from_secs(10)).await?;
    let mut req = SignalProcessRequest::new();
    req.container_id = args.id.clone();
    req.signal = signal;
    agent_call!(agent, signal_process, "SignalProcess", &req)?;
    Ok(ExitCode::SUCCESS)
}

/// `TERM`, `SIGTERM`, `term` or `15`.
pub fn parse_signal(text: &str) -> anyhow::Result<u32> {
    if let Ok(n) = text.parse::<u32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        bail!("signal {n} is out of range (1-64)");
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    match Signal::from_str(&name) {
        Ok(s) => Ok(s as u32),
        Err(_) => bail!("unknown signal {text:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("TERM").unwrap(), 15);
        assert_eq!(parse_signal("sigkill").unwrap(), 9);
        assert_eq!(parse_signal("2").unwrap(), 2);
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("BOGUS").is_err());
    }
}
