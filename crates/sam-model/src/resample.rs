//! Running a model at another input size than it was trained at (512, 768, 1536 …): the
//! absolute position embedding is resampled bicubically with antialiasing, as timm's
//! `resample_abs_pos_embed_nhwc` (PyTorch's `_upsample_bicubic2d_aa`), and the global blocks'
//! relative-position tables linearly, as the reference's `get_rel_pos` does at run time. The
//! windowed blocks, the prompt encoder's and the decoder's weights do not depend on the size.

use burn::module::Param;
use burn::tensor::{FloatDType, Tensor, TensorData};

use crate::error::{Result, SamError};
use crate::interpolate::linear_resize_matrix;
use crate::sam::Sam;

/// Keys' cubic convolution with `a = −0.5`, the antialiasing filter (Pillow's, which PyTorch's
/// antialiased bicubic copies); PyTorch evaluates it in the tensor's float type.
fn aa_bicubic_filter(x: f32) -> f32 {
    const A: f32 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A
    } else {
        0.0
    }
}

/// Per output index, the first input index and the normalised weights of a 1-D antialiased
/// bicubic resize (align_corners = false), computed with PyTorch's mix of f32 and f64
/// arithmetic so that the weights round the same way.
pub fn bicubic_aa_weights(n_in: usize, n_out: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = n_in as f32 / n_out as f32;
    let support = if scale >= 1.0 { 2.0 * scale } else { 2.0 };
    let invscale = if scale >= 1.0 { 1.0 / scale } else { 1.0 };
    (0..n_out)
        .map(|i| {
            let center = (scale as f64 * (i as f64 + 0.5)) as f32;
            let xmin = (((center - support) as f64 + 0.5) as i64).max(0) as usize;
            let xmax = (((center + support) as f64 + 0.5) as i64).min(n_in as i64) as usize;
            let mut w: Vec<f32> = (xmin..xmax.max(xmin))
                .map(|j| {
                    let d = ((j as f32 - center) as f64 + 0.5) * invscale as f64;
                    aa_bicubic_filter(d as f32)
                })
                .collect();
            let total: f32 = w.iter().sum();
            if total != 0.0 {
                w.iter_mut().for_each(|v| *v /= total);
            }
            (xmin, w)
        })
        .collect()
}

/// Resamples a channels-last grid `[h, w, c]` to `[new_h, new_w, c]`: width first, then height,
/// each output a weighted sum accumulated in f32 in input order (as PyTorch's separable kernel).
pub fn resample_pos_embed_nhwc(
    data: &[f32],
    (h, w, c): (usize, usize, usize),
    (new_h, new_w): (usize, usize),
) -> Vec<f32> {
    let along = |src: &[f32], rows: usize, n_in: usize, n_out: usize, stride_in: usize| {
        // `src` holds `rows` groups of `n_in` positions × `stride_in` values.
        let weights = bicubic_aa_weights(n_in, n_out);
        let mut out = vec![0f32; rows * n_out * stride_in];
        for r in 0..rows {
            for (o, (xmin, ws)) in weights.iter().enumerate() {
                for k in 0..stride_in {
                    let mut t = 0f32;
                    for (j, wj) in ws.iter().enumerate() {
                        let v = src[(r * n_in + xmin + j) * stride_in + k] * wj;
                        t = if j == 0 { v } else { t + v };
                    }
                    out[(r * n_out + o) * stride_in + k] = t;
                }
            }
        }
        out
    };
    // Width: rows are the h lines, each w positions of c values.
    let by_w = along(data, h, w, new_w, c);
    // Height: one group of h positions, each a whole line of new_w · c values.
    along(&by_w, 1, h, new_h, new_w * c)
}

impl Sam {
    /// This model for square inputs of side `image_size`: the same weights with the position
    /// tables resampled (see the module docs). At the model's own size nothing changes.
    pub fn resampled(mut self, image_size: usize) -> Result<Self> {
        if image_size == self.config().image_size {
            return Ok(self);
        }
        let mut config = self.config().clone();
        config.image_size = image_size;
        config.validate()?;
        let device = self.device();
        // New tables are computed in f32 and stored in the model's float type, so that a
        // model cast to 16 bits stays all 16-bit.
        let dtype = self.float_dtype();
        let new = config.embedding_size();

        let pos = self.image_encoder.pos_embed.val();
        let [_, gh, gw, c] = pos.dims();
        let values = pos
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| SamError::InvalidInput(format!("pos_embed: {e:?}")))?;
        let resized = resample_pos_embed_nhwc(&values, (gh, gw, c), (new, new));
        self.image_encoder.pos_embed = Param::from_tensor(
            Tensor::<4>::from_data(TensorData::new(resized, [1, new, new, c]), &device).cast(dtype),
        );

        // Every global block (all of them when `window_size == 0`) has tables of the grid's
        // size; windowed blocks' tables depend on the window only.
        for block in self
            .image_encoder
            .blocks
            .iter_mut()
            .filter(|b| b.is_global())
        {
            let attn = &mut block.attn;
            for table in [&mut attn.rel_pos_h, &mut attn.rel_pos_w] {
                let t = table.val();
                let [len, _] = t.dims();
                let m = linear_resize_matrix(len, 2 * new - 1, &device);
                // Detached: the resampled table is a new leaf, also on an autodiff device.
                *table = Param::from_tensor(m.matmul(t.cast(FloatDType::F32)).cast(dtype).detach());
            }
        }

        // The prompt encoder's sizes change, its weights (the embedding projection included)
        // do not.
        self.prompt_encoder
            .set_sizes(config.embedding_size(), config.image_size);
        self.set_config(config);
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_and_identity_at_same_size() {
        for (a, b) in [(64, 32), (64, 48), (64, 96), (9, 4), (4, 9)] {
            for (_, w) in bicubic_aa_weights(a, b) {
                let s: f32 = w.iter().sum();
                assert!((s - 1.0).abs() < 1e-5, "{a}->{b}: {s}");
            }
        }
        let data: Vec<f32> = (0..5 * 7 * 2).map(|v| v as f32 * 0.37 - 3.0).collect();
        let same = resample_pos_embed_nhwc(&data, (5, 7, 2), (5, 7));
        for (x, y) in data.iter().zip(&same) {
            assert!((x - y).abs() < 1e-5);
        }
    }
}
