//! NumPy `.npy` arrays (format 1.0/2.0/3.0, little-endian, C order), so logits can be exchanged
//! with Python tools. Only the header needs parsing; the data is raw.

use std::io::Write;
use std::path::Path;

use crate::error::{DataError, Result};

fn invalid(path: &Path, reason: impl Into<String>) -> DataError {
    DataError::ArrayFile {
        path: path.to_path_buf(),
        reason: format!("not a readable .npy array: {}", reason.into()),
    }
}

/// Writes an f32 array of `shape` (C order).
pub fn write_npy_f32(path: impl AsRef<Path>, shape: &[usize], data: &[f32]) -> Result<()> {
    let path = path.as_ref();
    let expected: usize = shape.iter().product();
    if expected != data.len() {
        return Err(DataError::InvalidValue(format!(
            "{} values for a {shape:?} array",
            data.len()
        )));
    }
    let dims = match shape {
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is padded to a multiple of 64.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + data.len() * 4);
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::File::create(path)
        .and_then(|mut f| f.write_all(&bytes))
        .map_err(|e| DataError::ArrayFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

fn header_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let start = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[start..].trim_start().strip_prefix(':')?.trim_start();
    if rest.starts_with('(') {
        Some(&rest[..=rest.find(')')?])
    } else {
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        Some(rest[..end].trim())
    }
}

/// Reads a little-endian f32 or f64 array (f64 is converted) in C order: `(shape, values)`.
pub fn read_npy_f32(path: impl AsRef<Path>) -> Result<(Vec<usize>, Vec<f32>)> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| DataError::ArrayFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(invalid(path, "missing the \\x93NUMPY magic"));
    }
    let (len, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(invalid(path, format!("unsupported format version {v}"))),
    };
    let end = start
        .checked_add(len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| invalid(path, "header runs past the end of the file"))?;
    let header =
        std::str::from_utf8(&bytes[start..end]).map_err(|_| invalid(path, "header is not text"))?;
    let descr = header_value(header, "descr").ok_or_else(|| invalid(path, "no descr"))?;
    let width = match descr.trim_matches(|c| c == '\'' || c == '"') {
        "<f4" => 4,
        "<f8" => 8,
        other => {
            return Err(invalid(
                path,
                format!("dtype {other} (expected <f4 or <f8)"),
            ));
        }
    };
    if header_value(header, "fortran_order") != Some("False") {
        return Err(invalid(path, "Fortran-ordered arrays are not supported"));
    }
    let shape_text = header_value(header, "shape").ok_or_else(|| invalid(path, "no shape"))?;
    let shape: Vec<usize> = shape_text
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| invalid(path, format!("bad shape {shape_text}")))
        })
        .collect::<Result<_>>()?;
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| invalid(path, "shape overflows"))?;
    let data = &bytes[end..];
    if count.checked_mul(width) != Some(data.len()) {
        return Err(invalid(
            path,
            format!(
                "{} data bytes for shape {shape:?} of {width}-byte values",
                data.len(),
            ),
        ));
    }
    let values = if width == 4 {
        data.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    } else {
        data.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
            .collect()
    };
    Ok((shape, values))
}
