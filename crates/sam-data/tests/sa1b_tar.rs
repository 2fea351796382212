//! SA-1B from tar shards: every sample once per epoch across ranks, a seeded order independent
//! of the workers, exact resume, damaged members skipped and counted, and the same items as the
//! unpacked folder. Shards are packed here from synthetic data with the `tar` crate's writer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sam_data::DataError;
use sam_data::dataset::{
    AnnotatedImage, Dataset, Sa1bDataset, Sa1bTarConfig, Sa1bTarStream, SyntheticConfig,
    TarPosition, list_shards, write_synthetic_dataset,
};

const IMAGES: u64 = 20;

fn synthetic(dir: &Path) {
    let config = SyntheticConfig {
        num_images: IMAGES as usize,
        min_side: 32,
        max_side: 64,
        max_objects: 4,
        min_object_area: 10,
        seed: 11,
        ..SyntheticConfig::default()
    };
    write_synthetic_dataset(dir, &config).unwrap();
}

/// A tar being written, with each member's body offset.
struct Packer {
    builder: tar::Builder<Vec<u8>>,
    offsets: Vec<u64>,
}

impl Packer {
    fn new() -> Self {
        let mut p = Self {
            builder: tar::Builder::new(Vec::new()),
            offsets: Vec::new(),
        };
        // SA-1B's tars open with the `./` directory.
        p.raw("./", tar::EntryType::Directory, &[]);
        p
    }

    /// A member whose name is written byte for byte (the writer's own path handling would
    /// drop the leading `./`).
    fn raw(&mut self, name: &str, kind: tar::EntryType, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        self.offsets.push(self.builder.get_ref().len() as u64 + 512);
        self.builder.append(&h, data).unwrap();
    }

    fn file(&mut self, name: &str, data: &[u8]) {
        self.raw(name, tar::EntryType::Regular, data);
    }

    fn finish(self) -> (Vec<u8>, Vec<u64>) {
        (self.builder.into_inner().unwrap(), self.offsets)
    }
}

fn read(dir: &Path, id: u64, ext: &str) -> Vec<u8> {
    std::fs::read(dir.join(format!("sa_{id}.{ext}"))).unwrap()
}

/// Packs `ids` as `./sa_<id>.jpg` + `./sa_<id>.json`, JSON first for odd ids.
fn pack_ids(src: &Path, ids: impl IntoIterator<Item = u64>) -> Packer {
    let mut p = Packer::new();
    for id in ids {
        let (jpg, json) = (read(src, id, "jpg"), read(src, id, "json"));
        if id % 2 == 1 {
            p.file(&format!("./sa_{id}.json"), &json);
            p.file(&format!("./sa_{id}.jpg"), &jpg);
        } else {
            p.file(&format!("./sa_{id}.jpg"), &jpg);
            p.file(&format!("./sa_{id}.json"), &json);
        }
    }
    p
}

/// Four shards of 5, 6, 4 and 5 images, one with a README member to ignore.
fn good_shards(root: &Path) -> (PathBuf, Vec<PathBuf>) {
    let src = root.join("unpacked");
    synthetic(&src);
    let out = root.join("shards");
    std::fs::create_dir_all(&out).unwrap();
    let ranges = [1..6, 6..12, 12..16, 16..21];
    for (k, ids) in ranges.into_iter().enumerate() {
        let mut p = pack_ids(&src, ids);
        if k == 1 {
            p.file("./README.txt", b"not a sample");
        }
        std::fs::write(out.join(format!("sa_{k:06}.tar")), p.finish().0).unwrap();
    }
    (src, list_shards(&out).unwrap())
}

fn config(shards: &[PathBuf], workers: usize) -> Sa1bTarConfig {
    Sa1bTarConfig {
        seed: 3,
        shuffle_buffer: 6,
        num_workers: workers,
        prefetch: 2,
        ..Sa1bTarConfig::new(shards.to_vec())
    }
}

fn ids(stream: impl Iterator<Item = sam_data::Result<AnnotatedImage>>) -> Vec<u64> {
    stream.map(|r| r.unwrap().image_id).collect()
}

