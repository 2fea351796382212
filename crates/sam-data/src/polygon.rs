//! COCO segmentations to [`Rle`]: polygons rasterised bit-exactly as pycocotools' C
//! `rleFrPoly` (`common/maskApi.c`), objects of several polygons merged as `COCO.annToRLE`
//! does, and the two RLE forms COCO files use (an uncompressed `counts` list for crowds, a
//! compressed string).

use serde_json::Value;

use crate::error::{DataError, Result};
use crate::rle::Rle;

/// `rleFrPoly` works on a grid 5× finer than the pixels.
const SCALE: f64 = 5.0;

/// Upsampled coordinates must stay well inside C's `int`, where pycocotools' arithmetic is
/// defined (differences of two of them must fit too).
const MAX_UPSAMPLED: f64 = (1u32 << 30) as f64;

fn invalid(reason: String) -> DataError {
    DataError::InvalidValue(reason)
}

/// C's `(int)` of a double in `int` range: truncation toward zero. NaN (from the 0/0 slope of
/// a zero-length edge) gives `INT_MIN`, as on x86-64 where the reference results come from;
/// the value is never read, since such a point shares its column with its neighbours.
fn c_int(v: f64) -> i32 {
    if v.is_nan() { i32::MIN } else { v as i32 }
}

/// Rasterises one polygon `[x0, y0, x1, y1, …]` (pixel coordinates, closed implicitly) into an
/// `h × w` RLE, as pycocotools' `frPyObjects([xy], h, w)`.
///
/// Roughly, a pixel is inside when its centre is; exactly, pycocotools' rounding on a 5× finer
/// grid decides. As in pycocotools, an odd trailing coordinate is ignored, a polygon of fewer
/// than three points gives an empty mask, and so does an image with no pixels. Errors: a non-finite coordinate or one beyond
/// ±2·10⁸ (where the C code overflows), or more than `u32::MAX` pixels.
pub fn rle_from_polygon(xy: &[f64], h: usize, w: usize) -> Result<Rle> {
    let hw = h
        .checked_mul(w)
        .filter(|&n| n <= u32::MAX as usize)
        .ok_or_else(|| invalid(format!("a {h}×{w} mask has too many pixels for an RLE")))?;
    let k = xy.len() / 2;
    if hw == 0 || k == 0 {
        return Ok(Rle {
            size: [h, w],
            counts: vec![hw as u32],
        });
    }
    let upsample = |v: f64| -> Result<i32> {
        let s = SCALE * v + 0.5;
        if !s.is_finite() || s.abs() >= MAX_UPSAMPLED {
            return Err(invalid(format!("polygon coordinate {v} is out of range")));
        }
        Ok(s as i32)
    };
    let mut x = Vec::with_capacity(k + 1);
    let mut y = Vec::with_capacity(k + 1);
    for p in xy[..2 * k].chunks_exact(2) {
        x.push(upsample(p[0])?);
        y.push(upsample(p[1])?);
    }
    x.push(x[0]);
    y.push(y[0]);

    let mut walk = BoundaryWalk::new(h, w);
    for j in 0..k {
        walk_edge(x[j], y[j], x[j + 1], y[j + 1], |u, v| walk.visit(u, v));
    }
    Ok(Rle {
        size: [h, w],
        counts: runs_from_boundaries(walk.boundaries, hw as u32),
    })
}

/// The dense walk along one edge of the upsampled polygon: every point of the major axis, the
/// other coordinate rounded as C's `(int)(a + s*t + .5)`. Edges are walked in increasing
/// major-axis order and then reported in the original direction (`flip`), which makes the
/// rounding independent of the direction.
fn walk_edge(x0: i32, y0: i32, x1: i32, y1: i32, mut visit: impl FnMut(i32, i32)) {
    let (mut xs, mut xe, mut ys, mut ye) = (x0, x1, y0, y1);
    let dx = (xe - xs).abs();
    let dy = (ys - ye).abs();
    let flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
    if flip {
        std::mem::swap(&mut xs, &mut xe);
        std::mem::swap(&mut ys, &mut ye);
    }
    if dx >= dy {
        let s = (ye - ys) as f64 / dx as f64;
        for d in 0..=dx {
            let t = if flip { dx - d } else { d };
            visit(t + xs, c_int(ys as f64 + s * t as f64 + 0.5));
        }
    } else {
        let s = (xe - xs) as f64 / dy as f64;
        for d in 0..=dy {
            let t = if flip { dy - d } else { d };
            visit(c_int(xs as f64 + s * t as f64 + 0.5), t + ys);
        }
    }
}

