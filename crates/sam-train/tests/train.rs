//! The training loop on the synthetic shapes: the loss falls, a resumed run repeats the
//! uninterrupted one exactly, checkpoints survive interrupted writes, non-finite losses are
//! skipped and counted, and bad configs are typed errors.

use std::path::Path;
use std::sync::Arc;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Device, Tensor};
use sam_data::dataset::{Sa1bDataset, SyntheticConfig, write_synthetic_dataset};
use sam_model::SamConfig;
use sam_optim::{BatchConfig, Decay, ScheduleConfig};
use sam_train::{EvalConfig, TrainConfig, TrainError, Trainer, evaluate};

/// Fresh models draw from the device's shared RNG: tests that build one run one at a time, so
/// that a seed gives the same weights.
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|e| e.into_inner())
}

fn tiny_config() -> TrainConfig {
    let mut c = TrainConfig::demo();
    c.model = SamConfig {
        image_size: 64,
        patch_size: 16,
        encoder_embed_dim: 32,
        encoder_depth: 2,
        encoder_num_heads: 2,
        encoder_mlp_ratio: 2.0,
        window_size: 2,
        encoder_global_attn_indexes: vec![1],
        prompt_embed_dim: 32,
        mask_in_chans: 4,
        decoder_depth: 1,
        decoder_mlp_dim: 64,
        decoder_num_heads: 2,
        num_multimask_outputs: 3,
        iou_head_depth: 2,
        iou_head_hidden_dim: 32,
        prompt_embedding_dim: None,
    };
    c.data.image_size = 64;
    c.data.low_res_size = 16;
    c.data.augment.as_mut().unwrap().target_size = 64;
    c.data.prompts.max_masks_per_image = 4;
    c.interactive.point_rounds = 2;
    c.interactive.mask_only_rounds = 1;
    c.optim.batch = BatchConfig {
        global_batch_size: 4,
        micro_batch_size: 2,
        num_devices: 1,
    };
    c.loader.batch_size = 2;
    c.loader.num_workers = 1;
    c.optim.schedule = ScheduleConfig {
        peak_lr: 2e-3,
        warmup_steps: 2,
        total_steps: 40,
        decay: Decay::Cosine { min_lr: 1e-4 },
        ..ScheduleConfig::default()
    };
    c.steps = 40;
    c.checkpoint_every = 0;
    c.eval_every = 0;
    c
}

fn dataset(dir: &Path, n: usize) -> Arc<Sa1bDataset> {
    let synth = SyntheticConfig {
        num_images: n,
        min_side: 48,
        max_side: 80,
        max_objects: 4,
        seed: 2,
        ..SyntheticConfig::default()
    };
    write_synthetic_dataset(dir, &synth).unwrap();
    Arc::new(Sa1bDataset::open(dir).unwrap())
}

