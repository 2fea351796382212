//! Small conversions between tensors and host values that hold on every backend.

use burn::tensor::{Bool, Tensor};

/// The values of a boolean tensor, row-major. Backends store booleans differently (native
/// bytes on the CPU, `u32` on wgpu), so the data goes through an integer tensor.
pub fn bool_values<const D: usize>(t: Tensor<D, Bool>) -> Vec<bool> {
    t.int()
        .into_data()
        .convert::<i32>()
        .iter::<i32>()
        .map(|v| v != 0)
        .collect()
}

/// The values of a float tensor as `f32`, whatever the backend's float type.
pub fn f32_values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().iter::<f32>().collect()
}

/// The same tensor, row-major contiguous in memory: a copy if `x` is a strided view (a
/// permutation, say), `x` itself otherwise. Reshaping to one axis cannot be a view of a
/// permuted layout, so every backend materialises it.
pub fn contiguous<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let shape = x.shape();
    let n = shape.num_elements();
    x.reshape([n]).reshape(shape)
}
