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
    // Clamped to just outside the image, so that any coordinate (1e19 included) stays in range
    // of the additions below; a disc centred there is off the picture anyway.
    let x = (x as i64).clamp(-ri - 1, image.width() as i64 + ri + 1);
    let y = (y as i64).clamp(-ri - 1, image.height() as i64 + ri + 1);
    for dy in -ri..=ri {
        for dx in -ri..=ri {
            let d = ((dx * dx + dy * dy) as f64).sqrt();
            if d <= r + 1.0 {
                let c = if d <= r { color } else { [255, 255, 255] };
                put(image, x + dx, y + dy, c);
            }
        }
    }
}

/// A 2-pixel rectangle outline.
pub fn draw_box(image: &mut RgbImage, b: [f64; 4], color: [u8; 3]) {
    // Sides far outside the image are drawn from just outside it: the loops stay as long as
    // the picture, whatever the box (a 1e13-pixel box would otherwise loop 1e13 times).
    let (w, h) = (image.width() as i64, image.height() as i64);
    let [x0, y0, x1, y1] = b.map(|v| v.round() as i64);
    let (x0, x1) = (x0.clamp(-3, w + 2), x1.clamp(-3, w + 2));
    let (y0, y1) = (y0.clamp(-3, h + 2), y1.clamp(-3, h + 2));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Coordinates from the command line may be anything finite: far-off boxes and points
    /// draw what is on the picture, at once, without overflow.
    #[test]
    fn far_off_boxes_and_points_draw_what_is_visible() {
        let mut far = RgbImage::new(20, 10);
        draw_box(&mut far, [-1e19, 2.0, 1e13, 1e13], [255, 0, 0]);
        let mut near = RgbImage::new(20, 10);
        draw_box(&mut near, [-5.0, 2.0, 40.0, 30.0], [255, 0, 0]);
        assert_eq!(far, near);
        assert_eq!(far.get_pixel(7, 2), &Rgb([255, 0, 0]));
        assert_eq!(far.get_pixel(7, 3), &Rgb([255, 0, 0]));
        assert_eq!(far.get_pixel(7, 4), &Rgb([0, 0, 0]));

        let mut img = RgbImage::new(20, 10);
        draw_point(&mut img, 1e19, 5.0, true);
        draw_point(&mut img, -1e19, -1e19, false);
        assert!(img.pixels().all(|p| p == &Rgb([0, 0, 0])));
        draw_point(&mut img, 10.0, 5.0, true);
        assert_eq!(img.get_pixel(10, 5), &Rgb([0, 220, 0]));
    }
}
