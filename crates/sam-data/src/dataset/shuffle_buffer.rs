//! webdataset's shuffle buffer: fill it, then for each new element emit a random one of those
//! held and keep the new one in its place; at the end, emit what is left in random order. A
//! stream read sequentially is thereby mixed over a window of `capacity` elements. The RNG is
//! the only source of randomness, so a seed fixes the order.

use rand::Rng;
use rand::rngs::StdRng;

/// A seeded shuffle buffer; a capacity of 0 or 1 passes elements through in order.
pub(crate) struct ShuffleBuffer<T> {
    items: Vec<T>,
    capacity: usize,
    rng: StdRng,
}

impl<T> ShuffleBuffer<T> {
    /// An empty buffer holding up to `capacity` elements.
    pub fn new(capacity: usize, rng: StdRng) -> Self {
        Self {
            items: Vec::with_capacity(capacity.min(1 << 16)),
            capacity: capacity.max(1),
            rng,
        }
    }

    /// Adds `item`; once the buffer is full, returns a random element (possibly `item`).
    pub fn push(&mut self, item: T) -> Option<T> {
        if self.items.len() + 1 < self.capacity {
            self.items.push(item);
            return None;
        }
        self.items.push(item);
        let j = self.rng.random_range(0..self.items.len());
        Some(self.items.swap_remove(j))
    }

    /// Once the input is exhausted: a random remaining element, until none is left.
    pub fn drain_one(&mut self) -> Option<T> {
        if self.items.is_empty() {
            return None;
        }
        let j = self.rng.random_range(0..self.items.len());
        Some(self.items.swap_remove(j))
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn run(capacity: usize, seed: u64, n: usize) -> Vec<usize> {
        let mut b = ShuffleBuffer::new(capacity, StdRng::seed_from_u64(seed));
        let mut out: Vec<usize> = (0..n).filter_map(|i| b.push(i)).collect();
        out.extend(std::iter::from_fn(|| b.drain_one()));
        out
    }

    #[test]
    fn a_permutation_fixed_by_the_seed_and_local_to_the_window() {
        for capacity in [0, 1, 2, 7, 50, 200] {
            let a = run(capacity, 3, 100);
            let mut sorted = a.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..100).collect::<Vec<_>>(), "capacity {capacity}");
            assert_eq!(a, run(capacity, 3, 100));
            if capacity <= 1 {
                assert_eq!(a, sorted);
            } else {
                assert_ne!(a, sorted, "capacity {capacity}");
                assert_ne!(a, run(capacity, 4, 100), "capacity {capacity}");
            }
        }
        // At output step k at most k + capacity elements have been read.
        let a = run(10, 9, 100);
        for (k, &i) in a.iter().enumerate() {
            assert!(i < k + 10, "element {i} out at step {k}");
        }
    }
}
