//! `SamOptimizer`: AdamW over name-based groups, driven by the schedule and a step counter.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamGroup, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{GradientCheckpointingStrategy, Tensor};

use crate::accumulate::GradAccumulator;
use crate::adamw::{AdamWConfig, AdamWState, adamw_update};
use crate::clip::clip_grad_norm;
use crate::config::SamOptimConfig;
use crate::error::{OptimError, Result};
use crate::groups::GroupPlan;
use crate::params::{ParamInfo, PathStack, module_params};
use crate::schedule::LrSchedule;

/// What one optimizer step did.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    /// The step's index (0-based; the counter before the step).
    pub step: usize,
    /// The base learning rate used (before layer-wise scaling).
    pub lr: f64,
    /// The global gradient norm before clipping, when clipping is on.
    pub grad_norm: Option<f64>,
    /// Parameters updated (trainable parameters that had a gradient).
    pub updated: usize,
}

/// AdamW (PyTorch semantics) with name-based parameter groups, layer-wise learning-rate decay,
/// frozen groups, global-norm clipping and a warmup + decay schedule.
///
/// Optimizer state is keyed by parameter *path*, not by Burn's `ParamId`, so it can be restored
/// into a model rebuilt from a checkpoint. A parameter without a gradient in a step is skipped
/// entirely (its step count and moments do not advance), as in PyTorch.
#[derive(Debug, Clone)]
pub struct SamOptimizer {
    config: SamOptimConfig,
    schedule: LrSchedule,
    plan: GroupPlan,
    shapes: BTreeMap<String, Vec<usize>>,
    pub(crate) states: BTreeMap<String, AdamWState>,
    pub(crate) step: usize,
}

impl SamOptimizer {
    /// Validates `config` and resolves the parameter groups of `module`.
    pub fn new<M: Module>(config: SamOptimConfig, module: &M) -> Result<Self> {
        let params: Vec<ParamInfo> = module_params(module).into_iter().map(|p| p.info).collect();
        Self::from_params(config, &params)
    }

    /// Like [`new`](Self::new) from parameter names (and shapes, where known) alone.
    pub fn from_params(config: SamOptimConfig, params: &[ParamInfo]) -> Result<Self> {
        config.validate()?;
        let schedule = LrSchedule::new(config.schedule.clone())?;
        let plan = GroupPlan::resolve(&config.groups, params)?;
        let shapes = params
            .iter()
            .map(|p| (p.path.clone(), p.shape.clone()))
            .collect();
        Ok(Self {
            config,
            schedule,
            plan,
            shapes,
            states: BTreeMap::new(),
            step: 0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SamOptimConfig {
        &self.config
    }

    /// The resolved parameter groups.
    pub fn plan(&self) -> &GroupPlan {
        &self.plan
    }

    /// The schedule.
    pub fn schedule(&self) -> &LrSchedule {
        &self.schedule
    }

    /// Optimizer steps taken so far (the index of the next step).
    pub fn step_count(&self) -> usize {
        self.step
    }

    /// The base learning rate the next step will use.
    pub fn lr(&self) -> f64 {
        self.schedule.lr_at(self.step)
    }

    /// The learning rate the next step will use for parameter `path` (`None` if unknown; 0 for
    /// frozen parameters).
    pub fn lr_of(&self, path: &str) -> Option<f64> {
        let s = self.plan.get(path)?;
        Some(if s.frozen {
            0.0
        } else {
            self.lr() * s.lr_scale
        })
    }

    /// The shape of parameter `path` as given at construction (empty when built from names).
    pub(crate) fn shape_of(&self, path: &str) -> Option<&[usize]> {
        self.shapes.get(path).map(|s| s.as_slice())
    }

    /// The AdamW state of parameter `path`, once it has been updated (or restored).
    pub fn param_state(&self, path: &str) -> Option<&AdamWState> {
        self.states.get(path)
    }

    /// An accumulator for the configured number of micro-batches per step.
    pub fn accumulator(&self) -> Result<GradAccumulator> {
        GradAccumulator::new(self.config.accumulation_steps()?)
    }

    /// Stops gradient computation for the frozen parameters of `module` (so the backward pass
    /// skips them). Optional: `step` ignores their gradients either way.
    ///
    /// Burn keeps a not-yet-initialised (lazy) parameter's require-grad setting in state shared
    /// with clones, so freezing such a module also freezes clones made before its first use.
    pub fn freeze<M: Module>(&self, module: M) -> M {
        let frozen = self.plan.frozen_paths();
        if frozen.is_empty() {
            return module;
        }
        module.set_require_grad_group(ParamGroup::from_paths(frozen), false)
    }

    /// Fails if `module` has a float parameter this optimizer was not built for.
    pub fn check<M: Module>(&self, module: &M) -> Result<()> {
        match module_params(module)
            .into_iter()
            .find(|p| self.plan.get(&p.info.path).is_none())
        {
            Some(p) => Err(OptimError::UnknownParameter { path: p.info.path }),
            None => Ok(()),
        }
    }

    /// One optimizer step: drops the frozen parameters' gradients, clips the rest to the global
    /// norm (if configured), applies AdamW with each parameter's group learning rate and weight
    /// decay, and advances the step counter.
    ///
    /// `grads` should be one (averaged) global batch, e.g. from [`GradAccumulator::push`].
    /// The only error is a parameter unknown to this optimizer (see [`check`](Self::check)),
    /// detected before anything changes; the module is then consumed.
    pub fn step<M: Module>(
        &mut self,
        module: M,
        mut grads: GradientsParams,
    ) -> Result<(M, StepReport)> {
        let mut prepare = Prepare {
            path: PathStack::default(),
            plan: &self.plan,
            grads: &mut grads,
            unknown: None,
        };
        module.visit(&mut prepare);
        if let Some(path) = prepare.unknown {
            return Err(OptimError::UnknownParameter { path });
        }

        let grad_norm = match self.config.max_grad_norm {
            Some(max) => Some(clip_grad_norm(&module, &mut grads, max)?),
            None => None,
        };

        let lr = self.schedule.lr_at(self.step);
        let mut mapper = Update {
            path: PathStack::default(),
            plan: &self.plan,
            states: &mut self.states,
            grads: &mut grads,
            adamw: &self.config.adamw,
            lr,
            updated: 0,
        };
        let module = module.map(&mut mapper);
        let report = StepReport {
            step: self.step,
            lr,
            grad_norm,
            updated: mapper.updated,
        };
        self.step += 1;
        Ok((module, report))
    }
}

/// Finds parameters unknown to the plan and removes the frozen parameters' gradients, so that
/// neither the clipping norm nor the update sees them.
struct Prepare<'a> {
    path: PathStack,
    plan: &'a GroupPlan,
    grads: &'a mut GradientsParams,
    unknown: Option<String>,
}

impl ModuleVisitor for Prepare<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.enter(name);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let path = self.path.path();
        match self.plan.get(&path) {
            None => {
                self.unknown.get_or_insert(path);
            }
            Some(s) if s.frozen => {
                self.grads.remove::<D>(param.id);
            }
            Some(_) => {}
        }
    }
}

