//! The `train` command: trains SAM on an SA-1B-format folder (optionally generating the
//! synthetic shapes dataset first), with a progress bar, metrics files, checkpoints and resume.
//! `examples/train.rs` only calls [`main`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use sam_data::dataset::{Sa1bDataset, SyntheticConfig, write_synthetic_dataset};
use sam_train::{EvalConfig, TrainConfig, Trainer};

use crate::backend;
use crate::cli::{CliError, number};

type Result<T> = std::result::Result<T, CliError>;

/// The usage text.
pub const USAGE: &str = "\
usage: train --data DIR [--val DIR] [--out DIR] [--preset seed|paper|demo | --config FILE.json]
             [--checkpoint FILE] [--resume] [--steps N] [--freeze-image-encoder]
             [--freeze-prompt-encoder] [--lora RANK] [--precision f32|bf16|f16] [--synthetic N]
             [--device NAME] [--no-progress]

--data DIR      an SA-1B-format folder (sa_<id>.jpg + sa_<id>.json)
--val DIR       a validation folder: mIoU (1 click) every eval_every steps and at the end
--out DIR       run folder: metrics.csv, metrics.jsonl, curves.png, checkpoints/ (default train_out)
--preset        seed (default: the seed's ViT-L recipe), paper (its variant), demo (a small model
                that learns the synthetic shapes on a CPU in minutes)
--config        a TrainConfig JSON (missing fields: the seed recipe)
--checkpoint    initial weights to fine-tune (official .pth, .safetensors, .bpk or a Hugging Face
                SamModel folder; resampled when trained at another input size)
--resume        continue the run in --out from its latest checkpoint
--lora RANK     LoRA fine-tuning: rank-RANK adapters (alpha = RANK) on the encoder's and the
                decoder's attention projections train, the rest stays frozen
--precision P   compute type of the passes: f32 (default), bf16 or f16 mixed precision (f32
                master weights, optimizer state, loss and norms; bf16 needs CUDA)
--synthetic N   first write N synthetic shape images into --data (and N/5 into --val if given)";

/// Parsed arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainArgs {
    /// Training folder.
    pub data: PathBuf,
    /// Validation folder.
    pub val: Option<PathBuf>,
    /// Run folder.
    pub out: PathBuf,
    /// The configuration.
    pub config: TrainConfig,
    /// Weights to start from.
    pub checkpoint: Option<PathBuf>,
    /// Continue the run in `out`.
    pub resume: bool,
    /// Generate this many synthetic images first.
    pub synthetic: Option<usize>,
    /// Device name.
    pub device: String,
    /// Show a progress bar.
    pub progress: bool,
}

impl TrainArgs {
    /// Parses arguments (without the program name).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self> {
        let (mut data, mut val, mut out) = (None, None, PathBuf::from("train_out"));
        let (mut preset, mut config_file, mut steps) = (None, None, None);
        let (mut checkpoint, mut resume, mut synthetic) = (None, false, None);
        let (mut freeze_image, mut freeze_prompt) = (false, false);
        let mut lora_rank: Option<usize> = None;
        let mut precision = None;
        let (mut device, mut progress) = ("flex".to_string(), true);
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            let mut value = || {
                it.next()
                    .ok_or_else(|| CliError::Usage(format!("{flag} needs a value")))
            };
            match flag.as_str() {
                "--data" => data = Some(PathBuf::from(value()?)),
                "--val" => val = Some(PathBuf::from(value()?)),
                "--out" => out = PathBuf::from(value()?),
                "--preset" => preset = Some(value()?),
                "--config" => config_file = Some(PathBuf::from(value()?)),
                "--checkpoint" => checkpoint = Some(PathBuf::from(value()?)),
                "--steps" => steps = Some(number::<usize>(&flag, &value()?)?),
                "--synthetic" => synthetic = Some(number::<usize>(&flag, &value()?)?),
                "--device" => device = value()?,
                "--resume" => resume = true,
                "--freeze-image-encoder" => freeze_image = true,
                "--lora" => lora_rank = Some(number(&flag, &value()?)?),
                "--freeze-prompt-encoder" => freeze_prompt = true,
                "--precision" => {
                    let v = value()?;
                    precision = Some(
                        v.parse::<sam_train::Precision>()
                            .map_err(|e| CliError::Usage(format!("--precision: {e}")))?,
                    );
                }
                "--no-progress" => progress = false,
                "-h" | "--help" => return Err(CliError::Usage(USAGE.into())),
                other => {
                    return Err(CliError::Usage(format!(
                        "unknown argument {other:?}\n{USAGE}"
                    )));
                }
            }
        }
        let data = data.ok_or_else(|| CliError::Usage(format!("--data is required\n{USAGE}")))?;
        if preset.is_some() && config_file.is_some() {
            return Err(CliError::Usage(
                "give --preset or --config, not both".into(),
            ));
        }
        if resume && (checkpoint.is_some() || preset.is_some() || config_file.is_some()) {
            return Err(CliError::Usage(
                "--resume continues with the run's own config and weights: drop --checkpoint, \
                 --preset and --config"
                    .into(),
            ));
        }
        let mut config = match (preset.as_deref(), &config_file) {
            (_, Some(path)) => TrainConfig::load(path)?,
            (None | Some("seed"), None) => TrainConfig::default(),
            (Some("paper"), None) => TrainConfig::sam_paper(),
            (Some("demo"), None) => TrainConfig::demo(),
            (Some(other), None) => {
                return Err(CliError::Usage(format!(
                    "--preset {other:?}: expected seed, paper or demo"
                )));
            }
        };
        if let Some(n) = steps {
            config.steps = n;
        }
        config.freeze_image_encoder |= freeze_image;
        config.freeze_prompt_encoder |= freeze_prompt;
        if let Some(p) = precision {
            config.precision = p;
        }
        if let Some(rank) = lora_rank {
            config.lora = Some(sam_model::LoraConfig {
                rank,
                alpha: rank as f64,
                ..sam_model::LoraConfig::default()
            });
        }
        config.validate()?;
        Ok(Self {
            data,
            val,
            out,
            config,
            checkpoint,
            resume,
            synthetic,
            device,
            progress,
        })
    }
}

