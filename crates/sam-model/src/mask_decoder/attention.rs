//! The decoder's attention layer, with optional down-projection of the internal width
//! (the reference's `transformer.Attention`).

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use crate::lora::{LoraAdapter, forward_with};
use crate::softmax::softmax_last;

/// Multi-head attention over `embedding_dim / downsample_rate` internal channels.
#[derive(Module, Debug)]
pub struct Attention {
    /// `[C] → [C/r]`.
    pub q_proj: Linear,
    /// `[C] → [C/r]`.
    pub k_proj: Linear,
    /// `[C] → [C/r]`.
    pub v_proj: Linear,
    /// `[C/r] → [C]`.
    pub out_proj: Linear,
    /// LoRA updates of the four projections (none in the reference).
    pub lora_q: Option<LoraAdapter>,
    /// See `lora_q`.
    pub lora_k: Option<LoraAdapter>,
    /// See `lora_q`.
    pub lora_v: Option<LoraAdapter>,
    /// See `lora_q`.
    pub lora_out: Option<LoraAdapter>,
    #[module(skip)]
    num_heads: usize,
}

impl Attention {
    /// `downsample_rate` 1 for self-attention, 2 for the cross-attentions.
    pub fn new(
        embedding_dim: usize,
        num_heads: usize,
        downsample_rate: usize,
        device: &Device,
    ) -> Self {
        let internal = embedding_dim / downsample_rate;
        Self {
            q_proj: LinearConfig::new(embedding_dim, internal).init(device),
            k_proj: LinearConfig::new(embedding_dim, internal).init(device),
            v_proj: LinearConfig::new(embedding_dim, internal).init(device),
            out_proj: LinearConfig::new(internal, embedding_dim).init(device),
            lora_q: None,
            lora_k: None,
            lora_v: None,
            lora_out: None,
            num_heads,
        }
    }

    /// `[B, N, c] → [B, heads, N, c/heads]`.
    fn separate_heads(&self, x: Tensor<3>) -> Tensor<4> {
        let [b, n, c] = x.dims();
        x.reshape([b, n, self.num_heads, c / self.num_heads])
            .swap_dims(1, 2)
    }

    /// `q: [Bq, Nq, C]`, `k: [Bk, Nk, C]`, `v: [Bk, Nk, C]` → `[B, Nq, C]`, `B = max(Bq, Bk)`.
    ///
    /// Batches of 1 broadcast against larger ones (one image embedding, many prompts).
    ///
    /// The decoder's cross-attentions pair ~7 prompt tokens with 4,096 image tokens, and every
    /// projection of the image side costs `HW·C·C/2` multiply-adds per prompt. Since the
    /// projections are linear and softmax rows sum to one, the same sums can be taken in
    /// another order that never projects the image side: `(X·W_q)·kᵀ = X·(W_q·kᵀ)`,
    /// `A·(V·W_o) = (A·V)·W_o` and `A·(X·W_v + b) = (A·X)·W_v + b`, with `heads·Nt` columns
    /// instead of `C/2`. Each side takes the cheaper order for the shapes at hand (multiply-add
    /// counts below), so a batch of prompts sharing one image keeps the shared projections; the
    /// results differ from the reference's order by rounding only.
    pub fn forward(&self, q: Tensor<3>, k: Tensor<3>, v: Tensor<3>) -> Tensor<3> {
        let [bq, nq, c] = q.dims();
        let [bk, nk, _] = k.dims();
        let (scores, output) = self.cheapest_orders(c, (bq, nq), (bk, nk));
        self.forward_in(q, k, Side::Tokens(v), scores, output)
    }

