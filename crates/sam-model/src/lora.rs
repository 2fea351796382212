//! LoRA: low-rank adapters on the attention projections of the image encoder (`qkv`, `proj`)
//! and of the mask decoder (`q_proj`, `k_proj`, `v_proj`, `out_proj`). A layer `y = x·W + b`
//! becomes `y = x·W + b + (α/r)·x·A·B` with `A: [in, r]` random and `B: [r, out]` zero, so a
//! fresh adapter changes nothing. The adapters are optional fields: without them the model and
//! its checkpoints are exactly the official ones. They are saved and loaded on their own (a
//! small safetensors file with the `LoraConfig` in its metadata) and can be merged into `W`.

use std::path::Path;

use burn::module::{Module, Param};
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::store::{ModuleSnapshot, PathFilter, SafetensorsStore};
use burn::tensor::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SamError};
use crate::sam::Sam;

/// Where adapters go and how large they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    /// Rank `r` of each update.
    pub rank: usize,
    /// Scale numerator: the update is multiplied by `alpha / rank`.
    pub alpha: f64,
    /// Adapters on the image encoder's `qkv` and `proj`.
    pub image_encoder: bool,
    /// Adapters on the mask decoder's attention projections (two-way transformer).
    pub mask_decoder: bool,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            rank: 4,
            alpha: 4.0,
            image_encoder: true,
            mask_decoder: true,
        }
    }
}

impl LoraConfig {
    /// Rank ≥ 1, a finite positive alpha, at least one place.
    pub fn validate(&self) -> Result<()> {
        if self.rank == 0 || !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(SamError::InvalidConfig(format!(
                "LoRA rank {} / alpha {}: need rank ≥ 1 and alpha > 0",
                self.rank, self.alpha
            )));
        }
        if !self.image_encoder && !self.mask_decoder {
            return Err(SamError::InvalidConfig(
                "LoRA on neither the image encoder nor the mask decoder".into(),
            ));
        }
        Ok(())
    }
}

/// One low-rank update.
#[derive(Module, Debug)]
pub struct LoraAdapter {
    /// `[in] → [r]`, no bias (Kaiming-uniform, as `LinearConfig`'s default).
    pub a: Linear,
    /// `[r] → [out]`, no bias, zero at creation.
    pub b: Linear,
    #[module(skip)]
    scale: f64,
}

impl LoraAdapter {
    /// An adapter for a `[d_in] → [d_out]` layer.
    pub fn new(d_in: usize, d_out: usize, config: &LoraConfig, device: &Device) -> Self {
        Self {
            a: LinearConfig::new(d_in, config.rank)
                .with_bias(false)
                .init(device),
            b: LinearConfig::new(config.rank, d_out)
                .with_bias(false)
                .with_initializer(Initializer::Zeros)
                .init(device),
            scale: config.alpha / config.rank as f64,
        }
    }

    /// `(α/r)·x·A·B`, `[.., in] → [.., out]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        linear(&self.b, linear(&self.a, x)) * self.scale
    }

    /// The update as a weight in Burn's `[in, out]` layout: `(α/r)·A·B`.
    pub fn delta_weight(&self) -> Tensor<2> {
        self.a.weight.val().matmul(self.b.weight.val()) * self.scale
    }
}

/// `base(x)`, plus the adapter's update when there is one.
pub fn forward_with<const D: usize>(
    base: &Linear,
    adapter: &Option<LoraAdapter>,
    x: Tensor<D>,
) -> Tensor<D> {
    match adapter {
        Some(a) => linear(base, x.clone()) + a.forward(x),
        None => linear(base, x),
    }
}

/// `lin(x)` for `x: [.., C]`, with every leading axis folded into the rows of one product.
///
/// Burn keeps `[B, H, W, C]` inputs whose `W` is a multiple of 32 as a batched product against
/// the broadcast weight, and flex then packs the weight again for each of the `B·H` small
/// products: the encoder's 64×64-token blocks ran their MLP as 64 products of 64 rows, the
/// weight (9 MB in ViT-B's MLP) re-packed for each.
pub fn linear<const D: usize>(lin: &Linear, x: Tensor<D>) -> Tensor<D> {
    if D <= 2 {
        return lin.forward(x);
    }
    let dims = x.dims();
    let c = dims[D - 1];
    let rows = dims[..D - 1].iter().product::<usize>();
    let y = lin.forward(x.reshape([rows, c]));
    let mut out = dims;
    out[D - 1] = y.dims()[1];
    y.reshape(out)
}

/// A fresh adapter for `base`, in its float type (adapters added to a model cast to 16 bits
/// are 16-bit too).
fn adapter_for(base: &Linear, config: &LoraConfig) -> LoraAdapter {
    let weight = base.weight.val();
    let [d_in, d_out] = weight.dims();
    let adapter = LoraAdapter::new(d_in, d_out, config, &weight.device());
    match weight.dtype() {
        DType::F32 => adapter,
        dtype => adapter.map(&mut crate::precision::CastFloat(dtype.into())),
    }
}

/// `base.weight += ΔW`, the adapter removed.
fn merge_into(base: &mut Linear, adapter: &mut Option<LoraAdapter>) {
    if let Some(a) = adapter.take() {
        // Detached: a merged weight is a new leaf, also on an autodiff device.
        let merged = base.weight.val() + a.delta_weight();
        base.weight = Param::from_tensor(merged.detach());
    }
}

