//! `train_sample` gives bit for bit what the straightforward pipeline gave before it was made
//! fast: decode every chosen mask at full resolution, flip, resize, crop and jitter the
//! `Sample`, then scan each mask for its box, a positive click, its area and its low-resolution
//! ground truth. That pipeline is kept here verbatim (`reference`), so that later changes to
//! the library's slow functions cannot move the yardstick; a second test checks that the
//! library's own slow functions still compose to the same thing.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sam_data::augment::{AugmentConfig, augment, low_res_mask};
use sam_data::dataset::synthetic::generate_image;
use sam_data::dataset::{AnnotatedImage, Annotation, SyntheticConfig};
use sam_data::prompt_sampling::{
    PromptSamplingConfig, mask_box, noisy_box, sample_positive_point, select_masks,
};
use sam_data::{ResizeLongestSide, Rle, TrainObject, TrainSample, TrainSampleConfig, train_sample};

/// The pipeline as it was, copied from the library before the fast path replaced it.
mod reference {
    use rand::Rng;
    use rand::seq::SliceRandom;
    use sam_data::augment::{AugmentConfig, Sample};
    use sam_data::dataset::AnnotatedImage;
    use sam_data::prompt_sampling::{PromptSamplingConfig, noisy_box, select_masks};
    use sam_data::{ResizeLongestSide, Rle, TrainObject, TrainSample};

    /// What happened to one image, so that the tests can check they cover every branch.
    #[derive(Debug, Default, Clone, Copy)]
    pub struct Coverage {
        pub flipped: bool,
        pub cropped: bool,
        pub upscaled: bool,
        pub downscaled: bool,
        /// Chosen objects with no pixel left after resizing and cropping.
        pub vanished: usize,
    }

    pub fn train_sample(
        item: &AnnotatedImage,
        image_size: usize,
        low_res_size: usize,
        augment_config: Option<&AugmentConfig>,
        prompts: &PromptSamplingConfig,
        rng: &mut impl Rng,
    ) -> Result<(TrainSample, Coverage), String> {
        let s = image_size;
        if s == 0 || low_res_size == 0 || !s.is_multiple_of(low_res_size) {
            return Err("bad sizes".into());
        }
        let mut cov = Coverage::default();
        let (h, w) = (item.image.height() as usize, item.image.width() as usize);
        let areas: Vec<u64> = item.annotations.iter().map(|a| a.rle.area()).collect();
        let chosen = select_masks(&areas, (h * w) as u64, prompts, rng);
        let mut sample = to_sample(item, &chosen)?;
        match augment_config {
            Some(a) => {
                if a.target_size != s {
                    return Err("target size".into());
                }
                augment(&mut sample, a, rng, &mut cov)?;
            }
            None => {
                let (nh, nw) = ResizeLongestSide::new(s).get_preprocess_shape(h, w);
                cov.upscaled = nw > w;
                cov.downscaled = nw < w;
                resize(&mut sample, nw, nh);
            }
        }
        let (w, h) = (sample.width, sample.height);
        let mut objects = Vec::with_capacity(sample.masks.len());
        for mask in &sample.masks {
            let (Some(b), Some(click)) = (mask_box(mask, w), sample_positive_point(mask, w, rng))
            else {
                continue;
            };
            objects.push(TrainObject {
                gt_low_res: low_res_mask(mask, h, w, s, low_res_size)?,
                bbox: b.map(|v| v as f64),
                noisy_box: noisy_box(b, h, w, prompts, rng),
                point: [click[0], click[1]],
                area: mask.iter().filter(|&&m| m).count() as u64,
                mask: None,
            });
        }
        cov.vanished = chosen.len() - objects.len();
        Ok((
            TrainSample {
                image_id: item.image_id,
                image: sample.image,
                width: w,
                height: h,
                objects,
            },
            cov,
        ))
    }

    fn to_mask(rle: &Rle) -> Result<Vec<bool>, String> {
        rle.validate().map_err(|e| e.to_string())?;
        let [h, w] = rle.size;
        let mut mask = vec![false; h * w];
        let mut idx = 0usize;
        let mut value = false;
        for &c in &rle.counts {
            if value {
                for i in idx..idx + c as usize {
                    let (x, y) = (i / h, i % h);
                    mask[y * w + x] = true;
                }
            }
            idx += c as usize;
            value = !value;
        }
        Ok(mask)
    }

