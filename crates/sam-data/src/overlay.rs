//! Pictures of results: binary mask images and masks tinted over the photo with the prompts drawn.

use image::{Luma, Rgb, RgbImage};

/// A distinct colour per mask index.
pub fn palette(i: usize) -> [u8; 3] {
    const COLORS: [[u8; 3]; 8] = [
        [30, 144, 255],
        [255, 99, 71],
        [50, 205, 50],
        [255, 215, 0],
        [186, 85, 211],
        [0, 206, 209],
        [255, 140, 0],
        [199, 21, 133],
    ];
    COLORS[i % COLORS.len()]
}

/// A white-on-black image of a row-major `height × width` mask.
pub fn mask_image(mask: &[bool], width: u32, height: u32) -> image::GrayImage {
    image::GrayImage::from_fn(width, height, |x, y| {
        Luma([if mask[(y * width + x) as usize] {
            255
        } else {
            0
        }])
    })
}

/// Area (pixels) and inclusive bounding box `(x0, y0, x1, y1)` of a mask; `None` if empty.
pub fn mask_stats(mask: &[bool], width: usize) -> (usize, Option<[usize; 4]>) {
    let mut area = 0;
    let mut bbox: Option<[usize; 4]> = None;
    for (i, _) in mask.iter().enumerate().filter(|(_, m)| **m) {
        area += 1;
        let (x, y) = (i % width, i / width);
        bbox = Some(match bbox {
            None => [x, y, x, y],
            Some([x0, y0, x1, y1]) => [x0.min(x), y0.min(y), x1.max(x), y1.max(y)],
        });
    }
    (area, bbox)
}

/// Tints `mask` with `color` at half opacity.
pub fn tint(image: &mut RgbImage, mask: &[bool], color: [u8; 3]) {
    let width = image.width() as usize;
    for (i, _) in mask.iter().enumerate().filter(|(_, m)| **m) {
        let p = image.get_pixel_mut((i % width) as u32, (i / width) as u32);
        for (v, c) in p.0.iter_mut().zip(color) {
            *v = ((*v as u16 + c as u16) / 2) as u8;
        }
    }
}

fn put(image: &mut RgbImage, x: i64, y: i64, color: [u8; 3]) {
    if x >= 0 && y >= 0 && (x as u32) < image.width() && (y as u32) < image.height() {
        image.put_pixel(x as u32, y as u32, Rgb(color));
    }
}

/// A filled disc with a white rim: green for foreground points, red for background.
pub fn draw_point(image: &mut RgbImage, x: f64, y: f64, foreground: bool) {
    let r = (image.width().max(image.height()) as f64 / 120.0).max(3.0);
    let color = if foreground { [0, 220, 0] } else { [230, 0, 0] };
    let ri = r.ceil() as i64 + 1;
    for dy in -ri..=ri {
        for dx in -ri..=ri {
            let d = ((dx * dx + dy * dy) as f64).sqrt();
            if d <= r + 1.0 {
                let c = if d <= r { color } else { [255, 255, 255] };
                put(image, x as i64 + dx, y as i64 + dy, c);
            }
        }
    }
}

/// A 2-pixel rectangle outline.
pub fn draw_box(image: &mut RgbImage, b: [f64; 4], color: [u8; 3]) {
    let [x0, y0, x1, y1] = b.map(|v| v.round() as i64);
    for t in 0..2 {
        for x in x0..=x1 {
            put(image, x, y0 + t, color);
            put(image, x, y1 - t, color);
        }
        for y in y0..=y1 {
            put(image, x0 + t, y, color);
            put(image, x1 - t, y, color);
        }
    }
}
