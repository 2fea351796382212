//! Values and gradients against PyTorch (torchvision's focal loss, SAM 2's dice / IoU / combined
//! loss), from `tools/reference/make_loss_fixtures.py`.

use std::collections::HashMap;
use std::path::PathBuf;

use burn::tensor::{Device, Int, Tensor, TensorData};
use sam_losses::*;

struct Fixture(HashMap<String, (Vec<usize>, Vec<f32>)>);

impl Fixture {
    fn load() -> Self {
        let path =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/losses.safetensors");
        let bytes = std::fs::read(path).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut map = HashMap::new();
        for (k, v) in st.tensors() {
            let values: Vec<f32> = match v.dtype() {
                safetensors::Dtype::F32 => v
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
                safetensors::Dtype::I64 => v
                    .data()
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32)
                    .collect(),
                other => panic!("{k}: {other:?}"),
            };
            map.insert(k, (v.shape().to_vec(), values));
        }
        Self(map)
    }
    fn tensor<const D: usize>(&self, k: &str, device: &Device) -> Tensor<D> {
        let (shape, v) = &self.0[k];
        Tensor::from_data(TensorData::new(v.clone(), shape.clone()), device)
    }
    fn values(&self, k: &str) -> &[f32] {
        &self.0[k].1
    }
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
}

/// Max |a − e| relative to max |e| (absolute when the reference is all zeros).
fn close(what: &str, actual: &[f32], expected: &[f32], tol: f32) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    assert!(
        actual.iter().all(|v| v.is_finite()),
        "{what}: non-finite values"
    );
    let scale = expected
        .iter()
        .fold(0f32, |m, v| nan_max(m, v.abs()))
        .max(1e-6);
    let err = actual
        .iter()
        .zip(expected)
        .fold(0f32, |m, (a, e)| nan_max(m, (a - e).abs()))
        / scale;
    assert!(err <= tol, "{what}: max relative error {err:e} > {tol:e}");
}

fn devices() -> Vec<Device> {
    #[allow(unused_mut)]
    let mut d = vec![Device::flex().autodiff()];
    #[cfg(feature = "wgpu")]
    if std::env::var_os("SAM_SKIP_WGPU").is_none() {
        d.push(Device::wgpu(Default::default()).autodiff());
    }
    d
}

const TOL: f32 = 1e-5;

#[test]
fn focal_loss_matches_torchvision_in_value_and_gradient() {
    let f = Fixture::load();
    for device in devices() {
        let targets = f
            .tensor::<4>("inputs/targets", &device)
            .expand([4, 3, 12, 10]);
        for (key, reduction) in [
            ("none", None),
            ("mean", Some(Reduction::Mean)),
            ("sum", Some(Reduction::Sum)),
        ] {
            let x = f.tensor::<4>("inputs/logits", &device).require_grad();
            let loss =
                sigmoid_focal_loss(x.clone(), targets.clone(), &FocalLossConfig::new()).unwrap();
            let (value, scalar) = match reduction {
                None => (values(loss.clone()), loss.sum()),
                Some(r) => {
                    let l = r.apply(loss);
                    (values(l.clone()), l)
                }
            };
            close(
                &format!("focal {key}"),
                &value,
                f.values(&format!("focal_{key}/loss")),
                TOL,
            );
            let grad = x.grad(&scalar.backward()).unwrap();
            close(
                &format!("focal {key} grad"),
                &values(grad),
                f.values(&format!("focal_{key}/grad")),
                TOL,
            );
        }
        let x = f.tensor::<4>("inputs/logits", &device).require_grad();
        let config = FocalLossConfig::new().with_alpha(0.5).with_gamma(1.5);
        let loss = Reduction::Mean.apply(sigmoid_focal_loss(x.clone(), targets, &config).unwrap());
        close(
            "focal α .5 γ 1.5",
            &values(loss.clone()),
            f.values("focal_a05_g15/loss"),
            TOL,
        );
        let grad = x.grad(&loss.backward()).unwrap();
        close(
            "focal α .5 γ 1.5 grad",
            &values(grad),
            f.values("focal_a05_g15/grad"),
            TOL,
        );
    }
}

