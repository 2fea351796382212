//! Checkpoints that a kill at any moment cannot corrupt: each is written into a temporary folder
//! that is renamed into place when complete, and the `latest` pointer is replaced by a rename
//! too, so the last complete checkpoint always stays loadable.
//!
//! Layout of `<run>/checkpoints/step_<N>/`: `model.bpk` (Burn's native format, with the model
//! config), `optimizer.safetensors` (AdamW moments and step), `state.json` (step, loader
//! position, skipped-step count, the run's config).

use std::path::{Path, PathBuf};

use sam_data::LoaderPosition;
use sam_data::dataset::TarPosition;
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::error::{Result, TrainError};

/// The trainer's own state in a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimizer steps done.
    pub step: usize,
    /// Where the loader resumes.
    pub position: LoaderPosition,
    /// Steps skipped so far for a non-finite loss.
    pub nonfinite_steps: usize,
    /// The run's configuration.
    pub config: TrainConfig,
    /// A tar-shard run's stream position of every rank (empty for indexed data).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tar_positions: Vec<TarPosition>,
    /// Micro-batches drawn from a tar-shard stream (their prompt seeds follow the count).
    #[serde(default)]
    pub micro_batches: u64,
}

/// File names inside a checkpoint folder.
pub const MODEL_FILE: &str = "model.bpk";
/// The optimizer's file.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// The trainer state's file.
pub const STATE_FILE: &str = "state.json";
const LATEST: &str = "latest";

/// Writes a checkpoint: `write_files` fills the temporary folder, which then becomes
/// `<dir>/step_<step>`, and `<dir>/latest` names it.
pub fn write_checkpoint(
    dir: &Path,
    state: &TrainState,
    write_files: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| TrainError::file(dir, e))?;
    let final_dir = checkpoint_dir(dir, state.step);
    let name = final_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| TrainError::file(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| TrainError::file(&tmp, e))?;
    write_files(&tmp)?;
    let json = serde_json::to_vec_pretty(state).map_err(|e| TrainError::file(&tmp, e))?;
    let state_path = tmp.join(STATE_FILE);
    std::fs::write(&state_path, json).map_err(|e| TrainError::file(&state_path, e))?;
    // A checkpoint of this step already there (a finished run resumed) is moved aside, not
    // deleted, until the new one has its place: `latest` may name it, and a kill between the
    // two renames must leave it loadable (`latest_checkpoint` looks for it aside).
    let aside = set_aside(dir, &name);
    if final_dir.exists() {
        // One aside next to a whole checkpoint is a leftover of an earlier replacement (when
        // the checkpoint is missing, the one aside is the loadable one and stays until later).
        if aside.exists() {
            std::fs::remove_dir_all(&aside).map_err(|e| TrainError::file(&aside, e))?;
        }
        std::fs::rename(&final_dir, &aside).map_err(|e| TrainError::file(&final_dir, e))?;
    }
    std::fs::rename(&tmp, &final_dir).map_err(|e| TrainError::file(&final_dir, e))?;
    let pointer = dir.join(format!(".{LATEST}.tmp"));
    std::fs::write(&pointer, &name).map_err(|e| TrainError::file(&pointer, e))?;
    std::fs::rename(&pointer, dir.join(LATEST))
        .map_err(|e| TrainError::file(dir.join(LATEST), e))?;
    if aside.exists() {
        std::fs::remove_dir_all(&aside).map_err(|e| TrainError::file(&aside, e))?;
    }
    Ok(final_dir)
}

/// Where [`write_checkpoint`] keeps the checkpoint it replaces while it does.
fn set_aside(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}.old"))
}

/// The folder of step `step`'s checkpoint under `dir`.
pub fn checkpoint_dir(dir: &Path, step: usize) -> PathBuf {
    dir.join(format!("step_{step:08}"))
}

/// The folder of the latest complete checkpoint under `dir`, or `None` when there is none.
pub fn latest_checkpoint(dir: &Path) -> Result<Option<PathBuf>> {
    let pointer = dir.join(LATEST);
    if !pointer.exists() {
        return Ok(None);
    }
    let name = std::fs::read_to_string(&pointer).map_err(|e| TrainError::file(&pointer, e))?;
    let path = dir.join(name.trim());
    let aside = set_aside(dir, name.trim());
    if !path.exists() && aside.join(STATE_FILE).is_file() {
        // Killed while replacing this step's checkpoint: the one it replaced is whole.
        return Ok(Some(aside));
    }
    if !path.join(STATE_FILE).is_file() {
        return Err(TrainError::file(
            &pointer,
            format!(
                "names {}, which is not a complete checkpoint",
                path.display()
            ),
        ));
    }
    Ok(Some(path))
}

/// Reads a checkpoint's trainer state.
pub fn read_state(checkpoint: &Path) -> Result<TrainState> {
    let path = checkpoint.join(STATE_FILE);
    let bytes = std::fs::read(&path).map_err(|e| TrainError::file(&path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| TrainError::file(&path, format!("malformed: {e}")))
}
