//! One training step (loader batch → interactive simulation → SAM loss → backward → AdamW) on
//! every backend compiled in.
//!
//! `cargo bench --bench train` runs the demo recipe (`TrainConfig::demo()`: 128² model, 4 images,
//! 1 + 2 click + 1 mask-only rounds) on synthetic shapes; `SAM_BENCH_FULL=vit_b` (or `vit_l`) adds
//! that preset at 1024² with one image per step and the default 11 rounds (slow on a CPU).
//! Criterion reports the step's latency and images per second; a `memory:` line its peak
//! resident set (and the device pool on GPUs).

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sam_burn::SamConfig;
use sam_burn::burn::tensor::Device;
use sam_burn::data::dataset::{Sa1bDataset, SyntheticConfig, write_synthetic_dataset};
use sam_burn::memory::measured;
use sam_burn::optim::BatchConfig;
use sam_burn::training::{TrainConfig, Trainer};

fn devices() -> Vec<(&'static str, Device)> {
    sam_burn::backend::available()
        .into_iter()
        .filter_map(|name| sam_burn::backend::device(name).ok().map(|d| (name, d)))
        .collect()
}

fn configs() -> Vec<(String, TrainConfig)> {
    let mut demo = TrainConfig::demo();
    demo.checkpoint_every = 0;
    demo.eval_every = 0;
    demo.steps = 1_000_000;
    demo.optim.schedule.total_steps = 1_000_000;
    let mut out = vec![("demo".to_string(), demo)];
    if let Ok(name) = std::env::var("SAM_BENCH_FULL") {
        let mut c = TrainConfig {
            model: SamConfig::from_model_type(&name).expect("SAM_BENCH_FULL preset"),
            ..TrainConfig::default()
        };
        c.optim.batch = BatchConfig {
            global_batch_size: 1,
            micro_batch_size: 1,
            num_devices: 1,
        };
        c.loader.batch_size = 1;
        c.checkpoint_every = 0;
        c.eval_every = 0;
        out.push((name, c));
    }
    out
}

fn bench(c: &mut Criterion) {
    sam_burn::allocator::keep_freed_memory();
    let data = tempfile::tempdir().expect("temp dir");
    let synth = SyntheticConfig {
        num_images: 64,
        ..SyntheticConfig::default()
    };
    write_synthetic_dataset(data.path(), &synth).expect("synthetic data");
    let dataset = Arc::new(Sa1bDataset::open(data.path()).expect("dataset"));
    for (backend, device) in devices() {
        for (name, config) in configs() {
            let out = tempfile::tempdir().expect("temp dir");
            let mut trainer =
                Trainer::new(config, dataset.clone(), out.path(), &device, None).expect("trainer");
            let group_name = format!("train/{name}/{backend}");
            let images = trainer.config().optim.batch.global_batch_size;
            let mut group = c.benchmark_group(&group_name);
            group.sample_size(10);
            group.throughput(Throughput::Elements(images as u64));
            measured(&format!("{group_name}/step"), &device, || {
                group.bench_function("step", |b| {
                    b.iter(|| trainer.train_step().expect("step").loss)
                });
            });
            group.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
