//! The `bench` example's arguments, and its `check` job: the committed fixtures against the
//! official model's outputs, through the same code that checks numerics on a GPU machine.

use sam_burn::bench::{BenchArgs, Checks, Job, Report, run};

const TINY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/crates/sam-model/tests/fixtures/sam_tiny.json"
);

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn usage(list: &[&str], expect: &str) {
    let e = BenchArgs::parse(args(list)).unwrap_err();
    assert!(e.to_string().contains(expect), "{list:?}: {e}");
}

#[test]
fn bad_arguments_are_one_line_errors() {
    usage(&["--jobs", "encoder,foo"], "unknown job \"foo\"");
    usage(&["--jobs", "decode:0"], "decode:N needs N ≥ 1");
    usage(&["--jobs", "decode:x"], "decode:N needs N ≥ 1");
    usage(&["--jobs", "amg:0"], "amg:N needs N ≥ 1");
    usage(&["--jobs", "attention:0"], "attention:N needs N ≥ 1");
    usage(&["--jobs", "check:all"], "unknown job \"check:all\"");
    usage(&["--checkpoint"], "--checkpoint needs a value");
    usage(&["--dtype", "f8"], "--dtype: unknown precision");
    usage(&["--iters", "0"], "--iters and --objects must be ≥ 1");
    usage(&["--warmup", "-1"], "not a valid number");
    usage(&["--bogus"], "unknown argument");
    let a = BenchArgs::parse(args(&[
        "--jobs",
        "encoder, decode:64,amg:8,train,check,check:outputs,check:gradients,attention:192",
    ]))
    .unwrap();
    assert_eq!(
        a.jobs,
        vec![
            Job::Encoder,
            Job::Decode(64),
            Job::Amg(8),
            Job::Train,
            Job::Check(Checks::Both),
            Job::Check(Checks::Outputs),
            Job::Check(Checks::Gradients),
            Job::Attention(192),
        ]
    );
    // A missing model config file and an unknown device are errors, not panics.
    for list in [
        &["--model", "/no/such.json", "--jobs", "encoder"][..],
        &["--device", "tpu", "--jobs", "check"][..],
        &["--checkpoint", "/no/such.pth", "--jobs", "amg:2"][..],
        &[
            "--model",
            TINY,
            "--jobs",
            "amg:2",
            "--image",
            "/no/such.png",
        ][..],
    ] {
        let a = BenchArgs::parse(args(list)).unwrap();
        let e = run(&a, |_| {}).expect_err("an error").to_string();
        assert!(
            list.iter()
                .any(|a| (a.starts_with("/no/such") || *a == "tpu") && e.contains(a)),
            "{e} / {list:?}"
        );
    }
}

#[test]
fn check_job_reports_the_fixture_errors() {
    // The gradients: each tensor's worst error in f32; in bf16 (8 significant bits; the
    // per-tensor errors reach 1 where a gradient's terms cancel) the cosine of all of them,
    // 0.876 measured. PyTorch's own CPU bf16 autocast on the same fixture: 0.836, its worst
    // tensor 1.13 off (docs/numerics.md).
    // `check` is `check:outputs` then `check:gradients` (separate jobs so that a GPU run can
    // take the quick one first).
    for (jobs, dtype, emb_tol, logit_tol, grad_tol, cosine) in [
        ("check", "f32", 1e-4f32, 1e-3f32, 1e-4f32, 0.999_999f64),
        (
            "check:outputs,check:gradients",
            "bf16",
            3e-2,
            8e-2,
            f32::INFINITY,
            0.8,
        ),
    ] {
        let a = BenchArgs::parse(args(&["--jobs", jobs, "--dtype", dtype])).unwrap();
        let mut reports = Vec::new();
        run(&a, |r| reports.push(r.clone())).unwrap();
        let Some(Report::Gradients(g)) = reports.pop() else {
            panic!("the gradient check comes last: {reports:?}")
        };
        assert_eq!(reports.len(), 2, "one report per fixture model");
        for r in reports {
            let Report::Check(c) = r else {
                panic!("check reports only")
            };
            assert_eq!(c.dtype, dtype);
            assert!(c.cases > 0);
            assert!(c.embedding_rel <= emb_tol, "{c:?}");
            assert!(c.logits_rel <= logit_tol, "{c:?}");
        }
        eprintln!("{g:?}");
        assert_eq!(g.dtype, dtype);
        assert_eq!((g.gradients, g.zero), (174, 8), "{g:?}");
        assert!(g.loss_rel <= emb_tol && g.worst_rel <= grad_tol, "{g:?}");
        assert!(g.cosine >= cosine, "{g:?}");
        if dtype == "f32" {
            assert!(g.zero_rel <= 1e-6, "{g:?}");
        }
    }
}

#[test]
fn attention_job_times_each_width() {
    let list = [
        "--model",
        TINY,
        "--jobs",
        "attention:48,attention:64",
        "--warmup",
        "0",
        "--iters",
        "2",
    ];
    let a = BenchArgs::parse(args(&list)).unwrap();
    let mut reports = Vec::new();
    run(&a, |r| reports.push(r.clone())).unwrap();
    let names: Vec<&str> = reports
        .iter()
        .map(|r| match r {
            Report::Timing(t) => {
                assert!(t.median_ms > 0.0 && t.iters == 2, "{t:?}");
                t.job.as_str()
            }
            other => panic!("a timing report: {other:?}"),
        })
        .collect();
    assert_eq!(names, ["attention:48", "attention:64"]);
}

#[test]
fn amg_job_runs_the_generator_on_the_given_weights() {
    let checkpoint = TINY.replace(".json", ".pth");
    let list = [
        "--model",
        TINY,
        "--checkpoint",
        &checkpoint,
        "--jobs",
        "amg:4",
        "--warmup",
        "0",
        "--iters",
        "1",
    ];
    let a = BenchArgs::parse(args(&list)).unwrap();
    let mut reports = Vec::new();
    run(&a, |r| reports.push(r.clone())).unwrap();
    let [Report::Timing(t)] = &reports[..] else {
        panic!("one timing report: {reports:?}")
    };
    assert_eq!(t.job, "amg:4");
    assert!(t.median_ms > 0.0);

    // The same generator run directly on the bundled image with the same weights.
    let device = sam_burn::burn::tensor::Device::flex();
    let config = sam_burn::SamConfig::load(TINY).unwrap();
    let sam = sam_burn::Sam::load(&checkpoint, &config, &device).unwrap();
    let generator = sam_burn::amg::SamAutomaticMaskGenerator::new(
        sam,
        sam_burn::amg::AmgConfig {
            points_per_side: Some(4),
            pred_iou_thresh: 0.0,
            stability_score_thresh: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    let image = sam_burn::data::load_rgb(sam_burn::cli::bundled("assets/scene.png")).unwrap();
    let expected = generator.generate(&image).unwrap().len();
    assert!(expected > 0);
    assert_eq!(t.masks, Some(expected));
}
