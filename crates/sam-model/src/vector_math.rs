//! Elementwise kernels that run on a CPU tensor's values: shared pieces.
//!
//! Burn's flex backend maps transcendental functions (`exp` in softmax, `erf` in GELU) with
//! libm's scalar calls, one element at a time on one thread. The model's hot ones ([`gelu`]
//! and [`softmax`]) therefore run on the values of flex's f32 inference tensors instead, with
//! the branch-free polynomials below (the ones PyTorch's vectorised CPU kernels use), in
//! parallel chunks, compiled for the widest vector instructions the CPU has.
//!
//! The crate is built for baseline x86-64 (SSE2), where the compiler can only use 4-lane
//! vectors; [`multiversion!`] compiles a kernel a second and third time with AVX2+FMA and
//! AVX-512 enabled and picks one at run time. No path uses fused multiply-adds (Rust never
//! contracts `a·b + c`), so every path gives the same bits.
//!
//! [`gelu`]: crate::gelu::gelu
//! [`softmax`]: crate::softmax::softmax_last

use burn::tensor::{DType, Device, Tensor};
use rayon::prelude::*;

/// Elements below which Burn's own kernels are as fast as the round trip through host memory.
pub(crate) const MIN_HOST: usize = 1 << 14;

/// Whether elementwise kernels on `device` run faster on the host values: flex, not autodiff
/// (whose recorded graph needs Burn's own ops; a round trip through host values would detach
/// the result). `Device`'s equality ignores autodiff, hence the second check.
pub(crate) fn host_maps(device: &Device) -> bool {
    #[cfg(feature = "flex")]
    {
        *device == Device::flex() && !device.is_autodiff()
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = device;
        false
    }
}

/// Whether [`map_on_host`] runs its kernel on `x` (rather than Burn's ops).
pub(crate) fn maps_on_host<const D: usize>(x: &Tensor<D>) -> bool {
    x.dtype() == DType::F32 && x.shape().num_elements() >= MIN_HOST && host_maps(&x.device())
}

/// `x` with `kernel(i, values)` applied to its values on the host, in parallel pieces of
/// `piece` values, `i` counting the pieces (kernels that need whole rows get a multiple of the
/// row length); `burn(x)` instead where Burn's own ops should run: not f32, fewer than
/// [`MIN_HOST`] values, or not flex inference ([`host_maps`]).
pub(crate) fn map_on_host<const D: usize>(
    x: Tensor<D>,
    piece: usize,
    kernel: impl Fn(usize, &mut [f32]) + Send + Sync,
    burn: impl FnOnce(Tensor<D>) -> Tensor<D>,
) -> Tensor<D> {
    let device = x.device();
    if !maps_on_host(&x) {
        return burn(x);
    }
    // The values keep the tensor's shape.
    let mut data = x.into_data();
    match data.as_mut_slice::<f32>() {
        Ok(values) => values
            .par_chunks_mut(piece.max(1))
            .enumerate()
            .for_each(|(i, values)| kernel(i, values)),
        // Unreachable for an f32 tensor.
        Err(_) => return burn(Tensor::from_data(data, (&device, DType::F32))),
    }
    Tensor::from_data(data, (&device, DType::F32))
}

/// Defines `fn $name(args)` calling the `#[inline(always)]` function `$kernel(args)`, compiled
/// for AVX-512F, for AVX2+FMA and for the crate's baseline, and chosen at run time (the
/// feature checks are cached by std).
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $kernel:ident) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) {
                    $kernel($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) {
                    $kernel($($arg),*)
                }
                if crate::vector_math::level_allowed(3)
                    && std::arch::is_x86_feature_detected!("avx512f")
                {
                    // SAFETY: the CPU has just been seen to support AVX-512F.
                    return unsafe { avx512($($arg),*) };
                }
                if crate::vector_math::level_allowed(2)
                    && std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has just been seen to support AVX2 and FMA.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $kernel($($arg),*)
        }
    };
}
pub(crate) use multiversion;

/// Test builds: the widest variant [`multiversion!`] may pick (3 AVX-512F, 2 AVX2+FMA, 1 the
/// baseline), so that tests run every variant this CPU has and compare their bits.
#[cfg(test)]
static MAX_LEVEL: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(3);

/// Whether [`multiversion!`] may pick the variant of `level` (always outside tests).
#[inline(always)]
pub(crate) fn level_allowed(level: u8) -> bool {
    #[cfg(test)]
    {
        MAX_LEVEL.load(std::sync::atomic::Ordering::Relaxed) >= level
    }
    #[cfg(not(test))]
    {
        let _ = level;
        true
    }
}

/// Runs `f` with each variant [`multiversion!`] has (baseline, AVX2+FMA, AVX-512F, as far as
/// this CPU goes) and checks that all give the bits of the widest. One caller at a time; other
/// tests meanwhile may run on a narrower variant, which is what this checks to be the same.
#[cfg(test)]
pub(crate) fn assert_variants_agree(what: &str, f: impl Fn() -> Vec<f32>) {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let set = |level: u8| MAX_LEVEL.store(level, std::sync::atomic::Ordering::Relaxed);
    let widest = f();
    for level in [1u8, 2] {
        set(level);
        let got = f();
        set(3);
        let same = got.len() == widest.len()
            && got
                .iter()
                .zip(&widest)
                .all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()));
        assert!(
            same,
            "{what}: the level-{level} variant differs from the widest"
        );
    }
}

