//! SA-1B as distributed: `.tar` shards of `sa_<id>.jpg` + `sa_<id>.json` members, read in place
//! and in a stream — never unpacked, never a whole shard in memory.
//!
//! Per epoch, the shard list is shuffled identically on every rank and dealt out round-robin
//! (see [`rank_shards`]); each rank reads its shards' headers in order, pairs the members, and
//! mixes the samples through a seeded shuffle buffer. Worker threads read and decode the
//! samples; results are handed out in stream order whatever the threads' timing. The position
//! is `(epoch, samples handed out)`: resuming replays the header pass and the buffer without
//! reading any member's body, then continues exactly.
//!
//! A damaged sample (corrupt JPEG, malformed JSON, lone member, truncated or unreadable shard)
//! counts as one handed-out unit: it is skipped and recorded, or yielded as an `Err` when
//! [`Sa1bTarConfig::skip_errors`] is off; the stream goes on either way.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::annotation::AnnotatedImage;
use super::tar_decode::decode_unit;
use super::tar_epoch::{EpochUnits, item_seed, rank_shards};
use super::tar_samples::Unit;
use crate::error::{DataError, Result};

/// Settings of an [`Sa1bTarStream`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sa1bTarConfig {
    /// The shard files (any order: they are sorted by path, duplicates dropped).
    pub shards: Vec<PathBuf>,
    /// This process's rank, `0..world_size`.
    pub rank: usize,
    /// Number of ranks; at most the number of shards.
    pub world_size: usize,
    /// Seed of the shard order, the shuffle buffer and the per-sample transform RNGs.
    pub seed: u64,
    /// Shuffle the shard order each epoch (otherwise sorted order every epoch).
    pub shuffle_shards: bool,
    /// Samples held by the shuffle buffer; 0 or 1 reads in archive order. The buffer holds
    /// member locations, not bytes, so thousands cost little memory.
    pub shuffle_buffer: usize,
    /// Worker threads decoding samples; 0 decodes on the calling thread.
    pub num_workers: usize,
    /// Samples dispatched to the workers beyond one per worker.
    pub prefetch: usize,
    /// Leave damaged samples out (recorded in [`Sa1bTarStream::skipped`]) instead of yielding
    /// them as `Err`.
    pub skip_errors: bool,
}

impl Sa1bTarConfig {
    /// Defaults for `shards`: one rank, seed 0, shuffled shards, a 1000-sample buffer, 2
    /// workers, damaged samples skipped.
    pub fn new(shards: Vec<PathBuf>) -> Self {
        Self {
            shards,
            rank: 0,
            world_size: 1,
            seed: 0,
            shuffle_shards: true,
            shuffle_buffer: 1000,
            num_workers: 2,
            prefetch: 4,
            skip_errors: true,
        }
    }
}

/// The `.tar` files of `dir`, sorted by name (`sa_000000.tar`, `sa_000001.tar`, …).
pub fn list_shards(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
    let dir = dir.as_ref();
    let err = |reason: String| DataError::DatasetFile {
        path: dir.to_path_buf(),
        reason,
    };
    let mut shards = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| err(e.to_string()))? {
        let path = entry.map_err(|e| err(e.to_string()))?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "tar") {
            shards.push(path);
        }
    }
    if shards.is_empty() {
        return Err(err("no .tar shard in the folder".into()));
    }
    shards.sort();
    Ok(shards)
}

/// Where a rank's stream is: the epoch, and how many of its samples (damaged ones included)
/// were handed out. Save it with a checkpoint; [`Sa1bTarStream::with_transform`] continues
/// from it with neither repeats nor gaps, given the same shards, seed, rank, world size and
/// buffer size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TarPosition {
    /// Epoch (0-based).
    pub epoch: u64,
    /// Samples of that epoch this rank has handed out.
    pub emitted: u64,
}

