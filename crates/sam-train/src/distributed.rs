//! Multi-process data parallelism: gradients summed over the ranks of a [`Communicator`] (MPI,
//! NCCL) between the accumulation window and the optimizer step.
//!
//! Burn 0.22's backward returns every gradient at once (no per-parameter hooks), so the
//! reduction cannot overlap the backward pass; it runs in buckets of consecutive parameters,
//! which bounds the host staging memory and lets the engine pipeline large messages.

use std::collections::HashMap;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};
use sam_dist::Communicator;

use crate::error::{Result, TrainError};

/// Elements per all-reduce message (4 M f32 = 16 MB, the order of PyTorch DDP's 25 MB buckets).
pub const BUCKET_ELEMENTS: usize = 4 << 20;

/// One parameter's local gradient on the host, in module order.
struct Entry {
    id: ParamId,
    shape: Vec<usize>,
    data: Option<Vec<f32>>,
    error: Option<String>,
}

struct Collect<'a> {
    grads: &'a mut GradientsParams,
    entries: Vec<Entry>,
}

impl ModuleVisitor for Collect<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let shape = param.val().dims().to_vec();
        let (data, error) = match self.grads.remove::<D>(param.id) {
            None => (None, None),
            Some(g) => match g.into_data().convert::<f32>().try_to_vec::<f32>() {
                Ok(v) => (Some(v), None),
                Err(e) => (None, Some(format!("{e:?}"))),
            },
        };
        self.entries.push(Entry {
            id: param.id,
            shape,
            data,
            error,
        });
    }
}

struct Register<'a> {
    reduced: HashMap<ParamId, Vec<f32>>,
    grads: &'a mut GradientsParams,
}

impl ModuleVisitor for Register<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(values) = self.reduced.remove(&param.id) else {
            return;
        };
        let value = param.val();
        let shape = value.dims().to_vec();
        let device = value.inner().device();
        self.grads.register::<D>(
            param.id,
            Tensor::from_data(TensorData::new(values, shape), &device),
        );
    }
}

/// The element-wise sum of every rank's `grads` of `module`, on every rank. A parameter
/// without a gradient on some ranks (unused by their images) counts as zeros there; one without
/// a gradient on every rank stays without one, as in a single process.
pub(crate) fn all_reduce_gradients<M: Module>(
    module: &M,
    mut grads: GradientsParams,
    comm: &mut dyn Communicator,
    bucket_elements: usize,
) -> Result<GradientsParams> {
    let mut collect = Collect {
        grads: &mut grads,
        entries: Vec::new(),
    };
    module.visit(&mut collect);
    let entries = collect.entries;
    if let Some(e) = entries.iter().find_map(|e| e.error.as_ref()) {
        return Err(TrainError::config(
            "gradients",
            format!("not readable as f32: {e}"),
        ));
    }
    // Which parameters have a gradient on some rank.
    let mut present: Vec<f32> = entries
        .iter()
        .map(|e| f32::from(u8::from(e.data.is_some())))
        .collect();
    comm.all_reduce_f32(&mut present)?;
    let mut reduced = HashMap::new();
    let mut bucket: Vec<f32> = Vec::new();
    let mut members: Vec<(ParamId, usize)> = Vec::new();
    let mut flush = |bucket: &mut Vec<f32>,
                     members: &mut Vec<(ParamId, usize)>,
                     comm: &mut dyn Communicator|
     -> Result<()> {
        if bucket.is_empty() {
            return Ok(());
        }
        comm.all_reduce_f32(bucket)?;
        let mut at = 0;
        for (id, n) in members.drain(..) {
            reduced.insert(id, bucket[at..at + n].to_vec());
            at += n;
        }
        bucket.clear();
        Ok(())
    };
    for (entry, &count) in entries.into_iter().zip(&present) {
        if count == 0.0 {
            continue;
        }
        let n: usize = entry.shape.iter().product();
        match entry.data {
            Some(v) => bucket.extend_from_slice(&v),
            None => bucket.resize(bucket.len() + n, 0.0),
        }
        members.push((entry.id, n));
        if bucket.len() >= bucket_elements {
            flush(&mut bucket, &mut members, comm)?;
        }
    }
    flush(&mut bucket, &mut members, comm)?;
    let mut out = GradientsParams::new();
    module.visit(&mut Register {
        reduced,
        grads: &mut out,
    });
    Ok(out)
}
