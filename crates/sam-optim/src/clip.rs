//! Global-norm gradient clipping with the semantics of PyTorch's `clip_grad_norm_`.
//!
//! Burn's `GradientClipping::Norm` rescales each parameter's gradient by that tensor's own norm;
//! `clip_grad_norm_` computes one L2 norm over *all* gradients and rescales all of them by the
//! same factor `min(1, max_norm / (norm + 1e-6))`, which preserves the update's direction.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{DType, FloatDType, Tensor};

use crate::error::{OptimError, Result};

/// Rescales every gradient in `grads` that belongs to a float parameter of `module` so that
/// their global L2 norm is at most `max_norm`; returns the norm before clipping.
///
/// Follows `torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type=2)`: each tensor's norm
/// is taken (in `f32` for half-precision gradients), the total is the norm of those norms, the
/// factor `max_norm / (total + 1e-6)` is clamped at 1, and a non-finite total is not an error
/// (it propagates into the gradients, as in PyTorch's default). Costs one device read-back.
pub fn clip_grad_norm<M: Module>(
    module: &M,
    grads: &mut GradientsParams,
    max_norm: f64,
) -> Result<f64> {
    if !(max_norm.is_finite() && max_norm > 0.0) {
        return Err(OptimError::config(
            "max_grad_norm",
            max_norm,
            "must be finite and > 0",
        ));
    }
    let total = global_grad_norm(module, grads);
    let total32 = total as f32;
    let coef = max_norm as f32 / (total32 + 1e-6);
    // torch.clamp(max=1) keeps NaN, f32::min would not.
    let coef = if coef.is_nan() { coef } else { coef.min(1.0) };
    if coef != 1.0 {
        module.visit(&mut Scale {
            grads,
            factor: coef,
        });
    }
    Ok(total32 as f64)
}

/// The global L2 norm of the gradients of `module`'s float parameters present in `grads`
/// (0 when there are none), computed like `clip_grad_norm_` does.
pub fn global_grad_norm<M: Module>(module: &M, grads: &GradientsParams) -> f64 {
    let mut squares = SumSquares {
        grads,
        sums: Vec::new(),
    };
    module.visit(&mut squares);
    let Some(first) = squares.sums.first() else {
        return 0.0;
    };
    let device = first.device();
    let sums: Vec<Tensor<1>> = squares
        .sums
        .into_iter()
        .map(|t| t.to_device(&device))
        .collect();
    let values: Vec<f32> = Tensor::cat(sums, 0)
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default();
    // Per-tensor norms in f32 (as torch's vector_norm returns them), then the norm of norms.
    let total: f64 = values
        .iter()
        .map(|&s| {
            let n = s.sqrt() as f64;
            n * n
        })
        .sum();
    total.sqrt()
}

struct SumSquares<'a> {
    grads: &'a GradientsParams,
    sums: Vec<Tensor<1>>,
}

impl ModuleVisitor for SumSquares<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            let g = match g.dtype() {
                DType::F16 | DType::BF16 => g.cast(FloatDType::F32),
                _ => g,
            };
            self.sums.push(g.square().sum());
        }
    }
}

struct Scale<'a> {
    grads: &'a mut GradientsParams,
    factor: f32,
}

impl ModuleVisitor for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads
                .register::<D>(param.id, g.mul_scalar(self.factor));
        }
    }
}
