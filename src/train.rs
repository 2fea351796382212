//! The `train` command: trains SAM on an SA-1B-format folder (optionally generating the
//! synthetic shapes dataset first), with a progress bar, metrics files, checkpoints and resume.
//! `examples/train.rs` only calls [`main`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use sam_data::dataset::{Sa1bDataset, SyntheticConfig, write_synthetic_dataset};
use sam_train::{EvalConfig, TrainConfig, TrainData, Trainer};

use crate::backend;
use crate::cli::{CliError, number};

type Result<T> = std::result::Result<T, CliError>;

/// The usage text.
pub const USAGE: &str = "\
usage: train --data DIR [--val DIR] [--out DIR] [--preset seed|paper|demo | --config FILE.json]
             [--checkpoint FILE] [--resume] [--steps N] [--freeze-image-encoder]
             [--freeze-prompt-encoder] [--lora RANK] [--precision f32|bf16|f16] [--synthetic N]
             [--clip DIR [--text-min-area PX]] [--device NAME] [--dist single|mpi|nccl]
             [--dist-timeout SECS] [--no-progress]

--data DIR      an SA-1B-format folder (sa_<id>.jpg + sa_<id>.json), or a folder of SA-1B's
                .tar shards (sa_000000.tar ...), streamed without unpacking
--val DIR       a validation folder: mIoU (1 click) every eval_every steps and at the end
--out DIR       run folder: metrics.csv, metrics.jsonl, curves.png, checkpoints/ (default train_out)
--preset        seed (default: the seed's ViT-L recipe), paper (its variant), demo (a small model
                that learns the synthetic shapes on a CPU in minutes)
--config        a TrainConfig JSON (missing fields: the seed recipe)
--checkpoint    initial weights to fine-tune (official .pth, .safetensors, .bpk or a Hugging Face
                SamModel folder; resampled when trained at another input size)
--steps N       optimizer steps to run; the learning-rate schedule keeps the preset's or the
                config's length (a shorter run stops partway down it: set
                optim.schedule.total_steps in --config for a whole schedule)
--resume        continue the run in --out from its latest checkpoint, with its own config;
                --steps N sets its new length (a fresh run refuses a folder that holds one)
--lora RANK     LoRA fine-tuning: rank-RANK adapters (alpha = RANK) on the encoder's and the
                decoder's attention projections train, the rest stays frozen
--precision P   compute type of the passes: f32 (default), bf16 or f16 mixed precision (f32
                master weights, optimizer state, loss and norms; bf16 needs CUDA)
--synthetic N   first write N synthetic shape images into --data (and N/5 into --val if given)
--clip DIR      text-prompt training (paper App. D.5; docs/text-prompts.md): objects of at
                least --text-min-area pixels (default 100²) are first prompted by the CLIP image
                embedding of a masked crop (the Hugging Face CLIP folder DIR, frozen); a
                model without an embedding prompt gets a fresh projection of CLIP's size
--dist ENGINE   multi-process data parallel: mpi (under mpirun/srun; build with --features mpi)
                or nccl (one process per GPU, torchrun-style or Slurm variables; --features
                nccl). optim.batch.num_devices must count every process's devices; rank 0
                writes the run folder (docs/distributed.md)
--dist-timeout  seconds a collective may wait for the other ranks before this rank stops the
                job (default 1800)";

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
    /// Multi-process engine.
    pub dist: sam_dist::Engine,
    /// Collective timeout.
    pub dist_timeout: std::time::Duration,
    /// CLIP folder of text-prompt training.
    pub clip: Option<PathBuf>,
    /// With `resume`: the run's new number of steps.
    pub resume_steps: Option<usize>,
}

/// The longest `--dist-timeout`, in seconds (a year).
pub const MAX_DIST_TIMEOUT: f64 = 365.0 * 24.0 * 3600.0;

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
        let (mut dist, mut dist_timeout) = (sam_dist::Engine::Single, 1800.0f64);
        let (mut clip, mut text_min_area) = (None, None);
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
                "--clip" => clip = Some(PathBuf::from(value()?)),
                "--text-min-area" => text_min_area = Some(number::<u64>(&flag, &value()?)?),
                "--dist" => {
                    dist = value()?
                        .parse()
                        .map_err(|e| CliError::Usage(format!("--dist: {e}")))?;
                }
                "--dist-timeout" => {
                    dist_timeout = number::<f64>(&flag, &value()?)?;
                    if !(dist_timeout > 0.0 && dist_timeout <= MAX_DIST_TIMEOUT) {
                        return Err(CliError::Usage(format!(
                            "--dist-timeout {dist_timeout}: must be a positive number of seconds, \
                             at most {MAX_DIST_TIMEOUT}"
                        )));
                    }
                }
                "-h" | "--help" => return Err(CliError::Help(USAGE.into())),
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
        // A resumed run keeps its config; of the flags that would change it, only the number
        // of steps can (to extend or shorten the run).
        let changes_the_run = [
            ("--precision", precision.is_some()),
            ("--lora", lora_rank.is_some()),
            ("--freeze-image-encoder", freeze_image),
            ("--freeze-prompt-encoder", freeze_prompt),
            ("--text-min-area", text_min_area.is_some()),
        ];
        if let Some((flag, _)) = changes_the_run.iter().find(|(_, given)| resume && *given) {
            return Err(CliError::Usage(format!(
                "{flag} would change the run that --resume continues with its own config (only \
                 --steps may change)"
            )));
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
        if config.text.is_some() && clip.is_none() {
            return Err(CliError::Usage(
                "the config has a text section: give the CLIP folder with --clip DIR".into(),
            ));
        }
        if text_min_area.is_some() && clip.is_none() {
            return Err(CliError::Usage("--text-min-area needs --clip DIR".into()));
        }
        if clip.is_some() && !resume {
            let text = config.text.get_or_insert_with(Default::default);
            if let Some(a) = text_min_area {
                text.min_area = a;
            }
        }
        if config.text.is_none() || clip.is_none() {
            config.validate()?;
        }
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
            dist,
            dist_timeout: std::time::Duration::from_secs_f64(dist_timeout),
            clip,
            resume_steps: steps.filter(|_| resume),
        })
    }
}

