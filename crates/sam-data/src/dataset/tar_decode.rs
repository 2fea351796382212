//! Reading one sample's two members from its shard and decoding them into an
//! [`AnnotatedImage`], the same way [`Sa1bDataset`](super::Sa1bDataset) decodes a folder's pair.
//! This is the heavy part (JPEG decode, JSON parse, RLE check), run by the stream's workers.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::annotation::AnnotatedImage;
use super::sa1b::{annotated_image, parse_sa1b_json};
use super::tar_headers::{MemberRef, shard_error};
use super::tar_samples::Unit;
use crate::error::Result;
use crate::image_io::decode_rgb;

/// Largest member read into memory; SA-1B's are a few MB, so a larger one is a broken header
/// (whose size could otherwise ask for gigabytes).
const MAX_MEMBER_BYTES: u64 = 256 << 20;

/// Decodes a unit: a pair becomes its image, a damaged unit its error. Errors name the shard
/// and the member (`<shard>/<member>`).
pub(crate) fn decode_unit(unit: Unit) -> Result<AnnotatedImage> {
    match unit {
        Unit::Damaged(e) => Err(e),
        Unit::Pair { shard, image, json } => decode_pair(&shard, &image, &json),
    }
}

fn decode_pair(shard: &Path, image: &MemberRef, json: &MemberRef) -> Result<AnnotatedImage> {
    // One open per sample: workers read different shards at once and need their own cursor,
    // and an open is negligible next to a JPEG decode.
    let mut file = File::open(shard).map_err(|e| shard_error(shard, &image.name, e.to_string()))?;
    let json_bytes = read_member(&mut file, shard, json)?;
    let image_bytes = read_member(&mut file, shard, image)?;
    let (image_path, json_path) = (shard.join(&image.name), shard.join(&json.name));
    let parsed = parse_sa1b_json(&json_bytes, &json_path)?;
    let pixels = decode_rgb(&image_bytes, &image_path)?;
    annotated_image(parsed, pixels, &image_path, &json_path)
}

fn read_member(file: &mut File, shard: &Path, m: &MemberRef) -> Result<Vec<u8>> {
    let err = |reason: String| shard_error(shard, &m.name, reason);
    if m.size > MAX_MEMBER_BYTES {
        return Err(err(format!(
            "{} bytes, more than the {MAX_MEMBER_BYTES} a sample member may have",
            m.size
        )));
    }
    file.seek(SeekFrom::Start(m.offset))
        .map_err(|e| err(e.to_string()))?;
    let mut bytes = vec![0; m.size as usize];
    file.read_exact(&mut bytes)
        .map_err(|e| err(format!("reading {} bytes at {}: {e}", m.size, m.offset)))?;
    Ok(bytes)
}
