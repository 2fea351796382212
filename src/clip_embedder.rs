//! CLIP as the embedder of SAM's text-prompt training (paper App. D.5): the image features of
//! a masked crop around each object, with the class token restricted to the object's patches
//! in CLIP's last layer, ℓ2-normalised. At inference the text features of a prompt stand in.

use sam_clip::{ClipFolder, PixelValues, masked_crop, patch_mask};
use sam_train::{ObjectCrop, ObjectEmbedder};

/// A loaded CLIP folder (on a plain, non-autodiff device: CLIP stays frozen).
pub struct ClipEmbedder {
    /// The CLIP model, tokenizer and processor.
    pub clip: ClipFolder,
}

impl ClipEmbedder {
    /// Wraps a loaded folder.
    pub fn new(clip: ClipFolder) -> Self {
        Self { clip }
    }

    /// The patch grid side of the vision tower.
    pub fn grid(&self) -> usize {
        let v = &self.clip.model.config().vision_config;
        v.image_size / v.patch_size
    }
}

impl ObjectEmbedder for ClipEmbedder {
    fn dim(&self) -> usize {
        self.clip.model.config().projection_dim
    }

    fn embed(
        &self,
        rgb: &[u8],
        width: usize,
        height: usize,
        crops: &[ObjectCrop<'_>],
    ) -> Result<Vec<Vec<f32>>, String> {
        if crops.is_empty() {
            return Ok(Vec::new());
        }
        let grid = self.grid();
        let mut pixels = Vec::with_capacity(crops.len());
        let mut patches = Vec::with_capacity(crops.len());
        for c in crops {
            let crop = masked_crop(
                rgb,
                width,
                height,
                c.mask,
                c.expand,
                c.zero_outside,
                &self.clip.processor,
            )
            .map_err(|e| e.to_string())?;
            patches.push(
                patch_mask(c.mask, width, height, crop.crop_box, grid)
                    .map_err(|e| e.to_string())?,
            );
            pixels.push(crop.pixels);
        }
        let batch =
            PixelValues::batch(&pixels, &self.clip.model.device()).map_err(|e| e.to_string())?;
        let features = self
            .clip
            .model
            .get_image_features_restricted(batch, &patches)
            .map_err(|e| e.to_string())?;
        let p = self.dim();
        let values = sam_model::f32_values(features);
        Ok(values
            .chunks(p.max(1))
            .map(crate::segment::l2_normalized)
            .collect())
    }
}
