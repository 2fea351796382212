//! Multi-process data parallel training under `mpirun` (feature `mpi`; needs Open MPI): 2 and
//! 4 ranks give one process's parameters for the same global batch, every rank holds the same
//! weights, a run whose rank is killed resumes onto the uninterrupted loss curve, and ranks
//! started with different settings stop with an error instead of training apart.
#![cfg(feature = "mpi")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use sam_burn::bench_check::nan_max;
use sam_data::dataset::{SyntheticConfig, write_synthetic_dataset};
use sam_model::{Sam, SamConfig};
use sam_optim::{BatchConfig, Decay, ScheduleConfig};
use sam_train::TrainConfig;

const STEPS: usize = 6;

fn example(name: &str) -> PathBuf {
    // target/<profile>/deps/<test> → target/<profile>/examples/<name>
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name)
}

/// The tiny model of the training tests; one loader batch of 4 images per micro-batch, two
/// micro-batches per step, split over `devices` processes.
fn config(devices: usize) -> TrainConfig {
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
        global_batch_size: 8,
        micro_batch_size: 4 / devices,
        num_devices: devices,
    };
    c.loader.batch_size = 4;
    c.loader.num_workers = 1;
    c.optim.schedule = ScheduleConfig {
        peak_lr: 2e-3,
        warmup_steps: 2,
        total_steps: STEPS,
        decay: Decay::Cosine { min_lr: 1e-4 },
        ..ScheduleConfig::default()
    };
    c.steps = STEPS;
    c.checkpoint_every = 2;
    c.eval_every = 0;
    c
}

fn write_config(dir: &Path, devices: usize) -> PathBuf {
    let path = dir.join(format!("train_{devices}.json"));
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&config(devices)).unwrap(),
    )
    .unwrap();
    path
}

fn mpirun(np: usize) -> Command {
    let mut cmd = Command::new("mpirun");
    cmd.args(["--oversubscribe", "-np", &np.to_string()])
        // Containers run tests as root; Open MPI refuses that unless told.
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    cmd
}

fn train_args(cmd: &mut Command, config: &Path, data: &Path, out: &Path) {
    cmd.arg(example("train"))
        .args(["--config", config.to_str().unwrap()])
        .args(["--data", data.to_str().unwrap()])
        .args(["--out", out.to_str().unwrap()])
        .arg("--no-progress");
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn losses(out: &Path) -> Vec<f64> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"]
                .as_f64()
                .unwrap()
        })
        .collect()
}

fn params(out: &Path) -> Vec<Vec<f32>> {
    struct Collect(Vec<Vec<f32>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.0
                .push(p.val().into_data().convert::<f32>().try_to_vec().unwrap());
        }
    }
    let file = out
        .join("checkpoints")
        .join(format!("step_{STEPS:08}"))
        .join("model.bpk");
    let sam = Sam::load(&file, &config(1).model, &Device::flex()).unwrap();
    let mut c = Collect(Vec::new());
    sam.visit(&mut c);
    c.0
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y))
        .fold(0f32, |m, (x, y)| nan_max(m, (x - y).abs()))
}

fn digests(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            l.split_once("parameters digest ")
                .map(|(_, d)| d.trim().to_string())
        })
        .collect()
}

/// Pids of the `train` processes writing into `out`.
fn ranks_of(out: &Path) -> Vec<u32> {
    let needle = out.to_str().unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c);
                c.contains("examples/train") && c.contains(needle) && !c.contains("mpirun")
            })
        })
        .collect()
}