/// A damaged sample (skipped, or yielded as `Err`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedSample {
    /// Its place in the stream: epoch and index in the epoch.
    pub position: TarPosition,
    /// The error, naming the shard and member.
    pub error: String,
}

/// Most skipped samples kept in [`Sa1bTarStream::skipped`]; later ones are only counted.
const MAX_KEPT_SKIPPED: usize = 1000;

type Transform<O> = dyn Fn(AnnotatedImage, &mut StdRng) -> Result<O> + Send + Sync;
type Job = (u64, u64, u64, Unit);

/// A dispatched unit whose result is not yet handed out.
struct InFlight {
    seq: u64,
    /// Its place in the epoch.
    at: TarPosition,
    /// The position once it is handed out.
    after: TarPosition,
    /// The unit itself when decoding on the calling thread.
    unit: Option<Unit>,
}

/// One rank's endless stream of SA-1B samples from tar shards, epoch after epoch (an epoch in
/// which the rank finds no sample ends it). Dropping it stops its workers.
pub struct Sa1bTarStream<O = AnnotatedImage> {
    config: Sa1bTarConfig,
    transform: Arc<Transform<O>>,
    /// Units of `dispatch.epoch`.
    units: EpochUnits,
    /// The position after the last dispatched unit.
    dispatch: TarPosition,
    last_epoch: Option<u64>,
    ended: bool,
    position: TarPosition,
    in_flight: VecDeque<InFlight>,
    pending: BTreeMap<u64, Result<O>>,
    next_seq: u64,
    job_tx: Option<Sender<Job>>,
    /// The workers' end of the job channel, drained on drop.
    job_rx: Arc<Mutex<Receiver<Job>>>,
    result_rx: Receiver<(u64, Result<O>)>,
    workers: Vec<JoinHandle<()>>,
    skipped: Vec<SkippedSample>,
    skipped_count: u64,
    ignored_before: u64,
    /// Whether the epoch being handed out was seen from its start, and gave a sample yet:
    /// an epoch entirely damaged would otherwise make an endless stream spin.
    epoch_whole: bool,
    epoch_good: bool,
}

impl Sa1bTarStream<AnnotatedImage> {
    /// The decoded samples from `position` on.
    pub fn new(config: Sa1bTarConfig, position: TarPosition) -> Result<Self> {
        Self::with_transform(config, position, |item, _| Ok(item))
    }
}