fn open(dir: &Path) -> Result<Arc<Sa1bDataset>> {
    Ok(Arc::new(Sa1bDataset::open(dir)?))
}

/// A folder of `.tar` shards is streamed; any other folder is read as unpacked SA-1B.
fn train_data(dir: &Path) -> Result<TrainData> {
    let has_tars = std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "tar"))
    });
    if has_tars {
        let shards = sam_data::dataset::list_shards(dir)?;
        return Ok(TrainData::TarShards(sam_data::dataset::Sa1bTarConfig::new(
            shards,
        )));
    }
    let data: sam_train::SharedDataset = open(dir)?;
    Ok(TrainData::Indexed(data))
}

/// Runs the command. In a multi-process run an error on one rank aborts the whole job (the
/// others would otherwise wait for it in their next collective).
pub fn run(args: TrainArgs) -> Result<PathBuf> {
    if args.dist == sam_dist::Engine::Single {
        return train(args, None);
    }
    let mut comm = sam_dist::connect(args.dist, args.dist_timeout).map_err(|e| {
        // Many ranks share one terminal: say which one failed to join.
        let who = sam_dist::LaunchEnv::from_env()
            .map(|l| format!("rank {}/{}: ", l.rank, l.world_size))
            .unwrap_or_default();
        CliError::Join { who, source: e }
    })?;
    let rank = comm.rank();
    // Rank 0 alone writes the synthetic data; the others wait for it.
    let prepared = if rank == 0 {
        prepare_data(&args)
    } else {
        Ok(())
    };
    if let Err(e) = prepared {
        eprintln!("error: rank {rank}: {e}");
        comm.abort(1);
    }
    if let Err(e) = comm.barrier() {
        eprintln!("error: rank {rank}: {e}");
        comm.abort(1);
    }
    train(args, Some(comm))
}

fn prepare_data(args: &TrainArgs) -> Result<()> {
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
    Ok(())
}

/// Sums every parameter's f32 bits (FNV-1a): ranks of a multi-process run print it at the end,
/// and equal digests show they hold identical weights.
fn parameter_digest(model: &sam_model::Sam) -> u64 {
    use burn::module::{Module, ModuleVisitor, Param};
    struct Digest(u64);
    impl ModuleVisitor for Digest {
        fn visit_float<const D: usize>(&mut self, param: &Param<burn::tensor::Tensor<D>>) {
            let data = param.val().into_data().convert::<f32>();
            for v in data.iter::<f32>() {
                for b in v.to_bits().to_le_bytes() {
                    self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
                }
            }
        }
    }
    let mut d = Digest(0xcbf2_9ce4_8422_2325);
    model.visit(&mut d);
    d.0
}

fn train(args: TrainArgs, comm: Option<Box<dyn sam_dist::Communicator>>) -> Result<PathBuf> {
    let Some(mut comm) = comm else {
        prepare_data(&args)?;
        let device = backend::device(&args.device)?;
        return train_on(args, device, None);
    };
    let rank = comm.rank();
    // One process per GPU: a bare `cuda` means this process's node-local GPU.
    let device = match backend::device_for_local_rank(&args.device, comm.local_rank()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: rank {rank}: {e}");
            comm.abort(1);
        }
    };
    train_on(args, device, Some(comm))
}

