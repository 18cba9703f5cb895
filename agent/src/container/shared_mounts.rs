//! `shared_mounts` of CreateContainer: a directory of one container (`src_ctr` at
//! `src_path`) seen by another (`dst_ctr` at `dst_path`) of the same sandbox.
//!
//! Design: when the source container is created, the agent mounts a tmpfs at
//! `/run/kata-containers/sandbox/shared-mounts/<name>` (undone when that container
//! is removed) and binds it at `src_path` in it; when the destination container is
//! created, the same directory is bound at `dst_path`, so both see the same files.
//! Containers are named by id or by their CRI name (the
//! `io.kubernetes.cri.container-name` annotation). An entry naming neither the new
//! container as source nor as destination concerns other containers and is skipped.
//!
//! The source must be created first: a destination whose source container does not
//! exist is refused (NOT_FOUND, naming the entry). The tmpfs needs system mode.

use std::path::{Component, Path, PathBuf};

use hull_protocols::agent::{SharedMount, Storage};
use hull_protocols::oci_spec::runtime::{Mount, MountBuilder, Spec};

use super::{ContainerError, Containers};
use crate::config::Config;
use crate::sandbox::storage;
use crate::sandbox::undo::UndoStack;
use hull_init::kernel::Kernel;

/// The guest directory the shared directories live in.
pub const SHARED_MOUNTS_DIR: &str = "/run/kata-containers/sandbox/shared-mounts";
/// The annotation holding a container's CRI name.
pub const CRI_NAME_ANNOTATION: &str = "io.kubernetes.cri.container-name";

/// What the shared mounts need from the agent.
pub struct Context<'a> {
    pub kernel: &'a dyn Kernel,
    pub config: &'a Config,
    pub containers: &'a Containers,
}

/// The CRI name of a container, from its spec (empty without one).
pub fn cri_name(spec: &Spec) -> String {
    spec.annotations()
        .as_ref()
        .and_then(|a| a.get(CRI_NAME_ANNOTATION).cloned())
        .unwrap_or_default()
}

/// Adds the new container's shared mounts to its spec; the tmpfs of a shared
/// directory it is the source of goes on `undo`.
pub fn apply(
    ctx: &Context<'_>,
    id: &str,
    shared: &[SharedMount],
    spec: &mut Spec,
    undo: &mut UndoStack,
) -> Result<(), ContainerError> {
    let name = cri_name(spec);
    let is_me = |c: &str| c == id || (!name.is_empty() && c == name);
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for (index, m) in shared.iter().enumerate() {
        let (src, dst) = (is_me(&m.src_ctr), is_me(&m.dst_ctr));
        if !src && !dst {
            tracing::debug!(index, name = %m.name, "shared mount of other containers");
            continue;
        }
        let dir = check(ctx.config, index, m)?;
        if src {
            undo.append(storage::add(ctx.kernel, ctx.config, &tmpfs(&m.name))?);
            mounts.push(bind(&dir, &m.src_path, index, "src_path")?);
        }
        if dst {
            if !src && ctx.containers.find(&m.src_ctr).is_none() {
                return Err(ContainerError::SharedMountSource(index, m.src_ctr.clone()));
            }
            mounts.push(bind(&dir, &m.dst_path, index, "dst_path")?);
        }
    }
    spec.set_mounts(Some(mounts));
    Ok(())
}

/// Checks an entry's fields; returns its shared directory.
fn check(config: &Config, index: usize, m: &SharedMount) -> Result<PathBuf, ContainerError> {
    let bad = |field: &str, problem: &str| ContainerError::BadField {
        field: format!("shared_mounts[{index}].{field}"),
        problem: problem.to_string(),
    };
    let one_component = matches!(
        Path::new(&m.name).components().collect::<Vec<_>>()[..],
        [Component::Normal(_)]
    );
    if !one_component {
        return Err(bad("name", "must be one path component"));
    }
    for (field, path) in [("src_path", &m.src_path), ("dst_path", &m.dst_path)] {
        let path = Path::new(path);
        if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
            return Err(bad(field, "must be an absolute path without '..'"));
        }
    }
    Ok(config.guest_path(Path::new(SHARED_MOUNTS_DIR).join(&m.name)))
}

