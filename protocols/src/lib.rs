//! The agent API that Hull's guest agent serves and its host runtime calls.
//!
//! The wire format is the Kata Containers agent protocol (ttrpc over a stream socket);
//! the `.proto` files under `proto/` are written from the facts in the project's
//! agent-api.md and compiled to Rust at build time by `ttrpc-codegen`'s pure-Rust parser.
//!
//! Generated modules, one per `.proto` file:
//! - [`agent`], [`health`], [`oci`], [`csi`], [`types`], [`empty`]: the messages;
//! - [`agent_ttrpc`], [`health_ttrpc`]: async ttrpc services and clients
//!   (`AgentService` / `create_agent_service` / `AgentServiceClient`, and
//!   `Health` / `create_health` / `HealthClient`).
//!
//! [`oci_convert`] maps the OCI messages to and from the `oci-spec` crate's types.
//!
//! [`ttrpc`] and [`protobuf`] are re-exported so that every Hull crate uses the
//! versions the generated code was built against.
//!
//! Limitations: only the async (tokio) ttrpc flavour is generated; there is no
//! blocking client or server.

include!(concat!(env!("OUT_DIR"), "/modules.rs"));

pub use protobuf;
pub use ttrpc;

pub mod oci_convert;
