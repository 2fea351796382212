//! The `automatic_masks` command: "segment everything" on an image with
//! [`sam_amg::SamAutomaticMaskGenerator`], writing `masks.json` and an overlay.
//! `examples/automatic_masks.rs` only calls [`main`].

use std::path::PathBuf;
use std::time::Instant;

use sam_amg::{AmgConfig, OutputMode, SamAutomaticMaskGenerator};
use sam_data::overlay;

use crate::backend;
use crate::cli::{CliError, ModelArgs, number};

type Result<T> = std::result::Result<T, CliError>;

/// The usage text.
pub const USAGE: &str = "\
usage: automatic_masks [--checkpoint FILE|DIR] [--model-type vit_b|vit_l|vit_h | --config FILE.json]
                       [--image-size N] [--dtype f32|bf16|f16] [--image FILE]
                       [--points-per-side N] [--points-per-batch N] [--pred-iou-thresh F]
                       [--stability-score-thresh F] [--stability-score-offset F] [--box-nms-thresh F]
                       [--crop-n-layers N] [--crop-nms-thresh F] [--crop-overlap-ratio F]
                       [--crop-n-points-downscale-factor N] [--min-mask-region-area N]
                       [--output-mode binary_mask|uncompressed_rle|coco_rle] [--device NAME] [--out DIR]
                       [--text TEXT --clip DIR [--text-top K]]

