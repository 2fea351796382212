//! One rank's sample stream for one epoch: which shards it reads, in which order, and the
//! shuffle buffer over their samples. Everything here depends only on the shard list, the
//! archives' headers and `(seed, epoch, rank)`, never on decoding, so replaying it to resume
//! meets the same units in the same order without reading a member's body.

use std::collections::VecDeque;
use std::path::PathBuf;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::shuffle_buffer::ShuffleBuffer;
use super::tar_samples::{ShardSamples, Unit};
use crate::error::{DataError, Result};
use crate::seed::mix_seed;

/// Salts separating the random streams drawn from one seed.
const SHARD_ORDER: u64 = 0x0053_4841_5244; // "SHARD"
const BUFFER: u64 = 0x4255_4646; // "BUFF"
const ITEM: u64 = 0x4954_454D; // "ITEM"

fn stream_seed(seed: u64, salt: u64, epoch: u64, rank: u64) -> u64 {
    mix_seed(mix_seed(mix_seed(seed, salt), epoch), rank)
}

/// The seed of the RNG handed to the transform of the `index`-th unit of `rank`'s `epoch`.
pub(crate) fn item_seed(seed: u64, epoch: u64, rank: usize, index: u64) -> u64 {
    mix_seed(stream_seed(seed, ITEM, epoch, rank as u64), index)
}

/// Rank `rank`'s shards in `epoch`, in reading order: the sorted list is shuffled by
/// `(seed, epoch)` alone (so every rank computes the same permutation), then shard `i` of it
/// goes to rank `i % world_size`. Every shard is read by exactly one rank per epoch; fewer
/// shards than ranks is an error, since a rank would have nothing to read.
pub fn rank_shards(
    shards: &[PathBuf],
    rank: usize,
    world_size: usize,
    seed: u64,
    epoch: u64,
    shuffle: bool,
) -> Result<Vec<PathBuf>> {
    if world_size == 0 || rank >= world_size {
        return Err(DataError::InvalidValue(format!(
            "tar stream: rank {rank} of world size {world_size}; need 0 ≤ rank < world size"
        )));
    }
    let mut order = shards.to_vec();
    order.sort();
    order.dedup();
    if order.len() < world_size {
        return Err(DataError::InvalidValue(format!(
            "tar stream: {} shards cannot feed {world_size} ranks (each rank reads whole \
             shards); use at most {} ranks or more, smaller shards",
            order.len(),
            order.len()
        )));
    }
    if shuffle {
        order.shuffle(&mut StdRng::seed_from_u64(stream_seed(
            seed,
            SHARD_ORDER,
            epoch,
            0,
        )));
    }
    Ok(order
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % world_size == rank)
        .map(|(_, s)| s)
        .collect())
}

/// The units one rank meets in one epoch, with one unit of lookahead so that the last one is
/// known as such when it is handed out.
pub(crate) struct EpochUnits {
    shards: VecDeque<PathBuf>,
    current: Option<ShardSamples>,
    buffer: ShuffleBuffer<Unit>,
    lookahead: Option<Unit>,
    /// Ignored members of finished shards.
    ignored: u64,
}

impl EpochUnits {
    /// `shards` in reading order (see [`rank_shards`]).
    pub fn new(shards: Vec<PathBuf>, buffer: usize, seed: u64, epoch: u64, rank: usize) -> Self {
        let rng = StdRng::seed_from_u64(stream_seed(seed, BUFFER, epoch, rank as u64));
        let mut units = Self {
            shards: shards.into(),
            current: None,
            buffer: ShuffleBuffer::new(buffer, rng),
            lookahead: None,
            ignored: 0,
        };
        units.lookahead = units.pull();
        units
    }

    /// Whether a unit is left.
    pub fn has_more(&self) -> bool {
        self.lookahead.is_some()
    }

    /// Members seen so far that are neither an image nor a JSON.
    pub fn ignored(&self) -> u64 {
        self.ignored + self.current.as_ref().map_or(0, ShardSamples::ignored)
    }

    fn pull(&mut self) -> Option<Unit> {
        loop {
            match self.read() {
                Some(u) => {
                    if let Some(out) = self.buffer.push(u) {
                        return Some(out);
                    }
                }
                None => return self.buffer.drain_one(),
            }
        }
    }

    /// The next unit in archive order.
    fn read(&mut self) -> Option<Unit> {
        loop {
            if let Some(cur) = self.current.as_mut() {
                if let Some(u) = cur.next() {
                    return Some(u);
                }
                self.ignored += cur.ignored();
                self.current = None;
            }
            let shard = self.shards.pop_front()?;
            match ShardSamples::open(&shard) {
                Ok(s) => self.current = Some(s),
                Err(unit) => return Some(unit),
            }
        }
    }
}

impl Iterator for EpochUnits {
    type Item = Unit;

    fn next(&mut self) -> Option<Unit> {
        let out = self.lookahead.take()?;
        self.lookahead = self.pull();
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shard_to_one_rank_and_the_same_permutation_on_all() {
        let shards: Vec<PathBuf> = (0..10)
            .map(|i| PathBuf::from(format!("sa_{i:06}.tar")))
            .collect();
        for world in 1..=4 {
            for epoch in 0..3 {
                let mut all: Vec<PathBuf> = (0..world)
                    .flat_map(|r| rank_shards(&shards, r, world, 7, epoch, true).unwrap())
                    .collect();
                all.sort();
                assert_eq!(all, shards);
            }
        }
        let e0 = rank_shards(&shards, 0, 1, 7, 0, true).unwrap();
        assert_ne!(e0, rank_shards(&shards, 0, 1, 7, 1, true).unwrap());
        assert_eq!(rank_shards(&shards, 0, 1, 7, 1, false).unwrap(), shards);
        let e = rank_shards(&shards[..2], 0, 3, 7, 0, true).unwrap_err();
        assert!(
            e.to_string().contains("2 shards cannot feed 3 ranks"),
            "{e}"
        );
        let e = rank_shards(&shards, 3, 3, 7, 0, true)
            .expect_err("an error")
            .to_string();
        assert!(e.contains("rank 3 of world size 3"), "{e}");
        let twice: Vec<PathBuf> = shards.iter().chain(&shards).cloned().collect();
        assert_eq!(rank_shards(&twice, 0, 1, 7, 0, false).unwrap(), shards);
    }
}
