//! Capabilities and the user switch, with `capctl`.
//!
//! Order: drop the bounding set while still root (needs CAP_SETPCAP), switch
//! groups and ids with "keep capabilities" on, then set the effective, permitted
//! and inheritable sets, then the ambient set. A capability the running kernel does
//! not know cannot be granted; it is skipped with a warning.

use capctl::{Cap, CapSet, CapState};
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{Capabilities, LinuxCapabilities, User};

/// Errors while switching user or setting capabilities.
#[derive(Debug, thiserror::Error)]
pub enum CapsError {
    /// A capability name capctl does not know.
    #[error("unknown capability {0}")]
    Unknown(String),
    /// A capability call failed.
    #[error("{0}")]
    Caps(&'static str, #[source] capctl::Error),
    /// A credential call failed.
    #[error("{0}")]
    Ids(&'static str, #[source] nix::Error),
}

/// Converts an OCI capability list into a capctl set, skipping (with a warning)
/// capabilities the running kernel lacks.
pub fn to_capset(caps: Option<&Capabilities>) -> Result<CapSet, CapsError> {
    let mut set = CapSet::empty();
    for c in caps.into_iter().flatten() {
        let name = format!("CAP_{c}");
        let cap: Cap = name.parse().map_err(|_| CapsError::Unknown(name.clone()))?;
        if cap.is_supported() {
            set.add(cap);
        } else {
            tracing::warn!(capability = %name, "capability unknown to this kernel, skipped");
        }
    }
    Ok(set)
}

/// Removes from the bounding set every capability not in `keep`.
pub fn drop_bounding(keep: &CapSet) -> Result<(), CapsError> {
    for cap in Cap::iter().filter(|c| c.is_supported() && !keep.has(*c)) {
        capctl::bounding::drop(cap).map_err(|e| CapsError::Caps("drop bounding capability", e))?;
    }
    Ok(())
}

/// Switches to the spec's user, groups and umask, keeping capabilities for
/// [`apply_sets`].
pub fn switch_user(user: &User) -> Result<(), CapsError> {
    capctl::set_keepcaps(true).map_err(|e| CapsError::Caps("keep capabilities", e))?;
    let groups: Vec<Gid> = user
        .additional_gids()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    if let Err(e) = nix::unistd::setgroups(&groups) {
        // A user namespace with setgroups denied cannot change them: fine when
        // nothing was asked for.
        if !(groups.is_empty() && e == nix::Error::EPERM) {
            return Err(CapsError::Ids("setgroups", e));
        }
    }
    let gid = Gid::from_raw(user.gid());
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| CapsError::Ids("setresgid", e))?;
    let uid = Uid::from_raw(user.uid());
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| CapsError::Ids("setresuid", e))?;
    capctl::set_keepcaps(false).map_err(|e| CapsError::Caps("keep capabilities", e))?;
    let mask = user.umask().unwrap_or(0o022);
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    Ok(())
}

/// Sets the effective, permitted, inheritable and ambient sets.
pub fn apply_sets(caps: &LinuxCapabilities) -> Result<(), CapsError> {
    let state = CapState {
        effective: to_capset(caps.effective().as_ref())?,
        permitted: to_capset(caps.permitted().as_ref())?,
        inheritable: to_capset(caps.inheritable().as_ref())?,
    };
    state
        .set_current()
        .map_err(|e| CapsError::Caps("set capabilities", e))?;
    capctl::ambient::clear().map_err(|e| CapsError::Caps("clear ambient capabilities", e))?;
    for cap in to_capset(caps.ambient().as_ref())?.iter() {
        capctl::ambient::raise(cap).map_err(|e| CapsError::Caps("raise ambient capability", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::Capability;

    #[test]
    fn oci_names_map_to_capctl() {
        let caps: Capabilities = [Capability::Chown, Capability::NetBindService]
            .into_iter()
            .collect();
        let set = to_capset(Some(&caps)).unwrap();
        assert!(set.has(Cap::CHOWN));
        assert!(set.has(Cap::NET_BIND_SERVICE));
        assert_eq!(set.size(), 2);
        assert!(to_capset(None).unwrap().is_empty());
    }
}
