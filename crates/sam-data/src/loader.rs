//! A data loader over any [`Dataset`]: a per-item transform run by worker threads, batches in a
//! deterministic order for a given seed whatever the number of workers, and a position that can
//! be saved and resumed.
//!
//! Determinism comes from deriving every random stream from `(seed, epoch, index)`: the epoch's
//! shuffle from `(seed, epoch)`, each item's transform RNG from `(seed, epoch, index)`. Which
//! thread runs an item, and when, therefore changes nothing.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use burn_dataset::Dataset;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::seed::mix_seed;

/// Settings of a [`DataLoader`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoaderConfig {
    /// Items per batch.
    pub batch_size: usize,
    /// Worker threads; 0 runs the transform on the calling thread.
    pub num_workers: usize,
    /// Shuffle each epoch (a new order per epoch, fixed by the seed).
    pub shuffle: bool,
    /// Seed of the order and of the per-item transform RNGs.
    pub seed: u64,
    /// Drop the last batch of an epoch when it is short.
    pub drop_last: bool,
    /// Skip items whose reading or transform fails (they are reported in [`Batch::skipped`]
    /// and counted) instead of returning the error.
    pub skip_errors: bool,
    /// Batches prepared ahead of the one being consumed.
    pub prefetch_batches: usize,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self {
            batch_size: 1,
            num_workers: 2,
            shuffle: true,
            seed: 0,
            drop_last: false,
            skip_errors: false,
            prefetch_batches: 2,
        }
    }
}

/// Where a loader is: the epoch, and how many of its batches were handed out. Save it with a
/// checkpoint; [`DataLoader::iter_from`] continues from it without repeating or skipping items.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoaderPosition {
    /// Epoch (0-based).
    pub epoch: u64,
    /// Batches of that epoch already handed out.
    pub batch: usize,
}

/// An item that was skipped, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct SkippedItem {
    /// Dataset index.
    pub index: usize,
    /// The error, as text.
    pub error: String,
}

/// One batch.
#[derive(Debug)]
pub struct Batch<O> {
    /// The transformed items, in order (skipped ones left out).
    pub items: Vec<O>,
    /// Their dataset indices.
    pub indices: Vec<usize>,
    /// Items of this batch that failed, when skipping is on.
    pub skipped: Vec<SkippedItem>,
    /// The position after this batch: resume from here.
    pub next: LoaderPosition,
}

type Transform<I, O> = dyn Fn(I, &mut StdRng) -> Result<O> + Send + Sync;

/// A batched, multi-threaded, seeded and resumable loader.
pub struct DataLoader<I, O> {
    dataset: Arc<dyn Dataset<I, DataError>>,
    transform: Arc<Transform<I, O>>,
    config: LoaderConfig,
    skipped: Arc<AtomicU64>,
    shard: Shard,
}

/// This process's part of every batch: `(rank, world_size)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shard {
    rank: usize,
    world: usize,
}

impl Shard {
    /// The contiguous part of `indices` that `rank` takes: `ceil(len / world)` items each, the
    /// last ranks taking fewer (or none) when the batch is short.
    fn part<'a>(&self, indices: &'a [usize]) -> &'a [usize] {
        let per = indices.len().div_ceil(self.world);
        let start = (self.rank * per).min(indices.len());
        &indices[start..(start + per).min(indices.len())]
    }
}

impl<I: 'static, O: Send + 'static> DataLoader<I, O> {
    /// A loader applying `transform` to every item read from `dataset`. The transform gets the
    /// item's own RNG, seeded from `(seed, epoch, index)`.
    pub fn new(
        dataset: Arc<dyn Dataset<I, DataError>>,
        transform: impl Fn(I, &mut StdRng) -> Result<O> + Send + Sync + 'static,
        config: LoaderConfig,
    ) -> Result<Self> {
        if config.batch_size == 0 {
            return Err(DataError::InvalidValue(
                "loader batch_size must be ≥ 1".into(),
            ));
        }
        Ok(Self {
            dataset,
            transform: Arc::new(transform),
            config,
            skipped: Arc::new(AtomicU64::new(0)),
            shard: Shard { rank: 0, world: 1 },
        })
    }

    /// Multi-process data parallelism: batches keep their global size, order and positions, but
    /// this loader reads and transforms only rank `rank`'s contiguous part of each (of
    /// `ceil(batch_size / world_size)` items); the item RNGs stay those of the global batch, so
    /// the ranks' parts together equal one process's batch.
    pub fn sharded(mut self, rank: usize, world_size: usize) -> Result<Self> {
        self.set_shard(rank, world_size)?;
        Ok(self)
    }

