//! The container a `hull run` starts: its OCI spec (a bundle's, or a default
//! one around a root directory) with the command line's process options, which
//! `hull exec` shares.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use hull_protocols::oci_spec::runtime::{ProcessBuilder, Spec, UserBuilder};

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Options of the container process (shared with `exec`).
#[derive(Debug, Clone, clap::Args)]
pub struct ProcessArgs {
    /// Keep stdin open and forward it.
    #[arg(short, long)]
    pub interactive: bool,
    /// Give the process a terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Environment variable NAME=VALUE (repeatable).
    #[arg(short, long = "env", value_name = "NAME=VALUE")]
    pub envs: Vec<String>,
    /// Working directory in the container.
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// UID[:GID] to run as.
    #[arg(short, long)]
    pub user: Option<String>,
}

impl ProcessArgs {
    /// The environment: PATH, TERM with a terminal, then the user's.
    pub fn env(&self) -> Vec<String> {
        let mut env = vec![DEFAULT_PATH.to_string()];
        if self.tty {
            env.push("TERM=xterm".into());
        }
        env.extend(self.envs.iter().cloned());
        env
    }

    /// `(uid, gid)` from `--user` (root by default; the gid defaults to the uid).
    pub fn user_ids(&self) -> (u32, u32) {
        parse_user(self.user.as_deref().unwrap_or("0")).unwrap_or((0, 0))
    }
}

fn parse_user(text: &str) -> anyhow::Result<(u32, u32)> {
    let (uid, gid) = match text.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (text, None),
    };
    let uid: u32 = uid
        .parse()
        .with_context(|| format!("--user {text:?}: UID must be a number"))?;
    let gid = match gid {
        Some(g) => g
            .parse()
            .with_context(|| format!("--user {text:?}: GID must be a number"))?,
        None => uid,
    };
    Ok((uid, gid))
}

/// The OCI spec and host root directory: the bundle's, or a default spec around
/// `--rootfs`; the command line's process options applied on top.
pub fn container_spec(
    bundle: Option<&Path>,
    rootfs: Option<&Path>,
    command: &[String],
    process: &ProcessArgs,
) -> anyhow::Result<(Spec, PathBuf)> {
    if let Some(user) = &process.user {
        parse_user(user)?;
    }
    let (mut spec, rootfs) = match (bundle, rootfs) {
        (Some(bundle), _) => {
            let spec = Spec::load(bundle.join("config.json"))
                .with_context(|| format!("reading {}", bundle.join("config.json").display()))?;
            let root = spec
                .root()
                .as_ref()
                .map(|r| r.path().clone())
                .unwrap_or_else(|| "rootfs".into());
            (spec, bundle.join(root))
        }
        (None, Some(rootfs)) => (default_spec(), rootfs.to_path_buf()),
        (None, None) => bail!("give --rootfs DIR or --bundle DIR"),
    };
    if !rootfs.is_dir() {
        bail!("container root {} is not a directory", rootfs.display());
    }
    apply_process(&mut spec, command, process)?;
    Ok((spec, rootfs))
}

/// The runtime-spec defaults, without their default command (`sh`): a
/// `--rootfs` run names its command.
fn default_spec() -> Spec {
    let mut spec = Spec::default();
    if let Some(mut process) = spec.process().clone() {
        process.set_args(None);
        spec.set_process(Some(process));
    }
    spec
}

fn apply_process(spec: &mut Spec, command: &[String], process: &ProcessArgs) -> anyhow::Result<()> {
    let base = spec.process().clone().unwrap_or_default();
    let command = if command.is_empty() {
        base.args().clone().unwrap_or_default()
    } else {
        command.to_vec()
    };
    if command.is_empty() {
        bail!("no command given (add -- CMD...)");
    }
    let mut env = base.env().clone().unwrap_or_default();
    let replaced = |e: &String| e.starts_with("PATH=") || (process.tty && e.starts_with("TERM="));
    env.retain(|e| !replaced(e));
    env.extend(process.env());
    let (uid, gid) = process.user_ids();
    let cwd = process
        .workdir
        .clone()
        .unwrap_or_else(|| base.cwd().display().to_string());
    let mut builder = ProcessBuilder::default()
        .args(command)
        .env(env)
        .cwd(cwd)
        .terminal(process.tty)
        .user(UserBuilder::default().uid(uid).gid(gid).build()?);
    if let Some(caps) = base.capabilities() {
        builder = builder.capabilities(caps.clone());
    }
    if let Some(rlimits) = base.rlimits() {
        builder = builder.rlimits(rlimits.clone());
    }
    spec.set_process(Some(
        builder
            .no_new_privileges(base.no_new_privileges().unwrap_or(true))
            .build()?,
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_parse() {
        assert_eq!(parse_user("1000").unwrap(), (1000, 1000));
        assert_eq!(parse_user("1:2").unwrap(), (1, 2));
        assert!(parse_user("bob").is_err());
    }

    #[test]
    fn the_command_line_replaces_path_and_keeps_other_env() {
        let dir = tempfile::tempdir().unwrap();
        let process = ProcessArgs {
            interactive: false,
            tty: true,
            envs: vec!["A=1".into()],
            workdir: Some("/tmp".into()),
            user: Some("7".into()),
        };
        let command = ["sh".to_string()];
        let (spec, root) = container_spec(None, Some(dir.path()), &command, &process).unwrap();
        assert_eq!(root, dir.path());
        let p = spec.process().clone().unwrap();
        assert_eq!(p.args().clone().unwrap(), vec!["sh"]);
        let env = p.env().clone().unwrap();
        assert_eq!(env.iter().filter(|e| e.starts_with("PATH=")).count(), 1);
        assert!(env.contains(&"TERM=xterm".to_string()));
        assert!(env.contains(&"A=1".to_string()));
        assert_eq!(p.terminal(), Some(true));
        assert_eq!(p.user().uid(), 7);
        assert!(container_spec(None, Some(dir.path()), &[], &process).is_err());
        let missing = container_spec(None, Some(Path::new("/nonexistent")), &command, &process);
        assert!(missing.unwrap_err().to_string().contains("/nonexistent"));
    }
}