fn epoch_ids(config: &Sa1bTarConfig, epoch: u64) -> Vec<u64> {
    let stream = Sa1bTarStream::new(config.clone(), TarPosition { epoch, emitted: 0 }).unwrap();
    ids(stream.until_epoch_end())
}

#[test]
fn every_image_once_per_epoch_across_ranks() {
    let root = tempfile::tempdir().unwrap();
    let (_, shards) = good_shards(root.path());
    for world_size in 1..=3 {
        for epoch in 0..2 {
            let mut all = Vec::new();
            for rank in 0..world_size {
                let c = Sa1bTarConfig {
                    rank,
                    world_size,
                    ..config(&shards, 1)
                };
                let got = epoch_ids(&c, epoch);
                assert!(!got.is_empty(), "rank {rank}/{world_size}");
                all.extend(got);
            }
            all.sort_unstable();
            assert_eq!(all, (1..=IMAGES).collect::<Vec<_>>(), "world {world_size}");
        }
    }
    let too_many = Sa1bTarConfig {
        world_size: 5,
        ..config(&shards, 1)
    };
    let e = Sa1bTarStream::new(too_many, TarPosition::default())
        .err()
        .unwrap();
    assert!(
        e.to_string().contains("4 shards cannot feed 5 ranks"),
        "{e}"
    );
}

#[test]
fn order_is_fixed_by_the_seed_whatever_the_workers() {
    let root = tempfile::tempdir().unwrap();
    let (_, shards) = good_shards(root.path());
    let reference = epoch_ids(&config(&shards, 0), 0);
    for workers in [1, 2, 4] {
        assert_eq!(epoch_ids(&config(&shards, workers), 0), reference);
    }
    assert_ne!(epoch_ids(&config(&shards, 2), 1), reference);
    let other_seed = Sa1bTarConfig {
        seed: 4,
        ..config(&shards, 2)
    };
    assert_ne!(epoch_ids(&other_seed, 0), reference);
    // No shuffling at all: shards in name order, members in archive order.
    let in_order = Sa1bTarConfig {
        shuffle_shards: false,
        shuffle_buffer: 0,
        ..config(&shards, 2)
    };
    assert_eq!(epoch_ids(&in_order, 0), (1..=IMAGES).collect::<Vec<_>>());
}

/// The first `n` results of an endless stream from `position`, as ids or error texts.
fn take(config: &Sa1bTarConfig, position: TarPosition, n: usize) -> (Vec<String>, TarPosition) {
    let mut s = Sa1bTarStream::new(config.clone(), position).unwrap();
    let out = s
        .by_ref()
        .take(n)
        .map(|r| match r {
            Ok(item) => item.image_id.to_string(),
            Err(e) => format!("error: {e}"),
        })
        .collect();
    (out, s.position())
}

fn check_resume(config: &Sa1bTarConfig, total: usize, cuts: &[usize]) {
    let (full, _) = take(config, TarPosition::default(), total);
    assert_eq!(full.len(), total);
    for &k in cuts {
        let (head, position) = take(config, TarPosition::default(), k);
        // Through a checkpoint file's text, as a trainer would save it.
        let saved = serde_json::to_string(&position).unwrap();
        let position: TarPosition = serde_json::from_str(&saved).unwrap();
        let (tail, _) = take(config, position, total - k);
        let joined: Vec<String> = head.into_iter().chain(tail).collect();
        assert_eq!(joined, full, "cut at {k} ({position:?})");
    }
}

#[test]
fn resume_continues_exactly_across_epochs_and_ranks() {
    let root = tempfile::tempdir().unwrap();
    let (_, shards) = good_shards(root.path());
    check_resume(
        &config(&shards, 2),
        47,
        &[0, 1, 5, 13, 19, 20, 21, 39, 40, 46],
    );
    let rank1 = Sa1bTarConfig {
        rank: 1,
        world_size: 2,
        ..config(&shards, 0)
    };
    check_resume(&rank1, 25, &[3, 9, 10, 11, 17]);
    // The position after an epoch's last sample is the next epoch's start.
    let (_, p) = take(&config(&shards, 1), TarPosition::default(), IMAGES as usize);
    assert_eq!(
        p,
        TarPosition {
            epoch: 1,
            emitted: 0
        }
    );
    let past = TarPosition {
        epoch: 0,
        emitted: IMAGES + 1,
    };
    let e = Sa1bTarStream::new(config(&shards, 1), past).err().unwrap();
    assert!(e.to_string().contains("cannot resume at sample 21"), "{e}");
}

