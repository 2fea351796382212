//! `Rle::from_coco_string` on arbitrary strings, at sizes up to 64×64 taken from the first two
//! bytes. Whatever parses must decode, re-encode to a string that parses to the same runs, and
//! give an area and a bbox consistent with its mask.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sam_data::Rle;

fuzz_target!(|data: &[u8]| {
    let [h, w, rest @ ..] = data else {
        return;
    };
    let (h, w) = ((*h % 65) as usize, (*w % 65) as usize);
    let counts = String::from_utf8_lossy(rest);
    let Ok(rle) = Rle::from_coco_string(&counts, [h, w]) else {
        return;
    };
    assert_eq!(rle.size, [h, w]);
    let mask = rle.to_mask().expect("a parsed RLE decodes");
    assert_eq!(mask.len(), h * w);
    let area = rle.area();
    assert_eq!(area, mask.iter().filter(|&&m| m).count() as u64);

    let again = rle.to_coco_string();
    let back = Rle::from_coco_string(&again, [h, w]).expect("the re-encoded string parses");
    assert_eq!(back.counts, rle.counts, "re-encoded as {again:?}");

    // The canonical encoding of the mask gives the same pixels.
    let canonical = Rle::from_mask(&mask, h, w).expect("mask has h·w pixels");
    assert_eq!(canonical.to_mask().unwrap(), mask);
    assert_eq!(canonical.area(), area);

    let [bx, by, bw, bh] = rle.to_bbox();
    if area > 0 {
        // pycocotools' box may be looser than the pixels' (a run over several columns takes
        // the full height) but always holds every foreground pixel and stays in the image.
        assert!(bx >= 0.0 && by >= 0.0 && bw >= 1.0 && bh >= 1.0);
        assert!(
            bx + bw <= w as f64 && by + bh <= h as f64,
            "{:?}",
            rle.to_bbox()
        );
        for y in 0..h {
            for x in 0..w {
                if mask[y * w + x] {
                    let (x, y) = (x as f64, y as f64);
                    assert!(x >= bx && x < bx + bw && y >= by && y < by + bh);
                }
            }
        }
    }
});