Defaults are the reference's (32 points per side, 64 per batch, IoU 0.88, stability 0.95, ...).
Writes DIR/masks.json (the records, in the generator's order) and DIR/overlay.png. --text ranks
the masks by their similarity to the text under the CLIP folder --clip: each mask's object
(its box expanded 1.5×, square, pixels outside the mask zeroed, as the paper's text-prompt
crops) is embedded by CLIP's image tower and compared with the text's embedding (cosine, in
each record's text_score); masks.json is then in that order, and --text-top K keeps the K best.";

/// Parsed arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct AutomaticMasksArgs {
    /// Model, image and device.
    pub model: ModelArgs,
    /// Generator settings.
    pub amg: AmgConfig,
    /// Output folder.
    pub out: PathBuf,
    /// Show a progress bar.
    pub progress: bool,
    /// Rank the masks by similarity to this text.
    pub text: Option<String>,
    /// The Hugging Face CLIP folder for `text`.
    pub clip: Option<PathBuf>,
    /// Keep this many masks after ranking.
    pub text_top: Option<usize>,
}

impl AutomaticMasksArgs {
    /// Parses arguments (without the program name).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self> {
        let mut a = Self {
            model: ModelArgs::default(),
            amg: AmgConfig::default(),
            out: PathBuf::from("automatic_masks_out"),
            progress: true,
            text: None,
            clip: None,
            text_top: None,
        };
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            let mut value = || {
                it.next()
                    .ok_or_else(|| CliError::Usage(format!("{flag} needs a value")))
            };
            if a.model.take(&flag, &mut value)? {
                continue;
            }
            let c = &mut a.amg;
            match flag.as_str() {
                "--out" => a.out = value()?.into(),
                "--no-progress" => a.progress = false,
                "--text" => a.text = Some(value()?),
                "--clip" => a.clip = Some(value()?.into()),
                "--text-top" => a.text_top = Some(number(&flag, &value()?)?),
                "--points-per-side" => c.points_per_side = Some(number(&flag, &value()?)?),
                "--points-per-batch" => c.points_per_batch = number(&flag, &value()?)?,
                "--pred-iou-thresh" => c.pred_iou_thresh = number(&flag, &value()?)?,
                "--stability-score-thresh" => c.stability_score_thresh = number(&flag, &value()?)?,
                "--stability-score-offset" => c.stability_score_offset = number(&flag, &value()?)?,
                "--box-nms-thresh" => c.box_nms_thresh = number(&flag, &value()?)?,
                "--crop-n-layers" => c.crop_n_layers = number(&flag, &value()?)?,
                "--crop-nms-thresh" => c.crop_nms_thresh = number(&flag, &value()?)?,
                "--crop-overlap-ratio" => c.crop_overlap_ratio = number(&flag, &value()?)?,
                "--crop-n-points-downscale-factor" => {
                    c.crop_n_points_downscale_factor = number(&flag, &value()?)?
                }
                "--min-mask-region-area" => c.min_mask_region_area = number(&flag, &value()?)?,
                "--output-mode" => c.output_mode = OutputMode::parse(&value()?)?,
                "-h" | "--help" => return Err(CliError::Help(USAGE.into())),
                other => {
                    return Err(CliError::Usage(format!(
                        "unknown argument {other:?}\n{USAGE}"
                    )));
                }
            }
        }
        a.amg.validate()?;
        a.model.validate()?;
        match (&a.text, &a.clip) {
            (Some(_), None) => {
                return Err(CliError::Usage(
                    "--text needs --clip DIR (a Hugging Face CLIP folder)".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(CliError::Usage("--clip is only used with --text".into()));
            }
            _ => {}
        }
        if a.text_top.is_some() && a.text.is_none() {
            return Err(CliError::Usage("--text-top needs --text".into()));
        }
        Ok(a)
    }
}

/// Runs the generator and writes `masks.json` and `overlay.png`; returns the number of masks.
pub fn run(args: &AutomaticMasksArgs) -> Result<usize> {
    let device = backend::device(&args.model.device)?;
    let image_path = args.model.image_path();
    let image = sam_data::load_rgb(&image_path)?;
    let (model, _demo) = args.model.load_model(&device)?;
    let generator = SamAutomaticMaskGenerator::new(model, args.amg.clone())?;

    let bar = indicatif::ProgressBar::new(0);
    if args.progress {
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} point batches {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let start = Instant::now();
    let records = generator.generate_with_progress(&image, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();

    let mut scores = None;
    let records = match (&args.text, &args.clip) {
        (Some(text), Some(dir)) => {
            let s = text_scores(&image, &records, text, dir, &device)?;
            let mut order: Vec<usize> = (0..records.len()).collect();
            order.sort_by(|&a, &b| s[b].total_cmp(&s[a]));
            order.truncate(args.text_top.unwrap_or(order.len()));
            scores = Some(order.iter().map(|&i| s[i]).collect::<Vec<f32>>());
            let mut slots: Vec<Option<_>> = records.into_iter().map(Some).collect();
            order.iter().filter_map(|&i| slots[i].take()).collect()
        }
        _ => records,
    };

    std::fs::create_dir_all(&args.out).map_err(|e| CliError::Write {
        path: args.out.clone(),
        reason: e.to_string(),
    })?;
    // Streamed record by record: binary masks as a JSON tree would take ~32 bytes a pixel.
    let json_path = args.out.join("masks.json");
    let write_err = |e: std::io::Error| CliError::Write {
        path: json_path.clone(),
        reason: e.to_string(),
    };
    let file = std::fs::File::create(&json_path).map_err(write_err)?;
    let mut out = std::io::BufWriter::new(file);
    let mut write_all = || -> std::io::Result<()> {
        use std::io::Write;
        out.write_all(b"[")?;
        for (i, r) in records.iter().enumerate() {
            if i > 0 {
                out.write_all(b",")?;
            }
            let extra: Vec<(&str, serde_json::Value)> = match &scores {
                Some(s) => vec![("text_score", serde_json::json!(s[i]))],
                None => Vec::new(),
            };
            r.write_json(&mut out, &extra)?;
        }
        out.write_all(b"]")?;
        out.flush()
    };
    write_all().map_err(write_err)?;

    // Largest first, so small masks stay visible on top (as the reference notebooks draw them).
    let mut order: Vec<usize> = (0..records.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(records[i].area));
    let mut picture = image.clone();
    for (k, &i) in order.iter().enumerate() {
        overlay::tint(&mut picture, &records[i].mask()?, overlay::palette(k));
    }
    let path = args.out.join("overlay.png");
    picture.save(&path).map_err(|e| CliError::Write {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    println!(
        "{} masks in {seconds:.2} s; wrote {} and {}",
        records.len(),
        args.out.join("masks.json").display(),
        path.display()
    );
    Ok(records.len())
}

/// The example's whole `main`.
pub fn main(args: impl IntoIterator<Item = String>) -> std::process::ExitCode {
    crate::allocator::keep_freed_memory();
    crate::cli::exit_code(AutomaticMasksArgs::parse(args).and_then(|a| {
        if a.model.checkpoint.is_none() {
            crate::cli::demo_notice("automatic_masks", "");
            eprintln!(
                "      The demo model's IoU and stability scores are low (it trained 12 minutes on \
                 up to 4 shapes per image): with the reference's thresholds (0.88 / 0.95) it keeps \
                 few or no masks; try --pred-iou-thresh 0.45 --stability-score-thresh 0.1 \
                 --box-nms-thresh 0.3."
            );
        }
        run(&a)
    }))
}

/// Box expansion of the masked crops that rank masks by text (the middle of the paper's
/// training range [1, 2]).
const TEXT_CROP_EXPAND: f64 = 1.5;

/// Cosine similarity between `text` and each mask's masked crop under the CLIP folder `dir`.
pub fn text_scores(
    image: &image::RgbImage,
    records: &[sam_amg::MaskRecord],
    text: &str,
    dir: &std::path::Path,
    device: &burn::tensor::Device,
) -> Result<Vec<f32>> {
    let clip = sam_clip::ClipFolder::load(dir, device)?;
    let t = crate::segment::clip_text_embeddings(&clip, &[text.to_string()])?
        .pop()
        .unwrap_or_default();
    let (w, h) = (image.width() as usize, image.height() as usize);
    let mut scores = Vec::with_capacity(records.len());
    // Batches of crops keep memory bounded on images with hundreds of masks.
    for chunk in records.chunks(32) {
        let mut pixels = Vec::with_capacity(chunk.len());
        let mut empty = Vec::with_capacity(chunk.len());
        for r in chunk {
            let mask = r.mask()?;
            // An empty mask (possible after small-region removal) has nothing to show CLIP.
            let is_empty = !mask.iter().any(|&m| m);
            empty.push(is_empty);
            if is_empty {
                continue;
            }
            let crop = sam_clip::masked_crop(
                image.as_raw(),
                w,
                h,
                &mask,
                TEXT_CROP_EXPAND,
                true,
                &clip.processor,
            )?;
            pixels.push(crop.pixels);
        }
        let features = if pixels.is_empty() {
            Vec::new()
        } else {
            let batch = sam_clip::PixelValues::batch(&pixels, device)?;
            sam_model::f32_values(clip.model.get_image_features(batch)?)
        };
        let mut rows = features.chunks(t.len().max(1));
        for is_empty in empty {
            let score = match (is_empty, rows.next()) {
                (false, Some(f)) => crate::segment::l2_normalized(f)
                    .iter()
                    .zip(&t)
                    .map(|(a, b)| a * b)
                    .sum::<f32>(),
                _ => -1.0,
            };
            scores.push(score);
        }
    }
    Ok(scores)
}
