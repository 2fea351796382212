//! The two-way transformer (the reference's `modeling/transformer.py`): tokens attend to the
//! image and the image attends back to the tokens.

use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::{Device, Tensor};

use super::attention::{Attention, ProjectionSide, Side};
#[cfg(feature = "flex")]
use super::image_to_token_on_host::HostImage;
use crate::common::{Activation, MlpBlock, norm};

/// `nn.LayerNorm`'s default epsilon, which the reference's decoder keeps.
const NORM_EPS: f64 = 1e-5;

fn layer_norm(dim: usize, device: &Device) -> LayerNorm {
    // The transformer uses PyTorch's default eps (1e-5), unlike the encoder's 1e-6.
    LayerNormConfig::new(dim)
        .with_epsilon(NORM_EPS)
        .init(device)
}

/// One two-way block: self-attention, token→image, MLP, image→token.
#[derive(Module, Debug)]
pub struct TwoWayAttentionBlock {
    /// Self-attention of the tokens (full width).
    pub self_attn: Attention,
    /// Norm after self-attention.
    pub norm1: LayerNorm,
    /// Tokens attend to the image (width C/2).
    pub cross_attn_token_to_image: Attention,
    /// Norm after token→image.
    pub norm2: LayerNorm,
    /// ReLU MLP on the tokens.
    pub mlp: MlpBlock,
    /// Norm after the MLP.
    pub norm3: LayerNorm,
    /// Norm of the image tokens after image→token.
    pub norm4: LayerNorm,
    /// The image attends to the tokens (width C/2).
    pub cross_attn_image_to_token: Attention,
    #[module(skip)]
    skip_first_layer_pe: bool,
}

impl TwoWayAttentionBlock {
    /// The first block (`skip_first_layer_pe`) has neither PE nor residual in its self-attention.
    pub fn new(
        embedding_dim: usize,
        num_heads: usize,
        mlp_dim: usize,
        attention_downsample_rate: usize,
        skip_first_layer_pe: bool,
        device: &Device,
    ) -> Self {
        Self {
            self_attn: Attention::new(embedding_dim, num_heads, 1, device),
            norm1: layer_norm(embedding_dim, device),
            cross_attn_token_to_image: Attention::new(
                embedding_dim,
                num_heads,
                attention_downsample_rate,
                device,
            ),
            norm2: layer_norm(embedding_dim, device),
            mlp: MlpBlock::new(embedding_dim, mlp_dim, Activation::Relu, device),
            norm3: layer_norm(embedding_dim, device),
            norm4: layer_norm(embedding_dim, device),
            cross_attn_image_to_token: Attention::new(
                embedding_dim,
                num_heads,
                attention_downsample_rate,
                device,
            ),
            skip_first_layer_pe,
        }
    }

    /// `queries: [B, Nt, C]`, `keys: [B|1, HW, C]`, `query_pe: [B, Nt, C]`, `key_pe: [1, HW, C]`
    /// → updated `(queries, keys)`. `shared`: the image side's projections, when `keys` is
    /// one image shared by the batch ([`TwoWayTransformer::share_image_side`]).
    pub fn forward(
        &self,
        queries: Tensor<3>,
        keys: Tensor<3>,
        query_pe: Tensor<3>,
        key_pe: Tensor<3>,
        shared: Option<&SharedImageSide>,
    ) -> (Tensor<3>, Tensor<3>) {
        let image = ImageSide {
            keys,
            keys_pe: None,
            key_pe,
        };
        let (queries, image) = self.forward_image(queries, image, query_pe, shared, None);
        (queries, image.keys)
    }

