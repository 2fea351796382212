//! Where the training samples come from: a dataset with random access through the seeded,
//! resumable loader, or SA-1B's `.tar` shards streamed as distributed.

use std::sync::Arc;

use sam_data::dataset::{AnnotatedImage, Dataset, Sa1bTarConfig, Sa1bTarStream, TarPosition};
use sam_data::loader::LoaderIter;
use sam_data::seed::mix_seed;
use sam_data::{DataError, DataLoader, LoaderPosition, TrainSample, train_sample};

use crate::config::TrainConfig;
use crate::error::{Result, TrainError};

/// A dataset with random access (SA-1B folder, COCO, ...).
pub type SharedDataset = Arc<dyn Dataset<AnnotatedImage, DataError>>;

/// The training data of a run.
#[derive(Clone)]
pub enum TrainData {
    /// Read by index through the loader: a seeded order per epoch, exact resume, and in a
    /// multi-process run each rank's contiguous part of every global batch (so N ranks see one
    /// process's batches).
    Indexed(SharedDataset),
    /// SA-1B's `.tar` shards, streamed without unpacking: whole shards dealt to the ranks each
    /// epoch, a seeded shuffle buffer, damaged members skipped and counted. Each rank draws its
    /// own micro-batches; its stream position is saved in every checkpoint. The run's own
    /// settings replace `seed` and `num_workers` (from `loader`), and `rank` and `world_size`
    /// (from [`crate::Trainer::distributed`]), so that a resumed run streams as the first did.
    TarShards(Sa1bTarConfig),
}

impl From<SharedDataset> for TrainData {
    fn from(d: SharedDataset) -> Self {
        Self::Indexed(d)
    }
}

/// Salt of the tar stream's batch seeds.
const TAR_BATCH: u64 = 0x5441_5242; // "TARB"

/// A micro-batch and the seeds drawn from its place in the run.
pub(crate) struct Drawn {
    pub samples: Vec<TrainSample>,
    /// Seed of the micro-batch's prompt simulation.
    pub batch_seed: u64,
    /// `(a, b)` from which drop path's generator is seeded.
    pub place: (u64, u64),
}

pub(crate) enum Source {
    Indexed {
        loader: DataLoader<AnnotatedImage, TrainSample>,
        iter: Option<LoaderIter<AnnotatedImage, TrainSample>>,
        position: LoaderPosition,
    },
    Tar {
        config: Sa1bTarConfig,
        data: sam_data::TrainSampleConfig,
        stream: Option<Box<Sa1bTarStream<TrainSample>>>,
        /// Every rank's stream position in the checkpoint resumed (empty for a new run).
        resume: Vec<TarPosition>,
        /// Samples per micro-batch on this rank.
        per_batch: usize,
        /// Micro-batches drawn since the run began (the same on every rank).
        batches: u64,
    },
}

impl Source {
    pub(crate) fn new(
        data: TrainData,
        config: &TrainConfig,
        position: LoaderPosition,
        tar: Option<(&[TarPosition], u64)>,
    ) -> Result<Self> {
        match data {
            TrainData::Indexed(dataset) => {
                let sample = sample_config(config);
                let loader = DataLoader::new(
                    dataset,
                    move |item, rng| train_sample(item, &sample, rng),
                    config.loader.clone(),
                )?;
                Ok(Self::Indexed {
                    loader,
                    iter: None,
                    position,
                })
            }
            TrainData::TarShards(mut tar_config) => {
                let (positions, batches) = tar.unwrap_or((&[], 0));
                tar_config.seed = config.loader.seed;
                tar_config.num_workers = config.loader.num_workers;
                (tar_config.rank, tar_config.world_size) = (0, 1);
                Ok(Self::Tar {
                    resume: positions.to_vec(),
                    config: tar_config,
                    data: sample_config(config),
                    stream: None,
                    per_batch: config.loader.batch_size,
                    batches,
                })
            }
        }
    }

    /// Makes this source rank `rank`'s part of a `world`-process run.
    pub(crate) fn shard(&mut self, rank: usize, world: usize) -> Result<()> {
        match self {
            Self::Indexed { loader, iter, .. } => {
                loader.set_shard(rank, world)?;
                *iter = None;
            }
            Self::Tar {
                config,
                stream,
                per_batch,
                ..
            } => {
                if !per_batch.is_multiple_of(world) {
                    return Err(TrainError::config(
                        "loader.batch_size",
                        format!("{per_batch} does not split over {world} processes"),
                    ));
                }
                config.rank = rank;
                config.world_size = world;
                *stream = None;
                *per_batch /= world;
            }
        }
        Ok(())
    }

