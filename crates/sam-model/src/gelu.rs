//! Exact (erf) GELU, split across threads on the CPU backend.
//!
//! Burn's flex backend maps GELU's erf over a tensor on one thread (its binary ops and matrix
//! products use every core), so the activations of the encoder's MLPs and the decoder's
//! upscaling took a third of their time on one core. Large inference tensors on flex are
//! split into one contiguous piece per worker thread; each element still goes through the same
//! scalar function, so results are bit-identical. Other devices, and autodiff, take Burn's
//! `gelu` unchanged.

use burn::tensor::activation;
use burn::tensor::{Device, Tensor};
use rayon::prelude::*;

/// Elements below which one thread is faster than splitting (a split costs a copy).
const MIN_SPLIT: usize = 1 << 16;

/// `0.5·x·(1 + erf(x/√2))`, elementwise; any shape.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let n = x.shape().num_elements();
    let threads = rayon::current_num_threads();
    if threads < 2 || n < MIN_SPLIT || !serial_unary_maps(&x.device()) {
        return activation::gelu(x);
    }
    let shape = x.shape();
    let flat = x.reshape([n]);
    let chunk = n.div_ceil(threads);
    let parts: Vec<Tensor<1>> = (0..n)
        .step_by(chunk)
        .map(|start| flat.clone().narrow(0, start, chunk.min(n - start)))
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(activation::gelu)
        .collect();
    Tensor::cat(parts, 0).reshape(shape)
}

/// Whether `device` maps unary functions over a tensor on one thread (flex, not autodiff).
fn serial_unary_maps(device: &Device) -> bool {
    #[cfg(feature = "flex")]
    {
        *device == Device::flex()
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = device;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    /// The split is bit-identical to Burn's GELU, for sizes that do and do not divide evenly.
    #[cfg(feature = "flex")]
    #[test]
    fn split_matches_burn_bit_for_bit() {
        let device = Device::flex();
        assert!(serial_unary_maps(&device));
        for n in [1000, MIN_SPLIT * 3 + 7] {
            let x = Tensor::<2>::random([n, 3], Distribution::Normal(0.0, 3.0), &device);
            let ours = gelu(x.clone()).into_data();
            let burn = activation::gelu(x).into_data();
            assert_eq!(ours, burn);
        }
    }
}
