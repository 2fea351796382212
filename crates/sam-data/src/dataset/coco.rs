//! COCO instances JSON (`instances_*.json`) with its image folder. The file is parsed and
//! checked once, in [`CocoDataset::open`]; `get` decodes one image and rasterises its
//! objects as pycocotools' `COCO.annToRLE`.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use burn_dataset::Dataset;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::annotation::{AnnotatedImage, Annotation};
use crate::error::{DataError, Result};
use crate::image_io::load_rgb;
use crate::polygon::Segmentation;

/// An entry of `images`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CocoImageInfo {
    /// Image id.
    pub id: u64,
    /// File name, relative to the image folder.
    pub file_name: String,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

/// An entry of `categories`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CocoCategory {
    /// Category id.
    pub id: u64,
    /// Name.
    pub name: String,
    /// Super-category, where given.
    #[serde(default)]
    pub supercategory: Option<String>,
}

/// An annotation as kept between `open` and `get`: the segmentation checked but not
/// rasterised.
#[derive(Debug, Clone)]
struct CocoObject {
    id: u64,
    category_id: Option<u64>,
    segmentation: Segmentation,
    area: f64,
    bbox: [f64; 4],
    iscrowd: bool,
}

/// An annotation as the file has it; `segmentation` stays a JSON value only until
/// [`annotation_list`] converts it, so that a large file is never held as `Value`s whole.
#[derive(Deserialize)]
struct RawAnnotation {
    id: u64,
    image_id: u64,
    #[serde(default)]
    category_id: Option<u64>,
    segmentation: Value,
    area: f64,
    bbox: [f64; 4],
    #[serde(default, deserialize_with = "crowd_flag")]
    iscrowd: bool,
}

#[derive(Deserialize)]
struct RawFile {
    images: Vec<CocoImageInfo>,
    // Image-info files (test-dev) have no annotations.
    #[serde(default, deserialize_with = "annotation_list")]
    annotations: Vec<(u64, CocoObject)>,
    #[serde(default)]
    categories: Vec<CocoCategory>,
}

/// `iscrowd` is 0/1 in COCO; a boolean is accepted too.
fn crowd_flag<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<bool, D::Error> {
    match Value::deserialize(d)? {
        Value::Bool(b) => Ok(b),
        Value::Number(n) if n.as_u64() == Some(0) => Ok(false),
        Value::Number(n) if n.as_u64() == Some(1) => Ok(true),
        other => Err(de::Error::custom(format!(
            "iscrowd {other} is neither 0 nor 1"
        ))),
    }
}

/// Reads `annotations` one by one, checking each segmentation's shape as it comes, so that
/// an error names the annotation (and serde adds the line and column).
fn annotation_list<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<(u64, CocoObject)>, D::Error> {
    struct List;
    impl<'de> Visitor<'de> for List {
        type Value = Vec<(u64, CocoObject)>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of annotations")
        }

        fn visit_seq<A: SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(raw) = seq.next_element::<RawAnnotation>()? {
                let segmentation = Segmentation::from_json(&raw.segmentation)
                    .map_err(|e| de::Error::custom(format!("annotation {}: {e}", raw.id)))?;
                out.push((
                    raw.image_id,
                    CocoObject {
                        id: raw.id,
                        category_id: raw.category_id,
                        segmentation,
                        area: raw.area,
                        bbox: raw.bbox,
                        iscrowd: raw.iscrowd,
                    },
                ));
            }
            Ok(out)
        }
    }
    d.deserialize_seq(List)
}

/// A COCO instances file with its image folder: one item per entry of `images`, in file
/// order (images without annotations included), each with its annotations in file order.
#[derive(Debug, Clone)]
pub struct CocoDataset {
    annotation_file: PathBuf,
    image_dir: PathBuf,
    images: Vec<CocoImageInfo>,
    /// `objects[i]`: the annotations of `images[i]`.
    objects: Vec<Vec<CocoObject>>,
    categories: Vec<CocoCategory>,
}