fn train_on(
    args: TrainArgs,
    device: burn::tensor::Device,
    comm: Option<Box<dyn sam_dist::Communicator>>,
) -> Result<PathBuf> {
    let (rank, world) = comm.as_ref().map_or((0, 1), |c| (c.rank(), c.world_size()));
    let fail =
        |comm: Option<&mut (dyn sam_dist::Communicator + 'static)>, e: CliError| -> CliError {
            if let Some(c) = comm {
                eprintln!("error: rank {rank}/{world}: {e}");
                c.abort(1);
            }
            e
        };
    let mut comm = comm;
    let built = build_trainer(&args, &device);
    let mut trainer = match built {
        Ok(t) => t,
        Err(e) => return Err(fail(comm.as_deref_mut(), e)),
    };
    if let Some(c) = comm {
        trainer = match trainer.distributed(c) {
            Ok(t) => t,
            // The group went with the trainer that failed: exiting ends the job.
            Err(e) => {
                eprintln!("error: rank {rank}/{world}: {e}");
                std::process::exit(1);
            }
        };
    }
    match drive(&args, &mut trainer) {
        Ok(last) => {
            if world > 1 {
                // One write of the whole line: the ranks share mpirun's stderr, and
                // `eprintln!` writes its pieces separately, so two ranks' lines could
                // interleave mid-line (seen in CI). A write this short to a pipe is atomic.
                let line = format!(
                    "rank {rank}/{world}: parameters digest {:016x}\n",
                    trainer.model().map(parameter_digest).unwrap_or(0)
                );
                let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
            }
            Ok(last)
        }
        Err(e) => Err(fail(trainer.communicator(), e)),
    }
}

fn build_trainer(args: &TrainArgs, device: &burn::tensor::Device) -> Result<Trainer> {
    let device = device.clone();
    let train_set = train_data(&args.data)?;
    // Text-prompt training: CLIP on the plain device (frozen), and a model that takes its
    // embeddings.
    let clip = match &args.clip {
        Some(dir) => Some(sam_clip::ClipFolder::load(dir, &device)?),
        None => None,
    };
    // A fresh run in a folder that holds one would leave that run's `latest` checkpoint in
    // place until its own first one: a `--resume` after an early stop would then continue the
    // old run. Checked before anything is written there.
    if !args.resume {
        let checkpoints = args.out.join("checkpoints");
        if let Some(latest) = sam_train::checkpoint::latest_checkpoint(&checkpoints)
            .ok()
            .flatten()
        {
            return Err(CliError::Usage(format!(
                "{} already holds a run (latest checkpoint {}): continue it with --resume, or \
                 give another --out",
                args.out.display(),
                latest.display()
            )));
        }
    }
    let mut config = args.config.clone();
    let mut checkpoint = args.checkpoint.clone();
    if let (Some(clip), false) = (&clip, args.resume) {
        let dim = clip.model.config().projection_dim;
        match (config.model.prompt_embedding_dim, &checkpoint) {
            (Some(d), _) if d != dim => {
                return Err(CliError::Usage(format!(
                    "the model takes {d}-d prompt embeddings but the CLIP folder makes {dim}-d ones"
                )));
            }
            (Some(_), _) | (None, None) => config.model.prompt_embedding_dim = Some(dim),
            (None, Some(path)) => {
                // The checkpoint (a file or a Hugging Face folder) has no projection: start
                // from it with a fresh one, drawn from the run's seed so that a rerun (and every
                // rank of a multi-process run, which all write the same file) starts the same.
                let sam = sam_train::load_start_weights(path, &config.model, &device)?;
                device.seed(config.seed);
                let sam = sam.with_prompt_embedding(dim)?;
                std::fs::create_dir_all(&args.out).map_err(|e| CliError::Write {
                    path: args.out.clone(),
                    reason: e.to_string(),
                })?;
                let start = args.out.join("text_start.bpk");
                sam.save(&start)?;
                config.model = sam.config().clone();
                checkpoint = Some(start);
            }
        }
        config.validate()?;
    }
    let trainer = if args.resume {
        let mut t = Trainer::resume_from(train_set, &args.out, &device)?;
        if let Some(steps) = args.resume_steps {
            t.set_steps(steps)?;
        }
        t
    } else {
        Trainer::new_from(config, train_set, &args.out, &device, checkpoint.as_deref())?
    };
    if trainer.config().text.is_some() && clip.is_none() {
        return Err(CliError::Usage(
            "the run trains text prompts: give its CLIP folder with --clip DIR".into(),
        ));
    }
    let trainer = match clip {
        Some(clip) => trainer.with_text_prompts(std::sync::Arc::new(
            crate::clip_embedder::ClipEmbedder::new(clip),
        ))?,
        None => trainer,
    };
    if let Some(val) = &args.val {
        let eval = EvalConfig {
            clicks: 1,
            boxes: false,
            ..EvalConfig::default()
        };
        return Ok(trainer.with_validation(open(val)?, eval));
    }
    Ok(trainer)
}

fn drive(args: &TrainArgs, trainer: &mut Trainer) -> Result<PathBuf> {
    let total = trainer.config().steps as u64;
    let bar = if args.progress && trainer.rank() == 0 {
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
    if trainer.rank() != 0 {
        return Ok(last);
    }
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
    crate::allocator::keep_freed_memory();
    crate::cli::exit_code(TrainArgs::parse(args).and_then(run))
}
