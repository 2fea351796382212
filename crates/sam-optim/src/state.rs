//! Saving and restoring the optimizer: moments, per-parameter step counts, the global step
//! counter (which is all the schedule needs) and, for provenance, the config.
//!
//! The file is a plain [safetensors](https://github.com/huggingface/safetensors) file, written
//! here without extra dependencies: tensors `<param path>.exp_avg` / `<param path>.exp_avg_sq`
//! in the parameters' dtype, and string metadata `format`, `step`, `param_steps` (JSON) and
//! `config` (JSON). Values are stored bit for bit, so a restored run continues exactly.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::{DType, Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::adamw::AdamWState;
use crate::config::SamOptimConfig;
use crate::error::{OptimError, Result};
use crate::optimizer::SamOptimizer;

const FORMAT: &str = "sam-optim/1";

/// One parameter's saved AdamW state.
#[derive(Debug, Clone)]
pub struct ParamSnapshot {
    /// Updates applied to the parameter.
    pub step: u64,
    /// First moment, flattened.
    pub exp_avg: TensorData,
    /// Second moment, flattened.
    pub exp_avg_sq: TensorData,
}

/// The complete optimizer state, detached from any device.
#[derive(Debug, Clone)]
pub struct OptimizerSnapshot {
    /// Optimizer steps taken (the schedule position).
    pub step: usize,
    /// Per-parameter state, by path.
    pub params: BTreeMap<String, ParamSnapshot>,
    /// The config the state was produced with (informational; not enforced on restore).
    pub config: Option<SamOptimConfig>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [usize; 2],
}

fn dtype_name(dtype: DType) -> Result<&'static str> {
    Ok(match dtype {
        DType::F64 => "F64",
        DType::F32 => "F32",
        DType::F16 => "F16",
        DType::BF16 => "BF16",
        other => {
            return Err(OptimError::state(format!(
                "cannot store moments of dtype {other:?}"
            )));
        }
    })
}

fn dtype_from_name(name: &str) -> Result<DType> {
    Ok(match name {
        "F64" => DType::F64,
        "F32" => DType::F32,
        "F16" => DType::F16,
        "BF16" => DType::BF16,
        other => return Err(OptimError::state(format!("unsupported dtype {other}"))),
    })
}

impl OptimizerSnapshot {
    /// Serializes to safetensors bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut header = Map::new();
        let mut metadata = Map::new();
        metadata.insert("format".into(), Value::String(FORMAT.into()));
        metadata.insert("step".into(), Value::String(self.step.to_string()));
        let steps: BTreeMap<&str, u64> = self
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.step))
            .collect();
        metadata.insert(
            "param_steps".into(),
            Value::String(
                serde_json::to_string(&steps).map_err(|e| OptimError::state(e.to_string()))?,
            ),
        );
        if let Some(config) = &self.config {
            metadata.insert(
                "config".into(),
                Value::String(
                    serde_json::to_string(config).map_err(|e| OptimError::state(e.to_string()))?,
                ),
            );
        }
        header.insert("__metadata__".into(), Value::Object(metadata));

        let mut data: Vec<u8> = Vec::new();
        for (path, p) in &self.params {
            for (suffix, t) in [("exp_avg", &p.exp_avg), ("exp_avg_sq", &p.exp_avg_sq)] {
                let start = data.len();
                data.extend_from_slice(t.as_bytes());
                let entry = Entry {
                    dtype: dtype_name(t.dtype())?.to_string(),
                    shape: t.shape().to_vec(),
                    data_offsets: [start, data.len()],
                };
                header.insert(
                    format!("{path}.{suffix}"),
                    serde_json::to_value(entry).map_err(|e| OptimError::state(e.to_string()))?,
                );
            }
        }
        let mut header = serde_json::to_vec(&Value::Object(header))
            .map_err(|e| OptimError::state(e.to_string()))?;
        // safetensors pads the header with spaces to keep the data 8-byte aligned.
        header.resize(header.len().next_multiple_of(8), b' ');
        let mut out = Vec::with_capacity(8 + header.len() + data.len());
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&data);
        Ok(out)
    }

    /// Parses safetensors bytes written by [`to_bytes`](Self::to_bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let n = bytes
            .get(..8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as usize)
            .ok_or_else(|| OptimError::state("file shorter than its 8-byte header length"))?;
        let header = bytes
            .get(8..8usize.saturating_add(n))
            .ok_or_else(|| OptimError::state(format!("header length {n} exceeds the file")))?;
        let data = &bytes[8 + n..];
        let header: Map<String, Value> = serde_json::from_slice(header)
            .map_err(|e| OptimError::state(format!("bad header: {e}")))?;

        let meta = header
            .get("__metadata__")
            .and_then(Value::as_object)
            .ok_or_else(|| OptimError::state("no __metadata__"))?;
        let text = |key: &str| -> Result<&str> {
            meta.get(key)
                .and_then(Value::as_str)
                .ok_or_else(|| OptimError::state(format!("metadata `{key}` missing")))
        };
        let format = text("format")?;
        if format != FORMAT {
            return Err(OptimError::state(format!(
                "format `{format}`, expected `{FORMAT}`"
            )));
        }
        let step: usize = text("step")?
            .parse()
            .map_err(|e| OptimError::state(format!("metadata `step`: {e}")))?;
        let param_steps: BTreeMap<String, u64> = serde_json::from_str(text("param_steps")?)
            .map_err(|e| OptimError::state(format!("metadata `param_steps`: {e}")))?;
        let config = match meta.get("config").and_then(Value::as_str) {
            Some(json) => Some(
                serde_json::from_str(json)
                    .map_err(|e| OptimError::state(format!("metadata `config`: {e}")))?,
            ),
            None => None,
        };

        let read = |name: String| -> Result<TensorData> {
            let entry: Entry = header
                .get(&name)
                .cloned()
                .ok_or_else(|| OptimError::state(format!("tensor `{name}` missing")))
                .and_then(|v| {
                    serde_json::from_value(v)
                        .map_err(|e| OptimError::state(format!("tensor `{name}`: {e}")))
                })?;
            let [start, end] = entry.data_offsets;
            let raw = data
                .get(start..end)
                .filter(|_| start <= end)
                .ok_or_else(|| {
                    OptimError::state(format!("tensor `{name}`: offsets out of range"))
                })?;
            TensorData::try_from_bytes_vec(
                raw.to_vec(),
                entry.shape,
                dtype_from_name(&entry.dtype)?,
            )
            .map_err(|e| OptimError::state(format!("tensor `{name}`: {e:?}")))
        };
        let mut params = BTreeMap::new();
        for (path, &pstep) in &param_steps {
            let exp_avg = read(format!("{path}.exp_avg"))?;
            let exp_avg_sq = read(format!("{path}.exp_avg_sq"))?;
            params.insert(
                path.clone(),
                ParamSnapshot {
                    step: pstep,
                    exp_avg,
                    exp_avg_sq,
                },
            );
        }
        Ok(Self {
            step,
            params,
            config,
        })
    }

    /// Writes the state to `path`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_bytes()?).map_err(|source| OptimError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads a state written by [`save`](Self::save).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| OptimError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes).map_err(|e| e.in_file(path))
    }
}