    fn to_sample(item: &AnnotatedImage, objects: &[usize]) -> Result<Sample, String> {
        let (h, w) = (item.image.height() as usize, item.image.width() as usize);
        let mut sample = Sample {
            image: item.image.as_raw().clone(),
            width: w,
            height: h,
            masks: Vec::new(),
            boxes: Vec::new(),
            points: Vec::new(),
        };
        for &i in objects {
            let a = item.annotations.get(i).ok_or("no such object")?;
            if a.rle.size != [h, w] {
                return Err("mask size".into());
            }
            let mask = to_mask(&a.rle)?;
            let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
            for (i, _) in mask.iter().enumerate().filter(|(_, m)| **m) {
                let (x, y) = (i % w, i / w);
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x + 1);
                y1 = y1.max(y + 1);
            }
            let bbox = if x1 > x0 {
                [x0 as f64, y0 as f64, x1 as f64, y1 as f64]
            } else {
                [0.0; 4]
            };
            sample.masks.push(mask);
            sample.boxes.push(bbox);
            sample.points.push(a.point_coords.clone());
        }
        Ok(sample)
    }

    fn hflip(s: &mut Sample) {
        let (w, h) = (s.width, s.height);
        for y in 0..h {
            let row = &mut s.image[y * w * 3..(y + 1) * w * 3];
            for x in 0..w / 2 {
                for c in 0..3 {
                    row.swap(x * 3 + c, (w - 1 - x) * 3 + c);
                }
            }
        }
        for m in &mut s.masks {
            for y in 0..h {
                m[y * w..(y + 1) * w].reverse();
            }
        }
        let wf = w as f64;
        for b in &mut s.boxes {
            *b = [wf - b[2], b[1], wf - b[0], b[3]];
        }
        for p in s.points.iter_mut().flatten() {
            p[0] = wf - 1.0 - p[0];
        }
    }

    fn resize(s: &mut Sample, new_w: usize, new_h: usize) {
        let (w, h) = (s.width, s.height);
        s.image = pillow::resize_bilinear_rgb(&s.image, w, h, new_w, new_h);
        let src_x: Vec<usize> = (0..new_w)
            .map(|x| (((x as f64 + 0.5) * w as f64 / new_w as f64) as usize).min(w - 1))
            .collect();
        let src_y: Vec<usize> = (0..new_h)
            .map(|y| (((y as f64 + 0.5) * h as f64 / new_h as f64) as usize).min(h - 1))
            .collect();
        for m in &mut s.masks {
            let mut out = vec![false; new_w * new_h];
            for (y, &sy) in src_y.iter().enumerate() {
                for (x, &sx) in src_x.iter().enumerate() {
                    out[y * new_w + x] = m[sy * w + sx];
                }
            }
            *m = out;
        }
        let (sx, sy) = (new_w as f64 / w as f64, new_h as f64 / h as f64);
        for b in &mut s.boxes {
            *b = [b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy];
        }
        for p in s.points.iter_mut().flatten() {
            *p = [(p[0] + 0.5) * sx - 0.5, (p[1] + 0.5) * sy - 0.5];
        }
        s.width = new_w;
        s.height = new_h;
    }

    fn crop(s: &mut Sample, x0: usize, y0: usize, cw: usize, ch: usize) {
        let w = s.width;
        let mut image = Vec::with_capacity(cw * ch * 3);
        for y in y0..y0 + ch {
            image.extend_from_slice(&s.image[(y * w + x0) * 3..(y * w + x0 + cw) * 3]);
        }
        s.image = image;
        let (xf, yf) = (x0 as f64, y0 as f64);
        let mut keep = Vec::new();
        for i in 0..s.masks.len() {
            let m = &s.masks[i];
            let mut out = Vec::with_capacity(cw * ch);
            for y in y0..y0 + ch {
                out.extend_from_slice(&m[y * w + x0..y * w + x0 + cw]);
            }
            if out.iter().any(|&v| v) {
                let b = s.boxes[i];
                let clip = |v: f64, hi: usize| v.clamp(0.0, hi as f64);
                let b = [
                    clip(b[0] - xf, cw),
                    clip(b[1] - yf, ch),
                    clip(b[2] - xf, cw),
                    clip(b[3] - yf, ch),
                ];
                let pts: Vec<[f64; 2]> = s.points[i]
                    .iter()
                    .map(|p| [p[0] - xf, p[1] - yf])
                    .filter(|p| p[0] >= 0.0 && p[1] >= 0.0 && p[0] < cw as f64 && p[1] < ch as f64)
                    .collect();
                keep.push((out, b, pts));
            }
        }
        s.masks = keep.iter().map(|k| k.0.clone()).collect();
        s.boxes = keep.iter().map(|k| k.1).collect();
        s.points = keep.into_iter().map(|k| k.2).collect();
        s.width = cw;
        s.height = ch;
    }

    fn augment(
        sample: &mut Sample,
        config: &AugmentConfig,
        rng: &mut impl Rng,
        cov: &mut Coverage,
    ) -> Result<(), String> {
        sample.validate().map_err(|e| e.to_string())?;
        config.validate().map_err(|e| e.to_string())?;
        if rng.random::<f64>() < config.flip_prob {
            cov.flipped = true;
            hflip(sample);
        }
        let (lo, hi) = config.scale_range;
        let s = if hi > lo {
            rng.random_range(lo..=hi)
        } else {
            lo
        };
        let longest = ((config.target_size as f64 * s).round() as usize).max(1);
        let (w, h) = (sample.width, sample.height);
        let scale = longest as f64 / w.max(h) as f64;
        let (nw, nh) = (
            ((w as f64 * scale).round() as usize).max(1),
            ((h as f64 * scale).round() as usize).max(1),
        );
        cov.upscaled = nw > w;
        cov.downscaled = nw < w;
        resize(sample, nw, nh);
        let t = config.target_size;
        if nw > t || nh > t {
            cov.cropped = true;
            let (cw, ch) = (nw.min(t), nh.min(t));
            let x0 = rng.random_range(0..=nw - cw);
            let y0 = rng.random_range(0..=nh - ch);
            crop(sample, x0, y0, cw, ch);
        }
        color_jitter(&mut sample.image, config, rng);
        Ok(())
    }

    fn luma(r: f32, g: f32, b: f32) -> f32 {
        0.299 * r + 0.587 * g + 0.114 * b
    }

    fn rgb_to_hsv(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
        let max = r.max(g).max(b);
        let min = r.min(g).min(b);
        let d = max - min;
        let h = if d == 0.0 {
            0.0
        } else if max == r {
            ((g - b) / d).rem_euclid(6.0) / 6.0
        } else if max == g {
            ((b - r) / d + 2.0) / 6.0
        } else {
            ((r - g) / d + 4.0) / 6.0
        };
        let s = if max == 0.0 { 0.0 } else { d / max };
        (h, s, max)
    }

    fn hsv_to_rgb(h: f32, s: f32, v: f32) -> (f32, f32, f32) {
        let h6 = h.rem_euclid(1.0) * 6.0;
        let i = h6.floor();
        let f = h6 - i;
        let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
        match i as i32 % 6 {
            0 => (v, t, p),
            1 => (q, v, p),
            2 => (p, v, t),
            3 => (p, q, v),
            4 => (t, p, v),
            _ => (v, p, q),
        }
    }

    pub fn color_jitter(image: &mut [u8], config: &AugmentConfig, rng: &mut impl Rng) {
        let factor = |s: f64, rng: &mut dyn rand::RngCore| -> Option<f32> {
            (s > 0.0).then(|| rng.random_range((1.0 - s)..=(1.0 + s)) as f32)
        };
        let mut ops = [0u8, 1, 2, 3];
        ops.shuffle(rng);
        let b = factor(config.brightness, rng);
        let c = factor(config.contrast, rng);
        let s = factor(config.saturation, rng);
        let hue = (config.hue > 0.0).then(|| rng.random_range(-config.hue..=config.hue) as f32);
        let mut px: Vec<[f32; 3]> = image
            .chunks_exact(3)
            .map(|p| {
                [
                    p[0] as f32 / 255.0,
                    p[1] as f32 / 255.0,
                    p[2] as f32 / 255.0,
                ]
            })
            .collect();
        let clamp = |v: f32| v.clamp(0.0, 1.0);
        for op in ops {
            match (op, b, c, s, hue) {
                (0, Some(f), ..) => px
                    .iter_mut()
                    .for_each(|p| p.iter_mut().for_each(|v| *v = clamp(*v * f))),
                (1, _, Some(f), ..) => {
                    let mean = px.iter().map(|p| luma(p[0], p[1], p[2])).sum::<f32>()
                        / px.len().max(1) as f32;
                    px.iter_mut().for_each(|p| {
                        p.iter_mut()
                            .for_each(|v| *v = clamp(f * *v + (1.0 - f) * mean))
                    });
                }
                (2, _, _, Some(f), _) => px.iter_mut().for_each(|p| {
                    let g = luma(p[0], p[1], p[2]);
                    p.iter_mut()
                        .for_each(|v| *v = clamp(f * *v + (1.0 - f) * g));
                }),
                (3, .., Some(shift)) => px.iter_mut().for_each(|p| {
                    let (h, s, v) = rgb_to_hsv(p[0], p[1], p[2]);
                    let (r, g, b) = hsv_to_rgb(h + shift, s, v);
                    *p = [r, g, b];
                }),
                _ => {}
            }
        }
        for (dst, p) in image.chunks_exact_mut(3).zip(px) {
            for (d, v) in dst.iter_mut().zip(p) {
                *d = (v * 255.0).round() as u8;
            }
        }
    }

    fn mask_box(mask: &[bool], w: usize) -> Option<[usize; 4]> {
        let mut b: Option<[usize; 4]> = None;
        for (i, _) in mask.iter().enumerate().filter(|(_, m)| **m) {
            let (x, y) = (i % w, i / w);
            b = Some(match b {
                None => [x, y, x + 1, y + 1],
                Some([x0, y0, x1, y1]) => [x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1)],
            });
        }
        b
    }

    fn sample_positive_point(mask: &[bool], w: usize, rng: &mut impl Rng) -> Option<[f64; 2]> {
        let count = mask.iter().filter(|&&m| m).count();
        if count == 0 || w == 0 {
            return None;
        }
        let k = rng.random_range(0..count);
        let i = mask.iter().enumerate().filter(|(_, m)| **m).nth(k)?.0;
        Some([(i % w) as f64, (i / w) as f64])
    }

    fn low_res_mask(
        mask: &[bool],
        h: usize,
        w: usize,
        image_size: usize,
        out: usize,
    ) -> Result<Vec<f32>, String> {
        if out == 0
            || !image_size.is_multiple_of(out)
            || h > image_size
            || w > image_size
            || mask.len() != h * w
        {
            return Err("low-res mask".into());
        }
        let f = image_size / out;
        let mut cells = vec![0f32; out * out];
        for (i, _) in mask.iter().enumerate().filter(|(_, m)| **m) {
            let (x, y) = (i % w, i / w);
            cells[(y / f) * out + x / f] += 1.0;
        }
        let area = (f * f) as f32;
        cells.iter_mut().for_each(|c| *c /= area);
        Ok(cells)
    }

    /// Pillow-exact bilinear resize, as the library had it.
    pub mod pillow {
        const PRECISION_BITS: u32 = 32 - 8 - 2;

        struct Taps {
            start: usize,
            weights: Vec<i32>,
        }

        fn triangle(x: f64) -> f64 {
            let x = x.abs();
            if x < 1.0 { 1.0 - x } else { 0.0 }
        }

        fn coefficients(in_size: usize, out_size: usize) -> Vec<Taps> {
            let scale = in_size as f64 / out_size as f64;
            let filterscale = scale.max(1.0);
            let support = filterscale;
            let ss = 1.0 / filterscale;
            (0..out_size)
                .map(|xx| {
                    let center = (xx as f64 + 0.5) * scale;
                    let xmin = ((center - support + 0.5) as i64).max(0) as usize;
                    let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
                    let count = xmax.saturating_sub(xmin);
                    let mut w: Vec<f64> = (0..count)
                        .map(|x| triangle((x as f64 + xmin as f64 - center + 0.5) * ss))
                        .collect();
                    let total: f64 = w.iter().sum();
                    if total != 0.0 {
                        w.iter_mut().for_each(|v| *v /= total);
                    }
                    let one = (1u32 << PRECISION_BITS) as f64;
                    let weights = w
                        .iter()
                        .map(|&v| {
                            if v < 0.0 {
                                (-0.5 + v * one) as i32
                            } else {
                                (0.5 + v * one) as i32
                            }
                        })
                        .collect();
                    Taps {
                        start: xmin,
                        weights,
                    }
                })
                .collect()
        }

        fn clip8(acc: i32) -> u8 {
            (acc >> PRECISION_BITS).clamp(0, 255) as u8
        }

        fn horizontal_pass(src: &[u8], width: usize, height: usize, out_w: usize) -> Vec<u8> {
            let half = 1i32 << (PRECISION_BITS - 1);
            let taps = coefficients(width, out_w);
            let mut out = vec![0u8; out_w * height * 3];
            for y in 0..height {
                let row = &src[y * width * 3..(y + 1) * width * 3];
                let dst = &mut out[y * out_w * 3..(y + 1) * out_w * 3];
                for (xx, t) in taps.iter().enumerate() {
                    let mut acc = [half; 3];
                    for (i, &k) in t.weights.iter().enumerate() {
                        let p = &row[(t.start + i) * 3..(t.start + i) * 3 + 3];
                        acc[0] += p[0] as i32 * k;
                        acc[1] += p[1] as i32 * k;
                        acc[2] += p[2] as i32 * k;
                    }
                    dst[xx * 3] = clip8(acc[0]);
                    dst[xx * 3 + 1] = clip8(acc[1]);
                    dst[xx * 3 + 2] = clip8(acc[2]);
                }
            }
            out
        }

        fn vertical_pass(src: &[u8], width: usize, height: usize, out_h: usize) -> Vec<u8> {
            let half = 1i32 << (PRECISION_BITS - 1);
            let taps = coefficients(height, out_h);
            let stride = width * 3;
            let mut out = vec![0u8; stride * out_h];
            for (yy, t) in taps.iter().enumerate() {
                let dst = &mut out[yy * stride..(yy + 1) * stride];
                for (x, d) in dst.iter_mut().enumerate() {
                    let mut acc = half;
                    for (i, &k) in t.weights.iter().enumerate() {
                        acc += src[(t.start + i) * stride + x] as i32 * k;
                    }
                    *d = clip8(acc);
                }
            }
            out
        }

        fn vertical_first(width: usize, height: usize, out_w: usize, out_h: usize) -> bool {
            out_h < height && (height - out_h) as i64 > 2 * (width as i64 - out_w as i64)
        }

        pub fn resize_bilinear_rgb(
            src: &[u8],
            width: usize,
            height: usize,
            out_w: usize,
            out_h: usize,
        ) -> Vec<u8> {
            assert_eq!(src.len(), width * height * 3);
            match (out_w != width, out_h != height) {
                (false, false) => src.to_vec(),
                (true, false) => horizontal_pass(src, width, height, out_w),
                (false, true) => vertical_pass(src, width, height, out_h),
                (true, true) if vertical_first(width, height, out_w, out_h) => {
                    let tmp = vertical_pass(src, width, height, out_h);
                    horizontal_pass(&tmp, width, out_h, out_w)
                }
                (true, true) => {
                    let tmp = horizontal_pass(src, width, height, out_w);
                    vertical_pass(&tmp, out_w, height, out_h)
                }
            }
        }
    }
}

