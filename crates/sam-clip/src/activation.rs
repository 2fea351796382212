//! The MLP activations CLIP configs name (`hidden_act`, through `transformers`' `ACT2FN`).

use burn::tensor::Tensor;
use burn::tensor::activation::{gelu, sigmoid};
use serde::{Deserialize, Serialize};

/// `hidden_act` of `CLIPTextConfig` / `CLIPVisionConfig`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HiddenAct {
    /// `"quick_gelu"`: `x · sigmoid(1.702 x)` (`QuickGELUActivation`), the OpenAI models.
    #[serde(rename = "quick_gelu")]
    QuickGelu,
    /// `"gelu"`: the exact (erf) GELU, `nn.functional.gelu` (e.g. LAION's OpenCLIP exports).
    #[serde(rename = "gelu")]
    Gelu,
}

impl HiddenAct {
    /// Applies the activation element-wise.
    pub fn forward<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            // The product order of transformers: `input * torch.sigmoid(1.702 * input)`.
            HiddenAct::QuickGelu => x.clone() * sigmoid(x * 1.702),
            HiddenAct::Gelu if x.device().is_autodiff() => exact_gelu(x),
            HiddenAct::Gelu => gelu(x),
        }
    }
}

/// `x·Φ(x)` spelled out, for training: Burn 0.22's autodiff GELU differentiates the tanh
/// approximation on every backend but flex (`ActivationOps::gelu_backward`'s default), while
/// its forward pass is the exact form; `erf`'s own derivative is exact everywhere.
fn exact_gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let cdf = ((x.clone() * std::f64::consts::FRAC_1_SQRT_2).erf() + 1.0) * 0.5;
    x * cdf
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{DType, Device, Distribution};

    /// The input gradient of `Σ w ⊙ GELU(x)` against the exact derivative in f64, on every
    /// autodiff device compiled in (wgpu's is where Burn's own would be the tanh one's).
    #[test]
    fn gelu_gradients_are_the_exact_forms() {
        #[allow(unused_mut)]
        let mut devices = vec![Device::flex().autodiff()];
        #[cfg(feature = "wgpu")]
        if std::env::var_os("SAM_SKIP_WGPU").is_none() {
            devices.push(Device::wgpu(Default::default()).autodiff());
        }
        for device in devices {
            let x = Tensor::<2>::random([64, 50], Distribution::Normal(0.0, 2.0), &device)
                .require_grad();
            let w = Tensor::<2>::random([64, 50], Distribution::Normal(0.0, 1.0), &device);
            let y = HiddenAct::Gelu.forward(x.clone());
            let grads = (y.clone() * w.clone()).sum().backward();
            let ours = x.grad(&grads).expect("x has a gradient");
            let f64s = |t: Tensor<2>| {
                Tensor::<2>::from_data(t.to_data().convert::<f64>(), (&Device::flex(), DType::F64))
            };
            let (u, w) = (f64s(x.clone()), f64s(w));
            let cdf = ((u.clone() * std::f64::consts::FRAC_1_SQRT_2).erf() + 1.0) * 0.5;
            let pdf = (u.clone().powi_scalar(2) * -0.5).exp() * 0.398_942_280_401_432_7;
            let exact = w * (cdf.clone() + u.clone() * pdf);
            let rel = |a: Tensor<2>, e: Tensor<2>| {
                let scale = e.clone().abs().max().into_scalar::<f64>();
                (a - e).abs().max().into_scalar::<f64>() / scale
            };
            let grad_err = rel(f64s(ours), exact);
            assert!(grad_err < 1e-5, "{device:?}: gradients off by {grad_err:e}");
            let value_err = rel(f64s(y), u * cdf);
            assert!(value_err < 1e-5, "{device:?}: values off by {value_err:e}");
        }
    }
}
