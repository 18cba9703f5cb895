//! Watches a VM's console log (a file QEMU appends to) and notes when a line
//! first contains one of a set of markers, on the host's clock.
//!
//! Limitation: the log is polled every [`POLL`], so a time is late by up to that
//! much plus the file write; small next to a boot under TCG.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often the console log is read.
pub const POLL: Duration = Duration::from_millis(5);

/// The agent's first log line as PID 1 (text and JSON formats both carry it).
pub const AGENT_FIRST_LINE: &str = "hull-agent booting as pid 1";

/// A running watch of one console log.
pub struct ConsoleWatch {
    seen: watch::Receiver<Option<Duration>>,
    task: JoinHandle<()>,
}

impl ConsoleWatch {
    /// Starts watching `log` (which may not exist yet) for `marker`; times are
    /// measured from `started`.
    pub fn spawn(log: PathBuf, marker: &'static str, started: Instant) -> Self {
        let (tx, seen) = watch::channel(None);
        let task = tokio::spawn(async move {
            let mut text = Vec::new();
            loop {
                if let Ok(bytes) = tokio::fs::read(&log).await {
                    text = bytes;
                }
                if contains(&text, marker.as_bytes()) {
                    let _ = tx.send(Some(started.elapsed()));
                    return;
                }
                tokio::time::sleep(POLL).await;
            }
        });
        Self { seen, task }
    }

    /// When the marker was seen, if it was.
    pub fn seen(&self) -> Option<Duration> {
        *self.seen.borrow()
    }

    /// Waits until the marker is seen (never returns if it is not).
    pub async fn wait(&mut self) -> Duration {
        match self.seen.wait_for(Option::is_some).await {
            Ok(seen) => seen.unwrap_or_default(),
            Err(_) => std::future::pending().await,
        }
    }
}

impl Drop for ConsoleWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_marker_written_later_is_timed() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        let started = Instant::now();
        let mut watch = ConsoleWatch::spawn(log.clone(), "MARK", started);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(watch.seen(), None);
        std::fs::write(&log, "boot\nMA").unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(watch.seen(), None);
        std::fs::write(&log, "boot\nMARK here\n").unwrap();
        let at = tokio::time::timeout(Duration::from_secs(5), watch.wait())
            .await
            .unwrap();
        assert!(at >= Duration::from_millis(50), "{at:?}");
    }
}