#[test]
fn items_equal_the_unpacked_folder_s() {
    let root = tempfile::tempdir().unwrap();
    let (src, shards) = good_shards(root.path());
    let folder = Sa1bDataset::open(&src).unwrap();
    let by_id: BTreeMap<u64, AnnotatedImage> = (0..folder.len())
        .map(|i| {
            let item = folder.get(i).unwrap();
            (item.image_id, item)
        })
        .collect();
    let mut stream = Sa1bTarStream::new(config(&shards, 2), TarPosition::default())
        .unwrap()
        .until_epoch_end();
    let mut seen = 0;
    for item in stream.by_ref() {
        let item = item.unwrap();
        let want = &by_id[&item.image_id];
        assert_eq!(item.image, want.image, "image {}", item.image_id);
        assert_eq!(
            item.annotations, want.annotations,
            "image {}",
            item.image_id
        );
        assert!(!item.annotations.is_empty());
        // The path names the shard and the member.
        let path = item.path.to_string_lossy().into_owned();
        assert!(
            path.contains(".tar/sa_") && path.ends_with(&format!("sa_{}.jpg", item.image_id)),
            "{path}"
        );
        seen += 1;
    }
    assert_eq!(seen, IMAGES);
    assert_eq!(stream.skipped_count(), 0);
    // The `./` directory of each shard and the README.
    assert_eq!(stream.ignored_members(), 5);
}