/// The autodiff properties a parameter carries, re-applied to its updated value (the update
/// itself runs without autodiff).
struct TapeContext {
    autodiff: bool,
    require_grad: bool,
    distributed: bool,
    checkpointing: Option<GradientCheckpointingStrategy>,
}

impl TapeContext {
    fn capture<const D: usize>(t: &Tensor<D>) -> Self {
        // `is_distributed` panics on a tensor without autodiff, so ask only autodiff tensors.
        let autodiff = t.is_autodiff();
        Self {
            autodiff,
            require_grad: autodiff && t.is_require_grad(),
            distributed: autodiff && t.is_distributed(),
            checkpointing: if autodiff {
                t.gradient_checkpointing_strategy()
            } else {
                None
            },
        }
    }

    fn restore<const D: usize>(self, updated: Tensor<D>, id: ParamId) -> Tensor<D> {
        if !self.autodiff {
            return updated;
        }
        let mut t = updated.autodiff();
        if let Some(strategy) = self.checkpointing {
            t = t.with_gradient_checkpointing_strategy(strategy);
        }
        if self.require_grad {
            t = t.require_grad();
        }
        if self.distributed {
            t = t.set_distributed(id);
        }
        t
    }
}

struct Update<'a> {
    path: PathStack,
    plan: &'a GroupPlan,
    states: &'a mut BTreeMap<String, AdamWState>,
    grads: &'a mut GradientsParams,
    adamw: &'a AdamWConfig,
    lr: f64,
    updated: usize,
}

impl ModuleMapper for Update<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.enter(name);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let path = self.path.path();
        let Some(settings) = self.plan.get(&path) else {
            return param;
        };
        if settings.frozen {
            return param;
        }
        let Some(grad) = self.grads.remove::<D>(param.id) else {
            return param;
        };
        let (id, tensor, mapper) = param.consume();
        let context = TapeContext::capture(&tensor);
        let value = tensor.inner();
        let device = value.device();
        let shape = value.dims();
        let n = shape.iter().product::<usize>();
        let grad = grad.inner().to_device(&device).reshape([n]);
        let state = self.states.remove(&path).map(|s| AdamWState {
            step: s.step,
            exp_avg: s.exp_avg.to_device(&device),
            exp_avg_sq: s.exp_avg_sq.to_device(&device),
        });
        let weight_decay = if settings.weight_decay {
            self.adamw.weight_decay
        } else {
            0.0
        };
        let (value, state) = adamw_update(
            self.adamw,
            self.lr * settings.lr_scale,
            weight_decay,
            value.reshape([n]),
            grad,
            state,
        );
        self.states.insert(path, state);
        self.updated += 1;
        let value = context.restore(value.reshape(shape), id);
        Param::from_mapped_value(id, value, mapper)
    }
}
