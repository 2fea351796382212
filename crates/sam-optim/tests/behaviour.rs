//! Behaviour without a PyTorch reference: accumulation equals a big batch, exact resume,
//! freezing, the grouping of the official SAM names, and typed configuration errors.

mod common;

use std::collections::BTreeMap;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use common::*;
use sam_optim::*;

// ---- accumulation ---------------------------------------------------------------------------

#[derive(Module, Debug)]
struct TwoLayer {
    enc: Linear,
    head: Linear,
}

impl TwoLayer {
    fn new(device: &Device) -> Self {
        Self {
            enc: LinearConfig::new(6, 5).init(device),
            head: LinearConfig::new(5, 3).init(device),
        }
    }

    /// Mean squared error over the batch.
    fn loss(&self, x: Tensor<2>, y: Tensor<2>) -> Tensor<1> {
        let out = self.head.forward(self.enc.forward(x).tanh());
        (out - y).square().mean()
    }
}

fn all_grads(model: &TwoLayer, grads: &GradientsParams) -> Vec<f32> {
    let mut v = Vec::new();
    for p in [&model.enc.weight, &model.head.weight] {
        v.extend(values(grads.get::<2>(p.id).unwrap()));
    }
    for p in [&model.enc.bias, &model.head.bias] {
        v.extend(values(grads.get::<1>(p.as_ref().unwrap().id).unwrap()));
    }
    v
}

fn plain_config(total_steps: usize) -> SamOptimConfig {
    SamOptimConfig {
        schedule: ScheduleConfig {
            peak_lr: 1e-2,
            warmup_steps: 0,
            total_steps,
            ..ScheduleConfig::default()
        },
        groups: GroupsConfig {
            layer_decay: 1.0,
            ..GroupsConfig::default()
        },
        ..SamOptimConfig::default()
    }
}

#[test]
fn accumulating_four_micro_batches_equals_one_batch_four_times_larger() {
    let device = Device::flex().autodiff();
    device.seed(7);
    let model = TwoLayer::new(&device);
    let x = Tensor::<2>::random([16, 6], Distribution::Normal(0.0, 1.0), &device);
    let y = Tensor::<2>::random([16, 3], Distribution::Normal(0.0, 1.0), &device);

    let full = GradientsParams::from_grads(model.loss(x.clone(), y.clone()).backward(), &model);

    let batch = BatchConfig {
        global_batch_size: 16,
        micro_batch_size: 4,
        num_devices: 1,
    };
    assert_eq!(batch.accumulation_steps().unwrap(), 4);
    let mut acc = GradAccumulator::new(batch.accumulation_steps().unwrap()).unwrap();
    let mut mean = None;
    for i in 0..4 {
        let (xs, ys) = (
            x.clone().slice(i * 4..i * 4 + 4),
            y.clone().slice(i * 4..i * 4 + 4),
        );
        let g = GradientsParams::from_grads(model.loss(xs, ys).backward(), &model);
        mean = acc.push(&model, g);
        assert_eq!(
            mean.is_some(),
            i == 3,
            "the window completes at the 4th micro-batch"
        );
    }
    let mean = mean.unwrap();
    assert_eq!(acc.pending(), 0);

    let (a, b) = (all_grads(&model, &mean), all_grads(&model, &full));
    let scale = b.iter().fold(0f32, |m, v| nan_max(m, v.abs()));
    let grad_diff = max_abs_diff(&a, &b);
    println!("accumulated vs full batch: max |Δgrad| {grad_diff:e} (max |grad| {scale:e})");
    assert!(grad_diff <= 1e-6 * scale.max(1.0));
    // Summing (Burn's GradientsAccumulator) would be 4× the full-batch gradient.
    assert!(max_abs_diff(&a.iter().map(|v| v * 4.0).collect::<Vec<_>>(), &b) > 1e-3);

    // One optimizer step from either gradient lands on the same parameters, and the updated
    // model is still trainable (autodiff and require-grad restored).
    let config = SamOptimConfig {
        max_grad_norm: Some(0.1),
        ..plain_config(10)
    };
    let mut opt_a = SamOptimizer::new(config.clone(), &model).unwrap();
    let mut opt_b = SamOptimizer::new(config, &model).unwrap();
    let (ma, ra) = opt_a.step(model.clone(), mean).unwrap();
    let (mb, rb) = opt_b.step(model.clone(), full).unwrap();
    assert_eq!(ra.updated, 4);
    let (pa, pb) = (param_values(&ma), param_values(&mb));
    let mut step_diff = 0f32;
    for (k, v) in &pa {
        step_diff = step_diff.max(max_abs_diff(
            &v.try_to_vec::<f32>().unwrap(),
            &pb[k].try_to_vec::<f32>().unwrap(),
        ));
    }
    println!(
        "after one step: max |Δparam| {step_diff:e}; grad norms {:?} vs {:?}",
        ra.grad_norm, rb.grad_norm
    );
    assert!(step_diff <= 1e-6);
    assert!(ma.enc.weight.val().is_require_grad());
    let again = GradientsParams::from_grads(ma.loss(x, y).backward(), &ma);
    assert_eq!(again.len(), 4);
}