#[test]
fn loss_falls_on_synthetic_shapes() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let train = dataset(data.path(), 8);
    let mut trainer = Trainer::new(
        tiny_config(),
        train.clone(),
        out.path(),
        &Device::flex(),
        None,
    )
    .unwrap();
    let val_config = EvalConfig {
        clicks: 2,
        max_images: Some(4),
        ..EvalConfig::default()
    };
    trainer = trainer.with_validation(train.clone(), val_config.clone());
    let mut steps = Vec::new();
    let mut reports = Vec::new();
    let last = trainer
        .run(|m, r| {
            steps.push(m.clone());
            reports.push(r.cloned());
        })
        .unwrap();
    assert_eq!(steps.len(), 40);
    // Validation (eval_every 0: at the end only) ran on the final model, and its 1-click mIoU
    // is in the last step's metrics.
    assert!(reports[..39].iter().all(|r| r.is_none()));
    let val = reports[39].clone().expect("validation at the end");
    assert_eq!(val.images, 4);
    assert_eq!(val.miou_clicks.len(), 2);
    assert_eq!(steps[39].val_miou_1click, Some(val.miou_clicks[0]));
    let final_model = sam_model::Sam::load(
        last.join("model.bpk"),
        &tiny_config().model,
        &Device::flex(),
    )
    .unwrap();
    let again = evaluate(&final_model, train, &val_config).unwrap();
    assert_eq!(again.miou_clicks, val.miou_clicks);
    let mean =
        |s: &[sam_train::StepMetrics]| s.iter().map(|m| m.loss).sum::<f64>() / s.len() as f64;
    let (first, end) = (mean(&steps[..8]), mean(&steps[32..]));
    assert!(
        end < 0.8 * first,
        "loss should fall: first steps {first:.4}, last steps {end:.4}"
    );
    assert!(
        steps
            .iter()
            .all(|m| m.loss.is_finite() && !m.skipped_nonfinite)
    );
    assert!(steps.iter().all(|m| m.images == 4 && m.objects > 0));
    // The run folder: metrics in both forms, the curves, a loadable checkpoint.
    let csv = std::fs::read_to_string(out.path().join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 41);
    assert!(
        csv.lines()
            .next_back()
            .unwrap()
            .split(',')
            .next_back()
            .unwrap()
            .parse::<f64>()
            .is_ok()
    );
    assert!(out.path().join("curves.png").is_file());
    let model = sam_model::Sam::load(
        last.join("model.bpk"),
        &tiny_config().model,
        &Device::flex(),
    )
    .unwrap();
    let report = evaluate(
        &model,
        dataset(tempfile::tempdir().unwrap().path(), 2),
        &EvalConfig {
            clicks: 3,
            ..EvalConfig::default()
        },
    )
    .unwrap();
    assert_eq!(report.miou_clicks.len(), 3);
    assert!(report.objects > 0 && report.miou_box.is_some());
    assert!(report.miou_clicks.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn resumed_run_repeats_the_uninterrupted_one() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    let train = dataset(data.path(), 6);
    let mut config = tiny_config();
    config.steps = 6;
    config.checkpoint_every = 3;
    // Drop path draws random masks: the resumed run must draw the same ones.
    config.drop_path = 0.3;
    let device = Device::flex();

    let whole = tempfile::tempdir().unwrap();
    let mut a = Trainer::new(config.clone(), train.clone(), whole.path(), &device, None).unwrap();
    let end_a = a.run(|_, _| {}).unwrap();

    let cut = tempfile::tempdir().unwrap();
    let mut first = config.clone();
    first.steps = 3;
    // The first half's own end-of-run checkpoint is at step 3, as the whole run's periodic one.
    let mut b = Trainer::new(first, train.clone(), cut.path(), &device, None).unwrap();
    b.run(|_, _| {}).unwrap();
    drop(b);
    // Resume with the full length: the stored config says 3 steps, so extend it as
    // `train --resume --steps 6` does.
    let mut c = Trainer::resume(train, cut.path(), &device).unwrap();
    assert_eq!(c.step_count(), 3);
    let e = c.set_steps(0).expect_err("an error").to_string();
    assert!(e.contains("steps"), "{e}");
    c.set_steps(6).unwrap();
    let end_c = c.run(|_, _| {}).unwrap();

    let rows = |dir: &Path| {
        std::fs::read_to_string(dir.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("seconds");
                v
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(rows(whole.path()), rows(cut.path()), "same loss curve");
    let weights = |dir: &Path| {
        params(&sam_model::Sam::load(dir.join("model.bpk"), &config.model, &device).unwrap())
    };
    assert_eq!(weights(&end_a), weights(&end_c), "bit-identical weights");
}

#[test]
fn two_devices_give_the_single_device_update() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    let train = dataset(data.path(), 8);
    let device = Device::flex();
    // One loader batch of 4 images per step: on one device, or 2 + 2 on two.
    let run = |devices: usize| {
        let mut c = tiny_config();
        c.steps = 3;
        c.optim.batch = BatchConfig {
            global_batch_size: 4,
            micro_batch_size: 4 / devices,
            num_devices: devices,
        };
        c.loader.batch_size = 4;
        let out = tempfile::tempdir().unwrap();
        let mut t = Trainer::new(c, train.clone(), out.path(), &device, None).unwrap();
        if devices > 1 {
            let others = vec![Device::flex(); devices - 1];
            t = t.data_parallel(&others).unwrap();
        }
        let mut losses = Vec::new();
        for _ in 0..3 {
            losses.push(t.train_step().unwrap().loss);
        }
        (losses, params(t.model().unwrap()))
    };
    let (loss_one, one) = run(1);
    let (loss_two, two) = run(2);
    for (a, b) in loss_one.iter().zip(&loss_two) {
        assert!(
            (a - b).abs() <= 1e-5 * a.abs(),
            "losses {loss_one:?} vs {loss_two:?}"
        );
    }
    // The gradients are the same sums in another order. AdamW divides each gradient by its own
    // running RMS, so a parameter whose gradient is at round-off level can move by a fraction
    // of the lr either way: the bound is a small fraction of one step's lr (2e-3 peak).
    let worst = one
        .iter()
        .zip(&two)
        .flat_map(|(a, b)| a.iter().zip(b))
        .fold(0f32, |m, (x, y)| nan_max(m, (x - y).abs()));
    eprintln!(
        "two devices vs one: losses {loss_two:?} / {loss_one:?}, params max |diff| {worst:e}"
    );
    assert!(worst <= 2e-4, "parameters differ by {worst:e}");

    // The config and the devices given must agree.
    let mut c = tiny_config();
    c.optim.batch.num_devices = 2;
    c.optim.batch.micro_batch_size = 1;
    let out = tempfile::tempdir().unwrap();
    let t = Trainer::new(c.clone(), train.clone(), out.path(), &device, None).unwrap();
    let e = t.data_parallel(&[]).err().expect("an error").to_string();
    assert!(e.contains("num_devices"), "{e}");
    let mut t = Trainer::new(c, train, out.path(), &device, None).unwrap();
    let e = t.train_step().err().unwrap().to_string();
    assert!(e.contains("data_parallel"), "{e}");
}

#[test]
fn lora_fine_tuning_trains_only_the_adapters() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    let train = dataset(data.path(), 6);
    let device = Device::flex();
    let mut c = tiny_config();
    c.steps = 4;
    c.checkpoint_every = 2;
    c.lora = Some(sam_model::LoraConfig {
        rank: 2,
        alpha: 2.0,
        ..sam_model::LoraConfig::default()
    });
    let base_dir = tempfile::tempdir().unwrap();
    // The base: a fresh model saved as a checkpoint, then fine-tuned from that file.
    let base_path = {
        let t = Trainer::new(tiny_config(), train.clone(), base_dir.path(), &device, None).unwrap();
        let p = base_dir.path().join("base.bpk");
        t.model().unwrap().save(&p).unwrap();
        p
    };
    let base = params(&sam_model::Sam::load(&base_path, &c.model, &device).unwrap());
    let out = tempfile::tempdir().unwrap();
    let mut t = Trainer::new(
        c.clone(),
        train.clone(),
        out.path(),
        &device,
        Some(&base_path),
    )
    .unwrap();
    t.run(|_, _| {}).unwrap();
    let sam = t.model().unwrap();
    let (adapters, total) = sam.lora_parameter_counts();
    assert!(
        adapters > 0 && adapters * 10 < total,
        "{adapters} of {total}"
    );
    let tuned = out.path().join("adapters.safetensors");
    sam.save_lora(&tuned).unwrap();
    // Merging works on the training device too.
    sam_model::Sam::clone(sam).merge_lora();
    // The base with the saved adapters is the trained model: nothing but the adapters moved.
    let mut stripped = sam_model::Sam::load(&base_path, &c.model, &device).unwrap();
    stripped.load_lora(&tuned).unwrap();
    assert_eq!(
        params(&sam_model::Sam::load(&base_path, &c.model, &device).unwrap()),
        base
    );
    let trained_adapters: Vec<Vec<f32>> = params(sam)
        .into_iter()
        .filter(|p| !base.contains(p))
        .collect();
    assert!(!trained_adapters.is_empty(), "the adapters moved");
    assert_eq!(
        params(&stripped),
        params(sam),
        "base + saved adapters = the trained model"
    );
    // A LoRA run resumes from its checkpoints (adapters included).
    drop(t);
    let t = Trainer::resume(train, out.path(), &device).unwrap();
    assert_eq!(t.step_count(), 4);
    assert_eq!(params(t.model().unwrap()), params(&stripped));
}

