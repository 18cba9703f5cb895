//! A stack of changes the sandbox made to the guest, undone in reverse order.
//!
//! Each step that changes the guest (a mount, a created directory, a rewritten file,
//! the hostname) pushes how to undo it. Teardown pops them all; a failed undo is logged
//! and teardown goes on, so one stuck mount does not keep the rest in place.
//!
//! Limitation: loaded kernel modules are not unloaded.

use std::path::PathBuf;

use hull_init::kernel::Kernel;

/// How to undo one change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Undo {
    /// Unmount this mount point.
    Unmount(PathBuf),
    /// Remove this directory, which the sandbox created, if it is empty. Never a
    /// recursive delete: after a failed unmount that would reach into the mounted
    /// filesystem (a host share, say).
    RemoveDir(PathBuf),
    /// Put this file back as it was (`None`: it did not exist).
    RestoreFile(PathBuf, Option<Vec<u8>>),
    /// Set the hostname back.
    RestoreHostname(String),
}

/// The changes made so far, oldest first.
#[derive(Debug, Default)]
pub struct UndoStack {
    steps: Vec<Undo>,
}

impl UndoStack {
    /// Records a change.
    pub fn push(&mut self, undo: Undo) {
        self.steps.push(undo);
    }

    /// Moves every step of `other` on top of this stack.
    pub fn append(&mut self, other: UndoStack) {
        self.steps.extend(other.steps);
    }

    /// The recorded steps, oldest first.
    pub fn steps(&self) -> &[Undo] {
        &self.steps
    }

    /// Undoes every change, newest first. Returns how many undos failed.
    pub fn unwind(&mut self, kernel: &dyn Kernel) -> usize {
        let mut failures = 0;
        while let Some(step) = self.steps.pop() {
            if let Err(e) = undo(kernel, &step) {
                tracing::warn!(step = ?step, error = %e, "undo failed");
                failures += 1;
            }
        }
        failures
    }
}

fn undo(kernel: &dyn Kernel, step: &Undo) -> std::io::Result<()> {
    match step {
        Undo::Unmount(target) => kernel
            .umount(target, false)
            .or_else(|_| kernel.umount(target, true)),
        Undo::RemoveDir(dir) => already_gone_is_fine(std::fs::remove_dir(dir)),
        Undo::RestoreFile(path, Some(previous)) => crate::files::write_atomic(path, previous),
        Undo::RestoreFile(path, None) => already_gone_is_fine(std::fs::remove_file(path)),
        Undo::RestoreHostname(name) => kernel.set_hostname(name),
    }
}

fn already_gone_is_fine(result: std::io::Result<()>) -> std::io::Result<()> {
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hull_init::kernel::fake::{Call, Recorder};

    #[test]
    fn unwinds_newest_first_and_keeps_going_after_a_failure() {
        let k = Recorder::new();
        k.fail_at(std::path::Path::new("/b"));
        let mut stack = UndoStack::default();
        stack.push(Undo::Unmount("/a".into()));
        stack.push(Undo::Unmount("/b".into()));
        stack.push(Undo::RestoreHostname("old".into()));
        stack.push(Undo::Unmount("/c".into()));
        assert_eq!(stack.unwind(&k), 1);
        assert_eq!(
            k.calls(),
            vec![
                Call::Umount("/c".into()),
                Call::SetHostname("old".into()),
                Call::Umount("/a".into()),
            ]
        );
        assert!(stack.steps().is_empty());
    }

    #[test]
    fn files_are_restored_or_removed() {
        let dir = tempfile::tempdir().unwrap();
        let kept = dir.path().join("kept");
        let added = dir.path().join("added");
        std::fs::write(&kept, "new").unwrap();
        std::fs::write(&added, "new").unwrap();
        let mut stack = UndoStack::default();
        stack.push(Undo::RestoreFile(kept.clone(), Some(b"old".to_vec())));
        stack.push(Undo::RestoreFile(added.clone(), None));
        assert_eq!(stack.unwind(&Recorder::new()), 0);
        assert_eq!(std::fs::read_to_string(&kept).unwrap(), "old");
        assert!(!added.exists());
    }
}