#[test]
fn flush_averages_a_short_window() {
    let device = Device::flex().autodiff();
    let model = TwoLayer::new(&device);
    let x = Tensor::<2>::ones([2, 6], &device);
    let y = Tensor::<2>::zeros([2, 3], &device);
    let mut acc = GradAccumulator::new(4).unwrap();
    assert!(acc.flush(&model).is_none());
    let g1 = GradientsParams::from_grads(model.loss(x.clone(), y.clone()).backward(), &model);
    let g2 = GradientsParams::from_grads(model.loss(x.clone(), y.clone()).backward(), &model);
    assert!(acc.push(&model, g1).is_none());
    assert!(acc.push(&model, g2).is_none());
    let mean = acc.flush(&model).unwrap();
    let single = GradientsParams::from_grads(model.loss(x, y).backward(), &model);
    let d = max_abs_diff(&all_grads(&model, &mean), &all_grads(&model, &single));
    assert!(
        d <= 1e-7,
        "mean of two identical gradients is that gradient ({d:e})"
    );
}

// ---- exact resume ---------------------------------------------------------------------------

/// Deterministic pseudo-random gradients (a 64-bit LCG), different for every step and path.
fn synthetic_grad(step: usize, path: &str, shape: &[usize]) -> TensorData {
    let mut state = path.bytes().fold(
        (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) + 1,
        |h, b| h.wrapping_mul(0x100_0000_01B3) ^ b as u64,
    );
    let n = shape.iter().product::<usize>();
    let scale = [0.05f32, 0.5, 3.0][step % 3];
    let v = (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * scale
        })
        .collect::<Vec<f32>>();
    TensorData::new(v, shape.to_vec())
}

fn recipe_config() -> SamOptimConfig {
    SamOptimConfig {
        schedule: ScheduleConfig {
            peak_lr: 1e-2,
            warmup_steps: 3,
            warmup_start_factor: 0.1,
            total_steps: 12,
            decay: Decay::Cosine { min_lr: 1e-4 },
        },
        groups: GroupsConfig {
            frozen: vec![r"^image_encoder\.neck\.".to_string()],
            ..GroupsConfig::default()
        },
        max_grad_norm: Some(1.0),
        ..SamOptimConfig::default()
    }
}

fn run_step(optim: &mut SamOptimizer, model: ToySam, step: usize, device: &Device) -> ToySam {
    let shapes: BTreeMap<String, Vec<usize>> = module_params(&model)
        .into_iter()
        .map(|p| (p.info.path, p.info.shape))
        .collect();
    let grads = grads_by_path(
        &model,
        |p| Some(synthetic_grad(step, p, &shapes[p])),
        device,
    );
    optim.step(model, grads).unwrap().0
}

