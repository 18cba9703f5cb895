//! The kernel's random pool: crediting entropy and checking readiness.

use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use thiserror::Error;

/// Errors of entropy seeding.
#[derive(Debug, Error)]
pub enum RandomError {
    /// The random device could not be opened.
    #[error("cannot open {0}")]
    Open(String, #[source] io::Error),
    /// The kernel refused the entropy.
    #[error("cannot add entropy to {0}")]
    Add(String, #[source] io::Error),
    /// No data was given.
    #[error("no entropy data given")]
    Empty,
}

/// `RNDADDENTROPY`, `_IOW('R', 0x03, int[2])`.
const RNDADDENTROPY: libc::c_ulong = 0x4008_5203;

/// Mixes `data` into the pool behind `device` (normally `/dev/random`) and credits it
/// as entropy, one bit per bit given.
pub fn add_entropy(device: &Path, data: &[u8]) -> Result<(), RandomError> {
    if data.is_empty() {
        return Err(RandomError::Empty);
    }
    let name = device.display().to_string();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(device)
        .map_err(|e| RandomError::Open(name.clone(), e))?;
    let request = entropy_request(data);
    // SAFETY: `request` is a rand_pool_info header (two ints) followed by
    // `data.len()` bytes, as RNDADDENTROPY expects; it outlives the call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), RNDADDENTROPY as _, request.as_ptr()) };
    if rc < 0 {
        return Err(RandomError::Add(name, io::Error::last_os_error()));
    }
    Ok(())
}

/// Builds `struct rand_pool_info { int entropy_count; int buf_size; u32 buf[]; }`.
fn entropy_request(data: &[u8]) -> Vec<u32> {
    let words = data.len().div_ceil(4);
    let mut request = vec![0u32; 2 + words];
    let bits = i32::try_from(data.len().saturating_mul(8)).unwrap_or(i32::MAX);
    let size = i32::try_from(data.len()).unwrap_or(i32::MAX);
    request[0] = bits as u32;
    request[1] = size as u32;
    for (i, chunk) in data.chunks(4).enumerate() {
        let mut word = [0u8; 4];
        word[..chunk.len()].copy_from_slice(chunk);
        request[2 + i] = u32::from_ne_bytes(word);
    }
    request
}

/// Whether the kernel's CRNG is initialised (getrandom would not block).
pub fn crng_ready() -> bool {
    let mut byte = [0u8; 1];
    // SAFETY: getrandom writes at most one byte into `byte`.
    let rc = unsafe { libc::getrandom(byte.as_mut_ptr().cast(), 1, libc::GRND_NONBLOCK) };
    rc == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_header_counts_bits_and_bytes() {
        let r = entropy_request(&[1, 2, 3, 4, 5]);
        assert_eq!(r.len(), 4);
        assert_eq!(r[0], 40);
        assert_eq!(r[1], 5);
        assert_eq!(r[2], u32::from_ne_bytes([1, 2, 3, 4]));
        assert_eq!(r[3], u32::from_ne_bytes([5, 0, 0, 0]));
    }

    #[test]
    fn empty_and_missing_device_are_errors() {
        assert!(matches!(
            add_entropy(Path::new("/dev/random"), &[]),
            Err(RandomError::Empty)
        ));
        let err = add_entropy(Path::new("/nonexistent/random"), &[1]).unwrap_err();
        assert_eq!(err.to_string(), "cannot open /nonexistent/random");
    }

    #[test]
    fn ioctl_on_a_non_random_file_is_refused() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let err = add_entropy(file.path(), &[1, 2]).unwrap_err();
        assert!(matches!(err, RandomError::Add(..)));
    }
}
