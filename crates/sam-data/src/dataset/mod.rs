//! Datasets (Burn's `Dataset` trait, errors typed as [`DataError`](crate::DataError)): SA-1B
//! folders, COCO instance files, and a generator of synthetic SA-1B-format data. Images and
//! masks are decoded lazily, in `get`. SA-1B's tar shards are read as a stream instead
//! ([`Sa1bTarStream`]), shard by shard.

pub mod annotation;
pub mod coco;
pub mod sa1b;
pub mod sa1b_tar;
mod shuffle_buffer;
pub mod synthetic;
mod tar_decode;
pub mod tar_epoch;
mod tar_headers;
pub mod tar_pack;
mod tar_samples;

pub use annotation::{AnnotatedImage, Annotation};
pub use burn_dataset::Dataset;
pub use coco::CocoDataset;
pub use sa1b::Sa1bDataset;
pub use sa1b_tar::{Sa1bTarConfig, Sa1bTarStream, SkippedSample, TarPosition, list_shards};
pub use synthetic::{SyntheticConfig, write_synthetic_dataset};
pub use tar_epoch::rank_shards;
pub use tar_pack::pack_tar_shards;