/// `exp(−s)` for `s ≥ 0`, to ~1 ulp (Cephes' `expf` reduction and polynomial, as PyTorch's
/// vectorised CPU `exp`); 0 once it would underflow, NaN for NaN. Branch-free, so that a loop
/// over it vectorises.
#[inline(always)]
pub(crate) fn exp_neg(s: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5·2²³ rounds to the nearest integer without a libm call.
    const ROUND: f32 = 12_582_912.0;
    // `max` drops a NaN `s` and `min` a negative one (exp_neg takes s ≥ 0), so `x` (and `n`
    // below) are always finite and in range.
    #[allow(clippy::manual_clamp)] // `clamp` would keep the NaN that `max` drops
    let x = (-s).max(-87.0).min(0.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let e = p * r * r + r + 1.0;
    // SAFETY: `n` is an integer in [-126, 0] (x ∈ [-87, 0]), so the conversion is exact; the
    // unchecked form compiles to a vector conversion where `as` would add a NaN check per lane.
    let n = unsafe { n.to_int_unchecked::<i32>() };
    let scale = f32::from_bits(((n + 127) << 23) as u32);
    let out = e * scale;
    if s > 87.0 {
        0.0
    } else if s.is_nan() {
        s
    } else {
        out
    }
}

/// Arguments beyond which [`sin_cos`]'s reduction loses accuracy; callers take libm's there.
pub(crate) const SIN_COS_LIMIT: f32 = 8192.0;

/// `(sin x, cos x)` for `|x| ≤` [`SIN_COS_LIMIT`], to ~1 ulp of 1 (Cephes' `sinf`/`cosf`
/// polynomials on `[−π/4, π/4]` after a three-part reduction by π/2); NaN for NaN and
/// infinities. Branch-free, so that a loop over it vectorises.
#[inline(always)]
pub(crate) fn sin_cos(x: f32) -> (f32, f32) {
    // π/2 in three parts whose products with the quadrant (|n| < 2¹²) are exact.
    const PIO2_1: f32 = 1.570_312_5;
    const PIO2_2: f32 = 4.837_513e-4;
    const PIO2_3: f32 = 7.549_79e-8;
    const ROUND: f32 = 12_582_912.0;
    // `max`/`min` drop a NaN (`clamp` would keep it), so the conversion below always sees a
    // finite integer in range.
    #[allow(clippy::manual_clamp)]
    let n = ((x * std::f32::consts::FRAC_2_PI + ROUND) - ROUND)
        .max(-1.0e6)
        .min(1.0e6);
    let r = ((x - n * PIO2_1) - n * PIO2_2) - n * PIO2_3;
    let z = r * r;
    let s = ((-1.951_529_6e-4 * z + 8.332_161e-3) * z - 1.666_665_5e-1) * z * r + r;
    let c = ((2.443_315_7e-5 * z - 1.388_731_6e-3) * z + 4.166_664_6e-2) * z * z - 0.5 * z + 1.0;
    // SAFETY: `n` is an integer in [-1e6, 1e6], so the conversion is exact.
    let q = unsafe { n.to_int_unchecked::<i32>() } as u32;
    // Quadrant q: sin = (s, c, −s, −c)[q], cos = (c, −s, −c, s)[q].
    let (a, b) = if q & 1 == 0 { (s, c) } else { (c, s) };
    let sin = f32::from_bits(a.to_bits() ^ ((q & 2) << 30));
    let cos = f32::from_bits(b.to_bits() ^ ((q.wrapping_add(1) & 2) << 30));
    (sin, cos)
}

// The host values, layer norms and their sums serve the fused kernels, which only flex runs.

/// A tensor's f32 values (a copy only where the tensor is shared or a view); `None` for other
/// dtypes.
#[cfg(feature = "flex")]
pub(crate) fn host_values<const D: usize>(x: Tensor<D>) -> Option<Vec<f32>> {
    x.into_data().try_into_vec::<f32>().ok()
}

/// The reference's layer norm of one row in place: `(x − mean) / √(var + eps)·gamma + beta`,
/// with the biased variance.
#[cfg(feature = "flex")]
#[inline(always)]
pub(crate) fn layer_norm_row(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let std = (centre_row(row) + eps).sqrt();
    for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
        *v = g * (*v / std) + b;
    }
}

/// PyTorch's `nn.LayerNorm` of one row in place: `(x − mean)·rstd·gamma + beta` with
/// `rstd = 1/√(var + eps)` and the biased variance.
#[cfg(feature = "flex")]
#[inline(always)]
pub(crate) fn rstd_layer_norm_row(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let rstd = 1.0 / (centre_row(row) + eps).sqrt();
    for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
        *v = *v * rstd * g + b;
    }
}

