//! `SOURCE_DATE_EPOCH`: the one timestamp every Hull artifact carries.
//!
//! Rule: the environment variable `SOURCE_DATE_EPOCH` (decimal seconds since 1970) is
//! the build's reference time. File times in the initrd and the disk image are clamped
//! to it (a file older than the epoch keeps its time, anything newer gets the epoch).
//! When the variable is unset or empty the epoch is 0, so an unconfigured build is
//! still reproducible; a value that is not a non-negative integer is an error.
//! The Makefile exports the time of the last commit.

/// The name of the environment variable.
pub const VAR: &str = "SOURCE_DATE_EPOCH";

/// The epoch used when the variable is unset.
pub const DEFAULT: u64 = 0;

/// Errors from reading the epoch.
#[derive(Debug, thiserror::Error)]
pub enum EpochError {
    /// The variable holds something other than seconds since 1970.
    #[error("{VAR}={0:?} is not a whole number of seconds since 1970")]
    Invalid(String),
}

/// Reads `SOURCE_DATE_EPOCH` from the environment (see the module rule).
pub fn from_env() -> Result<u64, EpochError> {
    parse(std::env::var(VAR).ok().as_deref())
}

/// Parses an optional value of `SOURCE_DATE_EPOCH`.
pub fn parse(value: Option<&str>) -> Result<u64, EpochError> {
    match value.map(str::trim) {
        None | Some("") => Ok(DEFAULT),
        Some(text) => text
            .parse::<u64>()
            .map_err(|_| EpochError::Invalid(text.to_owned())),
    }
}

/// Clamps a file time to the epoch; times before 1970 become 0.
pub fn clamp(mtime: i64, epoch: u64) -> u64 {
    u64::try_from(mtime).unwrap_or(0).min(epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_or_empty_means_zero() {
        assert_eq!(parse(None).unwrap(), 0);
        assert_eq!(parse(Some("")).unwrap(), 0);
    }

    #[test]
    fn parses_seconds() {
        assert_eq!(parse(Some("1700000000")).unwrap(), 1_700_000_000);
    }

    #[test]
    fn rejects_garbage_and_negative_values() {
        for bad in ["-5", "1.5", "yesterday"] {
            let err = parse(Some(bad)).unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn clamp_keeps_older_times_and_caps_newer_ones() {
        assert_eq!(clamp(100, 200), 100);
        assert_eq!(clamp(300, 200), 200);
        assert_eq!(clamp(-1, 200), 0);
    }
}
