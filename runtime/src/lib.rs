//! Boots Hull images under QEMU and drives the guest agent.
//!
//! Layers, bottom up: [`kvm`] (is KVM really usable), [`profile`] (QEMU machine
//! profiles per architecture), [`vm`] (the launcher: helpers, QEMU, QMP, console,
//! supervision of the processes).
pub mod agent;
pub mod channel;
pub mod control;
pub mod host;
pub mod image;
pub mod kvm;
pub mod plan;
pub mod profile;
pub mod sandbox;
pub mod state;
pub mod supervisor;
pub mod vm;
