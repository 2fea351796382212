//! Masks taken from their RLEs straight to a training sample's grid, without a full-resolution
//! bitmap. The nearest-neighbour map of [`Sample::resize`] (after a mirror, before a crop) sends
//! each output column to one source column and each source run of rows to a run of output rows,
//! so a mask becomes row spans per output column in time proportional to its runs, not to its
//! pixels. Box, area, the `k`-th pixel and the low-resolution cells then come from the spans.
//!
//! The result is exactly that of [`Rle::to_mask`] followed by [`Sample::hflip`],
//! [`Sample::resize`] and [`Sample::crop`] on the bitmap (the equivalence test checks it).
//!
//! [`Sample::resize`]: crate::augment::Sample::resize
//! [`Sample::hflip`]: crate::augment::Sample::hflip
//! [`Sample::crop`]: crate::augment::Sample::crop

use rand::Rng;

use crate::augment::{check_low_res, low_res_mask, nearest_indices};
use crate::error::Result;
use crate::prompt_sampling::Click;
use crate::rle::Rle;

/// Which source pixel each pixel of an output grid shows.
#[derive(Debug, Clone)]
pub(crate) struct NearestGrid {
    src_w: usize,
    src_h: usize,
    /// The source column of each output column.
    cols: Vec<usize>,
    /// For each source row `r` in `0..=src_h`, the first output row showing a source row `≥ r`.
    /// Output rows show non-decreasing source rows, so the source rows `[a, b)` of a column
    /// land exactly on the output rows `[first_row[a], first_row[b])`.
    first_row: Vec<usize>,
    out_h: usize,
}

impl NearestGrid {
    /// The grid of a `src_w × src_h` image mirrored when `flip`, resized to `resized`
    /// (`(width, height)`), then cut to `window = [x0, y0, width, height]` of the resized image.
    pub(crate) fn new(
        (src_w, src_h): (usize, usize),
        flip: bool,
        resized: (usize, usize),
        window: [usize; 4],
    ) -> Self {
        let [x0, y0, cw, ch] = window;
        let cols = nearest_indices(src_w, resized.0)[x0..x0 + cw]
            .iter()
            // Mirroring before resizing reads the source column from the other side.
            .map(|&c| if flip { src_w - 1 - c } else { c })
            .collect();
        let rows = &nearest_indices(src_h, resized.1)[y0..y0 + ch];
        let mut first_row = Vec::with_capacity(src_h + 1);
        let mut y = 0;
        for r in 0..=src_h {
            while y < rows.len() && rows[y] < r {
                y += 1;
            }
            first_row.push(y);
        }
        Self {
            src_w,
            src_h,
            cols,
            first_row,
            out_h: ch,
        }
    }

    /// The mask of `rle` on this grid. `rle` must be valid and of the source's size.
    pub(crate) fn resample(&self, rle: &Rle) -> ColumnSpans {
        debug_assert_eq!(rle.size, [self.src_h, self.src_w]);
        let source = ColumnSpans::from_rle(rle);
        let mut starts = Vec::with_capacity(self.cols.len() + 1);
        let mut spans = Vec::new();
        starts.push(0);
        for &c in &self.cols {
            for &[a, b] in source.column(c) {
                let (y0, y1) = (self.first_row[a], self.first_row[b]);
                // A run between two sampled rows is skipped by the resize.
                if y1 > y0 {
                    spans.push([y0, y1]);
                }
            }
            starts.push(spans.len());
        }
        ColumnSpans {
            width: self.cols.len(),
            height: self.out_h,
            starts,
            spans,
        }
    }
}

/// A `height × width` mask as sorted, disjoint row spans `[y0, y1)` per column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ColumnSpans {
    width: usize,
    height: usize,
    /// Column `x`'s spans are `spans[starts[x]..starts[x + 1]]`.
    starts: Vec<usize>,
    spans: Vec<[usize; 2]>,
}

