//! The `bench` example: timed jobs on one backend, one JSON line per job, for
//! `tools/reference/compare.py` to set beside the official PyTorch model's figures.
//!
//! Jobs: `encoder` (image → embedding), `decode:N` (N single-point prompts against one
//! embedding, multimask), `amg:N` (the automatic mask generator with an N×N point grid on
//! `--image`, embedding included, both thresholds 0 so that every mask is post-processed),
//! `train` (one optimizer step of the training loop: encoder, decoder for `--objects` box
//! prompts, SAM's loss, backward, AdamW), and `check` (not timed: errors against the official
//! model's outputs on the committed tiny fixtures, see [`crate::bench_check`], and its
//! parameter gradients against PyTorch autograd, see [`crate::bench_gradients`]; one half
//! alone: `check:outputs`, `check:gradients`), and `attention:D` (Burn's fused attention alone
//! at the shape of the encoder's global blocks with D-wide queries and keys: their rel-pos
//! bias is folded into 256-wide ones, see `sam_model`'s `fold_rel_pos`). Weights are
//! random (timing does not depend on them) unless `--checkpoint` names a file; `--dtype
//! bf16|f16` runs the model cast to that type (training: mixed precision with f32 master
//! weights).

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use burn::tensor::module::attention;
use burn::tensor::{Device, Distribution, Int, Tensor};
use sam_amg::{AmgConfig, SamAutomaticMaskGenerator};
use sam_model::{PointPrompt, Prompts, Sam, SamConfig};
use sam_train::{Precision, TrainConfig, Trainer};
use serde::Serialize;

use crate::cli::CliError;

type Result<T> = std::result::Result<T, CliError>;

/// The usage text.
pub const USAGE: &str = "\
usage: bench [--device NAME] [--model vit_b|vit_l|vit_h|FILE.json] [--image-size N]
             [--dtype f32|bf16|f16] [--jobs encoder,decode:1,decode:64,train] [--warmup N]
             [--iters N] [--objects N] [--checkpoint FILE] [--image FILE]
             (jobs also: amg:N, attention:D, check = check:outputs + check:gradients)

Prints one JSON line per job: milliseconds per run (mean, median, min over --iters runs after
--warmup untimed ones), runs per second, and memory (the device pool's reserved bytes after the
job, or the process's peak resident set on the CPU).";

/// A timed job.
#[derive(Debug, Clone, PartialEq)]
pub enum Job {
    /// Image embedding of one preprocessed image.
    Encoder,
    /// This many single-point prompts decoded against one embedding.
    Decode(usize),
    /// The automatic mask generator with this many points per side.
    Amg(usize),
    /// One optimizer step of the training loop.
    Train,
    /// Numerics against the fixtures' reference outputs and PyTorch autograd's gradients.
    Check(Checks),
    /// Burn's fused attention at a global block's shape, queries and keys this wide.
    Attention(usize),
}

/// Which halves of the `check` job run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Checks {
    /// `check`: the outputs, then the gradients.
    Both,
    /// `check:outputs`: the forward outputs of the two fixture models.
    Outputs,
    /// `check:gradients`: the parameter gradients of the training fixture.
    Gradients,
}

impl Checks {
    fn outputs(self) -> bool {
        self != Checks::Gradients
    }

    fn gradients(self) -> bool {
        self != Checks::Outputs
    }
}

impl std::str::FromStr for Job {
    type Err = CliError;
    fn from_str(s: &str) -> Result<Self> {
        match s.split_once(':') {
            None if s == "encoder" => Ok(Job::Encoder),
            None if s == "train" => Ok(Job::Train),
            None if s == "check" => Ok(Job::Check(Checks::Both)),
            Some(("check", "outputs")) => Ok(Job::Check(Checks::Outputs)),
            Some(("check", "gradients")) => Ok(Job::Check(Checks::Gradients)),
            Some((kind @ ("decode" | "amg" | "attention"), n)) => n
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .map(match kind {
                    "amg" => Job::Amg,
                    "decode" => Job::Decode,
                    _ => Job::Attention,
                })
                .ok_or_else(|| CliError::Usage(format!("job {s:?}: {kind}:N needs N ≥ 1"))),
            _ => Err(CliError::Usage(format!(
                "unknown job {s:?} (expected encoder, decode:N, amg:N, attention:D, train, check, check:outputs or check:gradients)"
            ))),
        }
    }
}

