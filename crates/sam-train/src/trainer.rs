//! The training loop: micro-batches from the loader, the interactive simulation and SAM's loss
//! per image, gradient accumulation to the global batch, the optimizer step, non-finite-loss
//! skipping, validation, metrics and checkpoints.
//!
//! Every random choice is derived from `(seed, loader position)`, and checkpoints are taken at
//! optimizer-step boundaries with the loader position, so a resumed run repeats the
//! uninterrupted one exactly.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::Device;
use rand::SeedableRng;
use rand::rngs::StdRng;
use sam_data::TrainSample;
use sam_data::dataset::TarPosition;
use sam_data::seed::mix_seed;
use sam_dist::Communicator;
use sam_losses::SamLoss;
use sam_model::{Sam, SamConfig};
use sam_optim::{GradAccumulator, SamOptimizer, sum_gradients};

use crate::batch::{Targets, model_input};
use crate::checkpoint::{
    MODEL_FILE, OPTIMIZER_FILE, TrainState, latest_checkpoint, read_state, write_checkpoint,
};
use crate::config::TrainConfig;
use crate::distributed::{BUCKET_ELEMENTS, all_reduce_gradients};
use crate::error::{Result, TrainError};
use crate::evaluate::{EvalConfig, EvalReport, evaluate};
use crate::interactive::{ClickPolicy, LossParts, Simulation, split_first_prompt, training_rounds};
use crate::metrics::{MetricsLog, StepMetrics};

use crate::source::{Drawn, Source};
use crate::source::{SharedDataset, TrainData};
use crate::text_prompt::{ObjectCrop, ObjectEmbedder};

/// Host values of one micro-batch.
#[derive(Debug, Default, Clone, Copy)]
struct MicroStats {
    loss: f64,
    focal: f64,
    dice: f64,
    iou: f64,
    iou_first: f64,
    iou_last: f64,
    images: usize,
    objects: usize,
}

/// The objects of an image prompted by their embedding, and those `[n, D]` embeddings.
type TextObjects = (Vec<usize>, burn::tensor::Tensor<2>);

/// One data-parallel shard's share of a micro-batch.
struct ShardJob<'a> {
    config: &'a TrainConfig,
    /// The embedding prompts of text-prompt training.
    embedder: Option<&'a dyn ObjectEmbedder>,
    loss: &'a SamLoss,
    /// Objects in the whole micro-batch: every shard's loss is normalised by it.
    n_total: usize,
    batch_seed: u64,
}

/// A shard's host values (sums over its images, not yet normalised) and gradients.
struct ShardOut {
    stats: MicroStats,
    grads: Option<GradientsParams>,
}

