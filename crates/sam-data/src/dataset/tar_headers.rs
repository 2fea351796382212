//! A streaming reader of a tar file's headers: it yields where each member's bytes lie and seeks
//! over them, so that listing a shard costs one 512-byte read per member whether or not the
//! bodies are wanted. Knowing the file's length, a member whose body runs past the end is found
//! from its header alone, the same way whether its bytes are later read or not (resuming relies
//! on that: the replayed stream must see the same members and faults as the original).
//!
//! Formats: ustar (with its name prefix), GNU long names (`L`), pax `path` and `size` records.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

const BLOCK: u64 = 512;
/// Longest GNU long name or pax header accepted; beyond it the header is taken as corrupt.
const MAX_META_BYTES: u64 = 1 << 20;

/// Where one member's bytes lie in its shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberRef {
    /// Name in the archive, without a leading `./`.
    pub name: String,
    /// Byte offset of the body.
    pub offset: u64,
    /// Body length.
    pub size: u64,
}

/// One entry of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TarEntry {
    /// A regular file.
    File(MemberRef),
    /// A directory, link or other non-file entry, by name.
    Other(String),
}

/// The headers of one tar file, in order. After a fault (truncation, bad checksum) it yields
/// that error once and then nothing: nothing after a broken header can be trusted.
pub(crate) struct TarHeaders {
    path: PathBuf,
    reader: BufReader<File>,
    /// Offset of the next header.
    pos: u64,
    len: u64,
    done: bool,
}

impl TarHeaders {
    /// Opens `path`; the error names the shard.
    pub fn open(path: &Path) -> Result<Self> {
        let fault = |reason: String| shard_error(path, "(shard)", reason);
        let file = File::open(path).map_err(|e| fault(e.to_string()))?;
        let len = file.metadata().map_err(|e| fault(e.to_string()))?.len();
        Ok(Self {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(64 * 1024, file),
            pos: 0,
            len,
            done: false,
        })
    }

    fn fault(&mut self, member: &str, reason: String) -> Option<Result<TarEntry>> {
        self.done = true;
        Some(Err(shard_error(&self.path, member, reason)))
    }

    /// Reads `n` body bytes at the reader's position (just after a header).
    fn read_body(&mut self, n: u64) -> std::io::Result<Vec<u8>> {
        let mut body = vec![0; n as usize];
        self.reader.read_exact(&mut body)?;
        Ok(body)
    }
}

impl Iterator for TarHeaders {
    type Item = Result<TarEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut long_name: Option<String> = None;
        let mut pax_size: Option<u64> = None;
        loop {
            if self.done {
                return None;
            }
            let at = self.pos;
            let mut header = [0u8; BLOCK as usize];
            match read_block(&mut self.reader, &mut header) {
                Ok(BLOCK_FULL) => {}
                Ok(0) => {
                    // `at` is past the end when the last body's padding is cut off.
                    let reason = format!(
                        "the file ends at byte {} without the end-of-archive blocks \
                         (truncated); the rest of the shard is skipped",
                        at.min(self.len)
                    );
                    return self.fault("(end of shard)", reason);
                }
                Ok(n) => {
                    let reason = format!(
                        "truncated: {n} bytes of a header at byte {at}; the rest of the shard \
                         is skipped"
                    );
                    return self.fault("(end of shard)", reason);
                }
                Err(e) => return self.fault("(header)", format!("header at byte {at}: {e}")),
            }
            if header.iter().all(|&b| b == 0) {
                self.done = true;
                return None;
            }
            if let Err(reason) = check_checksum(&header) {
                let reason = format!(
                    "corrupt header at byte {at} ({reason}); the rest of the shard is skipped"
                );
                return self.fault("(header)", reason);
            }
            let name = long_name.take().unwrap_or_else(|| header_name(&header));
            let name = normalize_name(&name);
            let size = match pax_size
                .take()
                .map_or_else(|| parse_size(&header[124..136]), Ok)
            {
                Ok(s) => s,
                Err(reason) => {
                    let reason =
                        format!("header at byte {at}: {reason}; the rest of the shard is skipped");
                    return self.fault(&name, reason);
                }
            };
            let offset = at + BLOCK;
            if offset.saturating_add(size) > self.len {
                let reason = format!(
                    "truncated: the body of {size} bytes at byte {offset} runs past the end of \
                     the file ({} bytes); the rest of the shard is skipped",
                    self.len
                );
                return self.fault(&name, reason);
            }
            let padded = size.div_ceil(BLOCK) * BLOCK;
            self.pos = offset + padded;
            let kind = header[156];
            let skip = match kind {
                b'L' | b'x' => {
                    if size > MAX_META_BYTES {
                        let reason = format!("a {size}-byte long-name or pax header at byte {at}");
                        return self.fault(&name, reason);
                    }
                    let body = match self.read_body(size) {
                        Ok(b) => b,
                        Err(e) => return self.fault(&name, e.to_string()),
                    };
                    if kind == b'L' {
                        long_name = Some(c_string(&body));
                    } else {
                        for (key, value) in pax_records(&body) {
                            match key.as_str() {
                                "path" => long_name = Some(value),
                                "size" => pax_size = value.parse().ok(),
                                _ => {}
                            }
                        }
                    }
                    padded - size
                }
                _ => padded,
            };
            if let Err(e) = self.reader.seek_relative(skip as i64) {
                return self.fault(&name, e.to_string());
            }
            match kind {
                // Pax globals and GNU long link names describe nothing we read.
                b'L' | b'x' | b'g' | b'K' => continue,
                b'0' | 0 | b'7' => {
                    return Some(Ok(TarEntry::File(MemberRef { name, offset, size })));
                }
                _ => return Some(Ok(TarEntry::Other(name))),
            }
        }
    }
}

