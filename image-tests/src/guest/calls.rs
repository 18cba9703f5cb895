//! Process calls on a guest's containers that the figures and the scenario
//! tests share: exec, signal, and reading a stream to its end.

use hull_protocols::agent::{ExecProcessRequest, ReadStreamRequest, SignalProcessRequest};
use hull_protocols::oci;
use hull_runtime::agent::AgentClient;
use hull_runtime::agent_call;

use super::GuestError;

/// Bytes asked for per read (what the Go Kata runtime asks for).
pub const READ_LEN: u32 = 32768;

/// One of a process's output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output (or the terminal).
    Stdout,
    /// Standard error.
    Stderr,
}

/// One read of `stream` of process `exec_id` in container `id`; empty at its end.
pub async fn read(
    client: &AgentClient,
    id: &str,
    exec_id: &str,
    stream: Stream,
) -> Result<Vec<u8>, GuestError> {
    let req = ReadStreamRequest {
        container_id: id.into(),
        exec_id: exec_id.into(),
        len: READ_LEN,
        ..Default::default()
    };
    let reply = match stream {
        Stream::Stdout => agent_call!(client, read_stdout, "ReadStdout", &req)?,
        Stream::Stderr => agent_call!(client, read_stderr, "ReadStderr", &req)?,
    };
    Ok(reply.data)
}

/// Reads `stream` of process `exec_id` in container `id` to its end.
pub async fn read_all(
    client: &AgentClient,
    id: &str,
    exec_id: &str,
    stream: Stream,
) -> Result<Vec<u8>, GuestError> {
    let mut all = Vec::new();
    loop {
        let data = read(client, id, exec_id, stream).await?;
        if data.is_empty() {
            return Ok(all);
        }
        all.extend(data);
    }
}

/// Starts `process` as `exec_id` in container `id`.
pub async fn exec(
    client: &AgentClient,
    id: &str,
    exec_id: &str,
    process: oci::Process,
) -> Result<(), GuestError> {
    let req = ExecProcessRequest {
        container_id: id.into(),
        exec_id: exec_id.into(),
        process: Some(process).into(),
        ..Default::default()
    };
    agent_call!(client, exec_process, "ExecProcess", &req)?;
    Ok(())
}

/// Sends `signal` to process `exec_id` of container `id` (empty: its init).
pub async fn signal(
    client: &AgentClient,
    id: &str,
    exec_id: &str,
    signal: u32,
) -> Result<(), GuestError> {
    let req = SignalProcessRequest {
        container_id: id.into(),
        exec_id: exec_id.into(),
        signal,
        ..Default::default()
    };
    agent_call!(client, signal_process, "SignalProcess", &req)?;
    Ok(())
}
