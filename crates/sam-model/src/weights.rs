//! Checkpoint loading and saving: the official `.pth` files unmodified, their safetensors twins
//! (same key names), and Burn's native burnpack (`.bpk`).
//!
//! Every difference between the reference's parameter names and ours is in [`KEY_REMAPS`]; loading
//! is strict (missing, unexpected or mis-shaped tensors are an error listing them) and never
//! executes code from the file (the pickle reader only rebuilds tensors).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::store::{
    ApplyResult, BurnToPyTorchAdapter, BurnpackStore, ModuleSnapshot, ModuleStore,
    PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
};
use burn::tensor::Device;

use crate::config::SamConfig;
use crate::error::{Result, SamError};
use crate::sam::Sam;

/// Reference `nn.Sequential` indices → our named fields. All members of each sequential are
/// renamed so that Burn's contiguous-index renumbering never touches them.
pub const KEY_REMAPS: &[(&str, &str)] = &[
    (r"^image_encoder\.neck\.0\.", "image_encoder.neck.conv1."),
    (r"^image_encoder\.neck\.1\.", "image_encoder.neck.norm1."),
    (r"^image_encoder\.neck\.2\.", "image_encoder.neck.conv2."),
    (r"^image_encoder\.neck\.3\.", "image_encoder.neck.norm2."),
    (
        r"^prompt_encoder\.mask_downscaling\.0\.",
        "prompt_encoder.mask_downscaling.conv1.",
    ),
    (
        r"^prompt_encoder\.mask_downscaling\.1\.",
        "prompt_encoder.mask_downscaling.norm1.",
    ),
    (
        r"^prompt_encoder\.mask_downscaling\.3\.",
        "prompt_encoder.mask_downscaling.conv2.",
    ),
    (
        r"^prompt_encoder\.mask_downscaling\.4\.",
        "prompt_encoder.mask_downscaling.norm2.",
    ),
    (
        r"^prompt_encoder\.mask_downscaling\.6\.",
        "prompt_encoder.mask_downscaling.conv3.",
    ),
    (
        r"^mask_decoder\.output_upscaling\.0\.",
        "mask_decoder.output_upscaling.conv1.",
    ),
    (
        r"^mask_decoder\.output_upscaling\.1\.",
        "mask_decoder.output_upscaling.norm.",
    ),
    (
        r"^mask_decoder\.output_upscaling\.3\.",
        "mask_decoder.output_upscaling.conv2.",
    ),
];

/// The file formats a checkpoint can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointFormat {
    /// `torch.save` of the state dict (`.pth`, `.pt`), the official release format.
    Pytorch,
    /// safetensors with the reference's key names.
    Safetensors,
    /// Burn's native burnpack.
    Burnpack,
}

impl CheckpointFormat {
    /// The format named by a file's extension.
    pub fn from_path(path: &Path) -> Result<Self> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        match ext.as_str() {
            "pth" | "pt" | "bin" => Ok(Self::Pytorch),
            "safetensors" => Ok(Self::Safetensors),
            "bpk" => Ok(Self::Burnpack),
            _ => Err(SamError::UnknownFormat {
                path: path.to_path_buf(),
                extension: ext,
            }),
        }
    }
}

fn read_error(path: &Path, reason: impl ToString) -> SamError {
    SamError::CheckpointRead {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn pytorch_store(path: &Path) -> PytorchStore {
    KEY_REMAPS.iter().fold(
        PytorchStore::from_file(path)
            .allow_partial(true)
            .validate(false)
            .map_indices_contiguous(false),
        |store, (from, to)| store.with_key_remapping(*from, *to),
    )
}

fn safetensors_store(path: &Path) -> SafetensorsStore {
    KEY_REMAPS.iter().fold(
        SafetensorsStore::from_file(path)
            .with_from_adapter(PyTorchToBurnAdapter)
            .allow_partial(true)
            .validate(false)
            .map_indices_contiguous(false),
        |store, (from, to)| store.with_key_remapping(*from, *to),
    )
}

/// Names and shapes of the tensors a store holds (after its key remapping).
pub(crate) fn store_shapes<S: ModuleStore>(
    path: &Path,
    store: &mut S,
) -> Result<BTreeMap<String, Vec<usize>>> {
    let tensors = store.get_all_tensors().map_err(|e| read_error(path, e))?;
    Ok(tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.shape.to_vec()))
        .collect())
}