    /// The association orders with the fewest multiply-adds for `q: [Bq, Nq, C]` and
    /// `k, v: [Bk, Nk, C]`.
    fn cheapest_orders(
        &self,
        c: usize,
        (bq, nq): (usize, usize),
        (bk, nk): (usize, usize),
    ) -> (ScoreOrder, OutputOrder) {
        let b = bq.max(bk);
        let heads = self.num_heads;
        let w = self.q_proj.weight.dims()[1];
        let d = w / heads;

        let plain = bq * nq * c * w + bk * nk * c * w + b * nq * nk * w;
        let by_query_side = bk * nk * c * w + b * heads * nk * c * (d + nq);
        let by_key_side = bq * nq * c * w + b * heads * nq * c * (d + nk);
        let scores = if by_key_side < plain.min(by_query_side) {
            ScoreOrder::ByKeySide
        } else if by_query_side < plain {
            ScoreOrder::ByQuerySide
        } else {
            ScoreOrder::Plain
        };

        let plain = bk * nk * c * w + b * nq * nk * w + b * nq * w * c;
        let by_value_side = b * heads * nq * nk * c + b * nq * w * c + b * nq * w * c;
        let by_output_side = bk * nk * c * w + b * heads * nk * d * c + b * nq * heads * nk * c;
        let output = if by_output_side < plain.min(by_value_side) {
            OutputOrder::ByOutputSide
        } else if by_value_side < plain {
            OutputOrder::ByValueSide
        } else {
            OutputOrder::Plain
        };
        (scores, output)
    }

    /// `forward` with the given association orders.
    fn forward_in(
        &self,
        q: Tensor<3>,
        k: Tensor<3>,
        v: Side,
        score_order: ScoreOrder,
        output_order: OutputOrder,
    ) -> Tensor<3> {
        let [bq, nq, c] = q.dims();
        let [bk, nk, _] = k.dims();
        let b = bq.max(bk);
        let heads = self.num_heads;
        let w = self.q_proj.weight.dims()[1];
        let d = w / heads;

        // Scores [B, heads, Nq, Nk], in the layout their product left them in.
        let scores = match score_order {
            ScoreOrder::ByKeySide => {
                // Never projects k: (q_h·W_k,hᵀ)·kᵀ + q_h·b_k,h.
                let qh = self.separate_heads(forward_with(&self.q_proj, &self.lora_q, q));
                let (wk, bk_) = effective(&self.k_proj, &self.lora_k);
                // W_k [C, heads·d] → [1, heads, d, C]
                let wk = wk
                    .reshape([c, heads, d])
                    .permute([1, 2, 0])
                    .unsqueeze::<4>();
                let lhs = qh.clone().matmul(wk).reshape([bq, heads * nq, c]);
                let mut s = lhs.matmul(k.swap_dims(1, 2));
                if let Some(bias) = bk_ {
                    let t = qh.matmul(bias.reshape([1, heads, d, 1]));
                    s = s + t.reshape([bq, heads * nq, 1]);
                }
                Scores::HeadsMajor(s.reshape([b, heads, nq, nk]))
            }
            ScoreOrder::ByQuerySide => {
                // Never projects q: q·(W_q,h·k_hᵀ) + b_q,h·k_hᵀ.
                let kh = self.separate_heads(forward_with(&self.k_proj, &self.lora_k, k));
                let (wq, bq_) = effective(&self.q_proj, &self.lora_q);
                // W_q [C, heads·d] → [1, heads, C, d]
                let wq = wq.reshape([c, heads, d]).swap_dims(0, 1).unsqueeze::<4>();
                let kt = kh.swap_dims(2, 3); // [Bk, heads, d, Nk]
                let m = wq.matmul(kt.clone()); // [Bk, heads, C, Nk]
                let m = m.permute([0, 2, 1, 3]).reshape([bk, c, heads * nk]);
                let mut s = q.matmul(m); // [B, Nq, heads·Nk]
                if let Some(bias) = bq_ {
                    let t = bias.reshape([1, heads, 1, d]).matmul(kt); // [Bk, heads, 1, Nk]
                    s = s + t.reshape([bk, 1, heads * nk]);
                }
                // Kept query-major: the softmax (over Nk) and the output side's product
                // (`A` as `[B, Nq, heads·Nk]`) then read it without a transposing copy.
                Scores::QueryMajor(s.reshape([b, nq, heads, nk]))
            }
            ScoreOrder::Plain => {
                let qh = self.separate_heads(forward_with(&self.q_proj, &self.lora_q, q));
                let kh = self.separate_heads(forward_with(&self.k_proj, &self.lora_k, k));
                Scores::HeadsMajor(qh.matmul(kh.swap_dims(2, 3)))
            }
        };
        let probs = scores.map(|s| softmax_last(s, (d as f64).powf(-0.5)));
        self.output(probs, v, output_order)
    }