/// Turns the walk into column-major boundary positions: wherever the walk crosses the
/// upsampled line through a column of pixel centres, the pixel below the crossing toggles.
/// Streams the points, where the C code stores them all first.
struct BoundaryWalk {
    h: usize,
    w: usize,
    prev: Option<(i32, i32)>,
    boundaries: Vec<u32>,
}

impl BoundaryWalk {
    fn new(h: usize, w: usize) -> Self {
        Self {
            h,
            w,
            prev: None,
            boundaries: Vec::new(),
        }
    }

    fn visit(&mut self, u: i32, v: i32) {
        let Some((pu, pv)) = self.prev.replace((u, v)) else {
            return;
        };
        if u == pu {
            return;
        }
        let xd = (if u < pu { u } else { u - 1 }) as f64;
        let xd = (xd + 0.5) / SCALE - 0.5;
        if xd.floor() != xd || xd < 0.0 || xd > (self.w - 1) as f64 {
            return;
        }
        let yd = (v.min(pv) as f64 + 0.5) / SCALE - 0.5;
        let yd = if yd < 0.0 {
            0.0
        } else if yd > self.h as f64 {
            self.h as f64
        } else {
            yd
        }
        .ceil();
        // 0 ≤ xd ≤ w − 1 and 0 ≤ yd ≤ h, so the position is at most h·w ≤ u32::MAX.
        self.boundaries
            .push((xd as u64 * self.h as u64 + yd as u64) as u32);
    }
}

/// Sorted toggle positions to runs, with the C code's merging of coincident toggles (an even
/// number of them cancels; the zero run between them is dropped).
fn runs_from_boundaries(mut a: Vec<u32>, hw: u32) -> Vec<u32> {
    a.push(hw);
    a.sort_unstable();
    let mut p = 0;
    for t in a.iter_mut() {
        let v = *t;
        *t -= p;
        p = v;
    }
    let mut b = Vec::with_capacity(a.len());
    b.push(a[0]);
    let mut j = 1;
    while j < a.len() {
        if a[j] > 0 {
            b.push(a[j]);
            j += 1;
        } else {
            j += 1;
            if j < a.len() {
                if let Some(last) = b.last_mut() {
                    *last += a[j];
                }
                j += 1;
            }
        }
    }
    b
}

/// Checks the rules under which pycocotools' `frPyObjects` accepts a list of polygons: it
/// looks at the first one only, and treats it as a box if it has 4 values (which then fails,
/// as a list is not the array `frBbox` wants) and rejects it if it has fewer.
fn check_polygon_list(polys: &[Vec<f64>]) -> std::result::Result<(), String> {
    match polys.first() {
        None => Err("an empty list of polygons".into()),
        Some(first) if first.len() <= 4 => Err(format!(
            "the first polygon has {} coordinates; pycocotools needs at least 6 (3 points)",
            first.len()
        )),
        Some(_) => Ok(()),
    }
}

/// The union of an object's polygons (its parts), as pycocotools' `COCO.annToRLE`:
/// `merge(frPyObjects(polys, h, w))`.
///
/// Errors where pycocotools fails: no polygons, or a first polygon with fewer than 6
/// coordinates. Later polygons may be shorter (they add nothing) and odd lengths lose their
/// last value, as in pycocotools.
pub fn rle_from_polygons(polys: &[Vec<f64>], h: usize, w: usize) -> Result<Rle> {
    check_polygon_list(polys).map_err(invalid)?;
    let rles = polys
        .iter()
        .map(|p| rle_from_polygon(p, h, w))
        .collect::<Result<Vec<_>>>()?;
    match <[Rle; 1]>::try_from(rles) {
        // `rleMerge` copies a single RLE as it is.
        Ok([rle]) => Ok(rle),
        Err(rles) => Rle::merge(&rles, false),
    }
}

/// A COCO `segmentation` field.
#[derive(Debug, Clone, PartialEq)]
pub enum Segmentation {
    /// Polygons `[x0, y0, x1, y1, …]`, the parts of one object.
    Polygons(Vec<Vec<f64>>),
    /// Uncompressed RLE (`{"counts": [..], "size": [h, w]}`, COCO's crowd annotations).
    Counts {
        /// `[h, w]`.
        size: [usize; 2],
        /// Runs, zeros first, column-major.
        counts: Vec<u32>,
    },
    /// Compressed RLE (`{"counts": "…", "size": [h, w]}`).
    Compressed {
        /// `[h, w]`.
        size: [usize; 2],
        /// pycocotools' string.
        counts: String,
    },
}

