//! Crop boxes (the reference's `generate_crop_boxes`).

/// Crop boxes `[x0, y0, x1, y1]` and their layer: the whole image, then `(2^i)²` overlapping
/// crops for each layer i ≥ 1, x varying slowest (the reference's `product(x0s, y0s)`).
pub fn generate_crop_boxes(
    im_size: (usize, usize),
    n_layers: usize,
    overlap_ratio: f64,
) -> (Vec<[usize; 4]>, Vec<usize>) {
    let (im_h, im_w) = im_size;
    let short_side = im_h.min(im_w) as f64;
    let mut boxes = vec![[0, 0, im_w, im_h]];
    let mut layers = vec![0];
    let crop_len = |orig: usize, n: usize, overlap: usize| {
        ((overlap * (n - 1) + orig) as f64 / n as f64).ceil() as usize
    };
    for i_layer in 0..n_layers {
        let n = 1usize << (i_layer + 1);
        let overlap = (overlap_ratio * short_side * (2.0 / n as f64)) as usize;
        let crop_w = crop_len(im_w, n, overlap);
        let crop_h = crop_len(im_h, n, overlap);
        let x0s: Vec<usize> = (0..n).map(|i| (crop_w - overlap) * i).collect();
        let y0s: Vec<usize> = (0..n).map(|i| (crop_h - overlap) * i).collect();
        for &x0 in &x0s {
            for &y0 in &y0s {
                boxes.push([x0, y0, (x0 + crop_w).min(im_w), (y0 + crop_h).min(im_h)]);
                layers.push(i_layer + 1);
            }
        }
    }
    (boxes, layers)
}