    /// The next micro-batch (this rank's part of it in a multi-process run).
    pub(crate) fn next(&mut self, seed: u64) -> Result<Drawn> {
        match self {
            Self::Indexed {
                loader,
                iter,
                position,
            } => {
                if iter.is_none() {
                    *iter = Some(loader.iter_from(*position)?);
                }
                let it = iter
                    .as_mut()
                    .ok_or_else(|| TrainError::config("loader", "no iterator"))?;
                let batch = it
                    .next()
                    .ok_or_else(|| TrainError::config("loader", "the loader ended"))??;
                let place = (position.epoch, position.batch as u64);
                let batch_seed = mix_seed(mix_seed(seed, place.0), place.1);
                *position = batch.next;
                Ok(Drawn {
                    samples: batch.items,
                    batch_seed,
                    place,
                })
            }
            Self::Tar {
                config,
                data,
                stream,
                resume,
                per_batch,
                batches,
            } => {
                if stream.is_none() {
                    let start = resume_point(resume, config)?;
                    let data = data.clone();
                    *stream = Some(Box::new(Sa1bTarStream::with_transform(
                        config.clone(),
                        start,
                        move |item, rng| train_sample(item, &data, rng),
                    )?));
                }
                let s = stream
                    .as_mut()
                    .ok_or_else(|| TrainError::config("tar shards", "no stream"))?;
                let mut samples = Vec::with_capacity(*per_batch);
                while samples.len() < *per_batch {
                    match s.next() {
                        Some(item) => samples.push(item?),
                        None => {
                            return Err(TrainError::config(
                                "tar shards",
                                format!("rank {}'s stream ended", config.rank),
                            ));
                        }
                    }
                }
                let place = (TAR_BATCH, *batches);
                *batches += 1;
                Ok(Drawn {
                    samples,
                    batch_seed: mix_seed(mix_seed(seed, TAR_BATCH), place.1),
                    place,
                })
            }
        }
    }

    /// The loader position (indexed data; the start for streams).
    pub(crate) fn loader_position(&self) -> LoaderPosition {
        match self {
            Self::Indexed { position, .. } => *position,
            Self::Tar { .. } => LoaderPosition::default(),
        }
    }

    /// This rank's stream position and the micro-batches drawn (tar shards only).
    pub(crate) fn tar_position(&self) -> Option<(TarPosition, u64)> {
        match self {
            Self::Indexed { .. } => None,
            Self::Tar {
                stream,
                resume,
                config,
                batches,
                ..
            } => Some((
                match stream {
                    Some(s) => Sa1bTarStream::position(s),
                    None => resume_point(resume, config).ok()?,
                },
                *batches,
            )),
        }
    }

    /// Micro-batches without any object tolerated in a row before the data is declared
    /// useless: an epoch's worth for indexed data.
    pub(crate) fn empty_batches_limit(&self) -> usize {
        match self {
            Self::Indexed { loader, .. } => loader.batches_per_epoch(),
            Self::Tar { .. } => 10_000,
        }
    }

    /// Items skipped as unreadable so far.
    pub(crate) fn skipped(&self) -> u64 {
        match self {
            Self::Indexed { loader, .. } => loader.skipped_count(),
            Self::Tar { stream, .. } => stream.as_ref().map_or(0, |s| s.skipped_count()),
        }
    }

    /// What every rank must agree on besides the config: the dataset's size, or the shards.
    pub(crate) fn identity(&self) -> String {
        match self {
            Self::Indexed { loader, .. } => format!("indexed {}", loader.dataset_len()),
            Self::Tar { config, .. } => format!("tar {:?}", config.shards),
        }
    }
}

/// This rank's place in the stream of a resumed run: shards are dealt per rank, so a
/// checkpoint resumes only with as many ranks as wrote it.
fn resume_point(resume: &[TarPosition], config: &Sa1bTarConfig) -> Result<TarPosition> {
    if resume.is_empty() {
        return Ok(TarPosition::default());
    }
    if resume.len() != config.world_size {
        return Err(TrainError::config(
            "tar shards",
            format!(
                "the checkpoint holds the stream positions of {} ranks, this run has {}: \
                 shards are dealt per rank, so resume with {} ranks",
                resume.len(),
                config.world_size,
                resume.len()
            ),
        ));
    }
    Ok(resume[config.rank])
}

/// The sample transform's settings: the run's, keeping the masks text-prompt training crops.
fn sample_config(config: &TrainConfig) -> sam_data::TrainSampleConfig {
    let mut data = config.data.clone();
    if let Some(t) = &config.text {
        data.keep_masks_min_area = Some(t.min_area);
    }
    data
}
