//! Full-size parity check against `tools/reference/full_size.py` (see docs/numerics.md).
//!
//! ```text
//! cargo run --release --example full_size_check -- --checkpoint X.pth \
//!     --reference X_outputs.safetensors [--model-type vit_l] [--device flex]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use sam_burn::bench_check::{nan_max, rel_error};
use sam_burn::burn::tensor::{Int, Tensor, TensorData};
use sam_burn::{PointPrompt, Prompts, Sam, SamConfig};

struct Args {
    checkpoint: PathBuf,
    reference: PathBuf,
    model_type: String,
    device: String,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        checkpoint: PathBuf::new(),
        reference: PathBuf::new(),
        model_type: "vit_l".into(),
        device: "flex".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--checkpoint" => args.checkpoint = value()?.into(),
            "--reference" => args.reference = value()?.into(),
            "--model-type" => args.model_type = value()?,
            "--device" => args.device = value()?,
            "-h" | "--help" => {
                println!(
                    "usage: full_size_check --checkpoint X.pth --reference X_outputs.safetensors \\\n    [--model-type vit_l] [--device flex]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.checkpoint.as_os_str().is_empty() || args.reference.as_os_str().is_empty() {
        return Err("--checkpoint and --reference are required".into());
    }
    Ok(args)
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn run(args: Args) -> Result<(), String> {
    let device = sam_burn::backend::device(&args.device).map_err(|e| e.to_string())?;
    let config = SamConfig::from_model_type(&args.model_type).map_err(|e| e.to_string())?;
    let bytes = std::fs::read(&args.reference)
        .map_err(|e| format!("cannot read {}: {e}", args.reference.display()))?;
    let reference = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| format!("{}: {e}", args.reference.display()))?;
    // Each tensor of the expected type and rank, so that building tensors cannot panic.
    let get = |key: &str,
               dtype: safetensors::Dtype,
               rank: usize|
     -> Result<(Vec<usize>, Vec<u8>), String> {
        let at = || format!("{}: {key}", args.reference.display());
        let view = reference
            .tensor(key)
            .map_err(|e| format!("{}: {e}", at()))?;
        if view.dtype() != dtype || view.shape().len() != rank {
            return Err(format!(
                "{}: {:?} of shape {:?}, expected {dtype:?} of rank {rank}",
                at(),
                view.dtype(),
                view.shape()
            ));
        }
        Ok((view.shape().to_vec(), view.data().to_vec()))
    };
    let floats = |key: &str, rank: usize| -> Result<(Vec<usize>, Vec<f32>), String> {
        let (shape, data) = get(key, safetensors::Dtype::F32, rank)?;
        let v = data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        Ok((shape, v.collect()))
    };

    let start = Instant::now();
    // A Hugging Face SamModel folder carries its own config.
    let sam = if sam_burn::model::is_hf_folder(&args.checkpoint) {
        Sam::load_hf(&args.checkpoint, &device)
    } else {
        Sam::load(&args.checkpoint, &config, &device)
    }
    .map_err(|e| e.to_string())?;
    let t_load = start.elapsed().as_secs_f64();

    let (shape, input) = floats("image/input", 4)?;
    let x: Tensor<4> = Tensor::from_data(TensorData::new(input, shape), &device);
    let start = Instant::now();
    let emb = sam
        .image_embeddings(sam.preprocess(x).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let emb_values = emb
        .clone()
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| format!("{e:?}"))?;
    let t_embed = start.elapsed().as_secs_f64();

    let (cshape, coords) = floats("point/coords", 3)?;
    let (lshape, lbytes) = get("point/labels", safetensors::Dtype::I64, 2)?;
    let labels: Vec<i64> = lbytes
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect();
    let prompts = Prompts {
        points: Some(PointPrompt {
            coords: Tensor::from_data(TensorData::new(coords, cshape), &device),
            labels: Tensor::<2, Int>::from_data(TensorData::new(labels, lshape), &device),
        }),
        ..Default::default()
    };
    let start = Instant::now();
    let pred = sam.predict(emb, prompts, true).map_err(|e| e.to_string())?;
    let low = pred
        .low_res_masks
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| format!("{e:?}"))?;
    let iou = pred
        .iou_predictions
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| format!("{e:?}"))?;
    let t_predict = start.elapsed().as_secs_f64();

    let (_, emb_ref) = floats("encoder/embedding", 4)?;
    let (_, low_ref) = floats("point/low_res_masks", 4)?;
    let (_, iou_ref) = floats("point/iou_predictions", 2)?;
    let iou_err = iou
        .iter()
        .zip(&iou_ref)
        .fold(0f32, |m, (a, e)| nan_max(m, (a - e).abs()));
    let agree = low
        .iter()
        .zip(&low_ref)
        .filter(|(a, e)| (**a > 0.0) == (**e > 0.0))
        .count() as f64
        / low_ref.len() as f64;
    println!("model {} on {}", args.model_type, args.device);
    println!(
        "load {t_load:.2} s, embed {t_embed:.2} s, predict {:.1} ms",
        t_predict * 1e3
    );
    println!(
        "image embedding max rel error {:e}",
        rel_error(&emb_values, &emb_ref)
    );
    println!(
        "low-res logits max rel error {:e}",
        rel_error(&low, &low_ref)
    );
    println!(
        "IoU max abs error {iou_err:e}; low-res mask agreement {:.6}",
        agree
    );
    println!("peak RSS {:.0} MiB", peak_rss_mib());
    Ok(())
}

fn main() -> ExitCode {
    sam_burn::allocator::keep_freed_memory();
    match parse().and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