    /// `q: [Bq, Nq, C]`, `k, v: [Bk, Nk, C]` → `[B, Nq, C]` as [`Self::forward`], where any
    /// side may come already projected ([`Self::project`]): a side that every prompt shares
    /// (the image tokens of the decoder's first block) is projected once for the batch instead
    /// of once per prompt. With a projected `q` or `k` the scores take the reference's order;
    /// the output side still takes the cheapest.
    pub fn forward_sides(&self, q: Side, k: Side, v: Side) -> Tensor<3> {
        let (q, k) = match (q, k) {
            (Side::Tokens(q), Side::Tokens(k)) => match v {
                Side::Tokens(v) => return self.forward(q, k, v),
                v => {
                    let [bq, nq, c] = q.dims();
                    let [bk, nk, _] = k.dims();
                    let (scores, _) = self.cheapest_orders(c, (bq, nq), (bk, nk));
                    return self.forward_in(q, k, v, scores, OutputOrder::Plain);
                }
            },
            (q, k) => (q, k),
        };
        let qh = self.heads(q, &self.q_proj, &self.lora_q);
        let kh = self.heads(k, &self.k_proj, &self.lora_k);
        let [bq, _, nq, d] = qh.dims();
        let [bk, _, nk, _] = kh.dims();
        let probs = softmax_last(qh.matmul(kh.swap_dims(2, 3)), (d as f64).powf(-0.5));
        let output = match &v {
            Side::Tokens(t) => self.cheapest_orders(t.dims()[2], (bq, nq), (bk, nk)).1,
            Side::Heads(_) => OutputOrder::Plain,
        };
        self.output(Scores::HeadsMajor(probs), v, output)
    }

    /// A side's projection, split into heads: `[B, N, C]` → `[B, heads, N, C/r/heads]`, to be
    /// given to [`Self::forward_sides`] for the `q_proj`, `k_proj` or `v_proj` side.
    pub fn project(&self, side: ProjectionSide, x: Tensor<3>) -> Side {
        let (proj, lora) = match side {
            ProjectionSide::Query => (&self.q_proj, &self.lora_q),
            ProjectionSide::Key => (&self.k_proj, &self.lora_k),
            ProjectionSide::Value => (&self.v_proj, &self.lora_v),
        };
        Side::Heads(self.separate_heads(forward_with(proj, lora, x)))
    }

    /// The side split into heads, projected here unless it already is.
    fn heads(&self, side: Side, proj: &Linear, lora: &Option<LoraAdapter>) -> Tensor<4> {
        match side {
            Side::Tokens(x) => self.separate_heads(forward_with(proj, lora, x)),
            Side::Heads(h) => h,
        }
    }

    /// Soft-maxed scores `[B, heads, Nq, Nk]` times the values, through `out_proj` →
    /// `[B, Nq, C]`, in the given order (a projected `v` takes the reference's).
    fn output(&self, probs: Scores, v: Side, order: OutputOrder) -> Tensor<3> {
        let v = match v {
            Side::Heads(vh) => return self.merge_heads(probs.heads_major().matmul(vh)),
            Side::Tokens(v) => v,
        };
        let [b, heads, nq, nk] = probs.dims();
        let [bk, _, c] = v.dims();
        let w = self.q_proj.weight.dims()[1];
        let d = w / heads;
        let per_head =
            match order {
                OutputOrder::ByOutputSide => {
                    // Never runs out_proj on Nq rows: A·(v_h·W_o,h) + b_o.
                    let vh = self.separate_heads(forward_with(&self.v_proj, &self.lora_v, v));
                    let (wo, bo) = effective(&self.out_proj, &self.lora_out);
                    // W_o [heads·d, C] → [1, heads, d, C]
                    let wo = wo.reshape([heads, d, c]).unsqueeze::<4>();
                    let vo = vh.matmul(wo).reshape([bk, heads * nk, c]);
                    let a = probs.query_major().reshape([b, nq, heads * nk]);
                    let out = a.matmul(vo);
                    return match bo {
                        Some(bias) => out + bias.reshape([1, 1, c]),
                        None => out,
                    };
                }
                OutputOrder::ByValueSide => {
                    // Never projects v: (A·v)·W_v,h + b_v,h.
                    let a = probs.heads_major().reshape([b, heads * nq, nk]);
                    let av = a.matmul(v); // [B, heads·Nq, C]
                    let (wv, bv) = effective(&self.v_proj, &self.lora_v);
                    // W_v [C, heads·d] → [1, heads, C, d]
                    let wv = wv.reshape([c, heads, d]).swap_dims(0, 1).unsqueeze::<4>();
                    let o = av.reshape([b, heads, nq, c]).matmul(wv);
                    match bv {
                        Some(bias) => o + bias.reshape([1, heads, 1, d]),
                        None => o,
                    }
                }
                OutputOrder::Plain => probs
                    .heads_major()
                    .matmul(self.separate_heads(forward_with(&self.v_proj, &self.lora_v, v))),
            };
        self.merge_heads(per_head)
    }

