//! `sam_jpeg::decode` on arbitrary bytes (seed with the sam-jpeg fixtures): it must return an
//! image of consistent size or an error, never panic, and never allocate more than the input
//! can describe.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(img) = sam_jpeg::decode(data) {
        assert!(img.width > 0 && img.height > 0);
        assert!(matches!(img.components, 1 | 3 | 4));
        let pixels = img.width as usize * img.height as usize;
        assert_eq!(img.pixels.len(), pixels * img.components as usize);
        assert!(img.exif_orientation.is_none_or(|o| (1..=8).contains(&o)));
        assert_eq!(img.into_rgb().len(), pixels * 3);
    }
});
