//! COCO polygons to RLE (being written).