/// Every float parameter's values, in module order.
fn params<M: Module>(module: &M) -> Vec<Vec<f32>> {
    let mut values = Vec::new();
    module.visit(&mut Collect(&mut values));
    values
}

struct Collect<'a>(&'a mut Vec<Vec<f32>>);

impl burn::module::ModuleVisitor for Collect<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push(sam_model::f32_values(param.val()));
    }
}

struct Poison;

impl ModuleMapper for Poison {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|t| t.mul_scalar(f32::NAN))
    }
}

#[test]
fn non_finite_losses_are_skipped_then_stop_the_run() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let train = dataset(data.path(), 4);
    let mut config = tiny_config();
    config.max_nonfinite_steps = 2;
    let device = Device::flex();
    let poisoned = config.model.init(&device).unwrap().map(&mut Poison);
    let weights = poisoned.save(out.path().join("nan")).unwrap();
    let mut t = Trainer::new(config, train, out.path(), &device, Some(&weights)).unwrap();
    for _ in 0..2 {
        let m = t.train_step().unwrap();
        assert!(m.skipped_nonfinite);
    }
    let e = t.train_step().err().unwrap();
    assert!(
        matches!(
            e,
            TrainError::NonFinite {
                count: 3,
                limit: 2,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn an_interrupted_checkpoint_leaves_the_last_complete_one() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let train = dataset(data.path(), 4);
    let mut config = tiny_config();
    config.steps = 2;
    let device = Device::flex();
    let mut t = Trainer::new(config, train.clone(), out.path(), &device, None).unwrap();
    t.run(|_, _| {}).unwrap();
    // A write killed half-way leaves only a temporary folder behind.
    let ckpts = out.path().join("checkpoints");
    std::fs::create_dir_all(ckpts.join(".step_00000004.tmp")).unwrap();
    std::fs::write(ckpts.join(".step_00000004.tmp/model.bpk"), b"half").unwrap();
    let t = Trainer::resume(train.clone(), out.path(), &device).unwrap();
    assert_eq!(t.step_count(), 2);
    // Re-saving step 2 (a finished run resumed) moves the old one aside first; killed before
    // the new one took its place, the old one is still found.
    drop(t);
    std::fs::rename(
        ckpts.join("step_00000002"),
        ckpts.join(".step_00000002.old"),
    )
    .unwrap();
    let mut t = Trainer::resume(train.clone(), out.path(), &device).unwrap();
    assert_eq!(t.step_count(), 2);
    let saved = t.save_checkpoint().unwrap();
    assert!(saved.ends_with("step_00000002") && saved.is_dir());
    assert!(!ckpts.join(".step_00000002.old").exists());
    drop(t);
    // A pointer to nothing is an error naming the file.
    std::fs::write(ckpts.join("latest"), "step_00000009").unwrap();
    let e = Trainer::resume(train.clone(), out.path(), &device)
        .err()
        .unwrap();
    assert!(e.to_string().contains("latest"), "{e}");
    let empty = tempfile::tempdir().unwrap();
    let e = Trainer::resume(train, empty.path(), &device).err().unwrap();
    assert!(e.to_string().contains("no checkpoint"), "{e}");
}

#[test]
fn bad_configs_name_the_field() {
    let mut c = tiny_config();
    c.loader.batch_size = 3;
    assert!(
        c.validate()
            .unwrap_err()
            .to_string()
            .contains("loader.batch_size")
    );
    let mut c = tiny_config();
    c.data.low_res_size = 32;
    assert!(
        c.validate()
            .unwrap_err()
            .to_string()
            .contains("data.low_res_size")
    );
    let mut c = tiny_config();
    c.interactive.box_probability = 1.5;
    assert!(
        c.validate()
            .unwrap_err()
            .to_string()
            .contains("box_probability")
    );
    let mut c = tiny_config();
    c.drop_path = 1.0;
    assert!(c.validate().unwrap_err().to_string().contains("drop_path"));
    let mut c = tiny_config();
    c.lora = Some(sam_model::LoraConfig {
        rank: 0,
        ..sam_model::LoraConfig::default()
    });
    assert!(c.validate().unwrap_err().to_string().contains("lora"));
    let e = TrainConfig::from_json("{\"stepz\": 3}").unwrap_err();
    assert!(e.to_string().contains("stepz"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train.json");
    std::fs::write(&path, "{\"steps\": 0}").unwrap();
    let e = TrainConfig::load(&path).unwrap_err();
    assert!(
        e.to_string().contains("train.json") && e.to_string().contains("steps"),
        "{e}"
    );
    // Optimizer and loss settings name the file and their full key; a partial loss section
    // takes the recipe's other values.
    let (steps, warmup) = (
        TrainConfig::default().steps,
        TrainConfig::default().steps + 1,
    );
    std::fs::write(
        &path,
        format!(
            "{{\"steps\": {steps}, \"optim\": {{\"schedule\": {{\"warmup_steps\": {warmup}}}}}}}"
        ),
    )
    .unwrap();
    let e = TrainConfig::load(&path).unwrap_err().to_string();
    assert!(
        e.contains("train.json") && e.contains("optim.schedule.warmup_steps"),
        "{e}"
    );
    std::fs::write(&path, "{\"loss\": {\"focal_weight\": -1}}").unwrap();
    let e = TrainConfig::load(&path).unwrap_err().to_string();
    assert!(e.contains("train.json") && e.contains("loss"), "{e}");
    let c = TrainConfig::from_json("{\"loss\": {\"focal_weight\": 10}}").unwrap();
    assert_eq!(c.loss.focal_weight, 10.0);
    assert_eq!(c.loss.dice_weight, TrainConfig::default().loss.dice_weight);
    // The default is the seed recipe and round-trips through JSON.
    let seed = TrainConfig::default();
    assert_eq!(seed.optim.schedule.peak_lr, 1e-4);
    assert_eq!(seed.optim.adamw.weight_decay, 0.05);
    assert_eq!(seed.optim.schedule.warmup_steps, 2500);
    assert_eq!(seed.optim.batch.global_batch_size, 256);
    assert_eq!(seed.interactive.total_rounds(), 11);
    assert_eq!(TrainConfig::from_json(&seed.to_json()).unwrap(), seed);
}

#[test]
fn fine_tunes_an_official_checkpoint_with_the_encoder_frozen() {
    let _serial = serial();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sam-model/tests/fixtures");
    let mut config = tiny_config();
    config.model = SamConfig::load(fixtures.join("sam_tiny.json")).unwrap();
    config.data.image_size = config.model.image_size;
    config.data.low_res_size = config.model.mask_input_size();
    config.data.augment.as_mut().unwrap().target_size = config.model.image_size;
    config.steps = 2;
    let data = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let official = fixtures.join("sam_tiny.pth");
    let before = sam_model::Sam::load(&official, &config.model, &device).unwrap();
    // The image encoder frozen, then the prompt encoder frozen: the frozen one is untouched,
    // the others train.
    for image in [true, false] {
        let mut config = config.clone();
        config.freeze_image_encoder = image;
        config.freeze_prompt_encoder = !image;
        let out = tempfile::tempdir().unwrap();
        let mut t = Trainer::new(
            config.clone(),
            dataset(data.path(), 4),
            out.path(),
            &device,
            Some(&official),
        )
        .unwrap();
        let last = t.run(|m, _| assert!(m.loss.is_finite())).unwrap();
        let after = sam_model::Sam::load(last.join("model.bpk"), &config.model, &device).unwrap();
        let same = |a: &dyn Fn(&sam_model::Sam) -> Vec<Vec<f32>>| a(&before) == a(&after);
        let image_encoder = |s: &sam_model::Sam| params(&s.image_encoder);
        let prompt_encoder = |s: &sam_model::Sam| params(&s.prompt_encoder);
        let mask_decoder = |s: &sam_model::Sam| params(&s.mask_decoder);
        assert_eq!(
            same(&image_encoder),
            image,
            "image encoder (frozen: {image})"
        );
        assert_eq!(
            same(&prompt_encoder),
            !image,
            "prompt encoder (frozen: {})",
            !image
        );
        assert!(!same(&mask_decoder), "the decoder trains");
    }
}

/// The bundled demo model was trained with `--preset demo`: its recorded config is the preset.
#[test]
fn the_bundled_demo_model_was_trained_with_the_demo_preset() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/demo_model/train_config.json");
    let recorded = TrainConfig::load(&path).unwrap();
    assert_eq!(recorded, TrainConfig::demo());
}

/// Gradient checkpointing recomputes activations in the backward pass: same losses.
#[test]
fn gradient_checkpointing_gives_the_same_training() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    let train = dataset(data.path(), 4);
    let mut losses = Vec::new();
    for checkpointing in [false, true] {
        let mut config = tiny_config();
        config.steps = 3;
        config.gradient_checkpointing = checkpointing;
        let out = tempfile::tempdir().unwrap();
        let mut t = Trainer::new(config, train.clone(), out.path(), &Device::flex(), None).unwrap();
        let mut l = Vec::new();
        t.run(|m, _| l.push(m.loss)).unwrap();
        losses.push(l);
    }
    for (a, b) in losses[0].iter().zip(&losses[1]) {
        assert!((a - b).abs() <= 1e-5 * a.abs(), "{a} vs {b}");
    }
}

#[test]
fn data_without_objects_is_an_error_not_an_endless_loop() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    let train = dataset(data.path(), 3);
    for entry in std::fs::read_dir(data.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let mut v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            v["annotations"] = serde_json::json!([]);
            std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        }
    }
    let out = tempfile::tempdir().unwrap();
    let config = tiny_config();
    let model = config.model.init(&Device::flex()).unwrap();
    let e = evaluate(&model, train.clone(), &EvalConfig::default()).unwrap_err();
    assert!(e.to_string().contains("no object to evaluate"), "{e}");
    let mut t = Trainer::new(config, train, out.path(), &Device::flex(), None).unwrap();
    let e = t.train_step().err().unwrap();
    assert!(e.to_string().contains("no training object"), "{e}");
}

