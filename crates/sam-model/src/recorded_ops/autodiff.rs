//! The recorded operations on autodiff: one graph node each, with its own backward pass.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, TensorMetadata};
use burn::tensor::DType;

use super::RecordedOps;

/// A backward pass from the saved tensor and the output's gradient.
type BackwardFn<B> = fn(FloatTensor<B>, FloatTensor<B>) -> FloatTensor<B>;

/// Which tensor a recorded operation keeps for its backward pass.
enum Saved {
    /// GELU's derivative needs its input.
    Input,
    /// The softmax's needs only its output.
    Output,
}

/// A recorded one-input operation whose backward pass is its state's function of the saved
/// tensor and the gradient.
#[derive(Debug)]
struct FromSaved;

impl<B: Backend> Backward<B, 1> for FromSaved {
    type State = (FloatTensor<B>, BackwardFn<B>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (saved, backward) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| backward(saved, grad));
    }
}

/// `forward(x)` recorded with `backward` and the `saved` tensor. Compute-bound: the saved
/// tensor is kept, not recomputed, under gradient checkpointing.
fn record<B: Backend, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    forward: fn(FloatTensor<B>) -> FloatTensor<B>,
    backward: BackwardFn<B>,
    saved: Saved,
) -> FloatTensor<Autodiff<B, C>> {
    match FromSaved
        .prepare::<C>([x.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let x = x.into_primitive();
            let (kept, y) = match saved {
                Saved::Input => (x.clone(), forward(x)),
                Saved::Output => {
                    let y = forward(x);
                    (y.clone(), y)
                }
            };
            prep.finish((kept, backward), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(x.into_primitive())),
    }
}

/// The recorded layer norm: it keeps its input, `gamma`, the epsilon and `beta`'s dtype.
#[derive(Debug)]
struct LayerNormBackward;

impl<B: Backend + RecordedOps> Backward<B, 3> for LayerNormBackward {
    type State = (FloatTensor<B>, FloatTensor<B>, f64, DType);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (x, gamma, epsilon, beta_dtype) = ops.state;
        let grad = grads.consume::<B>(&ops.node);
        let (d_x, d_gamma, d_beta) = B::recorded_layer_norm_backward(x, gamma, grad, epsilon);
        let [x_node, gamma_node, beta_node] = ops.parents;
        if let Some(node) = x_node {
            grads.register::<B>(node.id, d_x);
        }
        if let Some(node) = gamma_node {
            grads.register::<B>(node.id, d_gamma);
        }
        if let Some(node) = beta_node {
            let d_beta = if d_beta.dtype() == beta_dtype {
                d_beta
            } else {
                B::float_cast(d_beta, beta_dtype.into())
            };
            grads.register::<B>(node.id, d_beta);
        }
    }
}

/// The recorded rel-pos softmax: it keeps its output and the key grid.
#[derive(Debug)]
struct SoftmaxRelPosBackward;

impl<B: Backend + RecordedOps> Backward<B, 3> for SoftmaxRelPosBackward {
    type State = (FloatTensor<B>, (usize, usize));

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (y, k_size) = ops.state;
        let grad = grads.consume::<B>(&ops.node);
        let (d_attn, d_rel_h, d_rel_w) = B::recorded_softmax_rel_pos_backward(y, grad, k_size);
        for (node, grad) in ops.parents.into_iter().zip([d_attn, d_rel_h, d_rel_w]) {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

/// The recorded attention: it keeps `qkv`, the tables and the probabilities.
#[derive(Debug)]
struct AttentionBackward;

/// `(qkv, rel_h, rel_w, probabilities, scale, grid)`.
type AttentionState<B> = (
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    f64,
    (usize, usize),
);

impl<B: Backend + RecordedOps> Backward<B, 3> for AttentionBackward {
    type State = AttentionState<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (qkv, rel_h, rel_w, probs, scale, grid) = ops.state;
        let grad = grads.consume::<B>(&ops.node);
        let (d_qkv, d_rel_h, d_rel_w) =
            super::attention::backward::<B>(qkv, rel_h, rel_w, probs, grad, scale, grid);
        for (node, grad) in ops.parents.into_iter().zip([d_qkv, d_rel_h, d_rel_w]) {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

impl<B: Backend + RecordedOps, C: CheckpointStrategy> RecordedOps for Autodiff<B, C> {
    fn recorded_attention(
        qkv: FloatTensor<Self>,
        rel_h: FloatTensor<Self>,
        rel_w: FloatTensor<Self>,
        scale: f64,
        grid: (usize, usize),
    ) -> FloatTensor<Self> {
        let prep = AttentionBackward
            .prepare::<C>([qkv.node(), rel_h.node(), rel_w.node()])
            .compute_bound()
            .stateful();
        let (qkv, rel_h, rel_w) = (
            qkv.into_primitive(),
            rel_h.into_primitive(),
            rel_w.into_primitive(),
        );
        match prep {
            OpsKind::Tracked(prep) => {
                let (out, probs) = super::attention::forward::<B>(
                    qkv.clone(),
                    rel_h.clone(),
                    rel_w.clone(),
                    scale,
                    grid,
                );
                prep.finish((qkv, rel_h, rel_w, probs, scale, grid), out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::recorded_attention(qkv, rel_h, rel_w, scale, grid))
            }
        }
    }

    fn recorded_softmax_rel_pos(
        attn: FloatTensor<Self>,
        rel_h: FloatTensor<Self>,
        rel_w: FloatTensor<Self>,
        k_size: (usize, usize),
    ) -> FloatTensor<Self> {
        let prep = SoftmaxRelPosBackward
            .prepare::<C>([attn.node(), rel_h.node(), rel_w.node()])
            .compute_bound()
            .stateful();
        let (attn, rel_h, rel_w) = (
            attn.into_primitive(),
            rel_h.into_primitive(),
            rel_w.into_primitive(),
        );
        let y = B::recorded_softmax_rel_pos(attn, rel_h, rel_w, k_size);
        match prep {
            OpsKind::Tracked(prep) => prep.finish((y.clone(), k_size), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn recorded_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let beta_dtype = beta.dtype();
        let prep = LayerNormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful();
        let (x, gamma, beta) = (
            x.into_primitive(),
            gamma.into_primitive(),
            beta.into_primitive(),
        );
        match prep {
            OpsKind::Tracked(prep) => {
                let y = B::recorded_layer_norm(x.clone(), gamma.clone(), beta, epsilon);
                prep.finish((x, gamma, epsilon, beta_dtype), y)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::recorded_layer_norm(x, gamma, beta, epsilon))
            }
        }
    }

    fn recorded_softmax_last(x: FloatTensor<Self>) -> FloatTensor<Self> {
        record::<B, C>(
            x,
            B::recorded_softmax_last,
            B::recorded_softmax_last_backward,
            Saved::Output,
        )
    }

    fn recorded_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        record::<B, C>(x, B::recorded_gelu, B::recorded_gelu_backward, Saved::Input)
    }
}
