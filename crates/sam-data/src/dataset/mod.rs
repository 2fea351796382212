//! Datasets (Burn's `Dataset` trait, errors typed as [`DataError`](crate::DataError)): SA-1B
//! folders, COCO instance files, and a generator of synthetic SA-1B-format data. Images and
//! masks are decoded lazily, in `get`.

pub mod annotation;
pub mod coco;
pub mod sa1b;
pub mod synthetic;

pub use annotation::{AnnotatedImage, Annotation};
pub use burn_dataset::Dataset;
pub use coco::CocoDataset;
pub use sa1b::Sa1bDataset;
pub use synthetic::{SyntheticConfig, write_synthetic_dataset};