    /// [`Self::forward`] on the image side's tokens, with their sum with the PE where a step
    /// made it already; `host`: the image's host values, where the CPU path applies.
    fn forward_image(
        &self,
        queries: Tensor<3>,
        image: ImageSide,
        query_pe: Tensor<3>,
        shared: Option<&SharedImageSide>,
        host: Option<&HostImage>,
    ) -> (Tensor<3>, ImageSide) {
        let ImageSide {
            keys,
            keys_pe,
            key_pe,
        } = image;
        let queries = if self.skip_first_layer_pe {
            self.self_attn
                .forward(queries.clone(), queries.clone(), queries)
        } else {
            let q = queries.clone() + query_pe.clone();
            queries.clone() + self.self_attn.forward(q.clone(), q, queries)
        };
        let queries = norm(&self.norm1, NORM_EPS, queries);

        // The image tokens do not change until the last attention, so both cross-attentions
        // take the same `keys + key_pe`.
        let (t2i_k, t2i_v, i2t_q) = match shared {
            Some(s) => (s.keys.clone(), s.values.clone(), s.queries.clone()),
            None => {
                let k = keys_pe.unwrap_or_else(|| keys.clone() + key_pe.clone());
                (
                    Side::Tokens(k.clone()),
                    Side::Tokens(keys.clone()),
                    Side::Tokens(k),
                )
            }
        };
        let q = queries.clone() + query_pe.clone();
        let queries = queries
            + self
                .cross_attn_token_to_image
                .forward_sides(Side::Tokens(q), t2i_k, t2i_v);
        let queries = norm(&self.norm2, NORM_EPS, queries);

        let queries = queries.clone() + self.mlp.forward(queries);
        let queries = norm(&self.norm3, NORM_EPS, queries);

        let q = queries.clone() + query_pe;
        #[cfg(feature = "flex")]
        if let Some(host) =
            host.filter(|h| self.image_to_token_on_host_applies(&i2t_q, &keys, &q, h))
        {
            let image = ImageSide {
                keys,
                keys_pe: None,
                key_pe,
            };
            let image = self.image_to_token_on_host(i2t_q, image, q, queries.clone(), host);
            return (queries, image);
        }
        #[cfg(not(feature = "flex"))]
        let _ = host;
        let attn_out = self.cross_attn_image_to_token.forward_sides(
            i2t_q,
            Side::Tokens(q),
            Side::Tokens(queries.clone()),
        );
        let keys = norm(&self.norm4, NORM_EPS, keys + attn_out);
        let image = ImageSide {
            keys,
            keys_pe: None,
            key_pe,
        };
        (queries, image)
    }

    /// Whether [`Self::image_to_token_on_host`] runs: f32 everywhere, and the shared
    /// projection's host rows where the image side comes projected.
    #[cfg(feature = "flex")]
    fn image_to_token_on_host_applies(
        &self,
        i2t_q: &Side,
        keys: &Tensor<3>,
        q: &Tensor<3>,
        host: &HostImage,
    ) -> bool {
        let f32 = |dtype: burn::tensor::DType| dtype == burn::tensor::DType::F32;
        let attn = &self.cross_attn_image_to_token;
        let projected_rows = match i2t_q {
            Side::Tokens(k) => f32(k.dtype()),
            Side::Heads(_) => host.queries.is_some(),
        };
        // Empty grids, batches or token sets take Burn's ops (the pieces are non-empty).
        let nonempty = keys.dims().iter().chain(&q.dims()).all(|&d| d > 0);
        projected_rows
            && nonempty
            && f32(keys.dtype())
            && f32(q.dtype())
            && [&attn.q_proj, &attn.k_proj, &attn.v_proj, &attn.out_proj]
                .iter()
                .all(|l| f32(l.weight.val().dtype()))
            && f32(self.norm4.gamma.val().dtype())
    }

