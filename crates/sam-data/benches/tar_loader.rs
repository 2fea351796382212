//! Throughput of SA-1B read from tar shards: images per second through member reading, JPEG
//! decode and JSON/RLE parsing (`decode`), and through that plus `train_sample` without
//! augmentation, i.e. resize to 1024 and the chosen masks' RLE decoding onto the low-resolution
//! grid (`resize_only`), with 1 and 2 workers (`SAM_BENCH_WORKERS=1,2,4` to choose).
//!
//! `cargo bench -p sam-data --bench tar_loader`. The data (8 synthetic images of 1500–2250 px
//! with 50–100 shapes drawn, like SA-1B's ~1500×2250 images with ~100 masks) is generated once
//! and packed into two shards in a temporary folder.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sam_data::dataset::{
    Sa1bTarConfig, Sa1bTarStream, SyntheticConfig, TarPosition, list_shards,
    write_synthetic_dataset,
};
use sam_data::{TrainSampleConfig, train_sample};

const IMAGES: usize = 8;

fn make_shards(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let src = root.join("unpacked");
    let synth = SyntheticConfig {
        num_images: IMAGES,
        min_side: 1500,
        max_side: 2250,
        min_objects: 50,
        max_objects: 100,
        seed: 5,
        ..SyntheticConfig::default()
    };
    let images = write_synthetic_dataset(&src, &synth).expect("synthetic data");
    let out = root.join("shards");
    std::fs::create_dir_all(&out).expect("shard folder");
    for (k, chunk) in images.chunks(IMAGES / 2).enumerate() {
        let file = std::fs::File::create(out.join(format!("sa_{k:06}.tar"))).expect("shard");
        let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
        for image in chunk {
            for path in [image.clone(), image.with_extension("json")] {
                let name = format!("./{}", path.file_name().expect("name").to_string_lossy());
                tar.append_path_with_name(&path, name).expect("member");
            }
        }
        tar.finish().expect("shard end");
    }
    list_shards(&out).expect("shards")
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let shards = make_shards(dir.path());
    // Also brings the shards into the page cache, as during training after the first epoch.
    let masks: usize =
        Sa1bTarStream::new(Sa1bTarConfig::new(shards.clone()), TarPosition::default())
            .expect("stream")
            .until_epoch_end()
            .map(|r| r.expect("item").annotations.len())
            .sum();
    eprintln!(
        "{IMAGES} images, {:.1} masks per image",
        masks as f64 / IMAGES as f64
    );
    let workers: Vec<usize> = std::env::var("SAM_BENCH_WORKERS")
        .ok()
        .map(|s| s.split(',').filter_map(|w| w.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 2]);
    let resize_only = TrainSampleConfig {
        augment: None,
        ..TrainSampleConfig::default()
    };
    let mut group = c.benchmark_group("sa1b_tar");
    group.sample_size(10);
    group.throughput(Throughput::Elements(IMAGES as u64));
    for &w in &workers {
        let config = Sa1bTarConfig {
            num_workers: w,
            shuffle_buffer: 4,
            seed: 1,
            skip_errors: false,
            ..Sa1bTarConfig::new(shards.clone())
        };
        group.bench_function(BenchmarkId::new("decode", format!("{w}_workers")), |b| {
            let mut epoch = 0;
            b.iter(|| {
                let start = TarPosition { epoch, emitted: 0 };
                let stream = Sa1bTarStream::new(config.clone(), start).expect("stream");
                let n = stream.until_epoch_end().map(|r| r.expect("item")).count();
                epoch += 1;
                assert_eq!(n, IMAGES);
            })
        });
        group.bench_function(
            BenchmarkId::new("resize_only", format!("{w}_workers")),
            |b| {
                let mut epoch = 0;
                b.iter(|| {
                    let start = TarPosition { epoch, emitted: 0 };
                    let ts = resize_only.clone();
                    let stream =
                        Sa1bTarStream::with_transform(config.clone(), start, move |item, rng| {
                            train_sample(item, &ts, rng)
                        })
                        .expect("stream");
                    let n = stream.until_epoch_end().map(|r| r.expect("item")).count();
                    epoch += 1;
                    assert_eq!(n, IMAGES);
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
