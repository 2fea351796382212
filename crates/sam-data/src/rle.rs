//! COCO run-length encoding: the uncompressed form (`counts` list) and the compressed string
//! pycocotools and SA-1B use. Runs go down columns (Fortran order) and start with a run of zeros
//! (possibly empty), as pycocotools.

use crate::error::{DataError, Result};

/// An uncompressed RLE of an `h × w` mask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rle {
    /// `[h, w]`.
    pub size: [usize; 2],
    /// Alternating run lengths, zeros first, column-major.
    pub counts: Vec<u32>,
}

/// Builds an [`Rle`] from runs given in column-major order, merging neighbours of one value.
#[derive(Debug, Clone, Default)]
pub struct RleBuilder {
    counts: Vec<u32>,
    current: bool,
    run: u32,
}

impl RleBuilder {
    /// No pixels yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `len` pixels of `value` (none when `len` is 0).
    pub fn push(&mut self, value: bool, len: usize) {
        if len == 0 {
            return;
        }
        if value != self.current {
            self.counts.push(self.run);
            self.run = 0;
            self.current = value;
        }
        self.run += len as u32;
    }

    /// The RLE of the pixels pushed, which should number `h·w` for `size = [h, w]`.
    pub fn finish(mut self, size: [usize; 2]) -> Rle {
        self.counts.push(self.run);
        Rle {
            size,
            counts: self.counts,
        }
    }
}

impl Rle {
    /// Encodes a row-major `h × w` mask.
    pub fn from_mask(mask: &[bool], h: usize, w: usize) -> Result<Self> {
        if mask.len() != h * w {
            return Err(DataError::InvalidValue(format!(
                "mask has {} pixels, expected {h}×{w}",
                mask.len()
            )));
        }
        let mut runs = RleBuilder::new();
        for x in 0..w {
            for y in 0..h {
                runs.push(mask[y * w + x], 1);
            }
        }
        Ok(runs.finish([h, w]))
    }

    /// Checks that the runs cover exactly `h·w` pixels.
    pub fn validate(&self) -> Result<()> {
        let total = self
            .counts
            .iter()
            .try_fold(0u64, |a, &c| a.checked_add(c as u64))
            .ok_or_else(|| DataError::InvalidValue("RLE counts overflow".into()))?;
        // pycocotools keeps sizes and pixel indices in 32-bit `uint`s; larger sizes would
        // overflow here and in `to_bbox`.
        let expected = (self.size[0] as u64)
            .checked_mul(self.size[1] as u64)
            .filter(|&n| n <= u32::MAX as u64)
            .ok_or_else(|| {
                DataError::InvalidValue(format!(
                    "RLE size {:?} has more than 2^32 - 1 pixels",
                    self.size
                ))
            })?;
        if total != expected {
            return Err(DataError::InvalidValue(format!(
                "RLE counts sum to {total}, but the size {:?} has {expected} pixels",
                self.size
            )));
        }
        Ok(())
    }

    /// Decodes to a row-major mask.
    pub fn to_mask(&self) -> Result<Vec<bool>> {
        self.validate()?;
        let [h, w] = self.size;
        let mut mask = vec![false; h * w];
        let mut idx = 0usize;
        let mut value = false;
        for &c in &self.counts {
            let c = c as usize;
            if value && c > 0 {
                // One division per run, not per pixel: walk down the column, wrapping to the
                // top of the next one. `h > 0` here, since the runs cover `h·w > 0` pixels.
                let (mut x, mut y) = (idx / h, idx % h);
                for _ in 0..c {
                    mask[y * w + x] = true;
                    y += 1;
                    if y == h {
                        (x, y) = (x + 1, 0);
                    }
                }
            }
            idx += c;
            value = !value;
        }
        Ok(mask)
    }

    /// Foreground pixels (the sum of the odd runs).
    pub fn area(&self) -> u64 {
        self.counts
            .iter()
            .skip(1)
            .step_by(2)
            .map(|&c| c as u64)
            .sum()
    }

    /// The compressed string of pycocotools' `rleToString` (LEB128-like, 5 bits a character from
    /// `'0'`, runs after the second stored as differences).
    pub fn to_coco_string(&self) -> String {
        let mut s = String::new();
        for (i, &c) in self.counts.iter().enumerate() {
            let mut x = c as i64;
            if i > 2 {
                x -= self.counts[i - 2] as i64;
            }
            loop {
                let mut ch = (x & 0x1f) as u8;
                x >>= 5;
                let more = if ch & 0x10 != 0 { x != -1 } else { x != 0 };
                if more {
                    ch |= 0x20;
                }
                s.push((ch + 48) as char);
                if !more {
                    break;
                }
            }
        }
        s
    }

