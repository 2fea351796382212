//! Decoding time of the largest fixtures. For the comparison with Pillow on 1600×1200 files
//! see `examples/time_decode.rs` and `docs/performance.md`.
use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for name in [
        "large_420_250x181_q90.jpg",
        "large_420_250x181_q90_prog.jpg",
    ] {
        let bytes = std::fs::read(dir.join(name)).expect("fixture");
        c.bench_function(name, |b| {
            b.iter(|| sam_jpeg::decode(std::hint::black_box(&bytes)).expect("decodes"))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
