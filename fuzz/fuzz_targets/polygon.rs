//! COCO segmentations: `polygon::rle_from_polygons` on coordinates decoded from the bytes
//! (images up to 64×64, coordinates in about [-10, 80]), and `Segmentation::from_json` (then
//! `to_rle` where the result is small) on arbitrary JSON text. The first byte picks the mode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sam_data::polygon::{Segmentation, rle_from_polygon, rle_from_polygons};

/// Binary mode: `h`, `w`, then 3-byte groups `[flags, a, b]`. Flag bit 7 starts a new polygon;
/// bit 6 puts the coordinate on the half-pixel grid (`a / 2 − 10`, where pycocotools' rounding
/// has its ties), otherwise `u16(a, b)` is scaled into [-10, 80].
fn polygons(data: &[u8]) -> Option<(usize, usize, Vec<Vec<f64>>)> {
    let [h, w, rest @ ..] = data else {
        return None;
    };
    let mut polys: Vec<Vec<f64>> = vec![Vec::new()];
    for g in rest.chunks_exact(3) {
        if g[0] & 0x80 != 0 && !polys.last().unwrap().is_empty() {
            polys.push(Vec::new());
        }
        let v = if g[0] & 0x40 != 0 {
            g[1] as f64 / 2.0 - 10.0
        } else {
            u16::from_le_bytes([g[1], g[2]]) as f64 / 65535.0 * 90.0 - 10.0
        };
        polys.last_mut().unwrap().push(v);
    }
    Some(((*h % 65) as usize, (*w % 65) as usize, polys))
}

fn check_polygons(data: &[u8]) {
    let Some((h, w, polys)) = polygons(data) else {
        return;
    };
    let Ok(rle) = rle_from_polygons(&polys, h, w) else {
        return;
    };
    assert_eq!(rle.size, [h, w]);
    rle.validate()
        .expect("a rasterised polygon covers the image");
    let mask = rle.to_mask().unwrap();
    assert_eq!(rle.area(), mask.iter().filter(|&&m| m).count() as u64);
    // The union is at least every part.
    for p in &polys {
        let part = rle_from_polygon(p, h, w).expect("each part rasterises when the union does");
        part.validate().unwrap();
        for (u, q) in mask.iter().zip(part.to_mask().unwrap()) {
            assert!(*u || !q);
        }
    }
    if let [one] = &polys[..] {
        assert_eq!(rle_from_polygon(one, h, w).unwrap(), rle);
    }
}

fn check_json(text: &[u8]) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(text) else {
        return;
    };
    let Ok(seg) = Segmentation::from_json(&value) else {
        return;
    };
    let (h, w) = match &seg {
        Segmentation::Counts { size, .. } | Segmentation::Compressed { size, .. } => {
            (size[0], size[1])
        }
        Segmentation::Polygons(polys) => {
            // The walk is one step per 1/5 pixel of an edge: keep it short.
            if polys.iter().flatten().any(|v| v.abs() > 1000.0) {
                return;
            }
            (64, 64)
        }
    };
    if h.checked_mul(w).is_none_or(|n| n > 1 << 16) {
        return;
    }
    if let Ok(rle) = seg.to_rle(h, w) {
        assert_eq!(rle.size, [h, w]);
        rle.validate().expect("to_rle validates");
        let _ = rle.to_mask().unwrap();
    }
    // A size that is not the RLE's is an error, never a panic.
    let _ = seg.to_rle(w + 1, h);
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((mode, rest)) if mode & 1 == 0 => check_polygons(rest),
        Some((_, rest)) => check_json(rest),
        None => {}
    }
});
