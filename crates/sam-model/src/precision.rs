//! Reduced-precision compute (bf16 / f16) with f32 where it decides accuracy.
//!
//! A model cast with [`Sam::cast_float`](crate::Sam::cast_float) runs its matrix products,
//! convolutions and activations in the 16-bit type, while — as PyTorch's autocast does — layer
//! norms and the encoder's softmax are computed in f32, the positional encoding of coordinates
//! is computed in f32, and the mask decoder hands back f32 logits and IoU scores (so losses and
//! post-processing stay f32). On an autodiff device the cast is recorded, so gradients reach
//! the f32 parameters the cast copy was made from: that is mixed-precision training with f32
//! master weights. For an f32 model every cast here is the identity (parity is untouched).

use burn::module::{ModuleMapper, Param};
use burn::tensor::{DType, Device, FloatDType, Tensor};

/// 16-bit float types, whose reductions lose too much precision to run in them.
pub fn is_half(dtype: DType) -> bool {
    matches!(dtype, DType::F16 | DType::BF16)
}

/// Layer norm over the last axis; 16-bit input is normalised in f32 and cast back.
///
/// `x: [.., C]`, `gamma`, `beta: [C]` → `[.., C]` in `x`'s dtype.
pub fn layer_norm<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Option<Tensor<1>>,
    epsilon: f64,
) -> Tensor<D> {
    // In training, one recorded operation that keeps only its input (crate::recorded_ops).
    #[cfg(any(feature = "flex", feature = "cube"))]
    if let Some(beta) = &beta
        && crate::recorded_ops::applies(&x)
    {
        return crate::recorded_ops::layer_norm(x, gamma, beta.clone(), epsilon);
    }
    let dtype = x.dtype();
    let compute = if is_half(dtype) {
        FloatDType::F32
    } else {
        dtype.into()
    };
    burn::tensor::module::layer_norm(
        x.cast(compute),
        gamma.cast(compute),
        beta.map(|b| b.cast(compute)),
        epsilon,
    )
    .cast(dtype)
}

/// Softmax along `dim`; 16-bit input is exponentiated and summed in f32 and cast back.
///
/// In training, over the last axis, it is one recorded operation that keeps only its output
/// for the backward pass (`crate::recorded_ops`).
pub fn softmax<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    #[cfg(any(feature = "flex", feature = "cube"))]
    if dim + 1 == D && crate::recorded_ops::applies(&x) {
        return crate::recorded_ops::softmax_last(x);
    }
    let dtype = x.dtype();
    if is_half(dtype) {
        burn::tensor::activation::softmax(x.cast(FloatDType::F32), dim).cast(dtype)
    } else {
        burn::tensor::activation::softmax(x, dim)
    }
}

/// Why `device` cannot compute in `dtype` (bf16 on wgpu/Vulkan, for one), or `None` if it can.
pub fn unsupported(device: &Device, dtype: FloatDType) -> Option<String> {
    (!device.supports_dtype(dtype))
        .then(|| format!("the device {device:?} cannot compute in {dtype:?}"))
}

/// Casts every float parameter of a module; ids are kept, so optimiser state and gradients
/// still address the parameters by the same ids.
pub(crate) struct CastFloat(pub FloatDType);

impl ModuleMapper for CastFloat {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let dtype = self.0;
        param.map(|t| t.cast(dtype))
    }
}
