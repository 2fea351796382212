//! A ViT block with windowed or global attention (the reference's `image_encoder.Block`).

use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::{Device, Distribution, Tensor};

use super::attention::Attention;
use crate::common::{Activation, MlpBlock, norm};

/// The blocks' LayerNorm epsilon (the reference's `partial(nn.LayerNorm, eps=1e-6)`).
const NORM_EPS: f64 = 1e-6;

/// Pre-norm transformer block; `window_size == 0` means global attention.
#[derive(Module, Debug)]
pub struct Block {
    /// LayerNorm, eps 1e-6.
    pub norm1: LayerNorm,
    /// Self-attention with decomposed rel-pos.
    pub attn: Attention,
    /// LayerNorm, eps 1e-6.
    pub norm2: LayerNorm,
    /// GELU MLP.
    pub mlp: MlpBlock,
    #[module(skip)]
    window_size: usize,
    /// Stochastic-depth rate: in training (an autodiff device), each sample skips each residual
    /// branch with this probability (the kept ones scaled by `1/(1 − rate)`). 0 in inference and
    /// in the reference, which has none.
    #[module(skip)]
    drop_path: f64,
}

impl Block {
    /// `input_size` is the full token grid (used for rel-pos when attending globally).
    pub fn new(
        dim: usize,
        num_heads: usize,
        mlp_ratio: f64,
        window_size: usize,
        input_size: (usize, usize),
        device: &Device,
    ) -> Self {
        let attn_size = if window_size == 0 {
            input_size
        } else {
            (window_size, window_size)
        };
        Self {
            norm1: LayerNormConfig::new(dim)
                .with_epsilon(NORM_EPS)
                .init(device),
            attn: Attention::new(dim, num_heads, attn_size, device),
            norm2: LayerNormConfig::new(dim)
                .with_epsilon(NORM_EPS)
                .init(device),
            mlp: MlpBlock::new(
                dim,
                (dim as f64 * mlp_ratio) as usize,
                Activation::Gelu,
                device,
            ),
            window_size,
            drop_path: 0.0,
        }
    }

    /// Sets the stochastic-depth rate (see the field); rejects rates outside `[0, 1)`.
    pub fn set_drop_path(&mut self, rate: f64) -> crate::Result<()> {
        if !(0.0..1.0).contains(&rate) {
            return Err(crate::SamError::InvalidConfig(format!(
                "drop path rate {rate} is not in [0, 1)"
            )));
        }
        self.drop_path = rate;
        Ok(())
    }

    /// `branch: [B, H, W, C]` zeroed per sample with the drop-path rate, the rest rescaled; the
    /// identity outside training.
    fn drop_path(&self, branch: Tensor<4>) -> Tensor<4> {
        if self.drop_path == 0.0 || !branch.device().is_autodiff() {
            return branch;
        }
        let keep = 1.0 - self.drop_path;
        let [b, _, _, _] = branch.dims();
        let mask = Tensor::<4>::random(
            [b, 1, 1, 1],
            Distribution::Bernoulli(keep),
            &branch.device(),
        )
        .cast(branch.dtype());
        branch * (mask / keep)
    }

    /// Whether this block attends over the whole image.
    pub fn is_global(&self) -> bool {
        self.window_size == 0
    }

    /// `x: [B, H, W, C]` → `[B, H, W, C]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let shortcut = x.clone();
        let x = norm(&self.norm1, NORM_EPS, x);
        let x = if self.window_size > 0 {
            // The reference's window_partition → attn → window_unpartition.
            self.attn.forward_windowed(x, self.window_size)
        } else {
            self.attn.forward(x)
        };
        let x = shortcut + self.drop_path(x);
        x.clone() + self.drop_path(self.mlp.forward(norm(&self.norm2, NORM_EPS, x)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::Draws;

    fn rows(t: Tensor<4>) -> Vec<Vec<f32>> {
        let [b, h, w, c] = t.dims();
        let v: Vec<f32> = t.into_data().convert::<f32>().try_to_vec().unwrap();
        v.chunks(h * w * c).take(b).map(|r| r.to_vec()).collect()
    }

    #[test]
    fn drop_path_acts_only_on_an_autodiff_device() {
        let device = Device::flex().autodiff();
        let mut block = Block::new(8, 2, 2.0, 0, (3, 3), &device);
        let draws = Draws::new(1);
        let x = draws.standard([64, 3, 3, 8], &device);
        let plain = rows(block.forward(x.clone()));

        // Inference device: the rate changes nothing.
        let inference = Device::flex();
        let mut eval_block = Block::new(8, 2, 2.0, 0, (3, 3), &inference);
        let xi = draws.standard([2, 3, 3, 8], &inference);
        let before = rows(eval_block.forward(xi.clone()));
        eval_block.set_drop_path(0.5).unwrap();
        assert_eq!(rows(eval_block.forward(xi)), before);

        // Almost surely every branch dropped: the block is the identity.
        block.set_drop_path(0.999_999).unwrap();
        assert_eq!(rows(block.forward(x.clone())), rows(x.clone()));

        // Each branch dropped half the time: about a quarter of the samples skip both.
        block.set_drop_path(0.5).unwrap();
        let out = rows(block.forward(x.clone()));
        let input = rows(x);
        let identity = out.iter().zip(&input).filter(|(o, i)| o == i).count();
        assert!(
            (4..=32).contains(&identity),
            "{identity} of 64 samples skipped both branches"
        );
        assert!(out.iter().zip(&plain).any(|(o, p)| o != p));

        let e = block.set_drop_path(1.0).expect_err("an error").to_string();
        assert!(e.contains("drop path rate 1"), "{e}");
    }
}
