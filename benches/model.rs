//! Model benchmarks: image encoder, prompt → mask decoding (1 and 64 prompts on one
//! embedding) and the automatic mask generator, on every backend compiled in. Criterion reports
//! latency and throughput (images, prompts or grid points per second); after each benchmark a
//! `memory:` line gives its peak resident set (and the device pool on GPUs).
//!
//! `cargo bench --bench model` runs the quick tiny configuration (the committed fixture model);
//! `SAM_BENCH_FULL=vit_b` (or `vit_l`, `vit_h`) adds that preset at 1024² with random weights;
//! `SAM_BENCH_SIZES=512,768` adds it at those input sides too (position tables resampled).
//! The generator runs a `SAM_BENCH_AMG_POINTS`² grid (default 16) on the bundled image with
//! both thresholds at 0, so that every mask is post-processed.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sam_burn::amg::{AmgConfig, SamAutomaticMaskGenerator};
use sam_burn::burn::tensor::{Device, Distribution, Int, Tensor};
use sam_burn::memory::measured;
use sam_burn::{PointPrompt, Prompts, Sam, SamConfig};

fn devices() -> Vec<(&'static str, Device)> {
    sam_burn::backend::available()
        .into_iter()
        .filter_map(|name| sam_burn::backend::device(name).ok().map(|d| (name, d)))
        .collect()
}

fn models(device: &Device) -> Vec<(String, Sam)> {
    let dir = sam_burn::cli::bundled("crates/sam-model/tests/fixtures");
    let tiny = SamConfig::load(dir.join("sam_tiny.json")).expect("tiny config");
    let mut out = vec![(
        "tiny".to_string(),
        Sam::load(dir.join("sam_tiny.pth"), &tiny, device).expect("tiny model"),
    )];
    if let Ok(name) = std::env::var("SAM_BENCH_FULL") {
        let config = SamConfig::from_model_type(&name).expect("SAM_BENCH_FULL preset");
        let sizes: Vec<usize> = std::env::var("SAM_BENCH_SIZES")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse()
                    .unwrap_or_else(|_| panic!("SAM_BENCH_SIZES: {s:?} is not an input side"))
            })
            .collect();
        for size in sizes {
            let model = config.init(device).expect("model");
            let model = model.resampled(size).expect("input size");
            out.push((format!("{name}@{size}"), model));
        }
        out.push((name, config.init(device).expect("model")));
    }
    out
}

fn sync<const D: usize>(t: Tensor<D>) {
    // Reading a value forces lazy backends to finish the work.
    let _ = t.sum().into_data();
}

fn bench(c: &mut Criterion) {
    sam_burn::allocator::keep_freed_memory();
    let amg_points: usize = std::env::var("SAM_BENCH_AMG_POINTS")
        .map(|v| {
            v.parse()
                .expect("SAM_BENCH_AMG_POINTS: a number of points per side")
        })
        .unwrap_or(16);
    let image = sam_burn::data::load_rgb(sam_burn::cli::bundled("assets/scene.png"))
        .expect("bundled image");
    for (backend, device) in devices() {
        for (name, sam) in models(&device) {
            let s = sam.config().image_size;
            let group_name = format!("{name}/{backend}");
            let mut group = c.benchmark_group(&group_name);
            group.sample_size(10);
            let x = Tensor::<4>::random([1, 3, s, s], Distribution::Uniform(0.0, 255.0), &device);
            let x = sam.preprocess(x).expect("input");
            group.throughput(Throughput::Elements(1));
            measured(&format!("{group_name}/image_encoder"), &device, || {
                group.bench_function("image_encoder", |b| {
                    b.iter(|| sync(sam.image_embeddings(x.clone()).expect("embed")))
                });
            });
            let emb = sam.image_embeddings(x.clone()).expect("embed");
            for prompts in [1usize, 64] {
                let coords = Tensor::<3>::random(
                    [prompts, 1, 2],
                    Distribution::Uniform(0.0, s as f64),
                    &device,
                );
                let labels = Tensor::<2, Int>::ones([prompts, 1], &device);
                group.throughput(Throughput::Elements(prompts as u64));
                let id = BenchmarkId::new("decode_points", prompts);
                measured(
                    &format!("{group_name}/decode_points/{prompts}"),
                    &device,
                    || {
                        group.bench_with_input(id, &prompts, |b, _| {
                            b.iter(|| {
                                let p = Prompts {
                                    points: Some(PointPrompt {
                                        coords: coords.clone(),
                                        labels: labels.clone(),
                                    }),
                                    ..Default::default()
                                };
                                sync(
                                    sam.predict(emb.clone(), p, true)
                                        .expect("predict")
                                        .low_res_masks,
                                )
                            })
                        });
                    },
                );
            }
            let generator = SamAutomaticMaskGenerator::new(
                sam.clone(),
                AmgConfig {
                    points_per_side: Some(amg_points),
                    pred_iou_thresh: 0.0,
                    stability_score_thresh: 0.0,
                    ..AmgConfig::default()
                },
            )
            .expect("generator");
            group.throughput(Throughput::Elements((amg_points * amg_points) as u64));
            let id = BenchmarkId::new("automatic_mask_generator", amg_points);
            let label = format!("{group_name}/automatic_mask_generator/{amg_points}");
            measured(&label, &device, || {
                group.bench_with_input(id, &amg_points, |b, _| {
                    b.iter(|| generator.generate(&image).expect("generate"))
                });
            });
            group.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
