//! The workspace builds burn-flex with its buffers allocated for their dtype (patches/README.md).
//! Without the patch every new flex tensor is zero-filled, allocated twice and copied: ~10% of
//! the encoder and of a training step. This fails if the `[patch.crates-io]` entry is lost.
//! The patch also leaves matrix products' outputs unfilled until `gemm` writes them; the second
//! test checks that every element is written. The third checks its fix to broadcasting an empty
//! batch.

use burn::tensor::{Device, Tensor, TensorData};

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

/// `[.., rows, cols]` values that are small integers, so every product below is exact in f32.
fn ramp(shape: &[usize], salt: usize) -> Vec<f32> {
    let len = shape.iter().product::<usize>();
    (0..len)
        .map(|i| ((i * 7 + salt * 3) % 11) as f32 - 5.0)
        .collect()
}

/// Batch index of a broadcast operand: its own size-1 batch dimensions repeat.
fn batch_offset(batch: &[usize], own: &[usize], b: usize) -> usize {
    let (mut rest, mut offset, mut stride) = (b, 0, 1);
    for (&dim, &own_dim) in batch.iter().zip(own).rev() {
        let i = rest % dim;
        rest /= dim;
        if own_dim != 1 {
            offset += i * stride;
        }
        stride *= own_dim;
    }
    offset
}

/// The patched products leave their output buffer unwritten until `gemm` stores each element
/// (`read_dst = false`). Freed buffers of the same size are filled with NaN first, so that a
/// reused allocation would show any element `gemm` failed to write; every path (2-D, batched
/// single-threaded, batch-parallel, parallel inside `gemm`, broadcast batches, an empty
/// inner dimension) must give the exact product.
#[test]
fn flex_products_write_every_output_element() {
    let device = Device::flex();
    let cases: &[(&[usize], &[usize])] = &[
        (&[37, 53], &[53, 29]),
        (&[3, 0], &[0, 4]),
        (&[3, 5, 7], &[3, 7, 4]),
        (&[8, 64, 64], &[8, 64, 64]),
        (&[2, 256, 256], &[2, 256, 256]),
        (&[4, 1, 5, 6], &[1, 3, 6, 2]),
        (&[2, 3, 0], &[2, 0, 4]),
    ];
    for &(lhs_shape, rhs_shape) in cases {
        let rank = lhs_shape.len();
        let (m, k, n) = (
            lhs_shape[rank - 2],
            lhs_shape[rank - 1],
            rhs_shape[rank - 1],
        );
        let batch: Vec<usize> = (0..rank - 2)
            .map(|d| lhs_shape[d].max(rhs_shape[d]))
            .collect();
        let batches = batch.iter().product::<usize>();
        let (lhs, rhs) = (ramp(lhs_shape, 1), ramp(rhs_shape, 2));
        let mut expected = vec![0.0f32; batches * m * n];
        for b in 0..batches {
            let lo = batch_offset(&batch, &lhs_shape[..rank - 2], b) * m * k;
            let ro = batch_offset(&batch, &rhs_shape[..rank - 2], b) * k * n;
            for i in 0..m {
                for j in 0..n {
                    expected[(b * m + i) * n + j] = (0..k)
                        .map(|t| lhs[lo + i * k + t] * rhs[ro + t * n + j])
                        .sum();
                }
            }
        }

        for _ in 0..4 {
            drop(
                Tensor::<1>::full([expected.len()], f32::NAN, &device)
                    .into_data()
                    .try_into_vec::<f32>(),
            );
        }
        let to_tensor = |values: Vec<f32>, shape: &[usize]| -> Tensor<4> {
            let mut dims = vec![1; 4 - shape.len()];
            dims.extend_from_slice(shape);
            Tensor::<4>::from_data(TensorData::new(values, dims), &device)
        };
        let product = to_tensor(lhs, lhs_shape).matmul(to_tensor(rhs, rhs_shape));
        let got = product
            .into_data()
            .try_into_vec::<f32>()
            .expect("f32 values");
        assert_eq!(got, expected, "{lhs_shape:?} x {rhs_shape:?}");
    }
}

/// Broadcasting an empty batch against a single matrix gives an empty batch (upstream took
/// the larger size, one, and read that matrix from the empty operand's buffer).
#[test]
fn an_empty_batch_broadcasts_to_an_empty_product() {
    let device = Device::flex();
    for (lhs, rhs) in [([0, 2, 2], [1, 2, 3]), ([1, 2, 2], [0, 2, 3])] {
        let product = Tensor::<3>::ones(lhs, &device).matmul(Tensor::<3>::ones(rhs, &device));
        assert_eq!(product.dims(), [0, 2, 3]);
        assert!(
            product
                .into_data()
                .try_into_vec::<f32>()
                .unwrap()
                .is_empty()
        );
    }
}