#[test]
fn dice_and_iou_losses_match_sam2() {
    let f = Fixture::load();
    for device in devices() {
        let targets = f
            .tensor::<4>("inputs/targets", &device)
            .expand([4, 3, 12, 10]);
        let x = f.tensor::<4>("inputs/logits", &device).require_grad();
        let dice = dice_loss_per_mask(x.clone(), targets.clone(), None, 1.0).unwrap() / 4.0;
        close(
            "dice",
            &values(dice.clone()),
            f.values("dice_multimask/loss"),
            TOL,
        );
        let grad = x.grad(&dice.sum().backward()).unwrap();
        close(
            "dice grad",
            &values(grad),
            f.values("dice_multimask/grad"),
            TOL,
        );

        let ious = f.tensor::<2>("inputs/ious", &device).require_grad();
        let x = f.tensor::<4>("inputs/logits", &device).require_grad();
        let iou = iou_loss_per_mask(x.clone(), targets, ious.clone(), None).unwrap() / 4.0;
        close(
            "iou",
            &values(iou.clone()),
            f.values("iou_multimask/loss"),
            TOL,
        );
        let grads = iou.sum().backward();
        close(
            "iou grad",
            &values(ious.grad(&grads).unwrap()),
            f.values("iou_multimask/grad_iou"),
            TOL,
        );
        // No gradient reaches the logits through the actual IoU.
        if let Some(g) = x.grad(&grads) {
            assert!(values(g).iter().all(|v| *v == 0.0));
        }
    }
}

#[test]
fn sam_loss_selects_the_best_output_and_matches_sam2() {
    let f = Fixture::load();
    let loss = SamLossConfig::new().init().unwrap();
    for device in devices() {
        let x = f.tensor::<4>("inputs/logits", &device).require_grad();
        let ious = f.tensor::<2>("inputs/ious", &device).require_grad();
        let targets = f.tensor::<4>("inputs/targets", &device);
        let out = loss
            .forward(x.clone(), targets.clone(), ious.clone(), None, None)
            .unwrap();
        close(
            "total",
            &values(out.total.clone()),
            f.values("sam/total"),
            TOL,
        );
        let terms = [
            values(out.focal.clone())[0],
            values(out.dice.clone())[0],
            values(out.iou.clone())[0],
        ];
        close("terms", &terms, f.values("sam/terms"), TOL);
        let selected: Vec<f32> = values(out.selected.clone().float());
        assert_eq!(selected, f.values("sam/best"), "selected outputs");
        let grads = out.total.backward();
        close(
            "grad logits",
            &values(x.grad(&grads).unwrap()),
            f.values("sam/grad_logits"),
            TOL,
        );
        close(
            "grad iou",
            &values(ious.grad(&grads).unwrap()),
            f.values("sam/grad_iou"),
            TOL,
        );

        // One output per object, normalised by a global object count.
        let x1 = f
            .tensor::<4>("inputs/logits", &device)
            .narrow(1, 0, 1)
            .detach()
            .require_grad();
        let i1 = f.tensor::<2>("inputs/ious", &device).narrow(1, 0, 1);
        let out = loss
            .forward(x1.clone(), targets, i1, None, Some(7.0))
            .unwrap();
        close(
            "single total",
            &values(out.total.clone()),
            f.values("sam_single/total"),
            TOL,
        );
        let grads = out.total.backward();
        close(
            "single grad",
            &values(x1.grad(&grads).unwrap()),
            f.values("sam_single/grad_logits"),
            TOL,
        );
    }
}

#[test]
fn extreme_empty_and_full_masks_stay_finite() {
    let device = Device::flex().autodiff();
    let loss = SamLossConfig::new().init().unwrap();
    for value in [1e4f32, -1e4, 0.0, 80.0, -80.0] {
        for target in [0.0f32, 1.0] {
            let x = Tensor::<4>::full([2, 3, 5, 7], value, &device).require_grad();
            let t = Tensor::<4>::full([2, 1, 5, 7], target, &device);
            let i = Tensor::<2>::full([2, 3], 0.5, &device).require_grad();
            let out = loss.forward(x.clone(), t, i.clone(), None, None).unwrap();
            let total = values(out.total.clone())[0];
            assert!(
                total.is_finite(),
                "logit {value}, target {target}: loss {total}"
            );
            let grads = out.total.backward();
            assert!(
                values(x.grad(&grads).unwrap())
                    .iter()
                    .all(|g| g.is_finite()),
                "logit {value} target {target}: grad"
            );
            assert!(
                values(i.grad(&grads).unwrap())
                    .iter()
                    .all(|g| g.is_finite())
            );
        }
    }
}

