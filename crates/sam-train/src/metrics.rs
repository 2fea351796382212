//! Per-step metrics: kept in memory, appended to `metrics.csv` and `metrics.jsonl` as they come,
//! and drawn as `curves.png` at the end.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// What one optimizer step measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// Optimizer step (0-based).
    pub step: usize,
    /// Base learning rate of the step.
    pub lr: f64,
    /// Weighted loss, averaged over rounds and micro-batches.
    pub loss: f64,
    /// Focal term.
    pub focal: f64,
    /// Dice term.
    pub dice: f64,
    /// IoU-prediction term.
    pub iou_loss: f64,
    /// Training mIoU after the first prompt.
    pub miou_first: f64,
    /// Training mIoU after the last round.
    pub miou_last: f64,
    /// Images in the step.
    pub images: usize,
    /// Objects in the step.
    pub objects: usize,
    /// Global gradient norm before clipping (when clipping is on).
    pub grad_norm: Option<f64>,
    /// Wall-clock seconds of the step.
    pub seconds: f64,
    /// Whether the step was skipped for a non-finite loss.
    pub skipped_nonfinite: bool,
    /// Validation mIoU after 1 click, when validation ran after this step.
    pub val_miou_1click: Option<f64>,
}

const HEADER: &str = "step,lr,loss,focal,dice,iou_loss,miou_first,miou_last,images,objects,grad_norm,seconds,skipped_nonfinite,val_miou_1click";

impl StepMetrics {
    fn csv_row(&self) -> String {
        let opt = |v: Option<f64>| v.map(|v| format!("{v:.6}")).unwrap_or_default();
        format!(
            "{},{:e},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{},{},{},{:.4},{},{}",
            self.step,
            self.lr,
            self.loss,
            self.focal,
            self.dice,
            self.iou_loss,
            self.miou_first,
            self.miou_last,
            self.images,
            self.objects,
            opt(self.grad_norm),
            self.seconds,
            self.skipped_nonfinite,
            opt(self.val_miou_1click),
        )
    }
}

/// The run's metrics files.
#[derive(Debug)]
pub struct MetricsLog {
    dir: PathBuf,
    /// Kept in memory only (the other ranks of a multi-process run).
    detached: bool,
    /// The files hold `history` (they are first rewritten at the first record, not on
    /// opening, so that a log detached before training never touches them: the ranks of a
    /// multi-process run all open the same folder, and a rank rewriting it while rank 0
    /// reads it on resume would lose the kept steps).
    written: bool,
    /// Every step so far.
    pub history: Vec<StepMetrics>,
}

