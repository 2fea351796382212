//! Throughput of SA-1B read from tar shards: images per second through member reading, JPEG
//! decode and JSON/RLE parsing (`decode`), and through that plus `train_sample` without
//! augmentation, i.e. resize to 1024 and the chosen masks' RLE decoding onto the low-resolution
//! grid (`resize_only`), with 1 and 2 workers (`SAM_BENCH_WORKERS=1,2,4` to choose).
//!
//! `cargo bench -p sam-data --bench tar_loader`. The data (8 synthetic images of 1500–2250 px
//! with 100–160 shapes drawn, of which occlusion leaves ~60 masks; SA-1B's images are
//! ~1500×2250 with ~100 masks) is generated once and packed into two shards in a temporary
//! folder. For comparison, the unpacked folder is also read through `Sa1bDataset::get`.
//!
//! Before criterion's wall-clock groups, each setting is also timed in CPU seconds of the whole
//! process (Linux `/proc/self/stat`): images per CPU second is the throughput per core, and
//! holds on a machine shared with other jobs, where wall-clock figures do not.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sam_data::dataset::{
    Dataset, Sa1bDataset, Sa1bTarConfig, Sa1bTarStream, SyntheticConfig, TarPosition, list_shards,
    write_synthetic_dataset,
};
use sam_data::{TrainSampleConfig, train_sample};

const IMAGES: usize = 8;
/// Epochs of the CPU-time pass.
const EPOCHS: u64 = 8;

fn unpacked(root: &std::path::Path) -> std::path::PathBuf {
    root.join("unpacked")
}

fn make_shards(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let src = unpacked(root);
    let synth = SyntheticConfig {
        num_images: IMAGES,
        min_side: 1500,
        max_side: 2250,
        min_objects: 100,
        max_objects: 160,
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

/// User + system CPU seconds of this process, all threads (exited ones included), and its
/// minor page faults, on Linux.
fn cpu_seconds() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let faults: f64 = fields.get(7)?.parse().ok()?;
    // USER_HZ is 100 on every Linux configuration that matters here.
    Some((ticks / 100.0, faults))
}

/// Items of `results`, each of which must be `Ok`.
fn count_ok<O>(results: impl Iterator<Item = sam_data::Result<O>>) -> usize {
    results
        .map(|r| {
            r.expect("item");
            1
        })
        .sum()
}

/// Runs `epochs` epochs of `make(epoch)` and prints images per CPU second and per wall second,
/// and minor page faults per image (fresh memory for the ~10 MB images shows there).
fn per_core<I: Iterator<Item = sam_data::Result<O>>, O>(
    name: &str,
    epochs: u64,
    make: impl Fn(u64) -> I,
) {
    let (cpu0, wall0) = (cpu_seconds(), std::time::Instant::now());
    let mut n = 0;
    for epoch in 100..100 + epochs {
        n += count_ok(make(epoch));
    }
    let wall = wall0.elapsed().as_secs_f64();
    match (cpu0, cpu_seconds()) {
        (Some(a), Some(b)) => eprintln!(
            "{name}: {n} images, {:.1} images per CPU second (per core), {:.1} per wall \
             second, {:.0} page faults per image",
            n as f64 / (b.0 - a.0),
            n as f64 / wall,
            (b.1 - a.1) / n as f64
        ),
        _ => eprintln!("{name}: {:.1} images per wall second", n as f64 / wall),
    }
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
    let folder = Sa1bDataset::open(unpacked(dir.path())).expect("folder");
    per_core(
        "folder decode (Sa1bDataset::get, no worker)",
        EPOCHS,
        |_| (0..folder.len()).map(|i| folder.get(i)),
    );
    for &w in &workers {
        let config = Sa1bTarConfig {
            num_workers: w,
            shuffle_buffer: 4,
            seed: 1,
            skip_errors: false,
            ..Sa1bTarConfig::new(shards.clone())
        };
        let start = |epoch| TarPosition { epoch, emitted: 0 };
        per_core(&format!("decode, {w} workers"), EPOCHS, |e| {
            Sa1bTarStream::new(config.clone(), start(e))
                .expect("stream")
                .until_epoch_end()
        });
        per_core(&format!("resize_only, {w} workers"), EPOCHS, |e| {
            let ts = resize_only.clone();
            Sa1bTarStream::with_transform(config.clone(), start(e), move |item, rng| {
                train_sample(item, &ts, rng)
            })
            .expect("stream")
            .until_epoch_end()
        });
    }
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
                let n = count_ok(stream.until_epoch_end());
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
                    let n = count_ok(stream.until_epoch_end());
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
