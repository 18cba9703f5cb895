//! Container figures inside one sandbox: a [`Guest`] (a VM with a shared
//! directory holding static busybox root filesystems) driven through the
//! agent's container RPCs (`CreateContainer`, `StartContainer`, `ExecProcess`,
//! `ReadStdout`, `WaitProcess`, `RemoveContainer`), timed on the host.
//!
//! Each container gets its own read-only root filesystem on the share.
//!
//! The containers run a static busybox for the guest's architecture (see
//! [`crate::guest`]).

use std::time::{Duration, Instant};

use hull_runtime::agent::AgentClient;
use hull_runtime::image::Image;
use hull_runtime::vm::spec::Accel;

use crate::guest::calls::{self, Stream};
pub use crate::guest::GuestError as ContainersError;
use crate::guest::{self, Guest};

/// The applets the containers run.
const APPLETS: &[&str] = &["sh", "true", "echo", "sleep", "yes", "cat"];
const SIGKILL: u32 = 9;

/// A booted sandbox ready for containers.
pub struct Sandbox {
    guest: Guest,
    next_id: u64,
    /// Containers created so far.
    pub created: u64,
}

impl Sandbox {
    /// Boots `image` with a shared busybox root filesystem and creates the sandbox.
    pub async fn start(
        image: &Image,
        arch: &str,
        accel: Accel,
        timeout: Duration,
    ) -> Result<Self, ContainersError> {
        let guest = Guest::start(image, arch, accel, timeout, "bench").await?;
        Ok(Self {
            guest,
            next_id: 0,
            created: 0,
        })
    }

    /// The agent client.
    pub fn client(&self) -> &AgentClient {
        self.guest.client()
    }

    fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("bench-{}", self.next_id)
    }

    /// A new container id with its root filesystem on the share.
    pub fn prepare(&mut self) -> Result<String, ContainersError> {
        let id = self.new_id();
        self.guest.prepare_rootfs(&id, APPLETS)?;
        Ok(id)
    }

    /// Creates and starts prepared container `id` running `args`.
    pub async fn create_start_prepared(
        &mut self,
        id: &str,
        args: &[&str],
    ) -> Result<(), ContainersError> {
        guest::create_start(self.client(), id, guest::spec(id, args)?).await?;
        self.created += 1;
        Ok(())
    }

    /// Prepares, creates and starts a container running `args`; returns its id.
    pub async fn create_start(&mut self, args: &[&str]) -> Result<String, ContainersError> {
        let id = self.prepare()?;
        self.create_start_prepared(&id, args).await?;
        Ok(id)
    }

    /// Waits for a container's init and removes the container.
    pub async fn finish(&self, id: &str) -> Result<(), ContainersError> {
        guest::finish(self.client(), id).await?;
        self.guest.forget(id);
        Ok(())
    }

    /// Removes container `id`.
    pub async fn remove(&self, id: &str) -> Result<(), ContainersError> {
        guest::remove(self.client(), id).await?;
        self.guest.forget(id);
        Ok(())
    }

    /// One whole container life (create, start, wait for `true`, remove).
    pub async fn run_true(&mut self) -> Result<(), ContainersError> {
        let id = self.create_start(&["/bin/true"]).await?;
        self.finish(&id).await
    }

    /// `n` whole container lives at once; returns how long they took.
    pub async fn run_parallel(&mut self, n: usize) -> Result<Duration, ContainersError> {
        let ids = (0..n)
            .map(|_| self.prepare())
            .collect::<Result<Vec<_>, _>>()?;
        let mut set = tokio::task::JoinSet::new();
        let started = Instant::now();
        for id in ids.clone() {
            let client = self.client().clone();
            set.spawn(async move {
                guest::create_start(&client, &id, guest::spec(&id, &["/bin/true"])?).await?;
                guest::finish(&client, &id).await
            });
        }
        let mut results = Vec::with_capacity(n);
        while let Some(joined) = set.join_next().await {
            results.push(joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())));
        }
        let took = started.elapsed();
        self.created += n as u64;
        ids.iter().for_each(|id| self.guest.forget(id));
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        Ok(took)
    }

    /// Starts `args` as a process in container `id`; returns its exec id.
    pub async fn exec(&mut self, id: &str, args: &[&str]) -> Result<String, ContainersError> {
        let exec_id = self.new_id();
        calls::exec(self.client(), id, &exec_id, guest::process(args)).await?;
        Ok(exec_id)
    }

    /// Waits for process `exec_id` of container `id`; returns its status.
    pub async fn wait(&self, id: &str, exec_id: &str) -> Result<i32, ContainersError> {
        guest::wait(self.client(), id, exec_id).await
    }

    /// One ReadStdout of process `exec_id`; returns the bytes read.
    pub async fn read_stdout(&self, id: &str, exec_id: &str) -> Result<usize, ContainersError> {
        let data = calls::read(self.client(), id, exec_id, Stream::Stdout).await?;
        Ok(data.len())
    }

    /// Kills process `exec_id` of container `id` and waits for it.
    pub async fn kill(&self, id: &str, exec_id: &str) -> Result<(), ContainersError> {
        match calls::signal(self.client(), id, exec_id, SIGKILL).await {
            // The process has already exited: only its status is left to collect.
            Err(e) if e.not_found() => {}
            other => other?,
        }
        self.wait(id, exec_id).await.map(drop)
    }

    /// Stops the VM.
    pub async fn stop(self) {
        self.guest.stop().await;
    }
}
