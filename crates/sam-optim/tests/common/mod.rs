//! Shared test helpers: the PyTorch fixtures and a toy model named like SAM.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use sam_optim::module_params;

pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// `optim.safetensors` (all float32) and `optim.json`.
pub struct Fixture {
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    pub meta: serde_json::Value,
}

impl Fixture {
    pub fn load() -> Self {
        let bytes = std::fs::read(fixture_dir().join("optim.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut tensors = HashMap::new();
        for (k, v) in st.tensors() {
            assert_eq!(v.dtype(), safetensors::Dtype::F32, "{k}");
            let values = v
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            tensors.insert(k, (v.shape().to_vec(), values));
        }
        let meta = serde_json::from_str(
            &std::fs::read_to_string(fixture_dir().join("optim.json")).unwrap(),
        )
        .unwrap();
        Self { tensors, meta }
    }

    pub fn has(&self, key: &str) -> bool {
        self.tensors.contains_key(key)
    }

    pub fn values(&self, key: &str) -> &[f32] {
        &self
            .tensors
            .get(key)
            .unwrap_or_else(|| panic!("fixture tensor {key} missing"))
            .1
    }

    pub fn data(&self, key: &str) -> TensorData {
        let (shape, v) = self
            .tensors
            .get(key)
            .unwrap_or_else(|| panic!("fixture tensor {key} missing"));
        TensorData::new(v.clone(), shape.clone())
    }

    pub fn tensor<const D: usize>(&self, key: &str, device: &Device) -> Tensor<D> {
        Tensor::from_data(self.data(key), device)
    }
}

pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// Largest |a − e|.
pub fn max_abs_diff(actual: &[f32], expected: &[f32]) -> f32 {
    assert_eq!(actual.len(), expected.len());
    assert!(actual.iter().all(|v| v.is_finite()), "non-finite values");
    actual
        .iter()
        .zip(expected)
        .fold(0f32, |m, (a, e)| nan_max(m, (a - e).abs()))
}

// ---- a toy model whose parameter paths follow sam-burn's `Sam` -------------------------------

#[derive(Module, Debug)]
pub struct PatchEmbed {
    pub proj: Conv2d,
}

#[derive(Module, Debug)]
pub struct Attn {
    pub qkv: Linear,
    pub rel_pos_h: Param<Tensor<2>>,
    pub rel_pos_w: Param<Tensor<2>>,
}

#[derive(Module, Debug)]
pub struct Block {
    pub norm1: LayerNorm,
    pub attn: Attn,
}

/// Like sam-model's `LayerNorm2d`: `weight`/`bias` rather than `gamma`/`beta`.
#[derive(Module, Debug)]
pub struct LayerNorm2d {
    pub weight: Param<Tensor<1>>,
    pub bias: Param<Tensor<1>>,
}

#[derive(Module, Debug)]
pub struct Neck {
    pub conv1: Conv2d,
    pub norm1: LayerNorm2d,
}

#[derive(Module, Debug)]
pub struct Encoder {
    pub patch_embed: PatchEmbed,
    pub pos_embed: Param<Tensor<4>>,
    pub blocks: Vec<Block>,
    pub neck: Neck,
}

#[derive(Module, Debug)]
pub struct PeLayer {
    pub positional_encoding_gaussian_matrix: Param<Tensor<2>>,
}

#[derive(Module, Debug)]
pub struct PromptEncoder {
    pub pe_layer: PeLayer,
    pub point_embeddings: Vec<Embedding>,
    pub not_a_point_embed: Embedding,
    pub no_mask_embed: Embedding,
}

#[derive(Module, Debug)]
pub struct Mlp {
    pub lin1: Linear,
}

#[derive(Module, Debug)]
pub struct TwoWayLayer {
    pub norm1: LayerNorm,
    pub mlp: Mlp,
}

#[derive(Module, Debug)]
pub struct TwoWay {
    pub layers: Vec<TwoWayLayer>,
}

#[derive(Module, Debug)]
pub struct HyperMlp {
    pub layers: Vec<Linear>,
}

#[derive(Module, Debug)]
pub struct MaskDecoder {
    pub iou_token: Embedding,
    pub mask_tokens: Embedding,
    pub transformer: TwoWay,
    pub output_hypernetworks_mlps: Vec<HyperMlp>,
}

#[derive(Module, Debug)]
pub struct ToySam {
    pub image_encoder: Encoder,
    pub prompt_encoder: PromptEncoder,
    pub mask_decoder: MaskDecoder,
}

fn param<const D: usize>(shape: [usize; D], device: &Device) -> Param<Tensor<D>> {
    Param::from_tensor(Tensor::zeros(shape, device))
}

impl ToySam {
    /// The model of the "recipe" fixture (all zeros; load values with [`set_params`]).
    pub fn new(device: &Device) -> Self {
        let block = || Block {
            norm1: LayerNormConfig::new(4).init(device),
            attn: Attn {
                qkv: LinearConfig::new(4, 12).init(device),
                rel_pos_h: param([3, 2], device),
                rel_pos_w: param([3, 2], device),
            },
        };
        Self {
            image_encoder: Encoder {
                patch_embed: PatchEmbed {
                    proj: Conv2dConfig::new([3, 4], [2, 2]).init(device),
                },
                pos_embed: param([1, 2, 2, 4], device),
                blocks: vec![block(), block()],
                neck: Neck {
                    conv1: Conv2dConfig::new([4, 3], [1, 1])
                        .with_bias(false)
                        .init(device),
                    norm1: LayerNorm2d {
                        weight: param([3], device),
                        bias: param([3], device),
                    },
                },
            },
            prompt_encoder: PromptEncoder {
                pe_layer: PeLayer {
                    positional_encoding_gaussian_matrix: param([2, 2], device),
                },
                point_embeddings: vec![
                    EmbeddingConfig::new(1, 3).init(device),
                    EmbeddingConfig::new(1, 3).init(device),
                ],
                not_a_point_embed: EmbeddingConfig::new(1, 3).init(device),
                no_mask_embed: EmbeddingConfig::new(1, 3).init(device),
            },
            mask_decoder: MaskDecoder {
                iou_token: EmbeddingConfig::new(1, 3).init(device),
                mask_tokens: EmbeddingConfig::new(4, 3).init(device),
                transformer: TwoWay {
                    layers: vec![TwoWayLayer {
                        norm1: LayerNormConfig::new(3).init(device),
                        mlp: Mlp {
                            lin1: LinearConfig::new(3, 5).init(device),
                        },
                    }],
                },
                output_hypernetworks_mlps: vec![HyperMlp {
                    layers: (0..3)
                        .map(|_| LinearConfig::new(3, 3).init(device))
                        .collect(),
                }],
            },
        }
    }
}

/// Replaces every float parameter's value by `values[path]`; with `fresh_ids` the parameters
/// also get new ids (as a model rebuilt from a checkpoint may).
pub struct SetParams<'a> {
    path: Vec<String>,
    values: &'a BTreeMap<String, TensorData>,
    fresh_ids: bool,
}

impl ModuleMapper for SetParams<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let path = self.path.join(".");
        let data = self
            .values
            .get(&path)
            .unwrap_or_else(|| panic!("no value for {path}"))
            .clone();
        let (id, old, mapper) = param.consume();
        assert_eq!(old.dims().to_vec(), data.shape().to_vec(), "{path}");
        let mut t = Tensor::<D>::from_data(data, &old.device());
        if old.is_require_grad() {
            t = t.require_grad();
        }
        let id = if self.fresh_ids { ParamId::new() } else { id };
        Param::from_mapped_value(id, t, mapper)
    }
}