#[test]
fn valid_pixel_mask_equals_cropping_the_padding() {
    let device = Device::flex();
    let f = Fixture::load();
    let loss = SamLossConfig::new().init().unwrap();
    let logits = f.tensor::<4>("inputs/logits", &device);
    let targets = f.tensor::<4>("inputs/targets", &device);
    let ious = f.tensor::<2>("inputs/ious", &device);
    let cropped = loss
        .forward(
            logits.clone().narrow(2, 0, 9).narrow(3, 0, 7),
            targets.clone().narrow(2, 0, 9).narrow(3, 0, 7),
            ious.clone(),
            None,
            None,
        )
        .unwrap();
    // The same tensors padded to 12×10 with garbage, and the padding marked invalid.
    let valid = Tensor::<4>::ones([4, 1, 9, 7], &device).pad([(0, 0), (0, 0), (0, 3), (0, 3)], 0.0);
    let masked = loss
        .forward(logits, targets, ious, Some(valid), None)
        .unwrap();
    for (a, b) in [
        (cropped.total, masked.total),
        (cropped.focal, masked.focal),
        (cropped.dice, masked.dice),
        (cropped.iou, masked.iou),
    ] {
        close("valid mask", &values(b), &values(a), 1e-5);
    }
}

#[test]
fn shape_mismatches_name_both_shapes() {
    let device = Device::flex();
    let loss = SamLossConfig::new().init().unwrap();
    let x = Tensor::<4>::zeros([2, 3, 8, 8], &device);
    let e = loss
        .forward(
            x.clone(),
            Tensor::zeros([2, 1, 8, 9], &device),
            Tensor::zeros([2, 3], &device),
            None,
            None,
        )
        .unwrap_err();
    assert!(
        e.to_string().contains("[2, 3, 8, 8]") && e.to_string().contains("[2, 1, 8, 9]"),
        "{e}"
    );
    let e = loss
        .forward(
            x.clone(),
            Tensor::zeros([2, 1, 8, 8], &device),
            Tensor::zeros([2, 4], &device),
            None,
            None,
        )
        .unwrap_err();
    assert!(
        e.to_string().contains("[2, 4]") && e.to_string().contains("[2, 3]"),
        "{e}"
    );
    let e = sigmoid_focal_loss(
        Tensor::<2>::zeros([3, 4], &device),
        Tensor::zeros([4, 3], &device),
        &FocalLossConfig::new(),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("[3, 4]") && e.to_string().contains("[4, 3]"),
        "{e}"
    );
    let e = dice_loss_per_mask(
        x.clone(),
        x.clone(),
        Some(Tensor::zeros([2, 3, 4, 4], &device)),
        1.0,
    )
    .unwrap_err();
    assert!(e.to_string().contains("[2, 3, 4, 4]"), "{e}");
    let e = SamLossConfig::new()
        .with_dice_weight(-1.0)
        .init()
        .expect_err("an error")
        .to_string();
    assert!(e.contains("dice_weight -1"), "{e}");
    let e = FocalLossConfig::new()
        .with_gamma(-2.0)
        .validate()
        .expect_err("an error")
        .to_string();
    assert!(e.contains("gamma -2"), "{e}");
    let _: Tensor<2, Int> = Tensor::zeros([1, 1], &device);
}

/// In a config file, missing fields take the paper's values and unknown ones are errors.
#[test]
fn configs_from_json_default_what_is_missing() {
    let c: SamLossConfig =
        serde_json::from_str(r#"{"focal_weight": 10, "focal": {"gamma": 1.5}}"#).unwrap();
    assert_eq!(
        c,
        SamLossConfig::new()
            .with_focal_weight(10.0)
            .with_focal(FocalLossConfig::new().with_gamma(1.5))
    );
    let e = serde_json::from_str::<SamLossConfig>(r#"{"focal_wieght": 10}"#).unwrap_err();
    assert!(e.to_string().contains("focal_wieght"), "{e}");
    let round: SamLossConfig =
        serde_json::from_str(&serde_json::to_string(&SamLossConfig::new()).unwrap()).unwrap();
    assert_eq!(round, SamLossConfig::new());
}

/// The larger of the two, NaN if either is (`f32::max` drops a NaN, so a NaN output would pass).
fn nan_max(m: f32, x: f32) -> f32 {
    if x.is_nan() || m.is_nan() {
        f32::NAN
    } else {
        m.max(x)
    }
}
