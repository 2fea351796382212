//! The loader: deterministic for a seed whatever the number of workers, resumable, skipping and
//! counting bad items when asked; and the training transform on synthetic data.

use std::sync::Arc;

use rand::Rng;
use sam_data::dataset::{Dataset, Sa1bDataset, SyntheticConfig, write_synthetic_dataset};
use sam_data::loader::Batch;
use sam_data::{
    DataError, DataLoader, LoaderConfig, LoaderPosition, TrainSampleConfig, train_sample,
};

/// Items 0..n; indices in `bad` fail to read.
struct Numbers {
    n: usize,
    bad: Vec<usize>,
}

impl Dataset<usize, DataError> for Numbers {
    fn get(&self, index: usize) -> Result<usize, DataError> {
        if self.bad.contains(&index) {
            return Err(DataError::DatasetFile {
                path: format!("item_{index}.json").into(),
                reason: "broken".into(),
            });
        }
        Ok(index)
    }
    fn len(&self) -> usize {
        self.n
    }
}

/// `(index, a draw of the item's RNG)`, so that both the order and the per-item randomness
/// are compared.
fn loader(n: usize, bad: Vec<usize>, config: LoaderConfig) -> DataLoader<usize, (usize, u64)> {
    DataLoader::new(
        Arc::new(Numbers { n, bad }),
        |i, rng| Ok((i, rng.random::<u64>())),
        config,
    )
    .unwrap()
}

fn config(workers: usize) -> LoaderConfig {
    LoaderConfig {
        batch_size: 4,
        num_workers: workers,
        seed: 9,
        ..LoaderConfig::default()
    }
}

fn take(
    l: &DataLoader<usize, (usize, u64)>,
    from: LoaderPosition,
    k: usize,
) -> Vec<Batch<(usize, u64)>> {
    l.iter_from(from)
        .unwrap()
        .take(k)
        .map(|b| b.unwrap())
        .collect()
}

fn items(batches: &[Batch<(usize, u64)>]) -> Vec<(usize, u64)> {
    batches.iter().flat_map(|b| b.items.clone()).collect()
}

#[test]
fn order_and_randomness_do_not_depend_on_workers() {
    let reference = items(&take(
        &loader(23, vec![], config(0)),
        LoaderPosition::default(),
        18,
    ));
    for workers in [1, 2, 5] {
        let got = items(&take(
            &loader(23, vec![], config(workers)),
            LoaderPosition::default(),
            18,
        ));
        assert_eq!(got, reference, "{workers} workers");
    }
    // 6 batches an epoch (23 items by 4): each epoch is a permutation, and epochs differ.
    let first: Vec<usize> = reference[..23].iter().map(|x| x.0).collect();
    let second: Vec<usize> = reference[23..46].iter().map(|x| x.0).collect();
    let mut sorted = first.clone();
    sorted.sort();
    assert_eq!(sorted, (0..23).collect::<Vec<_>>());
    assert_ne!(first, second);
    assert_ne!(first, (0..23).collect::<Vec<_>>());
    // Another seed, another order.
    let other = items(&take(
        &loader(
            23,
            vec![],
            LoaderConfig {
                seed: 10,
                ..config(2)
            },
        ),
        LoaderPosition::default(),
        6,
    ));
    assert_ne!(other, reference[..23].to_vec());
}

#[test]
fn resuming_continues_exactly() {
    let l = loader(23, vec![], config(2));
    let whole = take(&l, LoaderPosition::default(), 15);
    for cut in [1, 5, 6, 7, 12] {
        let resumed = take(&l, whole[cut - 1].next, 15 - cut);
        assert_eq!(
            items(&resumed),
            items(&whole[cut..]),
            "resumed after {cut} batches"
        );
    }
    assert_eq!(whole[5].next, LoaderPosition { epoch: 1, batch: 0 });
    assert_eq!(whole[6].next, LoaderPosition { epoch: 1, batch: 1 });
    // A position past the end of an epoch is refused, not wrapped silently.
    let e = l
        .iter_from(LoaderPosition { epoch: 0, batch: 7 })
        .err()
        .unwrap();
    assert!(e.to_string().contains("batch 7"), "{e}");
}

