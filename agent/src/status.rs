//! The one place where agent errors become ttrpc status codes.
//!
//! Every RPC family returns [`RpcError`]; [`to_ttrpc`] picks the code following the
//! mapping in agent-api.md (unknown thing: NOT_FOUND, malformed or missing field:
//! INVALID_ARGUMENT, wrong state: FAILED_PRECONDITION, not built in: UNIMPLEMENTED,
//! refused by policy: PERMISSION_DENIED, everything else: INTERNAL). The message is the
//! error with its whole chain of causes, so the host sees what failed and why.

use hull_protocols::ttrpc::{self, Code};
use thiserror::Error;

use crate::container::ContainerError;
use crate::copy_file::CopyFileError;
use crate::guest::GuestError;
use crate::sandbox::storage::StorageError;
use crate::sandbox::SandboxError;

/// Any error an RPC can answer with.
#[derive(Debug, Error)]
pub enum RpcError {
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    CopyFile(#[from] CopyFileError),
    #[error(transparent)]
    Guest(#[from] GuestError),
    #[error(transparent)]
    Container(#[from] ContainerError),
    /// The RPC is not built into this agent.
    #[error("{0} is not implemented by the Hull agent")]
    Unimplemented(&'static str),
}

/// The status code for `err`.
pub fn code_of(err: &RpcError) -> Code {
    match err {
        RpcError::Sandbox(e) => sandbox_code(e),
        RpcError::Storage(e) => storage_code(e),
        RpcError::CopyFile(e) => copy_file_code(e),
        RpcError::Guest(e) => guest_code(e),
        RpcError::Container(e) => container_code(e),
        RpcError::Unimplemented(_) => Code::UNIMPLEMENTED,
    }
}

fn sandbox_code(e: &SandboxError) -> Code {
    match e {
        SandboxError::AlreadyCreated | SandboxError::NeedsSystem(_) => Code::FAILED_PRECONDITION,
        SandboxError::BadHostname(_) | SandboxError::BadDns(_) | SandboxError::BadModule(_) => {
            Code::INVALID_ARGUMENT
        }
        SandboxError::ModuleNotFound(..) => Code::FAILED_PRECONDITION,
        SandboxError::GuestHooks => Code::UNIMPLEMENTED,
        SandboxError::Storage(e) => storage_code(e),
        SandboxError::Hostname(..)
        | SandboxError::File(..)
        | SandboxError::Module(..)
        | SandboxError::Namespaces(_) => Code::INTERNAL,
    }
}

fn storage_code(e: &StorageError) -> Code {
    match e {
        StorageError::UnknownDriver(_) => Code::UNIMPLEMENTED,
        StorageError::NeedsSystem(_) => Code::FAILED_PRECONDITION,
        StorageError::BadMountPoint(_)
        | StorageError::MissingSource(_)
        | StorageError::BadFsType { .. } => Code::INVALID_ARGUMENT,
        StorageError::MountPoint(..) | StorageError::Mount(..) => Code::INTERNAL,
    }
}

fn copy_file_code(e: &CopyFileError) -> Code {
    match e {
        CopyFileError::Escapes(_) | CopyFileError::Symlink(_) => Code::PERMISSION_DENIED,
        CopyFileError::BadPath(_) | CopyFileError::BadRange { .. } => Code::INVALID_ARGUMENT,
        CopyFileError::NeedsRoot => Code::FAILED_PRECONDITION,
        CopyFileError::Io(..) => Code::INTERNAL,
    }
}

fn guest_code(e: &GuestError) -> Code {
    match e {
        GuestError::NeedsSystem(_) => Code::FAILED_PRECONDITION,
        GuestError::BadTime { .. } | GuestError::NoEntropy => Code::INVALID_ARGUMENT,
        GuestError::NotOnline { .. } => Code::DEADLINE_EXCEEDED,
        GuestError::Clock(_) | GuestError::Random(_) | GuestError::Sysfs(..) => Code::INTERNAL,
    }
}

fn container_code(e: &ContainerError) -> Code {
    use ContainerError as E;
    match e {
        E::NotFound(_) | E::ProcessNotFound { .. } | E::Exited(_) => Code::NOT_FOUND,
        E::Exists(_) | E::ProcessExists(_) => Code::ALREADY_EXISTS,
        E::BadField { .. } | E::Spec(_) | E::BadWindowSize(..) => Code::INVALID_ARGUMENT,
        E::Unsupported(_) => Code::UNIMPLEMENTED,
        E::NoTerminal(_) | E::StdinClosed(_) | E::Removed(_) => Code::FAILED_PRECONDITION,
        E::Timeout(..) => Code::DEADLINE_EXCEEDED,
        E::Storage(e) => storage_code(e),
        E::Jail(e) => jail_code(e),
        E::Device(e) => device_code(e),
        E::NoSandboxNamespaces(_) | E::SandboxNamespaces(_) => Code::FAILED_PRECONDITION,
        E::SharedMountSource(..) => Code::NOT_FOUND,
        E::Resize(..) | E::Stdio(..) | E::Signal(..) | E::Task(_) => Code::INTERNAL,
    }
}

fn device_code(e: &crate::container::DeviceError) -> Code {
    use crate::container::DeviceError as D;
    use crate::guest::block::BlockError;
    match e {
        D::BadField { .. } | D::UnknownType(..) | D::NotANode(..) | D::NotInSpec(..) => {
            Code::INVALID_ARGUMENT
        }
        D::Lookup(_, BlockError::Sysfs(..)) => Code::INTERNAL,
        D::Lookup(..) => Code::INVALID_ARGUMENT,
        D::Unsupported(..) => Code::UNIMPLEMENTED,
        D::Timeout { .. } => Code::DEADLINE_EXCEEDED,
    }
}

fn jail_code(e: &hull_jail::JailError) -> Code {
    use hull_jail::cgroups::CgroupError;
    use hull_jail::JailError as J;
    match e {
        J::Spec(_) => Code::INVALID_ARGUMENT,
        J::Cgroup {
            source: CgroupError::Spec(_),
            ..
        } => Code::INVALID_ARGUMENT,
        J::State { .. } => Code::FAILED_PRECONDITION,
        _ => Code::INTERNAL,
    }
}

/// The canonical name of a status code, for logs and metrics.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::OK => "OK",
        Code::CANCELLED => "CANCELLED",
        Code::UNKNOWN => "UNKNOWN",
        Code::INVALID_ARGUMENT => "INVALID_ARGUMENT",
        Code::DEADLINE_EXCEEDED => "DEADLINE_EXCEEDED",
        Code::NOT_FOUND => "NOT_FOUND",
        Code::ALREADY_EXISTS => "ALREADY_EXISTS",
        Code::PERMISSION_DENIED => "PERMISSION_DENIED",
        Code::RESOURCE_EXHAUSTED => "RESOURCE_EXHAUSTED",
        Code::FAILED_PRECONDITION => "FAILED_PRECONDITION",
        Code::ABORTED => "ABORTED",
        Code::OUT_OF_RANGE => "OUT_OF_RANGE",
        Code::UNIMPLEMENTED => "UNIMPLEMENTED",
        Code::INTERNAL => "INTERNAL",
        Code::UNAVAILABLE => "UNAVAILABLE",
        Code::DATA_LOSS => "DATA_LOSS",
        Code::UNAUTHENTICATED => "UNAUTHENTICATED",
    }
}

/// The error with its causes, `outer: inner: innermost`.
pub fn message_of(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// `err` as a ttrpc error carrying its status.
pub fn to_ttrpc(err: &RpcError) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(code_of(err), message_of(err)))
}

/// Runs an RPC body's result through the mapping.
pub fn reply<T>(result: Result<T, RpcError>) -> ttrpc::Result<T> {
    result.map_err(|e| to_ttrpc(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unimplemented_names_the_rpc() {
        let err = RpcError::Unimplemented("CreateContainer");
        match to_ttrpc(&err) {
            ttrpc::Error::RpcStatus(s) => {
                assert_eq!(s.code(), Code::UNIMPLEMENTED);
                assert!(s.message().contains("CreateContainer"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn message_carries_the_cause_chain() {
        let io = std::io::Error::from_raw_os_error(libc::EPERM);
        let err = RpcError::Sandbox(SandboxError::Hostname("h".into(), io));
        let message = message_of(&err);
        assert!(
            message.starts_with("cannot set hostname \"h\": "),
            "{message}"
        );
        assert_eq!(code_of(&err), Code::INTERNAL);
    }

    #[test]
    fn escapes_are_permission_denied_and_bad_fields_invalid() {
        let escape = RpcError::CopyFile(CopyFileError::Escapes("/etc/passwd".into()));
        assert_eq!(code_of(&escape), Code::PERMISSION_DENIED);
        let dns = RpcError::Sandbox(SandboxError::BadDns("x".into()));
        assert_eq!(code_of(&dns), Code::INVALID_ARGUMENT);
        let driver = RpcError::Storage(StorageError::UnknownDriver("blk".into()));
        assert_eq!(code_of(&driver), Code::UNIMPLEMENTED);
    }
}
