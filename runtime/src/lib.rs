//! Boots Hull images under QEMU and drives the guest agent.
