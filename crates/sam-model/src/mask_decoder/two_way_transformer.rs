//! The two-way transformer (the reference's `modeling/transformer.py`): tokens attend to the
//! image and the image attends back to the tokens.

use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::{Device, Tensor};

use super::attention::{Attention, ProjectionSide, Side};
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
                let k = keys.clone() + key_pe;
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
        let attn_out = self.cross_attn_image_to_token.forward_sides(
            i2t_q,
            Side::Tokens(q),
            Side::Tokens(queries.clone()),
        );
        let keys = norm(&self.norm4, NORM_EPS, keys + attn_out);
        (queries, keys)
    }
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
        let k = keys.clone() + key_pe;
        Some(SharedImageSide {
            keys: first
                .cross_attn_token_to_image
                .project(ProjectionSide::Key, k.clone()),
            values: first
                .cross_attn_token_to_image
                .project(ProjectionSide::Value, keys),
            queries: first
                .cross_attn_image_to_token
                .project(ProjectionSide::Query, k),
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
        let mut keys = keys;
        for (i, layer) in self.layers.iter().enumerate() {
            let shared = shared.filter(|_| i == 0);
            (queries, keys) = layer.forward(
                queries,
                keys,
                point_embedding.clone(),
                key_pe.clone(),
                shared,
            );
        }
        let q = queries.clone() + point_embedding;
        let k = keys.clone() + key_pe;
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
