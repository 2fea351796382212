//! The ViT-B, ViT-L and ViT-H presets against the official checkpoints' key and shape lists
//! (`tools/reference/make_preset_shapes.py`, from the reference model on the meta device):
//! every size the loader checks agrees, and the models hold as many parameters as the
//! official ones. Nothing is allocated: the models' parameters are never initialised.

mod common;

use std::collections::BTreeMap;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use common::fixtures;
use sam_model::{SamConfig, variant_mismatches};

fn official(name: &str) -> BTreeMap<String, Vec<usize>> {
    let path = fixtures().join(format!("official_{name}_shapes.tsv"));
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (key, shape) = l.split_once('\t').unwrap();
            let dims: Vec<usize> = serde_json::from_str(shape).unwrap();
            (key.to_string(), dims)
        })
        .collect()
}

/// Parameters of a model built from `config`, counted from their lazy shapes.
fn parameter_count(config: &SamConfig) -> usize {
    struct Count(usize);
    impl ModuleVisitor for Count {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            assert!(!param.is_initialized(), "the count must not allocate");
            self.0 += param.lazy_shape().num_elements();
        }
    }
    let sam = config.init(&Device::flex()).unwrap();
    let mut c = Count(0);
    sam.visit(&mut c);
    c.0
}

#[test]
fn presets_have_the_official_checkpoints_sizes() {
    let presets = [
        ("vit_b", SamConfig::vit_b()),
        ("vit_l", SamConfig::vit_l()),
        ("vit_h", SamConfig::vit_h()),
    ];
    for (name, config) in &presets {
        let shapes = official(name);
        let mismatches = variant_mismatches(config, &shapes);
        assert!(mismatches.is_empty(), "{name}: {mismatches:?}");
        // The official state dict also holds the pixel mean and std (buffers the reference
        // registers; here they are constants).
        let official_count: usize = shapes
            .iter()
            .filter(|(k, _)| !k.starts_with("pixel_"))
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        assert_eq!(parameter_count(config), official_count, "{name}");
        // Another preset's checkpoint is told apart, naming what differs.
        for (other, other_config) in &presets {
            if other != name {
                let m = variant_mismatches(other_config, &shapes);
                assert!(
                    m.iter().any(|s| s.contains("encoder_embed_dim")),
                    "{other} config vs {name} checkpoint: {m:?}"
                );
            }
        }
    }
}
