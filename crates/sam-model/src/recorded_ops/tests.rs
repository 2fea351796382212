//! The recorded operations against f64 and Burn's own ops.

use super::*;
use crate::test_util::normal;
use burn::tensor::{Device, FloatDType, activation};

fn max_rel<const D: usize>(ours: Tensor<D>, burn: Tensor<D>) -> f32 {
    let diff = (ours - burn.clone()).abs().max().into_scalar::<f32>();
    diff / burn.abs().max().into_scalar::<f32>()
}

/// `t`'s values in f64 on plain flex.
fn f64<const D: usize>(t: &Tensor<D>) -> Tensor<D> {
    let values = t.clone().cast(FloatDType::F32).to_data().convert::<f64>();
    Tensor::from_data(values, (&Device::flex(), DType::F64))
}

/// The input gradient of `Σ w ⊙ y` for `y = f(x)`.
fn grad(x: &Tensor<3>, y: Tensor<3>, w: &Tensor<3>) -> Tensor<3> {
    let grads = (y * w.clone()).sum().backward();
    x.grad(&grads).expect("x has a gradient")
}

/// `x` and the weights of the summed output, on `device` in `dtype`; the input to the ops
/// is `1.5·xᵀ`, a transposed (non-contiguous) tensor.
fn inputs(device: &Device, dtype: FloatDType) -> (Tensor<3>, Tensor<3>) {
    let x = normal::<3>([3, 300, 40], 0.0, 2.0, 1, device)
        .cast(dtype)
        .require_grad();
    let w = normal::<3>([3, 40, 300], 0.0, 1.0, 2, device).cast(dtype);
    (x, w)
}

/// The exact softmax of `u` (f64) and the exact input gradient of `Σ w ⊙ softmax(1.5·xᵀ)`:
/// `1.5·(softmax'(u) ⊙ w)ᵀ`.
fn exact_softmax(u: Tensor<3>, w: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
    let y = activation::softmax(u, 2);
    let grad = y.clone() * (w.clone() - (w * y.clone()).sum_dim(2));
    (y, grad.swap_dims(1, 2) * 1.5)
}

/// Values and input gradients against the exact ones (f64) and Burn's own softmax and
/// GELU, through a transposed (non-contiguous) input, on the plain and the
/// gradient-checkpointing autodiff devices.
#[cfg(feature = "flex")]
#[test]
fn gradients_match_f64_and_burns() {
    for device in [
        Device::flex().autodiff(),
        Device::flex().autodiff().gradient_checkpointing(),
    ] {
        let (x, w) = inputs(&device, FloatDType::F32);
        let input = || x.clone().swap_dims(1, 2) * 1.5;
        assert!(applies(&input()) && gelu_applies(&input()));
        let (u, w64) = (f64(&input()), f64(&w));
        let (softmax, softmax_grad) = exact_softmax(u.clone(), w64.clone());
        let cdf = ((u.clone() * std::f64::consts::FRAC_1_SQRT_2).erf() + 1.0) * 0.5;
        let pdf = (u.clone().powi_scalar(2) * -0.5).exp() * 0.398_942_280_401_432_7;
        let gelu_grad = (w64 * (cdf + u.clone() * pdf)).swap_dims(1, 2) * 1.5;
        for (name, ours, burn, exact_values, exact_grad) in [
            (
                "softmax",
                crate::precision::softmax(input(), 2),
                activation::softmax(input(), 2),
                softmax,
                softmax_grad,
            ),
            (
                "gelu",
                crate::gelu::gelu(input()),
                activation::gelu(input()),
                activation::gelu(u.clone()),
                gelu_grad,
            ),
        ] {
            let values = max_rel(f64(&ours), exact_values.clone());
            assert!(values < 1e-6, "{name} values off by {values}");
            let values = max_rel(ours.clone(), burn.clone());
            assert!(
                values < 1e-6,
                "{name} values differ from Burn's by {values}"
            );
            let (ours, burn) = (grad(&x, ours, &w), grad(&x, burn, &w));
            let grads = max_rel(f64(&ours), exact_grad);
            assert!(grads < 5e-6, "{name} gradients off by {grads}");
            // f32 rounding: each is up to ~2e-6 of scale off the exact gradient (the row's dot
            // product cancels), Burn's decomposed one as ours.
            let grads = max_rel(ours, burn);
            assert!(
                grads < 1e-5,
                "{name} gradients differ from Burn's by {grads}"
            );
        }
    }
}