    /// [`DataLoader::sharded`] in place (iterators made before keep their own part).
    pub fn set_shard(&mut self, rank: usize, world_size: usize) -> Result<()> {
        if world_size == 0 || rank >= world_size {
            return Err(DataError::InvalidValue(format!(
                "loader shard: rank {rank} outside a world of {world_size}"
            )));
        }
        self.shard = Shard {
            rank,
            world: world_size,
        };
        Ok(())
    }

    /// The settings.
    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// Items in the dataset.
    pub fn dataset_len(&self) -> usize {
        self.dataset.len()
    }

    /// Batches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        let (n, b) = (self.dataset.len(), self.config.batch_size);
        if self.config.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// Items skipped so far by every iterator of this loader.
    pub fn skipped_count(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// The order of the dataset's indices in `epoch`.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        epoch_order(self.dataset.len(), &self.config, epoch)
    }

    /// Batches from `position` on, epoch after epoch, without end.
    pub fn iter_from(&self, position: LoaderPosition) -> Result<LoaderIter<I, O>> {
        self.iter(position, None)
    }

    /// The batches of one epoch, from its start.
    pub fn epoch(&self, epoch: u64) -> Result<LoaderIter<I, O>> {
        self.iter(LoaderPosition { epoch, batch: 0 }, Some(epoch))
    }

    fn iter(&self, position: LoaderPosition, last_epoch: Option<u64>) -> Result<LoaderIter<I, O>> {
        let per_epoch = self.batches_per_epoch();
        if per_epoch == 0 {
            return Err(DataError::InvalidValue(format!(
                "the loader has no batch: {} items, batch size {}{}",
                self.dataset.len(),
                self.config.batch_size,
                if self.config.drop_last {
                    " and drop_last"
                } else {
                    ""
                }
            )));
        }
        if position.batch > per_epoch {
            return Err(DataError::InvalidValue(format!(
                "cannot resume at batch {} of epoch {}: an epoch has {per_epoch} batches",
                position.batch, position.epoch
            )));
        }
        let (job_tx, job_rx) = channel::<Job>();
        let (result_tx, result_rx) = channel();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let workers = (0..self.config.num_workers)
            .map(|_| {
                let (dataset, transform) = (self.dataset.clone(), self.transform.clone());
                let (jobs, results) = (job_rx.clone(), result_tx.clone());
                let seed = self.config.seed;
                std::thread::spawn(move || worker(&*dataset, &*transform, seed, &jobs, &results))
            })
            .collect();
        let start = normalize(position, per_epoch);
        Ok(LoaderIter {
            dataset: self.dataset.clone(),
            transform: self.transform.clone(),
            config: self.config.clone(),
            skipped_total: self.skipped.clone(),
            shard: self.shard,
            per_epoch,
            last_epoch,
            cursor: start,
            order: (start.epoch, self.order(start.epoch)),
            queue: VecDeque::new(),
            pending: BTreeMap::new(),
            next_seq: 0,
            job_tx: Some(job_tx),
            job_rx,
            result_rx,
            workers,
        })
    }
}

/// `(epoch, per_epoch)` is the same place as `(epoch + 1, 0)`; the latter is used.
fn normalize(p: LoaderPosition, per_epoch: usize) -> LoaderPosition {
    if p.batch >= per_epoch {
        LoaderPosition {
            epoch: p.epoch + 1,
            batch: 0,
        }
    } else {
        p
    }
}

fn epoch_order(n: usize, config: &LoaderConfig, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if config.shuffle {
        order.shuffle(&mut StdRng::seed_from_u64(mix_seed(config.seed, epoch)));
    }
    order
}

/// `(sequence number, epoch, dataset index)`.
type Job = (u64, u64, usize);
type JobResult<O> = (u64, Result<O>);

fn item_rng(seed: u64, epoch: u64, index: usize) -> StdRng {
    StdRng::seed_from_u64(mix_seed(mix_seed(seed, epoch), index as u64))
}

/// One item read and transformed. A panicking dataset or transform becomes that item's error,
/// on a worker (instead of a result that never comes) and inline (`num_workers: 0`) alike.
fn run_item<I, O>(
    dataset: &dyn Dataset<I, DataError>,
    transform: &Transform<I, O>,
    seed: u64,
    epoch: u64,
    index: usize,
) -> Result<O> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let item = dataset.get(index)?;
        transform(item, &mut item_rng(seed, epoch, index))
    }))
    .unwrap_or_else(|payload| {
        Err(DataError::InvalidValue(format!(
            "reading or transforming item {index} panicked: {}",
            panic_message(&*payload)
        )))
    })
}

/// The message a panic carried (`panic!` with a literal or a formatted string).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

fn worker<I, O>(
    dataset: &dyn Dataset<I, DataError>,
    transform: &Transform<I, O>,
    seed: u64,
    jobs: &Mutex<Receiver<Job>>,
    results: &Sender<JobResult<O>>,
) {
    loop {
        // The lock is held only while waiting for the next job, not while running it.
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok((seq, epoch, index)) = job else { return };
        let out = run_item(dataset, transform, seed, epoch, index);
        if results.send((seq, out)).is_err() {
            return;
        }
    }
}