    /// The image→token attention, the residual, `norm4` and the next `+ PE` on the host
    /// ([`super::image_to_token_on_host`]), where [`Self::image_to_token_on_host_applies`]:
    /// `q`, `queries`: the tokens plus PE, and the tokens, `[B, Nt, C]`.
    #[cfg(feature = "flex")]
    fn image_to_token_on_host(
        &self,
        i2t_q: Side,
        image: ImageSide,
        q: Tensor<3>,
        queries: Tensor<3>,
        host: &HostImage,
    ) -> ImageSide {
        use super::image_to_token_on_host::{Input, Norm, tensor, update};
        use crate::vector_math::host_values as values;
        let ImageSide { keys, key_pe, .. } = image;
        let [b, _, c] = q.dims();
        let [bk, hw, _] = keys.dims();
        let device = q.device();
        // A prompt batch's own values are overwritten with the results; one image's tokens
        // (batch 1 under several prompts) are read where they are.
        let own = |x: Tensor<3>| x.into_data();
        let rows_data;
        // The image side `Y`: the image tokens plus PE, or the batch's shared projection.
        let (rows, projected) = match i2t_q {
            Side::Tokens(k) if k.dims()[0] == b => (Input::Owned(own(k)), false),
            Side::Tokens(k) => {
                rows_data = own(k);
                (
                    Input::Shared(rows_data.as_slice::<f32>().unwrap_or(&[]), 1),
                    false,
                )
            }
            Side::Heads(_) => {
                let rows = host.queries.as_deref().map(Vec::as_slice);
                (Input::Shared(rows.unwrap_or(&[]), 1), true)
            }
        };
        let factors = self
            .cross_attn_image_to_token
            .host_factors(q, queries, projected);
        let keys_data;
        let keys = match &host.keys {
            Some(k) if bk == 1 => Input::Shared(k.as_slice(), 1),
            _ if bk == b => Input::Owned(own(keys)),
            _ => {
                keys_data = own(keys);
                Input::Shared(keys_data.as_slice::<f32>().unwrap_or(&[]), bk)
            }
        };
        let gamma = values(self.norm4.gamma.val()).unwrap_or_default();
        let beta = match &self.norm4.beta {
            Some(beta) => values(beta.val()).unwrap_or_default(),
            None => vec![0.0; c],
        };
        let norm = Norm {
            gamma: &gamma,
            beta: &beta,
            eps: NORM_EPS as f32,
        };
        let (out, out_pe) = update(rows, keys, &host.key_pe, &factors, &norm, (b, hw, c));
        ImageSide {
            keys: tensor(out, &device),
            keys_pe: Some(tensor(out_pe, &device)),
            key_pe,
        }
    }
}

/// Without flex no image values are read on the host.
#[cfg(not(feature = "flex"))]
#[derive(Clone, Debug)]
struct HostImage;

#[cfg(not(feature = "flex"))]
impl HostImage {
    fn new(_key_pe: &Tensor<3>) -> Option<Self> {
        None
    }

    fn later_blocks(&self) -> Self {
        Self
    }

    fn with_first_block(self, _keys: &Tensor<3>, _queries: &Side) -> Self {
        self
    }
}

/// The image side of the two-way blocks: the image tokens `[B|1, hw, C]`, their sum with the
/// positional encoding where already made, and the encoding `[1, hw, C]`.
struct ImageSide {
    keys: Tensor<3>,
    keys_pe: Option<Tensor<3>>,
    key_pe: Tensor<3>,
}

/// The first block's projections of one image's tokens, shared by a batch of prompts
/// ([`TwoWayTransformer::share_image_side`]).
#[derive(Clone, Debug)]
pub struct SharedImageSide {
    /// Token→image keys, `k_proj(image + PE)`, split into heads.
    keys: Side,
    /// Token→image values, `v_proj(image)`.
    values: Side,
    /// Image→token queries, `q_proj(image + PE)`.
    queries: Side,
    /// The image's host values with the queries as rows, where the CPU path applies.
    host: Option<HostImage>,
}

/// The stack of two-way blocks plus the final token→image attention.
#[derive(Module, Debug)]
pub struct TwoWayTransformer {
    /// The blocks.
    pub layers: Vec<TwoWayAttentionBlock>,
    /// Final tokens→image attention (width C/2).
    pub final_attn_token_to_image: Attention,
    /// Norm after it.
    pub norm_final_attn: LayerNorm,
}

