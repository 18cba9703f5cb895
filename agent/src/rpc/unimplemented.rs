//! The answer for RPCs this agent does not implement: UNIMPLEMENTED, naming the RPC.

use hull_protocols::ttrpc;

use crate::status::{to_ttrpc, RpcError};

/// Fails an RPC that is not built in.
pub fn unimplemented<T>(rpc: &'static str) -> ttrpc::Result<T> {
    Err(to_ttrpc(&RpcError::Unimplemented(rpc)))
}
