//! Exact-form (erf) GELU, vectorised on the CPU backend.
//!
//! Burn's flex backend maps GELU with libm's scalar `erff`, element by element on one thread:
//! after the decoder's other hot spots were fixed that was a third of its time (200 M upscaled
//! activations for 64 prompts). On flex, f32 GELU in inference therefore runs here, on the
//! tensor's values (`crate::vector_math`), with the erf PyTorch's own CPU kernel uses
//! (Abramowitz & Stegun 7.1.26, `aten/src/ATen/cpu/vec`: `|error| ≤ 1.5e-7` in exact
//! arithmetic, ≤ 6e-7 in f32). Other devices, other dtypes and autodiff take Burn's `gelu`.

use burn::tensor::Tensor;
use burn::tensor::activation;

use crate::vector_math::{exp_neg, map_on_host, multiversion};

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// `0.5·x·(1 + erf(x/√2))`, elementwise; any shape.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(any(feature = "flex", feature = "cube"))]
    if crate::recorded_ops::gelu_applies(&x) {
        return crate::recorded_ops::gelu(x);
    }
    map_on_host(x, CHUNK, |_, v| gelu_in_place(v), activation::gelu)
}

multiversion! {
    /// GELU of every value, in place, with the CPU's widest vectors.
    pub fn gelu_in_place(values: &mut [f32]) => gelu_kernel
}

/// Branch-free, so that it vectorises.
#[inline(always)]
pub(crate) fn gelu_kernel(values: &mut [f32]) {
    for v in values.iter_mut() {
        let x = *v;
        *v = 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// `erf(x) = sign(x)·(1 − r(t)·t·exp(−x²))`, `t = 1/(1 + p|x|)` (A&S 7.1.26, as PyTorch's
/// vectorised CPU erf).
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A1: f32 = 0.254_829_6;
    const A2: f32 = -0.284_496_74;
    const A3: f32 = 1.421_413_7;
    const A4: f32 = -1.453_152;
    const A5: f32 = 1.061_405_4;
    let a = x.abs();
    let t = 1.0 / (P * a + 1.0);
    let r = (((A5 * t + A4) * t + A3) * t + A2) * t + A1;
    let y = 1.0 - r * t * exp_neg(a * a);
    y.copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(feature = "flex")]
    use crate::test_util::normal;
    #[cfg(feature = "flex")]
    use crate::vector_math::host_maps;
    use burn::tensor::{DType, Device};

    /// The erf against an f64 erf (Burn's, libm's) over its whole working range, at the
    /// approximation's bound, and its saturation and NaN.
    #[test]
    fn erf_is_within_the_approximation_bound() {
        let xs: Vec<f32> = (-800_000..=800_000).map(|i| i as f32 * 1e-5).collect();
        let exact = Tensor::<1>::from_data(
            burn::tensor::TensorData::new(
                xs.iter().map(|&x| x as f64).collect::<Vec<f64>>(),
                [xs.len()],
            ),
            (&Device::flex(), DType::F64),
        )
        .erf()
        .into_data()
        .try_to_vec::<f64>()
        .expect("f64 values");
        let worst = xs
            .iter()
            .zip(&exact)
            .map(|(&x, &e)| (erf(x) as f64 - e).abs())
            .fold(0.0, f64::max);
        // A&S's 1.5e-7 plus f32 rounding near ±1 (measured 5.9e-7).
        assert!(worst <= 6e-7, "max |erf error| {worst}");
        for x in [-100.0, -9.0, 9.0, 100.0, f32::MIN, f32::MAX] {
            assert_eq!(erf(x), x.signum(), "erf({x})");
        }
        assert!(erf(f32::NAN).is_nan());
        let mut zero = [0.0f32, -0.0];
        gelu_in_place(&mut zero);
        assert_eq!(zero, [0.0, 0.0]);
    }

    /// GELU on flex against Burn's (libm erf) GELU, on sizes that do and do not fill a chunk.
    #[cfg(feature = "flex")]
    #[test]
    fn gelu_matches_burn_within_the_erf_bound() {
        let device = Device::flex();
        assert!(host_maps(&device));
        for n in [1000, CHUNK * 3 + 7] {
            let x = normal([n, 3], 0.0, 3.0, n as u64, &device);
            let ours = gelu(x.clone());
            let burn = activation::gelu(x.clone());
            assert_eq!(ours.dims(), [n, 3]);
            // |Δgelu| = |x|/2·|Δerf|.
            let bound = (x.abs() * 3e-7 + 1e-6).into_data();
            let diff = (ours - burn).abs().into_data();
            let (diff, bound) = (
                diff.try_to_vec::<f32>().unwrap(),
                bound.try_to_vec::<f32>().unwrap(),
            );
            for (i, (d, b)) in diff.iter().zip(&bound).enumerate() {
                assert!(d <= b, "element {i}: |diff| {d} > {b}");
            }
        }
    }
}