impl Job {
    fn name(&self) -> String {
        match self {
            Job::Encoder => "encoder".into(),
            Job::Decode(n) => format!("decode:{n}"),
            Job::Amg(n) => format!("amg:{n}"),
            Job::Train => "train".into(),
            Job::Check(Checks::Both) => "check".into(),
            Job::Check(Checks::Outputs) => "check:outputs".into(),
            Job::Check(Checks::Gradients) => "check:gradients".into(),
            Job::Attention(d) => format!("attention:{d}"),
        }
    }
}

/// Parsed arguments.
#[derive(Debug, Clone)]
pub struct BenchArgs {
    /// Device name.
    pub device: String,
    /// Preset name or config file.
    pub model: String,
    /// Input side (the preset's own when absent).
    pub image_size: Option<usize>,
    /// Compute type.
    pub dtype: Precision,
    /// Jobs in order.
    pub jobs: Vec<Job>,
    /// Untimed runs first (kernel compilation, autotuning).
    pub warmup: usize,
    /// Timed runs.
    pub iters: usize,
    /// Objects (box prompts) per image in the training step.
    pub objects: usize,
    /// Weights of the inference jobs (random when absent).
    pub checkpoint: Option<PathBuf>,
    /// The `amg` job's image (the bundled `assets/scene.png` when absent).
    pub image: Option<PathBuf>,
}

impl BenchArgs {
    /// Parses arguments (without the program name).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self> {
        let mut out = Self {
            device: "flex".into(),
            model: "vit_b".into(),
            image_size: None,
            dtype: Precision::F32,
            jobs: vec![Job::Encoder, Job::Decode(1), Job::Decode(64)],
            warmup: 2,
            iters: 5,
            objects: 16,
            checkpoint: None,
            image: None,
        };
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            let mut value = || {
                it.next()
                    .ok_or_else(|| CliError::Usage(format!("{flag} needs a value")))
            };
            match flag.as_str() {
                "--device" => out.device = value()?,
                "--model" => out.model = value()?,
                "--image-size" => out.image_size = Some(crate::cli::number(&flag, &value()?)?),
                "--dtype" => {
                    out.dtype = value()?
                        .parse()
                        .map_err(|e| CliError::Usage(format!("--dtype: {e}")))?
                }
                "--jobs" => {
                    out.jobs = value()?
                        .split(',')
                        .map(|j| j.trim().parse())
                        .collect::<Result<_>>()?
                }
                "--warmup" => out.warmup = crate::cli::number(&flag, &value()?)?,
                "--iters" => out.iters = crate::cli::number(&flag, &value()?)?,
                "--objects" => out.objects = crate::cli::number(&flag, &value()?)?,
                "--checkpoint" => out.checkpoint = Some(value()?.into()),
                "--image" => out.image = Some(value()?.into()),
                "-h" | "--help" => return Err(CliError::Help(USAGE.into())),
                other => {
                    return Err(CliError::Usage(format!(
                        "unknown argument {other:?}\n{USAGE}"
                    )));
                }
            }
        }
        if out.iters == 0 || out.objects == 0 {
            return Err(CliError::Usage("--iters and --objects must be ≥ 1".into()));
        }
        Ok(out)
    }
}

/// One job's figures.
#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    /// `encoder`, `decode:N`, `train`.
    pub job: String,
    /// Device name as given.
    pub device: String,
    /// Preset or config file.
    pub model: String,
    /// Input side.
    pub image_size: usize,
    /// Compute type.
    pub dtype: String,
    /// Milliseconds per run.
    pub mean_ms: f64,
    /// Median milliseconds.
    pub median_ms: f64,
    /// Fastest run.
    pub min_ms: f64,
    /// Runs per second (mean); for `decode:N`, multiply by N for prompts per second.
    pub per_second: f64,
    /// Untimed runs, and the time they took in all (compilation and autotuning show here).
    pub warmup: usize,
    /// Seconds the warm-up runs took.
    pub warmup_s: f64,
    /// Timed runs.
    pub iters: usize,
    /// Device pool bytes reserved after the job (GPU backends), else `None`.
    pub device_reserved_bytes: Option<u64>,
    /// Peak resident set during the job (Linux; the process's so far where the peak cannot be
    /// reset, see [`crate::memory::reset_peak_rss`]), bytes.
    pub peak_rss_bytes: Option<u64>,
    /// Masks the last run of an `amg` job returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub masks: Option<usize>,
}