impl ShardJob<'_> {
    /// The interactive simulation and loss of `samples` (images `first..` of the micro-batch)
    /// on `sam`, then its backward, the gradients moved to `main`. Each image's prompts come
    /// from its own generator, `(batch seed, index in the micro-batch)`, so the split over
    /// devices does not change them.
    fn run(
        &self,
        sam: &Sam,
        samples: &[TrainSample],
        first: usize,
        main: &Device,
    ) -> Result<ShardOut> {
        let mut stats = MicroStats::default();
        if samples.is_empty() {
            return Ok(ShardOut { stats, grads: None });
        }
        let interactive = &self.config.interactive;
        let s = self.config.model.image_size;
        let side = self.config.model.mask_input_size();
        // Mixed precision: the passes run on a 16-bit copy whose cast is in the graph, so the
        // gradients below land on `sam`'s f32 parameters.
        let master = sam;
        let half;
        let sam = match self.config.precision.half_dtype() {
            Some(dtype) => {
                half = master.cast_float(dtype)?;
                &half
            }
            None => master,
        };
        let embeddings = sam.image_embeddings(model_input(sam, samples, &sam.device())?)?;
        let mut total = None;
        for (b, sample) in samples.iter().enumerate() {
            let mut rng = StdRng::seed_from_u64(mix_seed(self.batch_seed, (first + b) as u64));
            let targets = Targets::new(sample, s, side);
            let rounds = training_rounds(interactive, &mut rng);
            // Text-prompt training: the objects large enough are prompted by their embedding
            // (drawn first, so that runs without it keep their random streams).
            let (text, others) = match (&self.config.text, self.embedder) {
                (Some(t), Some(embedder)) => {
                    self.text_prompts(t, embedder, sample, &sam.device(), &mut rng)?
                }
                _ => (None, (0..sample.objects.len()).collect()),
            };
            let (boxes, points) =
                split_first_prompt(others.len(), interactive.box_probability, &mut rng);
            let pick = |ks: Vec<usize>| ks.into_iter().map(|k| others[k]).collect::<Vec<_>>();
            let (text_which, text_embeddings) = match text {
                Some((which, e)) => (which, Some(e)),
                None => (Vec::new(), None),
            };
            let runs = [
                (text_which, false, text_embeddings),
                (pick(boxes), true, None),
                (pick(points), false, None),
            ];
            for (which, first_box, prompt) in runs {
                if which.is_empty() {
                    continue;
                }
                let sim = Simulation {
                    sam,
                    embedding: embeddings.clone().narrow(0, b, 1),
                    objects: &sample.objects,
                    targets: &targets,
                    which,
                    first_box,
                    embeddings: prompt,
                    policy: ClickPolicy::Random,
                };
                let out = sim.run(&rounds, Some((self.loss, self.n_total as f64)), &mut rng)?;
                total = LossParts::sum(total, out.loss);
                let sum = |r: Option<&Vec<f64>>| r.map_or(0.0, |v| v.iter().sum::<f64>());
                stats.iou_first += sum(out.ious.first());
                stats.iou_last += sum(out.ious.last());
            }
            stats.images += 1;
        }
        let Some(total) = total.map(|t| t.scale(1.0 / interactive.total_rounds() as f64)) else {
            return Ok(ShardOut { stats, grads: None });
        };
        let v = |x: &burn::tensor::Tensor<1>| x.clone().into_scalar::<f64>();
        stats.loss = v(&total.total);
        stats.focal = v(&total.focal);
        stats.dice = v(&total.dice);
        stats.iou = v(&total.iou);
        let grads = stats.loss.is_finite().then(|| {
            let g = GradientsParams::from_grads(total.total.backward(), master);
            if master.device() == *main {
                g
            } else {
                g.to_device(main, master)
            }
        });
        Ok(ShardOut { stats, grads })
    }

    /// The objects of `sample` prompted by their embedding, with their `[n, D]` embeddings,
    /// and the others (indices into `sample.objects`).
    fn text_prompts(
        &self,
        config: &crate::config::TextPromptConfig,
        embedder: &dyn ObjectEmbedder,
        sample: &TrainSample,
        device: &Device,
        rng: &mut StdRng,
    ) -> Result<(Option<TextObjects>, Vec<usize>)> {
        use rand::Rng;
        let (mut chosen, mut others) = (Vec::new(), Vec::new());
        let mut crops = Vec::new();
        for (i, o) in sample.objects.iter().enumerate() {
            match &o.mask {
                Some(mask) if o.area >= config.min_area && rng.random_bool(config.probability) => {
                    let (lo, hi) = config.expand;
                    let expand = if hi > lo {
                        rng.random_range(lo..=hi)
                    } else {
                        lo
                    };
                    let zero_outside = rng.random_bool(config.zero_outside_prob);
                    chosen.push(i);
                    crops.push(ObjectCrop {
                        mask,
                        expand,
                        zero_outside,
                    });
                }
                _ => others.push(i),
            }
        }
        if chosen.is_empty() {
            return Ok((None, others));
        }
        let rows = embedder
            .embed(&sample.image, sample.width, sample.height, &crops)
            .map_err(TrainError::Embedder)?;
        let dim = embedder.dim();
        if rows.len() != chosen.len() || rows.iter().any(|r| r.len() != dim) {
            return Err(TrainError::Embedder(format!(
                "expected {} embeddings of size {dim}, got sizes {:?}",
                chosen.len(),
                rows.iter().map(Vec::len).collect::<Vec<_>>()
            )));
        }
        let n = chosen.len();
        let flat: Vec<f32> = rows.into_iter().flatten().collect();
        let t = burn::tensor::Tensor::<2>::from_data(
            burn::tensor::TensorData::new(flat, [n, dim]),
            device,
        );
        Ok((Some((chosen, t)), others))
    }
}