impl CocoDataset {
    /// Parses `annotation_file` (unknown fields ignored) and groups its annotations by image.
    /// Images are not opened here. Errors ([`DataError::DatasetFile`] naming the file): an
    /// unreadable or malformed file (serde's message, with line and column), a segmentation
    /// of the wrong shape, two images with one id, an annotation of an unknown image.
    pub fn open(annotation_file: impl AsRef<Path>, image_dir: impl AsRef<Path>) -> Result<Self> {
        let annotation_file = annotation_file.as_ref().to_path_buf();
        let err = |reason: String| DataError::DatasetFile {
            path: annotation_file.clone(),
            reason,
        };
        let bytes = std::fs::read(&annotation_file).map_err(|e| err(e.to_string()))?;
        let file: RawFile = crate::json::from_slice(&bytes)
            .map_err(|e| err(format!("malformed COCO instances JSON: {e}")))?;
        drop(bytes);

        let mut index = HashMap::with_capacity(file.images.len());
        for (i, image) in file.images.iter().enumerate() {
            if index.insert(image.id, i).is_some() {
                return Err(err(format!("image id {} appears twice", image.id)));
            }
        }
        let mut objects = vec![Vec::new(); file.images.len()];
        for (image_id, object) in file.annotations {
            let &i = index.get(&image_id).ok_or_else(|| {
                err(format!(
                    "annotation {} refers to image {image_id}, which is not in `images`",
                    object.id
                ))
            })?;
            objects[i].push(object);
        }
        Ok(Self {
            annotation_file,
            image_dir: image_dir.as_ref().to_path_buf(),
            images: file.images,
            objects,
            categories: file.categories,
        })
    }

    /// The categories, in file order.
    pub fn categories(&self) -> &[CocoCategory] {
        &self.categories
    }

    /// Item `index`'s image entry (file name, id, size), without decoding the image.
    pub fn image_info(&self, index: usize) -> Option<&CocoImageInfo> {
        self.images.get(index)
    }

    /// The number of annotations of item `index`, without decoding anything.
    pub fn annotation_count(&self, index: usize) -> Option<usize> {
        self.objects.get(index).map(Vec::len)
    }

    /// The instances file.
    pub fn annotation_file(&self) -> &Path {
        &self.annotation_file
    }

    /// The folder `file_name`s are relative to.
    pub fn image_dir(&self) -> &Path {
        &self.image_dir
    }

    fn file_error(&self, reason: String) -> DataError {
        DataError::DatasetFile {
            path: self.annotation_file.clone(),
            reason,
        }
    }
}

impl Dataset<AnnotatedImage, DataError> for CocoDataset {
    /// Decodes item `index`'s image and rasterises its objects at the image's size. Errors:
    /// [`DataError::ImageRead`] for a missing or corrupt image; [`DataError::DatasetFile`]
    /// naming the instances file when the image's size is not the file's, or an object's
    /// segmentation does not fit it; an index out of range is an error too.
    fn get(&self, index: usize) -> Result<AnnotatedImage> {
        let (Some(info), Some(objects)) = (self.images.get(index), self.objects.get(index)) else {
            return Err(self.file_error(format!(
                "index {index} out of range ({} images)",
                self.images.len()
            )));
        };
        let path = self.image_dir.join(&info.file_name);
        let image = load_rgb(&path)?;
        let (w, h) = (image.width() as usize, image.height() as usize);
        if (info.width, info.height) != (w, h) {
            return Err(self.file_error(format!(
                "image {} is {}×{} in the file, but {} is {w}×{h}",
                info.id,
                info.width,
                info.height,
                path.display()
            )));
        }
        let annotations = objects
            .iter()
            .map(|o| {
                let rle = o.segmentation.to_rle(h, w).map_err(|e| {
                    self.file_error(format!("annotation {} (image {}): {e}", o.id, info.id))
                })?;
                Ok(Annotation {
                    id: o.id,
                    rle,
                    bbox: o.bbox,
                    area: o.area,
                    iscrowd: o.iscrowd,
                    category_id: o.category_id,
                    predicted_iou: None,
                    stability_score: None,
                    point_coords: Vec::new(),
                    crop_box: None,
                    caption: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(AnnotatedImage {
            image_id: info.id,
            path,
            image,
            annotations,
        })
    }

    fn len(&self) -> usize {
        self.images.len()
    }
}