fn model_config(args: &BenchArgs) -> Result<SamConfig> {
    model_config_at(args, args.image_size)
}

/// The model's config with the input side `image_size` (the preset's when `None`).
fn model_config_at(args: &BenchArgs, image_size: Option<usize>) -> Result<SamConfig> {
    let mut config = match SamConfig::from_model_type(&args.model) {
        Ok(c) => c,
        Err(_) if args.model.ends_with(".json") => SamConfig::load(&args.model)?,
        Err(e) => return Err(e.into()),
    };
    if let Some(s) = image_size {
        config.image_size = s;
    }
    Ok(config)
}

fn time<F: FnMut() -> Result<()>>(
    args: &BenchArgs,
    device: &Device,
    mut run: F,
) -> Result<(Vec<f64>, f64)> {
    // The peak is the runs' own (with what the setup left resident), as compare.py's PyTorch side.
    crate::memory::reset_peak_rss();
    let start = Instant::now();
    for i in 1..=args.warmup {
        run()?;
        sync(device)?;
        progress(format_args!("warm-up run {i}/{} done", args.warmup));
    }
    let warmup_s = start.elapsed().as_secs_f64();
    let mut ms = Vec::with_capacity(args.iters);
    for _ in 0..args.iters {
        let t = Instant::now();
        run()?;
        sync(device)?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    progress(format_args!("{} timed runs done", args.iters));
    Ok((ms, warmup_s))
}

/// Waits for the device's queued work.
fn sync(device: &Device) -> Result<()> {
    device
        .sync()
        .map_err(|e| CliError::Usage(format!("device error: {e:?}")))
}

/// One timestamped line on stderr (stdout carries only the JSON reports). The device machine
/// gives a command a fixed time: when a job is killed there, these lines say whether it was
/// stuck in its first run (kernel compilation and autotune), in a later one, or in the setup.
pub(crate) fn progress(what: impl std::fmt::Display) {
    static START: OnceLock<Instant> = OnceLock::new();
    let t = START.get_or_init(Instant::now).elapsed().as_secs_f64();
    eprintln!("[bench {t:8.2} s] {what}");
}

/// What a job reports.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Report {
    /// A timed job.
    Timing(JobReport),
    /// The numerics check of one fixture model.
    Check(crate::bench_check::CheckReport),
    /// The gradients of the training fixture against PyTorch autograd.
    Gradients(crate::bench_gradients::GradientReport),
}