impl<O: Send + 'static> Sa1bTarStream<O> {
    /// The samples from `position` on, each passed through `transform` in the workers (e.g.
    /// `train_sample`). The transform's RNG is seeded from `(seed, epoch, rank, index in the
    /// epoch)`, so its output does not depend on the number of workers.
    pub fn with_transform(
        config: Sa1bTarConfig,
        position: TarPosition,
        transform: impl Fn(AnnotatedImage, &mut StdRng) -> Result<O> + Send + Sync + 'static,
    ) -> Result<Self> {
        let units = epoch_units(&config, position.epoch)?;
        let (job_tx, job_rx) = channel::<Job>();
        let (result_tx, result_rx) = channel();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let transform: Arc<Transform<O>> = Arc::new(transform);
        let workers = (0..config.num_workers)
            .map(|_| {
                let (jobs, results, transform) =
                    (job_rx.clone(), result_tx.clone(), transform.clone());
                let (seed, rank) = (config.seed, config.rank);
                std::thread::spawn(move || worker(&*transform, seed, rank, &jobs, &results))
            })
            .collect();
        let mut stream = Self {
            config,
            transform,
            units,
            dispatch: TarPosition {
                epoch: position.epoch,
                emitted: 0,
            },
            last_epoch: None,
            ended: false,
            position,
            in_flight: VecDeque::new(),
            pending: BTreeMap::new(),
            next_seq: 0,
            job_tx: Some(job_tx),
            job_rx,
            result_rx,
            workers,
            skipped: Vec::new(),
            skipped_count: 0,
            ignored_before: 0,
            epoch_whole: position.emitted == 0,
            epoch_good: false,
        };
        // Replaying the headers and the buffer, no body read, no decode.
        for _ in 0..position.emitted {
            if stream.units.next().is_none() {
                return Err(DataError::InvalidValue(format!(
                    "cannot resume at sample {} of epoch {}: rank {} has only {} samples in it \
                     (were the shards or the settings changed?)",
                    position.emitted, position.epoch, stream.config.rank, stream.dispatch.emitted
                )));
            }
            stream.dispatch.emitted += 1;
        }
        if position.emitted > 0 && !stream.units.has_more() {
            stream.next_epoch()?;
            stream.position = stream.dispatch;
            stream.epoch_whole = true;
        }
        Ok(stream)
    }

    /// Ends the stream at the end of the epoch it starts in (call it before iterating).
    pub fn until_epoch_end(mut self) -> Self {
        self.last_epoch = Some(self.dispatch.epoch);
        self
    }

    /// The position after the last sample handed out: save it to resume from there.
    pub fn position(&self) -> TarPosition {
        self.position
    }

    /// Samples that failed so far — damaged, or their transform failed — with their errors
    /// (the first 1000), whether they were skipped or yielded as `Err`.
    pub fn skipped(&self) -> &[SkippedSample] {
        &self.skipped
    }

    /// Number of samples that failed so far (skipped, or yielded as `Err`).
    pub fn skipped_count(&self) -> u64 {
        self.skipped_count
    }

    /// Members neither image nor JSON (directories included) seen by this stream's reader,
    /// which runs ahead of what is handed out and, on resume, over the replayed part too.
    pub fn ignored_members(&self) -> u64 {
        self.ignored_before + self.units.ignored()
    }

    /// The settings.
    pub fn config(&self) -> &Sa1bTarConfig {
        &self.config
    }

    fn next_epoch(&mut self) -> Result<()> {
        let epoch = self.dispatch.epoch + 1;
        self.ignored_before += self.units.ignored();
        self.units = epoch_units(&self.config, epoch)?;
        self.dispatch = TarPosition { epoch, emitted: 0 };
        Ok(())
    }

    /// Dispatches units until enough are in flight; stops at the end of the stream.
    fn fill(&mut self) -> Result<()> {
        let ahead = if self.workers.is_empty() {
            1
        } else {
            self.config.num_workers + self.config.prefetch
        };
        while self.in_flight.len() < ahead && !self.ended {
            if self.last_epoch.is_some_and(|l| self.dispatch.epoch > l) {
                self.ended = true;
                break;
            }
            let Some(unit) = self.units.next() else {
                // Only an epoch without any unit gets here: otherwise the epoch was switched
                // when its last unit was dispatched. Going on would spin for ever.
                self.ended = true;
                break;
            };
            let at = self.dispatch;
            let seq = self.next_seq;
            self.next_seq += 1;
            self.dispatch.emitted += 1;
            if !self.units.has_more() {
                if self.last_epoch.is_some_and(|l| at.epoch >= l) {
                    // No need to open the next epoch's first shards only to stop.
                    self.dispatch = TarPosition {
                        epoch: at.epoch + 1,
                        emitted: 0,
                    };
                } else {
                    self.next_epoch()?;
                }
            }
            let unit = match self.job_tx.as_ref().filter(|_| !self.workers.is_empty()) {
                Some(tx) => {
                    // A send fails only when every worker is gone; `next` reports it then.
                    let _ = tx.send((seq, at.epoch, at.emitted, unit));
                    None
                }
                None => Some(unit),
            };
            self.in_flight.push_back(InFlight {
                seq,
                at,
                after: self.dispatch,
                unit,
            });
        }
        Ok(())
    }

    fn result(&mut self, job: &mut InFlight) -> Result<O> {
        if let Some(unit) = job.unit.take() {
            return run_unit(
                &*self.transform,
                self.config.seed,
                self.config.rank,
                job.at,
                unit,
            );
        }
        loop {
            if let Some(r) = self.pending.remove(&job.seq) {
                return r;
            }
            match self.result_rx.recv() {
                Ok((s, r)) => {
                    self.pending.insert(s, r);
                }
                Err(_) => {
                    return Err(DataError::InvalidValue(
                        "the tar stream's worker threads stopped".into(),
                    ));
                }
            }
        }
    }
}

