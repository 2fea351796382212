//! Random Fourier-feature positional encoding (the reference's `PositionEmbeddingRandom`).

use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::{DType, Device, FloatDType, Tensor, TensorData};

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
        Tensor::cat(vec![proj.clone().sin(), proj.cos()], 2).cast(dtype)
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
