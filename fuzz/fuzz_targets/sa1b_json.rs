//! An SA-1B annotation file: `serde_json::from_slice::<Sa1bFile>` on arbitrary bytes and, when
//! it parses, each annotation's compressed RLE decoded where the mask is at most 2^16 pixels.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sam_data::Rle;
use sam_data::dataset::sa1b::Sa1bFile;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = serde_json::from_slice::<Sa1bFile>(data) else {
        return;
    };
    for a in &file.annotations {
        let size = a.segmentation.size;
        if size[0].checked_mul(size[1]).is_none_or(|n| n > 1 << 16) {
            continue;
        }
        let Ok(rle) = Rle::from_coco_string(&a.segmentation.counts, size) else {
            continue;
        };
        let mask = rle.to_mask().expect("a parsed RLE decodes");
        assert_eq!(rle.area(), mask.iter().filter(|&&m| m).count() as u64);
        let _ = rle.to_bbox();
    }
    // What was read writes back (the synthetic generator writes this type) and reads again.
    let text = serde_json::to_vec(&file).expect("an Sa1bFile serialises");
    let again: Sa1bFile = serde_json::from_slice(&text).expect("its JSON reads back");
    assert_eq!(again.annotations.len(), file.annotations.len());
});
