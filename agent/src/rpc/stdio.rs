//! ReadStdout, ReadStderr, WriteStdin, CloseStdin, TtyWinResize.

use hull_protocols::agent::{
    CloseStdinRequest, ReadStreamRequest, ReadStreamResponse, TtyWinResizeRequest,
    WriteStreamRequest, WriteStreamResponse,
};
use hull_protocols::empty::Empty;

use crate::container::ProcessEntry;
use crate::state::Agent;
use crate::status::RpcError;

/// Bytes answered when a read asks for 0 (the Go runtime's usual size).
const DEFAULT_READ: usize = 32 * 1024;
/// The most bytes one read answers, well inside a ttrpc frame.
const MAX_READ: usize = 1 << 20;

fn process(
    agent: &Agent,
    container_id: &str,
    exec_id: &str,
) -> Result<std::sync::Arc<ProcessEntry>, RpcError> {
    Ok(agent.containers.get(container_id)?.process(exec_id)?)
}

fn read_len(len: u32) -> usize {
    match usize::try_from(len) {
        Ok(0) => DEFAULT_READ,
        Ok(n) => n.min(MAX_READ),
        Err(_) => MAX_READ,
    }
}

pub async fn read_stdout(
    agent: &Agent,
    req: &ReadStreamRequest,
) -> Result<ReadStreamResponse, RpcError> {
    let p = process(agent, &req.container_id, &req.exec_id)?;
    Ok(ReadStreamResponse {
        data: p.read_stdout(read_len(req.len)).await,
        ..Default::default()
    })
}

pub async fn read_stderr(
    agent: &Agent,
    req: &ReadStreamRequest,
) -> Result<ReadStreamResponse, RpcError> {
    let p = process(agent, &req.container_id, &req.exec_id)?;
    Ok(ReadStreamResponse {
        data: p.read_stderr(read_len(req.len)).await,
        ..Default::default()
    })
}

pub async fn write_stdin(
    agent: &Agent,
    req: &WriteStreamRequest,
) -> Result<WriteStreamResponse, RpcError> {
    let p = process(agent, &req.container_id, &req.exec_id)?;
    let len = p.write_stdin(&req.data).await?;
    Ok(WriteStreamResponse {
        len: u32::try_from(len).unwrap_or(u32::MAX),
        ..Default::default()
    })
}

pub async fn close_stdin(agent: &Agent, req: &CloseStdinRequest) -> Result<Empty, RpcError> {
    process(agent, &req.container_id, &req.exec_id)?
        .close_stdin()
        .await?;
    Ok(Empty::new())
}

pub async fn resize(agent: &Agent, req: &TtyWinResizeRequest) -> Result<Empty, RpcError> {
    process(agent, &req.container_id, &req.exec_id)?.resize(req.row, req.column)?;
    Ok(Empty::new())
}
