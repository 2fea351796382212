//! Prompts in the original image's pixel coordinates.

use crate::error::{PredictorError, Result};

/// A clicked point; `label` 1 = foreground, 0 = background, −1 = ignored (padding).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Column, pixels of the original image.
    pub x: f64,
    /// Row, pixels of the original image.
    pub y: f64,
    /// 1 foreground, 0 background, −1 padding (2 and 3 are box corners, as the reference).
    pub label: i64,
}

impl Point {
    /// A foreground point.
    pub fn foreground(x: f64, y: f64) -> Self {
        Self { x, y, label: 1 }
    }

    /// A background point.
    pub fn background(x: f64, y: f64) -> Self {
        Self { x, y, label: 0 }
    }
}

/// Low-resolution mask logits from a previous prediction (`4E × 4E`, 256² for the official
/// models), fed back as a dense prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskInput {
    /// Row-major `height × width` logits.
    pub logits: Vec<f32>,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl MaskInput {
    /// Wraps logits, checking the buffer length.
    pub fn new(logits: Vec<f32>, height: usize, width: usize) -> Result<Self> {
        if logits.len() != height * width {
            return Err(PredictorError::InvalidPrompt(format!(
                "mask input has {} values, expected {height}×{width}",
                logits.len()
            )));
        }
        Ok(Self {
            logits,
            height,
            width,
        })
    }
}

/// Any combination of points, one box, a mask and an external embedding, for one object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prompt {
    /// Points with labels (may be empty).
    pub points: Vec<Point>,
    /// `(x0, y0, x1, y1)` in pixels of the original image (it may overhang the image).
    pub bbox: Option<[f64; 4]>,
    /// A previous low-res logits mask.
    pub mask_input: Option<MaskInput>,
    /// An external prompt embedding (a CLIP text or image embedding) for a model built with
    /// `prompt_embedding_dim` equal to its length.
    pub embedding: Option<Vec<f32>>,
}

impl Prompt {
    /// Points from parallel coordinate and label arrays, as the reference's
    /// `point_coords`/`point_labels`.
    pub fn from_arrays(coords: &[[f64; 2]], labels: &[i64]) -> Result<Self> {
        if coords.len() != labels.len() {
            return Err(PredictorError::InvalidPrompt(format!(
                "{} point coordinates but {} labels",
                coords.len(),
                labels.len()
            )));
        }
        Ok(Self {
            points: coords
                .iter()
                .zip(labels)
                .map(|(&[x, y], &label)| Point { x, y, label })
                .collect(),
            ..Default::default()
        })
    }

    /// Adds points.
    pub fn with_points(mut self, points: impl IntoIterator<Item = Point>) -> Self {
        self.points.extend(points);
        self
    }

    /// Sets the box.
    pub fn with_box(mut self, bbox: [f64; 4]) -> Self {
        self.bbox = Some(bbox);
        self
    }

    /// Sets the mask input.
    pub fn with_mask_input(mut self, mask: MaskInput) -> Self {
        self.mask_input = Some(mask);
        self
    }

    /// Sets the external prompt embedding (e.g. a CLIP text embedding).
    pub fn with_embedding(mut self, embedding: Vec<f32>) -> Self {
        self.embedding = Some(embedding);
        self
    }

    /// Checks the prompt against a model whose mask prompts are `mask_side²`. Coordinates
    /// outside the image are valid, as in the reference, which only rescales them: a detector's
    /// box may overhang the image, and the positional encoding is defined everywhere.
    pub(crate) fn validate(&self, mask_side: usize) -> Result<()> {
        let bad = |m: String| Err(PredictorError::InvalidPrompt(m));
        for (i, p) in self.points.iter().enumerate() {
            if !p.x.is_finite() || !p.y.is_finite() {
                return bad(format!(
                    "point {i} has non-finite coordinates ({}, {})",
                    p.x, p.y
                ));
            }
            if !(-1..=3).contains(&p.label) {
                return bad(format!(
                    "point {i} has label {} (expected 1 foreground, 0 background, -1 ignore, or 2 and 3 for box corners)",
                    p.label
                ));
            }
        }
        if let Some(b) = self.bbox {
            if b.iter().any(|v| !v.is_finite()) {
                return bad(format!("box {b:?} has non-finite coordinates"));
            }
            if b[2] < b[0] || b[3] < b[1] {
                return bad(format!("box {b:?} has x1 < x0 or y1 < y0"));
            }
        }
        if let Some(m) = &self.mask_input {
            if m.height != mask_side || m.width != mask_side {
                return bad(format!(
                    "mask input is {}×{}, the model expects {mask_side}×{mask_side} low-res logits",
                    m.height, m.width
                ));
            }
            // The fields are public, so `MaskInput::new`'s check may have been bypassed.
            if m.height.checked_mul(m.width) != Some(m.logits.len()) {
                return bad(format!(
                    "mask input says {}×{} but holds {} logits",
                    m.height,
                    m.width,
                    m.logits.len()
                ));
            }
            if m.logits.iter().any(|v| !v.is_finite()) {
                return bad("mask input has non-finite logits".into());
            }
        }
        if let Some(e) = &self.embedding
            && e.iter().any(|v| !v.is_finite())
        {
            return bad("embedding prompt has non-finite values".into());
        }
        Ok(())
    }
}