#[test]
fn epochs_and_drop_last() {
    let l = loader(
        10,
        vec![],
        LoaderConfig {
            shuffle: false,
            ..config(1)
        },
    );
    let sizes: Vec<usize> = l
        .epoch(0)
        .unwrap()
        .map(|b| b.unwrap().items.len())
        .collect();
    assert_eq!(sizes, [4, 4, 2]);
    let first: Vec<usize> = l
        .epoch(3)
        .unwrap()
        .flat_map(|b| b.unwrap().indices)
        .collect();
    assert_eq!(first, (0..10).collect::<Vec<_>>(), "no shuffle: file order");
    let l = loader(
        10,
        vec![],
        LoaderConfig {
            drop_last: true,
            ..config(1)
        },
    );
    assert_eq!(l.batches_per_epoch(), 2);
    assert_eq!(l.epoch(0).unwrap().count(), 2);
    let empty = loader(
        3,
        vec![],
        LoaderConfig {
            drop_last: true,
            ..config(1)
        },
    );
    let e = empty.epoch(0).err().expect("an error").to_string();
    assert!(e.contains("3 items, batch size 4"), "{e}");
    assert!(
        DataLoader::new(
            Arc::new(Numbers { n: 3, bad: vec![] }),
            |i, _| Ok(i),
            LoaderConfig {
                batch_size: 0,
                ..config(0)
            }
        )
        .is_err()
    );
}

#[test]
fn bad_items_fail_or_are_skipped_and_counted() {
    for workers in [0, 3] {
        let strict = loader(
            12,
            vec![5],
            LoaderConfig {
                shuffle: false,
                ..config(workers)
            },
        );
        let results: Vec<_> = strict.epoch(0).unwrap().collect();
        assert_eq!(results[0].as_ref().unwrap().indices, [0, 1, 2, 3]);
        assert_eq!(results[2].as_ref().unwrap().indices, [8, 9, 10, 11]);
        let e = results[1].as_ref().err().unwrap();
        assert!(e.to_string().contains("item_5.json"), "{e}");

        let lenient = loader(
            12,
            vec![5, 6, 11],
            LoaderConfig {
                shuffle: false,
                skip_errors: true,
                ..config(workers)
            },
        );
        let batches: Vec<_> = lenient.epoch(0).unwrap().map(|b| b.unwrap()).collect();
        assert_eq!(batches[1].indices, [4, 7]);
        assert_eq!(
            batches[1]
                .skipped
                .iter()
                .map(|s| s.index)
                .collect::<Vec<_>>(),
            [5, 6]
        );
        assert!(batches[1].skipped[0].error.contains("item_5.json"));
        assert_eq!(batches[2].indices, [8, 9, 10]);
        assert_eq!(lenient.skipped_count(), 3);
    }
}

#[test]
fn a_panicking_transform_is_an_error_not_a_hang() {
    // On worker threads and inline (no workers) alike.
    for workers in [2, 0] {
        let l = DataLoader::new(
            Arc::new(Numbers { n: 8, bad: vec![] }),
            |i, _| if i == 3 { panic!("boom") } else { Ok(i) },
            LoaderConfig {
                shuffle: false,
                ..config(workers)
            },
        )
        .unwrap();
        let results: Vec<_> = l.epoch(0).unwrap().collect();
        assert_eq!(results.len(), 2, "{workers} workers");
        let message = results[0].as_ref().err().unwrap().to_string();
        assert!(
            message.contains("item 3") && message.contains("boom"),
            "{workers} workers: {message}"
        );
        assert_eq!(results[1].as_ref().unwrap().indices, [4, 5, 6, 7]);
    }
}