    /// Per-head outputs `[B, heads, Nq, d]` merged and through `out_proj` → `[B, Nq, C]`.
    fn merge_heads(&self, per_head: Tensor<4>) -> Tensor<3> {
        let [b, heads, nq, d] = per_head.dims();
        forward_with(
            &self.out_proj,
            &self.lora_out,
            per_head.swap_dims(1, 2).reshape([b, nq, heads * d]),
        )
    }
}

#[cfg(feature = "flex")]
impl Attention {
    /// The factors of the image→token attention for the CPU path
    /// ([`super::image_to_token_on_host`]): `k, v: [B, Nt, C]` (the tokens plus PE, and the
    /// tokens); `projected_rows` when the image side comes as its `q_proj` (a batch's shared
    /// first block) rather than as the image tokens plus PE. The tokens and weights are f32.
    pub(crate) fn host_factors(
        &self,
        k: Tensor<3>,
        v: Tensor<3>,
        projected_rows: bool,
    ) -> super::image_to_token_on_host::Factors {
        use super::image_to_token_on_host::Factors;
        use crate::vector_math::host_values as values;
        let [b, nt, c] = k.dims();
        let heads = self.num_heads;
        let w = self.q_proj.weight.dims()[1];
        let d = w / heads;
        let kh = self.separate_heads(forward_with(&self.k_proj, &self.lora_k, k)); // [B, heads, Nt, d]
        let (r, r_bias, width) = if projected_rows {
            // Block-diagonal: row h·d + i, column h·Nt + j holds k_h[j, i].
            let kh = values(kh).unwrap_or_default();
            let cols = heads * nt;
            let mut r = vec![0.0f32; b * w * cols];
            for bi in 0..b {
                for h in 0..heads {
                    for j in 0..nt {
                        for i in 0..d {
                            r[(bi * w + h * d + i) * cols + h * nt + j] =
                                kh[((bi * heads + h) * nt + j) * d + i];
                        }
                    }
                }
            }
            (r, vec![0.0f32; b * cols], w)
        } else {
            let (wq, bq) = effective(&self.q_proj, &self.lora_q);
            // W_q [C, heads·d] → [1, heads, C, d]
            let wq = wq.reshape([c, heads, d]).swap_dims(0, 1).unsqueeze::<4>();
            let kt = kh.swap_dims(2, 3); // [B, heads, d, Nt]
            let m = wq.matmul(kt.clone()); // [B, heads, C, Nt]
            let m = m.permute([0, 2, 1, 3]).reshape([b, c, heads * nt]);
            let r_bias = match bq {
                Some(bias) => values(bias.reshape([1, heads, 1, d]).matmul(kt)).unwrap_or_default(),
                None => vec![0.0f32; b * heads * nt],
            };
            (values(m).unwrap_or_default(), r_bias, c)
        };
        let vh = self.separate_heads(forward_with(&self.v_proj, &self.lora_v, v));
        let (wo, bo) = effective(&self.out_proj, &self.lora_out);
        let out = wo.dims()[1];
        // W_o [heads·d, C] → [1, heads, d, C]
        let wo = wo.reshape([heads, d, out]).unsqueeze::<4>();
        let vo = values(vh.matmul(wo).reshape([b, heads * nt, out])).unwrap_or_default();
        let bo = match bo {
            Some(bias) => values(bias).unwrap_or_default(),
            None => vec![0.0f32; out],
        };
        Factors {
            r,
            r_bias,
            vo,
            bo,
            heads,
            nt,
            k: width,
            // As the tensor path rounds it.
            scale: (d as f64).powf(-0.5) as f32,
        }
    }
}

