//! CLIP on Burn: the vision and text transformers of `transformers`' `CLIPModel`, its
//! tokenizer and image processor, loading a Hugging Face `CLIPModel` folder as published.
//!
//! Every module is named after its `modeling_clip.py` class and carries its parameter names,
//! so checkpoint keys map one to one (see `docs/clip.md` for the map and how parity with
//! `transformers` is measured). The SAM crates do not depend on this one: it serves the text
//! prompts of the paper (§7.5, App. D.5), whose training embeds masked image crops with CLIP's
//! image encoder and whose inference embeds the prompt text with its text encoder.

#![warn(missing_docs)]

pub mod activation;
pub mod attention;
pub mod config;
pub mod contrastive;
pub mod encoder;
pub mod encoder_layer;
pub mod error;
pub mod folder;
pub mod image_io;
pub mod image_processor;
pub mod masked_crop;
pub mod mlp;
pub mod model;
pub mod text_embeddings;
pub mod text_model;
pub mod tokenizer;
pub mod vision_embeddings;
pub mod vision_model;
pub mod weights;

pub use activation::HiddenAct;
pub use config::{ClipConfig, ClipTextConfig, ClipVisionConfig};
pub use error::{ClipError, Result, TensorMismatch};
pub use folder::ClipFolder;
pub use image_io::load_image;
pub use image_processor::{ClipImageProcessor, PixelValues};
pub use masked_crop::{MaskedCrop, masked_crop, patch_mask};
pub use model::{ClipLogits, ClipModel};
pub use tokenizer::ClipTokenizer;
pub use vision_model::ClipVisionModel;
pub use weights::expected_tensors;