/// A training run.
pub struct Trainer {
    config: TrainConfig,
    model: Option<Sam>,
    optim: SamOptimizer,
    loss: SamLoss,
    accumulator: GradAccumulator,
    source: Source,
    /// Data-parallel devices besides the model's own (autodiff devices).
    replicas: Vec<Device>,
    /// The process group of a multi-process run.
    dist: Option<Box<dyn Communicator>>,
    /// The embedding prompts of text-prompt training.
    embedder: Option<Arc<dyn ObjectEmbedder>>,
    step: usize,
    nonfinite: usize,
    validation: Option<(SharedDataset, EvalConfig)>,
    out_dir: PathBuf,
    /// The run's metrics.
    pub metrics: MetricsLog,
}

/// The model is only absent while an optimizer step owns it; a failed step leaves it so.
fn present(model: &Option<Sam>) -> Result<&Sam> {
    model
        .as_ref()
        .ok_or_else(|| TrainError::config("model", "lost after a failed optimizer step"))
}

/// Fresh weights drawn from the device's RNG seeded with `config.seed`. Burn initialises
/// parameters lazily, at first use; reading every one right away keeps the draws in module
/// order, so the same seed gives the same model.
fn seeded_init(config: &TrainConfig, device: &Device) -> Result<Sam> {
    struct Touch;
    impl burn::module::ModuleVisitor for Touch {
        fn visit_float<const D: usize>(
            &mut self,
            param: &burn::module::Param<burn::tensor::Tensor<D>>,
        ) {
            let _ = param.val();
        }
    }
    device.seed(config.seed);
    let model = config.model.init(device)?;
    model.visit(&mut Touch);
    Ok(model)
}

fn train_device(device: &Device, checkpointing: bool) -> Device {
    let d = device.clone().autodiff();
    if checkpointing {
        d.gradient_checkpointing()
    } else {
        d
    }
}

/// The weights a run starts from: a checkpoint file (official `.pth`, safetensors or `.bpk`)
/// read with `model`'s sizes (resampled when trained at another input size), or a Hugging
/// Face `SamModel` folder, which must hold `model`'s architecture.
pub fn load_start_weights(path: &Path, model: &SamConfig, device: &Device) -> Result<Sam> {
    if !sam_model::is_hf_folder(path) {
        return Ok(Sam::load(path, model, device)?);
    }
    let loaded = Sam::load_hf(path, device)?.resampled(model.image_size)?;
    if loaded.config() != model {
        return Err(TrainError::config(
            "model",
            format!(
                "{} holds a different model than the training config's: {:?}",
                path.display(),
                loaded.config()
            ),
        ));
    }
    Ok(loaded)
}

impl Trainer {
    /// A new run writing into `out_dir`: fresh weights, or `weights` (an official `.pth`,
    /// `.safetensors`, `.bpk`, or a Hugging Face `SamModel` folder) to fine-tune. Weights
    /// trained at another input size are resampled to `config.model.image_size`.
    pub fn new(
        config: TrainConfig,
        train_set: SharedDataset,
        out_dir: impl AsRef<Path>,
        device: &Device,
        weights: Option<&Path>,
    ) -> Result<Self> {
        Self::new_from(
            config,
            TrainData::Indexed(train_set),
            out_dir,
            device,
            weights,
        )
    }

    /// [`Trainer::new`] on any [`TrainData`] (e.g. SA-1B's tar shards).
    pub fn new_from(
        config: TrainConfig,
        train_set: TrainData,
        out_dir: impl AsRef<Path>,
        device: &Device,
        weights: Option<&Path>,
    ) -> Result<Self> {
        config.validate()?;
        let device = train_device(device, config.gradient_checkpointing);
        let model = match weights {
            Some(path) => load_start_weights(path, &config.model, &device)?,
            None => seeded_init(&config, &device)?,
        };
        Self::build(config, model, train_set, out_dir.as_ref(), None)
    }

    /// Continues the run in `out_dir` from its latest complete checkpoint.
    pub fn resume(
        train_set: SharedDataset,
        out_dir: impl AsRef<Path>,
        device: &Device,
    ) -> Result<Self> {
        Self::resume_from(TrainData::Indexed(train_set), out_dir, device)
    }