impl MetricsLog {
    /// Opens the log in `dir`, keeping the steps before `resume_step` of an earlier run (a
    /// resumed run rewrites what came after its checkpoint, at its first record).
    pub fn open(dir: &Path, resume_step: usize) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| TrainError::file(dir, e))?;
        let jsonl = dir.join("metrics.jsonl");
        let mut history = Vec::new();
        if resume_step > 0 && jsonl.is_file() {
            let text = std::fs::read_to_string(&jsonl).map_err(|e| TrainError::file(&jsonl, e))?;
            let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            for (i, line) in lines.iter().enumerate() {
                let m: StepMetrics = match serde_json::from_str(line) {
                    Ok(m) => m,
                    // A run killed while appending leaves its last line cut short; that step
                    // came after the checkpoint anyway and is recorded again.
                    Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => break,
                    Err(e) => {
                        return Err(TrainError::file(
                            &jsonl,
                            format!("malformed line {}: {e}", i + 1),
                        ));
                    }
                };
                if m.step < resume_step {
                    history.push(m);
                }
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            detached: false,
            written: false,
            history,
        })
    }

    /// Stops writing files (the history is still kept): a multi-process run's ranks other
    /// than 0 log nothing.
    pub fn detach(&mut self) {
        self.detached = true;
    }

    fn rewrite(&mut self) -> Result<()> {
        if self.detached {
            return Ok(());
        }
        let mut csv = format!("{HEADER}\n");
        let mut jsonl = String::new();
        for m in &self.history {
            csv.push_str(&m.csv_row());
            csv.push('\n');
            jsonl.push_str(&serde_json::to_string(m).unwrap_or_default());
            jsonl.push('\n');
        }
        // Written aside and renamed over the old files, so that a kill leaves either the old
        // or the new history, never a truncated one (a resume reads it).
        for (name, text) in [("metrics.csv", csv), ("metrics.jsonl", jsonl)] {
            let path = self.dir.join(name);
            let tmp = self.dir.join(format!(".{name}.tmp"));
            std::fs::write(&tmp, text).map_err(|e| TrainError::file(&tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| TrainError::file(&path, e))?;
        }
        self.written = true;
        Ok(())
    }

    /// Records a step and appends it to both files.
    pub fn push(&mut self, m: StepMetrics) -> Result<()> {
        if self.detached || !self.written {
            self.history.push(m);
            return self.rewrite();
        }
        for (name, line) in [
            ("metrics.csv", m.csv_row()),
            (
                "metrics.jsonl",
                serde_json::to_string(&m).unwrap_or_default(),
            ),
        ] {
            let path = self.dir.join(name);
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(|e| TrainError::file(&path, e))?;
            writeln!(f, "{line}").map_err(|e| TrainError::file(&path, e))?;
        }
        self.history.push(m);
        Ok(())
    }

    /// Attaches a validation result to the last step and rewrites the files.
    pub fn set_validation(&mut self, miou_1click: f64) -> Result<()> {
        if let Some(last) = self.history.last_mut() {
            last.val_miou_1click = Some(miou_1click);
        }
        self.rewrite()
    }

    /// Draws `curves.png`: loss (top) and training/validation mIoU (bottom) against the step
    /// (nothing when detached).
    pub fn plot(&self) -> Result<PathBuf> {
        let path = self.dir.join("curves.png");
        if self.detached {
            return Ok(path);
        }
        crate::plot::draw_curves(&self.history, &path)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(step: usize) -> StepMetrics {
        StepMetrics {
            step,
            lr: 1e-3,
            loss: 1.0 + step as f64,
            focal: 0.0,
            dice: 0.0,
            iou_loss: 0.0,
            miou_first: 0.5,
            miou_last: 0.5,
            images: 1,
            objects: 1,
            grad_norm: None,
            seconds: 0.1,
            skipped_nonfinite: false,
            val_miou_1click: None,
        }
    }

    fn steps_in(dir: &Path) -> Vec<usize> {
        std::fs::read_to_string(dir.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<StepMetrics>(l).unwrap().step)
            .collect()
    }

    /// A resumed multi-process run: every rank opens the folder, the others detach; only rank
    /// 0's first record rewrites the files, keeping the steps before the checkpoint.
    #[test]
    fn a_detached_log_never_touches_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = MetricsLog::open(dir.path(), 0).unwrap();
        assert!(!dir.path().join("metrics.jsonl").exists());
        for s in 0..4 {
            first.push(step(s)).unwrap();
        }
        assert_eq!(steps_in(dir.path()), [0, 1, 2, 3]);

        let mut rank0 = MetricsLog::open(dir.path(), 2).unwrap();
        let mut rank1 = MetricsLog::open(dir.path(), 2).unwrap();
        rank1.detach();
        assert_eq!(
            steps_in(dir.path()),
            [0, 1, 2, 3],
            "opening rewrote the files"
        );
        rank1.push(step(2)).unwrap();
        assert_eq!(steps_in(dir.path()), [0, 1, 2, 3], "a detached rank wrote");
        rank0.push(step(2)).unwrap();
        rank0.push(step(3)).unwrap();
        assert_eq!(steps_in(dir.path()), [0, 1, 2, 3]);
        assert_eq!(rank0.history.len(), 4);
        let csv = std::fs::read_to_string(dir.path().join("metrics.csv")).unwrap();
        assert_eq!(csv.lines().count(), 5, "{csv}");
        assert!(csv.starts_with(HEADER));
        assert_eq!(rank1.history.len(), 3);
    }

    /// A kill while a step was being appended leaves a cut line at the end: the resume keeps
    /// the steps before the checkpoint and rewrites the rest. A bad line elsewhere is an error
    /// naming the file and the line.
    #[test]
    fn a_cut_last_line_does_not_stop_a_resume() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = MetricsLog::open(dir.path(), 0).unwrap();
        for s in 0..3 {
            log.push(step(s)).unwrap();
        }
        let jsonl = dir.path().join("metrics.jsonl");
        let whole = std::fs::read_to_string(&jsonl).unwrap();
        let cut = serde_json::to_string(&step(3)).unwrap();
        std::fs::write(&jsonl, format!("{whole}{}", &cut[..cut.len() / 2])).unwrap();
        let mut resumed = MetricsLog::open(dir.path(), 2).unwrap();
        assert_eq!(resumed.history.len(), 2);
        resumed.push(step(2)).unwrap();
        assert_eq!(steps_in(dir.path()), [0, 1, 2]);
        assert!(!dir.path().join(".metrics.jsonl.tmp").exists());

        std::fs::write(&jsonl, format!("{{\"step\": \n{whole}")).unwrap();
        let err = MetricsLog::open(dir.path(), 2).unwrap_err().to_string();
        assert!(
            err.contains("metrics.jsonl") && err.contains("line 1"),
            "{err}"
        );
    }
}