/// Every (layer, adapter slot) pair of the model, for adding and merging.
fn slots(sam: &mut Sam) -> Vec<(bool, &mut Linear, &mut Option<LoraAdapter>)> {
    let mut out: Vec<(bool, &mut Linear, &mut Option<LoraAdapter>)> = Vec::new();
    for block in sam.image_encoder.blocks.iter_mut() {
        let attn = &mut block.attn;
        out.push((true, &mut attn.qkv, &mut attn.lora_qkv));
        out.push((true, &mut attn.proj, &mut attn.lora_proj));
    }
    let t = &mut sam.mask_decoder.transformer;
    let mut attns: Vec<&mut crate::mask_decoder::attention::Attention> = Vec::new();
    for layer in t.layers.iter_mut() {
        attns.push(&mut layer.self_attn);
        attns.push(&mut layer.cross_attn_token_to_image);
        attns.push(&mut layer.cross_attn_image_to_token);
    }
    attns.push(&mut t.final_attn_token_to_image);
    for a in attns {
        out.push((false, &mut a.q_proj, &mut a.lora_q));
        out.push((false, &mut a.k_proj, &mut a.lora_k));
        out.push((false, &mut a.v_proj, &mut a.lora_v));
        out.push((false, &mut a.out_proj, &mut a.lora_out));
    }
    out
}

/// The path pattern of every adapter parameter (to train or save them alone).
pub const LORA_PATTERN: &str = r"\.lora_";

impl Sam {
    /// Adds fresh adapters where `config` says (replacing any already there).
    pub fn add_lora(&mut self, config: &LoraConfig) -> Result<()> {
        config.validate()?;
        for (in_encoder, base, slot) in slots(self) {
            let wanted = if in_encoder {
                config.image_encoder
            } else {
                config.mask_decoder
            };
            *slot = wanted.then(|| adapter_for(base, config));
        }
        self.lora = Some(config.clone());
        Ok(())
    }

    /// The adapters' configuration, if the model has adapters.
    pub fn lora_config(&self) -> Option<&LoraConfig> {
        self.lora.as_ref()
    }

    /// Folds every adapter into its layer's weight (`W + (α/r)·A·B`) and removes them: the
    /// result is a plain SAM, savable in the official layout.
    pub fn merge_lora(&mut self) {
        for (_, base, slot) in slots(self) {
            merge_into(base, slot);
        }
        self.lora = None;
    }

    /// Saves the adapters alone (safetensors; the `LoraConfig` in the metadata).
    pub fn save_lora(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let save = |reason: String| SamError::Save {
            path: path.to_path_buf(),
            reason,
        };
        let config = self
            .lora
            .as_ref()
            .ok_or_else(|| save("the model has no LoRA adapters".into()))?;
        let mut store = SafetensorsStore::from_file(path)
            .filter(PathFilter::new().with_regex(LORA_PATTERN))
            .overwrite(true)
            .metadata(
                "lora_config",
                serde_json::to_string(config).unwrap_or_default(),
            );
        self.save_into(&mut store).map_err(|e| save(e.to_string()))
    }

    /// Adds the adapters a [`Sam::save_lora`] file describes and loads them; every adapter
    /// tensor must be in the file, and nothing else. On an error the model is left as it was.
    pub fn load_lora(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let read = |reason: String| SamError::CheckpointRead {
            path: path.to_path_buf(),
            reason,
        };
        let config = read_lora_config(path)?;
        // Loaded into a copy (the tensors are shared, not copied) that replaces `self` only
        // once every adapter has been read.
        let mut next = self.clone();
        next.add_lora(&config)?;
        let mut store = SafetensorsStore::from_file(path)
            .allow_partial(true)
            .validate(false);
        let result = next
            .load_from(&mut store)
            .map_err(|e| read(e.to_string()))?;
        let missing: Vec<&str> = result
            .missing
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| k.contains(".lora_"))
            .collect();
        if !missing.is_empty() || !result.unused.is_empty() || !result.errors.is_empty() {
            return Err(SamError::Mismatch {
                path: path.to_path_buf(),
                details: format!(
                    "adapters missing: {missing:?}; unexpected: {:?}; errors: {:?}",
                    result.unused,
                    result
                        .errors
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                ),
            });
        }
        *self = next;
        Ok(())
    }

    /// Parameters of the adapters, and of the whole model.
    pub fn lora_parameter_counts(&self) -> (usize, usize) {
        let all = self.num_params();
        let mut without = Sam::clone(self);
        for (_, _, slot) in slots(&mut without) {
            *slot = None;
        }
        (all - without.num_params(), all)
    }
}

/// The `LoraConfig` in a [`Sam::save_lora`] file's safetensors metadata.
pub fn read_lora_config(path: &Path) -> Result<LoraConfig> {
    let read = |reason: String| SamError::CheckpointRead {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| read(e.to_string()))?;
    let len = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as usize)
        .ok_or_else(|| read("not a safetensors file (shorter than its header size)".into()))?;
    let header = bytes
        .get(8..8usize.saturating_add(len))
        .ok_or_else(|| read("truncated safetensors header".into()))?;
    let header: serde_json::Value =
        serde_json::from_slice(header).map_err(|e| read(format!("bad header: {e}")))?;
    let text = header["__metadata__"]["lora_config"]
        .as_str()
        .ok_or_else(|| read("no lora_config in the metadata: not a LoRA adapter file".into()))?;
    let config: LoraConfig =
        serde_json::from_str(text).map_err(|e| read(format!("bad lora_config: {e}")))?;
    config.validate()?;
    Ok(config)
}