/// bf16 mixed precision: the passes run in bf16, the parameters stay f32 and move as the f32
/// run's do (losses within bf16's precision of the f32 run's over the first steps).
#[test]
fn bf16_mixed_precision_trains_f32_master_weights() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    let train = dataset(data.path(), 4);
    let mut runs = Vec::new();
    for precision in [sam_train::Precision::F32, sam_train::Precision::Bf16] {
        let mut config = tiny_config();
        config.steps = 4;
        config.precision = precision;
        let out = tempfile::tempdir().unwrap();
        let mut t = Trainer::new(config, train.clone(), out.path(), &Device::flex(), None).unwrap();
        let mut l = Vec::new();
        t.run(|m, _| l.push(m.loss)).unwrap();
        let model = t.model().unwrap();
        assert_eq!(model.float_dtype(), burn::tensor::FloatDType::F32);
        runs.push((l, params(model)));
    }
    let (f32_losses, f32_params) = &runs[0];
    let (bf16_losses, bf16_params) = &runs[1];
    for (a, b) in f32_losses.iter().zip(bf16_losses) {
        assert!(
            b.is_finite() && (a - b).abs() <= 0.005 * a.abs(),
            "{a} vs {b}"
        );
    }
    // Same parameters were updated, by similar amounts.
    let moved: f64 = f32_params
        .iter()
        .zip(bf16_params)
        .map(|(a, b)| {
            a.iter()
                .zip(b)
                .map(|(x, y)| ((x - y) as f64).abs())
                .fold(0.0, f64::max)
        })
        .fold(0.0, f64::max);
    eprintln!("bf16 vs f32 losses {f32_losses:?} / {bf16_losses:?}; max parameter gap {moved:e}");
    assert!(moved < 0.02, "parameters drifted apart by {moved}");

    #[cfg(feature = "wgpu")]
    {
        let mut config = tiny_config();
        config.precision = sam_train::Precision::Bf16;
        let out = tempfile::tempdir().unwrap();
        let device = Device::wgpu(Default::default());
        if !device.supports_dtype(burn::tensor::FloatDType::BF16) {
            match Trainer::new(config, train, out.path(), &device, None) {
                Err(TrainError::InvalidConfig { field, .. }) => assert_eq!(field, "precision"),
                Err(e) => panic!("unexpected error {e}"),
                Ok(_) => panic!("bf16 on a device without bf16 arithmetic must be refused"),
            }
        }
    }
}

