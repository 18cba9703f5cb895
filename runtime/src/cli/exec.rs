//! `hull exec ID -- CMD...`: run another process in a running container.

use std::process::ExitCode;
use std::time::Duration;

use hull_protocols::oci;
use hull_runtime::agent::ExecProcessRequest;
use hull_runtime::agent_call;
use hull_runtime::sandbox::Sandbox;
use hull_runtime::state;

use super::run::exit_code;
use super::spec::ProcessArgs;
use super::stdio::{self, Process};

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    #[command(flatten)]
    process: ProcessArgs,
    /// The container id (a sandbox's id names its first container).
    id: String,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

pub async fn run(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let mut sandbox = Sandbox::of_container(&args.id)?;
    sandbox.watch().await?;
    let agent = sandbox.agent(Duration::from_secs(10)).await?;
    let exec_id = format!("exec-{}", state::new_id());
    let mut req = ExecProcessRequest::new();
    req.container_id = args.id.clone();
    req.exec_id = exec_id.clone();
    req.process = hull_protocols::protobuf::MessageField::some(exec_process(&args));
    agent_call!(agent, exec_process, "ExecProcess", &req)?;
    let p = Process {
        agent,
        container: args.id.clone(),
        exec_id,
    };
    let attached = stdio::attach(p, args.process.interactive, args.process.tty);
    let status = sandbox.race("the process", attached).await??;
    Ok(exit_code(status))
}

fn exec_process(args: &ExecArgs) -> oci::Process {
    let mut p = oci::Process::new();
    p.Args = args.command.clone();
    p.Env = args.process.env();
    p.Cwd = args.process.workdir.clone().unwrap_or_else(|| "/".into());
    p.Terminal = args.process.tty;
    let (uid, gid) = args.process.user_ids();
    let mut user = oci::User::new();
    user.UID = uid;
    user.GID = gid;
    p.User = hull_protocols::protobuf::MessageField::some(user);
    p
}