/// Runs the jobs, calling `report` after each.
pub fn run(args: &BenchArgs, mut report: impl FnMut(&Report)) -> Result<()> {
    progress(format_args!("device {}", args.device));
    let device = crate::backend::device(&args.device)?;
    let config = model_config(args)?;
    let s = config.image_size;
    let dtype_name = format!("{:?}", args.dtype).to_lowercase();
    let mut inference: Option<Sam> = None;
    for job in &args.jobs {
        progress(format_args!("job {}", job.name()));
        device.memory_cleanup();
        let mut masks = None;
        let (ms, warmup_s) = match job {
            Job::Check(checks) => {
                let dtype = args.dtype.half_dtype();
                if checks.outputs() {
                    for r in crate::bench_check::check(&device, &args.device, dtype)? {
                        report(&Report::Check(r));
                    }
                }
                if checks.gradients() {
                    report(&Report::Gradients(crate::bench_gradients::check_gradients(
                        &device,
                        &args.device,
                        dtype,
                    )?));
                }
                continue;
            }
            Job::Encoder => {
                let sam = inference_model(&mut inference, args, &config, &device)?;
                let x = random_input(sam, &device)?;
                time(args, &device, || {
                    let _ = sam.image_embeddings(x.clone())?;
                    Ok(())
                })?
            }
            Job::Decode(n) => {
                let sam = inference_model(&mut inference, args, &config, &device)?;
                decode_job(args, sam, *n, &device)?
            }
            Job::Amg(n) => {
                let sam = inference_model(&mut inference, args, &config, &device)?;
                let (ms, warmup_s, count) = amg_job(args, sam, *n, &device)?;
                masks = Some(count);
                (ms, warmup_s)
            }
            Job::Attention(d) => {
                inference = None;
                attention_job(args, &config, *d, &device)?
            }
            Job::Train => {
                // The training step builds its own model; the inference one would only hold
                // device memory.
                inference = None;
                train_job(args, &config, &device)?
            }
        };
        let mut sorted = ms.clone();
        sorted.sort_by(f64::total_cmp);
        let mean = ms.iter().sum::<f64>() / ms.len() as f64;
        report(&Report::Timing(JobReport {
            job: job.name(),
            device: args.device.clone(),
            model: args.model.clone(),
            image_size: s,
            dtype: dtype_name.clone(),
            mean_ms: mean,
            median_ms: sorted[sorted.len() / 2],
            min_ms: sorted[0],
            per_second: 1e3 / mean,
            warmup: args.warmup,
            warmup_s,
            iters: args.iters,
            device_reserved_bytes: device.memory_pool_usage().map(|u| u.bytes_reserved),
            peak_rss_bytes: crate::memory::peak_rss_bytes(),
            masks,
        }));
    }
    Ok(())
}

/// The model of the inference jobs, built (and cast to the bench's dtype) on first use.
fn inference_model<'a>(
    slot: &'a mut Option<Sam>,
    args: &BenchArgs,
    config: &SamConfig,
    device: &Device,
) -> Result<&'a Sam> {
    let sam = match slot.take() {
        Some(sam) => sam,
        None => {
            progress("building the model");
            let sam = match &args.checkpoint {
                // The file holds the preset's own size; `--image-size` resamples it.
                Some(path) => {
                    Sam::load_sized(path, &model_config_at(args, None)?, args.image_size, device)?
                }
                None => config.init(device)?,
            };
            match args.dtype.half_dtype() {
                Some(dt) => sam.cast_float(dt)?,
                None => sam,
            }
        }
    };
    Ok(slot.insert(sam))
}

/// Burn's fused attention (no bias, no mask, its default `1/√d` scale) at the shape of the
/// encoder's global blocks: `[1, heads, tokens, d]` queries and keys, `[1, heads, tokens,
/// head_dim]` values, in the bench's dtype. The encoder folds the decomposed rel-pos bias into
/// the queries and keys (64 + 2·64 columns at 1024², padded to 256 so that `√d` is exact,
/// `sam_model`'s `fold_rel_pos`); timing other widths says what that padding costs on a GPU.
fn attention_job(
    args: &BenchArgs,
    config: &SamConfig,
    d: usize,
    device: &Device,
) -> Result<(Vec<f64>, f64)> {
    let heads = config.encoder_num_heads;
    let side = config.image_size / config.patch_size;
    let tokens = side * side;
    let head_dim = config.encoder_embed_dim / heads;
    let random = |width: usize| {
        let t = Tensor::<4>::random(
            [1, heads, tokens, width],
            Distribution::Normal(0.0, 1.0),
            device,
        );
        match args.dtype.half_dtype() {
            Some(dt) => t.cast(dt),
            None => t,
        }
    };
    let (q, k, v) = (random(d), random(d), random(head_dim));
    sync(device)?;
    time(args, device, || {
        let _ = attention(
            q.clone(),
            k.clone(),
            v.clone(),
            None,
            None,
            Default::default(),
        );
        Ok(())
    })
}

/// A preprocessed random image of the model's input size.
fn random_input(sam: &Sam, device: &Device) -> Result<Tensor<4>> {
    let s = sam.config().image_size;
    let x = Tensor::<4>::random([1, 3, s, s], Distribution::Uniform(0.0, 255.0), device);
    Ok(sam.preprocess(x)?)
}

