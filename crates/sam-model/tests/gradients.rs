//! Training parity: the gradient of every parameter against PyTorch autograd on the official
//! modules (`tools/reference/make_grad_fixtures.py`).
//!
//! A batch of two images through the image encoder, a prompt batch decoded for each (points
//! with a not-a-point pad and a mask; boxes with points, two prompts), and a fixed random linear
//! function of all mask logits and IoU predictions as the loss. The fixture's config is sized so
//! that flex's own training kernels (the recorded softmax with the rel-pos terms, layer norm,
//! GELU) run, not only Burn's ops. Gradients are compared under the official `state_dict`
//! keys and layouts, through [`Sam::save_official_safetensors`] of a model whose parameters are
//! replaced by their gradients.

mod common;

use burn::module::{Module, ModuleMapper, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use common::*;
use sam_model::{PointPrompt, Prompts, Sam};

const NAME: &str = "sam_tiny_grad";

/// Forward outputs against the reference's: relative to each tensor's scale.
const VALUE_TOL: f32 = 1e-4;
/// Every parameter's gradient, relative to the largest of the reference's for that tensor
/// (measured: 3.3e-6 on flex, 8.4e-6 on wgpu/lavapipe).
const GRAD_TOL: f32 = 1e-4;
/// Below this fraction of the largest gradient in the model, a tensor's gradient is round-off.
const ZERO: f32 = 1e-6;

/// Parameters replaced by their gradients (zeros where the loss does not reach one).
struct ToGradients<'a>(&'a GradientsParams);

impl ModuleMapper for ToGradients<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let grad = self.0.get::<D>(param.id);
        param.map(|value| match grad {
            Some(grad) => grad,
            None => value.zeros_like(),
        })
    }
}

/// The loss of the fixture's two images and prompt batches on `device`, with the forward
/// outputs checked on the way.
fn loss(sam: &Sam, out: &Outputs, device: &Device) -> Tensor<1> {
    let emb = sam
        .image_embeddings(out.float("input/image", device))
        .expect("encoder input");
    assert_close("embedding", emb.clone(), out, "embedding", VALUE_TOL);
    let mut loss = Tensor::<1>::zeros([1], device);
    for (i, multimask) in [(0, true), (1, false)] {
        let key = format!("image{i}");
        let optional = |name: &str| {
            let k = format!("{key}/{name}");
            out.has(&k).then_some(k)
        };
        let prompts = Prompts {
            points: Some(PointPrompt {
                coords: out.float(&format!("{key}/point_coords"), device),
                labels: out.int(&format!("{key}/point_labels"), device),
            }),
            boxes: optional("boxes").map(|k| out.float(&k, device)),
            masks: optional("mask_input").map(|k| out.float(&k, device)),
            embeddings: None,
        };
        let pred = sam
            .predict(emb.clone().narrow(0, i, 1), prompts, multimask)
            .expect("prompts");
        assert_close(
            &key,
            pred.low_res_masks.clone(),
            out,
            &format!("{key}/low_res_masks"),
            VALUE_TOL,
        );
        assert_close(
            &key,
            pred.iou_predictions.clone(),
            out,
            &format!("{key}/iou_predictions"),
            VALUE_TOL,
        );
        let w_masks: Tensor<4> = out.float(&format!("{key}/mask_weights"), device);
        let w_iou: Tensor<2> = out.float(&format!("{key}/iou_weights"), device);
        loss = loss + (pred.low_res_masks * w_masks).sum() + (pred.iou_predictions * w_iou).sum();
    }
    loss
}

#[test]
fn parameter_gradients_match_pytorch_autograd() {
    let out = Outputs::from_path(&fixtures().join(format!("{NAME}_grads.safetensors")));
    let dir = tempfile::tempdir().expect("temp dir");
    #[allow(unused_mut)]
    let mut devices = vec![
        ("flex", Device::flex().autodiff()),
        (
            "flex, checkpointing",
            Device::flex().autodiff().gradient_checkpointing(),
        ),
    ];
    // The recorded operations as Burn's ops on a CubeCL backend (lavapipe in CI).
    #[cfg(feature = "wgpu")]
    if std::env::var_os("SAM_SKIP_WGPU").is_none() {
        devices.push(("wgpu", Device::wgpu(Default::default()).autodiff()));
    }
    for (tag, device) in devices {
        let sam = Sam::load(
            fixtures().join(format!("{NAME}.pth")),
            &config(NAME),
            &device,
        )
        .expect("load .pth");
        let loss = loss(&sam, &out, &device);
        assert_close(tag, loss.clone(), &out, "loss", VALUE_TOL);
        let grads = GradientsParams::from_grads(loss.backward(), &sam);
        let path = dir.path().join(format!("{tag}.safetensors"));
        sam.map(&mut ToGradients(&grads))
            .save_official_safetensors(&path)
            .expect("save the gradients");
        let ours = Outputs::from_path(&path);
        let reference: Vec<String> = out
            .keys()
            .into_iter()
            .filter_map(|k| k.strip_prefix("grad/").map(str::to_owned))
            .collect();
        assert_eq!(ours.keys(), reference, "{tag}: the official keys");
        let overall = reference
            .iter()
            .map(|key| max_abs(&out.values(&format!("grad/{key}"))))
            .fold(0f32, nan_max);
        let mut worst = (0.0f32, String::new());
        let mut zeros = 0;
        for key in &reference {
            let expected = out.values(&format!("grad/{key}"));
            let shape = out.shape(&format!("grad/{key}"));
            assert_eq!(ours.shape(key), shape, "{tag}: the shape of {key}");
            let actual = ours.values(key);
            let scale = max_abs(&expected);
            // The attention key biases' gradients are zero in exact arithmetic (a bias on
            // every key adds the same `q·b` to a query's scores, which the softmax ignores):
            // both sides hold round-off, ~1e-7 here, to be compared with the model's scale.
            // The random Fourier features' matrix is a buffer: no gradient on either side.
            if scale <= ZERO * overall {
                assert!(
                    key.ends_with("k_proj.bias") || key.ends_with("gaussian_matrix"),
                    "{tag}: {key}'s reference gradient is zero"
                );
                assert!(
                    max_abs(&actual) <= ZERO * overall,
                    "{tag}: {key}'s gradient should be round-off, is up to {:e}",
                    max_abs(&actual)
                );
                zeros += 1;
                continue;
            }
            let err = rel_error_of(&actual, &expected);
            assert!(
                err <= GRAD_TOL,
                "{tag}: the gradient of {key} is off by {err:e} of its scale"
            );
            if err > worst.0 {
                worst = (err, key.clone());
            }
        }
        // Seven key biases (six attentions of the two-way transformer and its final one),
        // and the buffer.
        assert_eq!(zeros, 8, "{tag}: gradients that are zero or round-off");
        eprintln!(
            "{tag}: {} gradients, worst {:e} ({}); {zeros} zero in exact arithmetic",
            reference.len(),
            worst.0,
            worst.1
        );
    }
}
