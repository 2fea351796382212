//! The bench's `check` job, training side: every parameter gradient of the committed
//! `sam_tiny_grad` fixture against PyTorch autograd on the official modules
//! (`tools/reference/make_grad_fixtures.py`), on any device and compute dtype. The test
//! `crates/sam-model/tests/gradients.rs` asserts the same on flex and wgpu; this is how a GPU
//! without a Rust toolchain gets checked.

use burn::module::{Module, ModuleMapper, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, FloatDType, Tensor};
use sam_model::{PointPrompt, Prompts, Sam, SamConfig};
use serde::Serialize;

use crate::bench::progress;
use crate::bench_check::{Outputs, fixtures, max_abs, nan_max, rel_error};
use crate::cli::CliError;

type Result<T> = std::result::Result<T, CliError>;

/// The fixture model.
const NAME: &str = "sam_tiny_grad";

/// Below this fraction of the largest gradient in the model, a reference gradient is zero in
/// exact arithmetic (the key biases of the two-way transformer; a buffer).
const ZERO: f32 = 1e-6;

/// Gradient errors against PyTorch autograd, each relative to its tensor's largest reference
/// value.
#[derive(Debug, Clone, Serialize)]
pub struct GradientReport {
    /// Always `check-gradients`.
    pub job: String,
    /// Device name.
    pub device: String,
    /// Fixture model.
    pub model: String,
    /// Compute type (the parameters and their gradients stay f32).
    pub dtype: String,
    /// The loss.
    pub loss_rel: f32,
    /// The worst parameter gradient.
    pub worst_rel: f32,
    /// Its `state_dict` key.
    pub worst_key: String,
    /// Gradients compared.
    pub gradients: usize,
    /// The cosine between all our gradients and all the reference's, as one vector: the
    /// measure for 16-bit compute, whose per-tensor errors are large where a gradient is a
    /// sum of terms that cancel (f32 values, bf16 products).
    pub cosine: f64,
    /// Of those, zero in exact arithmetic (not in `worst_rel`).
    pub zero: usize,
    /// The largest of ours among those, relative to the model's largest gradient.
    pub zero_rel: f32,
}

/// Parameters replaced by their gradients (zeros where the loss does not reach one).
struct ToGradients<'a>(&'a GradientsParams);

impl ModuleMapper for ToGradients<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let grad = self.0.get::<D>(param.id);
        param.map(|value| grad.unwrap_or_else(|| value.zeros_like()))
    }
}

/// The fixture's loss: two images, a prompt batch decoded for each, a fixed random linear
/// function of every mask logit and IoU prediction.
fn loss(sam: &Sam, out: &Outputs, device: &Device) -> Result<Tensor<1>> {
    let emb = sam.image_embeddings(out.float("input/image", device)?)?;
    let mut loss = Tensor::<1>::zeros([1], device);
    for (i, multimask) in [(0, true), (1, false)] {
        let key = format!("image{i}");
        let optional = |name: &str| -> Result<Option<String>> {
            let k = format!("{key}/{name}");
            Ok(out.get(&k).is_ok().then_some(k))
        };
        let prompts = Prompts {
            points: Some(PointPrompt {
                coords: out.float(&format!("{key}/point_coords"), device)?,
                labels: out.int(&format!("{key}/point_labels"), device)?,
            }),
            boxes: optional("boxes")?
                .map(|k| out.float(&k, device))
                .transpose()?,
            masks: optional("mask_input")?
                .map(|k| out.float(&k, device))
                .transpose()?,
            embeddings: None,
        };
        let pred = sam.predict(emb.clone().narrow(0, i, 1), prompts, multimask)?;
        let w_masks: Tensor<4> = out.float(&format!("{key}/mask_weights"), device)?;
        let w_iou: Tensor<2> = out.float(&format!("{key}/iou_weights"), device)?;
        loss = loss + (pred.low_res_masks * w_masks).sum() + (pred.iou_predictions * w_iou).sum();
    }
    Ok(loss)
}

/// Runs the gradient check on `device` (its autodiff twin), computing in `dtype` (a cast of the
/// f32 parameters, as mixed-precision training does).
pub fn check_gradients(
    device: &Device,
    device_name: &str,
    dtype: Option<FloatDType>,
) -> Result<GradientReport> {
    let dir = fixtures();
    let autodiff = device.clone().autodiff();
    let config = SamConfig::load(dir.join(format!("{NAME}.json")))?;
    let master = Sam::load(dir.join(format!("{NAME}.pth")), &config, &autodiff)?;
    let compute = match dtype {
        Some(d) => master.cast_float(d)?,
        None => master.clone(),
    };
    let out = Outputs::load(&dir.join(format!("{NAME}_grads.safetensors")))?;
    progress(format_args!("{NAME}: forward"));
    let loss = loss(&compute, &out, &autodiff)?;
    let (loss_rel, _) = out.compare("loss", loss.clone())?;
    progress(format_args!("{NAME}: backward"));
    let grads = GradientsParams::from_grads(loss.backward(), &master);
    progress(format_args!("{NAME}: gradients computed"));

    // Our gradients under the official keys and layouts.
    // One file per call: checks may run on several threads of one process.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        "sam-burn-gradients-{}-{call}.safetensors",
        std::process::id()
    ));
    let saved = master
        .map(&mut ToGradients(&grads))
        .save_official_safetensors(&path);
    let ours = saved
        .map_err(CliError::from)
        .and_then(|()| Outputs::load(&path));
    let _ = std::fs::remove_file(&path);
    let ours = ours?;

    let mut report = GradientReport {
        job: "check-gradients".into(),
        device: device_name.into(),
        model: NAME.into(),
        dtype: format!("{:?}", dtype.unwrap_or(FloatDType::F32)).to_lowercase(),
        loss_rel,
        worst_rel: 0.0,
        worst_key: String::new(),
        gradients: 0,
        cosine: 0.0,
        zero: 0,
        zero_rel: 0.0,
    };
    let keys = out.keys_with_prefix("grad/");
    let overall = keys
        .iter()
        .map(|k| out.get(k).map(|(_, v)| max_abs(v)))
        .collect::<Result<Vec<f32>>>()?
        .into_iter()
        .fold(0f32, nan_max)
        .max(f32::MIN_POSITIVE);
    let (mut dot, mut norms) = (0f64, (0f64, 0f64));
    for key in keys {
        let (shape, expected) = out.get(&key)?;
        let name = &key["grad/".len()..];
        let (our_shape, actual) = ours.get(name)?;
        if our_shape != shape {
            return Err(CliError::Usage(format!(
                "{name}: gradient of shape {our_shape:?} but the reference's is {shape:?}"
            )));
        }
        report.gradients += 1;
        for (a, e) in actual.iter().zip(expected) {
            let (a, e) = (f64::from(*a), f64::from(*e));
            dot += a * e;
            norms.0 += a * a;
            norms.1 += e * e;
        }
        let scale = max_abs(expected);
        if scale <= ZERO * overall {
            report.zero += 1;
            report.zero_rel = nan_max(report.zero_rel, max_abs(actual) / overall);
            continue;
        }
        let err = rel_error(actual, expected);
        // A NaN gradient is the worst of all (and stays reported).
        if err.is_nan() || (err > report.worst_rel && !report.worst_rel.is_nan()) {
            report.worst_rel = err;
            report.worst_key = name.to_owned();
        }
    }
    report.cosine = dot / (norms.0.sqrt() * norms.1.sqrt()).max(f64::MIN_POSITIVE);
    Ok(report)
}
