//! Where the embedding prompts of text-prompt training come from. The paper uses a frozen CLIP
//! (App. D.5); this crate only asks for an [`ObjectEmbedder`], so it needs no CLIP itself
//! (`sam-burn` implements it with `sam-clip`).

/// One object to embed: its mask on the image and the crop's random choices.
#[derive(Debug, Clone, Copy)]
pub struct ObjectCrop<'a> {
    /// `height × width`, row-major, `true` inside.
    pub mask: &'a [bool],
    /// Box expansion factor, in `[1, 2]`.
    pub expand: f64,
    /// Zero the pixels outside the mask.
    pub zero_outside: bool,
}

/// Turns objects of an image into prompt embeddings (for CLIP: the image features of masked
/// crops with the class token restricted to the mask, ℓ2-normalised).
pub trait ObjectEmbedder: Send + Sync {
    /// The embeddings' size (the model's `prompt_embedding_dim`).
    fn dim(&self) -> usize;

    /// One embedding per crop of `rgb` (`height × width × 3`).
    fn embed(
        &self,
        rgb: &[u8],
        width: usize,
        height: usize,
        crops: &[ObjectCrop<'_>],
    ) -> Result<Vec<Vec<f32>>, String>;
}