#[test]
fn long_names_pax_and_ustar_prefixes_are_read() {
    let root = tempfile::tempdir().unwrap();
    let src = root.path().join("unpacked");
    synthetic(&src);
    let mut b = tar::Builder::new(Vec::new());
    let long_dir = "d".repeat(120);
    // GNU long names (the writer emits an `L` entry for a path past 100 bytes).
    for ext in ["jpg", "json"] {
        let mut h = tar::Header::new_gnu();
        h.set_size(read(&src, 1, ext).len() as u64);
        h.set_mode(0o644);
        b.append_data(
            &mut h,
            format!("{long_dir}/sa_1.{ext}"),
            &read(&src, 1, ext)[..],
        )
        .unwrap();
    }
    // ustar: the writer splits a long path into prefix and name.
    for ext in ["json", "jpg"] {
        let mut h = tar::Header::new_ustar();
        h.set_path(format!("{long_dir}/sa_2.{ext}")).unwrap();
        h.set_size(read(&src, 2, ext).len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, &read(&src, 2, ext)[..]).unwrap();
    }
    // pax: a `path` record overrides the header's name.
    for ext in ["jpg", "json"] {
        let record = format!("path=pax/sa_3.{ext}\n");
        let len = record.len() + 3;
        let body = format!("{len} {record}");
        assert_eq!(body.len(), len);
        let mut x = tar::Header::new_ustar();
        x.set_path("PaxHeader").unwrap();
        x.set_entry_type(tar::EntryType::XHeader);
        x.set_size(body.len() as u64);
        x.set_cksum();
        b.append(&x, body.as_bytes()).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_path("truncated_name").unwrap();
        h.set_size(read(&src, 3, ext).len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, &read(&src, 3, ext)[..]).unwrap();
    }
    let shard = root.path().join("sa_000000.tar");
    std::fs::write(&shard, b.into_inner().unwrap()).unwrap();
    let c = Sa1bTarConfig {
        shuffle_buffer: 0,
        ..config(&[shard], 1)
    };
    let mut stream = Sa1bTarStream::new(c, TarPosition::default())
        .unwrap()
        .until_epoch_end();
    let items: Vec<AnnotatedImage> = stream.by_ref().map(|r| r.unwrap()).collect();
    assert_eq!(
        items.iter().map(|i| i.image_id).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(items[0].path.ends_with(format!("{long_dir}/sa_1.jpg")));
    assert!(items[2].path.ends_with("pax/sa_3.jpg"));
    assert_eq!(stream.skipped_count(), 0);
}

/// Shards with one kind of damage each, and the ids that must still come out.
fn damaged_shards(root: &Path) -> (Vec<PathBuf>, Vec<u64>, Vec<&'static str>) {
    let src = root.join("unpacked");
    synthetic(&src);
    let out = root.join("shards");
    std::fs::create_dir_all(&out).unwrap();
    let mut expected: Vec<u64> = Vec::new();
    // Shard 0: ids 1–4, 2's JPEG corrupt, 3's JSON malformed.
    let mut p = Packer::new();
    for id in 1..=4 {
        let mut jpg = read(&src, id, "jpg");
        let mut json = read(&src, id, "json");
        if id == 2 {
            let n = jpg.len();
            jpg[n / 3..n / 3 + 40].fill(0xFF);
            jpg.truncate(n / 2);
        }
        if id == 3 {
            json.truncate(json.len() / 2);
        }
        p.file(&format!("./sa_{id}.jpg"), &jpg);
        p.file(&format!("./sa_{id}.json"), &json);
    }
    expected.extend([1, 4]);
    std::fs::write(out.join("sa_000000.tar"), p.finish().0).unwrap();
    // Shard 1: 5 good, a lone jpg (6), a lone json (7), 8 good.
    let mut p = Packer::new();
    for (id, exts) in [
        (5, &["jpg", "json"][..]),
        (6, &["jpg"][..]),
        (7, &["json"][..]),
        (8, &["json", "jpg"][..]),
    ] {
        for ext in exts {
            p.file(&format!("./sa_{id}.{ext}"), &read(&src, id, ext));
        }
    }
    expected.extend([5, 8]);
    std::fs::write(out.join("sa_000001.tar"), p.finish().0).unwrap();
    // Shard 2: ids 9–14, cut in the middle of 11's JPEG body, its second member (the JSON
    // before it is lost with it, as one damaged sample), so 12–14 are never seen.
    let (bytes, offsets) = pack_ids(&src, 9..=14).finish();
    // Members: `./`, then 9 json, 9 jpg, 10 jpg, 10 json, 11 json, 11 jpg, ...
    let cut = offsets[6] as usize + 100;
    std::fs::write(out.join("sa_000002.tar"), &bytes[..cut]).unwrap();
    expected.extend([9, 10]);
    // Shard 3: good, 15–18, then cut inside the end-of-archive blocks.
    let (bytes, _) = pack_ids(&src, 15..=18).finish();
    std::fs::write(out.join("sa_000003.tar"), &bytes[..bytes.len() - 1000]).unwrap();
    expected.extend(15..=18);
    // Shard 4: not a tar at all (its checksum fails): one damaged unit, nothing read.
    std::fs::write(out.join("sa_000004.tar"), vec![b'x'; 2048]).unwrap();
    expected.sort_unstable();
    let errors = vec![
        "sa_2.jpg",
        "sa_3.json",
        "sa_6.jpg",
        "sa_7.json",
        "sa_11.jpg",
        "end of shard",
        "corrupt header",
    ];
    (list_shards(&out).unwrap(), expected, errors)
}

#[test]
fn damaged_members_are_skipped_counted_and_named() {
    let root = tempfile::tempdir().unwrap();
    let (shards, expected, errors) = damaged_shards(root.path());
    let mut stream = Sa1bTarStream::new(config(&shards, 2), TarPosition::default())
        .unwrap()
        .until_epoch_end();
    let mut got = ids(stream.by_ref());
    got.sort_unstable();
    assert_eq!(got, expected);
    assert_eq!(stream.skipped_count(), errors.len() as u64);
    let texts: Vec<&str> = stream.skipped().iter().map(|s| s.error.as_str()).collect();
    for name in &errors {
        assert_eq!(
            texts.iter().filter(|t| t.contains(name)).count(),
            1,
            "{name} in {texts:#?}"
        );
    }
    let lone = texts.iter().find(|t| t.contains("sa_6.jpg")).unwrap();
    assert!(lone.contains("no sa_6.json"), "{lone}");
    let cut = texts.iter().find(|t| t.contains("sa_11.jpg")).unwrap();
    assert!(
        cut.contains("truncated") && cut.contains("sa_11.json"),
        "{cut}"
    );

    // Without skipping, the same samples are `Err`s in their place and the stream goes on.
    let c = Sa1bTarConfig {
        skip_errors: false,
        ..config(&shards, 2)
    };
    let stream = Sa1bTarStream::new(c, TarPosition::default())
        .unwrap()
        .until_epoch_end();
    let results: Vec<_> = stream.collect();
    let failed: Vec<&DataError> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(failed.len(), errors.len());
    assert_eq!(results.len(), expected.len() + errors.len());
    let bad_jpeg = |e: &&&DataError| match e {
        DataError::ImageRead { path, .. } => path.ends_with("sa_000000.tar/sa_2.jpg"),
        _ => false,
    };
    assert_eq!(failed.iter().filter(bad_jpeg).count(), 1);
}

#[test]
fn resume_is_exact_with_damaged_members() {
    let root = tempfile::tempdir().unwrap();
    let (shards, expected, errors) = damaged_shards(root.path());
    let c = Sa1bTarConfig {
        skip_errors: false,
        ..config(&shards, 3)
    };
    let per_epoch = expected.len() + errors.len();
    check_resume(
        &c,
        per_epoch + 4,
        &[1, 4, 7, per_epoch - 1, per_epoch, per_epoch + 2],
    );
}

#[test]
fn an_epoch_without_any_readable_sample_ends_the_stream() {
    let root = tempfile::tempdir().unwrap();
    let shard = root.path().join("sa_000000.tar");
    std::fs::write(&shard, vec![b'x'; 2048]).unwrap();
    let mut stream = Sa1bTarStream::new(config(&[shard], 2), TarPosition::default()).unwrap();
    let e = stream.next().unwrap().err().unwrap();
    assert!(
        e.to_string().contains("no sample of epoch 0 could be read"),
        "{e}"
    );
    assert!(stream.next().is_none());
    assert_eq!(stream.skipped_count(), 1);
}

#[test]
fn resuming_decodes_nothing_it_skips() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let root = tempfile::tempdir().unwrap();
    let (_, shards) = good_shards(root.path());
    let decoded = Arc::new(AtomicUsize::new(0));
    let counter = decoded.clone();
    let position = TarPosition {
        epoch: 0,
        emitted: 15,
    };
    let mut stream = Sa1bTarStream::with_transform(config(&shards, 0), position, move |item, _| {
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(item.image_id)
    })
    .unwrap();
    let first = stream.next().unwrap().unwrap();
    assert_eq!(decoded.load(Ordering::Relaxed), 1);
    let (full, _) = take(&config(&shards, 0), TarPosition::default(), 16);
    assert_eq!(first.to_string(), full[15]);
}