/// An annotated image from the synthetic generator, built as `Sa1bDataset::get` builds it, plus
/// masks that resampling treats specially: one pixel, one-pixel lines, runs that wrap from one
/// column into the next, and a mask touching every border.
fn item(sides: (usize, usize), objects: usize, id: u64) -> AnnotatedImage {
    let config = SyntheticConfig {
        min_side: sides.0,
        max_side: sides.1,
        min_objects: 1,
        max_objects: objects,
        min_object_area: 3,
        seed: 11,
        ..SyntheticConfig::default()
    };
    let (image, file) = generate_image(&config, id).unwrap();
    let (w, h) = (image.width() as usize, image.height() as usize);
    let mut annotations: Vec<Annotation> = file
        .annotations
        .into_iter()
        .map(|a| {
            annotation(
                a.id,
                Rle::from_coco_string(&a.segmentation.counts, a.segmentation.size).unwrap(),
                a.point_coords,
            )
        })
        .collect();
    let special: [&dyn Fn(usize, usize) -> bool; 5] = [
        &|x, y| x == w - 1 && y == h - 1,
        &|x, _| x == 3,
        &|_, y| y == h / 2,
        // Column-major runs from the bottom of one column into the top of the next.
        &|x, y| (x == w / 3 && y > h / 2) || (x == w / 3 + 1 && y < h / 3),
        &|x, y| x == 0 || y == 0 || x == w - 1 || y == h - 1,
    ];
    for (k, inside) in special.iter().enumerate() {
        let mask: Vec<bool> = (0..w * h).map(|i| inside(i % w, i / w)).collect();
        let rle = Rle::from_mask(&mask, h, w).unwrap();
        annotations.push(annotation(id * 1000 + 900 + k as u64, rle, vec![]));
    }
    AnnotatedImage {
        image_id: id,
        path: format!("sa_{id}.jpg").into(),
        image,
        annotations,
    }
}

