//! `load_rgb` on `FF D8` + the input, through a file in tmpfs (`load_rgb` takes a path), so
//! that sam-jpeg runs and, when it decodes, the EXIF orientation is applied
//! (`jpeg_decoder` drives sam-jpeg alone).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("fuzz_{}.jpg", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let mut bytes = Vec::with_capacity(data.len() + 2);
    bytes.extend_from_slice(&[0xFF, 0xD8]);
    bytes.extend_from_slice(data);
    std::fs::write(path(), &bytes).expect("write the temporary JPEG");
    if let Ok(img) = sam_data::load_rgb(path()) {
        assert!(img.width() > 0 && img.height() > 0);
        assert_eq!(
            img.as_raw().len(),
            img.width() as usize * img.height() as usize * 3
        );
    }
});