#[test]
fn save_and_restore_mid_run_continues_bit_for_bit() {
    let device = Device::flex();
    device.seed(3);
    let init: BTreeMap<String, TensorData> = param_values(&ToySam::new(&device))
        .into_iter()
        .map(|(k, v)| {
            let shape = v.shape().to_vec();
            (k.clone(), synthetic_grad(1_000, &k, &shape))
        })
        .collect();
    let mut model = set_params(ToySam::new(&device), &init, false);
    let mut optim = SamOptimizer::new(recipe_config(), &model).unwrap();
    for step in 0..5 {
        model = run_step(&mut optim, model, step, &device);
    }

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("optim.safetensors");
    optim.save(&file).unwrap();
    let saved_params = param_values(&model);

    // The file is ordinary safetensors.
    let bytes = std::fs::read(&file).unwrap();
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = metadata.metadata().clone().unwrap();
    assert_eq!(meta["step"], "5");
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert!(
        st.names()
            .contains(&"image_encoder.blocks.1.attn.qkv.weight.exp_avg_sq")
    );
    assert!(
        !st.names().iter().any(|n| n.contains("neck")),
        "frozen parameters have no state"
    );

    // The original run goes on for 10 more steps...
    let mut expected = Vec::new();
    for step in 5..15 {
        model = run_step(&mut optim, model, step, &device);
        expected.push((optim.lr(), param_values(&model)));
    }

    // ...and so does a fresh process: model rebuilt (new parameter ids), optimizer loaded.
    let mut resumed = set_params(ToySam::new(&device), &saved_params, true);
    let mut optim2 = SamOptimizer::new(recipe_config(), &resumed).unwrap();
    optim2.load(&file, &device).unwrap();
    assert_eq!(optim2.step_count(), 5);
    for (i, step) in (5..15).enumerate() {
        resumed = run_step(&mut optim2, resumed, step, &device);
        let (lr, params) = &expected[i];
        assert_eq!(optim2.lr().to_bits(), lr.to_bits(), "lr after step {step}");
        let now = param_values(&resumed);
        for (path, v) in params {
            assert_eq!(
                now[path].as_bytes(),
                v.as_bytes(),
                "{path} after step {step}"
            );
        }
    }
    let (a, b) = (optim.snapshot(), optim2.snapshot());
    assert_eq!(a.step, 15);
    for (path, s) in &a.params {
        assert_eq!(s.step, b.params[path].step);
        assert_eq!(s.exp_avg.as_bytes(), b.params[path].exp_avg.as_bytes());
        assert_eq!(
            s.exp_avg_sq.as_bytes(),
            b.params[path].exp_avg_sq.as_bytes()
        );
    }
}

#[test]
fn restore_rejects_a_state_of_another_model() {
    let device = Device::flex();
    let model = TwoLayer::new(&device);
    let mut optim = SamOptimizer::new(plain_config(10), &model).unwrap();
    let grads = grads_by_path(
        &model,
        |p| {
            let shape = module_params(&model)
                .into_iter()
                .find(|m| m.info.path == p)
                .unwrap()
                .info
                .shape;
            Some(synthetic_grad(0, p, &shape))
        },
        &device,
    );
    let (_, _) = optim.step(model, grads).unwrap();
    let bytes = optim.snapshot().to_bytes().unwrap();

    let other = ToySam::new(&device);
    let mut optim2 = SamOptimizer::new(recipe_config(), &other).unwrap();
    let snapshot = OptimizerSnapshot::from_bytes(&bytes).unwrap();
    let err = optim2.restore(snapshot, &device).unwrap_err();
    assert!(matches!(err, OptimError::State { .. }), "{err}");
    assert!(err.to_string().contains("`enc."), "{err}");
    let e = OptimizerSnapshot::from_bytes(&bytes[..20])
        .expect_err("an error")
        .to_string();
    assert!(e.contains("header length"), "{e}");
}

// ---- freezing -------------------------------------------------------------------------------

