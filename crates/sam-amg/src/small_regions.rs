//! Hole filling and island removal (the reference's `remove_small_regions`, which uses OpenCV's
//! 8-connected components).

/// Which regions to remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionMode {
    /// Fill background regions smaller than the area.
    Holes,
    /// Remove foreground regions smaller than the area.
    Islands,
}

/// 8-connected labels of the `true` pixels: label per pixel (0 = not set) and the size of each
/// label (index 0 unused). Labels follow the raster order of each region's first pixel.
fn label_components(mask: &[bool], h: usize, w: usize) -> (Vec<u32>, Vec<usize>) {
    let mut labels = vec![0u32; h * w];
    let mut sizes = vec![0usize];
    let mut stack = Vec::new();
    for start in 0..h * w {
        if !mask[start] || labels[start] != 0 {
            continue;
        }
        let label = sizes.len() as u32;
        let mut size = 0;
        labels[start] = label;
        stack.push(start);
        while let Some(p) = stack.pop() {
            size += 1;
            let (y, x) = ((p / w) as i64, (p % w) as i64);
            for dy in -1..=1i64 {
                for dx in -1..=1i64 {
                    let (ny, nx) = (y + dy, x + dx);
                    if ny < 0 || nx < 0 || ny >= h as i64 || nx >= w as i64 {
                        continue;
                    }
                    let q = ny as usize * w + nx as usize;
                    if mask[q] && labels[q] == 0 {
                        labels[q] = label;
                        stack.push(q);
                    }
                }
            }
        }
        sizes.push(size);
    }
    (labels, sizes)
}

/// Removes regions smaller than `area_thresh`; returns the new mask and whether it changed.
pub fn remove_small_regions(
    mask: &[bool],
    h: usize,
    w: usize,
    area_thresh: f64,
    mode: RegionMode,
) -> (Vec<bool>, bool) {
    let holes = mode == RegionMode::Holes;
    let working: Vec<bool> = mask.iter().map(|&m| m ^ holes).collect();
    let (labels, sizes) = label_components(&working, h, w);
    let small: Vec<bool> = sizes.iter().map(|&s| (s as f64) < area_thresh).collect();
    if !small.iter().skip(1).any(|&s| s) {
        return (mask.to_vec(), false);
    }
    let out = if holes {
        // Keep the mask (label 0 of the inverted image) and fill the small holes.
        labels
            .iter()
            .map(|&l| l == 0 || small[l as usize])
            .collect()
    } else {
        let any_large = (1..sizes.len()).any(|l| !small[l]);
        if any_large {
            labels
                .iter()
                .map(|&l| l != 0 && !small[l as usize])
                .collect()
        } else {
            // Every island is small: keep the largest (the first of equals).
            let largest =
                (1..sizes.len()).fold(1, |best, l| if sizes[l] > sizes[best] { l } else { best });
            labels.iter().map(|&l| l as usize == largest).collect()
        }
    };
    (out, true)
}