pub fn set_params<M: Module>(
    module: M,
    values: &BTreeMap<String, TensorData>,
    fresh_ids: bool,
) -> M {
    module.map(&mut SetParams {
        path: Vec::new(),
        values,
        fresh_ids,
    })
}

/// Every float parameter's value, by path.
pub fn param_values<M: Module>(module: &M) -> BTreeMap<String, TensorData> {
    struct Collect(Vec<String>, BTreeMap<String, TensorData>);
    impl burn::module::ModuleVisitor for Collect {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.0.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.1.insert(self.0.join("."), param.val().into_data());
        }
    }
    let mut c = Collect(Vec::new(), BTreeMap::new());
    module.visit(&mut c);
    c.1
}

/// Gradients given by path, registered under `module`'s parameter ids.
pub fn grads_by_path<M: Module>(
    module: &M,
    mut grad: impl FnMut(&str) -> Option<TensorData>,
    device: &Device,
) -> GradientsParams {
    struct Reg<'a, F> {
        path: Vec<String>,
        grad: &'a mut F,
        device: Device,
        out: GradientsParams,
    }
    impl<F: FnMut(&str) -> Option<TensorData>> burn::module::ModuleVisitor for Reg<'_, F> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(data) = (self.grad)(&self.path.join(".")) {
                self.out
                    .register::<D>(param.id, Tensor::from_data(data, &self.device));
            }
        }
    }
    let mut reg = Reg {
        path: Vec::new(),
        grad: &mut grad,
        device: device.clone().inner(),
        out: GradientsParams::new(),
    };
    module.visit(&mut reg);
    reg.out
}

pub fn paths<M: Module>(module: &M) -> Vec<String> {
    module_params(module)
        .into_iter()
        .map(|p| p.info.path)
        .collect()
}

/// The larger of the two, NaN if either is (`f32::max` drops a NaN, so a NaN output would pass).
pub fn nan_max(m: f32, x: f32) -> f32 {
    if x.is_nan() || m.is_nan() {
        f32::NAN
    } else {
        m.max(x)
    }
}
