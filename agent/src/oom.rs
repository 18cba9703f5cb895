//! OOM events: the container code reports an OOM-killed container; GetOOMEvent, a long
//! poll, hands each report to the host.
//!
//! Reports are queued (up to [`OOM_QUEUE`]) so none is lost between two polls; a poll
//! cancelled by the host (deadline, dropped connection) loses nothing, since receiving
//! from the queue is cancel-safe.

use tokio::sync::{mpsc, Mutex};

/// How many undelivered OOM reports are kept; further ones are dropped with a warning.
pub const OOM_QUEUE: usize = 128;

/// Sends OOM reports; cheap to clone, usable from synchronous code.
#[derive(Clone, Debug)]
pub struct OomNotifier {
    tx: mpsc::Sender<String>,
}

impl OomNotifier {
    /// Reports that `container_id` was OOM-killed.
    pub fn notify(&self, container_id: &str) {
        if self.tx.try_send(container_id.to_string()).is_err() {
            tracing::warn!(container_id, "oom event queue full; event dropped");
        }
    }
}

/// The queue of OOM reports.
#[derive(Debug)]
pub struct OomEvents {
    tx: mpsc::Sender<String>,
    rx: Mutex<mpsc::Receiver<String>>,
}

impl Default for OomEvents {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(OOM_QUEUE);
        OomEvents {
            tx,
            rx: Mutex::new(rx),
        }
    }
}

impl OomEvents {
    /// A handle for the code that detects OOM kills.
    pub fn notifier(&self) -> OomNotifier {
        OomNotifier {
            tx: self.tx.clone(),
        }
    }

    /// Waits for the next OOM report and returns the container id.
    pub async fn next(&self) -> String {
        let mut rx = self.rx.lock().await;
        // The queue never closes: `self` holds a sender.
        rx.recv().await.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "current_thread")]
    async fn poll_blocks_until_a_report_and_keeps_order() {
        let events = OomEvents::default();
        let waited = tokio::time::timeout(Duration::from_millis(20), events.next()).await;
        assert!(waited.is_err(), "no event yet: the poll must block");
        let n = events.notifier();
        n.notify("a");
        n.notify("b");
        assert_eq!(events.next().await, "a");
        assert_eq!(events.next().await, "b");
    }

    #[test]
    fn a_full_queue_drops_instead_of_blocking() {
        let events = OomEvents::default();
        let n = events.notifier();
        for _ in 0..OOM_QUEUE + 5 {
            n.notify("c");
        }
        let mut rx = events.rx.try_lock().unwrap();
        let mut kept = 0;
        while rx.try_recv().is_ok() {
            kept += 1;
        }
        assert_eq!(kept, OOM_QUEUE);
    }
}