/// Subtracts the row's mean from it and returns its biased variance (the two norms' shared
/// first steps).
#[cfg(feature = "flex")]
#[inline(always)]
pub(crate) fn centre_row(row: &mut [f32]) -> f32 {
    let n = row.len() as f32;
    let mean = lane_sum(row) / n;
    for v in row.iter_mut() {
        *v -= mean;
    }
    lane_sum_squares(row) / n
}

/// Sum in eight interleaved lanes (so that it vectorises), then across them.
#[cfg(feature = "flex")]
#[inline(always)]
pub(crate) fn lane_sum(x: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for (l, v) in lanes.iter_mut().zip(chunk) {
            *l += v;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// `lane_sum` of the squares.
#[cfg(feature = "flex")]
#[inline(always)]
fn lane_sum_squares(x: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().map(|v| v * v).sum();
    for chunk in chunks {
        for (l, v) in lanes.iter_mut().zip(chunk) {
            *l += v * v;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    /// Every compiled variant of the kernels gives the same bits (CI's CPU has AVX-512, so the
    /// others would otherwise never run there).
    #[test]
    fn every_variant_gives_the_same_bits() {
        let values: Vec<f32> = (0..4096)
            .map(|i| ((i * 7919) % 2000) as f32 / 97.0 - 10.3)
            .collect();
        assert_variants_agree("gelu", || {
            let mut v = values.clone();
            crate::gelu::gelu_in_place(&mut v);
            v
        });
        for row in [7usize, 64, 100] {
            assert_variants_agree(&format!("softmax rows of {row}"), || {
                let n = values.len() / row * row;
                let mut v = values[..n].to_vec();
                crate::softmax::softmax_rows(&mut v, row, 0.125);
                v
            });
        }
        assert_variants_agree("exp_neg", || {
            values.iter().map(|&x| exp_neg(x.abs())).collect()
        });
    }

    use super::*;

    /// Within 2 ulp of the exact (f64) exponential over the whole range, and at the edges.
    #[test]
    fn exp_neg_is_within_two_ulp() {
        let mut worst = 0.0f64;
        for i in 0..=870_000 {
            let s = i as f32 * 1e-4;
            let exact = (-(s as f64)).exp();
            let ulp = f32::EPSILON as f64 * exact;
            worst = worst.max((exp_neg(s) as f64 - exact).abs() / ulp);
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
        assert_eq!(exp_neg(0.0), 1.0);
        assert_eq!(exp_neg(88.0), 0.0);
        assert_eq!(exp_neg(f32::INFINITY), 0.0);
        assert!(exp_neg(f32::NAN).is_nan());
    }

    /// Within 2e-7 of f64's sine and cosine over the positional encoding's working range
    /// (and beyond), exact at 0, NaN for NaN and infinities.
    #[test]
    fn sin_cos_is_within_two_ulp_of_one() {
        let mut worst = 0.0f64;
        let mut check = |x: f32| {
            let (s, c) = sin_cos(x);
            let e = ((s as f64 - (x as f64).sin()).abs()).max((c as f64 - (x as f64).cos()).abs());
            worst = worst.max(e);
        };
        for i in -2_000_000..=2_000_000 {
            check(i as f32 * 5e-5);
        }
        for i in 0..=100_000 {
            check(i as f32 * (SIN_COS_LIMIT / 100_000.0));
            check(-(i as f32) * (SIN_COS_LIMIT / 100_000.0));
        }
        assert!(worst <= 2.0e-7, "worst error {worst}");
        assert_eq!(sin_cos(0.0), (0.0, 1.0));
        for x in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let (s, c) = sin_cos(x);
            assert!(s.is_nan() && c.is_nan(), "sin_cos({x}) = ({s}, {c})");
        }
    }

    /// Autodiff tensors do not take the host round trip, which would detach them: gradients
    /// reach the input through GELU and softmax on flex's autodiff device (there they run as
    /// recorded operations of `recorded_ops`), as through Burn's own ops.
    #[cfg(feature = "flex")]
    #[test]
    fn autodiff_keeps_the_graph() {
        use crate::test_util::normal;
        use burn::tensor::{Tensor, activation};
        assert!(host_maps(&Device::flex()));
        let device = Device::flex().autodiff();
        assert!(!host_maps(&device));
        let n = MIN_HOST * 2;
        let x = normal([n / 64, 64], 0.0, 2.0, 1, &device).require_grad();
        let w = normal([n / 64, 64], 0.0, 1.0, 2, &device);
        let ours = crate::gelu::gelu(x.clone()) + crate::softmax::softmax_last(x.clone(), 0.5);
        let burn = activation::gelu(x.clone()) + activation::softmax(x.clone() * 0.5, 1);
        let grad = |y: Tensor<2>| {
            let grads = (y * w.clone()).sum().backward();
            x.grad(&grads).expect("x has a gradient")
        };
        let (ours, burn) = (grad(ours), grad(burn));
        let diff = (ours - burn.clone()).abs().max().into_scalar::<f32>();
        let scale = burn.abs().max().into_scalar::<f32>();
        assert!(
            scale > 0.1 && diff <= 1e-5 * scale,
            "gradient diff {diff}, scale {scale}"
        );
    }
}