impl SamOptimizer {
    /// The current state, read back from the device(s).
    pub fn snapshot(&self) -> OptimizerSnapshot {
        let params = self
            .states
            .iter()
            .map(|(path, s)| {
                (
                    path.clone(),
                    ParamSnapshot {
                        step: s.step,
                        exp_avg: s.exp_avg.to_data(),
                        exp_avg_sq: s.exp_avg_sq.to_data(),
                    },
                )
            })
            .collect();
        OptimizerSnapshot {
            step: self.step,
            params,
            config: Some(self.config().clone()),
        }
    }

    /// Replaces the state with `snapshot`, placing the moments on `device` (they follow their
    /// parameters' devices at the next step anyway).
    ///
    /// Fails, changing nothing, if the snapshot names a parameter this optimizer does not know
    /// or its moments do not fit the parameter's size.
    pub fn restore(&mut self, snapshot: OptimizerSnapshot, device: &Device) -> Result<()> {
        let device = device.clone().inner();
        let mut states = BTreeMap::new();
        for (path, p) in snapshot.params {
            if self.plan().get(&path).is_none() {
                return Err(OptimError::state(format!(
                    "parameter `{path}` is not in the model"
                )));
            }
            let numel = |t: &TensorData| t.shape().iter().product::<usize>();
            let (a, b) = (numel(&p.exp_avg), numel(&p.exp_avg_sq));
            let expected = self
                .shape_of(&path)
                .filter(|s| !s.is_empty())
                .map(|s| s.iter().product::<usize>());
            if a != b
                || p.exp_avg.shape().len() != 1
                || p.exp_avg_sq.shape().len() != 1
                || expected.is_some_and(|e| e != a)
            {
                return Err(OptimError::state(format!(
                    "parameter `{path}`: moments of shapes {:?} / {:?} do not fit {:?}",
                    p.exp_avg.shape(),
                    p.exp_avg_sq.shape(),
                    self.shape_of(&path)
                )));
            }
            states.insert(
                path,
                AdamWState {
                    step: p.step,
                    // Keep the stored dtype: the device default would round bf16/f64 states.
                    exp_avg: {
                        let dtype = p.exp_avg.dtype();
                        Tensor::from_data(p.exp_avg, (&device, dtype))
                    },
                    exp_avg_sq: {
                        let dtype = p.exp_avg_sq.dtype();
                        Tensor::from_data(p.exp_avg_sq, (&device, dtype))
                    },
                },
            );
        }
        self.states = states;
        self.step = snapshot.step;
        Ok(())
    }

    /// Saves the state to `path` (see [`OptimizerSnapshot`]).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        self.snapshot().save(path)
    }

    /// Restores the state saved at `path`, moments placed on `device`.
    pub fn load(&mut self, path: impl AsRef<Path>, device: &Device) -> Result<()> {
        let path = path.as_ref();
        self.restore(OptimizerSnapshot::load(path)?, device)
            .map_err(|e| e.in_file(path))
    }
}
