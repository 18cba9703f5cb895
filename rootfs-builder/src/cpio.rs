//! A writer for the "newc" cpio format (`070701`), the format the Linux kernel
//! unpacks as an initramfs.
//!
//! Each member is a 110-byte ASCII header of thirteen 8-digit hex fields, the NUL-
//! terminated name padded to a multiple of 4 bytes, then the data padded likewise.
//! Hard links follow the convention GNU cpio and the kernel share: every member of a
//! link group carries the same inode number and the group's size in `nlink`, and only
//! the last member carries the data (the others have size 0). The archive ends with a
//! member named `TRAILER!!!`.
//!
//! Limitation: a member's size is a 32-bit field, so files of 4 GiB or more are
//! refused; the `check` field is always 0 (the `070702` CRC variant is not written).

use std::io::{self, Read, Write};

const MAGIC: &[u8; 6] = b"070701";
const HEADER_LEN: usize = 110;
const TRAILER: &[u8] = b"TRAILER!!!";

/// Errors from writing an archive.
#[derive(Debug, thiserror::Error)]
pub enum CpioError {
    /// A value does not fit its 32-bit header field.
    #[error("{field} of {name} does not fit in 32 bits")]
    TooLarge {
        /// The header field.
        field: &'static str,
        /// The member name.
        name: String,
    },
    /// The data source gave fewer bytes than the header announced.
    #[error("{name} shrank while being archived ({got} of {want} bytes)")]
    ShortData {
        /// The member name.
        name: String,
        /// Bytes read.
        got: u64,
        /// Bytes announced.
        want: u64,
    },
    /// Writing to the output failed.
    #[error("cannot write the archive")]
    Write(#[source] io::Error),
    /// Reading a member's data failed.
    #[error("cannot read data of {0}")]
    Read(String, #[source] io::Error),
}

/// The header fields of one member (device and check fields are written as 0).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// Member name, relative, without a leading `/`.
    pub name: Vec<u8>,
    /// Archive inode number.
    pub ino: u64,
    /// Full mode: file type and permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Link count.
    pub nlink: u32,
    /// Modification time, seconds since 1970.
    pub mtime: u64,
    /// Data size in bytes.
    pub size: u64,
    /// Device number of a device node.
    pub rdev_major: u32,
    /// Device number of a device node.
    pub rdev_minor: u32,
}

/// Streams newc members into a writer.
#[derive(Debug)]
pub struct Writer<W: Write> {
    out: W,
    offset: u64,
}

impl<W: Write> Writer<W> {
    /// Starts an archive on `out`.
    pub fn new(out: W) -> Self {
        Self { out, offset: 0 }
    }

    /// Appends one member; `data` must yield exactly `header.size` bytes.
    pub fn append(&mut self, header: &Header, data: &mut dyn Read) -> Result<(), CpioError> {
        let name = String::from_utf8_lossy(&header.name).into_owned();
        let encoded = encode_header(header, &name)?;
        self.put(&encoded)?;
        self.put(&header.name)?;
        self.put(&[0])?;
        self.pad()?;

        let copied = io::copy(&mut data.take(header.size), &mut self.out)
            .map_err(|e| CpioError::Read(name.clone(), e))?;
        if copied != header.size {
            let (got, want) = (copied, header.size);
            return Err(CpioError::ShortData { name, got, want });
        }
        self.offset += copied;
        self.pad()
    }

    /// Writes the trailer and returns the output.
    pub fn finish(mut self) -> Result<W, CpioError> {
        let trailer = Header {
            name: TRAILER.to_vec(),
            nlink: 1,
            ..Header::default()
        };
        self.append(&trailer, &mut io::empty())?;
        self.out.flush().map_err(CpioError::Write)?;
        Ok(self.out)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), CpioError> {
        self.out.write_all(bytes).map_err(CpioError::Write)?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> Result<(), CpioError> {
        let fill = (4 - self.offset % 4) % 4;
        self.put(&[0; 3][..fill as usize])
    }
}

fn encode_header(h: &Header, name: &str) -> Result<Vec<u8>, CpioError> {
    let field = |field: &'static str, value: u64| {
        u32::try_from(value).map_err(|_| CpioError::TooLarge {
            field,
            name: name.to_owned(),
        })
    };
    let fields = [
        field("inode", h.ino)?,
        h.mode,
        h.uid,
        h.gid,
        h.nlink,
        field("mtime", h.mtime)?,
        field("size", h.size)?,
        0, // devmajor
        0, // devminor
        h.rdev_major,
        h.rdev_minor,
        field("name length", h.name.len() as u64 + 1)?,
        0, // check
    ];
    let mut out = Vec::with_capacity(HEADER_LEN);
    out.extend_from_slice(MAGIC);
    for value in fields {
        out.extend_from_slice(format!("{value:08x}").as_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(members: &[(Header, &[u8])]) -> Vec<u8> {
        let mut writer = Writer::new(Vec::new());
        for (header, data) in members {
            writer.append(header, &mut &data[..]).unwrap();
        }
        writer.finish().unwrap()
    }

    #[test]
    fn header_layout_and_padding() {
        let header = Header {
            name: b"init".to_vec(),
            ino: 1,
            mode: 0o100755,
            nlink: 1,
            mtime: 0x10,
            size: 3,
            ..Header::default()
        };
        let bytes = archive(&[(header, b"abc")]);
        let first = &bytes[..HEADER_LEN];
        let fields = [1, 0o100755, 0, 0, 1, 0x10, 3, 0, 0, 0, 0, 5, 0];
        let expected: String = fields.iter().map(|f| format!("{f:08x}")).collect();
        assert_eq!(first, format!("070701{expected}").as_bytes());
        // Name "init\0" ends at 115, padded to 116; data to 120; trailer follows.
        assert_eq!(&bytes[HEADER_LEN..116], b"init\0\0");
        assert_eq!(&bytes[116..120], b"abc\0");
        assert_eq!(&bytes[120..126], MAGIC);
        assert_eq!(bytes.len() % 4, 0);
        let trailer_name = 120 + HEADER_LEN;
        assert_eq!(&bytes[trailer_name..trailer_name + 11], b"TRAILER!!!\0");
    }

    #[test]
    fn short_data_is_an_error() {
        let header = Header {
            name: b"f".to_vec(),
            size: 10,
            ..Header::default()
        };
        let mut writer = Writer::new(Vec::new());
        let err = writer.append(&header, &mut &b"abc"[..]).unwrap_err();
        assert!(
            matches!(
                err,
                CpioError::ShortData {
                    got: 3,
                    want: 10,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn oversized_fields_are_refused() {
        let header = Header {
            name: b"big".to_vec(),
            size: 1 << 32,
            ..Header::default()
        };
        let mut writer = Writer::new(Vec::new());
        let err = writer.append(&header, &mut io::empty()).unwrap_err();
        assert!(err.to_string().contains("size of big"), "{err}");
    }
}
