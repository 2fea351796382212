//! The automatic mask generator (the reference's `automatic_mask_generator.py` and
//! `utils/amg.py`): prompt SAM with a grid of points over the image (and over crops of it), keep
//! the confident and stable masks, and remove duplicates.

#![warn(missing_docs)]

mod config;
mod crops;
mod error;
mod generator;
mod mask_ops;
mod mask_postprocess;
mod nms;
mod point_grid;
mod record;
mod small_regions;

pub use config::{AmgConfig, MAX_CROP_LAYERS, MAX_POINTS_PER_SIDE, OutputMode};
pub use crops::generate_crop_boxes;
pub use error::{AmgError, Result};
pub use generator::SamAutomaticMaskGenerator;
pub use mask_ops::{batched_mask_to_box, calculate_stability_score, is_box_near_crop_edge};
pub use nms::nms;
pub use point_grid::{build_all_layer_point_grids, build_point_grid};
pub use record::{MaskRecord, Segmentation};
pub use small_regions::{RegionMode, remove_small_regions};