/// The rel-pos softmax of the image encoder's training (scores from a product, as there)
/// against Burn's broadcast adds and softmax in f64: values and the gradients of the
/// queries, keys and both terms, on the plain and the gradient-checkpointing devices;
/// rows of 9 × 14 keys, not a multiple of the vector lanes.
#[cfg(feature = "flex")]
#[test]
fn rel_pos_softmax_matches_f64() {
    use crate::image_encoder::rel_pos::softmax_with_rel_pos;
    let (k_h, k_w) = (9, 14);
    let plain = Device::flex();
    let seed = std::cell::Cell::new(300);
    let random = |shape: [usize; 3], std: f64| {
        seed.set(seed.get() + 1);
        normal::<3>(shape, 0.0, std, seed.get(), &plain)
    };
    let leaves = [
        random([3, 100, 16], 1.0),
        random([3, k_h * k_w, 16], 1.0),
        random([3, 100, k_h], 2.0),
        random([3, 100, k_w], 2.0),
    ];
    let w = random([3, 100, k_h * k_w], 1.0);
    // Values and the four leaves' gradients of `Σ w ⊙ softmax(q·kᵀ + rel_h + rel_w)`.
    let run = |device: &Device, dtype: DType| {
        let on = |t: &Tensor<3>| {
            Tensor::<3>::from_data(t.to_data().convert_dtype(dtype), (device, dtype)).require_grad()
        };
        let [q, k, rel_h, rel_w] = leaves.each_ref().map(on);
        let attn = q.clone().matmul(k.clone().swap_dims(1, 2));
        assert_eq!(rel_pos_applies(&attn), dtype == DType::F32, "{dtype:?}");
        let y = softmax_with_rel_pos(attn, rel_h.clone(), rel_w.clone(), (k_h, k_w));
        let grads = (y.clone() * on(&w)).sum().backward();
        let grad = |t: &Tensor<3>| f64(&t.grad(&grads).expect("a leaf's gradient"));
        (f64(&y), [&q, &k, &rel_h, &rel_w].map(grad))
    };
    let (exact, exact_grads) = run(&Device::flex().autodiff(), DType::F64);
    for device in [
        Device::flex().autodiff(),
        Device::flex().autodiff().gradient_checkpointing(),
    ] {
        let (values, grads) = run(&device, DType::F32);
        // A few f32 roundings of the largest probability (random inputs: up to ~1.1e-6).
        let off = max_rel(values, exact.clone());
        assert!(off < 2e-6, "values off by {off}");
        for (name, ours, exact) in ["q", "k", "rel_h", "rel_w"]
            .into_iter()
            .zip(grads)
            .zip(exact_grads.clone())
            .map(|((n, o), e)| (n, o, e))
        {
            let off = max_rel(ours, exact);
            assert!(off < 5e-6, "{name}'s gradient off by {off}");
        }
    }
}