#[test]
fn frozen_group_parameters_and_state_are_untouched() {
    let device = Device::flex().autodiff();
    let model = TwoLayer::new(&device);
    let config = SamOptimConfig {
        groups: GroupsConfig {
            frozen: vec![r"^enc\.".to_string()],
            ..GroupsConfig::default()
        },
        ..plain_config(10)
    };
    let mut optim = SamOptimizer::new(config, &model).unwrap();
    assert_eq!(optim.plan().frozen_paths(), ["enc.bias", "enc.weight"]);
    assert_eq!(optim.lr_of("enc.weight"), Some(0.0));

    // With `freeze` the backward pass does not even compute the frozen gradients... (on a model
    // of its own: Burn's lazily initialised parameters share their pending require-grad setting
    // with clones made before first use)
    let frozen_model = optim.freeze(TwoLayer::new(&device));
    let x = Tensor::<2>::ones([2, 6], &device);
    let y = Tensor::<2>::zeros([2, 3], &device);
    let g = GradientsParams::from_grads(
        frozen_model.loss(x.clone(), y.clone()).backward(),
        &frozen_model,
    );
    assert_eq!(g.len(), 2);

    // ...and without it, gradients that reach the optimizer are ignored.
    let before = param_values(&model);
    let g = GradientsParams::from_grads(model.loss(x, y).backward(), &model);
    assert_eq!(g.len(), 4);
    let (after, report) = optim.step(model, g).unwrap();
    assert_eq!(report.updated, 2);
    let after_values = param_values(&after);
    for path in ["enc.weight", "enc.bias"] {
        assert_eq!(after_values[path].as_bytes(), before[path].as_bytes());
        assert!(optim.param_state(path).is_none());
    }
    assert_ne!(
        after_values["head.weight"].as_bytes(),
        before["head.weight"].as_bytes()
    );
    assert_eq!(optim.param_state("head.weight").unwrap().step, 1);
}

#[test]
fn stepping_another_module_is_an_error() {
    let device = Device::flex();
    let optim_model = TwoLayer::new(&device);
    let mut optim = SamOptimizer::new(plain_config(10), &optim_model).unwrap();
    let other = ToySam::new(&device);
    assert!(matches!(
        optim.check(&other),
        Err(OptimError::UnknownParameter { .. })
    ));
    let err = optim.step(other, GradientsParams::new()).unwrap_err();
    assert!(matches!(err, OptimError::UnknownParameter { .. }), "{err}");
}

// ---- groups on SAM's names ------------------------------------------------------------------

/// The official ViT-L checkpoint keys with their shapes (`tests/fixtures/sam_vit_l_params.tsv`).
fn official_vit_l() -> Vec<ParamInfo> {
    std::fs::read_to_string(fixture_dir().join("sam_vit_l_params.tsv"))
        .unwrap()
        .lines()
        .map(|line| {
            let (name, shape) = line.split_once('\t').unwrap();
            let shape = shape
                .trim_matches(['[', ']'])
                .split(',')
                .map(|d| d.trim().parse().unwrap())
                .collect();
            ParamInfo::new(name, shape)
        })
        .collect()
}

