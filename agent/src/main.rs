//! `hull-agent`: the Hull guest agent. As PID 1 it boots the guest and serves the agent
//! API; as a normal process it serves with the configuration given by flags.

use std::process::ExitCode;

use hull_agent::config::{parse_args, Invocation, USAGE};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The jail's child mode first: it may be PID 1 of a container's PID namespace,
    // and it must run before any thread starts.
    if args.first().map(String::as_str) == Some(hull_jail::CHILD_ARG) {
        hull_jail::child::main();
    }
    if args.first().map(String::as_str) == Some(hull_agent::sandbox::namespaces::PAUSE_ARG) {
        let hostname = args.get(1).map(String::as_str).unwrap_or_default();
        hull_agent::sandbox::namespaces::pause_main(hostname);
    }
    if hull_init::is_pid1() {
        hull_agent::pid1::main(args);
    }
    match parse_args(args) {
        Ok(Invocation::Version) => {
            println!("hull-agent {}", hull_agent::guest::AGENT_VERSION);
            ExitCode::SUCCESS
        }
        Ok(Invocation::Help) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Invocation::Run(config)) => match hull_agent::run_process(config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hull-agent: {:#}", anyhow::Error::from(e));
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("hull-agent: {e}");
            ExitCode::from(2)
        }
    }
}
