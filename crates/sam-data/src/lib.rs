//! Everything between image files and model input: Pillow-exact resizing, SAM's
//! `ResizeLongestSide` with its coordinate transforms, and image loading.

#![warn(missing_docs)]

pub mod augment;
pub mod error;
pub mod image_io;
pub mod npy;
pub mod overlay;
pub mod pillow_resize;
pub mod prompt_sampling;
pub mod rle;
pub mod transforms;

pub use error::{DataError, Result};
pub use image_io::load_rgb;
pub use npy::{read_npy_f32, write_npy_f32};
pub use pillow_resize::resize_bilinear_rgb;
pub use rle::Rle;
pub use transforms::ResizeLongestSide;