    /// Parses a compressed string (pycocotools' `rleFrString`), checking that it is well formed
    /// and covers `size` exactly.
    pub fn from_coco_string(counts: &str, size: [usize; 2]) -> Result<Self> {
        let bad = |m: String| DataError::InvalidValue(format!("COCO RLE string: {m}"));
        let bytes = counts.as_bytes();
        let mut out: Vec<u32> = Vec::new();
        let mut p = 0;
        while p < bytes.len() {
            let mut x: i64 = 0;
            let mut k = 0u32;
            loop {
                let Some(&b) = bytes.get(p) else {
                    return Err(bad("truncated in the middle of a count".into()));
                };
                if !(48..48 + 64).contains(&b) {
                    return Err(bad(format!("invalid character {:?} at {p}", b as char)));
                }
                // Twelve 5-bit groups fill 60 bits; a thirteenth would shift past the i64.
                if k >= 12 {
                    return Err(bad(format!("count at {p} is too long")));
                }
                let c = (b - 48) as i64;
                x |= (c & 0x1f) << (5 * k);
                p += 1;
                k += 1;
                if c & 0x20 == 0 {
                    if c & 0x10 != 0 {
                        x |= -1i64 << (5 * k);
                    }
                    break;
                }
            }
            let i = out.len();
            if i > 2 {
                x += out[i - 2] as i64;
            }
            let value = u32::try_from(x)
                .map_err(|_| bad(format!("count {x} at run {i} is out of range")))?;
            out.push(value);
        }
        let rle = Self { size, counts: out };
        rle.validate()?;
        Ok(rle)
    }

    /// pycocotools' `toBbox`: `[x, y, w, h]` of the pixel extent (`w = x1 − x0 + 1`), zeros when
    /// there are no runs. Follows the current `rleToBbox` (pycocotools ≥ 2.0.3): zero-length
    /// foreground runs are skipped, and a run spanning columns covers the full height. Its
    /// `uint` arithmetic is kept, so runs that are all empty give its wrapped-around values.
    pub fn to_bbox(&self) -> [f64; 4] {
        let h = self.size[0] as u32;
        let w = self.size[1] as u32;
        let m = self.counts.len() / 2 * 2;
        if m == 0 || h == 0 {
            return [0.0; 4];
        }
        let (mut xs, mut ys, mut xe, mut ye) = (w, h, 0u32, 0u32);
        let mut cc = 0u32;
        for j in 0..m {
            let start = cc;
            cc = cc.wrapping_add(self.counts[j]);
            if j % 2 == 0 || self.counts[j] == 0 {
                continue;
            }
            let (y_start, x_start) = (start % h, start / h);
            let last = cc.wrapping_sub(1);
            let (y_end, x_end) = (last % h, last / h);
            xs = xs.min(x_start);
            xe = xe.max(x_end);
            if x_start < x_end {
                ys = 0;
                ye = h - 1;
            } else {
                ys = ys.min(y_start);
                ye = ye.max(y_end);
            }
        }
        [
            xs as f64,
            ys as f64,
            xe.wrapping_sub(xs).wrapping_add(1) as f64,
            ye.wrapping_sub(ys).wrapping_add(1) as f64,
        ]
    }

    fn same_size(&self, other: &Self) -> Result<()> {
        if self.size != other.size {
            return Err(DataError::InvalidValue(format!(
                "RLE sizes differ: {:?} and {:?}",
                self.size, other.size
            )));
        }
        Ok(())
    }

    /// Union (or intersection) of RLEs of one size, as pycocotools' `merge`.
    pub fn merge(rles: &[Rle], intersect: bool) -> Result<Rle> {
        let Some(first) = rles.first() else {
            return Ok(Rle {
                size: [0, 0],
                counts: Vec::new(),
            });
        };
        let mut mask = first.to_mask()?;
        for r in &rles[1..] {
            first.same_size(r)?;
            for (m, o) in mask.iter_mut().zip(r.to_mask()?) {
                *m = if intersect { *m && o } else { *m || o };
            }
        }
        Rle::from_mask(&mask, first.size[0], first.size[1])
    }

    /// IoU with `gt`; when `gt_is_crowd`, the intersection over this RLE's area alone (COCO's
    /// crowd rule). 0 when both are empty, as pycocotools.
    pub fn iou(&self, gt: &Rle, gt_is_crowd: bool) -> Result<f64> {
        self.same_size(gt)?;
        let inter = Rle::merge(&[self.clone(), gt.clone()], true)?.area() as f64;
        let union = if gt_is_crowd {
            self.area() as f64
        } else {
            Rle::merge(&[self.clone(), gt.clone()], false)?.area() as f64
        };
        Ok(if union > 0.0 { inter / union } else { 0.0 })
    }
}