/// Packs the SA-1B folder `src` into `n` tar shards (round-robin), plus, in the first shard, a
/// sample whose JPEG is damaged.
fn pack_shards(src: &Path, dst: &Path, n: usize) -> Vec<std::path::PathBuf> {
    let mut ids: Vec<u64> = std::fs::read_dir(src)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_prefix("sa_")?.strip_suffix(".jpg")?.parse().ok()
        })
        .collect();
    ids.sort();
    std::fs::create_dir_all(dst).unwrap();
    let mut builders: Vec<tar::Builder<Vec<u8>>> =
        (0..n).map(|_| tar::Builder::new(Vec::new())).collect();
    let add = |b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    };
    for (k, id) in ids.iter().enumerate() {
        for ext in ["jpg", "json"] {
            let name = format!("sa_{id}.{ext}");
            add(
                &mut builders[k % n],
                &name,
                &std::fs::read(src.join(&name)).unwrap(),
            );
        }
    }
    let json = std::fs::read(src.join(format!("sa_{}.json", ids[0]))).unwrap();
    add(&mut builders[0], "sa_999999.jpg", b"\xff\xd8 not a jpeg");
    add(&mut builders[0], "sa_999999.json", &json);
    builders
        .into_iter()
        .enumerate()
        .map(|(k, b)| {
            let path = dst.join(format!("sa_{k:06}.tar"));
            std::fs::write(&path, b.into_inner().unwrap()).unwrap();
            path
        })
        .collect()
}