fn annotation(id: u64, rle: Rle, point_coords: Vec<[f64; 2]>) -> Annotation {
    Annotation {
        id,
        bbox: rle.to_bbox(),
        area: rle.area() as f64,
        rle,
        iscrowd: false,
        category_id: None,
        predicted_iou: None,
        stability_score: None,
        point_coords,
        crop_box: None,
        caption: None,
    }
}

/// Field by field, floats by their bits (`==` would let `-0.0` pass for `0.0`).
fn assert_identical(fast: &TrainSample, slow: &TrainSample, case: &str) {
    assert_eq!(
        (fast.image_id, fast.width, fast.height),
        (slow.image_id, slow.width, slow.height),
        "{case}: size"
    );
    assert!(fast.image == slow.image, "{case}: pixels differ");
    assert_eq!(fast.objects.len(), slow.objects.len(), "{case}: objects");
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for (i, (a, b)) in fast.objects.iter().zip(&slow.objects).enumerate() {
        assert_eq!(a.area, b.area, "{case}: object {i} area");
        assert_eq!(bits(&a.bbox), bits(&b.bbox), "{case}: object {i} box");
        assert_eq!(
            bits(&a.noisy_box),
            bits(&b.noisy_box),
            "{case}: object {i} noisy box"
        );
        assert_eq!(bits(&a.point), bits(&b.point), "{case}: object {i} point");
        let low = |o: &TrainObject| o.gt_low_res.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert!(low(a) == low(b), "{case}: object {i} low-res ground truth");
    }
}