    /// [`Trainer::resume`] on any [`TrainData`]; a tar-shard run resumes each rank's stream
    /// where the checkpoint left it (with as many ranks as wrote it).
    pub fn resume_from(
        train_set: TrainData,
        out_dir: impl AsRef<Path>,
        device: &Device,
    ) -> Result<Self> {
        let out_dir = out_dir.as_ref();
        let ckpt_dir = out_dir.join("checkpoints");
        let checkpoint = latest_checkpoint(&ckpt_dir)?
            .ok_or_else(|| TrainError::file(&ckpt_dir, "no checkpoint to resume from"))?;
        let state = read_state(&checkpoint)?;
        let state_file = checkpoint.join(crate::checkpoint::STATE_FILE);
        state.config.validate().map_err(|e| match e {
            TrainError::InvalidConfig { field, reason } => TrainError::InvalidConfig {
                field: format!("{}: {field}", state_file.display()),
                reason,
            },
            e => e,
        })?;
        let device = train_device(device, state.config.gradient_checkpointing);
        // A LoRA run's checkpoint holds the adapters: they exist before its weights load.
        let model = match &state.config.lora {
            Some(lora) => {
                let mut m = state.config.model.init(&device)?;
                m.add_lora(lora)?;
                m.load_weights(checkpoint.join(MODEL_FILE))?;
                m
            }
            None => Sam::load(checkpoint.join(MODEL_FILE), &state.config.model, &device)?,
        };
        let mut trainer = Self::build(
            state.config.clone(),
            model,
            train_set,
            out_dir,
            Some(&state),
        )?;
        trainer
            .optim
            .load(checkpoint.join(OPTIMIZER_FILE), &device)?;
        Ok(trainer)
    }

    fn build(
        config: TrainConfig,
        model: Sam,
        train_set: TrainData,
        out_dir: &Path,
        state: Option<&TrainState>,
    ) -> Result<Self> {
        if let Some(reason) = config
            .precision
            .half_dtype()
            .and_then(|dtype| sam_model::precision::unsupported(&model.device(), dtype))
        {
            return Err(TrainError::InvalidConfig {
                field: "precision".into(),
                reason,
            });
        }
        let mut optim_config = config.optim.clone();
        if config.freeze_image_encoder {
            optim_config.groups.frozen.push("^image_encoder\\.".into());
        }
        if config.freeze_prompt_encoder {
            optim_config.groups.frozen.push("^prompt_encoder\\.".into());
        }
        let mut model = model;
        if let Some(lora) = &config.lora {
            // Only the adapters train; the base weights stay as loaded.
            if model.lora_config() != Some(lora) {
                model.add_lora(lora)?;
            }
            optim_config
                .groups
                .trainable
                .push(sam_model::lora::LORA_PATTERN.into());
        }
        if !config.freeze_image_encoder && config.lora.is_none() {
            model.image_encoder.set_drop_path(config.drop_path)?;
        }
        let optim = SamOptimizer::new(optim_config, &model)?;
        let model = optim.freeze(model);
        let source = Source::new(
            train_set,
            &config,
            state.map_or_else(Default::default, |s| s.position),
            state.map(|s| (&s.tar_positions[..], s.micro_batches)),
        )?;
        let step = state.map_or(0, |s| s.step);
        Ok(Self {
            loss: config.loss.init()?,
            accumulator: optim.accumulator()?,
            optim,
            source,
            replicas: Vec::new(),
            dist: None,
            embedder: None,
            step,
            nonfinite: state.map_or(0, |s| s.nonfinite_steps),
            validation: None,
            metrics: MetricsLog::open(out_dir, step)?,
            out_dir: out_dir.to_path_buf(),
            model: Some(model),
            config,
        })
    }

    /// Data parallel over the model's device and `others` (e.g. `cuda:1..7`): each micro-batch
    /// is split in contiguous shards, one per device, run in parallel on forked replicas; their
    /// gradients are summed on the model's device, where the optimizer steps. The global batch
    /// is `micro_batch_size × accumulation × num_devices`: `optim.batch.num_devices` must count
    /// the model's device and `others`. The update equals the single-device one with the same
    /// loader batch (tested), up to f32 summation order.
    /// In a multi-process run ([`Trainer::distributed`], called first) `num_devices` counts
    /// every process's devices.
    pub fn data_parallel(mut self, others: &[Device]) -> Result<Self> {
        let wanted = self.config.optim.batch.num_devices;
        let world = self.world_size();
        if (others.len() + 1) * world != wanted {
            return Err(TrainError::config(
                "optim.batch.num_devices",
                format!(
                    "{wanted}, but {} devices were given (the model's and {} more){}",
                    others.len() + 1,
                    others.len(),
                    if world > 1 {
                        format!(" on each of {world} processes")
                    } else {
                        String::new()
                    }
                ),
            ));
        }
        self.replicas = others
            .iter()
            .map(|d| train_device(d, self.config.gradient_checkpointing))
            .collect();
        Ok(self)
    }

