//! The agent's shared state, handed to every RPC.
//!
//! Design: one [`Agent`] behind an `Arc`. The sandbox sits behind its own lock; the
//! container API adds its table (`containers`) beside it with its own lock, so a long
//! container operation never blocks sandbox-level RPCs. Locks are never held across an
//! `.await`.

use std::sync::{Arc, Mutex, MutexGuard};

use hull_init::kernel::Kernel;
use hull_init::reaper::Reaper;

use crate::config::Config;
use crate::container::Containers;
use crate::metrics::Metrics;
use crate::oom::OomEvents;
use crate::sandbox::Sandbox;

/// Everything the RPCs share.
pub struct Agent {
    pub config: Config,
    /// The kernel seam (real in the agent, a recorder in unit tests).
    pub kernel: Arc<dyn Kernel>,
    /// The one reaper of child processes.
    pub reaper: Reaper,
    pub metrics: Metrics,
    pub oom: OomEvents,
    /// The containers, behind their own lock.
    pub containers: Containers,
    sandbox: Mutex<Sandbox>,
    shutdown: tokio::sync::Notify,
}

impl Agent {
    /// A fresh agent state.
    pub fn new(config: Config, kernel: Arc<dyn Kernel>, reaper: Reaper) -> Self {
        Agent {
            config,
            kernel,
            reaper,
            metrics: Metrics::default(),
            oom: OomEvents::default(),
            containers: Containers::default(),
            sandbox: Mutex::new(Sandbox::default()),
            shutdown: tokio::sync::Notify::new(),
        }
    }

    /// The sandbox, locked.
    pub fn sandbox(&self) -> MutexGuard<'_, Sandbox> {
        self.sandbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks the server to stop (after DestroySandbox).
    pub fn request_shutdown(&self) {
        self.shutdown.notify_one();
    }

    /// Resolves once a shutdown was requested.
    pub async fn shutdown_requested(&self) {
        self.shutdown.notified().await;
    }
}