/// One randomly drawn setting: image and low-res sides, augmentation (none, the defaults, always
/// flipped and cropped, strongly shrunk, colour without contrast, or fixed scale without
/// colour), mask selection.
fn draw_config(meta: &mut StdRng) -> (TrainSampleConfig, &'static str) {
    let (image_size, low_res_size) = [
        (64, 16),
        (128, 32),
        (96, 24),
        (100, 25),
        (48, 48),
        (256, 64),
    ][meta.random_range(0..6)];
    let base = AugmentConfig {
        target_size: image_size,
        ..AugmentConfig::default()
    };
    let (augment, name) = match meta.random_range(0..6) {
        0 => (None, "resize only"),
        1 => (Some(base), "default jitter"),
        2 => (
            Some(AugmentConfig {
                flip_prob: 1.0,
                scale_range: (1.5, 3.0),
                ..base
            }),
            "flip + crop",
        ),
        3 => (
            Some(AugmentConfig {
                flip_prob: 0.0,
                scale_range: (0.05, 0.3),
                ..base
            }),
            "shrink",
        ),
        4 => (
            Some(AugmentConfig {
                contrast: 0.0,
                ..base
            }),
            "colour without contrast",
        ),
        _ => (
            Some(AugmentConfig {
                scale_range: (1.0, 1.0),
                brightness: 0.0,
                contrast: 0.0,
                saturation: 0.0,
                hue: 0.0,
                ..base
            }),
            "fixed scale, no colour",
        ),
    };
    let prompts = if meta.random_bool(0.5) {
        PromptSamplingConfig::default()
    } else {
        PromptSamplingConfig {
            max_masks_per_image: 3,
            max_mask_area_ratio: 0.2,
            ..PromptSamplingConfig::default()
        }
    };
    let config = TrainSampleConfig {
        image_size,
        low_res_size,
        augment,
        prompts,
        keep_masks_min_area: None,
    };
    (config, name)
}