#[test]
fn mpirun_ranks_train_as_one_process_and_resume_after_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let synth = SyntheticConfig {
        num_images: 12,
        min_side: 48,
        max_side: 80,
        max_objects: 4,
        seed: 2,
        ..SyntheticConfig::default()
    };
    write_synthetic_dataset(&data, &synth).unwrap();

    // One process, the whole global batch.
    let one = dir.path().join("one");
    // `train_args` names the program, as it does after `mpirun -np N`.
    let mut cmd = Command::new("env");
    train_args(&mut cmd, &write_config(dir.path(), 1), &data, &one);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let (loss_one, params_one) = (losses(&one), params(&one));
    assert_eq!(loss_one.len(), STEPS);

    let mut two_losses = Vec::new();
    for np in [2, 4] {
        let run = dir.path().join(format!("np{np}"));
        let mut cmd = mpirun(np);
        train_args(&mut cmd, &write_config(dir.path(), np), &data, &run);
        cmd.args(["--dist", "mpi"]);
        let out = cmd.output().unwrap();
        let log = text(&out);
        assert!(out.status.success(), "{log}");
        // Every rank ends with the same weights.
        let d = digests(&log);
        assert_eq!(d.len(), np, "{log}");
        assert!(d.iter().all(|x| x == &d[0]), "ranks diverged: {d:?}");
        let (loss_n, params_n) = (losses(&run), params(&run));
        for (a, b) in loss_one.iter().zip(&loss_n) {
            assert!(
                (a - b).abs() <= 1e-5 * a.abs(),
                "{np} ranks: {loss_n:?} vs {loss_one:?}"
            );
        }
        // Same sums in another order; AdamW magnifies round-off on near-zero gradients (see the
        // in-process data-parallel test): a small fraction of one step's lr.
        let worst = max_diff(&params_one, &params_n);
        eprintln!("{np} ranks vs one process: params max |diff| {worst:e}, losses {loss_n:?}");
        assert!(worst <= 2e-4, "{np} ranks: parameters differ by {worst:e}");
        if np == 2 {
            two_losses = loss_n;
        }
    }

    // A 2-rank run whose rank 1 is killed after the step-2 checkpoint: mpirun ends the job, and
    // `--resume` continues onto the uninterrupted 2-rank curve exactly.
    let config2 = write_config(dir.path(), 2);
    kill_and_resume(&config2, &data, &dir.path().join("killed"), &two_losses);

    // SA-1B's tar shards: each rank streams its own shards; the same kill-and-resume holds,
    // each rank's stream position coming back from the checkpoint.
    let tars = dir.path().join("tars");
    sam_data::dataset::pack_tar_shards(&data, &tars, 4).unwrap();
    let whole = dir.path().join("tar_whole");
    let mut cmd = mpirun(2);
    train_args(&mut cmd, &config2, &tars, &whole);
    cmd.args(["--dist", "mpi"]);
    let out = cmd.output().unwrap();
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    let d = digests(&log);
    assert!(d.len() == 2 && d[0] == d[1], "ranks diverged: {log}");
    let tar_losses = losses(&whole);
    assert_eq!(tar_losses.len(), STEPS);
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(whole.join(format!("checkpoints/step_{STEPS:08}/state.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(
        state["tar_positions"].as_array().unwrap().len(),
        2,
        "{state}"
    );
    kill_and_resume(&config2, &tars, &dir.path().join("tar_killed"), &tar_losses);

    // Ranks started with different settings refuse to train together.
    let other = dir.path().join("mismatch");
    let mut cmd = mpirun(1);
    train_args(&mut cmd, &config2, &data, &other);
    cmd.args(["--dist", "mpi", "--dist-timeout", "60"])
        .arg(":")
        .args(["-np", "1"]);
    train_args(&mut cmd, &config2, &data, &other);
    cmd.args(["--dist", "mpi", "--dist-timeout", "60", "--steps", "5"]);
    let out = cmd.output().unwrap();
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("ranks disagree"), "{log}");
}

/// Starts a 2-rank run into `run`, kills its rank 1 once the first checkpoint exists, checks
/// that the job ends, resumes it, and compares the loss curve with the uninterrupted one.
///
/// The killed run is asked for far more steps than the curve has, so that it cannot finish
/// before the kill however fast the machine; the resume sets the curve's length back
/// (`--resume --steps`), the schedule being the config's own.
fn kill_and_resume(config: &Path, data: &Path, run: &Path, uninterrupted: &[f64]) {
    let mut cmd = mpirun(2);
    train_args(&mut cmd, config, data, run);
    cmd.args(["--dist", "mpi", "--dist-timeout", "60", "--steps", "100000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let start = Instant::now();
    let latest = run.join("checkpoints").join("latest");
    while !latest.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "no checkpoint written"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pids = ranks_of(run);
    assert_eq!(pids.len(), 2, "expected two ranks, found {pids:?}");
    let victim = *pids.iter().max().unwrap();
    Command::new("kill")
        .args(["-9", &victim.to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        !out.status.success(),
        "the job went on without a rank: {}",
        text(&out)
    );
    assert!(start.elapsed() < Duration::from_secs(600));
    let resumed_from = std::fs::read_to_string(&latest).unwrap();
    assert!(
        resumed_from.trim() <= format!("step_{STEPS:08}").as_str(),
        "killed after the curve's end ({resumed_from})"
    );

    let mut cmd = mpirun(2);
    cmd.arg(example("train"))
        .args(["--data", data.to_str().unwrap()])
        .args(["--out", run.to_str().unwrap()])
        .args(["--resume", "--no-progress", "--dist", "mpi"])
        .args(["--steps", &STEPS.to_string()]);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(losses(run), uninterrupted, "the resumed curve differs");
}