impl ColumnSpans {
    /// The spans of a valid RLE (runs go down columns; a run may continue into the next one).
    pub(crate) fn from_rle(rle: &Rle) -> Self {
        let [h, w] = rle.size;
        let mut per_column = vec![0usize; w + 1];
        let mut spans = Vec::new();
        let (mut idx, mut foreground) = (0usize, false);
        for &c in &rle.counts {
            let c = c as usize;
            if foreground && c > 0 {
                // A valid RLE has `h > 0` whenever a run is not empty.
                let (mut col, mut row, mut left) = (idx / h, idx % h, c);
                while left > 0 {
                    let take = left.min(h - row);
                    spans.push([row, row + take]);
                    per_column[col + 1] += 1;
                    (col, row, left) = (col + 1, 0, left - take);
                }
            }
            idx += c;
            foreground = !foreground;
        }
        // Runs come in column order, so counting per column and summing gives the offsets.
        for x in 0..w {
            per_column[x + 1] += per_column[x];
        }
        Self {
            width: w,
            height: h,
            starts: per_column,
            spans,
        }
    }

    fn column(&self, x: usize) -> &[[usize; 2]] {
        &self.spans[self.starts[x]..self.starts[x + 1]]
    }

    /// Foreground pixels.
    pub(crate) fn area(&self) -> u64 {
        self.spans.iter().map(|&[a, b]| (b - a) as u64).sum()
    }

    /// `[x0, y0, x1, y1]` (exclusive ends), as [`mask_box`](crate::prompt_sampling::mask_box);
    /// `None` when empty.
    pub(crate) fn bbox(&self) -> Option<[usize; 4]> {
        let filled = |x: &usize| self.starts[*x] < self.starts[*x + 1];
        let x0 = (0..self.width).find(filled)?;
        let x1 = (0..self.width).rev().find(filled)? + 1;
        let y0 = self.spans.iter().map(|s| s[0]).min()?;
        let y1 = self.spans.iter().map(|s| s[1]).max()?;
        Some([x0, y0, x1, y1])
    }

    /// A foreground pixel drawn uniformly, with the draw and the row-major numbering of
    /// [`sample_positive_point`](crate::prompt_sampling::sample_positive_point).
    pub(crate) fn positive_point(&self, rng: &mut impl Rng) -> Option<Click> {
        let count = self.area() as usize;
        if count == 0 || self.width == 0 {
            return None;
        }
        let k = rng.random_range(0..count);
        let (x, y) = self.nth_pixel(k)?;
        Some(Click {
            x: x as f64,
            y: y as f64,
            label: 1,
        })
    }

    /// The `k`-th foreground pixel `(x, y)` in row-major order: the row from per-row counts,
    /// then the column within it.
    fn nth_pixel(&self, k: usize) -> Option<(usize, usize)> {
        let mut delta = vec![0isize; self.height + 1];
        for &[a, b] in &self.spans {
            delta[a] += 1;
            delta[b] -= 1;
        }
        let (mut covering, mut before) = (0isize, 0usize);
        for (y, d) in delta.iter().take(self.height).enumerate() {
            covering += d;
            let in_row = covering as usize;
            if k < before + in_row {
                let x = (0..self.width)
                    .filter(|&x| self.covers(x, y))
                    .nth(k - before)?;
                return Some((x, y));
            }
            before += in_row;
        }
        None
    }

    fn covers(&self, x: usize, y: usize) -> bool {
        let col = self.column(x);
        let i = col.partition_point(|s| s[1] <= y);
        col.get(i).is_some_and(|s| s[0] <= y)
    }