#[test]
fn tar_shards_stream_train_and_resume_exactly() {
    use sam_data::dataset::Sa1bTarConfig;
    use sam_train::TrainData;
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    dataset(&data.path().join("folder"), 8);
    let shards = pack_shards(&data.path().join("folder"), &data.path().join("tars"), 3);
    let tar = || {
        TrainData::TarShards(Sa1bTarConfig {
            shuffle_buffer: 4,
            ..Sa1bTarConfig::new(shards.clone())
        })
    };
    let mut config = tiny_config();
    // 5 steps of 4 images: more than two epochs of 9 samples, the damaged one included.
    config.steps = 5;
    config.checkpoint_every = 2;
    let device = Device::flex();

    let whole = tempfile::tempdir().unwrap();
    let mut a = Trainer::new_from(config.clone(), tar(), whole.path(), &device, None).unwrap();
    let end_a = a.run(|_, _| {}).unwrap();
    // 20 samples: two whole epochs of 9 and the start of a third; the damaged sample is
    // skipped and counted in each epoch that reaches it.
    let skipped = a.skipped_items();
    assert!((2..=3).contains(&skipped), "skipped {skipped}");
    let losses_a: Vec<f64> = a.metrics.history.iter().map(|m| m.loss).collect();
    assert!(losses_a.iter().all(|l| l.is_finite()), "{losses_a:?}");

    // Stopped after step 3's checkpoint, in the middle of the second epoch, then resumed: the
    // same stream, the same curve.
    let cut = tempfile::tempdir().unwrap();
    let mut first = config.clone();
    first.steps = 3;
    let mut b = Trainer::new_from(first, tar(), cut.path(), &device, None).unwrap();
    b.run(|_, _| {}).unwrap();
    drop(b);
    let state_path = cut.path().join("checkpoints/step_00000003/state.json");
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    // 12 images drawn: the first epoch's 9 samples (its damaged one passed over) and 4 or 5
    // of the second.
    let at = &state["tar_positions"][0];
    assert_eq!(at["epoch"], 1, "{state}");
    assert!(
        (4..=5).contains(&at["emitted"].as_u64().unwrap()),
        "{state}"
    );
    state["config"]["steps"] = serde_json::json!(5);
    std::fs::write(&state_path, serde_json::to_vec(&state).unwrap()).unwrap();
    let mut c = Trainer::resume_from(tar(), cut.path(), &device).unwrap();
    let end_c = c.run(|_, _| {}).unwrap();
    let losses_c: Vec<f64> = c.metrics.history.iter().map(|m| m.loss).collect();
    assert_eq!(losses_a, losses_c, "same loss curve");
    let weights = |dir: &Path| {
        params(&sam_model::Sam::load(dir.join("model.bpk"), &config.model, &device).unwrap())
    };
    assert_eq!(weights(&end_a), weights(&end_c), "bit-identical weights");
}

