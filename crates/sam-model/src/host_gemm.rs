//! Matrix products on host values for the fused CPU kernels, through the `gemm` crate that
//! flex runs its own products on.

/// `out [m, n] = lhs [m, k] · rhs [k, n]` (plus `out`'s values where `accumulate`), all
/// row-major, on this thread: the callers already run one task per thread.
///
/// With `accumulate` each value is the finished product plus the old one, the same rounding
/// as adding a bias after the product.
pub(crate) fn matmul(
    (m, n, k): (usize, usize, usize),
    lhs: &[f32],
    rhs: &[f32],
    out: &mut [f32],
    accumulate: bool,
) {
    assert!(lhs.len() >= m * k && rhs.len() >= k * n && out.len() >= m * n);
    // SAFETY: the lengths were just checked against the row-major strides used here.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs.as_ptr(),
            1,
            n as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}