/// The recorded attention against the spelled-out one (Burn's ops in f64) on a grid of 5 × 9
/// tokens (rows and columns batched differently): values and the gradients of `qkv` and of
/// both rel-pos parameters through `get_rel_pos`, on the plain and checkpointing devices.
#[cfg(feature = "flex")]
#[test]
fn recorded_attention_matches_f64() {
    use crate::image_encoder::rel_pos::{
        add_decomposed_rel_pos, decomposed_rel_pos_terms, get_rel_pos,
    };
    let (h, w, n, hd) = (5, 9, 6, 8);
    let plain = Device::flex();
    let leaves = (
        normal::<4>([3, n, h * w, hd], 0.0, 1.0, 4, &plain),
        normal::<2>([2 * h - 1, hd], 0.0, 1.0, 5, &plain),
        normal::<2>([2 * w - 1, hd], 0.0, 1.0, 6, &plain),
    );
    let weights = normal::<3>([n, h * w, hd], 0.0, 1.0, 7, &plain);
    let scale = (hd as f64).powf(-0.5);
    fn on<const D: usize>(t: &Tensor<D>, device: &Device, dtype: DType) -> Tensor<D> {
        Tensor::from_data(t.to_data().convert_dtype(dtype), (device, dtype))
    }
    let run = |device: &Device, dtype: DType, recorded: bool| {
        let qkv = on(&leaves.0, device, dtype).require_grad();
        let rph = on(&leaves.1, device, dtype).require_grad();
        let rpw = on(&leaves.2, device, dtype).require_grad();
        let out = if recorded {
            let (th, tw) = (
                get_rel_pos(h, h, rph.clone()),
                get_rel_pos(w, w, rpw.clone()),
            );
            attention(qkv.clone(), th, tw, scale, (h, w))
        } else {
            let part = |i| qkv.clone().narrow(0, i, 1).reshape([n, h * w, hd]);
            let (q, k, v) = (part(0), part(1), part(2));
            let (rel_h, rel_w) =
                decomposed_rel_pos_terms(q.clone(), rph.clone(), rpw.clone(), (h, w), (h, w));
            let scores = (q * scale).matmul(k.swap_dims(1, 2));
            activation::softmax(add_decomposed_rel_pos(scores, rel_h, rel_w, (h, w)), 2).matmul(v)
        };
        let grads = (out.clone() * on(&weights, device, dtype)).sum().backward();
        let g4 = f64(&qkv
            .grad(&grads)
            .expect("qkv's gradient")
            .reshape([3 * n, h * w, hd]));
        let g2 = |p: &Tensor<2>| {
            let g = p.grad(&grads).expect("a table's gradient");
            let [a, b] = g.dims();
            f64(&g.reshape([1, a, b]))
        };
        (f64(&out), [g4, g2(&rph), g2(&rpw)])
    };
    let (exact, exact_grads) = run(&Device::flex().autodiff(), DType::F64, false);
    for device in [
        Device::flex().autodiff(),
        Device::flex().autodiff().gradient_checkpointing(),
    ] {
        let (values, grads) = run(&device, DType::F32, true);
        let off = max_rel(values, exact.clone());
        assert!(off < 2e-6, "values off by {off}");
        for (name, ours, exact) in ["qkv", "rel_pos_h", "rel_pos_w"]
            .into_iter()
            .zip(grads)
            .zip(exact_grads.clone())
            .map(|((n, o), e)| (n, o, e))
        {
            let off = max_rel(ours, exact);
            assert!(off < 5e-6, "{name}'s gradient off by {off}");
        }
    }
}

/// A 16-bit softmax (computed in f32, its 16-bit output kept) against the exact one of
/// the same 16-bit input and against Burn's ops on f32 casts, on `device`. The bounds are
/// a few roundings to the 16-bit type (bf16: 2⁻⁹ of a value; f16: 2⁻¹²).
fn check_half_softmax(device: &Device, dtype: FloatDType, bound: f32) {
    let (x, w) = inputs(device, dtype);
    let input = || x.clone().swap_dims(1, 2) * 1.5;
    assert!(applies(&input()), "{dtype:?} on {device:?}");
    let ours = crate::precision::softmax(input(), 2);
    assert_eq!(ours.dtype(), DType::from(dtype));
    let burn = activation::softmax(input().cast(FloatDType::F32), 2).cast(dtype);
    let (exact, exact_grad) = exact_softmax(f64(&input()), f64(&w));
    let as_f32 = |t: Tensor<3>| t.cast(FloatDType::F32);
    let values = max_rel(f64(&ours), exact);
    assert!(values < bound, "{dtype:?} values off by {values}");
    let (ours, burn) = (grad(&x, ours, &w), grad(&x, burn, &w));
    assert_eq!(ours.dtype(), DType::from(dtype));
    let grads = max_rel(f64(&ours), exact_grad);
    assert!(grads < 4.0 * bound, "{dtype:?} gradients off by {grads}");
    let to_burn = max_rel(as_f32(ours), as_f32(burn));
    eprintln!("{dtype:?} on {device:?}: values {values:e}, gradients {grads:e} of scale off");
    let grads = to_burn;
    assert!(
        grads < 4.0 * bound,
        "{dtype:?} gradients differ from Burn's by {grads}"
    );
}

