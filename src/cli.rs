//! Pieces shared by the command-line tools (`segment`, `automatic_masks`).

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use sam_model::{Sam, SamConfig, is_hf_folder};

use crate::backend;

/// Everything that can stop a command, each naming what is at fault.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad command-line arguments.
    #[error("{0}")]
    Usage(String),
    /// `--help` was asked for: the usage text, printed to stdout with a success exit.
    #[error("{0}")]
    Help(String),
    /// Model or checkpoint problem.
    #[error(transparent)]
    Model(#[from] sam_model::SamError),
    /// Image or array file problem.
    #[error(transparent)]
    Data(#[from] sam_data::DataError),
    /// Prompt problem.
    #[error(transparent)]
    Predictor(#[from] sam_predictor::PredictorError),
    /// Automatic mask generation problem.
    #[error(transparent)]
    Amg(#[from] sam_amg::AmgError),
    /// Training or evaluation problem.
    #[error(transparent)]
    Train(#[from] sam_train::TrainError),
    /// Device problem.
    #[error(transparent)]
    Backend(#[from] backend::BackendError),
    /// CLIP model, tokenizer, image or input problem.
    #[error(transparent)]
    Clip(#[from] sam_clip::ClipError),
    /// A process could not join a multi-process job; `who` names its rank when known.
    #[error("{who}{source}")]
    Join {
        /// `rank R/W: `, or empty.
        who: String,
        /// What went wrong.
        source: sam_dist::DistError,
    },
    /// An output could not be written.
    #[error("cannot write {path}: {reason}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Parses a number given to `flag`, naming both on failure.
pub fn number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, CliError> {
    text.parse::<T>()
        .map_err(|_| CliError::Usage(format!("{flag} {text:?}: not a valid number")))
}

/// Where the bundled demo files live.
pub fn bundled(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The config for a checkpoint: `--config`, `--model-type`, or the preset named in the file name
/// (`sam_vit_b_01ec64.pth` → vit_b).
pub fn resolve_config(
    checkpoint: &Path,
    model_type: Option<&str>,
    config: Option<&Path>,
) -> Result<SamConfig, CliError> {
    if let Some(path) = config {
        return Ok(SamConfig::load(path)?);
    }
    if let Some(name) = model_type {
        return Ok(SamConfig::from_model_type(name)?);
    }
    let file = checkpoint
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or("");
    for name in ["vit_b", "vit_l", "vit_h"] {
        if file.contains(name) {
            return SamConfig::from_model_type(name).map_err(Into::into);
        }
    }
    Err(CliError::Usage(format!(
        "cannot tell the model size of {}: give --model-type vit_b|vit_l|vit_h or --config FILE",
        checkpoint.display()
    )))
}

/// The checkpoint and config to use: the given ones, or the bundled demo model (a small SAM
/// trained on synthetic shapes by `examples/train --preset demo`) when no checkpoint is given
/// (`true` in the result).
pub fn checkpoint_and_config(
    checkpoint: Option<&Path>,
    model_type: Option<&str>,
    config: Option<&Path>,
) -> Result<(PathBuf, SamConfig, bool), CliError> {
    match checkpoint {
        Some(path) => Ok((
            path.to_path_buf(),
            resolve_config(path, model_type, config)?,
            false,
        )),
        None => {
            let dir = bundled("assets/demo_model");
            Ok((
                dir.join("model.bpk"),
                SamConfig::load(dir.join("config.json"))?,
                true,
            ))
        }
    }
}

/// The arguments every command shares: which model, which image, which device.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelArgs {
    /// Checkpoint file or Hugging Face `SamModel` folder; `None` runs the bundled demo model.
    pub checkpoint: Option<PathBuf>,
    /// Input side to run the model at (its position tables resampled); the checkpoint's own
    /// when `None`.
    pub image_size: Option<usize>,
    /// Preset name.
    pub model_type: Option<String>,
    /// Config JSON (alternative to `model_type`).
    pub config: Option<PathBuf>,
    /// Input image; `None` uses the bundled one.
    pub image: Option<PathBuf>,
    /// Device name.
    pub device: String,
    /// Compute type: bf16 / f16 cast the loaded model (`Sam::cast_float`); `None` keeps f32.
    pub dtype: Option<burn::tensor::FloatDType>,
}

impl Default for ModelArgs {
    fn default() -> Self {
        Self {
            checkpoint: None,
            image_size: None,
            model_type: None,
            config: None,
            image: None,
            device: "flex".into(),
            dtype: None,
        }
    }
}

impl ModelArgs {
    /// Takes `flag` if it is one of the shared ones (reading its value); `false` otherwise.
    pub fn take(
        &mut self,
        flag: &str,
        value: impl FnOnce() -> Result<String, CliError>,
    ) -> Result<bool, CliError> {
        match flag {
            "--checkpoint" => self.checkpoint = Some(value()?.into()),
            "--model-type" => self.model_type = Some(value()?),
            "--image-size" => self.image_size = Some(number(flag, &value()?)?),
            "--config" => self.config = Some(value()?.into()),
            "--image" => self.image = Some(value()?.into()),
            "--device" => self.device = value()?,
            "--dtype" => {
                self.dtype = value()?
                    .parse::<sam_train::Precision>()
                    .map_err(|e| CliError::Usage(format!("--dtype: {e}")))?
                    .half_dtype()
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Checks the combination of flags.
    pub fn validate(&self) -> Result<(), CliError> {
        if self.model_type.is_some() && self.config.is_some() {
            return Err(CliError::Usage(
                "give --model-type or --config, not both".into(),
            ));
        }
        if self.checkpoint.is_none() && (self.model_type.is_some() || self.config.is_some()) {
            return Err(CliError::Usage(
                "--model-type/--config need a --checkpoint".into(),
            ));
        }
        Ok(())
    }

    /// The model: a Hugging Face folder with its own config, a checkpoint file with the config
    /// resolved as [`resolve_config`] does, or the bundled demo model (`true` in the result);
    /// at `--image-size` when given.
    pub fn load_model(&self, device: &Device) -> Result<(Sam, bool), CliError> {
        let (sam, demo) = self.load_f32_model(device)?;
        Ok(match self.dtype {
            Some(dtype) => (sam.cast_float(dtype)?, demo),
            None => (sam, demo),
        })
    }

    fn load_f32_model(&self, device: &Device) -> Result<(Sam, bool), CliError> {
        if let Some(path) = &self.checkpoint
            && path.is_dir()
        {
            if !is_hf_folder(path) {
                return Err(CliError::Usage(format!(
                    "{} is a folder without config.json; --checkpoint takes a checkpoint file or \
                     a Hugging Face SamModel folder",
                    path.display()
                )));
            }
            if self.model_type.is_some() || self.config.is_some() {
                return Err(CliError::Usage(
                    "a Hugging Face folder carries its own config.json: drop --model-type/--config"
                        .into(),
                ));
            }
            let sam = Sam::load_hf(path, device)?;
            return Ok((
                match self.image_size {
                    Some(size) => sam.resampled(size)?,
                    None => sam,
                },
                false,
            ));
        }
        let (checkpoint, config, demo) = self.checkpoint_and_config()?;
        Ok((
            Sam::load_sized(&checkpoint, &config, self.image_size, device)?,
            demo,
        ))
    }

    /// The image to segment: `--image`, or the bundled scene.
    pub fn image_path(&self) -> PathBuf {
        self.image
            .clone()
            .unwrap_or_else(|| bundled("assets/scene.png"))
    }

    /// The checkpoint and config (see [`checkpoint_and_config`]).
    pub fn checkpoint_and_config(&self) -> Result<(PathBuf, SamConfig, bool), CliError> {
        checkpoint_and_config(
            self.checkpoint.as_deref(),
            self.model_type.as_deref(),
            self.config.as_deref(),
        )
    }
}

/// Writes `text` to `path`, naming the file on failure.
pub fn write_file(path: &Path, text: &str) -> Result<(), CliError> {
    std::fs::write(path, text).map_err(|e| CliError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// The exit of a command: success, or the error on one line and exit code 1.
pub fn exit_code<T>(result: Result<T, CliError>) -> std::process::ExitCode {
    match result {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(CliError::Help(usage)) => {
            println!("{usage}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Printed when a command runs without `--checkpoint`.
pub fn demo_notice(example: &str, prompt_flags: &str) {
    eprintln!(
        "note: no --checkpoint given, so this runs the bundled demo model: a small SAM trained \
         in minutes on synthetic shapes (docs/training.md), not a model of real photos.\n      \
         For real photos, download an official checkpoint, e.g. sam_vit_b_01ec64.pth, and run:\n      \
         cargo run --release --example {example} -- --checkpoint sam_vit_b_01ec64.pth \
         --model-type vit_b --image assets/scene.png{prompt_flags}"
    );
}