/// `n` single-point prompts (multimask) decoded against one embedding.
fn decode_job(args: &BenchArgs, sam: &Sam, n: usize, device: &Device) -> Result<(Vec<f64>, f64)> {
    let s = sam.config().image_size;
    let emb = sam.image_embeddings(random_input(sam, device)?)?;
    sync(device)?;
    progress("embedding computed");
    let coords = Tensor::<3>::random([n, 1, 2], Distribution::Uniform(0.0, s as f64), device);
    let labels = Tensor::<2, Int>::ones([n, 1], device);
    time(args, device, || {
        let prompts = Prompts {
            points: Some(PointPrompt {
                coords: coords.clone(),
                labels: labels.clone(),
            }),
            ..Default::default()
        };
        let _ = sam.predict(emb.clone(), prompts, true)?;
        Ok(())
    })
}

/// The automatic mask generator with an `n`×`n` grid on `--image`, as the reference's
/// `SamAutomaticMaskGenerator(points_per_side=n, pred_iou_thresh=0, stability_score_thresh=0)`:
/// every mask goes through the whole post-processing (the worst case). Returns the timings and
/// the number of masks of the last run.
fn amg_job(
    args: &BenchArgs,
    sam: &Sam,
    n: usize,
    device: &Device,
) -> Result<(Vec<f64>, f64, usize)> {
    let path = args
        .image
        .clone()
        .unwrap_or_else(|| crate::cli::bundled("assets/scene.png"));
    let image = sam_data::load_rgb(&path)?;
    let config = AmgConfig {
        points_per_side: Some(n),
        pred_iou_thresh: 0.0,
        stability_score_thresh: 0.0,
        ..AmgConfig::default()
    };
    let generator = SamAutomaticMaskGenerator::new(sam.clone(), config)?;
    let mut count = 0;
    let (ms, warmup_s) = time(args, device, || {
        count = generator.generate(&image)?.len();
        Ok(())
    })?;
    Ok((ms, warmup_s, count))
}

/// The training loop's own step on synthetic images, one image per step, `--objects` box
/// prompts, one round (no click or mask-only rounds), so that the step is the one
/// `compare.py` runs in PyTorch.
fn train_job(args: &BenchArgs, model: &SamConfig, device: &Device) -> Result<(Vec<f64>, f64)> {
    let data = tempfile_dir()?;
    let synth = sam_data::dataset::SyntheticConfig {
        num_images: 4,
        min_side: model.image_size * 3 / 4,
        max_side: model.image_size,
        min_objects: args.objects,
        max_objects: args.objects,
        min_object_area: 1,
        ..Default::default()
    };
    sam_data::dataset::write_synthetic_dataset(&data, &synth)?;
    let dataset = Arc::new(sam_data::dataset::Sa1bDataset::open(&data)?);
    let mut c = TrainConfig {
        model: model.clone(),
        precision: args.dtype,
        checkpoint_every: 0,
        eval_every: 0,
        steps: 1_000_000,
        ..TrainConfig::default()
    };
    c.optim.schedule.total_steps = 1_000_000;
    c.optim.batch = sam_optim::BatchConfig {
        global_batch_size: 1,
        micro_batch_size: 1,
        num_devices: 1,
    };
    c.loader.batch_size = 1;
    c.data.image_size = model.image_size;
    c.data.low_res_size = model.mask_input_size();
    if let Some(a) = c.data.augment.as_mut() {
        a.target_size = model.image_size;
    }
    c.data.prompts.max_masks_per_image = args.objects;
    c.interactive.point_rounds = 0;
    c.interactive.mask_only_rounds = 0;
    c.interactive.box_probability = 1.0;
    let out = data.join("run");
    let mut trainer = Trainer::new(c, dataset, &out, device, None)?;
    progress("trainer built");
    let result = time(args, device, || {
        trainer.train_step()?;
        Ok(())
    });
    let _ = std::fs::remove_dir_all(&data);
    result
}

fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("sam-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| CliError::Write {
        path: dir.clone(),
        reason: e.to_string(),
    })?;
    Ok(dir)
}

/// The example's entry: parse, run, print one JSON line per job.
pub fn main(args: impl IntoIterator<Item = String>) -> std::process::ExitCode {
    crate::allocator::keep_freed_memory();
    crate::cli::exit_code(BenchArgs::parse(args).and_then(|a| {
        run(&a, |r| {
            println!("{}", serde_json::to_string(r).unwrap_or_default());
        })
    }))
}