/// One side of an [`Attention`]: its input tokens, or their projection split into heads.
#[derive(Clone, Debug)]
pub enum Side {
    /// `[B, N, C]`.
    Tokens(Tensor<3>),
    /// `[B, heads, N, C/r/heads]`, from [`Attention::project`].
    Heads(Tensor<4>),
}

/// Which projection [`Attention::project`] applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProjectionSide {
    /// `q_proj`.
    Query,
    /// `k_proj`.
    Key,
    /// `v_proj`.
    Value,
}

/// Attention scores (or probabilities) `[B, heads, Nq, Nk]`, by memory layout.
enum Scores {
    /// Stored as `[B, heads, Nq, Nk]`.
    HeadsMajor(Tensor<4>),
    /// Stored as `[B, Nq, heads, Nk]`.
    QueryMajor(Tensor<4>),
}

impl Scores {
    /// `[B, heads, Nq, Nk]`.
    fn dims(&self) -> [usize; 4] {
        match self {
            Scores::HeadsMajor(s) => s.dims(),
            Scores::QueryMajor(s) => {
                let [b, nq, heads, nk] = s.dims();
                [b, heads, nq, nk]
            }
        }
    }

    /// The same function of the stored values, in the same layout (a softmax over `Nk`).
    fn map(self, f: impl FnOnce(Tensor<4>) -> Tensor<4>) -> Self {
        match self {
            Scores::HeadsMajor(s) => Scores::HeadsMajor(f(s)),
            Scores::QueryMajor(s) => Scores::QueryMajor(f(s)),
        }
    }

    /// As `[B, heads, Nq, Nk]` (a view for query-major storage).
    fn heads_major(self) -> Tensor<4> {
        match self {
            Scores::HeadsMajor(s) => s,
            Scores::QueryMajor(s) => s.swap_dims(1, 2),
        }
    }

    /// As `[B, Nq, heads, Nk]` (a view for heads-major storage).
    fn query_major(self) -> Tensor<4> {
        match self {
            Scores::HeadsMajor(s) => s.swap_dims(1, 2),
            Scores::QueryMajor(s) => s,
        }
    }
}

/// How the attention scores are associated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ScoreOrder {
    /// The reference's: project q and k, then q·kᵀ.
    Plain,
    /// Never projects q: `q·(W_q,h·k_hᵀ) + b_q,h·k_hᵀ`.
    ByQuerySide,
    /// Never projects k: `(q_h·W_k,hᵀ)·kᵀ + q_h·b_k,h`.
    ByKeySide,
}

/// How the attention output is associated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OutputOrder {
    /// The reference's: project v, A·v, then out_proj.
    Plain,
    /// Never runs out_proj on the query rows: `A·(v_h·W_o,h) + b_o`.
    ByOutputSide,
    /// Never projects v: `(A·v)·W_v,h + b_v,h`, then out_proj.
    ByValueSide,
}