fn run_reference(
    item: &AnnotatedImage,
    config: &TrainSampleConfig,
    rng: &mut StdRng,
) -> Result<(TrainSample, reference::Coverage), String> {
    reference::train_sample(
        item,
        config.image_size,
        config.low_res_size,
        config.augment.as_ref(),
        &config.prompts,
        rng,
    )
}

#[test]
fn train_sample_matches_the_reference_pipeline_bit_for_bit() {
    let mut meta = StdRng::seed_from_u64(2024);
    let items: Vec<AnnotatedImage> = (0..16)
        .map(|id| item((60, 300), 1 + id as usize % 12, id))
        .collect();
    let mut total = reference::Coverage::default();
    let (mut cases, mut objects, mut none) = (0, 0, 0);
    for case in 0..400u64 {
        let item = &items[meta.random_range(0..items.len())];
        let (config, name) = draw_config(&mut meta);
        let seed = meta.random::<u64>();
        let label = format!(
            "case {case} ({name}, image {}, {}×{}, image_size {}, seed {seed})",
            item.image_id,
            item.image.width(),
            item.image.height(),
            config.image_size
        );
        let (mut fast_rng, mut slow_rng) =
            (StdRng::seed_from_u64(seed), StdRng::seed_from_u64(seed));
        let fast = train_sample(item.clone(), &config, &mut fast_rng).unwrap();
        let (slow, cov) = run_reference(item, &config, &mut slow_rng).unwrap();
        assert_identical(&fast, &slow, &label);
        assert_eq!(
            fast_rng.random::<u64>(),
            slow_rng.random::<u64>(),
            "{label}: a different number of random draws"
        );
        cases += 1;
        objects += slow.objects.len();
        none += usize::from(config.augment.is_none());
        total.flipped |= cov.flipped;
        total.cropped |= cov.cropped;
        total.upscaled |= cov.upscaled;
        total.downscaled |= cov.downscaled;
        total.vanished += cov.vanished;
    }
    // The cases must reach every branch the fast path handles differently.
    assert!(
        total.flipped && total.cropped && total.upscaled && total.downscaled,
        "{total:?}"
    );
    assert!(total.vanished > 20, "too few vanishing masks: {total:?}");
    assert!(
        none > 20 && objects > 1000,
        "{cases} cases, {objects} objects, {none} resize-only"
    );
}

