//! Seeded inputs for the unit tests.
//!
//! The backend's generator is one for the whole process and tests run in parallel, so
//! `Tensor::random` draws would differ from run to run and a failure could not be reproduced.

use std::cell::Cell;

use burn::tensor::{Device, Tensor, TensorData};

/// Normal samples from a fixed seed, as a tensor on `device`.
pub(crate) fn normal<const D: usize>(
    shape: [usize; D],
    mean: f64,
    std: f64,
    seed: u64,
    device: &Device,
) -> Tensor<D> {
    // SplitMix64 for uniform bits, Box–Muller for the normal.
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut uniform = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n)
        .map(|_| {
            let (u1, u2) = (1.0 - uniform(), uniform());
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            (mean + std * z) as f32
        })
        .collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// A test's sequence of seeded draws: each call takes the next seed.
pub(crate) struct Draws(Cell<u64>);

impl Draws {
    pub(crate) fn new(seed: u64) -> Self {
        Self(Cell::new(seed))
    }

    /// Normal samples of mean `mean` and deviation `std`.
    pub(crate) fn normal<const D: usize>(
        &self,
        shape: [usize; D],
        mean: f64,
        std: f64,
        device: &Device,
    ) -> Tensor<D> {
        let seed = self.0.get();
        self.0.set(seed.wrapping_add(1));
        normal(shape, mean, std, seed, device)
    }

    /// Standard normal samples.
    pub(crate) fn standard<const D: usize>(&self, shape: [usize; D], device: &Device) -> Tensor<D> {
        self.normal(shape, 0.0, 1.0, device)
    }
}