#[test]
fn official_vit_l_names_are_grouped_as_the_recipe_says() {
    let params = official_vit_l();
    assert_eq!(params.len(), 482);
    let plan = GroupPlan::resolve(&GroupsConfig::default(), &params).unwrap();
    assert_eq!(plan.encoder_depth(), 24);

    // Decay exactly the weight matrices and kernels; not biases, norms, embeddings, tokens.
    for p in &params {
        let leaf = p.path.rsplit('.').next().unwrap();
        let token = [
            "point_embeddings",
            "not_a_point_embed",
            "no_mask_embed",
            "iou_token",
            "mask_tokens",
        ]
        .iter()
        .any(|t| p.path.contains(t));
        let embedding = [
            "pos_embed",
            "rel_pos_h",
            "rel_pos_w",
            "positional_encoding_gaussian_matrix",
        ]
        .contains(&leaf);
        let expected = p.shape.len() >= 2 && !token && !embedding;
        assert_eq!(
            plan.get(&p.path).unwrap().weight_decay,
            expected,
            "{}",
            p.path
        );
    }

    let s = |path: &str| plan.get(path).unwrap().clone();
    let d = 0.8f64;
    assert_eq!(s("image_encoder.patch_embed.proj.weight").layer_id, 0);
    assert!((s("image_encoder.patch_embed.proj.weight").lr_scale - d.powi(25)).abs() < 1e-15);
    assert_eq!(s("image_encoder.pos_embed").layer_id, 0);
    assert!(!s("image_encoder.pos_embed").weight_decay);
    assert_eq!(s("image_encoder.blocks.3.attn.rel_pos_h").layer_id, 4);
    assert!((s("image_encoder.blocks.3.attn.qkv.weight").lr_scale - d.powi(21)).abs() < 1e-15);
    assert_eq!(s("image_encoder.blocks.23.mlp.lin2.weight").layer_id, 24);
    assert!((s("image_encoder.blocks.23.mlp.lin2.weight").lr_scale - 0.8).abs() < 1e-15);
    for after in [
        "image_encoder.neck.0.weight",
        "prompt_encoder.mask_downscaling.0.weight",
        "mask_decoder.output_hypernetworks_mlps.0.layers.2.bias",
        "mask_decoder.iou_token.weight",
    ] {
        assert_eq!(s(after).layer_id, 25, "{after}");
        assert_eq!(s(after).lr_scale, 1.0, "{after}");
    }
    assert!(s("prompt_encoder.pe_layer.positional_encoding_gaussian_matrix").frozen);
    assert_eq!(plan.frozen_paths().len(), 1);

    // 26 layers × {decay, no decay} + the frozen matrix.
    let groups = plan.summary();
    assert_eq!(groups.len(), 26 * 2 + 1);
    assert_eq!(groups.iter().map(|g| g.params.len()).sum::<usize>(), 482);
}

#[test]
fn burn_style_names_are_grouped_by_name_alone() {
    // Shapes unknown: only the name rules apply (Burn LayerNorm gamma/beta, LayerNorm2d weight).
    let names = [
        ("image_encoder.patch_embed.proj.weight", true),
        ("image_encoder.pos_embed", false),
        ("image_encoder.blocks.3.attn.rel_pos_h", false),
        ("image_encoder.blocks.3.attn.rel_pos_w", false),
        ("image_encoder.blocks.3.norm1.gamma", false),
        ("image_encoder.blocks.3.norm1.beta", false),
        ("image_encoder.blocks.3.attn.qkv.weight", true),
        ("image_encoder.blocks.3.attn.qkv.bias", false),
        ("image_encoder.neck.conv1.weight", true),
        ("image_encoder.neck.norm1.weight", false),
        ("prompt_encoder.point_embeddings.0.weight", false),
        ("prompt_encoder.not_a_point_embed.weight", false),
        ("prompt_encoder.no_mask_embed.weight", false),
        ("prompt_encoder.mask_downscaling.norm1.weight", false),
        ("mask_decoder.iou_token.weight", false),
        ("mask_decoder.mask_tokens.weight", false),
        ("mask_decoder.transformer.layers.0.norm1.gamma", false),
        ("mask_decoder.transformer.norm_final_attn.gamma", false),
        ("mask_decoder.output_upscaling.norm.weight", false),
        (
            "mask_decoder.output_hypernetworks_mlps.0.layers.2.weight",
            true,
        ),
        (
            "mask_decoder.output_hypernetworks_mlps.0.layers.2.bias",
            false,
        ),
        (
            "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
            false,
        ),
    ];
    let params: Vec<ParamInfo> = names.iter().map(|(n, _)| ParamInfo::named(*n)).collect();
    let config = GroupsConfig {
        encoder_depth: Some(24),
        ..GroupsConfig::default()
    };
    let plan = GroupPlan::resolve(&config, &params).unwrap();
    for (name, decay) in names {
        assert_eq!(plan.get(name).unwrap().weight_decay, decay, "{name}");
    }
    assert_eq!(
        plan.get("image_encoder.blocks.3.norm1.gamma")
            .unwrap()
            .layer_id,
        4
    );
    assert_eq!(
        plan.get("image_encoder.neck.conv1.weight")
            .unwrap()
            .layer_id,
        25
    );
    assert_eq!(
        plan.get("mask_decoder.iou_token.weight").unwrap().layer_id,
        25
    );

    // A frozen image encoder: every image_encoder.* parameter and only those.
    let config = GroupsConfig {
        frozen: vec![r"^image_encoder\.".to_string()],
        encoder_depth: Some(24),
        ..GroupsConfig::default()
    };
    let plan = GroupPlan::resolve(&config, &params).unwrap();
    for (name, _) in names {
        let expected = name.starts_with("image_encoder.") || name.ends_with("gaussian_matrix");
        assert_eq!(plan.get(name).unwrap().frozen, expected, "{name}");
    }
}

