//! Everything between files on disk and a training batch: image loading, Pillow-exact resizing
//! and SAM's `ResizeLongestSide`, COCO RLE and polygons, the SA-1B and COCO datasets and a
//! synthetic SA-1B-format generator, augmentation, prompt sampling, and a seeded, resumable,
//! multi-threaded loader.

#![warn(missing_docs)]

pub mod augment;
pub mod coco_eval;
pub mod dataset;
pub mod error;
pub mod image_io;
mod json;
pub mod loader;
mod mask_resample;
pub mod npy;
pub mod overlay;
pub mod pillow_resize;
pub mod polygon;
pub mod prompt_sampling;
pub mod rle;
pub mod seed;
pub mod train_sample;
pub mod transforms;

pub use error::{DataError, Result};
pub use image_io::load_rgb;
pub use loader::{Batch, DataLoader, LoaderConfig, LoaderPosition};
pub use npy::{read_npy_f32, write_npy_f32};
pub use pillow_resize::{resize_bicubic_rgb, resize_bilinear_rgb};
pub use rle::{Rle, RleBuilder};
pub use train_sample::{TrainObject, TrainSample, TrainSampleConfig, train_sample};
pub use transforms::ResizeLongestSide;
