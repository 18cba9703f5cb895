//! Deterministic compression of the initrd: zstd (default), gzip, or none.
//!
//! The same input always gives the same bytes: zstd runs single-threaded at a fixed
//! level with no checksum, content size or dictionary id in the frame; gzip is written
//! with mtime 0, no file name and a fixed level. The kernel must be built with the
//! matching `CONFIG_RD_ZSTD` / `CONFIG_RD_GZIP`.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use flate2::write::GzEncoder;

/// zstd level: 19 is the highest level that needs no `--ultra` window (8 MiB).
pub const ZSTD_LEVEL: i32 = 19;
/// gzip level.
pub const GZIP_LEVEL: u32 = 9;

/// Errors from choosing or running a compressor.
#[derive(Debug, thiserror::Error)]
pub enum CompressError {
    /// Unknown compression name.
    #[error("unknown compression {0:?} (expected zstd, gzip or none)")]
    Unknown(String),
    /// The encoder could not be set up.
    #[error("cannot set up the zstd encoder")]
    Setup(#[source] io::Error),
}

/// The initrd compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// zstd at [`ZSTD_LEVEL`].
    #[default]
    Zstd,
    /// gzip at [`GZIP_LEVEL`].
    Gzip,
    /// No compression.
    None,
}

impl FromStr for Compression {
    type Err = CompressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "zstd" => Ok(Compression::Zstd),
            "gzip" | "gz" => Ok(Compression::Gzip),
            "none" => Ok(Compression::None),
            other => Err(CompressError::Unknown(other.to_owned())),
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
            Compression::None => "none",
        })
    }
}

/// A compressing writer; call [`Encoder::finish`] to end the stream.
pub enum Encoder<W: Write> {
    /// zstd frame.
    Zstd(zstd::stream::write::Encoder<'static, W>),
    /// gzip member.
    Gzip(GzEncoder<W>),
    /// Pass-through.
    Plain(W),
}

impl<W: Write> fmt::Debug for Encoder<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Encoder")
    }
}

impl<W: Write> Encoder<W> {
    /// Starts compressing into `out`.
    pub fn new(compression: Compression, out: W) -> Result<Self, CompressError> {
        Ok(match compression {
            Compression::Zstd => Encoder::Zstd(zstd_encoder(out).map_err(CompressError::Setup)?),
            Compression::Gzip => Encoder::Gzip(
                flate2::GzBuilder::new()
                    .mtime(0)
                    .write(out, flate2::Compression::new(GZIP_LEVEL)),
            ),
            Compression::None => Encoder::Plain(out),
        })
    }

    /// Ends the stream and returns the output.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Zstd(e) => e.finish(),
            Encoder::Gzip(e) => e.finish(),
            Encoder::Plain(w) => Ok(w),
        }
    }
}

fn zstd_encoder<W: Write>(out: W) -> io::Result<zstd::stream::write::Encoder<'static, W>> {
    let mut encoder = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?;
    encoder.include_checksum(false)?;
    encoder.include_contentsize(false)?;
    encoder.include_dictid(false)?;
    encoder.long_distance_matching(false)?;
    Ok(encoder)
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Zstd(e) => e.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Plain(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Zstd(e) => e.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::Plain(w) => w.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn compress(c: Compression, data: &[u8]) -> Vec<u8> {
        let mut enc = Encoder::new(c, Vec::new()).unwrap();
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn round_trips_and_repeats_exactly() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let z = compress(Compression::Zstd, &data);
        assert_eq!(z, compress(Compression::Zstd, &data));
        assert_eq!(zstd::decode_all(&z[..]).unwrap(), data);

        let g = compress(Compression::Gzip, &data);
        assert_eq!(g, compress(Compression::Gzip, &data));
        assert_eq!(&g[4..8], &[0, 0, 0, 0], "gzip mtime must be 0");
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&g[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);

        assert_eq!(compress(Compression::None, &data), data);
    }

    #[test]
    fn zstd_frame_has_no_checksum_or_size() {
        let z = compress(Compression::Zstd, b"hello hello hello");
        let descriptor = z[4];
        assert_eq!(
            descriptor & 0b1110_0111,
            0,
            "size, checksum or dictionary flag set"
        );
    }

    #[test]
    fn names_parse() {
        assert_eq!("zstd".parse::<Compression>().unwrap(), Compression::Zstd);
        assert!("xz"
            .parse::<Compression>()
            .unwrap_err()
            .to_string()
            .contains("xz"));
    }
}