// ---- typed configuration errors -------------------------------------------------------------

fn field_of(err: OptimError) -> String {
    err.field()
        .unwrap_or_else(|| panic!("error without a field: {err}"))
        .to_string()
}

#[test]
fn bad_configuration_is_a_typed_error_naming_the_field() {
    let params = vec![
        ParamInfo::new("image_encoder.blocks.0.attn.qkv.weight", vec![4, 12]),
        ParamInfo::new("mask_decoder.iou_token.weight", vec![1, 4]),
    ];
    let build = |config: SamOptimConfig| SamOptimizer::from_params(config, &params).unwrap_err();

    // Negative learning rate.
    let err = build(SamOptimConfig {
        schedule: ScheduleConfig {
            peak_lr: -1e-4,
            ..ScheduleConfig::default()
        },
        ..SamOptimConfig::default()
    });
    assert!(err.to_string().contains("schedule.peak_lr"), "{err}");
    assert_eq!(field_of(err), "schedule.peak_lr");

    // Warmup longer than the run.
    let err = build(SamOptimConfig {
        schedule: ScheduleConfig {
            warmup_steps: 3_000,
            total_steps: 2_000,
            ..ScheduleConfig::default()
        },
        ..SamOptimConfig::default()
    });
    assert!(matches!(err, OptimError::InvalidConfig { .. }));
    assert_eq!(field_of(err), "schedule.warmup_steps");

    // Accumulation of 0 micro-batches, however it is asked for.
    let err = GradAccumulator::new(0).unwrap_err();
    assert_eq!(field_of(err), "accumulation_steps");
    let err = build(SamOptimConfig {
        batch: BatchConfig {
            micro_batch_size: 0,
            ..BatchConfig::default()
        },
        ..SamOptimConfig::default()
    });
    assert_eq!(field_of(err), "batch.micro_batch_size");
    let err = BatchConfig {
        global_batch_size: 256,
        micro_batch_size: 3,
        num_devices: 1,
    }
    .accumulation_steps()
    .unwrap_err();
    assert_eq!(field_of(err), "batch.global_batch_size");

    // A group pattern that matches nothing.
    let err = build(SamOptimConfig {
        groups: GroupsConfig {
            frozen: vec![r"^image_enc0der\.".to_string()],
            ..GroupsConfig::default()
        },
        ..SamOptimConfig::default()
    });
    assert!(
        matches!(&err, OptimError::PatternMatchesNothing { pattern, .. } if pattern == r"^image_enc0der\."),
        "{err}"
    );
    assert!(err.to_string().contains("groups.frozen"), "{err}");
    let err = build(SamOptimConfig {
        groups: GroupsConfig {
            no_decay: vec!["nothing_like_this".to_string()],
            ..GroupsConfig::default()
        },
        ..SamOptimConfig::default()
    });
    assert_eq!(field_of(err), "groups.no_decay");

    // Others.
    let err = build(SamOptimConfig {
        groups: GroupsConfig {
            frozen: vec!["(".to_string()],
            ..GroupsConfig::default()
        },
        ..SamOptimConfig::default()
    });
    assert!(matches!(err, OptimError::InvalidPattern { .. }), "{err}");
    let cases: Vec<(SamOptimConfig, &str)> = vec![
        (
            SamOptimConfig {
                max_grad_norm: Some(-1.0),
                ..SamOptimConfig::default()
            },
            "max_grad_norm",
        ),
        (
            SamOptimConfig {
                groups: GroupsConfig {
                    layer_decay: 0.0,
                    ..GroupsConfig::default()
                },
                ..SamOptimConfig::default()
            },
            "groups.layer_decay",
        ),
        (
            SamOptimConfig {
                adamw: AdamWConfig {
                    beta1: 1.0,
                    ..AdamWConfig::default()
                },
                ..SamOptimConfig::default()
            },
            "adamw.beta1",
        ),
        (
            SamOptimConfig {
                adamw: AdamWConfig {
                    weight_decay: -0.1,
                    ..AdamWConfig::default()
                },
                ..SamOptimConfig::default()
            },
            "adamw.weight_decay",
        ),
        (
            SamOptimConfig {
                schedule: ScheduleConfig {
                    decay: Decay::Cosine { min_lr: 1.0 },
                    ..ScheduleConfig::default()
                },
                ..SamOptimConfig::default()
            },
            "schedule.decay.min_lr",
        ),
        (
            SamOptimConfig {
                schedule: ScheduleConfig {
                    decay: Decay::Step {
                        milestones: vec![100, 50],
                        gamma: 0.1,
                    },
                    ..ScheduleConfig::sam_paper()
                },
                ..SamOptimConfig::default()
            },
            "schedule.decay.milestones",
        ),
    ];
    for (config, field) in cases {
        assert_eq!(field_of(build(config)), field);
    }

    // A block beyond the configured depth.
    let err = GroupPlan::resolve(
        &GroupsConfig {
            encoder_depth: Some(0),
            ..GroupsConfig::default()
        },
        &params,
    )
    .unwrap_err();
    assert!(matches!(err, OptimError::Parameter { .. }), "{err}");
}