const BLOCK_FULL: usize = BLOCK as usize;

/// Reads up to one block; returns how many bytes were read (short only at the end of the file).
fn read_block(r: &mut impl Read, block: &mut [u8; BLOCK_FULL]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < block.len() {
        match r.read(&mut block[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

pub(crate) fn shard_error(shard: &Path, member: &str, reason: String) -> DataError {
    DataError::TarMember {
        shard: shard.to_path_buf(),
        member: member.to_string(),
        reason,
    }
}

/// The header's checksum: the sum of its bytes with the checksum field read as spaces.
fn check_checksum(h: &[u8; BLOCK_FULL]) -> std::result::Result<(), String> {
    let stored = parse_octal(&h[148..156]).ok_or("unreadable checksum field")?;
    let sum: u64 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                b as u64
            }
        })
        .sum();
    if sum == stored {
        Ok(())
    } else {
        Err(format!("checksum {stored} stored, {sum} computed"))
    }
}

fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// ustar joins `prefix/name`; the GNU format uses the prefix bytes for other fields.
fn header_name(h: &[u8; BLOCK_FULL]) -> String {
    let name = c_string(&h[..100]);
    if &h[257..263] == b"ustar\0" {
        let prefix = c_string(&h[345..500]);
        if !prefix.is_empty() {
            return format!("{prefix}/{name}");
        }
    }
    name
}

/// `./sa_1.jpg` and `sa_1.jpg` are the same member; SA-1B's tars use the former.
fn normalize_name(name: &str) -> String {
    let mut n = name;
    loop {
        if let Some(rest) = n.strip_prefix("./") {
            n = rest;
        } else if let Some(rest) = n.strip_prefix('/') {
            n = rest;
        } else {
            return n.to_string();
        }
    }
}

fn parse_octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?;
    let digits = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(digits, 8).ok()
}

/// Octal, or GNU's base-256 (high bit of the first byte set) for sizes past 8 GiB.
fn parse_size(field: &[u8]) -> std::result::Result<u64, String> {
    if field[0] & 0x80 != 0 {
        let mut v: u64 = (field[0] & 0x7F) as u64;
        for &b in &field[1..] {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(b as u64))
                .ok_or("a base-256 size past 2^64")?;
        }
        return Ok(v);
    }
    parse_octal(field).ok_or_else(|| format!("unreadable size field {:?}", c_string(field)))
}

/// Pax records: `<length> <key>=<value>\n`, the length counting the whole record.
fn pax_records(body: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let Some(space) = rest.iter().position(|&b| b == b' ') else {
            break;
        };
        let Some(len) = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        else {
            break;
        };
        if len <= space + 1 || len > rest.len() {
            break;
        }
        let record = &rest[space + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(eq) = record.iter().position(|&b| b == b'=') {
            let key = String::from_utf8_lossy(&record[..eq]).into_owned();
            let value = String::from_utf8_lossy(&record[eq + 1..]).into_owned();
            out.push((key, value));
        }
        rest = &rest[len..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sizes_and_pax_records() {
        assert_eq!(normalize_name("././sa_1.jpg"), "sa_1.jpg");
        assert_eq!(normalize_name("/a/b.json"), "a/b.json");
        assert_eq!(parse_size(b"00000001750\0"), Ok(1000));
        assert_eq!(parse_size(b"     1750 \0\0"), Ok(1000));
        let mut big = [0u8; 12];
        big[0] = 0x80;
        big[10] = 1;
        big[11] = 2;
        assert_eq!(parse_size(&big), Ok(258));
        let e = parse_size(b"12x\0\0\0\0\0\0\0\0\0")
            .expect_err("an error")
            .to_string();
        assert!(e.contains("\"12x\""), "{e}");
        let pax = b"19 path=dir/a.json\n12 size=123\n";
        assert_eq!(
            pax_records(pax),
            vec![
                ("path".to_string(), "dir/a.json".to_string()),
                ("size".to_string(), "123".to_string())
            ]
        );
        assert!(pax_records(b"999 path=x\n").is_empty());
    }
}