impl TwoWayTransformer {
    /// Builds `depth` blocks (cross-attention downsample rate 2, as the reference).
    pub fn new(
        depth: usize,
        embedding_dim: usize,
        num_heads: usize,
        mlp_dim: usize,
        device: &Device,
    ) -> Self {
        Self {
            layers: (0..depth)
                .map(|i| {
                    TwoWayAttentionBlock::new(embedding_dim, num_heads, mlp_dim, 2, i == 0, device)
                })
                .collect(),
            final_attn_token_to_image: Attention::new(embedding_dim, num_heads, 2, device),
            norm_final_attn: layer_norm(embedding_dim, device),
        }
    }

    /// `image_embedding: [B|1, C, h, w]`, `image_pe: [1, C, h, w]`, `point_embedding: [B, Nt, C]`
    /// → (`queries: [B, Nt, C]`, `keys: [B, hw, C]`).
    pub fn forward(
        &self,
        image_embedding: Tensor<4>,
        image_pe: Tensor<4>,
        point_embedding: Tensor<3>,
    ) -> (Tensor<3>, Tensor<3>) {
        let (keys, key_pe) = Self::flatten(image_embedding, image_pe);
        self.forward_flat(keys, key_pe, point_embedding, None)
    }

    /// The first block's projections of the image side, `keys: [1, hw, C]` (one image) and
    /// `key_pe: [1, hw, C]`, for [`Self::forward_flat`] on many prompts: each prompt would
    /// otherwise redo them (or their reordered equivalent, ~0.17 G multiply-adds per prompt
    /// at SAM's sizes) while the image tokens are still the image's. `None` without blocks.
    pub fn share_image_side(&self, keys: Tensor<3>, key_pe: Tensor<3>) -> Option<SharedImageSide> {
        let first = self.layers.first()?;
        let k = keys.clone() + key_pe.clone();
        let queries = first
            .cross_attn_image_to_token
            .project(ProjectionSide::Query, k.clone());
        let host = HostImage::new(&key_pe).map(|h| h.with_first_block(&keys, &queries));
        Some(SharedImageSide {
            keys: first
                .cross_attn_token_to_image
                .project(ProjectionSide::Key, k),
            values: first
                .cross_attn_token_to_image
                .project(ProjectionSide::Value, keys),
            queries,
            host,
        })
    }

    /// The image and its positional encoding as token rows, `[B|1, C, h, w]` →
    /// `[B|1, hw, C]`, laid out channels-last in memory: every block adds the positional
    /// encoding to the image tokens, and on a strided (transposed) view that sum walks memory
    /// across the channels, element by element (on flex it was a fifth of a one-prompt
    /// decode). One copy here makes each later sum a contiguous one.
    pub fn flatten(image_embedding: Tensor<4>, image_pe: Tensor<4>) -> (Tensor<3>, Tensor<3>) {
        let flat = |x: Tensor<4>| {
            let [b, c, h, w] = x.dims();
            crate::util::contiguous(x.permute([0, 2, 3, 1])).reshape([b, h * w, c])
        };
        (flat(image_embedding), flat(image_pe))
    }

