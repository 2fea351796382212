//! From host samples to tensors: model input and per-object ground truth on the decoder's
//! low-resolution grid.

use burn::tensor::{Device, Tensor, TensorData};
use sam_data::TrainSample;
use sam_model::Sam;

use crate::clicks::Grid;
use crate::error::Result;

/// `[B, 3, S, S]`: every image normalised and padded by `Sam::preprocess` (one implementation
/// for training and inference), stacked.
pub fn model_input(sam: &Sam, samples: &[TrainSample], device: &Device) -> Result<Tensor<4>> {
    let images = samples
        .iter()
        .map(|s| {
            let data: Vec<f32> = s.image.iter().map(|&v| v as f32).collect();
            let hwc = Tensor::<3>::from_data(TensorData::new(data, [s.height, s.width, 3]), device);
            sam.preprocess(hwc.permute([2, 0, 1]).unsqueeze::<4>())
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(Tensor::cat(images, 0))
}

/// The ground truth of one image's objects.
#[derive(Debug, Clone)]
pub struct Targets {
    /// The image's low-resolution grid.
    pub grid: Grid,
    /// Per object, `side²` cells: true where at least half the cell is object.
    pub masks: Vec<Vec<bool>>,
}

impl Targets {
    /// Binarises each object's low-resolution ground truth (cells at least half covered).
    pub fn new(sample: &TrainSample, image_size: usize, side: usize) -> Self {
        Self {
            grid: Grid::new(image_size, side, sample.height, sample.width),
            masks: sample
                .objects
                .iter()
                .map(|o| o.gt_low_res.iter().map(|&v| v >= 0.5).collect())
                .collect(),
        }
    }

    /// `[n, 1, side, side]` of 0/1 for the objects `which`.
    pub fn tensor(&self, which: &[usize], device: &Device) -> Tensor<4> {
        let side = self.grid.side;
        let data: Vec<f32> = which
            .iter()
            .flat_map(|&i| self.masks[i].iter().map(|&m| m as u8 as f32))
            .collect();
        Tensor::from_data(TensorData::new(data, [which.len(), 1, side, side]), device)
    }

    /// `[n, 1, side, side]` of 0/1: the cells covering the image.
    pub fn valid(&self, n: usize, device: &Device) -> Tensor<4> {
        let side = self.grid.side;
        Tensor::<4>::from_data(
            TensorData::new(self.grid.valid_mask(), [1, 1, side, side]),
            device,
        )
        .expand([n, 1, side, side])
    }
}