#[test]
fn training_samples_from_synthetic_data() {
    let dir = tempfile::tempdir().unwrap();
    let synth = SyntheticConfig {
        num_images: 6,
        min_side: 60,
        max_side: 120,
        seed: 1,
        ..SyntheticConfig::default()
    };
    write_synthetic_dataset(dir.path(), &synth).unwrap();
    let dataset = Arc::new(Sa1bDataset::open(dir.path()).unwrap());
    let mut augmented = TrainSampleConfig {
        image_size: 128,
        low_res_size: 32,
        ..TrainSampleConfig::default()
    };
    augmented.augment.as_mut().unwrap().target_size = 128;
    augmented.prompts.max_masks_per_image = 3;
    let plain = TrainSampleConfig {
        augment: None,
        ..augmented.clone()
    };
    for (cfg, resized) in [(augmented, false), (plain, true)] {
        let run = |workers| {
            let cfg = cfg.clone();
            let l = DataLoader::new(
                dataset.clone(),
                move |item, rng| train_sample(item, &cfg, rng),
                LoaderConfig {
                    batch_size: 2,
                    num_workers: workers,
                    seed: 4,
                    ..LoaderConfig::default()
                },
            )
            .unwrap();
            l.epoch(0)
                .unwrap()
                .flat_map(|b| b.unwrap().items)
                .collect::<Vec<_>>()
        };
        let samples = run(2);
        assert_eq!(samples, run(0), "same samples with and without workers");
        assert_eq!(samples.len(), 6);
        let mut objects = 0;
        for s in &samples {
            assert!(s.width <= 128 && s.height <= 128 && s.width.max(s.height) > 0);
            assert_eq!(s.image.len(), s.width * s.height * 3);
            if resized {
                assert_eq!(s.width.max(s.height), 128, "ResizeLongestSide");
            }
            assert!(s.objects.len() <= 3);
            for o in &s.objects {
                objects += 1;
                assert_eq!(o.gt_low_res.len(), 32 * 32);
                assert!(o.gt_low_res.iter().all(|v| (0.0..=1.0).contains(v)));
                let mass: f32 = o.gt_low_res.iter().sum::<f32>() * 16.0;
                assert!((mass - o.area as f32).abs() < 1e-2 * o.area as f32);
                let [x0, y0, x1, y1] = o.bbox;
                assert!(o.point[0] >= x0 && o.point[0] < x1 && o.point[1] >= y0 && o.point[1] < y1);
                // The point lies on the ground truth (its low-res cell has mask in it).
                let cell = (o.point[1] as usize / 4) * 32 + o.point[0] as usize / 4;
                assert!(o.gt_low_res[cell] > 0.0);
                let nb = o.noisy_box;
                assert!(nb[0] <= nb[2] && nb[1] <= nb[3]);
                assert!(nb[2] <= s.width as f64 && nb[3] <= s.height as f64);
            }
        }
        assert!(objects >= 6);
    }
}

#[test]
fn shards_of_a_batch_together_are_the_whole_batch() {
    // 23 items in batches of 4 over 3 ranks: parts of 2, 2, 0 (and 2, 1, 0 for the short one).
    let whole = take(
        &loader(23, vec![], config(2)),
        LoaderPosition::default(),
        12,
    );
    let parts: Vec<Vec<Batch<(usize, u64)>>> = (0..3)
        .map(|rank| {
            let l = loader(23, vec![], config(1)).sharded(rank, 3).unwrap();
            take(&l, LoaderPosition::default(), 12)
        })
        .collect();
    for (b, batch) in whole.iter().enumerate() {
        let joined: Vec<(usize, u64)> = parts.iter().flat_map(|p| p[b].items.clone()).collect();
        assert_eq!(joined, batch.items, "batch {b}");
        for p in &parts {
            assert_eq!(p[b].next, batch.next, "positions stay global");
        }
    }
    assert_eq!(parts[2][0].items.len(), 0);
    // Resuming a shard resumes its part.
    let l = loader(23, vec![], config(0)).sharded(1, 3).unwrap();
    let resumed = take(&l, whole[6].next, 2);
    assert_eq!(resumed[0].items, parts[1][7].items);
    for (rank, world) in [(3, 3), (0, 0)] {
        let e = loader(5, vec![], config(0))
            .sharded(rank, world)
            .err()
            .expect("an error")
            .to_string();
        assert!(
            e.contains(&format!("rank {rank} outside a world of {world}")),
            "{e}"
        );
    }
}