#[test]
fn transform_randomness_follows_the_sample_not_the_thread_or_the_resume() {
    use rand::Rng;
    let root = tempfile::tempdir().unwrap();
    let (_, shards) = good_shards(root.path());
    let run = |workers: usize, position: TarPosition, n: usize| -> Vec<(u64, u64)> {
        Sa1bTarStream::with_transform(config(&shards, workers), position, |item, rng| {
            Ok((item.image_id, rng.random::<u64>()))
        })
        .unwrap()
        .take(n)
        .map(|r| r.unwrap())
        .collect()
    };
    let full = run(0, TarPosition::default(), 30);
    assert_eq!(run(3, TarPosition::default(), 30), full);
    let resumed = run(
        2,
        TarPosition {
            epoch: 0,
            emitted: 7,
        },
        23,
    );
    assert_eq!(resumed, full[7..]);
    // Every draw differs, also between an image's visits in epochs 0 and 1 (30 > 20 images).
    let draws: std::collections::HashSet<u64> = full.iter().map(|&(_, r)| r).collect();
    assert_eq!(draws.len(), 30);
}

#[test]
fn any_truncation_or_corrupt_byte_is_a_counted_fault_never_a_panic() {
    let root = tempfile::tempdir().unwrap();
    let src = root.path().join("unpacked");
    synthetic(&src);
    let (bytes, _) = pack_ids(&src, 1..=3).finish();
    let shard = root.path().join("sa_000000.tar");
    let read_all = |data: &[u8]| {
        std::fs::write(&shard, data).unwrap();
        let c = Sa1bTarConfig {
            shuffle_buffer: 0,
            ..config(std::slice::from_ref(&shard), 0)
        };
        let mut stream = Sa1bTarStream::new(c, TarPosition::default())
            .unwrap()
            .until_epoch_end();
        let got: Vec<u64> = stream
            .by_ref()
            .filter_map(|r| r.ok())
            .map(|i| i.image_id)
            .collect();
        (got, stream.skipped_count())
    };
    assert_eq!(read_all(&bytes), (vec![1, 2, 3], 0));
    for cut in (0..bytes.len()).step_by(211) {
        let (got, skipped) = read_all(&bytes[..cut]);
        // One fault per cut, whether it hits a header, a body or the first end-of-archive
        // block; one zero block suffices to end the archive, so cutting the second is no fault.
        let faults = if cut >= bytes.len() - 512 { 0 } else { 1 };
        assert_eq!(skipped, faults, "cut at {cut}: {got:?}");
        assert_eq!(
            got,
            (1..=got.len() as u64).collect::<Vec<_>>(),
            "cut at {cut}"
        );
    }
    // A corrupt byte: in a header, its checksum fails and the rest of the shard is skipped;
    // in a body, the sample fails to decode (or, in JPEG data, decodes to other pixels).
    for at in (0..bytes.len()).step_by(113) {
        let mut data = bytes.clone();
        data[at] ^= 0x5A;
        let (got, skipped) = read_all(&data);
        assert!(got.len() + skipped as usize >= 1, "byte {at}");
        assert!(got.windows(2).all(|w| w[0] < w[1]), "byte {at}: {got:?}");
    }
}

