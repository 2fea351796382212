//! Median decoding time per file:
//! `cargo run --release -p sam-jpeg --example time_decode -- FILE.jpg...`
//! (compare with `python tools/reference/time_jpeg.py FILE.jpg...`, which times Pillow).

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path)?;
        let img = sam_jpeg::decode(&bytes)?;
        let sum: u64 = img.pixels.iter().map(|&v| v as u64).sum();
        let mut times = Vec::new();
        for _ in 0..15 {
            let t = Instant::now();
            std::hint::black_box(sam_jpeg::decode(std::hint::black_box(&bytes))?);
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{path}: {}x{}x{} sum {sum}: median {:.2} ms (min {:.2})",
            img.width,
            img.height,
            img.components,
            times[times.len() / 2],
            times[0]
        );
    }
    Ok(())
}
