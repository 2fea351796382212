//! Random Fourier-feature positional encoding (the reference's `PositionEmbeddingRandom`).

use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::{DType, Device, FloatDType, Tensor, TensorData};

use crate::vector_math::{SIN_COS_LIMIT, map_on_host, multiversion, sin_cos};

/// Encodes normalised `(x, y)` coordinates with a fixed Gaussian matrix.
#[derive(Module, Debug)]
pub struct PositionEmbeddingRandom {
    /// `[2, C/2]`, a buffer of the official state dict (row 0 multiplies x). Never trained.
    pub positional_encoding_gaussian_matrix: Param<Tensor<2>>,
}

impl PositionEmbeddingRandom {
    /// `num_pos_feats` is C/2; the matrix starts as N(0, 1) samples, as the reference (scale 1).
    pub fn new(num_pos_feats: usize, device: &Device) -> Self {
        let matrix: Param<Tensor<2>> = Initializer::Normal {
            mean: 0.0,
            std: 1.0,
        }
        .init([2, num_pos_feats], device);
        Self {
            positional_encoding_gaussian_matrix: matrix.set_require_grad(false),
        }
    }

    /// `coords: [.., N, 2]` in `[0, 1]` → `[.., N, C]` as `[sin, cos]` of `2π (2c − 1) G`.
    ///
    /// Always computed in f32: the phases reach tens of radians, where a 16-bit type would
    /// leave the sines meaningless. The result has the matrix's dtype.
    pub fn pe_encoding(&self, coords: Tensor<3>) -> Tensor<3> {
        let g = self
            .positional_encoding_gaussian_matrix
            .val()
            .unsqueeze::<3>();
        let dtype = g.dtype();
        let f32 = FloatDType::F32;
        let proj =
            (coords.cast(f32) * 2.0 - 1.0).matmul(g.cast(f32)) * (2.0 * std::f64::consts::PI);
        sin_cat_cos(proj).cast(dtype)
    }

    /// Dense encoding of an `h × w` grid of pixel centres: `[C, h, w]`.
    pub fn forward(&self, h: usize, w: usize) -> Tensor<3> {
        let device = self.positional_encoding_gaussian_matrix.device();
        let mut grid = Vec::with_capacity(h * w * 2);
        for y in 0..h {
            for x in 0..w {
                grid.push((x as f32 + 0.5) / w as f32);
                grid.push((y as f32 + 0.5) / h as f32);
            }
        }
        let coords =
            Tensor::<3>::from_data(TensorData::new(grid, [1, h * w, 2]), (&device, DType::F32));
        let pe = self.pe_encoding(coords); // [1, hw, C]
        let c = pe.dims()[2];
        pe.reshape([h, w, c]).permute([2, 0, 1])
    }

    /// `coords: [B, N, 2]` in pixels of the padded `image_size` square → `[B, N, C]`.
    pub fn forward_with_coords(&self, coords: Tensor<3>, image_size: (usize, usize)) -> Tensor<3> {
        let device = coords.device();
        // x is divided by the width and y by the height, as the reference.
        let divisor = Tensor::<1>::from_data(
            TensorData::new(vec![image_size.1 as f32, image_size.0 as f32], [2]),
            (&device, DType::F32),
        )
        .reshape([1, 1, 2]);
        self.pe_encoding(coords.cast(FloatDType::F32) / divisor)
    }
}

/// `[.., N, D]` → `[.., N, 2D]`: the sines, then the cosines.
///
/// Flex takes libm's scalar `sinf` and `cosf` one value at a time on one thread: the dense
/// encoding of SAM's 64×64 grid (a million of them) was a tenth of a one-prompt decode. On
/// flex's f32 inference tensors both come from one vectorised pass instead ([`sin_cos`]).
fn sin_cat_cos(proj: Tensor<3>) -> Tensor<3> {
    let half = proj.dims()[2];
    // Each row holds its phases twice: the first copy becomes the sines, the second the cosines.
    let twice = Tensor::cat(vec![proj.clone(), proj], 2);
    map_on_host(
        twice,
        (ROWS_PER_PIECE * 2 * half).max(1),
        move |_, values| sin_cos_rows(values, half),
        move |x| {
            Tensor::cat(
                vec![
                    x.clone().narrow(2, 0, half).sin(),
                    x.narrow(2, half, half).cos(),
                ],
                2,
            )
        },
    )
}

/// Rows per parallel piece of [`sin_cat_cos`].
const ROWS_PER_PIECE: usize = 256;

multiversion! {
    /// Rows `[phases, phases]` of `2·half` values → `[sin, cos]`.
    fn sin_cos_rows(values: &mut [f32], half: usize) => sin_cos_rows_kernel
}

#[inline(always)]
fn sin_cos_rows_kernel(values: &mut [f32], half: usize) {
    if half == 0 {
        return;
    }
    for row in values.chunks_exact_mut(2 * half) {
        let (sines, cosines) = row.split_at_mut(half);
        // Phases past the polynomial's range (points far outside the image) take libm's.
        if cosines.iter().all(|x| x.abs() <= SIN_COS_LIMIT) {
            for (s, c) in sines.iter_mut().zip(cosines.iter_mut()) {
                (*s, *c) = sin_cos(*c);
            }
        } else {
            for (s, c) in sines.iter_mut().zip(cosines.iter_mut()) {
                (*s, *c) = (c.sin(), c.cos());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::normal;

    /// Every compiled variant of the sine/cosine pass gives the same bits.
    #[test]
    fn variants_agree() {
        let values: Vec<f32> = (0..32 * 64)
            .map(|i| ((i * 7919) % 1000) as f32 / 13.0 - 40.0)
            .collect();
        crate::vector_math::assert_variants_agree("sin_cos_rows", || {
            let mut v = values.clone();
            sin_cos_rows(&mut v, 32);
            v
        });
    }

    /// The vectorised pass against Burn's (libm's) sine and cosine, on the dense grid's size
    /// and on a small input (Burn's path), with phases past the polynomial's range in part of one row.
    #[test]
    fn sines_and_cosines_match_libm() {
        let device = Device::flex();
        for n in [4096, 3] {
            let proj = normal([1, n, 128], 0.0, 20.0, n as u64, &device);
            let far = Tensor::<3>::full([1, 1, 4], 1.0e5, &device);
            let proj = proj.slice_assign([0..1, 0..1, 0..4], far);
            let ours = sin_cat_cos(proj.clone());
            let libm = Tensor::cat(vec![proj.clone().sin(), proj.cos()], 2);
            assert_eq!(ours.dims(), [1, n, 256]);
            let diff = (ours - libm).abs().max().into_scalar::<f32>();
            assert!(diff <= 3e-7, "n {n}: max diff {diff}");
        }
    }
}
