//! A cached image embedding with the sizes needed to map prompts and masks back.

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{PredictorError, Result};

/// The encoder's output for one image, and the geometry of that image.
#[derive(Debug, Clone)]
pub struct ImageEmbedding {
    /// `[1, C, E, E]`.
    pub features: Tensor<4>,
    /// `(h, w)` of the image as given.
    pub original_size: (usize, usize),
    /// `(h, w)` after `ResizeLongestSide`, before padding.
    pub input_size: (usize, usize),
}

fn parse_size(meta: &HashMap<String, String>, key: &str) -> Option<(usize, usize)> {
    let (h, w) = meta.get(key)?.split_once(',')?;
    Some((h.trim().parse().ok()?, w.trim().parse().ok()?))
}

impl ImageEmbedding {
    /// Writes the embedding as safetensors (`features` f32, sizes in the metadata), so an image
    /// can be embedded once and prompted later, elsewhere.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let err = |reason: String| PredictorError::EmbeddingFile {
            path: path.to_path_buf(),
            reason,
        };
        let shape = self.features.dims().to_vec();
        let values = self
            .features
            .clone()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| err(format!("{e:?}")))?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, &bytes)
            .map_err(|e| err(e.to_string()))?;
        let meta = HashMap::from([
            (
                "original_size".to_string(),
                format!("{},{}", self.original_size.0, self.original_size.1),
            ),
            (
                "input_size".to_string(),
                format!("{},{}", self.input_size.0, self.input_size.1),
            ),
        ]);
        safetensors::serialize_to_file([("features", view)], Some(meta), path)
            .map_err(|e| err(e.to_string()))
    }

    /// Reads an embedding written by [`ImageEmbedding::save`].
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        let err = |reason: String| PredictorError::EmbeddingFile {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        let (_, header) =
            safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| err(e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let original_size =
            parse_size(&meta, "original_size").ok_or_else(|| err("no original_size".into()))?;
        let input_size =
            parse_size(&meta, "input_size").ok_or_else(|| err("no input_size".into()))?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| err(e.to_string()))?;
        let view = st
            .tensor("features")
            .map_err(|e| err(format!("no features tensor: {e}")))?;
        if view.dtype() != safetensors::Dtype::F32
            || view.shape().len() != 4
            || view.shape()[0] != 1
        {
            return Err(err(format!(
                "features must be f32 [1, C, E, E], got {:?} {:?}",
                view.dtype(),
                view.shape()
            )));
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let features = Tensor::from_data(TensorData::new(values, view.shape().to_vec()), device);
        Ok(Self {
            features,
            original_size,
            input_size,
        })
    }
}