fn tmpfs(name: &str) -> Storage {
    Storage {
        driver: "ephemeral".into(),
        source: "shared-mount".into(),
        fstype: "tmpfs".into(),
        mount_point: format!("{SHARED_MOUNTS_DIR}/{name}"),
        options: vec!["nodev".into(), "nosuid".into()],
        ..Default::default()
    }
}

fn bind(dir: &Path, at: &str, index: usize, field: &str) -> Result<Mount, ContainerError> {
    MountBuilder::default()
        .destination(at)
        .source(dir)
        .typ("bind")
        .options(vec!["rbind".to_string(), "rw".to_string()])
        .build()
        .map_err(|e| ContainerError::BadField {
            field: format!("shared_mounts[{index}].{field}"),
            problem: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hull_init::kernel::fake::Recorder;

    fn entry(src: &str, dst: &str) -> SharedMount {
        SharedMount {
            name: "logs".into(),
            src_ctr: src.into(),
            src_path: "/var/log".into(),
            dst_ctr: dst.into(),
            dst_path: "/logs".into(),
            ..Default::default()
        }
    }

    fn config(root: &Path) -> Config {
        Config {
            system: true,
            root: root.to_path_buf(),
            ..Config::default()
        }
    }

    fn destinations(spec: &Spec) -> Vec<(PathBuf, PathBuf)> {
        let mounts = spec.mounts().clone().unwrap_or_default();
        mounts
            .iter()
            .map(|m| (m.destination().clone(), m.source().clone().unwrap()))
            .collect()
    }

    #[test]
    fn the_source_mounts_the_directory_and_the_destination_binds_it() {
        let root = tempfile::tempdir().unwrap();
        let (k, c, table) = (Recorder::new(), config(root.path()), Containers::default());
        let ctx = Context {
            kernel: &k,
            config: &c,
            containers: &table,
        };
        let dir = root
            .path()
            .join("run/kata-containers/sandbox/shared-mounts/logs");
        let mut spec = Spec::default();
        spec.set_mounts(None);
        let mut undo = UndoStack::default();
        apply(&ctx, "app", &[entry("app", "side")], &mut spec, &mut undo).unwrap();
        assert_eq!(k.mount_targets(), vec![dir.clone()]);
        assert!(!undo.steps().is_empty());
        assert_eq!(destinations(&spec), vec![("/var/log".into(), dir.clone())]);

        let err = apply(&ctx, "side", &[entry("gone", "side")], &mut spec, &mut undo).unwrap_err();
        assert_eq!(
            err.to_string(),
            "shared_mounts[0].src_ctr: container \"gone\" not found"
        );
    }

    #[test]
    fn other_containers_entries_are_skipped_and_bad_fields_named() {
        let root = tempfile::tempdir().unwrap();
        let (k, c, table) = (Recorder::new(), config(root.path()), Containers::default());
        let ctx = Context {
            kernel: &k,
            config: &c,
            containers: &table,
        };
        let mut spec = Spec::default();
        let mut undo = UndoStack::default();
        apply(&ctx, "me", &[entry("a", "b")], &mut spec, &mut undo).unwrap();
        assert!(k.mount_targets().is_empty());
        let mut bad = entry("me", "b");
        bad.name = "../x".into();
        let err = apply(&ctx, "me", &[bad], &mut spec, &mut undo).unwrap_err();
        assert_eq!(
            err.to_string(),
            "shared_mounts[0].name: must be one path component"
        );
        let mut bad = entry("a", "me");
        bad.dst_path = "logs".into();
        let err = apply(&ctx, "me", &[bad], &mut spec, &mut undo).unwrap_err();
        assert!(
            err.to_string().starts_with("shared_mounts[0].dst_path"),
            "{err}"
        );
    }
}