#[test]
fn config_round_trips_through_json_and_defaults_are_the_seed() {
    let c = SamOptimConfig::default();
    assert_eq!(c.schedule.peak_lr, 1e-4);
    assert_eq!(c.adamw.weight_decay, 0.05);
    assert_eq!(
        (c.adamw.beta1, c.adamw.beta2, c.adamw.eps),
        (0.9, 0.999, 1e-8)
    );
    assert_eq!(c.schedule.warmup_steps, 2_500);
    assert_eq!(c.batch.global_batch_size, 256);
    assert_eq!(SamOptimConfig::from_json(&c.to_json()).unwrap(), c);
    let paper = SamOptimConfig::sam_paper();
    assert_eq!(SamOptimConfig::from_json(&paper.to_json()).unwrap(), paper);
    // Partial JSON takes defaults; unknown fields are rejected.
    let partial = SamOptimConfig::from_json(r#"{"schedule": {"peak_lr": 2e-4}}"#).unwrap();
    assert_eq!(partial.schedule.peak_lr, 2e-4);
    assert_eq!(partial.schedule.warmup_steps, 2_500);
    let e = SamOptimConfig::from_json(r#"{"schedule": {"peak_lr": -1}}"#)
        .expect_err("an error")
        .to_string();
    assert!(e.contains("schedule.peak_lr"), "{e}");
    let e = SamOptimConfig::from_json(r#"{"lr": 1}"#)
        .expect_err("an error")
        .to_string();
    assert!(e.contains("unknown field `lr`"), "{e}");
    // A wrongly typed value names its field, nested.
    let e = SamOptimConfig::from_json(r#"{"adamw": {"weight_decay": "0.05"}}"#)
        .expect_err("an error")
        .to_string();
    assert!(
        e.contains("field `adamw.weight_decay`: invalid type"),
        "{e}"
    );
}

#[test]
fn parameters_without_gradients_are_skipped_like_pytorch() {
    // A trainable parameter with no gradient in a step is skipped like PyTorch does: its step
    // count does not advance.
    let device = Device::flex();
    let model = TwoLayer::new(&device);
    let mut optim = SamOptimizer::new(plain_config(10), &model).unwrap();
    let only_head = grads_by_path(
        &model,
        |p| (p == "head.weight").then(|| TensorData::new(vec![0.1f32; 15], [5, 3])),
        &device,
    );
    let (model, r) = optim.step(model, only_head).unwrap();
    assert_eq!(r.updated, 1);
    assert!(optim.param_state("enc.weight").is_none());
    assert_eq!(optim.param_state("head.weight").unwrap().step, 1);
    assert_eq!(optim.step_count(), 1);
    let _ = model;
}
