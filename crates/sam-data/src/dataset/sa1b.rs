//! The SA-1B layout: a folder of `sa_<id>.jpg` images, each with an `sa_<id>.json` beside it
//! holding the image info and the annotations (compressed RLE masks and the data engine's
//! metadata).

use std::path::{Path, PathBuf};

use burn_dataset::Dataset;
use serde::{Deserialize, Serialize};

use super::annotation::{AnnotatedImage, Annotation};
use crate::error::{DataError, Result};
use crate::image_io::load_rgb;
use crate::rle::Rle;

/// The JSON of one SA-1B image, as the dataset ships it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sa1bFile {
    /// Image info.
    pub image: Sa1bImageInfo,
    /// The masks.
    pub annotations: Vec<Sa1bAnnotation>,
}

/// `image` of an SA-1B JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sa1bImageInfo {
    /// Image id.
    pub image_id: u64,
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// The image's file name (`sa_<id>.jpg`).
    pub file_name: String,
}

/// A compressed COCO RLE: `size` is `[h, w]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RleJson {
    /// `[h, w]`.
    pub size: [usize; 2],
    /// pycocotools' compressed string.
    pub counts: String,
}

/// One entry of `annotations` of an SA-1B JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sa1bAnnotation {
    /// Annotation id.
    pub id: u64,
    /// The mask.
    pub segmentation: RleJson,
    /// `[x, y, w, h]`.
    pub bbox: [f64; 4],
    /// Pixel area.
    pub area: f64,
    /// The data engine's predicted IoU.
    #[serde(default)]
    pub predicted_iou: Option<f64>,
    /// The data engine's stability score.
    #[serde(default)]
    pub stability_score: Option<f64>,
    /// Input point(s) that produced the mask.
    #[serde(default)]
    pub point_coords: Vec<[f64; 2]>,
    /// The crop it was generated in, `[x, y, w, h]`.
    #[serde(default)]
    pub crop_box: Option<[f64; 4]>,
    /// Not in SA-1B: a caption, written by the synthetic generator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
}

/// An SA-1B-format folder. Opening lists the image/JSON pairs; `get` reads and decodes one.
#[derive(Debug, Clone)]
pub struct Sa1bDataset {
    dir: PathBuf,
    /// `(image, json)` pairs in order of the numeric id (then name).
    items: Vec<(PathBuf, PathBuf)>,
}

const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// `sa_123` → 123, for a natural order; other names sort after, by name.
fn sort_key(path: &Path) -> (u64, String) {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let id = stem
        .rsplit('_')
        .next()
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(u64::MAX);
    (id, stem)
}

impl Sa1bDataset {
    /// Lists `dir`'s images that have a JSON of the same stem. An image without its JSON is an
    /// error (SA-1B ships them in pairs, so a lone file means a broken download); a JSON without
    /// its image is reported when that item is read.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let err = |reason: String| DataError::DatasetFile {
            path: dir.clone(),
            reason,
        };
        let entries = std::fs::read_dir(&dir).map_err(|e| err(e.to_string()))?;
        let mut items = Vec::new();
        let mut jsons = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| err(e.to_string()))?.path();
            let ext = path
                .extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default();
            if ext == "json" {
                jsons.push(path);
            } else if IMAGE_EXTENSIONS.contains(&ext.as_str()) {
                let json = path.with_extension("json");
                if !json.is_file() {
                    return Err(DataError::DatasetFile {
                        path: json,
                        reason: format!("missing: {} has no annotation file", path.display()),
                    });
                }
                items.push((path, json));
            }
        }
        // A JSON whose image is missing stays an item, so that reading it names the image.
        // A set, not a scan per JSON: an SA-1B shard folder holds ~11k pairs.
        let paired: std::collections::HashSet<PathBuf> =
            items.iter().map(|(_, j)| j.clone()).collect();
        for json in jsons {
            if !paired.contains(&json) {
                items.push((json.with_extension("jpg"), json));
            }
        }
        items.sort_by_key(|(_, json)| sort_key(json));
        Ok(Self { dir, items })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `(image, json)` paths of item `index`.
    pub fn paths(&self, index: usize) -> Option<(&Path, &Path)> {
        self.items
            .get(index)
            .map(|(i, j)| (i.as_path(), j.as_path()))
    }

    /// Reads item `index`'s JSON alone (no image decoding).
    pub fn read_json(&self, index: usize) -> Result<Sa1bFile> {
        let (_, json) = self.item(index)?;
        read_sa1b_json(json)
    }

    fn item(&self, index: usize) -> Result<(&Path, &Path)> {
        self.paths(index).ok_or_else(|| DataError::DatasetFile {
            path: self.dir.clone(),
            reason: format!("index {index} out of range ({} items)", self.items.len()),
        })
    }
}

/// Parses one SA-1B JSON; errors name the file.
pub fn read_sa1b_json(path: &Path) -> Result<Sa1bFile> {
    let bytes = std::fs::read(path).map_err(|e| DataError::DatasetFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    parse_sa1b_json(&bytes, path)
}

/// Parses an SA-1B JSON already in memory; errors name `json_path`.
pub(crate) fn parse_sa1b_json(bytes: &[u8], json_path: &Path) -> Result<Sa1bFile> {
    crate::json::from_slice(bytes).map_err(|e| DataError::DatasetFile {
        path: json_path.to_path_buf(),
        reason: format!("malformed SA-1B JSON: {e}"),
    })
}

/// Joins a decoded image with its parsed JSON, checking that sizes agree and that every RLE
/// string decodes; errors name `json_path` (and the annotation).
pub(crate) fn annotated_image(
    file: Sa1bFile,
    image: image::RgbImage,
    image_path: &Path,
    json_path: &Path,
) -> Result<AnnotatedImage> {
    let bad = |reason: String| DataError::DatasetFile {
        path: json_path.to_path_buf(),
        reason,
    };
    let (w, h) = (image.width() as usize, image.height() as usize);
    if (file.image.width, file.image.height) != (w, h) {
        return Err(bad(format!(
            "says {}×{} but {} is {w}×{h}",
            file.image.width,
            file.image.height,
            image_path.display()
        )));
    }
    let annotations = file
        .annotations
        .into_iter()
        .map(|a| {
            if a.segmentation.size != [h, w] {
                return Err(bad(format!(
                    "annotation {}: mask size {:?} but the image is {h}×{w}",
                    a.id, a.segmentation.size
                )));
            }
            let rle = Rle::from_coco_string(&a.segmentation.counts, a.segmentation.size)
                .map_err(|e| bad(format!("annotation {}: {e}", a.id)))?;
            Ok(Annotation {
                id: a.id,
                rle,
                bbox: a.bbox,
                area: a.area,
                iscrowd: false,
                category_id: None,
                predicted_iou: a.predicted_iou,
                stability_score: a.stability_score,
                point_coords: a.point_coords,
                crop_box: a.crop_box,
                caption: a.caption,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(AnnotatedImage {
        image_id: file.image.image_id,
        path: image_path.to_path_buf(),
        image,
        annotations,
    })
}

impl Dataset<AnnotatedImage, DataError> for Sa1bDataset {
    fn get(&self, index: usize) -> Result<AnnotatedImage> {
        let (image_path, json_path) = self.item(index)?;
        let file = read_sa1b_json(json_path)?;
        let image = load_rgb(image_path)?;
        annotated_image(file, image, image_path, json_path)
    }

    fn len(&self) -> usize {
        self.items.len()
    }
}
