//! COCO instances JSON (being written).

/// A COCO instances file with its image folder.
pub struct CocoDataset;
