//! The workspace builds burn-flex with its buffers allocated for their dtype (patches/README.md).
//! Without the patch every new flex tensor is zero-filled, allocated twice and copied: ~10% of
//! the encoder and of a training step. This fails if the `[patch.crates-io]` entry is lost.

use burn::tensor::{Device, Tensor};

#[test]
fn flex_buffers_are_allocated_for_their_dtype() {
    let zeros = || Tensor::<2>::zeros([64, 48], &Device::flex());
    // Owned by the tensor alone, so its buffer is handed over as it is.
    let f32_buffer = zeros().into_data();
    // Unpatched, every such buffer is re-made 16-aligned (`Bytes::from_bytes_vec`).
    assert_eq!(f32_buffer.bytes().align(), align_of::<f32>());
    // The allocation is handed back as the `Vec<f32>` it is, zeros.
    let values = f32_buffer.try_into_vec::<f32>().expect("f32 values");
    assert_eq!(values.len(), 64 * 48);
    assert!(values.iter().all(|&v| v == 0.0));
    // A product's output goes through the same allocation.
    let product = (zeros() + 1.0).matmul(zeros().transpose() + 2.0);
    let data = product.into_data();
    assert_eq!(data.bytes().align(), align_of::<f32>());
    let values = data.try_into_vec::<f32>().expect("f32 values");
    assert!(values.iter().all(|&v| v == 2.0 * 48.0));
}