/// The library's slow public functions, composed as `train_sample` composed them, still give
/// the reference: they stay usable on their own and keep their behaviour.
#[test]
fn public_slow_functions_still_compose_to_the_reference() {
    let mut meta = StdRng::seed_from_u64(7);
    for case in 0..60u64 {
        let item = item((60, 200), 8, case % 6);
        let (config, name) = draw_config(&mut meta);
        let seed = meta.random::<u64>();
        let label = format!("case {case} ({name}, seed {seed})");
        let mut rng = StdRng::seed_from_u64(seed);
        let s = config.image_size;
        let (h, w) = (item.image.height() as usize, item.image.width() as usize);
        let chosen = select_masks(
            &item.mask_areas(),
            (h * w) as u64,
            &config.prompts,
            &mut rng,
        );
        let mut sample = item.to_sample(&chosen).unwrap();
        sample = match &config.augment {
            Some(a) => augment(sample, a, &mut rng).unwrap(),
            None => {
                let (nh, nw) = ResizeLongestSide::new(s).get_preprocess_shape(h, w);
                sample.resize(nw, nh);
                sample
            }
        };
        let (w, h) = (sample.width, sample.height);
        let mut objects = Vec::new();
        for mask in &sample.masks {
            let (Some(b), Some(click)) =
                (mask_box(mask, w), sample_positive_point(mask, w, &mut rng))
            else {
                continue;
            };
            objects.push(TrainObject {
                gt_low_res: low_res_mask(mask, h, w, s, config.low_res_size).unwrap(),
                bbox: b.map(|v| v as f64),
                noisy_box: noisy_box(b, h, w, &config.prompts, &mut rng),
                point: [click.x, click.y],
                area: mask.iter().filter(|&&m| m).count() as u64,
                mask: None,
            });
        }
        let composed = TrainSample {
            image_id: item.image_id,
            image: sample.image,
            width: w,
            height: h,
            objects,
        };
        let (slow, _) = run_reference(&item, &config, &mut StdRng::seed_from_u64(seed)).unwrap();
        assert_identical(&composed, &slow, &label);
    }
}