    /// [`Self::forward`] on flattened image tokens: `keys: [B|1, hw, C]`,
    /// `key_pe: [1, hw, C]`, `point_embedding: [B, Nt, C]`; `shared` from
    /// [`Self::share_image_side`] on these same `keys` (of batch 1) and `key_pe`.
    pub fn forward_flat(
        &self,
        keys: Tensor<3>,
        key_pe: Tensor<3>,
        point_embedding: Tensor<3>,
        shared: Option<&SharedImageSide>,
    ) -> (Tensor<3>, Tensor<3>) {
        let mut queries = point_embedding.clone();
        // The CPU path's host values of the image: the shared ones for the first block of a
        // batch on one image, the positional encoding alone for the others.
        let first_host = match shared {
            Some(s) => s.host.clone(),
            None => HostImage::new(&key_pe),
        };
        let later_host = first_host.as_ref().map(HostImage::later_blocks);
        let mut image = ImageSide {
            keys,
            keys_pe: None,
            key_pe,
        };
        for (i, layer) in self.layers.iter().enumerate() {
            let (shared, host) = if i == 0 {
                (shared, first_host.as_ref())
            } else {
                (None, later_host.as_ref())
            };
            (queries, image) =
                layer.forward_image(queries, image, point_embedding.clone(), shared, host);
        }
        let ImageSide {
            keys,
            keys_pe,
            key_pe,
        } = image;
        let q = queries.clone() + point_embedding;
        let k = keys_pe.unwrap_or_else(|| keys.clone() + key_pe);
        let queries = queries + self.final_attn_token_to_image.forward(q, k, keys.clone());
        let queries = norm(&self.norm_final_attn, NORM_EPS, queries);
        let [b, _, _] = queries.dims();
        let [bk, n, c] = keys.dims();
        // With zero layers the image tokens were never mixed per prompt.
        let keys = if bk != b {
            keys.expand([b, n, c])
        } else {
            keys
        };
        (queries, keys)
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use crate::test_util::Draws;

    /// The blocks without the CPU path (`forward`, Burn's ops), then the final attention.
    fn with_burn_ops(
        t: &TwoWayTransformer,
        keys: Tensor<3>,
        key_pe: Tensor<3>,
        tokens: Tensor<3>,
        shared: Option<&SharedImageSide>,
    ) -> (Tensor<3>, Tensor<3>) {
        let (mut queries, mut keys) = (tokens.clone(), keys);
        for (i, layer) in t.layers.iter().enumerate() {
            let shared = shared.filter(|_| i == 0);
            (queries, keys) = layer.forward(queries, keys, tokens.clone(), key_pe.clone(), shared);
        }
        let q = queries.clone() + tokens;
        let k = keys.clone() + key_pe;
        let queries = queries + t.final_attn_token_to_image.forward(q, k, keys.clone());
        (norm(&t.norm_final_attn, NORM_EPS, queries), keys)
    }

    /// The image→token steps on the host against Burn's ops: one image under several
    /// prompts with and without the shared first block, one prompt, and one image per prompt.
    #[test]
    fn host_image_to_token_matches_burn_ops() {
        let device = Device::flex();
        let draws = Draws::new(1);
        let random = |shape: [usize; 3]| draws.standard(shape, &device);
        let t = TwoWayTransformer::new(2, 32, 2, 64, &device);
        let (hw, nt, c) = (5 * 7, 6, 32);
        let key_pe = random([1, hw, c]);
        for (bk, b, share) in [(1, 4, true), (1, 4, false), (1, 1, false), (3, 3, false)] {
            let keys = random([bk, hw, c]);
            let tokens = random([b, nt, c]);
            let shared = share
                .then(|| t.share_image_side(keys.clone(), key_pe.clone()))
                .flatten();
            assert_eq!(shared.is_some(), share);
            assert!(shared.as_ref().is_none_or(|s| s.host.is_some()));
            let ours = t.forward_flat(
                keys.clone(),
                key_pe.clone(),
                tokens.clone(),
                shared.as_ref(),
            );
            let burn = with_burn_ops(&t, keys, key_pe.clone(), tokens, shared.as_ref());
            for (ours, burn) in [(ours.0, burn.0), (ours.1, burn.1)] {
                assert_eq!(ours.dims(), burn.dims());
                let diff = (ours - burn).abs().max().into_scalar::<f32>();
                assert!(diff <= 2e-5, "[{bk}, {b}, share {share}]: max diff {diff}");
            }
        }
    }
}