/// A stand-in for CLIP: the mean colour of the object's pixels, one-hot over the synthetic
/// shapes' eight colours (what a caption's colour word would select).
struct ColourEmbedder;

impl sam_train::ObjectEmbedder for ColourEmbedder {
    fn dim(&self) -> usize {
        8
    }

    fn embed(
        &self,
        rgb: &[u8],
        width: usize,
        height: usize,
        crops: &[sam_train::ObjectCrop<'_>],
    ) -> Result<Vec<Vec<f32>>, String> {
        assert_eq!(rgb.len(), width * height * 3);
        Ok(crops
            .iter()
            .map(|c| {
                assert!((1.0..=2.0).contains(&c.expand));
                let (mut sum, mut n) = ([0f64; 3], 0f64);
                for (i, _) in c.mask.iter().enumerate().filter(|(_, m)| **m) {
                    for k in 0..3 {
                        sum[k] += rgb[i * 3 + k] as f64;
                    }
                    n += 1.0;
                }
                let mean = sum.map(|s| s / n.max(1.0));
                let nearest = sam_data::dataset::synthetic::COLORS
                    .iter()
                    .enumerate()
                    .min_by(|a, b| {
                        let d = |c: &[u8; 3]| {
                            (0..3).map(|k| (c[k] as f64 - mean[k]).powi(2)).sum::<f64>()
                        };
                        d(&a.1.1).total_cmp(&d(&b.1.1))
                    })
                    .map_or(0, |(k, _)| k);
                let mut e = vec![0f32; 8];
                e[nearest] = 1.0;
                e
            })
            .collect())
    }
}

#[test]
fn text_prompt_training_trains_the_embedding_projection() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    let train = dataset(data.path(), 6);
    let device = Device::flex();
    let mut config = tiny_config();
    config.steps = 3;
    config.model.prompt_embedding_dim = Some(8);
    config.freeze_image_encoder = true;
    config.text = Some(sam_train::TextPromptConfig {
        min_area: 16,
        ..sam_train::TextPromptConfig::default()
    });
    let out = tempfile::tempdir().unwrap();