    /// Multi-process data parallelism over `comm` (MPI, NCCL): every rank runs this trainer
    /// with the same config and data folder (checked); each reads its contiguous part of every
    /// loader batch, and the accumulated gradients are summed over the ranks before the
    /// optimizer step, so every rank applies the same update. The global batch is
    /// `micro_batch_size × accumulation × num_devices`, where `num_devices` counts the devices
    /// of all ranks (the world size for one device each): the update equals one process's with
    /// the same global batch, up to f32 summation order (tested under `mpirun`). Rank 0 alone
    /// writes metrics, plots and checkpoints; every rank resumes from the same checkpoint.
    /// Call it before [`Trainer::data_parallel`].
    pub fn distributed(mut self, mut comm: Box<dyn Communicator>) -> Result<Self> {
        if !self.replicas.is_empty() {
            return Err(TrainError::config(
                "devices",
                "call distributed before data_parallel",
            ));
        }
        let (rank, world) = (comm.rank(), comm.world_size());
        let wanted = self.config.optim.batch.num_devices;
        if !wanted.is_multiple_of(world) {
            return Err(TrainError::config(
                "optim.batch.num_devices",
                format!("{wanted} is not a multiple of the {world} processes of the job"),
            ));
        }
        // Every rank must train the same thing from the same point: a rank started with other
        // flags, or resuming another checkpoint, would silently desynchronise the run.
        let agreed = serde_json::to_vec(&(
            &self.config,
            self.step,
            self.source.loader_position(),
            self.source.identity(),
        ))
        .map_err(|e| TrainError::config("config", e.to_string()))?;
        comm.check_same("training config, resume step or dataset size", &agreed)?;
        self.source.shard(rank, world)?;
        if rank != 0 {
            self.metrics.detach();
        }
        self.dist = Some(comm);
        Ok(self)
    }

    /// Text-prompt training (`config.text`, App. D.5): `embedder` makes the embedding prompts
    /// (for CLIP, `sam-burn`'s `ClipEmbedder`); its size must be the model's
    /// `prompt_embedding_dim`.
    pub fn with_text_prompts(mut self, embedder: Arc<dyn ObjectEmbedder>) -> Result<Self> {
        if self.config.text.is_none() {
            return Err(TrainError::config(
                "text",
                "an embedder was given but the config has no text section",
            ));
        }
        let want = self.config.model.prompt_embedding_dim;
        if want != Some(embedder.dim()) {
            return Err(TrainError::config(
                "model.prompt_embedding_dim",
                format!(
                    "{want:?}, but the embedder makes {}-d embeddings",
                    embedder.dim()
                ),
            ));
        }
        self.embedder = Some(embedder);
        Ok(self)
    }

    /// Changes the run's length, e.g. to extend a resumed run: [`Trainer::run`] stops at step
    /// `steps`, and the checkpoints record the new length. The learning-rate schedule keeps
    /// its own length (`optim.schedule.total_steps`; past it the rate stays at its minimum).
    pub fn set_steps(&mut self, steps: usize) -> Result<()> {
        if steps == 0 {
            return Err(TrainError::config("steps", "must be ≥ 1"));
        }
        self.config.steps = steps;
        Ok(())
    }

    /// Processes in the run (1 without [`Trainer::distributed`]).
    pub fn world_size(&self) -> usize {
        self.dist.as_ref().map_or(1, |c| c.world_size())
    }

    /// This process's rank (0 without [`Trainer::distributed`]).
    pub fn rank(&self) -> usize {
        self.dist.as_ref().map_or(0, |c| c.rank())
    }

    /// The process group, e.g. to abort the job after an error on this rank.
    pub fn communicator(&mut self) -> Option<&mut (dyn Communicator + 'static)> {
        self.dist.as_deref_mut()
    }

