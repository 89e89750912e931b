//! Opening one file of the import: only a regular, non-executable file
//! (as keepalived reads only those), checked before it is opened (opening
//! a device can have effects, opening a FIFO waits for a writer), and at
//! most a limit of its bytes.

use super::{FILE_LIMIT, TOTAL_LIMIT};
use std::io::Read;
use std::path::Path;

/// Why a file is not read.
#[derive(Debug)]
pub(super) enum Refusal {
    NotRegular(&'static str),
    Executable,
    TooLarge(u64),
    Io(std::io::Error),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotRegular(what) => write!(f, "{what}, not a regular file"),
            Refusal::Executable => f.write_str("executable (keepalived reads no executable file)"),
            Refusal::TooLarge(limit) => write!(
                f,
                "larger than {} KiB (the import reads {} KiB a file, {} KiB in all)",
                limit / 1024,
                FILE_LIMIT / 1024,
                TOTAL_LIMIT / 1024
            ),
            Refusal::Io(e) => write!(f, "{e}"),
        }
    }
}

/// A regular, non-executable file's bytes, at most `limit` of them. The
/// type is checked before the file is opened (opening a device can have
/// effects, and opening a FIFO waits for a writer) and again on the open
/// file, which is opened non-blocking in case it was swapped meanwhile.
pub(super) fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, Refusal> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
    let kind = |m: &std::fs::Metadata| -> Result<(), Refusal> {
        let t = m.file_type();
        if t.is_file() {
            return match m.permissions().mode() & 0o111 {
                0 => Ok(()),
                _ => Err(Refusal::Executable),
            };
        }
        let kinds = [
            (t.is_dir(), "a directory"),
            (t.is_fifo(), "a FIFO"),
            (t.is_char_device(), "a character device"),
            (t.is_block_device(), "a block device"),
            (t.is_socket(), "a socket"),
        ];
        let what = kinds.iter().find(|k| k.0).map_or("not a file", |k| k.1);
        Err(Refusal::NotRegular(what))
    };
    kind(&std::fs::metadata(path).map_err(Refusal::Io)?)?;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(Refusal::Io)?;
    kind(&f.metadata().map_err(Refusal::Io)?)?;
    let mut out = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut out)
        .map_err(Refusal::Io)?;
    if out.len() as u64 > limit {
        return Err(Refusal::TooLarge(limit));
    }
    Ok(out)
}
