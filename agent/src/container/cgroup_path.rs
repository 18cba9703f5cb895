//! A systemd-style `cgroupsPath` (`slice:prefix:name`) mapped to the cgroupfs
//! directory systemd would give that unit.
//!
//! systemd runs unit `prefix-name.scope` in its slice, and nests slices by their
//! dashes: `a-b-c.slice` lives at `a.slice/a-b.slice/a-b-c.slice`. `-.slice` is the
//! root; an empty slice is `system.slice`. A name that is itself a slice
//! (`x-y.slice`) goes where systemd puts that slice, whatever the first field says.
//!
//! Limitation: there is no systemd in the guest; the path only decides where the
//! container's cgroup is made, no unit is registered.

use super::ContainerError;

/// The field the errors name.
const FIELD: &str = "OCI.Linux.CgroupsPath";
/// The slice of an empty first field.
const DEFAULT_SLICE: &str = "system.slice";

/// Whether `path` is in the systemd form.
pub fn is_systemd(path: &str) -> bool {
    path.contains(':')
}

/// The absolute cgroupfs path for a systemd `slice:prefix:name`.
pub fn systemd_to_cgroupfs(path: &str) -> Result<String, ContainerError> {
    let parts: Vec<&str> = path.split(':').collect();
    let [slice, prefix, name] = parts[..] else {
        return Err(bad(path, "must be slice:prefix:name"));
    };
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(bad(path, "the name must be one non-empty path component"));
    }
    if prefix.contains('/') {
        return Err(bad(path, "the prefix must not contain '/'"));
    }
    if name.ends_with(".slice") {
        return expand_slice(name).map_err(|p| bad(path, &p));
    }
    let slice = if slice.is_empty() {
        DEFAULT_SLICE
    } else {
        slice
    };
    let parent = expand_slice(slice).map_err(|p| bad(path, &p))?;
    let unit = match prefix {
        "" => format!("{name}.scope"),
        p => format!("{p}-{name}.scope"),
    };
    Ok(format!("{}/{unit}", parent.trim_end_matches('/')))
}

/// `a-b.slice` → `/a.slice/a-b.slice`; `-.slice` → `/`.
fn expand_slice(slice: &str) -> Result<String, String> {
    let stem = slice
        .strip_suffix(".slice")
        .ok_or_else(|| format!("slice {slice:?} does not end in .slice"))?;
    if slice.contains('/') {
        return Err(format!("slice {slice:?} must not contain '/'"));
    }
    if stem == "-" {
        return Ok("/".into());
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for part in stem.split('-') {
        if part.is_empty() {
            return Err(format!("slice {slice:?} has an empty part between dashes"));
        }
        path.push_str(&format!("/{prefix}{part}.slice"));
        prefix.push_str(part);
        prefix.push('-');
    }
    Ok(path)
}

fn bad(path: &str, problem: &str) -> ContainerError {
    ContainerError::BadField {
        field: FIELD.into(),
        problem: format!("systemd path {path:?}: {problem}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_go_under_their_expanded_slice() {
        for (given, want) in [
            ("system.slice:docker:abc", "/system.slice/docker-abc.scope"),
            (
                ":cri-containerd:abc",
                "/system.slice/cri-containerd-abc.scope",
            ),
            ("-.slice:p:n", "/p-n.scope"),
            (
                "kubepods-burstable.slice:cri:c1",
                "/kubepods.slice/kubepods-burstable.slice/cri-c1.scope",
            ),
            ("a-b-c.slice::n", "/a.slice/a-b.slice/a-b-c.slice/n.scope"),
            ("system.slice:p:x-y.slice", "/x.slice/x-y.slice"),
        ] {
            assert_eq!(systemd_to_cgroupfs(given).unwrap(), want, "{given}");
        }
    }

    #[test]
    fn malformed_paths_name_the_field() {
        for bad in [
            "a:b",
            "a:b:c:d",
            "system:p:n",
            "-a.slice:p:n",
            "a--b.slice:p:n",
            "a-.slice:p:n",
            "sys/tem.slice:p:n",
            "system.slice:p:",
            "system.slice:p:..",
            "system.slice:p:a/b",
            "system.slice:p/q:n",
        ] {
            let err = systemd_to_cgroupfs(bad).unwrap_err().to_string();
            assert!(err.starts_with("OCI.Linux.CgroupsPath: "), "{bad}: {err}");
        }
        assert!(is_systemd("a:b:c") && !is_systemd("/hull/c1"));
    }
}
