//! Matrix products on host values for the fused CPU kernels, through the `gemm` crate that
//! flex runs its own products on.

/// A matrix in a slice: its values and the strides `(row, column)` between them.
pub(crate) type Strided<'a, T> = (T, (usize, usize));

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
    matmul_strided(
        (m, n, k),
        (lhs, (k, 1)),
        (rhs, (n, 1)),
        (out, (n, 1)),
        accumulate,
    );
}

/// [`matmul`] with any strides (a transposed operand or result is read or written in place).
pub(crate) fn matmul_strided(
    (m, n, k): (usize, usize, usize),
    (lhs, (lhs_rs, lhs_cs)): Strided<&[f32]>,
    (rhs, (rhs_rs, rhs_cs)): Strided<&[f32]>,
    (out, (out_rs, out_cs)): Strided<&mut [f32]>,
    accumulate: bool,
) {
    // The last element each operand's strides reach must lie inside its slice (computed
    // without wrapping), and every stride must be an `isize` for gemm.
    let fits = |len: usize, rows: usize, cols: usize, rs: usize, cs: usize| {
        isize::try_from(rs).is_ok()
            && isize::try_from(cs).is_ok()
            && (rows == 0
                || cols == 0
                || (rows - 1)
                    .checked_mul(rs)
                    .zip((cols - 1).checked_mul(cs))
                    .and_then(|(a, b)| a.checked_add(b))
                    .is_some_and(|last| last < len))
    };
    assert!(
        fits(lhs.len(), m, k, lhs_rs, lhs_cs)
            && fits(rhs.len(), k, n, rhs_rs, rhs_cs)
            && fits(out.len(), m, n, out_rs, out_cs),
        "host matmul operands do not hold [{m}, {k}] · [{k}, {n}]"
    );
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: every index the product reads or writes is within the slices (checked above);
    // `out` is borrowed mutably, so it overlaps neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            out_cs as isize,
            out_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}