#[test]
fn errors_stay_errors() {
    let good = item((60, 90), 4, 3);
    let config = TrainSampleConfig {
        image_size: 64,
        low_res_size: 16,
        augment: Some(AugmentConfig {
            target_size: 64,
            ..AugmentConfig::default()
        }),
        ..TrainSampleConfig::default()
    };
    let rng = || StdRng::seed_from_u64(3);
    // A chosen mask whose runs do not cover the image.
    let mut broken = good.clone();
    broken.annotations[0].rle.counts.push(5);
    // Mismatched sizes.
    let mut misfit = good.clone();
    misfit.annotations[1].rle.size[0] += 1;
    for (name, item, config) in [
        ("broken RLE", broken, config.clone()),
        ("mask size", misfit, config.clone()),
        (
            "target size",
            good.clone(),
            TrainSampleConfig {
                image_size: 128,
                low_res_size: 32,
                ..config.clone()
            },
        ),
        (
            "bad augmentation",
            good.clone(),
            TrainSampleConfig {
                augment: Some(AugmentConfig {
                    target_size: 64,
                    flip_prob: 2.0,
                    ..AugmentConfig::default()
                }),
                ..config.clone()
            },
        ),
        (
            "low-res size",
            good.clone(),
            TrainSampleConfig {
                low_res_size: 24,
                ..config.clone()
            },
        ),
    ] {
        let fast = train_sample(item.clone(), &config, &mut rng());
        let slow = run_reference(&item, &config, &mut rng());
        assert!(
            fast.is_err() && slow.is_err(),
            "{name}: {fast:?} / {slow:?}"
        );
    }
}

/// Images with no pixels: resizing alone yields an empty sample, augmentation an error, as before.
#[test]
fn empty_images_behave_as_before() {
    for (w, h) in [(0, 0), (0, 5), (7, 0)] {
        let item = AnnotatedImage {
            image_id: 1,
            path: "empty.jpg".into(),
            image: image::RgbImage::new(w, h),
            annotations: vec![],
        };
        let resize_only = TrainSampleConfig {
            image_size: 64,
            low_res_size: 16,
            augment: None,
            ..TrainSampleConfig::default()
        };
        let fast = train_sample(item.clone(), &resize_only, &mut StdRng::seed_from_u64(0));
        let slow = run_reference(&item, &resize_only, &mut StdRng::seed_from_u64(0));
        assert_identical(&fast.unwrap(), &slow.unwrap().0, &format!("{w}×{h}"));
        let augmented = TrainSampleConfig {
            augment: Some(AugmentConfig {
                target_size: 64,
                ..AugmentConfig::default()
            }),
            ..resize_only
        };
        let e = train_sample(item.clone(), &augmented, &mut StdRng::seed_from_u64(0))
            .expect_err("an error")
            .to_string();
        assert!(e.contains("0 bytes"), "{e}");
        let e = run_reference(&item, &augmented, &mut StdRng::seed_from_u64(0))
            .expect_err("an error")
            .to_string();
        assert!(e.contains("0 bytes"), "{e}");
    }
}

/// An image so elongated that resizing it leaves no row (5000×2 at 64: 0.0256 rows) is an
/// error naming its size, as `ResizeLongestSide::apply_image` and Pillow refuse it; so is a
/// prompt config whose noise clip is negative (a panic in `clamp` before).
#[test]
fn unresizable_images_and_bad_prompt_settings_are_errors() {
    let strip = AnnotatedImage {
        image_id: 1,
        path: "strip.jpg".into(),
        image: image::RgbImage::new(5000, 2),
        annotations: vec![],
    };
    let config = TrainSampleConfig {
        image_size: 64,
        low_res_size: 16,
        augment: None,
        ..TrainSampleConfig::default()
    };
    let e = train_sample(strip, &config, &mut StdRng::seed_from_u64(0)).unwrap_err();
    assert!(e.to_string().contains("5000×2"), "{e}");

    let good = item((60, 90), 4, 3);
    for (field, prompts) in [
        (
            "box_noise_max_px",
            PromptSamplingConfig {
                box_noise_max_px: -5.0,
                ..PromptSamplingConfig::default()
            },
        ),
        (
            "box_noise_std_ratio",
            PromptSamplingConfig {
                box_noise_std_ratio: f64::NAN,
                ..PromptSamplingConfig::default()
            },
        ),
        (
            "max_mask_area_ratio",
            PromptSamplingConfig {
                max_mask_area_ratio: 0.0,
                ..PromptSamplingConfig::default()
            },
        ),
    ] {
        let config = TrainSampleConfig {
            prompts,
            ..config.clone()
        };
        let e = train_sample(good.clone(), &config, &mut StdRng::seed_from_u64(0)).unwrap_err();
        assert!(e.to_string().contains(field), "{field}: {e}");
    }
}