fn epoch_units(config: &Sa1bTarConfig, epoch: u64) -> Result<EpochUnits> {
    let shards = rank_shards(
        &config.shards,
        config.rank,
        config.world_size,
        config.seed,
        epoch,
        config.shuffle_shards,
    )?;
    Ok(EpochUnits::new(
        shards,
        config.shuffle_buffer,
        config.seed,
        epoch,
        config.rank,
    ))
}

fn run_unit<O>(
    transform: &Transform<O>,
    seed: u64,
    rank: usize,
    at: TarPosition,
    unit: Unit,
) -> Result<O> {
    let item = decode_unit(unit)?;
    let mut rng = StdRng::seed_from_u64(item_seed(seed, at.epoch, rank, at.emitted));
    transform(item, &mut rng)
}

fn worker<O>(
    transform: &Transform<O>,
    seed: u64,
    rank: usize,
    jobs: &Mutex<Receiver<Job>>,
    results: &Sender<(u64, Result<O>)>,
) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok((seq, epoch, emitted, unit)) = job else {
            return;
        };
        let at = TarPosition { epoch, emitted };
        let member = match &unit {
            Unit::Pair { shard, image, .. } => shard.join(&image.name).display().to_string(),
            Unit::Damaged(_) => "a damaged member".into(),
        };
        // A panic (in a decoder or the transform) becomes that sample's error instead of a
        // result that never comes.
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_unit(transform, seed, rank, at, unit)
        }))
        .unwrap_or_else(|payload| {
            Err(DataError::InvalidValue(format!(
                "decoding or transforming {member} (sample {emitted} of epoch {epoch}) panicked: {}",
                crate::loader::panic_message(&*payload)
            )))
        });
        if results.send((seq, out)).is_err() {
            return;
        }
    }
}

impl<O: Send + 'static> Iterator for Sa1bTarStream<O> {
    type Item = Result<O>;

    fn next(&mut self) -> Option<Result<O>> {
        loop {
            if let Err(e) = self.fill() {
                self.ended = true;
                return Some(Err(e));
            }
            let mut job = self.in_flight.pop_front()?;
            let result = self.result(&mut job);
            self.position = job.after;
            let out = match result {
                Ok(item) => {
                    self.epoch_good = true;
                    Ok(item)
                }
                Err(e) => {
                    self.skipped_count += 1;
                    if self.skipped.len() < MAX_KEPT_SKIPPED {
                        self.skipped.push(SkippedSample {
                            position: job.at,
                            error: e.to_string(),
                        });
                    }
                    Err(e)
                }
            };
            if job.after.epoch != job.at.epoch {
                if self.epoch_whole && !self.epoch_good {
                    self.ended = true;
                    self.in_flight.clear();
                    return Some(Err(DataError::InvalidValue(format!(
                        "rank {}: no sample of epoch {} could be read ({} damaged so far, see \
                         `skipped`); the stream stops rather than loop over damaged data",
                        self.config.rank, job.at.epoch, self.skipped_count
                    ))));
                }
                (self.epoch_whole, self.epoch_good) = (true, false);
            }
            if out.is_ok() || !self.config.skip_errors {
                return Some(out);
            }
        }
    }
}

impl<O> Drop for Sa1bTarStream<O> {
    fn drop(&mut self) {
        // Closing the job channel ends each worker after its current sample, once the jobs
        // already queued are gone: they are taken out here rather than decoded for nothing.
        self.job_tx = None;
        if let Ok(rx) = self.job_rx.lock() {
            while rx.try_recv().is_ok() {}
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}
