//! The ttrpc services: `grpc.AgentService` and `grpc.Health`.
//!
//! Every generated method handler is wrapped in a [`Guarded`] handler, the single
//! place where each request is:
//! - contained: a panic becomes an INTERNAL reply (ttrpc itself would leave the client
//!   waiting until its deadline);
//! - checked: a request whose payload does not decode becomes INVALID_ARGUMENT (ttrpc
//!   would answer UNKNOWN);
//! - logged (one debug line: method, duration, status) and counted in the metrics.
//!
//! The RPC bodies live in one file per family; [`agent_service`] only routes.

mod agent_service;
mod containers;
mod copy_file;
mod guest;
pub(crate) mod health;
mod metrics;
mod oom;
mod process;
mod sandbox;
mod stdio;
mod storage;
mod unimplemented;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use hull_init::power::Contained;
use hull_protocols::ttrpc::proto::ResponseInit;
use hull_protocols::ttrpc::r#async::{MethodHandler, Service, TtrpcContext};
use hull_protocols::ttrpc::{self, get_status, Code, Request, Response};
use hull_protocols::{agent_ttrpc, health_ttrpc};

use crate::metrics::Metrics;
use crate::state::Agent;
use crate::status::code_name;

/// The services to register with the ttrpc server, every method guarded.
pub fn services(agent: Arc<Agent>) -> HashMap<String, Service> {
    let mut services = agent_ttrpc::create_agent_service(Arc::new(agent_service::AgentRpc {
        agent: agent.clone(),
    }));
    services.extend(health_ttrpc::create_health(Arc::new(health::HealthRpc)));
    for service in services.values_mut() {
        let methods = std::mem::take(&mut service.methods);
        service.methods = methods
            .into_iter()
            .map(|(name, inner)| {
                let guarded = Guarded {
                    method: name.clone(),
                    inner,
                    agent: agent.clone(),
                };
                (
                    name,
                    Box::new(guarded) as Box<dyn MethodHandler + Send + Sync>,
                )
            })
            .collect();
    }
    services
}

/// A generated method handler with containment, logging and metrics around it.
struct Guarded {
    method: String,
    inner: Box<dyn MethodHandler + Send + Sync>,
    agent: Arc<Agent>,
}

#[async_trait]
impl MethodHandler for Guarded {
    async fn handler(&self, ctx: TtrpcContext, req: Request) -> ttrpc::Result<Response> {
        let call = self.inner.handler(ctx, req);
        Ok(guard(&self.method, &self.agent.metrics, call).await)
    }
}

/// Runs one request's handler: contained, logged, counted. Always yields a reply.
async fn guard<F>(method: &str, metrics: &Metrics, call: F) -> Response
where
    F: Future<Output = ttrpc::Result<Response>>,
{
    let started = Instant::now();
    let response = match Contained::new(call).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => failed_before_body(method, e),
        Err(panic) => {
            let message = format!("{method} failed: internal error ({panic})");
            Response::init_status(get_status(Code::INTERNAL, message))
        }
    };
    let code = code_name(response.status().code());
    let took = started.elapsed();
    metrics.record(method, code, took);
    tracing::debug!(method, micros = took.as_micros() as u64, code, "rpc");
    response
}

/// The generated handler fails on its own only when the request payload does not
/// decode (or, never in practice, when the reply does not encode).
fn failed_before_body(method: &str, e: ttrpc::Error) -> Response {
    let status = match e {
        ttrpc::Error::RpcStatus(status) => status,
        other => get_status(
            Code::INVALID_ARGUMENT,
            format!("cannot decode {method} request: {other}"),
        ),
    };
    Response::init_status(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_panicking_handler_answers_internal_and_is_counted() {
        let metrics = Metrics::default();
        let response = guard("Boom", &metrics, async {
            tokio::task::yield_now().await;
            panic!("handler bug");
        })
        .await;
        assert_eq!(response.status().code(), Code::INTERNAL);
        assert!(response.status().message().contains("handler bug"));
        assert!(metrics
            .render()
            .contains("method=\"Boom\",code=\"INTERNAL\"} 1"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn decode_failures_are_invalid_argument_and_statuses_pass_through() {
        let metrics = Metrics::default();
        let decode = ttrpc::Error::Others("Unpack request error".into());
        let response = guard("CopyFile", &metrics, async { Err(decode) }).await;
        assert_eq!(response.status().code(), Code::INVALID_ARGUMENT);
        let status = get_status(Code::NOT_FOUND, "x");
        let response = guard("X", &metrics, async {
            Err(ttrpc::Error::RpcStatus(status))
        })
        .await;
        assert_eq!(response.status().code(), Code::NOT_FOUND);
    }
}