    /// Validates on `dataset` every `eval_every` steps and at the end.
    pub fn with_validation(mut self, dataset: SharedDataset, config: EvalConfig) -> Self {
        self.validation = Some((dataset, config));
        self
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Optimizer steps done.
    pub fn step_count(&self) -> usize {
        self.step
    }

    /// The model being trained (on the autodiff device).
    pub fn model(&self) -> Result<&Sam> {
        present(&self.model)
    }

    /// Items the loader skipped (unreadable images or annotations, damaged tar members).
    pub fn skipped_items(&self) -> u64 {
        self.source.skipped()
    }

    /// Gradients (on the training device) and host values of one micro-batch: its images are
    /// split in contiguous shards over the data-parallel devices (one shard without them), each
    /// shard's loss normalised by the whole micro-batch's objects, so the gradients' sum is the
    /// micro-batch's gradient however it is split. `None` when no image has an object; no
    /// gradients when the loss is not finite.
    ///
    /// In a multi-process run `samples` is this rank's part: the ranks first agree on the
    /// micro-batch's object count and on where this part starts, so that normalisation and
    /// prompt seeds are those of the whole micro-batch, then sum their host values. A rank
    /// whose part is empty returns empty gradients so that every rank's accumulation window
    /// advances together.
    fn micro_batch(
        &self,
        mut comm: Option<&mut (dyn Communicator + 'static)>,
        mut samples: Vec<TrainSample>,
        batch_seed: u64,
    ) -> Result<Option<(Option<GradientsParams>, MicroStats)>> {
        let sam = self.model()?;
        samples.retain(|s| !s.objects.is_empty());
        let local_objects: usize = samples.iter().map(|s| s.objects.len()).sum();
        let (offset, n_total, images_total) = match comm.as_deref_mut() {
            None => (0, local_objects, samples.len()),
            Some(c) => {
                let (rank, world) = (c.rank(), c.world_size());
                let mut counts = vec![0.0f64; world + 1];
                counts[rank] = samples.len() as f64;
                counts[world] = local_objects as f64;
                c.all_reduce_f64(&mut counts)?;
                let before: f64 = counts[..rank].iter().sum();
                let images: f64 = counts[..world].iter().sum();
                (before as usize, counts[world] as usize, images as usize)
            }
        };
        if images_total == 0 {
            return Ok(None);
        }
        let job = ShardJob {
            config: &self.config,
            embedder: self.embedder.as_deref(),
            loss: &self.loss,
            n_total,
            batch_seed,
        };
        let main = sam.device();
        let outs = if samples.is_empty() {
            Vec::new()
        } else if self.replicas.is_empty() {
            vec![job.run(sam, &samples, offset, &main)?]
        } else {
            let devices: Vec<Device> = std::iter::once(main.clone())
                .chain(self.replicas.iter().cloned())
                .collect();
            let per = samples.len().div_ceil(devices.len());
            std::thread::scope(|scope| {
                let handles: Vec<_> = samples
                    .chunks(per)
                    .zip(&devices)
                    .enumerate()
                    .map(|(k, (part, device))| {
                        // A fork is a detached copy: each device has its own autodiff graph,
                        // and the gradients keep the parameters' ids.
                        let replica = sam.clone().fork(device);
                        let (job, main) = (&job, &main);
                        scope.spawn(move || job.run(&replica, part, offset + k * per, main))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().map_err(|_| {
                            TrainError::config("devices", "a data-parallel worker panicked")
                        })?
                    })
                    .collect::<Result<Vec<_>>>()
            })?
        };
        let mut stats = MicroStats {
            objects: n_total,
            ..MicroStats::default()
        };
        let mut grads = Vec::with_capacity(outs.len());
        let mut finite = true;
        for out in outs {
            stats.images += out.stats.images;
            stats.loss += out.stats.loss;
            stats.focal += out.stats.focal;
            stats.dice += out.stats.dice;
            stats.iou += out.stats.iou;
            stats.iou_first += out.stats.iou_first;
            stats.iou_last += out.stats.iou_last;
            match out.grads {
                Some(g) => grads.push(g),
                None => finite &= out.stats.images == 0 || out.stats.loss.is_finite(),
            }
        }
        if let Some(c) = comm {
            let mut values = [
                stats.images as f64,
                stats.loss,
                stats.focal,
                stats.dice,
                stats.iou,
                stats.iou_first,
                stats.iou_last,
                f64::from(u8::from(!finite)),
            ];
            c.all_reduce_f64(&mut values)?;
            stats.images = values[0] as usize;
            [stats.loss, stats.focal, stats.dice, stats.iou] =
                [values[1], values[2], values[3], values[4]];
            [stats.iou_first, stats.iou_last] = [values[5], values[6]];
            finite = values[7] == 0.0;
            if grads.is_empty() {
                grads.push(GradientsParams::new());
            }
        }
        stats.iou_first /= n_total as f64;
        stats.iou_last /= n_total as f64;
        if !finite {
            stats.loss = f64::NAN;
            return Ok(Some((None, stats)));
        }
        let summed = if grads.len() == 1 {
            grads.pop()
        } else {
            Some(sum_gradients(sam, grads))
        };
        Ok(Some((summed, stats)))
    }

    /// One optimizer step: as many micro-batches as the accumulation needs (micro-batches
    /// without objects do not count), then the update. A non-finite loss discards the step's
    /// gradients and counts it; past `max_nonfinite_steps` of them the run stops with an error.
    pub fn train_step(&mut self) -> Result<StepMetrics> {
        let start = Instant::now();
        if self.config.text.is_some() && self.embedder.is_none() {
            return Err(TrainError::config(
                "text",
                "text-prompt training needs an embedder: call with_text_prompts",
            ));
        }
        let devices = (self.replicas.len() + 1) * self.world_size();
        if devices != self.config.optim.batch.num_devices {
            return Err(TrainError::config(
                "optim.batch.num_devices",
                format!(
                    "{} but the trainer runs {devices} device(s): call data_parallel with the \
                     other devices",
                    self.config.optim.batch.num_devices
                ),
            ));
        }
        let steps = self.accumulator.steps();
        let mut agg = MicroStats::default();
        let mut micro = 0;
        let mut nonfinite = false;
        let mut report = None;
        // Batches without any object are passed over; a whole epoch of them means there is
        // nothing to train on, which would otherwise loop for ever.
        let mut empty_in_a_row = 0;
        while micro < steps {
            let Drawn {
                samples,
                batch_seed,
                place,
            } = self.source.next(self.config.seed)?;
            if self.config.drop_path > 0.0 {
                // Drop path draws from the device's generator: seeding it from the position
                // keeps a resumed run on the same masks. The position is the same on every
                // process of a group, so their ranks are mixed in too: each process's images
                // get their own masks, not the first process's again.
                let seed = mix_seed(mix_seed(self.config.seed ^ 0xD809_7A71, place.0), place.1);
                let seed = match self.rank() {
                    0 => seed,
                    rank => mix_seed(seed, rank as u64),
                };
                self.model()?.device().seed(seed);
            }
            // The group is lent to the micro-batch and put back whatever it returns.
            let mut comm = self.dist.take();
            let result = self.micro_batch(comm.as_deref_mut(), samples, batch_seed);
            self.dist = comm;
            let Some((grads, stats)) = result? else {
                empty_in_a_row += 1;
                if empty_in_a_row > self.source.empty_batches_limit() {
                    return Err(TrainError::config(
                        "data",
                        "no training object in a whole epoch: every image lacks annotations, or \
                         every mask is over the area limit or vanishes when resized",
                    ));
                }
                continue;
            };
            empty_in_a_row = 0;
            micro += 1;
            agg.images += stats.images;
            agg.objects += stats.objects;
            for (a, v) in [
                (&mut agg.loss, stats.loss),
                (&mut agg.focal, stats.focal),
                (&mut agg.dice, stats.dice),
                (&mut agg.iou, stats.iou),
                (&mut agg.iou_first, stats.iou_first),
                (&mut agg.iou_last, stats.iou_last),
            ] {
                *a += v / steps as f64;
            }
            if !stats.loss.is_finite() {
                nonfinite = true;
            }
            if nonfinite {
                // The rest of the window still runs so the data position stays aligned with
                // the steps; its gradients are dropped with the window.
                continue;
            }
            let model = present(&self.model)?;
            let Some(grads) = grads else {
                continue;
            };
            if let Some(mut mean) = self.accumulator.push(model, grads) {
                if let Some(comm) = self.dist.as_deref_mut() {
                    mean = all_reduce_gradients(model, mean, comm, BUCKET_ELEMENTS)?;
                }
                let model = self
                    .model
                    .take()
                    .ok_or_else(|| TrainError::config("model", "missing"))?;
                let (model, r) = self.optim.step(model, mean)?;
                self.model = Some(model);
                report = Some(r);
            }
        }
        let lr = self.optim.lr();
        if nonfinite {
            let _ = self.accumulator.flush(present(&self.model)?);
            self.nonfinite += 1;
            if self.nonfinite > self.config.max_nonfinite_steps {
                return Err(TrainError::NonFinite {
                    count: self.nonfinite,
                    limit: self.config.max_nonfinite_steps,
                    step: self.step,
                });
            }
        }
        let m = StepMetrics {
            step: self.step,
            lr: report.as_ref().map_or(lr, |r| r.lr),
            loss: agg.loss,
            focal: agg.focal,
            dice: agg.dice,
            iou_loss: agg.iou,
            miou_first: agg.iou_first,
            miou_last: agg.iou_last,
            images: agg.images,
            objects: agg.objects,
            grad_norm: report.and_then(|r| r.grad_norm),
            seconds: start.elapsed().as_secs_f64(),
            skipped_nonfinite: nonfinite,
            val_miou_1click: None,
        };
        self.step += 1;
        self.metrics.push(m.clone())?;
        Ok(m)
    }

    /// Runs validation (when configured) and records it on the last step.
    /// In a multi-process run only rank 0 validates (the others wait at their next
    /// collective: the engine's timeout must allow for it).
    pub fn validate(&mut self) -> Result<Option<EvalReport>> {
        let Some((dataset, config)) = self.validation.clone() else {
            return Ok(None);
        };
        if self.rank() != 0 {
            return Ok(None);
        }
        let report = evaluate(&self.model()?.valid(), dataset, &config)?;
        if let Some(&first) = report.miou_clicks.first() {
            self.metrics.set_validation(first)?;
        }
        Ok(Some(report))
    }

    /// Writes a checkpoint of the current state; returns its folder. In a multi-process run
    /// every rank must call it (a tar-shard run gathers the ranks' stream positions) and only
    /// rank 0 writes (every rank holds the same weights); the others return the folder's name.
    pub fn save_checkpoint(&mut self) -> Result<PathBuf> {
        let tar = self.source.tar_position();
        let mut tar_positions: Vec<TarPosition> = tar.map(|(p, _)| p).into_iter().collect();
        if let (Some((own, _)), Some(comm)) = (tar, self.dist.as_deref_mut()) {
            // Positions are counts far below 2^53: exact as f64 sums.
            let (rank, world) = (comm.rank(), comm.world_size());
            let mut all = vec![0.0f64; 2 * world];
            all[2 * rank] = own.epoch as f64;
            all[2 * rank + 1] = own.emitted as f64;
            comm.all_reduce_f64(&mut all)?;
            tar_positions = all
                .chunks(2)
                .map(|p| TarPosition {
                    epoch: p[0] as u64,
                    emitted: p[1] as u64,
                })
                .collect();
        }
        if self.rank() != 0 {
            return Ok(crate::checkpoint::checkpoint_dir(
                &self.out_dir.join("checkpoints"),
                self.step,
            ));
        }
        let state = TrainState {
            step: self.step,
            position: self.source.loader_position(),
            nonfinite_steps: self.nonfinite,
            config: self.config.clone(),
            tar_positions,
            micro_batches: tar.map_or(0, |(_, b)| b),
        };
        let model = self.model()?;
        let optim = &self.optim;
        write_checkpoint(&self.out_dir.join("checkpoints"), &state, |dir| {
            model.save(dir.join(MODEL_FILE))?;
            optim.save(dir.join(OPTIMIZER_FILE))?;
            Ok(())
        })
    }

    /// Trains until `config.steps`, calling `on_step` after each step (and after validation,
    /// with the report), checkpointing every `checkpoint_every` steps and at the end, and
    /// drawing the curves at the end. Returns the final checkpoint's folder.
    pub fn run(
        &mut self,
        mut on_step: impl FnMut(&StepMetrics, Option<&EvalReport>),
    ) -> Result<PathBuf> {
        let every = |n: usize, step: usize| n > 0 && step.is_multiple_of(n);
        while self.step < self.config.steps {
            let mut m = self.train_step()?;
            let done = self.step >= self.config.steps;
            let report = if every(self.config.eval_every, self.step) || done {
                self.validate()?
            } else {
                None
            };
            // As the metrics files record it for this step.
            if let Some(r) = &report {
                m.val_miou_1click = r.miou_clicks.first().copied();
            }
            on_step(&m, report.as_ref());
            if every(self.config.checkpoint_every, self.step) && !done {
                self.save_checkpoint()?;
            }
        }
        let last = self.save_checkpoint()?;
        self.metrics.plot()?;
        // No rank ends before rank 0's last checkpoint is complete.
        if let Some(comm) = self.dist.as_deref_mut() {
            comm.barrier()?;
        }
        Ok(last)
    }
}