fn open(dir: &Path) -> Result<Arc<Sa1bDataset>> {
    Ok(Arc::new(Sa1bDataset::open(dir)?))
}

/// Runs the command.
pub fn run(args: TrainArgs) -> Result<PathBuf> {
    let device = backend::device(&args.device)?;
    if let Some(n) = args.synthetic {
        let synth = SyntheticConfig {
            num_images: n,
            ..SyntheticConfig::default()
        };
        write_synthetic_dataset(&args.data, &synth)?;
        if let Some(val) = &args.val {
            let held_out = SyntheticConfig {
                num_images: (n / 5).max(1),
                seed: synth.seed + 1,
                first_id: 1_000_000,
                ..synth
            };
            write_synthetic_dataset(val, &held_out)?;
        }
    }
    let train_set = open(&args.data)?;
    let mut trainer = if args.resume {
        Trainer::resume(train_set, &args.out, &device)?
    } else {
        Trainer::new(
            args.config.clone(),
            train_set,
            &args.out,
            &device,
            args.checkpoint.as_deref(),
        )?
    };
    if let Some(val) = &args.val {
        let eval = EvalConfig {
            clicks: 1,
            boxes: false,
            ..EvalConfig::default()
        };
        trainer = trainer.with_validation(open(val)?, eval);
    }
    let total = trainer.config().steps as u64;
    let bar = if args.progress {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_position(trainer.step_count() as u64);
    let last = trainer.run(|m, report| {
        bar.set_position(m.step as u64 + 1);
        bar.set_message(format!(
            "loss {:.4} (focal {:.4} dice {:.4} iou {:.4}) mIoU {:.3}→{:.3} lr {:.2e} {:.1} img/s{}",
            m.loss,
            m.focal,
            m.dice,
            m.iou_loss,
            m.miou_first,
            m.miou_last,
            m.lr,
            m.images as f64 / m.seconds.max(1e-9),
            if m.skipped_nonfinite { " SKIPPED (non-finite)" } else { "" }
        ));
        if let Some(r) = report {
            bar.println(format!(
                "step {}: validation mIoU (1 click) {:.4} on {} objects",
                m.step + 1,
                r.miou_clicks.first().copied().unwrap_or(0.0),
                r.objects
            ));
        }
    })?;
    bar.finish();
    eprintln!(
        "done: {} steps; checkpoint {}; metrics and curves.png in {}{}",
        trainer.step_count(),
        last.display(),
        args.out.display(),
        match trainer.skipped_items() {
            0 => String::new(),
            n => format!("; {n} unreadable items skipped"),
        }
    );
    Ok(last)
}

/// `train` with command-line arguments; prints errors and returns the exit code.
pub fn main(args: impl IntoIterator<Item = String>) -> std::process::ExitCode {
    crate::cli::exit_code(TrainArgs::parse(args).and_then(run))
}
