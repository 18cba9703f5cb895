//! Conversion between the protocol's OCI mirror ([`crate::oci`]) and the `oci-spec`
//! crate's runtime types.
//!
//! The agent receives the container spec as protobuf (`CreateContainerRequest.OCI`,
//! `ExecProcessRequest.process`, `UpdateContainerRequest.resources`) and works with
//! [`oci_spec::runtime`] types; the host runtime converts the other way. The entry
//! points are [`spec_from_proto`], [`process_from_proto`], [`resources_from_proto`] and
//! their `*_to_proto` counterparts.
//!
//! # Mapping rules
//!
//! - proto3 scalars carry no presence: an empty string, a zero number, `false` or an
//!   empty list becomes `None`, and `None` is sent as that zero value. Sub-messages do
//!   carry presence and map to `Some`/`None` directly.
//! - Exceptions where zero is meaningful: `OOMScoreAdj` is always `Some` (the agent runs
//!   at -1000, so "unset" must not mean "inherit"), and a device-cgroup `Major`/`Minor`
//!   of -1 stands for the wildcard (`None`), so that 0 stays a real device number.
//! - Names with a fixed set of values (capabilities, namespace types, rlimits, device
//!   types, seccomp actions, architectures, flags and operators) are parsed; an unknown
//!   one is an [`OciConvertError`] naming the field, such as
//!   `linux.seccomp.syscalls[2].action`. The agent answers these with
//!   `INVALID_ARGUMENT`.
//! - Capability sets are hash sets in oci-spec: their order is not kept, and they are
//!   sent back sorted, with the `CAP_` prefix. Names are accepted with or without it.
//! - Namespace types are sent with the runtime-spec names (`mount`, `network`, ...);
//!   `mnt` and `net` are accepted too.
//!
//! # Limitations
//!
//! The protocol's mirror predates several runtime-spec fields. These are dropped when
//! converting to protobuf and left unset when converting from it: `domainname`, `vm`,
//! `zos`, the Solaris and Windows sections (placeholders on the wire), process
//! `commandLine`, `ioPriority`, `scheduler`, `execCPUAffinity` and `user.umask`, cgroup
//! `cpu.idle`, `cpu.burst`, `memory.useHierarchy`, `memory.checkBeforeUpdate`, `rdma` and
//! `unified`, seccomp `defaultErrnoRet`, `listenerPath` and `listenerMetadata`, mount
//! ID mappings, Linux `netDevices`, `memoryPolicy`, `personality`, `timeOffsets`, and
//! every Intel RDT field but `l3CacheSchema`.

mod linux;
mod process;
mod resources;
mod spec;

use std::path::Path;

use oci_spec::OciSpecError;

pub use process::{process_from_proto, process_to_proto};
pub use resources::{resources_from_proto, resources_to_proto};
pub use spec::{spec_from_proto, spec_to_proto};

/// A spec field that cannot be converted. Every variant names the field by its path
/// in the spec (`process.capabilities.bounding[0]`).
#[derive(Debug, thiserror::Error)]
pub enum OciConvertError {
    /// A name outside the set of values the field allows.
    #[error("{field}: unknown {kind} {value:?}")]
    Unknown {
        field: String,
        kind: &'static str,
        value: String,
    },
    /// A number that does not fit the type on the other side.
    #[error("{field}: {value} is out of range")]
    OutOfRange { field: String, value: String },
    /// A required field left empty.
    #[error("{field}: missing")]
    Missing { field: String },
    /// A path that is not valid UTF-8 and so cannot travel as a protobuf string.
    #[error("{field}: path is not valid UTF-8")]
    NotUtf8 { field: String },
    /// oci-spec's own validation refused the value.
    #[error("{field}: rejected by oci-spec")]
    Rejected {
        field: String,
        #[source]
        source: OciSpecError,
    },
}

