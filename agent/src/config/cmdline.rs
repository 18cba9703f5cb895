//! The agent's options on the kernel command line (see agent-api.md).

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use hull_init::cmdline::Param;

use super::{Config, Warning};

/// Builds the configuration of a PID-1 agent from kernel command-line parameters.
/// Non-`agent.*` parameters are ignored; each unknown `agent.*` key is reported once.
pub fn from_cmdline(params: &[Param]) -> (Config, Vec<Warning>) {
    let mut config = Config {
        system: true,
        pid1: true,
        ..Config::default()
    };
    let mut warnings = Vec::new();
    let mut unknown = HashSet::new();
    for param in params {
        if !param.key.starts_with("agent.") {
            continue;
        }
        if let Err(warning) = apply(&mut config, param) {
            let new = match &warning {
                Warning::UnknownKey(key) => unknown.insert(key.clone()),
                Warning::BadValue { .. } => true,
            };
            if new {
                warnings.push(warning);
            }
        }
    }
    (config, warnings)
}

fn apply(config: &mut Config, param: &Param) -> Result<(), Warning> {
    let value = param.value.as_deref();
    let key = param.key.as_str();
    match key {
        "agent.log" => config.log_level = typed(key, value)?,
        "agent.log_format" => config.log_format = typed(key, value)?,
        "agent.log_vport" => config.log_vport = typed(key, value)?,
        "agent.debug_console" => config.debug_console = flag(key, value)?,
        "agent.debug_console_vport" => config.debug_console_vport = typed(key, value)?,
        "agent.server_addr" => config.server_addr = typed(key, value)?,
        "agent.hotplug_timeout" => {
            config.hotplug_timeout = Duration::from_secs(typed(key, value)?);
        }
        "agent.container_pipe_size" => config.container_pipe_size = typed(key, value)?,
        "agent.devmode" => config.devmode = flag(key, value)?,
        _ => return Err(Warning::UnknownKey(key.to_string())),
    }
    Ok(())
}

fn typed<T: FromStr>(key: &str, value: Option<&str>) -> Result<T, Warning>
where
    T::Err: std::fmt::Display,
{
    let value = value.ok_or_else(|| bad(key, "", "a value is required".into()))?;
    value
        .parse()
        .map_err(|e: T::Err| bad(key, value, e.to_string()))
}

/// A bare flag is on; `=1/0/true/false/on/off` also work.
fn flag(key: &str, value: Option<&str>) -> Result<bool, Warning> {
    match value {
        None | Some("1" | "true" | "on" | "yes") => Ok(true),
        Some("0" | "false" | "off" | "no") => Ok(false),
        Some(v) => Err(bad(key, v, "expected a boolean".into())),
    }
}

fn bad(key: &str, value: &str, reason: String) -> Warning {
    Warning::BadValue {
        key: key.to_string(),
        value: value.to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{LogFormat, LogLevel, ServerAddr};
    use super::*;

    fn config(line: &str) -> (Config, Vec<Warning>) {
        from_cmdline(&hull_init::cmdline::parse(line))
    }

    #[test]
    fn kata_style_line_gives_typed_config() {
        let (c, w) = config(
            "console=hvc0 quiet panic=1 agent.log=debug agent.log_vport=1025 \
             agent.debug_console agent.debug_console_vport=1026 agent.hotplug_timeout=7 \
             agent.container_pipe_size=65536 agent.devmode agent.log_format=json \
             systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all",
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.log_level, LogLevel::Debug);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.log_vport, 1025);
        assert!(c.debug_console && c.devmode && c.system && c.pid1);
        assert_eq!(c.debug_console_vport, 1026);
        assert_eq!(c.hotplug_timeout, Duration::from_secs(7));
        assert_eq!(c.container_pipe_size, 65536);
        assert_eq!(
            c.server_addr,
            ServerAddr::Vsock {
                cid: -1,
                port: 1024
            }
        );
    }

    #[test]
    fn unknown_keys_are_warned_once() {
        let (c, w) = config("agent.bogus=1 agent.bogus=2 agent.other");
        assert_eq!(
            w,
            vec![
                Warning::UnknownKey("agent.bogus".into()),
                Warning::UnknownKey("agent.other".into())
            ]
        );
        assert_eq!(c, from_cmdline(&[]).0);
    }

    #[test]
    fn bad_values_keep_defaults_and_name_the_key() {
        let (c, w) = config(
            "agent.log=loud agent.log_vport=x agent.server_addr=tcp://1 agent.devmode=maybe",
        );
        assert_eq!(w.len(), 4);
        assert_eq!(c.log_level, LogLevel::Info);
        assert_eq!(c.log_vport, 0);
        assert!(!c.devmode);
        assert!(w[0].to_string().contains("agent.log"), "{}", w[0]);
        assert!(w[2].to_string().contains("agent.server_addr"), "{}", w[2]);
    }

    #[test]
    fn value_required_for_typed_keys() {
        let (c, w) = config("agent.log_vport agent.server_addr=unix:///run/a.sock");
        assert_eq!(w.len(), 1);
        assert_eq!(c.server_addr, ServerAddr::Unix("/run/a.sock".into()));
    }
}
