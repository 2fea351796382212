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
            // Every island is small: keep the largest, of equals the one OpenCV numbers first
            // (the reference takes `argmax` of its sizes). Its 8-connected labelling scans 2×2
            // blocks, so labels follow each region's first block, not its first pixel; two
            // regions never share a block (pixels of one block are 8-connected).
            let mut first_block = vec![usize::MAX; sizes.len()];
            let blocks_per_row = w.div_ceil(2);
            for (p, &l) in labels.iter().enumerate() {
                let block = (p / w / 2) * blocks_per_row + (p % w) / 2;
                let b = &mut first_block[l as usize];
                *b = (*b).min(block);
            }
            let largest = (1..sizes.len())
                .min_by_key(|&l| (std::cmp::Reverse(sizes[l]), first_block[l]))
                .unwrap_or(1);
            labels.iter().map(|&l| l as usize == largest).collect()
        }
    };
    (out, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two equal islands, all below the area: the reference keeps the one OpenCV labels first,
    /// by 2×2 block, which is not always the one whose first pixel comes first. Expected pixels
    /// from `segment_anything.utils.amg.remove_small_regions` with OpenCV 5.1.
    #[test]
    fn ties_keep_the_island_opencv_numbers_first() {
        let (h, w) = (6, 10);
        for (a, b, kept) in [
            ((1, 0), (0, 5), (1, 0)),
            ((3, 0), (2, 5), (3, 0)),
            ((2, 0), (3, 5), (2, 0)),
        ] {
            let mut mask = vec![false; h * w];
            for (y, x) in [a, b] {
                mask[y * w + x] = true;
                mask[y * w + x + 1] = true;
            }
            let (out, changed) = remove_small_regions(&mask, h, w, 5.0, RegionMode::Islands);
            assert!(changed);
            let on: Vec<(usize, usize)> = (0..h * w)
                .filter(|&p| out[p])
                .map(|p| (p / w, p % w))
                .collect();
            assert_eq!(
                on,
                [kept, (kept.0, kept.1 + 1)],
                "islands at {a:?} and {b:?}"
            );
        }
    }
}
