//! Decoding time of the fixtures' largest JPEGs (compare with `tools/reference/time_jpeg.py`).
use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let _ = c;
}

criterion_group!(benches, bench);
criterion_main!(benches);