/// Tensor names (after [`KEY_REMAPS`]) and shapes of a checkpoint.
pub fn checkpoint_shapes(path: impl AsRef<Path>) -> Result<BTreeMap<String, Vec<usize>>> {
    let path = path.as_ref();
    check_readable(path)?;
    match CheckpointFormat::from_path(path)? {
        CheckpointFormat::Pytorch => store_shapes(path, &mut pytorch_store(path)),
        CheckpointFormat::Safetensors => store_shapes(path, &mut safetensors_store(path)),
        CheckpointFormat::Burnpack => store_shapes(path, &mut BurnpackStore::from_file(path)),
    }
}

pub(crate) fn check_readable(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| read_error(path, e))?;
    if !meta.is_file() {
        return Err(read_error(path, "not a regular file"));
    }
    if meta.len() == 0 {
        return Err(read_error(path, "the file is empty"));
    }
    Ok(())
}

fn preset_of_width(width: usize) -> &'static str {
    match width {
        768 => " (vit_b)",
        1024 => " (vit_l)",
        1280 => " (vit_h)",
        _ => "",
    }
}

/// Compares the sizes an official-layout checkpoint implies with the config, naming every
/// dimension that differs (so a ViT-H file given a ViT-L config says exactly that).
pub fn variant_mismatches(
    config: &SamConfig,
    shapes: &BTreeMap<String, Vec<usize>>,
) -> Vec<String> {
    let mut out = Vec::new();
    let check = |out: &mut Vec<String>,
                 name: &str,
                 found: Option<usize>,
                 expected: usize,
                 decorate: bool| {
        if let Some(found) = found
            && found != expected
        {
            let (f, e) = if decorate {
                (preset_of_width(found), preset_of_width(expected))
            } else {
                ("", "")
            };
            out.push(format!(
                "checkpoint has {name} {found}{f} but the config has {expected}{e}"
            ));
        }
    };
    let dim = |key: &str, i: usize| shapes.get(key).and_then(|s| s.get(i).copied());

    check(
        &mut out,
        "encoder_embed_dim",
        dim("image_encoder.patch_embed.proj.weight", 0),
        config.encoder_embed_dim,
        true,
    );
    check(
        &mut out,
        "patch_size",
        dim("image_encoder.patch_embed.proj.weight", 2),
        config.patch_size,
        false,
    );
    let grid = dim("image_encoder.pos_embed", 1);
    check(
        &mut out,
        "image_size",
        grid.map(|g| g * config.patch_size),
        config.image_size,
        false,
    );
    let depth = shapes
        .keys()
        .filter_map(|k| {
            k.strip_prefix("image_encoder.blocks.")?
                .split('.')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .max()
        .map(|m| m + 1);
    check(
        &mut out,
        "encoder_depth",
        depth,
        config.encoder_depth,
        false,
    );
    if let Some(head_dim) = dim("image_encoder.blocks.0.attn.rel_pos_h", 1)
        && head_dim > 0
        && let Some(width) = dim("image_encoder.patch_embed.proj.weight", 0)
    {
        check(
            &mut out,
            "encoder_num_heads",
            Some(width / head_dim),
            config.encoder_num_heads,
            false,
        );
    }
    if let (Some(hidden), Some(width)) = (
        dim("image_encoder.blocks.0.mlp.lin1.weight", 0),
        dim("image_encoder.blocks.0.mlp.lin1.weight", 1),
    ) {
        let expected = (width as f64 * config.encoder_mlp_ratio) as usize;
        check(&mut out, "encoder MLP width", Some(hidden), expected, false);
    }
    if let (Some(g), Some(d)) = (grid, depth) {
        let global: Vec<usize> = (0..d)
            .filter(|i| {
                dim(&format!("image_encoder.blocks.{i}.attn.rel_pos_h"), 0) == Some(2 * g - 1)
                    && config.window_size != g
            })
            .collect();
        let windowed_len = (0..d)
            .filter(|i| !global.contains(i))
            .find_map(|i| dim(&format!("image_encoder.blocks.{i}.attn.rel_pos_h"), 0));
        check(
            &mut out,
            "window_size",
            windowed_len.map(|l| l.div_ceil(2)),
            config.window_size,
            false,
        );
        // `window_size == 0` makes every block global, whatever the list says.
        let mut expected: Vec<usize> = if config.window_size == 0 {
            (0..config.encoder_depth).collect()
        } else {
            config.encoder_global_attn_indexes.clone()
        };
        expected.sort_unstable();
        expected.dedup();
        if d == config.encoder_depth && config.window_size != g && global != expected {
            out.push(format!(
                "checkpoint has global attention in blocks {global:?} but the config has {:?}",
                config.encoder_global_attn_indexes
            ));
        }
    }
    check(
        &mut out,
        "prompt_embed_dim",
        dim("image_encoder.neck.conv1.weight", 0),
        config.prompt_embed_dim,
        false,
    );
    let projection = dim("prompt_encoder.embedding_proj.weight", 1);
    if projection != config.prompt_embedding_dim {
        let say = |d: Option<usize>| match d {
            Some(d) => format!("an embedding-prompt projection of width {d}"),
            None => "no embedding-prompt projection".to_string(),
        };
        out.push(format!(
            "checkpoint has {} but the config has {} (prompt_embedding_dim)",
            say(projection),
            say(config.prompt_embedding_dim)
        ));
    }
    check(
        &mut out,
        "mask_in_chans",
        dim("prompt_encoder.mask_downscaling.conv2.weight", 0),
        config.mask_in_chans,
        false,
    );
    let decoder_depth = shapes
        .keys()
        .filter_map(|k| {
            k.strip_prefix("mask_decoder.transformer.layers.")?
                .split('.')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .max()
        .map(|m| m + 1);
    check(
        &mut out,
        "decoder_depth",
        decoder_depth,
        config.decoder_depth,
        false,
    );
    check(
        &mut out,
        "decoder_mlp_dim",
        dim("mask_decoder.transformer.layers.0.mlp.lin1.weight", 0),
        config.decoder_mlp_dim,
        false,
    );
    check(
        &mut out,
        "num_multimask_outputs",
        dim("mask_decoder.mask_tokens.weight", 0).map(|n| n.saturating_sub(1)),
        config.num_multimask_outputs,
        false,
    );
    let iou_depth = shapes
        .keys()
        .filter(|k| {
            k.starts_with("mask_decoder.iou_prediction_head.layers.") && k.ends_with(".weight")
        })
        .count();
    check(
        &mut out,
        "iou_head_depth",
        (iou_depth > 0).then_some(iou_depth),
        config.iou_head_depth,
        false,
    );
    if config.iou_head_depth > 1 {
        check(
            &mut out,
            "iou_head_hidden_dim",
            dim("mask_decoder.iou_prediction_head.layers.0.weight", 0),
            config.iou_head_hidden_dim,
            false,
        );
    }
    out
}

/// The input size a checkpoint was trained at: its position-embedding grid times the config's
/// patch size (`None` when the file has no position embedding).
fn checkpoint_image_size(path: &Path, config: &SamConfig) -> Result<Option<usize>> {
    let shapes = checkpoint_shapes(path)?;
    Ok(shapes
        .get("image_encoder.pos_embed")
        .and_then(|s| s.get(1).copied())
        .map(|g| g * config.patch_size))
}

/// `our.name.` → `^our\.name\.` (a literal prefix as a regex).
fn reverse_pattern(to: &str) -> String {
    format!("^{}", to.replace('.', r"\."))
}

/// `^ref\.name\.0\.` → `ref.name.0.` (a [`KEY_REMAPS`] pattern as the literal it matches).
fn unescape(from: &str) -> String {
    from.trim_start_matches('^').replace(r"\.", ".")
}

fn list(items: &[String]) -> String {
    const SHOWN: usize = 12;
    let mut s = items
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > SHOWN {
        s.push_str(&format!(", … ({} in all)", items.len()));
    }
    s
}

/// Turns a non-strict [`ApplyResult`] into the strict verdict.
pub(crate) fn strict(path: &Path, result: ApplyResult) -> Result<()> {
    let mut parts = Vec::new();
    if !result.missing.is_empty() {
        let missing: Vec<String> = result.missing.iter().map(|(k, _)| k.clone()).collect();
        parts.push(format!("missing tensors: {}", list(&missing)));
    }
    if !result.unused.is_empty() {
        parts.push(format!("unexpected tensors: {}", list(&result.unused)));
    }
    if !result.errors.is_empty() {
        let errors: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
        parts.push(list(&errors));
    }
    if parts.is_empty() {
        Ok(())
    } else {
        Err(SamError::Mismatch {
            path: path.to_path_buf(),
            details: parts.join("; "),
        })
    }
}

impl Sam {
    /// Builds a model for `config` and loads a checkpoint into it (format from the extension).
    ///
    /// A checkpoint trained at another input size (its position embedding has another grid)
    /// loads into a model of `config.image_size` by resampling its position tables
    /// ([`Sam::resampled`]); every other dimension must match.
    pub fn load(path: impl AsRef<Path>, config: &SamConfig, device: &Device) -> Result<Self> {
        Self::load_file_at(path.as_ref(), config, Some(config.image_size), device)
    }

    /// Builds the model of a Hugging Face `SamModel` folder, or of a checkpoint file with
    /// `config`, at `image_size` (the checkpoint's own when `None`).
    pub fn load_sized(
        path: impl AsRef<Path>,
        config: &SamConfig,
        image_size: Option<usize>,
        device: &Device,
    ) -> Result<Self> {
        let path = path.as_ref();
        if !crate::hf::is_hf_folder(path) {
            return Self::load_file_at(path, config, image_size, device);
        }
        let model = Sam::load_hf(path, device)?;
        match image_size {
            Some(s) => model.resampled(s),
            None => Ok(model),
        }
    }

    /// Loads a checkpoint file at the input size it was trained at (read from its position
    /// embedding; `config`'s otherwise), then resamples to `target` when given. The file's
    /// shapes are read once for the size; the strict load reads them again for its checks.
    fn load_file_at(
        path: &Path,
        config: &SamConfig,
        target: Option<usize>,
        device: &Device,
    ) -> Result<Self> {
        let mut trained = config.clone();
        if let Some(size) = checkpoint_image_size(path, config)? {
            trained.image_size = size;
        }
        let mut model = trained.init(device)?;
        model.load_weights(path)?;
        match target {
            Some(s) => model.resampled(s),
            None => Ok(model),
        }
    }

    /// Saves the weights as safetensors under the reference's key names and layouts (linear
    /// weights `[out, in]`, norms `weight`/`bias`), the twin of an official `.pth` file.
    pub fn save_official_safetensors(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let store = SafetensorsStore::from_file(path)
            .with_to_adapter(BurnToPyTorchAdapter)
            .overwrite(true)
            .metadata("format", "pt");
        let mut store = KEY_REMAPS.iter().fold(store, |s, (from, to)| {
            s.with_key_remapping(reverse_pattern(to), unescape(from))
        });
        self.save_into(&mut store).map_err(|e| SamError::Save {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// Loads a checkpoint into this model, strictly.
    ///
    /// Partial checks (missing, unexpected, mis-shaped tensors) are collected and reported
    /// together. On error the model may hold some of the file's tensors: discard it.
    pub fn load_weights(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        check_readable(path)?;
        match CheckpointFormat::from_path(path)? {
            CheckpointFormat::Pytorch => self.load_checked(path, pytorch_store(path), true),
            CheckpointFormat::Safetensors => self.load_checked(path, safetensors_store(path), true),
            // Burnpack files use our own names and layouts: the strict check below covers them.
            CheckpointFormat::Burnpack => self.load_checked(
                path,
                BurnpackStore::from_file(path)
                    .allow_partial(true)
                    .validate(false),
                false,
            ),
        }
    }

    /// Compares the file's shapes with the config (official layouts), then applies the store
    /// strictly. One store serves both: the file is parsed once.
    fn load_checked<S: ModuleStore>(
        &mut self,
        path: &Path,
        mut store: S,
        check_variant: bool,
    ) -> Result<()> {
        if check_variant {
            let mismatches = variant_mismatches(self.config(), &store_shapes(path, &mut store)?);
            if !mismatches.is_empty() {
                return Err(SamError::VariantMismatch {
                    path: path.to_path_buf(),
                    reason: mismatches.join("; "),
                });
            }
        }
        let result = self
            .load_from(&mut store)
            .map_err(|e| read_error(path, e))?;
        strict(path, result)
    }

    /// Saves the weights in Burn's native burnpack format (`.bpk` is added when missing).
    /// Another extension is an error, since [`Sam::load`] reads a file by its extension: use
    /// [`Sam::save_official_safetensors`] for `.safetensors`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<PathBuf> {
        let mut path = path.as_ref().to_path_buf();
        match path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
        {
            None => {
                path.set_extension("bpk");
            }
            Some(e) if e == "bpk" => {}
            Some(e) => {
                return Err(SamError::Save {
                    path,
                    reason: format!(
                        "`save` writes burnpack files (.bpk), not .{e}; use `save_official_safetensors` for the official layout"
                    ),
                });
            }
        }
        let mut store = BurnpackStore::from_file(&path)
            .overwrite(true)
            .metadata("sam_config", self.config().to_json());
        self.save_into(&mut store).map_err(|e| SamError::Save {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Ok(path)
    }
}