/// A batch handed to the workers, not yet returned.
struct Dispatched {
    position: LoaderPosition,
    indices: Vec<usize>,
    first_seq: u64,
}

/// Iterator over batches; yields `Err` for a failed item unless skipping is on. Dropping it
/// stops its workers.
pub struct LoaderIter<I, O> {
    dataset: Arc<dyn Dataset<I, DataError>>,
    transform: Arc<Transform<I, O>>,
    config: LoaderConfig,
    skipped_total: Arc<AtomicU64>,
    shard: Shard,
    per_epoch: usize,
    last_epoch: Option<u64>,
    /// The next batch to dispatch.
    cursor: LoaderPosition,
    /// The order of `cursor.epoch`.
    order: (u64, Vec<usize>),
    queue: VecDeque<Dispatched>,
    pending: BTreeMap<u64, Result<O>>,
    next_seq: u64,
    job_tx: Option<Sender<Job>>,
    /// The workers' end of the job channel, drained on drop.
    job_rx: Arc<Mutex<Receiver<Job>>>,
    result_rx: Receiver<JobResult<O>>,
    workers: Vec<JoinHandle<()>>,
}

impl<I, O> LoaderIter<I, O> {
    fn dispatch_ahead(&mut self) {
        let ahead = if self.workers.is_empty() {
            1
        } else {
            self.config.prefetch_batches + 1
        };
        while self.queue.len() < ahead && self.last_epoch.is_none_or(|e| self.cursor.epoch <= e) {
            let position = self.cursor;
            if self.order.0 != position.epoch {
                self.order = (
                    position.epoch,
                    epoch_order(self.dataset.len(), &self.config, position.epoch),
                );
            }
            let bs = self.config.batch_size;
            let order = &self.order.1;
            let indices = self
                .shard
                .part(&order[position.batch * bs..((position.batch + 1) * bs).min(order.len())])
                .to_vec();
            let first_seq = self.next_seq;
            if let Some(tx) = self.job_tx.as_ref().filter(|_| !self.workers.is_empty()) {
                for (k, &index) in indices.iter().enumerate() {
                    // A send fails only when every worker is gone; `next` then reports it.
                    let _ = tx.send((first_seq + k as u64, position.epoch, index));
                }
            }
            self.next_seq += indices.len() as u64;
            self.queue.push_back(Dispatched {
                position,
                indices,
                first_seq,
            });
            self.cursor = normalize(
                LoaderPosition {
                    epoch: position.epoch,
                    batch: position.batch + 1,
                },
                self.per_epoch,
            );
        }
    }

    fn result(&mut self, seq: u64, epoch: u64, index: usize) -> Result<O> {
        if self.workers.is_empty() {
            return run_item(
                &*self.dataset,
                &*self.transform,
                self.config.seed,
                epoch,
                index,
            );
        }
        loop {
            if let Some(r) = self.pending.remove(&seq) {
                return r;
            }
            match self.result_rx.recv() {
                Ok((s, r)) => {
                    self.pending.insert(s, r);
                }
                Err(_) => {
                    return Err(DataError::InvalidValue(
                        "the loader's worker threads stopped".into(),
                    ));
                }
            }
        }
    }
}

impl<I, O> Iterator for LoaderIter<I, O> {
    type Item = Result<Batch<O>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.dispatch_ahead();
        let batch = self.queue.pop_front()?;
        let mut out = Batch {
            items: Vec::with_capacity(batch.indices.len()),
            indices: Vec::with_capacity(batch.indices.len()),
            skipped: Vec::new(),
            next: normalize(
                LoaderPosition {
                    epoch: batch.position.epoch,
                    batch: batch.position.batch + 1,
                },
                self.per_epoch,
            ),
        };
        let mut first_error = None;
        // Every result of the batch is collected, even after an error, so that the sequence
        // numbers stay in step with the workers.
        for (k, &index) in batch.indices.iter().enumerate() {
            match self.result(batch.first_seq + k as u64, batch.position.epoch, index) {
                Ok(item) => {
                    out.items.push(item);
                    out.indices.push(index);
                }
                Err(e) if self.config.skip_errors => {
                    self.skipped_total.fetch_add(1, Ordering::Relaxed);
                    out.skipped.push(SkippedItem {
                        index,
                        error: e.to_string(),
                    });
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Some(match first_error {
            Some(e) => Err(e),
            None => Ok(out),
        })
    }
}

impl<I, O> Drop for LoaderIter<I, O> {
    fn drop(&mut self) {
        // Closing the job channel ends each worker after its current item, once the jobs
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
