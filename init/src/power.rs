//! Ending the machine: sync and power off, and the panic hook that does it.
//!
//! A PID 1 that returns makes the kernel panic, so the init's way out is always
//! [`power_off`]. A panic is fatal unless it happens inside [`contain`] or a
//! [`Contained`] future, which request handlers use to turn a bug into an error reply.
//!
//! Limitation: if the power-off call itself fails, the process exits, which the kernel
//! turns into a panic (with `panic=1` on the command line, a reboot).

use std::cell::Cell;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::kernel::Kernel;

thread_local! {
    static CONTAINED: Cell<u32> = const { Cell::new(0) };
}

/// What an uncontained panic does after it is logged.
#[derive(Clone)]
pub enum OnFatal {
    /// Sync and power off (PID 1).
    PowerOff(Arc<dyn Kernel>),
    /// Exit the process with status 70 (a normal process).
    Exit,
}

/// Syncs and powers off. Never returns.
pub fn power_off(kernel: &dyn Kernel, reason: &str) -> ! {
    let error = shutdown_steps(kernel);
    tracing::error!(reason, error = %error, "power off failed; exiting");
    std::process::exit(1)
}

/// Logs, syncs and asks for power off; returns the error when the kernel refuses.
pub fn shutdown_steps(kernel: &dyn Kernel) -> std::io::Error {
    tracing::info!("powering off");
    kernel.sync();
    match kernel.power_off() {
        Ok(()) => std::io::Error::other("power off returned"),
        Err(e) => e,
    }
}

/// Ends the process after a fatal event, as `on_fatal` says.
pub fn fatal(on_fatal: &OnFatal, reason: &str) -> ! {
    match on_fatal {
        OnFatal::PowerOff(kernel) => power_off(kernel.as_ref(), reason),
        OnFatal::Exit => {
            tracing::error!(reason, "fatal; exiting");
            std::process::exit(70)
        }
    }
}

/// Installs the panic hook: every panic is logged; an uncontained one is fatal.
pub fn install_panic_hook(on_fatal: OnFatal) {
    std::panic::set_hook(Box::new(move |info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = panic_message(info.payload());
        if is_contained() {
            tracing::error!(%location, message, "panic in a contained task");
            return;
        }
        tracing::error!(%location, message, "panic");
        fatal(&on_fatal, "panic");
    }));
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic".to_string()
    }
}

/// Whether the current thread is inside [`contain`] or a [`Contained`] poll.
pub fn is_contained() -> bool {
    CONTAINED.with(|c| c.get() > 0)
}

/// Runs `f`, turning a panic into `Err` with the panic message instead of a fatal event.
pub fn contain<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    CONTAINED.with(|c| c.set(c.get() + 1));
    let result = catch_unwind(AssertUnwindSafe(f));
    CONTAINED.with(|c| c.set(c.get() - 1));
    result.map_err(|payload| panic_message(payload.as_ref()))
}

/// A future whose panics become `Err(message)`, like [`contain`].
pub struct Contained<F> {
    inner: Pin<Box<F>>,
}

impl<F: Future> Contained<F> {
    /// Wraps `inner`.
    pub fn new(inner: F) -> Self {
        Self {
            inner: Box::pin(inner),
        }
    }
}

impl<F: Future> Future for Contained<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.inner.as_mut();
        match contain(move || inner.poll(cx)) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(message) => Poll::Ready(Err(message)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::fake::{Call, Recorder};

    #[test]
    fn shutdown_syncs_before_power_off() {
        let k = Recorder::new();
        let err = shutdown_steps(&k);
        assert_eq!(k.calls(), vec![Call::Sync, Call::PowerOff]);
        assert_eq!(err.raw_os_error(), Some(libc::EPERM));
    }

    #[test]
    fn contain_returns_the_panic_message() {
        let r: Result<(), String> = contain(|| panic!("boom {}", 7));
        assert_eq!(r.unwrap_err(), "boom 7");
        assert!(!is_contained());
        assert_eq!(contain(|| 5).unwrap(), 5);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn contained_future_catches_a_panic_after_a_yield() {
        let r = Contained::new(async {
            tokio::task::yield_now().await;
            if is_contained() {
                panic!("late");
            }
            1
        })
        .await;
        assert_eq!(r.unwrap_err(), "late");
        assert_eq!(Contained::new(async { 2 }).await.unwrap(), 2);
    }
}
