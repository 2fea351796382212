//! Point grids (the reference's `build_point_grid`).

/// `n × n` points at cell centres of the unit square, x varying fastest.
pub fn build_point_grid(n_per_side: usize) -> Vec<[f64; 2]> {
    let offset = 1.0 / (2.0 * n_per_side as f64);
    // np.linspace(offset, 1 - offset, n): start + i·step, with the last point exact.
    let line: Vec<f64> = (0..n_per_side)
        .map(|i| {
            if n_per_side == 1 {
                offset
            } else if i == n_per_side - 1 {
                1.0 - offset
            } else {
                let step = (1.0 - offset - offset) / (n_per_side - 1) as f64;
                offset + i as f64 * step
            }
        })
        .collect();
    line.iter()
        .flat_map(|&y| line.iter().map(move |&x| [x, y]))
        .collect()
}

/// One grid per crop layer: layer i has `int(n / scale^i)` points per side.
pub fn build_all_layer_point_grids(
    n_per_side: usize,
    n_layers: usize,
    scale_per_layer: usize,
) -> Vec<Vec<[f64; 2]>> {
    (0..=n_layers)
        .map(|i| {
            build_point_grid((n_per_side as f64 / (scale_per_layer as f64).powi(i as i32)) as usize)
        })
        .collect()
}