    // Without an embedder the step says what is missing; a wrong size is named.
    let mut t = Trainer::new(config.clone(), train.clone(), out.path(), &device, None).unwrap();
    let e = t.train_step().err().unwrap().to_string();
    assert!(e.contains("with_text_prompts"), "{e}");
    struct Wrong;
    impl sam_train::ObjectEmbedder for Wrong {
        fn dim(&self) -> usize {
            5
        }
        fn embed(
            &self,
            _: &[u8],
            _: usize,
            _: usize,
            _: &[sam_train::ObjectCrop<'_>],
        ) -> Result<Vec<Vec<f32>>, String> {
            Err("unused".into())
        }
    }
    let e = t
        .with_text_prompts(Arc::new(Wrong))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("prompt_embedding_dim") && e.contains("5-d"),
        "{e}"
    );

    let t = Trainer::new(config.clone(), train.clone(), out.path(), &device, None).unwrap();
    let proj = |t: &Trainer| {
        params(
            t.model()
                .unwrap()
                .prompt_encoder
                .embedding_proj
                .as_ref()
                .unwrap(),
        )
    };
    let encoder = |t: &Trainer| params(&t.model().unwrap().image_encoder);
    let (proj0, enc0) = (proj(&t), encoder(&t));
    let mut t = t.with_text_prompts(Arc::new(ColourEmbedder)).unwrap();
    for _ in 0..3 {
        let m = t.train_step().unwrap();
        assert!(m.loss.is_finite() && m.objects > 0, "{m:?}");
    }
    assert_ne!(proj(&t), proj0, "the embedding projection trains");
    assert_eq!(encoder(&t), enc0, "the frozen encoder stays");

    // A text section needs a model that takes embeddings; settings are checked.
    let mut bad = config.clone();
    bad.model.prompt_embedding_dim = None;
    let e = bad.validate().unwrap_err().to_string();
    assert!(e.contains("prompt_embedding_dim"), "{e}");
    let mut bad = config.clone();
    bad.text.as_mut().unwrap().expand = (0.5, 2.0);
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("text.expand")
    );
    let mut bad = config;
    bad.text.as_mut().unwrap().probability = 1.5;
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("text.probability")
    );
}

/// The larger of the two, NaN if either is (`f32::max` drops a NaN, so a NaN output would pass).
fn nan_max(m: f32, x: f32) -> f32 {
    if x.is_nan() || m.is_nan() {
        f32::NAN
    } else {
        m.max(x)
    }
}