#[test]
fn packed_folders_stream_back_the_same_items() {
    let root = tempfile::tempdir().unwrap();
    let src = root.path().join("src");
    synthetic(&src);
    let shards = sam_data::dataset::pack_tar_shards(&src, &root.path().join("tars"), 3).unwrap();
    assert_eq!(shards.len(), 3);
    assert_eq!(list_shards(root.path().join("tars")).unwrap(), shards);
    let folder = Sa1bDataset::open(&src).unwrap();
    let by_id: BTreeMap<u64, AnnotatedImage> = (0..folder.len())
        .map(|i| {
            let item = folder.get(i).unwrap();
            (item.image_id, item)
        })
        .collect();
    let mut seen = 0;
    for item in Sa1bTarStream::new(config(&shards, 1), TarPosition::default())
        .unwrap()
        .until_epoch_end()
    {
        let item = item.unwrap();
        let want = &by_id[&item.image_id];
        assert_eq!(
            (&item.image, &item.annotations),
            (&want.image, &want.annotations)
        );
        seen += 1;
    }
    assert_eq!(seen, IMAGES);
    // Zero-padded names (converted datasets) keep their own JSON partner.
    let padded = root.path().join("padded");
    std::fs::create_dir_all(&padded).unwrap();
    let first = std::fs::read_dir(&src)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".jpg"))
        .min()
        .unwrap();
    let stem = first.trim_end_matches(".jpg");
    let id = stem.trim_start_matches("sa_");
    for ext in ["jpg", "json"] {
        std::fs::copy(
            src.join(format!("{stem}.{ext}")),
            padded.join(format!("sa_000{id}.{ext}")),
        )
        .unwrap();
    }
    let one = sam_data::dataset::pack_tar_shards(&padded, &root.path().join("ptar"), 1).unwrap();
    let items: Vec<_> = Sa1bTarStream::new(config(&one, 1), TarPosition::default())
        .unwrap()
        .until_epoch_end()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(items.len(), 1);
    // More shards than samples, and a missing folder, are named errors.
    let e = sam_data::dataset::pack_tar_shards(&src, &root.path().join("x"), 99)
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot fill 99 shards"), "{e}");
    let e = sam_data::dataset::pack_tar_shards(&root.path().join("none"), root.path(), 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("none"), "{e}");
}