/// A projection's weight `[in, out]` (with its LoRA update) and bias.
fn effective(base: &Linear, adapter: &Option<LoraAdapter>) -> (Tensor<2>, Option<Tensor<1>>) {
    let weight = match adapter {
        Some(a) => base.weight.val() + a.delta_weight(),
        None => base.weight.val(),
    };
    (weight, base.bias.as_ref().map(|b| b.val()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lora::LoraConfig;
    use crate::precision::softmax;
    use crate::test_util::Draws;
    use burn::module::Param;

    /// The reference's order: project, split heads, softmax(q·kᵀ/√d)·v, merge, project.
    fn plain(attn: &Attention, q: Tensor<3>, k: Tensor<3>, v: Tensor<3>) -> Tensor<3> {
        let q = attn.separate_heads(forward_with(&attn.q_proj, &attn.lora_q, q));
        let k = attn.separate_heads(forward_with(&attn.k_proj, &attn.lora_k, k));
        let v = attn.separate_heads(forward_with(&attn.v_proj, &attn.lora_v, v));
        let [b, heads, nq, d] = q.dims();
        let [bk, _, _, _] = k.dims();
        let b = b.max(bk);
        let scores = q.matmul(k.swap_dims(2, 3)) / (d as f64).sqrt();
        let out = softmax(scores, 3).matmul(v);
        forward_with(
            &attn.out_proj,
            &attn.lora_out,
            out.swap_dims(1, 2).reshape([b, nq, heads * d]),
        )
    }

    /// Every association order, and every choice of sides given already projected, on
    /// image→token, token→image, shared-image and self-attention shapes, with biases and LoRA
    /// updates, against the reference's order.
    #[test]
    fn every_order_matches_the_reference_order() {
        let device = Device::flex();
        let draws = Draws::new(1);
        let (c, heads) = (32, 4);
        let mut attn = Attention::new(c, heads, 2, &device);
        let config = LoraConfig::default();
        for (slot, d_in, d_out) in [
            (&mut attn.lora_q, c, c / 2),
            (&mut attn.lora_k, c, c / 2),
            (&mut attn.lora_v, c, c / 2),
            (&mut attn.lora_out, c / 2, c),
        ] {
            let mut adapter = LoraAdapter::new(d_in, d_out, &config, &device);
            adapter.b.weight =
                Param::from_tensor(draws.standard([config.rank, d_out], &device) * 0.1);
            *slot = Some(adapter);
        }
        let scores = [
            ScoreOrder::Plain,
            ScoreOrder::ByQuerySide,
            ScoreOrder::ByKeySide,
        ];
        let outputs = [
            OutputOrder::Plain,
            OutputOrder::ByOutputSide,
            OutputOrder::ByValueSide,
        ];
        // (Bq, Nq, Bk, Nk)
        for (bq, nq, bk, nk) in [
            (3, 256, 3, 5), // image → tokens, one image per prompt
            (1, 256, 3, 5), // image → tokens, shared image
            (3, 5, 3, 256), // tokens → image, one image per prompt
            (3, 5, 1, 256), // tokens → image, shared image
            (3, 5, 3, 5),   // self-attention
        ] {
            let q = draws.standard([bq, nq, c], &device);
            let k = draws.standard([bk, nk, c], &device);
            let v = draws.standard([bk, nk, c], &device);
            let reference = plain(&attn, q.clone(), k.clone(), v.clone());
            let scale = reference.clone().abs().max().into_scalar::<f32>();
            let mut runs = vec![(
                "cheapest".to_string(),
                attn.forward(q.clone(), k.clone(), v.clone()),
            )];
            // Sides given already projected (a batch sharing one image's projections).
            let (qp, kp, vp) = (
                attn.project(ProjectionSide::Query, q.clone()),
                attn.project(ProjectionSide::Key, k.clone()),
                attn.project(ProjectionSide::Value, v.clone()),
            );
            let (qt, kt, vt) = (
                Side::Tokens(q.clone()),
                Side::Tokens(k.clone()),
                Side::Tokens(v.clone()),
            );
            for (name, sides) in [
                ("q projected", (qp.clone(), kt.clone(), vt.clone())),
                ("k, v projected", (qt.clone(), kp.clone(), vp.clone())),
                ("v projected", (qt.clone(), kt.clone(), vp.clone())),
                ("all projected", (qp, kp, vp)),
                ("none projected", (qt, kt, vt)),
            ] {
                let (sq, sk, sv) = sides;
                runs.push((name.to_string(), attn.forward_sides(sq, sk, sv)));
            }
            for s in scores {
                for o in outputs {
                    let out = attn.forward_in(q.clone(), k.clone(), Side::Tokens(v.clone()), s, o);
                    runs.push((format!("{s:?}/{o:?}"), out));
                }
            }
            for (name, ours) in runs {
                assert_eq!(ours.dims(), reference.dims());
                let diff = (ours - reference.clone()).abs().max().into_scalar::<f32>();
                assert!(
                    diff <= 1e-5 * scale,
                    "{:?} {name}: max diff {diff} (scale {scale})",
                    (bq, nq, bk, nk)
                );
            }
        }
    }

    /// SAM's decoder (C 256, 8 heads, cross-attention at 128 channels, 7 tokens, 64×64 image
    /// tokens) takes the reordered sums for one prompt.
    #[test]
    fn one_prompt_never_projects_the_image_side() {
        let device = Device::flex();
        let attn = Attention::new(256, 8, 2, &device);
        assert_eq!(
            attn.cheapest_orders(256, (1, 7), (1, 4096)),
            (ScoreOrder::ByKeySide, OutputOrder::ByValueSide)
        );
        assert_eq!(
            attn.cheapest_orders(256, (1, 4096), (1, 7)),
            (ScoreOrder::ByQuerySide, OutputOrder::ByOutputSide)
        );
    }
}
