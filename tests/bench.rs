//! The `bench` example's arguments, and its `check` job: the committed fixtures against the
//! official model's outputs, through the same code that checks numerics on a GPU machine.

use sam_burn::bench::{BenchArgs, Job, Report, run};

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
    usage(&["--dtype", "f8"], "--dtype: unknown precision");
    usage(&["--iters", "0"], "--iters and --objects must be ≥ 1");
    usage(&["--warmup", "-1"], "not a valid number");
    usage(&["--bogus"], "unknown argument");
    let a = BenchArgs::parse(args(&["--jobs", "encoder, decode:64,train,check"])).unwrap();
    assert_eq!(
        a.jobs,
        vec![Job::Encoder, Job::Decode(64), Job::Train, Job::Check]
    );
    // A missing model config file and an unknown device are errors, not panics.
    for list in [
        &["--model", "/no/such.json", "--jobs", "encoder"][..],
        &["--device", "tpu", "--jobs", "check"][..],
    ] {
        let a = BenchArgs::parse(args(list)).unwrap();
        assert!(run(&a, |_| {}).is_err(), "{list:?}");
    }
}

#[test]
fn check_job_reports_the_fixture_errors() {
    for (dtype, emb_tol, logit_tol) in [("f32", 1e-4f32, 1e-3f32), ("bf16", 3e-2, 8e-2)] {
        let a = BenchArgs::parse(args(&["--jobs", "check", "--dtype", dtype])).unwrap();
        let mut reports = Vec::new();
        run(&a, |r| reports.push(r.clone())).unwrap();
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
    }
}