    /// [`low_res_mask`] of this mask.
    pub(crate) fn low_res(&self, image_size: usize, out: usize) -> Result<Vec<f32>> {
        let (h, w) = (self.height, self.width);
        check_low_res(h * w, h, w, image_size, out)?;
        let f = image_size / out;
        // `low_res_mask` adds 1.0 per pixel, which stops counting at 2^24 in f32; below that,
        // adding whole spans gives the same integers.
        if f as u64 * f as u64 > 1 << 24 {
            return low_res_mask(&self.to_bitmap(), h, w, image_size, out);
        }
        let mut cells = vec![0f32; out * out];
        for x in 0..w {
            let cx = x / f;
            for &[a, b] in self.column(x) {
                let mut y = a;
                while y < b {
                    let cy = y / f;
                    let end = ((cy + 1) * f).min(b);
                    cells[cy * out + cx] += (end - y) as f32;
                    y = end;
                }
            }
        }
        let area = (f * f) as f32;
        cells.iter_mut().for_each(|c| *c /= area);
        Ok(cells)
    }

    /// The row-major bitmap.
    pub(crate) fn to_bitmap(&self) -> Vec<bool> {
        let mut mask = vec![false; self.width * self.height];
        for x in 0..self.width {
            for &[a, b] in self.column(x) {
                for y in a..b {
                    mask[y * self.width + x] = true;
                }
            }
        }
        mask
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::augment::Sample;
    use crate::prompt_sampling::{mask_box, sample_positive_point};

    /// A random blobby mask: rectangles, some one pixel thin.
    fn random_mask(w: usize, h: usize, rng: &mut StdRng) -> Vec<bool> {
        let mut m = vec![false; w * h];
        for _ in 0..rng.random_range(0..5) {
            let (x0, y0) = (rng.random_range(0..w), rng.random_range(0..h));
            let (x1, y1) = (
                rng.random_range(x0 + 1..=w.min(x0 + 1 + w / 2)),
                rng.random_range(y0 + 1..=h.min(y0 + 1 + h / 2)),
            );
            for y in y0..y1 {
                m[y * w + x0..y * w + x1].fill(true);
            }
        }
        m
    }

    #[test]
    fn spans_match_the_bitmap_pipeline() {
        let mut rng = StdRng::seed_from_u64(9);
        for case in 0..300 {
            let (w, h) = (rng.random_range(1..40), rng.random_range(1..40));
            let mask = random_mask(w, h, &mut rng);
            let rle = Rle::from_mask(&mask, h, w).unwrap();
            assert_eq!(ColumnSpans::from_rle(&rle).to_bitmap(), mask, "case {case}");
            let flip = rng.random_bool(0.5);
            let (nw, nh) = (rng.random_range(1..60), rng.random_range(1..60));
            let (cw, ch) = (rng.random_range(1..=nw), rng.random_range(1..=nh));
            let (x0, y0) = (rng.random_range(0..=nw - cw), rng.random_range(0..=nh - ch));
            let mut s = Sample {
                image: vec![0; w * h * 3],
                width: w,
                height: h,
                masks: vec![mask],
                boxes: vec![[0.0; 4]],
                points: vec![vec![]],
            };
            if flip {
                s.hflip();
            }
            s.resize(nw, nh);
            s.crop(x0, y0, cw, ch);
            let expected = s.masks.pop().unwrap_or_else(|| vec![false; cw * ch]);
            let spans = NearestGrid::new((w, h), flip, (nw, nh), [x0, y0, cw, ch]).resample(&rle);
            assert_eq!(spans.to_bitmap(), expected, "case {case}");
            assert_eq!(spans.bbox(), mask_box(&expected, cw), "case {case}");
            let area = expected.iter().filter(|&&m| m).count() as u64;
            assert_eq!(spans.area(), area, "case {case}");
            let seed = rng.random();
            assert_eq!(
                spans.positive_point(&mut StdRng::seed_from_u64(seed)),
                sample_positive_point(&expected, cw, &mut StdRng::seed_from_u64(seed)),
                "case {case}"
            );
            let side = cw.max(ch).next_multiple_of(4);
            assert_eq!(
                spans.low_res(side, side / 4).unwrap(),
                low_res_mask(&expected, ch, cw, side, side / 4).unwrap(),
                "case {case}"
            );
        }
    }
}