impl Segmentation {
    /// Reads the JSON value of a `segmentation` field, checking its shape (not yet that it
    /// fits an image).
    pub fn from_json(value: &Value) -> Result<Self> {
        segmentation_from_json(value).map_err(|e| invalid(format!("segmentation: {e}")))
    }

    /// The mask at an `h × w` image, as pycocotools' `COCO.annToRLE` gives it. An RLE must have
    /// the image's size (pycocotools would take the RLE's own); its runs must cover it exactly.
    pub fn to_rle(&self, h: usize, w: usize) -> Result<Rle> {
        let check_size = |size: [usize; 2]| {
            if size == [h, w] {
                Ok(())
            } else {
                Err(invalid(format!(
                    "RLE size {size:?} but the image is {h}×{w}"
                )))
            }
        };
        match self {
            Self::Polygons(polys) => rle_from_polygons(polys, h, w),
            Self::Counts { size, counts } => {
                check_size(*size)?;
                let rle = Rle {
                    size: *size,
                    counts: counts.clone(),
                };
                rle.validate()?;
                Ok(rle)
            }
            Self::Compressed { size, counts } => {
                check_size(*size)?;
                Rle::from_coco_string(counts, *size)
            }
        }
    }
}

fn segmentation_from_json(value: &Value) -> std::result::Result<Segmentation, String> {
    match value {
        Value::Array(polys) => {
            let polys = polys
                .iter()
                .enumerate()
                .map(|(i, p)| polygon_from_json(p).map_err(|e| format!("polygon {i}: {e}")))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            check_polygon_list(&polys)?;
            Ok(Segmentation::Polygons(polys))
        }
        Value::Object(map) => {
            let size = map.get("size").ok_or("RLE without `size`")?;
            let size = match size.as_array().map(|s| s.as_slice()) {
                Some([h, w]) => match (h.as_u64(), w.as_u64()) {
                    (Some(h), Some(w)) => [h as usize, w as usize],
                    _ => return Err(format!("RLE size {size} is not two counts")),
                },
                _ => return Err(format!("RLE size {size} is not [h, w]")),
            };
            match map.get("counts") {
                Some(Value::String(s)) => Ok(Segmentation::Compressed {
                    size,
                    counts: s.clone(),
                }),
                Some(Value::Array(runs)) => {
                    let counts = runs
                        .iter()
                        .map(|r| {
                            r.as_u64()
                                .and_then(|r| u32::try_from(r).ok())
                                .ok_or_else(|| format!("RLE run {r} is not a 32-bit count"))
                        })
                        .collect::<std::result::Result<Vec<_>, _>>()?;
                    Ok(Segmentation::Counts { size, counts })
                }
                Some(other) => Err(format!(
                    "RLE counts {} is neither a string nor a list",
                    kind(other)
                )),
                None => Err("RLE without `counts`".into()),
            }
        }
        other => Err(format!("{} is neither polygons nor an RLE", kind(other))),
    }
}