impl OciConvertError {
    /// The path of the field that failed, such as `linux.namespaces[1].type`.
    pub fn field(&self) -> &str {
        match self {
            Self::Unknown { field, .. }
            | Self::OutOfRange { field, .. }
            | Self::Missing { field }
            | Self::NotUtf8 { field }
            | Self::Rejected { field, .. } => field,
        }
    }

    /// Puts `parent` in front of the field path: `action` within `syscalls[2]`
    /// becomes `syscalls[2].action`.
    pub fn within(mut self, parent: &str) -> Self {
        let field = match &mut self {
            Self::Unknown { field, .. }
            | Self::OutOfRange { field, .. }
            | Self::Missing { field }
            | Self::NotUtf8 { field }
            | Self::Rejected { field, .. } => field,
        };
        *field = if field.is_empty() {
            parent.to_owned()
        } else {
            format!("{parent}.{field}")
        };
        self
    }

    pub(crate) fn unknown(field: &str, kind: &'static str, value: &str) -> Self {
        Self::Unknown {
            field: field.to_owned(),
            kind,
            value: value.to_owned(),
        }
    }

    pub(crate) fn out_of_range(field: &str, value: impl ToString) -> Self {
        Self::OutOfRange {
            field: field.to_owned(),
            value: value.to_string(),
        }
    }

    pub(crate) fn missing(field: &str) -> Self {
        Self::Missing {
            field: field.to_owned(),
        }
    }

    pub(crate) fn rejected(field: &str, source: OciSpecError) -> Self {
        Self::Rejected {
            field: field.to_owned(),
            source,
        }
    }
}

type Result<T> = std::result::Result<T, OciConvertError>;

/// Adds a parent to the field path of an error on its way out.
trait Within<T> {
    fn within(self, parent: &str) -> Result<T>;
}

impl<T> Within<T> for Result<T> {
    fn within(self, parent: &str) -> Result<T> {
        self.map_err(|e| e.within(parent))
    }
}

// ---- Helpers shared by the submodules ----

/// `None` for an empty string.
fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// `None` for an empty list.
fn non_empty_vec<T: Clone>(items: &[T]) -> Option<Vec<T>> {
    (!items.is_empty()).then(|| items.to_vec())
}

/// `None` for a zero number.
fn non_zero<T: Default + PartialEq>(value: T) -> Option<T> {
    (value != T::default()).then_some(value)
}

fn path_to_string(path: &Path, field: &str) -> Result<String> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| OciConvertError::NotUtf8 {
            field: field.to_owned(),
        })
}

fn opt_path_to_string(path: Option<&Path>, field: &str) -> Result<String> {
    path.map_or(Ok(String::new()), |p| path_to_string(p, field))
}

/// Converts each element, naming `field[i]` in an error; an empty list is `None`.
fn list_from_proto<P, T>(
    items: &[P],
    field: &str,
    convert: impl Fn(&P) -> Result<T>,
) -> Result<Option<Vec<T>>> {
    if items.is_empty() {
        return Ok(None);
    }
    let converted = items
        .iter()
        .enumerate()
        .map(|(i, item)| convert(item).map_err(|e| e.within(&format!("{field}[{i}]"))))
        .collect::<Result<Vec<T>>>()?;
    Ok(Some(converted))
}

/// Converts each element, naming `field[i]` in an error; `None` is an empty list.
fn list_to_proto<T, P>(
    items: &Option<Vec<T>>,
    field: &str,
    convert: impl Fn(&T) -> Result<P>,
) -> Result<Vec<P>> {
    let Some(items) = items else {
        return Ok(Vec::new());
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| convert(item).map_err(|e| e.within(&format!("{field}[{i}]"))))
        .collect()
}

/// Parses a name through its `FromStr`, naming the field and the kind of value on
/// failure; an empty name is `Missing`.
fn parse_name<T: std::str::FromStr>(value: &str, field: &str, kind: &'static str) -> Result<T> {
    if value.is_empty() {
        return Err(OciConvertError::missing(field));
    }
    value
        .parse()
        .map_err(|_| OciConvertError::unknown(field, kind, value))
}
