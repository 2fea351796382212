//! The float parameters of a Burn module, by dotted path.
//!
//! A path is the field names from the root module down, joined by dots, with `Vec` indices as
//! components (`image_encoder.blocks.3.attn.rel_pos_h`) — the names Burn's own `ParamGroup`
//! matches and the official SAM checkpoint keys use (up to Burn's `gamma`/`beta` for LayerNorm).

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;

/// A float parameter's name and shape: all the grouping rules need to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamInfo {
    /// Dotted path, e.g. `image_encoder.blocks.0.attn.qkv.weight`.
    pub path: String,
    /// Shape of the parameter.
    pub shape: Vec<usize>,
}

impl ParamInfo {
    /// A parameter known only by name (rank-based rules then do not apply).
    pub fn named(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            shape: Vec::new(),
        }
    }

    /// A parameter with its shape.
    pub fn new(path: impl Into<String>, shape: Vec<usize>) -> Self {
        Self {
            path: path.into(),
            shape,
        }
    }
}

/// A parameter found in a module: name, shape and the id its gradients are registered under.
#[derive(Debug, Clone)]
pub struct ModuleParam {
    /// Path and shape.
    pub info: ParamInfo,
    /// The id `GradientsParams` is keyed by.
    pub id: ParamId,
}

/// Every float parameter of `module`, in visiting order.
pub fn module_params<M: Module>(module: &M) -> Vec<ModuleParam> {
    let mut visitor = Collector::default();
    module.visit(&mut visitor);
    visitor.params
}

/// Keeps the stack of entered module names so a visited parameter knows its full path.
#[derive(Default)]
pub(crate) struct PathStack(Vec<String>);

impl PathStack {
    pub(crate) fn enter(&mut self, name: &str) {
        self.0.push(name.to_string());
    }

    pub(crate) fn exit(&mut self) {
        self.0.pop();
    }

    pub(crate) fn path(&self) -> String {
        self.0.join(".")
    }
}

#[derive(Default)]
struct Collector {
    path: PathStack,
    params: Vec<ModuleParam>,
}

impl ModuleVisitor for Collector {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.enter(name);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.params.push(ModuleParam {
            info: ParamInfo::new(self.path.path(), param.lazy_shape().to_vec()),
            id: param.id,
        });
    }
}
