//! Command-line flags, for running the agent as a normal process.
//!
//! `hull-agent --server-addr unix:///tmp/a.sock --log debug`. Flags mirror the
//! kernel command-line keys (`agent.log_vport` is `--log-vport`), plus `--system` and
//! `--root DIR` (see the module above). Unlike the kernel command line, a bad flag is
//! an error.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use thiserror::Error;

use super::Config;

/// Errors in the command-line flags.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ArgsError {
    /// A flag the agent does not know.
    #[error("unknown flag {0} (see --help)")]
    Unknown(String),
    /// A flag that needs a value came last.
    #[error("flag {0} needs a value")]
    MissingValue(String),
    /// A flag's value does not parse.
    #[error("bad value for {flag}: {reason}")]
    BadValue { flag: String, reason: String },
}

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invocation {
    /// Serve with this configuration.
    Run(Config),
    /// Print the version.
    Version,
    /// Print the usage.
    Help,
}

/// The usage text.
pub const USAGE: &str = "\
usage: hull-agent [flags]
  --server-addr URI          vsock://CID:PORT, unix:///path or serial:///dev/PORT
                             (default vsock://-1:1024)
  --log LEVEL                error, warn, info, debug, trace (default info)
  --log-format FORMAT        text or json (default text)
  --log-vport N              stream logs on vsock port N instead of stderr
  --debug-console            start a debug shell
  --debug-console-vport N    serve the debug shell on vsock port N (0: console)
  --hotplug-timeout SECONDS  wait for hot-plugged devices (default 3)
  --container-pipe-size N    pipe size for container stdio (0: kernel default)
  --devmode                  keep core dumps, verbose errors
  --system                   allow machine-wide changes (hostname, clock, mounts)
  --root DIR                 resolve guest paths (/etc, /run, /sys) under DIR
  --version                  print the version
As PID 1 the options come from the kernel command line (agent.log=debug, ...).";

/// Parses flags (without the program name).
pub fn parse_args<I, S>(args: I) -> Result<Invocation, ArgsError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut config = Config::default();
    let mut args = args.into_iter().map(Into::into);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg, None),
        };
        let mut value = || inline.clone().or_else(|| args.next());
        match flag.as_str() {
            "--version" | "-V" => return Ok(Invocation::Version),
            "--help" | "-h" => return Ok(Invocation::Help),
            "--debug-console" => config.debug_console = true,
            "--devmode" => config.devmode = true,
            "--system" => config.system = true,
            _ => apply_valued(&mut config, &flag, value())?,
        }
    }
    Ok(Invocation::Run(config))
}

fn apply_valued(config: &mut Config, flag: &str, value: Option<String>) -> Result<(), ArgsError> {
    let known = [
        "--server-addr",
        "--log",
        "--log-format",
        "--log-vport",
        "--debug-console-vport",
        "--hotplug-timeout",
        "--container-pipe-size",
        "--root",
    ];
    if !known.contains(&flag) {
        return Err(ArgsError::Unknown(flag.to_string()));
    }
    let value = value.ok_or_else(|| ArgsError::MissingValue(flag.to_string()))?;
    match flag {
        "--server-addr" => config.server_addr = typed(flag, &value)?,
        "--log" => config.log_level = typed(flag, &value)?,
        "--log-format" => config.log_format = typed(flag, &value)?,
        "--log-vport" => config.log_vport = typed(flag, &value)?,
        "--debug-console-vport" => config.debug_console_vport = typed(flag, &value)?,
        "--hotplug-timeout" => config.hotplug_timeout = Duration::from_secs(typed(flag, &value)?),
        "--container-pipe-size" => config.container_pipe_size = typed(flag, &value)?,
        _ => config.root = root_dir(flag, &value)?,
    }
    Ok(())
}

fn root_dir(flag: &str, value: &str) -> Result<PathBuf, ArgsError> {
    let path = PathBuf::from(value);
    if !path.is_absolute() {
        return Err(ArgsError::BadValue {
            flag: flag.to_string(),
            reason: format!("{value:?} is not an absolute path"),
        });
    }
    Ok(path)
}

fn typed<T: FromStr>(flag: &str, value: &str) -> Result<T, ArgsError>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e: T::Err| ArgsError::BadValue {
        flag: flag.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::{LogLevel, ServerAddr};
    use super::*;

    fn run(args: &[&str]) -> Config {
        match parse_args(args.iter().copied()).unwrap() {
            Invocation::Run(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn test_style_invocation() {
        let c = run(&[
            "--server-addr",
            "unix:///tmp/a.sock",
            "--log=debug",
            "--root",
            "/t",
        ]);
        assert_eq!(c.server_addr, ServerAddr::Unix("/tmp/a.sock".into()));
        assert_eq!(c.log_level, LogLevel::Debug);
        assert_eq!(c.root, PathBuf::from("/t"));
        assert!(!c.system && !c.pid1);
    }

    #[test]
    fn version_and_help() {
        assert_eq!(parse_args(["--version"]).unwrap(), Invocation::Version);
        assert_eq!(parse_args(["-h"]).unwrap(), Invocation::Help);
    }

    #[test]
    fn errors_name_the_flag() {
        assert_eq!(
            parse_args(["--bogus"]).unwrap_err(),
            ArgsError::Unknown("--bogus".into())
        );
        assert_eq!(
            parse_args(["--log"]).unwrap_err(),
            ArgsError::MissingValue("--log".into())
        );
        let err = parse_args(["--log-vport", "x"]).unwrap_err();
        assert!(
            err.to_string().starts_with("bad value for --log-vport"),
            "{err}"
        );
        assert!(parse_args(["--root", "rel"]).is_err());
    }
}
