//! Comparisons shared by the predictor's parity tests.
#![allow(dead_code)]

use burn::tensor::Tensor;

/// The values of `t` as f32, in row-major order.
pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
}

/// The larger of the two, NaN if either is (`f32::max` drops a NaN, so a NaN output would pass).
pub fn nan_max(m: f32, x: f32) -> f32 {
    if x.is_nan() || m.is_nan() {
        f32::NAN
    } else {
        m.max(x)
    }
}

/// Largest absolute difference over the largest expected magnitude; NaN anywhere gives NaN.
pub fn rel_error(actual: &[f32], expected: &[f32]) -> f32 {
    assert_eq!(actual.len(), expected.len());
    let scale = expected.iter().fold(1e-12f32, |m, v| nan_max(m, v.abs()));
    actual
        .iter()
        .zip(expected)
        .fold(0f32, |m, (a, e)| nan_max(m, (a - e).abs()))
        / scale
}
