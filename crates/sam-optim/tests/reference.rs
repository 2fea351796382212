//! Against PyTorch numbers from `tools/reference/make_optim_fixtures.py`: the schedules
//! (`SequentialLR`), `torch.optim.AdamW`, `clip_grad_norm_`, and the whole recipe (groups,
//! layer-wise decay, frozen group, clipping, schedule) on a toy model named like SAM.

mod common;

use std::collections::BTreeMap;

use burn::grad_clipping::GradientClipping;
use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};
use common::*;
use sam_optim::*;
use serde_json::Value;

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

fn rel(a: f64, e: f64) -> f64 {
    (a - e).abs() / e.abs().max(1e-300)
}

fn cosine_schedule(m: &Value) -> ScheduleConfig {
    ScheduleConfig {
        peak_lr: m["peak_lr"].as_f64().unwrap(),
        warmup_steps: m["warmup_steps"].as_u64().unwrap() as usize,
        warmup_start_factor: m["warmup_start_factor"].as_f64().unwrap(),
        total_steps: m["total_steps"].as_u64().unwrap() as usize,
        decay: Decay::Cosine {
            min_lr: m["min_lr"].as_f64().unwrap(),
        },
    }
}

/// Max relative error of our schedule against the torch lrs listed in `m`.
fn schedule_error(schedule: &LrSchedule, m: &Value) -> f64 {
    let steps = usizes(&m["steps"]);
    let lrs = f64s(&m["lrs"]);
    steps
        .iter()
        .zip(&lrs)
        .map(|(&s, &e)| {
            let err = rel(schedule.lr_at(s), e);
            assert!(err < 1e-9, "step {s}: {} vs torch {e}", schedule.lr_at(s));
            err
        })
        .fold(0.0, f64::max)
}

#[test]
fn seed_schedule_matches_torch_sequential_lr() {
    let f = Fixture::load();
    let m = &f.meta["schedule"]["seed"];
    let config = cosine_schedule(m);
    // The fixture is the crate's default (the seed recipe).
    assert_eq!(config, ScheduleConfig::default());
    let schedule = LrSchedule::new(config).unwrap();
    // Steps 0, 1, 2, 1250, 2499, 2500, 2501, middle of the cosine, 89,999 and the end.
    let err = schedule_error(&schedule, m);
    println!("seed schedule: max relative error vs torch {err:e}");
    assert_eq!(schedule.lr_at(2_500), 1e-4);
    assert!(rel(schedule.lr_at(0), 1e-7) < 1e-12);

    // PyTorch's CosineAnnealingLR rises again after T_max; ours stays at the minimum.
    let torch_after = m["torch_lr_5000_after_end"].as_f64().unwrap();
    assert!(
        torch_after > 1.5e-6,
        "torch rises after the end: {torch_after}"
    );
    for step in [90_000, 90_001, 95_000, 1_000_000] {
        assert_eq!(schedule.lr_at(step), 1e-6);
    }
}

#[test]
fn small_schedule_matches_torch_at_every_step_and_stays_constant() {
    let f = Fixture::load();
    let m = &f.meta["schedule"]["small"];
    let schedule = LrSchedule::new(cosine_schedule(m)).unwrap();
    let err = schedule_error(&schedule, m);
    println!("small schedule (61 steps): max relative error vs torch {err:e}");
    let mut last = f64::INFINITY;
    for s in 10..200 {
        let lr = schedule.lr_at(s);
        assert!(lr <= last, "never rises after the peak (step {s})");
        last = lr;
    }
}

#[test]
fn step_decay_matches_torch_multistep() {
    let f = Fixture::load();
    let m = &f.meta["schedule"]["paper"];
    let config = ScheduleConfig {
        peak_lr: m["peak_lr"].as_f64().unwrap(),
        warmup_steps: m["warmup_steps"].as_u64().unwrap() as usize,
        warmup_start_factor: m["warmup_start_factor"].as_f64().unwrap(),
        total_steps: m["total_steps"].as_u64().unwrap() as usize,
        decay: Decay::Step {
            milestones: usizes(&m["milestones"]),
            gamma: m["gamma"].as_f64().unwrap(),
        },
    };
    assert_eq!(config, ScheduleConfig::sam_paper());
    let schedule = LrSchedule::new(config).unwrap();
    let err = schedule_error(&schedule, m);
    println!("paper step schedule: max relative error vs torch {err:e}");
}