#[cfg(feature = "flex")]
#[test]
fn half_softmax_is_computed_in_f32() {
    let device = Device::flex().autodiff();
    check_half_softmax(&device, FloatDType::BF16, 1e-2);
    check_half_softmax(&device, FloatDType::F16, 2e-3);
}

/// On the CubeCL backends the softmax and the layer norm are Burn's ops, recorded as one
/// operation each.
#[cfg(feature = "wgpu")]
#[test]
fn cube_ops_match_f64() {
    if std::env::var_os("SAM_SKIP_WGPU").is_some() {
        return;
    }
    let device = Device::wgpu(Default::default()).autodiff();
    let (x, w) = inputs(&device, FloatDType::F32);
    let input = || x.clone().swap_dims(1, 2) * 1.5;
    assert!(applies(&input()));
    assert!(gelu_applies(&input()));
    let u = f64(&input());
    let cdf = ((u.clone() * std::f64::consts::FRAC_1_SQRT_2).erf() + 1.0) * 0.5;
    let pdf = (u.clone().powi_scalar(2) * -0.5).exp() * 0.398_942_280_401_432_7;
    let exact_grad = (f64(&w) * (cdf + u * pdf)).swap_dims(1, 2) * 1.5;
    let grads = max_rel(f64(&grad(&x, crate::gelu::gelu(input()), &w)), exact_grad);
    assert!(grads < 5e-6, "GELU gradients off by {grads}");
    let ours = crate::precision::softmax(input(), 2);
    let (exact, exact_grad) = exact_softmax(f64(&input()), f64(&w));
    let values = max_rel(f64(&ours), exact);
    assert!(values < 2e-6, "values off by {values}");
    let grads = max_rel(f64(&grad(&x, ours, &w)), exact_grad);
    assert!(grads < 5e-6, "gradients off by {grads}");
    for (dtype, bound) in [(FloatDType::F16, 2e-3), (FloatDType::BF16, 1e-2)] {
        if device.supports_dtype(dtype) {
            check_half_softmax(&device, dtype, bound);
        }
    }
    let (values, grads) = check_layer_norm(&device, FloatDType::F32);
    assert!(
        values < 1e-6 && grads < 5e-6,
        "layer norm: {values}, {grads}"
    );
}

/// The layer norm on `device` in `dtype` (through a channels-last view of an NCHW tensor,
/// as `LayerNorm2d`'s) against Burn's own in f64: the values and the gradients of the
/// input, `gamma` and `beta`, then with `gamma` and `beta` frozen. Returns the largest
/// relative errors of the values and of the gradients.
fn check_layer_norm(device: &Device, dtype: FloatDType) -> (f32, f32) {
    let seed = std::cell::Cell::new(800);
    let random = |shape: [usize; 4], mean: f64, std: f64| {
        seed.set(seed.get() + 1);
        normal::<4>(shape, mean, std, seed.get(), device).cast(dtype)
    };
    let x = random([2, 96, 12, 20], 0.5, 2.0).require_grad();
    let params = random([2, 96, 1, 1], 1.0, 0.5).reshape([2, 96]);
    let w = random([2, 12, 20, 96], 0.0, 1.0);
    let (mut values, mut grads) = (0.0f32, 0.0f32);
    for trained in [true, false] {
        let gamma = params.clone().narrow(0, 0, 1).reshape([96]);
        let beta = params.clone().narrow(0, 1, 1).reshape([96]);
        let (gamma, beta) = if trained {
            (gamma.require_grad(), beta.require_grad())
        } else {
            (gamma, beta)
        };
        let input = x.clone().permute([0, 2, 3, 1]);
        assert!(applies(&input), "{dtype:?} on {device:?}");
        let ours = crate::precision::layer_norm(input, gamma.clone(), Some(beta.clone()), 1e-6);
        assert_eq!(ours.dtype(), DType::from(dtype));
        let grads_of = |y: Tensor<4>, w: Tensor<4>, x: &Tensor<4>, g: &Tensor<1>, b: &Tensor<1>| {
            let all = (y * w).sum().backward();
            let param = |t: &Tensor<1>| t.grad(&all);
            (x.grad(&all).expect("x has a gradient"), param(g), param(b))
        };
        let (d_x, d_gamma, d_beta) = grads_of(ours.clone(), w.clone(), &x, &gamma, &beta);
        assert_eq!(d_gamma.is_some(), trained);
        // Burn's decomposed layer norm in f64.
        let exact_device = Device::flex().autodiff();
        let to64 = |t: &Tensor<4>| Tensor::<4>::from_data(f64(t).to_data(), &exact_device);
        let to64_1 = |t: &Tensor<1>| Tensor::<1>::from_data(f64(t).to_data(), &exact_device);
        let (x64, g64, b64) = (
            to64(&x).require_grad(),
            to64_1(&gamma).require_grad(),
            to64_1(&beta).require_grad(),
        );
        let exact = burn::tensor::module::layer_norm(
            x64.clone().permute([0, 2, 3, 1]),
            g64.clone(),
            Some(b64.clone()),
            1e-6,
        );
        let (e_x, e_gamma, e_beta) = grads_of(exact.clone(), to64(&w), &x64, &g64, &b64);
        values = values.max(max_rel(f64(&ours), f64(&exact)));
        grads = grads.max(max_rel(f64(&d_x), f64(&e_x)));
        if trained {
            let rel = |ours: Option<Tensor<1>>, exact: Option<Tensor<1>>| {
                max_rel(f64(&ours.expect("trained")), f64(&exact.expect("trained")))
            };
            grads = grads.max(rel(d_gamma, e_gamma)).max(rel(d_beta, e_beta));
        }
    }
    eprintln!("layer norm {dtype:?} on {device:?}: values {values:e}, gradients {grads:e}");
    (values, grads)
}

