//! The agent API that Hull's guest agent serves and its host runtime calls.
//!
//! The wire format is the Kata Containers agent protocol (ttrpc over a stream socket);
//! the `.proto` files under `proto/` are written from the facts in the project's
//! agent-api.md and compiled to Rust at build time.
