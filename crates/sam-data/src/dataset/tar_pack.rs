//! Packing an unpacked SA-1B-format folder into tar shards as SA-1B distributes them, e.g. to
//! stream a converted or generated dataset with [`super::Sa1bTarStream`].

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

fn file_err(path: &Path, e: impl std::fmt::Display) -> DataError {
    DataError::DatasetFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Writes the `sa_<id>.jpg` + `sa_<id>.json` pairs of `src` into `num_shards` tar files
/// `dst/sa_000000.tar`, … (samples dealt round-robin in id order, image then JSON, as in
/// SA-1B's shards) and returns their paths. Each shard is written under a temporary name and
/// renamed when complete. An image without its JSON, or fewer samples than shards, is an error.
pub fn pack_tar_shards(src: &Path, dst: &Path, num_shards: usize) -> Result<Vec<PathBuf>> {
    let mut ids: Vec<(u64, String)> = Vec::new();
    for entry in std::fs::read_dir(src).map_err(|e| file_err(src, e))? {
        let name = entry
            .map_err(|e| file_err(src, e))?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if let Some(id) = name
            .strip_prefix("sa_")
            .and_then(|n| n.strip_suffix(".jpg"))
            .and_then(|n| n.parse::<u64>().ok())
        {
            ids.push((id, name));
        }
    }
    ids.sort();
    if num_shards == 0 || ids.len() < num_shards {
        return Err(file_err(
            src,
            format!(
                "{} samples cannot fill {num_shards} shards (each needs at least one)",
                ids.len()
            ),
        ));
    }
    std::fs::create_dir_all(dst).map_err(|e| file_err(dst, e))?;
    let mut shards = Vec::with_capacity(num_shards);
    for k in 0..num_shards {
        let path = dst.join(format!("sa_{k:06}.tar"));
        let tmp = dst.join(format!(".sa_{k:06}.tar.tmp"));
        let file = std::fs::File::create(&tmp).map_err(|e| file_err(&tmp, e))?;
        let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
        for (_, image) in ids.iter().skip(k).step_by(num_shards) {
            // The image's own stem: `sa_0001.jpg` goes with `sa_0001.json`, not `sa_1.json`.
            let json = format!("{}.json", image.trim_end_matches(".jpg"));
            for name in [image.as_str(), json.as_str()] {
                let member = src.join(name);
                let data = std::fs::read(&member).map_err(|e| file_err(&member, e))?;
                let mut header = tar::Header::new_ustar();
                header.set_size(data.len() as u64);
                header.set_mode(0o644);
                header.set_cksum();
                builder
                    .append_data(&mut header, name, data.as_slice())
                    .map_err(|e| file_err(&tmp, e))?;
            }
        }
        builder
            .into_inner()
            .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
            .map_err(|e| file_err(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| file_err(&path, e))?;
        shards.push(path);
    }
    Ok(shards)
}