#[test]
fn adamw_ten_steps_match_torch_with_and_without_weight_decay() {
    let f = Fixture::load();
    let m = &f.meta["adamw"];
    let device = Device::flex();
    let names: Vec<String> = m["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    let lrs = f64s(&m["lrs"]);
    let betas = f64s(&m["betas"]);
    for run in ["wd", "nowd"] {
        let wd = m["runs"][run]["weight_decay"].as_f64().unwrap();
        let config = AdamWConfig {
            beta1: betas[0],
            beta2: betas[1],
            eps: m["eps"].as_f64().unwrap(),
            weight_decay: wd,
        };
        let mut max_param = 0f32;
        let mut max_moment = 0f32;
        for name in &names {
            let init = f.values(&format!("adamw/init/{name}"));
            let n = init.len();
            let mut p = Tensor::<1>::from_data(TensorData::new(init.to_vec(), [n]), &device);
            let mut state = None;
            for (i, &lr) in lrs.iter().enumerate() {
                let g = Tensor::<1>::from_data(
                    TensorData::new(f.values(&format!("adamw/grad/{i}/{name}")).to_vec(), [n]),
                    &device,
                );
                let (np, ns) = adamw_update(&config, lr, wd, p, g, state);
                p = np;
                state = Some(ns);
                let d = max_abs_diff(
                    &values(p.clone()),
                    f.values(&format!("adamw/{run}/param/{i}/{name}")),
                );
                max_param = max_param.max(d);
            }
            let s = state.unwrap();
            assert_eq!(s.step, 10);
            for (key, t) in [("exp_avg", s.exp_avg), ("exp_avg_sq", s.exp_avg_sq)] {
                let d = max_abs_diff(&values(t), f.values(&format!("adamw/{run}/{key}/{name}")));
                max_moment = max_moment.max(d);
            }
        }
        println!(
            "AdamW {run}: max |param − torch| {max_param:e}, max |moment − torch| {max_moment:e}"
        );
        assert!(max_param <= 1e-6, "{run}: params differ by {max_param:e}");
        assert!(
            max_moment <= 1e-6,
            "{run}: moments differ by {max_moment:e}"
        );
    }
}

#[derive(Module, Debug)]
struct Four {
    a: Param<Tensor<2>>,
    b: Param<Tensor<1>>,
    c: Param<Tensor<3>>,
    d: Param<Tensor<1>>,
}

#[test]
fn global_clip_matches_clip_grad_norm() {
    let f = Fixture::load();
    let m = &f.meta["clip"];
    let device = Device::flex();
    let model = Four {
        a: Param::from_tensor(Tensor::zeros([5, 4], &device)),
        b: Param::from_tensor(Tensor::zeros([7], &device)),
        c: Param::from_tensor(Tensor::zeros([2, 3, 3], &device)),
        d: Param::from_tensor(Tensor::zeros([1], &device)),
    };
    let index = |path: &str| {
        ["a", "b", "c", "d"]
            .iter()
            .position(|p| *p == path)
            .unwrap()
    };
    for (j, case) in m["cases"].as_array().unwrap().iter().enumerate() {
        let max_norm = case["max_norm"].as_f64().unwrap();
        let expected_norm = case["total_norm"].as_f64().unwrap();
        let mut grads = grads_by_path(
            &model,
            |p| Some(f.data(&format!("clip/grad/{}", index(p)))),
            &device,
        );
        let norm = clip_grad_norm(&model, &mut grads, max_norm).unwrap();
        let norm_err = rel(norm, expected_norm);
        let mut max_diff = 0f32;
        for (i, param) in module_params(&model).iter().enumerate() {
            let expected = f.values(&format!("clip/{j}/clipped/{i}"));
            let actual: Vec<f32> = match i {
                0 => values(grads.get::<2>(param.id).unwrap()),
                1 | 3 => values(grads.get::<1>(param.id).unwrap()),
                _ => values(grads.get::<3>(param.id).unwrap()),
            };
            max_diff = max_diff.max(max_abs_diff(&actual, expected));
        }
        println!(
            "clip max_norm {max_norm}: norm rel. error {norm_err:e}, max |grad − torch| {max_diff:e}"
        );
        assert!(
            norm_err < 1e-6,
            "total norm {norm} vs torch {expected_norm}"
        );
        assert!(max_diff <= 1e-6);
    }

    // Burn's GradientClipping::Norm clips each tensor on its own: not clip_grad_norm_.
    let g0 = f.tensor::<2>("clip/grad/0", &device);
    let per_tensor = values(GradientClipping::Norm(0.5).clip_gradient(g0));
    let global = f.values("clip/0/clipped/0");
    assert!(max_abs_diff(&per_tensor, global) > 1e-3);
}

#[test]
fn recipe_matches_torch_param_groups_schedule_and_clipping() {
    let f = Fixture::load();
    let m = &f.meta["recipe"];
    let c = &m["config"];
    let device = Device::flex();

    let mut model = ToySam::new(&device);
    let expected_paths: Vec<String> = m["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_str().unwrap().to_string())
        .collect();
    let mut ours = paths(&model);
    ours.sort();
    let mut theirs = expected_paths.clone();
    theirs.sort();
    assert_eq!(
        ours, theirs,
        "toy model and fixture name the same parameters"
    );
    let init: BTreeMap<String, TensorData> = expected_paths
        .iter()
        .map(|p| (p.clone(), f.data(&format!("recipe/init/{p}"))))
        .collect();
    model = set_params(model, &init, false);

    let betas = f64s(&c["betas"]);
    let config = SamOptimConfig {
        adamw: AdamWConfig {
            beta1: betas[0],
            beta2: betas[1],
            eps: c["eps"].as_f64().unwrap(),
            weight_decay: c["weight_decay"].as_f64().unwrap(),
        },
        schedule: cosine_schedule(c),
        groups: GroupsConfig {
            layer_decay: c["layer_decay"].as_f64().unwrap(),
            encoder_depth: Some(c["encoder_depth"].as_u64().unwrap() as usize),
            frozen: c["frozen"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap().to_string())
                .collect(),
            ..GroupsConfig::default()
        },
        max_grad_norm: Some(c["max_grad_norm"].as_f64().unwrap()),
        ..SamOptimConfig::default()
    };
    let mut optim = SamOptimizer::new(config, &model).unwrap();

    // The name rules agree with the (independently written) Python ones.
    for (path, e) in m["expect"].as_object().unwrap() {
        let s = optim.plan().get(path).unwrap();
        assert_eq!(s.layer_id as u64, e["layer_id"].as_u64().unwrap(), "{path}");
        assert!(
            rel(s.lr_scale, e["lr_scale"].as_f64().unwrap()) < 1e-12,
            "{path}"
        );
        assert_eq!(
            s.weight_decay,
            e["weight_decay"].as_f64().unwrap() > 0.0,
            "{path}"
        );
        assert_eq!(s.frozen, e["frozen"].as_bool().unwrap(), "{path}");
    }

    let base_lrs = f64s(&m["base_lrs"]);
    let norms = f64s(&m["grad_norms"]);
    let mut max_diff = 0f32;
    let (mut max_lr_err, mut max_norm_err) = (0f64, 0f64);
    for k in 0..c["steps"].as_u64().unwrap() as usize {
        // Frozen parameters get gradients too: the optimizer must ignore them.
        let grads = grads_by_path(
            &model,
            |p| Some(f.data(&format!("recipe/grad/{k}/{p}"))),
            &device,
        );
        let (next, report) = optim.step(model, grads).unwrap();
        model = next;
        assert_eq!(report.step, k);
        max_lr_err = max_lr_err.max(rel(report.lr, base_lrs[k]));
        max_norm_err = max_norm_err.max(rel(report.grad_norm.unwrap(), norms[k]));
        let now = param_values(&model);
        for path in &expected_paths {
            let actual = now[path].try_to_vec::<f32>().unwrap();
            let settings = optim.plan().get(path).unwrap();
            if settings.frozen {
                assert_eq!(
                    now[path].as_bytes(),
                    init[path].as_bytes(),
                    "{path} is frozen"
                );
                assert!(optim.param_state(path).is_none(), "{path} has no state");
            } else {
                let d = max_abs_diff(&actual, f.values(&format!("recipe/param/{k}/{path}")));
                assert!(d <= 1e-6, "step {k} {path}: {d:e}");
                max_diff = max_diff.max(d);
            }
        }
    }
    println!(
        "recipe: max |param − torch| {max_diff:e}, lr rel. error {max_lr_err:e}, grad-norm rel. error {max_norm_err:e}"
    );
    assert!(max_lr_err < 1e-9);
    assert!(max_norm_err < 1e-6);
    assert_eq!(optim.step_count(), 12);
}