fn polygon_from_json(value: &Value) -> std::result::Result<Vec<f64>, String> {
    let Value::Array(coords) = value else {
        return Err(format!("{} is not a list of coordinates", kind(value)));
    };
    coords
        .iter()
        .map(|c| {
            c.as_f64()
                .ok_or_else(|| format!("coordinate {c} is not a number"))
        })
        .collect()
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_covers_its_pixel_centres() {
        // Corners on pixel edges: pixels 1..4 in both directions.
        let rle = rle_from_polygon(&[1.0, 1.0, 4.0, 1.0, 4.0, 4.0, 1.0, 4.0], 6, 6).unwrap();
        let mask = rle.to_mask().unwrap();
        for y in 0..6 {
            for x in 0..6 {
                let inside = (1..4).contains(&x) && (1..4).contains(&y);
                assert_eq!(mask[y * 6 + x], inside, "({x}, {y})");
            }
        }
    }

    #[test]
    fn degenerate_inputs_give_empty_masks() {
        for xy in [
            &[][..],
            &[3.0, 3.0],
            &[1.0, 1.0, 5.0, 5.0],
            &[2.0, 2.0, 2.0, 2.0, 2.0, 2.0],
        ] {
            let rle = rle_from_polygon(xy, 7, 8).unwrap();
            assert_eq!(rle.area(), 0, "{xy:?}");
            rle.validate().unwrap();
        }
        assert_eq!(
            rle_from_polygon(&[0.0, 0.0, 5.0, 0.0, 0.0, 5.0], 0, 4)
                .unwrap()
                .counts,
            vec![0]
        );
    }

    #[test]
    fn odd_trailing_coordinate_is_ignored() {
        let even = rle_from_polygon(&[1.0, 1.0, 8.0, 1.0, 8.0, 8.0], 10, 10).unwrap();
        let odd = rle_from_polygon(&[1.0, 1.0, 8.0, 1.0, 8.0, 8.0, 3.0], 10, 10).unwrap();
        assert_eq!(even, odd);
    }

    #[test]
    fn out_of_range_and_oversize_are_errors() {
        for v in [f64::NAN, f64::INFINITY, 3e8, -3e8] {
            let r = rle_from_polygon(&[0.0, 0.0, v, 0.0, 0.0, 5.0], 4, 4);
            assert!(matches!(r, Err(DataError::InvalidValue(_))), "{v}");
        }
        let r = rle_from_polygon(&[0.0, 0.0, 5.0, 0.0, 0.0, 5.0], 1 << 20, 1 << 20);
        assert!(matches!(r, Err(DataError::InvalidValue(_))));
    }

    #[test]
    fn polygon_lists_follow_pycocotools_rules() {
        let e = rle_from_polygons(&[], 5, 5)
            .expect_err("an error")
            .to_string();
        assert!(e.contains("empty list of polygons"), "{e}");
        let e = rle_from_polygons(&[vec![1.0, 1.0, 4.0, 4.0]], 5, 5)
            .expect_err("an error")
            .to_string();
        assert!(e.contains("4 coordinates"), "{e}");
        assert!(rle_from_polygons(&[vec![1.0, 1.0, 4.0, 4.0, 1.0]], 5, 5).is_ok());
        let tri = vec![0.0, 0.0, 5.0, 0.0, 5.0, 5.0];
        let one = rle_from_polygons(std::slice::from_ref(&tri), 5, 5).unwrap();
        let with_short = rle_from_polygons(&[tri, vec![], vec![2.0, 2.0]], 5, 5).unwrap();
        assert_eq!(one, with_short);
    }

    #[test]
    fn segmentation_json_shapes() {
        let parse = |s: &str| Segmentation::from_json(&serde_json::from_str(s).unwrap());
        assert!(matches!(
            parse("[[1, 2, 3, 4, 5, 6.5]]"),
            Ok(Segmentation::Polygons(_))
        ));
        assert!(matches!(
            parse(r#"{"size": [2, 3], "counts": [1, 5]}"#),
            Ok(Segmentation::Counts { size: [2, 3], .. })
        ));
        assert!(matches!(
            parse(r#"{"size": [2, 3], "counts": "15"}"#),
            Ok(Segmentation::Compressed { size: [2, 3], .. })
        ));
        for bad in [
            "[]",
            "[[1, 2, 3, 4]]",
            r#"[[1, 2, "3", 4, 5, 6]]"#,
            "[1, 2, 3, 4, 5, 6]",
            "3",
            r#"{"size": [2], "counts": [6]}"#,
            r#"{"size": [2, 3], "counts": [-1, 7]}"#,
            r#"{"size": [2, 3], "counts": [1.5, 4.5]}"#,
            r#"{"size": [2, 3]}"#,
            r#"{"counts": "15"}"#,
        ] {
            assert!(
                matches!(parse(bad), Err(DataError::InvalidValue(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn rle_segmentations_must_fit_the_image() {
        let counts = Segmentation::Counts {
            size: [2, 3],
            counts: vec![1, 5],
        };
        assert_eq!(counts.to_rle(2, 3).unwrap().area(), 5);
        let e = counts.to_rle(3, 2).expect_err("an error").to_string();
        assert!(e.contains("RLE size [2, 3] but the image is 3×2"), "{e}");
        let short = Segmentation::Counts {
            size: [2, 3],
            counts: vec![1, 4],
        };
        let e = short.to_rle(2, 3).expect_err("an error").to_string();
        assert!(e.contains("sum to 5,"), "{e}");
        let string = Segmentation::Compressed {
            size: [2, 3],
            counts: "15".into(),
        };
        assert_eq!(string.to_rle(2, 3).unwrap().counts, vec![1, 5]);
        let e = string.to_rle(2, 4).expect_err("an error").to_string();
        assert!(e.contains("image is 2×4"), "{e}");
    }
}
