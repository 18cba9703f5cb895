//! Runs the external filesystem tools (`mkfs.ext4`, `debugfs`, `dumpe2fs`,
//! `mkfs.erofs`, `veritysetup`) with a fixed locale, and turns their failures into
//! errors that name the tool, show its complaint and say how to install it.

use std::io;
use std::process::{Command, Output};

/// How many bytes of a tool's stderr go into an error message.
const STDERR_TAIL: usize = 600;

/// Errors from running a tool.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The tool is not installed.
    #[error("{tool} not found (install {package}; `make deps` does)")]
    Missing {
        /// The program name.
        tool: &'static str,
        /// The Debian package providing it.
        package: &'static str,
    },
    /// The tool could not be started.
    #[error("cannot run {tool}")]
    Spawn {
        /// The program name.
        tool: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The tool ran and failed.
    #[error("{tool} failed ({status}): {stderr}")]
    Failed {
        /// The program name.
        tool: &'static str,
        /// Its exit status.
        status: String,
        /// The end of its stderr.
        stderr: String,
    },
}

impl ToolError {
    /// The tool's stderr, when it ran and failed.
    pub fn stderr(&self) -> Option<&str> {
        match self {
            ToolError::Failed { stderr, .. } => Some(stderr),
            _ => None,
        }
    }
}

/// Runs `command` (whose program is `tool`, from `package`); returns its output when it
/// exits with status 0.
pub fn run(
    tool: &'static str,
    package: &'static str,
    command: &mut Command,
) -> Result<Output, ToolError> {
    command.env("LC_ALL", "C");
    let output = command.output().map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => ToolError::Missing { tool, package },
        _ => ToolError::Spawn { tool, source },
    })?;
    if output.status.success() {
        return Ok(output);
    }
    Err(ToolError::Failed {
        tool,
        status: output.status.to_string(),
        stderr: tail(&String::from_utf8_lossy(&output.stderr)),
    })
}

/// The last [`STDERR_TAIL`] bytes of `text`, trimmed, on one line.
fn tail(text: &str) -> String {
    let text = text.trim();
    let mut start = text.len().saturating_sub(STDERR_TAIL);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].replace('\n', "; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tool_names_the_package() {
        let mut cmd = Command::new("hull-no-such-tool");
        let err = run("hull-no-such-tool", "hull-pkg", &mut cmd).unwrap_err();
        assert!(err.to_string().contains("install hull-pkg"), "{err}");
    }

    #[test]
    fn failure_carries_stderr() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo first >&2; echo broken >&2; exit 3"]);
        let err = run("sh", "dash", &mut cmd).unwrap_err();
        assert_eq!(err.stderr(), Some("first; broken"));
        assert!(err.to_string().contains("exit status: 3"), "{err}");
    }
}
