//! Loader throughput: images per second through JPEG decode + JSON/RLE parsing + mask
//! selection and decoding + augmentation (flip, scale jitter, colour jitter) + low-res ground
//! truth + batching, at the model's 1024² input, on SA-1B-sized synthetic images.
//!
//! `cargo bench -p sam-data --bench loader` (workers: 1 and 2; `SAM_BENCH_WORKERS=1,2,4` to
//! choose). The data set (8 images of 1500–2250 px with 20–64 objects, like SA-1B's) is
//! generated once into a temporary folder. A second group times `train_sample` alone, on one
//! thread, over the images already decoded (each iteration clones them, ~7 MB apiece), to
//! separate the transform from JPEG and JSON decoding.

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::StdRng;
use sam_data::dataset::{Dataset, Sa1bDataset, SyntheticConfig, write_synthetic_dataset};
use sam_data::{DataLoader, LoaderConfig, TrainSampleConfig, train_sample};

const IMAGES: usize = 8;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let synth = SyntheticConfig {
        num_images: IMAGES,
        min_side: 1500,
        max_side: 2250,
        min_objects: 20,
        max_objects: 64,
        seed: 5,
        ..SyntheticConfig::default()
    };
    write_synthetic_dataset(dir.path(), &synth).expect("synthetic data");
    let dataset = Arc::new(Sa1bDataset::open(dir.path()).expect("dataset"));
    let workers: Vec<usize> = std::env::var("SAM_BENCH_WORKERS")
        .ok()
        .map(|s| s.split(',').filter_map(|w| w.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 2]);
    let configs = [
        ("augmented", TrainSampleConfig::default()),
        (
            "resize_only",
            TrainSampleConfig {
                augment: None,
                ..TrainSampleConfig::default()
            },
        ),
    ];
    let mut group = c.benchmark_group("loader_1024");
    group.sample_size(10);
    group.throughput(Throughput::Elements(IMAGES as u64));
    for &(name, ref config) in &configs {
        for &w in &workers {
            let config = config.clone();
            let loader = DataLoader::new(
                dataset.clone(),
                move |item, rng| train_sample(item, &config, rng),
                LoaderConfig {
                    batch_size: 4,
                    num_workers: w,
                    seed: 1,
                    ..LoaderConfig::default()
                },
            )
            .expect("loader");
            group.bench_function(BenchmarkId::new(name, format!("{w}_workers")), |b| {
                let mut epoch = 0;
                b.iter(|| {
                    let n: usize = loader
                        .epoch(epoch)
                        .expect("epoch")
                        .map(|b| b.expect("batch").items.len())
                        .sum();
                    epoch += 1;
                    assert_eq!(n, IMAGES);
                })
            });
        }
    }
    group.finish();

    let items: Vec<_> = (0..IMAGES).map(|i| dataset.get(i).expect("item")).collect();
    let mut group = c.benchmark_group("train_sample_1024");
    group.sample_size(10);
    group.throughput(Throughput::Elements(IMAGES as u64));
    for &(name, ref config) in &configs {
        group.bench_function(name, |b| {
            let mut seed = 0;
            b.iter(|| {
                for item in &items {
                    seed += 1;
                    let mut rng = StdRng::seed_from_u64(seed);
                    train_sample(item.clone(), config, &mut rng).expect("sample");
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
