//! The image encoder's attention computes the same on every device, whichever kernel the
//! device takes: on GPUs a grid as large as a global block's goes through Burn's fused
//! attention with the rel-pos bias folded into the queries and keys, on the CPU through
//! pieces of the score matrix with the bias added in the softmax pass; windows the same,
//! padding included.

mod common;

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};
use common::test_util::Draws;
use common::{devices, nan_max};
use sam_model::image_encoder::Attention;

/// `run(attn, x)` on every device agrees with flex within 1e-5 of the output's scale.
fn agrees_across_devices(
    attn: &Attention,
    x: Tensor<4>,
    run: impl Fn(Attention, Tensor<4>) -> Tensor<4>,
) {
    let expected: Vec<f32> = run(attn.clone(), x.clone())
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let size = expected.iter().fold(0f32, |m, v| nan_max(m, v.abs()));

    // Flex is the yardstick (its kernels against the whole score matrix are unit tests of
    // `image_encoder::attention`); the other devices are what this checks.
    for (name, device) in devices().into_iter().filter(|(name, _)| *name != "flex") {
        let ours: Vec<f32> = run(
            attn.clone().to_device(&device),
            x.clone().to_device(&device),
        )
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap();
        assert_eq!(ours.len(), expected.len(), "{name}");
        let diff = ours
            .iter()
            .zip(&expected)
            .fold(0f32, |m, (a, b)| nan_max(m, (a - b).abs()));
        assert!(diff <= 1e-5 * size, "{name}: max diff {diff} (size {size})");
    }
}

#[test]
fn global_attention_agrees_across_devices() {
    let flex = Device::flex();
    let draws = Draws::new(1);
    // 24² = 576 tokens: more than GPUs spell out. Non-zero rel-pos tables, as trained.
    let (c, heads, side) = (32, 2, 24);
    let mut attn = Attention::new(c, heads, (side, side), &flex);
    attn.rel_pos_h = Param::from_tensor(draws.standard([2 * side - 1, c / heads], &flex));
    attn.rel_pos_w = Param::from_tensor(draws.standard([2 * side - 1, c / heads], &flex));
    let x = draws.standard([2, side, side, c], &flex);
    agrees_across_devices(&attn, x, |attn, x| attn.forward(x));
}

/// Windowed attention (rank-8 head and window split, padding filled with the zero token's
/// projection, cropped before `proj`) on every device, on a grid that needs padding.
#[test]
fn windowed_attention_agrees_across_devices() {
    let flex = Device::flex();
    let draws = Draws::new(1);
    let (c, heads, ws, (h, w)) = (32, 2, 7, (16, 10));
    let mut attn = Attention::new(c, heads, (ws, ws), &flex);
    attn.rel_pos_h = Param::from_tensor(draws.standard([2 * ws - 1, c / heads], &flex));
    attn.rel_pos_w = Param::from_tensor(draws.standard([2 * ws - 1, c / heads], &flex));
    let x = draws.standard([2, h, w, c], &flex);
    agrees_across_devices(&attn, x, |attn, x| attn.forward_windowed(x, ws));
}