#[cfg(feature = "flex")]
#[test]
fn layer_norm_matches_f64() {
    for device in [
        Device::flex().autodiff(),
        Device::flex().autodiff().gradient_checkpointing(),
    ] {
        let (values, grads) = check_layer_norm(&device, FloatDType::F32);
        assert!(values < 1e-6 && grads < 2e-6, "f32: {values}, {grads}");
    }
    let device = Device::flex().autodiff();
    let (values, grads) = check_layer_norm(&device, FloatDType::BF16);
    assert!(values < 1e-2 && grads < 4e-2, "bf16: {values}, {grads}");
    let (values, grads) = check_layer_norm(&device, FloatDType::F16);
    assert!(values < 2e-3 && grads < 8e-3, "f16: {values}, {grads}");
}

/// Inputs without a gradient run forward only; small f32 tensors keep Burn's ops, as do
/// devices without autodiff; GELU takes only f32.
#[cfg(feature = "flex")]
#[test]
fn untracked_and_excluded_inputs() {
    let device = Device::flex().autodiff();
    let x = normal::<3>([2, 100, 100], 0.0, 1.0, 9, &device);
    let y = crate::precision::softmax(x.clone(), 2);
    let sums = y.sum_dim(2) - 1.0;
    assert!(sums.abs().max().into_scalar::<f32>() < 1e-5);
    let small = x.clone().slice([0..1, 0..10, 0..10]);
    assert!(!applies(&small) && !gelu_applies(&small));
    let half = x.clone().cast(FloatDType::BF16);
    assert!(applies(&half) && !gelu_applies(&half));
    let plain = Tensor::<3>::from_data(x.to_data(), &Device::flex());
    assert!(!applies(&plain) && !gelu_applies(&plain));
    let double = x.cast(FloatDType::F64);
    assert!(!applies(&double) && !gelu_applies(&double));
}

/// The forward pass records the softmax as one operation: a gradient reaches the input
/// through a chain of two softmaxes and a GELU.
#[cfg(feature = "flex")]
#[test]
fn chained_operations_backpropagate() {
    let device = Device::flex().autodiff();
    let x = normal::<3>([2, 128, 128], 0.0, 1.0, 10, &device).require_grad();
    let ours = crate::precision::softmax(
        crate::gelu::gelu(crate::precision::softmax(x.clone(), 2) * 50.0),
        2,
    );
    let burn = activation::softmax(
        activation::gelu(activation::softmax(x.clone(), 2) * 50.0),
        2,
    );
    let w = normal::<3>([2, 128, 128], 0.0, 1.0, 11, &device);
    let rel = max_rel(grad(&x, ours, &w), grad(&x, burn, &w));
    assert!(rel < 1e-5, "gradients differ by {rel}");
}
