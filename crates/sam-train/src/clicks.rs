//! Clicks on the decoder's low-resolution grid: the error region between a prediction and the
//! ground truth, sampled uniformly (training, as the paper) or at its most interior cell
//! (evaluation, the usual deterministic protocol), mapped back to input pixels.

use rand::Rng;

/// A click in input pixels with its label (1 foreground, 0 background).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Click {
    /// `(x, y)` in input pixels.
    pub xy: [f64; 2],
    /// 1 or 0.
    pub label: i64,
}

/// The low-resolution grid of one image: `side²` cells of `scale` input pixels, of which the
/// top-left `valid_h × valid_w` cover the image (the rest is padding).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grid {
    /// Cells per side.
    pub side: usize,
    /// Input pixels per cell side.
    pub scale: usize,
    /// Rows of cells covering the image.
    pub valid_h: usize,
    /// Columns of cells covering the image.
    pub valid_w: usize,
    /// Image rows in input pixels.
    pub image_h: usize,
    /// Image columns in input pixels.
    pub image_w: usize,
}

impl Grid {
    /// The grid of an `h × w` input inside an `image_size²` square, at `side²` cells.
    pub fn new(image_size: usize, side: usize, h: usize, w: usize) -> Self {
        let scale = image_size / side;
        Self {
            side,
            scale,
            valid_h: h.div_ceil(scale),
            valid_w: w.div_ceil(scale),
            image_h: h,
            image_w: w,
        }
    }

    /// Whether cell `i` covers image pixels.
    pub fn is_valid(&self, i: usize) -> bool {
        i / self.side < self.valid_h && i % self.side < self.valid_w
    }

    /// `[side²]` of 0/1: the cells that count in the loss and the IoU.
    pub fn valid_mask(&self) -> Vec<f32> {
        (0..self.side * self.side)
            .map(|i| self.is_valid(i) as u8 as f32)
            .collect()
    }

    fn cell_to_pixel(&self, i: usize, offset: [usize; 2]) -> [f64; 2] {
        let (cy, cx) = (i / self.side, i % self.side);
        let x = (cx * self.scale + offset[0]).min(self.image_w - 1);
        let y = (cy * self.scale + offset[1]).min(self.image_h - 1);
        [x as f64, y as f64]
    }
}

/// The cells where `pred` and `gt` disagree, inside the image.
fn error_cells(pred: &[bool], gt: &[bool], grid: &Grid) -> Vec<usize> {
    (0..pred.len())
        .filter(|&i| grid.is_valid(i) && pred[i] != gt[i])
        .collect()
}

/// A click drawn uniformly from the error region: a random pixel of a random wrong cell;
/// foreground where the prediction missed the object. `None` when prediction and truth agree.
pub fn random_click(pred: &[bool], gt: &[bool], grid: &Grid, rng: &mut impl Rng) -> Option<Click> {
    let cells = error_cells(pred, gt, grid);
    if cells.is_empty() {
        return None;
    }
    let i = cells[rng.random_range(0..cells.len())];
    let offset = [
        rng.random_range(0..grid.scale),
        rng.random_range(0..grid.scale),
    ];
    Some(Click {
        xy: grid.cell_to_pixel(i, offset),
        label: gt[i] as i64,
    })
}

/// A click at the most interior cell of the largest error: the cell of the error region
/// farthest (chamfer distance) from its border and from the image's edge; foreground where the
/// prediction missed the object. `None` when prediction and truth agree.
pub fn center_click(pred: &[bool], gt: &[bool], grid: &Grid) -> Option<Click> {
    let n = grid.side;
    let err: Vec<bool> = (0..n * n)
        .map(|i| grid.is_valid(i) && pred[i] != gt[i])
        .collect();
    let dist = chamfer(&err, n);
    let (best, d) = dist
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))?;
    if *d == 0 {
        return None;
    }
    let half = grid.scale / 2;
    Some(Click {
        xy: grid.cell_to_pixel(best, [half, half]),
        label: gt[best] as i64,
    })
}

/// 3-4 chamfer distance of each `true` cell to the nearest `false` cell or the grid's edge.
fn chamfer(region: &[bool], n: usize) -> Vec<u32> {
    const INF: u32 = u32::MAX / 2;
    let mut d: Vec<u32> = region.iter().map(|&r| if r { INF } else { 0 }).collect();
    let at = |d: &[u32], y: isize, x: isize| -> u32 {
        if y < 0 || x < 0 || y >= n as isize || x >= n as isize {
            0
        } else {
            d[y as usize * n + x as usize]
        }
    };
    for y in 0..n as isize {
        for x in 0..n as isize {
            let i = y as usize * n + x as usize;
            if d[i] == 0 {
                continue;
            }
            let m = [
                at(&d, y, x - 1) + 3,
                at(&d, y - 1, x) + 3,
                at(&d, y - 1, x - 1) + 4,
                at(&d, y - 1, x + 1) + 4,
            ];
            d[i] = d[i].min(m.into_iter().min().unwrap_or(INF));
        }
    }
    for y in (0..n as isize).rev() {
        for x in (0..n as isize).rev() {
            let i = y as usize * n + x as usize;
            if d[i] == 0 {
                continue;
            }
            let m = [
                at(&d, y, x + 1) + 3,
                at(&d, y + 1, x) + 3,
                at(&d, y + 1, x + 1) + 4,
                at(&d, y + 1, x - 1) + 4,
            ];
            d[i] = d[i].min(m.into_iter().min().unwrap_or(INF));
        }
    }
    d
}

/// IoU of two binary masks over the valid cells; 1 when both are empty.
pub fn iou(pred: &[bool], gt: &[bool], grid: &Grid) -> f64 {
    let (mut inter, mut union) = (0u64, 0u64);
    for i in (0..pred.len()).filter(|&i| grid.is_valid(i)) {
        inter += (pred[i] && gt[i]) as u64;
        union += (pred[i] || gt[i]) as u64;
    }
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn clicks_fall_in_the_error_region_with_the_right_label() {
        let grid = Grid::new(64, 16, 50, 64);
        assert_eq!((grid.valid_h, grid.valid_w), (13, 16));
        let gt: Vec<bool> = (0..256)
            .map(|i| (4..10).contains(&(i / 16)) && (3..9).contains(&(i % 16)))
            .collect();
        let pred = vec![false; 256];
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for _ in 0..50 {
            let c = random_click(&pred, &gt, &grid, &mut rng).unwrap();
            assert_eq!(c.label, 1);
            let (cx, cy) = (c.xy[0] as usize / 4, c.xy[1] as usize / 4);
            assert!(gt[cy * 16 + cx]);
        }
        let c = center_click(&pred, &gt, &grid).unwrap();
        assert_eq!(c.label, 1);
        let (cx, cy) = (c.xy[0] as usize / 4, c.xy[1] as usize / 4);
        assert!((6..8).contains(&cy) && (5..7).contains(&cx), "{cx}, {cy}");
        // A false positive in the padding rows is not a click.
        let mut pred = gt.clone();
        pred[15 * 16 + 2] = true;
        assert!(random_click(&pred, &gt, &grid, &mut rng).is_none());
        assert!(center_click(&pred, &gt, &grid).is_none());
        pred[2] = true;
        assert_eq!(center_click(&pred, &gt, &grid).unwrap().label, 0);
        assert!((iou(&gt, &gt, &grid) - 1.0).abs() < 1e-12);
        assert!((iou(&pred, &gt, &grid) - 36.0 / 37.0).abs() < 1e-12);
    }
}
