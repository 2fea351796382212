//! A Hugging Face `CLIPModel` folder as the Hub publishes it: `config.json`,
//! `model.safetensors`, `tokenizer.json` and (optional) `preprocessor_config.json`.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor};

use crate::config::ClipConfig;
use crate::error::{ClipError, Result};
use crate::image_processor::{ClipImageProcessor, PixelValues};
use crate::model::ClipModel;
use crate::tokenizer::ClipTokenizer;

/// Model, tokenizer and image processor of one folder.
#[derive(Debug)]
pub struct ClipFolder {
    /// The weights, loaded strictly.
    pub model: ClipModel,
    /// `tokenizer.json`, truncating to the text context.
    pub tokenizer: ClipTokenizer,
    /// `preprocessor_config.json`, or the OpenAI processor for the vision input size when the
    /// folder has none.
    pub processor: ClipImageProcessor,
    /// The folder.
    pub dir: PathBuf,
}

impl ClipFolder {
    /// Loads everything; the first problem found is the error (config, weights, tokenizer,
    /// processor, in that order).
    pub fn load(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(ClipError::ConfigFile {
                path: dir.to_path_buf(),
                reason: "not a folder (expected a Hugging Face CLIPModel folder)".into(),
            });
        }
        let config = ClipConfig::load(dir.join("config.json"))?;
        let mut model = ClipModel::new(&config, device)?;
        model.load_weights(dir.join("model.safetensors"))?;
        let tokenizer = ClipTokenizer::from_file(
            dir.join("tokenizer.json"),
            config.text_config.max_position_embeddings,
        )?;
        let processor_file = dir.join("preprocessor_config.json");
        let processor = if processor_file.is_file() {
            ClipImageProcessor::load(&processor_file)?
        } else {
            ClipImageProcessor::for_image_size(config.vision_config.image_size)
        };
        if let Some(side) = processor.output_side()
            && side != config.vision_config.image_size
        {
            return Err(ClipError::ConfigField {
                path: processor_file,
                field: "crop_size".into(),
                reason: format!(
                    "{side} differs from the model's vision_config.image_size {}",
                    config.vision_config.image_size
                ),
            });
        }
        Ok(Self {
            model,
            tokenizer,
            processor,
            dir: dir.to_path_buf(),
        })
    }

    /// Token ids (unpadded, with start and end tokens) and `get_text_features` of `texts`:
    /// `[T, P]`.
    pub fn embed_texts<S: AsRef<str>>(&self, texts: &[S]) -> Result<(Vec<Vec<u32>>, Tensor<2>)> {
        let ids = self.tokenizer.encode_batch(texts)?;
        let features = self.model.get_text_features(&ids)?;
        Ok((ids, features))
    }

    /// Writes the folder as the Hub lays it out, so that [`ClipFolder::load`] (and
    /// transformers' `CLIPModel.from_pretrained`) read it back: `config.json`,
    /// `model.safetensors` (transformers' keys and layouts, `logit_scale` 0-d),
    /// `tokenizer.json` (a copy of this folder's tokenizer file) and
    /// `preprocessor_config.json`. Files are written under temporary names and renamed.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        let io = |path: &Path, e: &dyn std::fmt::Display| ClipError::ConfigFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, &e))?;
        let write = |name: &str, bytes: &[u8]| -> Result<()> {
            let path = dir.join(name);
            let tmp = dir.join(format!(".{name}.tmp"));
            std::fs::write(&tmp, bytes).map_err(|e| io(&tmp, &e))?;
            std::fs::rename(&tmp, &path).map_err(|e| io(&path, &e))
        };
        let mut config = serde_json::to_value(self.model.config()).map_err(|e| io(dir, &e))?;
        if let Some(map) = config.as_object_mut() {
            map.insert("architectures".into(), serde_json::json!(["CLIPModel"]));
            map.insert("model_type".into(), serde_json::json!("clip"));
        }
        let pretty = |v: &serde_json::Value| serde_json::to_vec_pretty(v).unwrap_or_default();
        write("config.json", &pretty(&config))?;
        write(
            "model.safetensors",
            &crate::weights::to_safetensors(&self.model)?,
        )?;
        let tokenizer =
            std::fs::read(self.tokenizer.path()).map_err(|e| io(self.tokenizer.path(), &e))?;
        write("tokenizer.json", &tokenizer)?;
        write(
            "preprocessor_config.json",
            &pretty(&self.processor.to_json()),
        )?;
        Ok(())
    }

    /// `get_image_features` of RGB images (preprocessed by [`Self::processor`]): `[I, P]`.
    pub fn embed_images(&self, images: &[image::RgbImage]) -> Result<Tensor<2>> {
        let pixels = images
            .iter()
            .map(|im| self.processor.preprocess_image(im))
            .collect::<Result<Vec<_>>>()?;
        let batch = PixelValues::batch(&pixels, &self.model.device())?;
        self.model.get_image_features(batch)
    }
}
