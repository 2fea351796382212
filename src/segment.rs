//! The `segment` command: load a checkpoint, embed an image, answer point/box/mask prompts, and
//! write masks, an overlay and a JSON summary. `examples/segment.rs` only calls [`main`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Tensor;
use sam_data::overlay;

use sam_predictor::{MaskInput, Point, PredictOptions, Prompt, SamPredictor};

use crate::backend;

pub use crate::cli::CliError as SegmentError;
use crate::cli::ModelArgs;
pub use crate::cli::bundled;

type Result<T> = std::result::Result<T, SegmentError>;

/// The usage text.
pub const USAGE: &str = "\
usage: segment [--checkpoint FILE (.pth|.safetensors|.bpk) | DIR (Hugging Face SamModel)]
               [--model-type vit_b|vit_l|vit_h | --config FILE.json] [--image-size N] [--dtype f32|bf16|f16] [--image FILE] [--point X,Y[,LABEL]]... [--box X0,Y0,X1,Y1]... [--mask-input FILE.npy]
               [--text TEXT --clip DIR]... [--multimask] [--save-logits] [--device flex|wgpu|cuda] [--out DIR]

Points and boxes are in pixels of the image. Several --box run as one batch (each box with all
--point). LABEL is 1 (foreground, default) or 0 (background). --mask-input reads low-res logits
([1,h,w] or [1,1,h,w] .npy, e.g. a previous --save-logits). With no --checkpoint, the bundled
demo model (a small SAM trained here on synthetic shapes, see docs/training.md) segments the
bundled image. --image-size runs the model at another input side (a multiple of the patch,
e.g. 512 for speed) by resampling its position tables. --dtype bf16|f16 computes in that type
(norms, softmax and the outputs stay f32; bf16 needs CUDA). --text prompts a model trained with
text prompts (its config has prompt_embedding_dim): each text is embedded by the Hugging Face
CLIP folder --clip (projected, l2-normalised) and is one prompt of the batch, with all --point
(and paired with the --box of the same rank when boxes are given). Without --checkpoint and
--clip, --text runs the bundled text demo (a tiny CLIP and a small SAM trained with its image
embeddings, docs/text-prompts.md), e.g. --text \"a yellow circle\" on the bundled image. A
text alone (no point, box or mask) predicts the three multimask outputs and, without
--multimask, keeps the one SAM scores highest.";

/// Parsed arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentArgs {
    /// Model, image and device.
    pub model: ModelArgs,
    /// Points (label 1 by default).
    pub points: Vec<Point>,
    /// Boxes; each is one prompt of the batch.
    pub boxes: Vec<[f64; 4]>,
    /// Low-res logits `.npy` fed back as a mask prompt.
    pub mask_input: Option<PathBuf>,
    /// Text prompts; each is one prompt of the batch.
    pub texts: Vec<String>,
    /// The Hugging Face CLIP folder that embeds `texts`.
    pub clip: Option<PathBuf>,
    /// Three masks per prompt instead of one.
    pub multimask: bool,
    /// Also write `low_res_logits.npy` and `iou_predictions.npy`.
    pub save_logits: bool,
    /// Output folder.
    pub out: PathBuf,
}

fn numbers(flag: &str, text: &str, min: usize, max: usize) -> Result<Vec<f64>> {
    let values: Vec<f64> = text
        .split(',')
        .map(|v| v.trim().parse::<f64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| {
            SegmentError::Usage(format!(
                "{flag} {text}: expected numbers separated by commas"
            ))
        })?;
    if values.len() < min || values.len() > max || values.iter().any(|v| !v.is_finite()) {
        return Err(SegmentError::Usage(format!(
            "{flag} {text}: expected {} finite numbers",
            if min == max {
                min.to_string()
            } else {
                format!("{min} or {max}")
            }
        )));
    }
    Ok(values)
}

impl SegmentArgs {
    /// Parses arguments (without the program name).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self> {
        let mut a = SegmentArgs {
            model: ModelArgs::default(),
            points: Vec::new(),
            boxes: Vec::new(),
            mask_input: None,
            texts: Vec::new(),
            clip: None,
            multimask: false,
            save_logits: false,
            out: PathBuf::from("segment_out"),
        };
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            let mut value = || {
                it.next()
                    .ok_or_else(|| SegmentError::Usage(format!("{flag} needs a value")))
            };
            if a.model.take(&flag, &mut value)? {
                continue;
            }
            match flag.as_str() {
                "--point" => {
                    let v = numbers("--point", &value()?, 2, 3)?;
                    let label = v.get(2).copied().unwrap_or(1.0);
                    if label != 0.0 && label != 1.0 {
                        return Err(SegmentError::Usage(format!(
                            "--point label {label}: expected 1 (foreground) or 0 (background)"
                        )));
                    }
                    a.points.push(Point {
                        x: v[0],
                        y: v[1],
                        label: label as i64,
                    });
                }
                "--box" => {
                    let v = numbers("--box", &value()?, 4, 4)?;
                    a.boxes.push([v[0], v[1], v[2], v[3]]);
                }
                "--mask-input" => a.mask_input = Some(value()?.into()),
                "--text" => a.texts.push(value()?),
                "--clip" => a.clip = Some(value()?.into()),
                "--multimask" => a.multimask = true,
                "--save-logits" => a.save_logits = true,
                "--out" => a.out = value()?.into(),
                "-h" | "--help" => return Err(SegmentError::Help(USAGE.into())),
                other => {
                    return Err(SegmentError::Usage(format!(
                        "unknown argument {other:?}\n{USAGE}"
                    )));
                }
            }
        }
        a.model.validate()?;
        match (a.texts.is_empty(), &a.clip) {
            // Without a model of their own, texts run the bundled text demo: the tiny CLIP and
            // the demo SAM trained with its embeddings (examples/text_demo, docs/text-prompts.md).
            (false, None) if a.model.checkpoint.is_none() => {
                let dir = crate::cli::bundled("assets/text_demo");
                a.clip = Some(dir.join("clip"));
                a.model.checkpoint = Some(dir.join("sam/model.bpk"));
                a.model.config = Some(dir.join("sam/config.json"));
            }
            (false, None) => {
                return Err(SegmentError::Usage(
                    "--text needs --clip DIR (a Hugging Face CLIP folder) with --checkpoint".into(),
                ));
            }
            (true, Some(_)) => {
                return Err(SegmentError::Usage(
                    "--clip is only used with --text".into(),
                ));
            }
            _ => {}
        }
        if !a.texts.is_empty() && !a.boxes.is_empty() && a.texts.len() != a.boxes.len() {
            return Err(SegmentError::Usage(format!(
                "{} --text but {} --box: texts pair with boxes, so give as many of each",
                a.texts.len(),
                a.boxes.len()
            )));
        }
        Ok(a)
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct Summary {
    /// Files written.
    pub files: Vec<PathBuf>,
    /// The JSON summary.
    pub json: serde_json::Value,
}

fn write_err(path: &Path, e: impl ToString) -> SegmentError {
    SegmentError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Runs the command.
pub fn run(args: &SegmentArgs) -> Result<Summary> {
    let device = backend::device(&args.model.device)?;
    let image_path = args.model.image_path();
    let image = sam_data::load_rgb(&image_path)?;
    let (w, h) = (image.width() as f64, image.height() as f64);

    let points = args.points.clone();
    let mut boxes = args.boxes.clone();
    if args.model.image.is_none()
        && points.is_empty()
        && boxes.is_empty()
        && args.mask_input.is_none()
        && args.texts.is_empty()
    {
        // The bundled scene: the house, the tree and the sun, as one batch of three boxes.
        let (sx, sy) = (w / 320.0, h / 240.0);
        for [x0, y0, x1, y1] in [
            [50.0, 44.0, 171.0, 171.0],
            [184.0, 69.0, 253.0, 181.0],
            [239.0, 19.0, 291.0, 71.0],
        ] {
            boxes.push([x0 * sx, y0 * sy, x1 * sx, y1 * sy]);
        }
    }

    // Before the model is loaded and the image embedded (a minute for ViT-H on a CPU).
    if points.is_empty()
        && boxes.is_empty()
        && args.mask_input.is_none()
        && (args.texts.is_empty() || args.clip.is_none())
    {
        return Err(SegmentError::Usage(format!(
            "no prompt: give --point, --box or --mask-input\n{USAGE}"
        )));
    }

    let start = Instant::now();
    let (model, demo) = args.model.load_model(&device)?;
    let t_load = start.elapsed();
    let mut predictor = SamPredictor::new(model);
    let start = Instant::now();
    predictor.set_image(&image)?;
    let t_embed = start.elapsed();

    let mask_input = match &args.mask_input {
        Some(path) => {
            let (shape, values) = sam_data::read_npy_f32(path)?;
            let (mh, mw) = match shape.as_slice() {
                [1, 1, mh, mw] | [1, mh, mw] | [mh, mw] => (*mh, *mw),
                other => {
                    return Err(SegmentError::Usage(format!(
                        "--mask-input {}: expected a [1, h, w] or [1, 1, h, w] array, got {other:?}",
                        path.display()
                    )));
                }
            };
            Some(MaskInput::new(values, mh, mw)?)
        }
        None => None,
    };
    let base = Prompt {
        points: points.clone(),
        bbox: None,
        mask_input,
        embedding: None,
    };
    let prompts: Vec<Prompt> = match &args.clip {
        Some(dir) if !args.texts.is_empty() => {
            let embeddings = text_embeddings(dir, &args.texts, &device)?;
            embeddings
                .into_iter()
                .enumerate()
                .map(|(i, e)| {
                    let p = base.clone().with_embedding(e);
                    match boxes.get(i) {
                        Some(b) => p.with_box(*b),
                        None => p,
                    }
                })
                .collect()
        }
        _ if boxes.is_empty() => vec![base],
        _ => boxes.iter().map(|b| base.clone().with_box(*b)).collect(),
    };
    if prompts.len() == 1
        && prompts[0].points.is_empty()
        && prompts[0].bbox.is_none()
        && prompts[0].mask_input.is_none()
        && prompts[0].embedding.is_none()
    {
        return Err(SegmentError::Usage(format!(
            "no prompt: give --point, --box or --mask-input\n{USAGE}"
        )));
    }

    // A text alone is ambiguous like one point, and a text head trains only the three
    // multimask outputs on it (App. D.5): without --multimask such prompts still predict the
    // three and keep the one SAM scores highest.
    let text_alone = prompts.iter().all(|p| {
        p.embedding.is_some() && p.points.is_empty() && p.bbox.is_none() && p.mask_input.is_none()
    });
    let best_of_three = text_alone && !args.multimask;
    let options = PredictOptions {
        multimask_output: args.multimask || best_of_three,
        return_logits: false,
    };
    let start = Instant::now();
    let pred = predictor.predict_batch(&prompts, options)?;
    let masks = pred.masks.into_binary();
    let [b, c, mh, mw] = masks.dims();
    let mask_values = sam_model::bool_values(masks);
    let t_predict = start.elapsed();
    let scores = to_f32(pred.iou_predictions.clone())?;

    std::fs::create_dir_all(&args.out).map_err(|e| write_err(&args.out, e))?;
    let mut files = Vec::new();
    let mut records = Vec::new();
    let mut picture = image.clone();
    let plane = mh * mw;
    #[allow(clippy::needless_range_loop)] // p indexes the masks, the scores and the prompts
    for p in 0..b {
        let outputs: Vec<usize> = if best_of_three {
            let row = &scores[p * c..(p + 1) * c];
            (0..c)
                .max_by(|&i, &j| row[i].total_cmp(&row[j]))
                .into_iter()
                .collect()
        } else {
            (0..c).collect()
        };
        for m in outputs {
            let k = p * c + m;
            let mask = &mask_values[k * plane..(k + 1) * plane];
            let file = args.out.join(format!("mask_{p}_{m}.png"));
            overlay::mask_image(mask, mw as u32, mh as u32)
                .save(&file)
                .map_err(|e| write_err(&file, e))?;
            overlay::tint(&mut picture, mask, overlay::palette(k));
            let (area, bbox) = overlay::mask_stats(mask, mw);
            records.push(serde_json::json!({
                "prompt": p,
                "mask": m,
                "file": file.file_name().and_then(|f| f.to_str()),
                "score": scores[k],
                "area": area,
                "bbox_xyxy": bbox,
                "prompt_points": prompts[p].points.iter().map(|q| [q.x, q.y, q.label as f64]).collect::<Vec<_>>(),
                "prompt_box": prompts[p].bbox,
                "prompt_text": args.texts.get(p),
            }));
            files.push(file);
        }
    }
    for b in &boxes {
        overlay::draw_box(&mut picture, *b, [255, 255, 255]);
    }
    for q in &points {
        overlay::draw_point(&mut picture, q.x, q.y, q.label == 1);
    }
    let overlay_path = args.out.join("overlay.png");
    picture
        .save(&overlay_path)
        .map_err(|e| write_err(&overlay_path, e))?;
    files.push(overlay_path);

    if args.save_logits {
        let low = pred.low_res_logits;
        let shape = low.dims();
        let path = args.out.join("low_res_logits.npy");
        sam_data::write_npy_f32(&path, &shape, &to_f32(low)?)?;
        files.push(path);
        let path = args.out.join("iou_predictions.npy");
        sam_data::write_npy_f32(&path, &[b, c], &scores)?;
        files.push(path);
    }

    let json = serde_json::json!({
        "image": image_path,
        "checkpoint": args.model.checkpoint.clone().unwrap_or_else(|| crate::cli::bundled("assets/demo_model/model.bpk")),
        "demo_model": demo,
        "device": args.model.device,
        "image_size": [image.height(), image.width()],
        "multimask": args.multimask,
        "best_of_three": best_of_three,
        "seconds": {"load": t_load.as_secs_f64(), "embed": t_embed.as_secs_f64(), "predict": t_predict.as_secs_f64()},
        "masks": records,
    });
    let json_path = args.out.join("result.json");
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&json).unwrap_or_default(),
    )
    .map_err(|e| write_err(&json_path, e))?;
    files.push(json_path);
    Ok(Summary { files, json })
}

/// CLIP text embeddings as SAM's text prompt: `get_text_features`, ℓ2-normalised (paper App.
/// D.5), one vector per text.
pub fn text_embeddings(
    clip_dir: &Path,
    texts: &[String],
    device: &burn::tensor::Device,
) -> Result<Vec<Vec<f32>>> {
    let clip = sam_clip::ClipFolder::load(clip_dir, device)?;
    clip_text_embeddings(&clip, texts)
}

/// [`text_embeddings`] with a loaded CLIP folder.
pub fn clip_text_embeddings(
    clip: &sam_clip::ClipFolder,
    texts: &[String],
) -> Result<Vec<Vec<f32>>> {
    let (_, features) = clip.embed_texts(texts)?;
    let [_, p] = features.dims();
    let values = to_f32(features)?;
    Ok(values.chunks(p.max(1)).map(l2_normalized).collect())
}

/// `v / ‖v‖` (a zero vector stays zero).
pub fn l2_normalized(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter().map(|x| x / norm).collect()
}

fn to_f32<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    Ok(sam_model::f32_values(t))
}

/// The example's whole `main`: parse, run, report; a one-line error and exit code 1 on failure.
pub fn main(args: impl IntoIterator<Item = String>) -> std::process::ExitCode {
    crate::allocator::keep_freed_memory();
    crate::cli::exit_code(SegmentArgs::parse(args).and_then(|a| {
        if a.model.checkpoint.is_none() {
            crate::cli::demo_notice("segment", " --box 50,44,171,171 --point 110,150");
        }
        let summary = run(&a)?;
        let s = &summary.json["seconds"];
        println!(
            "load {:.2} s, embed {:.2} s, predict {:.3} s",
            s["load"].as_f64().unwrap_or(0.0),
            s["embed"].as_f64().unwrap_or(0.0),
            s["predict"].as_f64().unwrap_or(0.0)
        );
        for r in summary.json["masks"].as_array().into_iter().flatten() {
            println!(
                "prompt {} mask {}: score {:.3}, area {} px, bbox {}",
                r["prompt"],
                r["mask"],
                r["score"].as_f64().unwrap_or(f64::NAN),
                r["area"],
                r["bbox_xyxy"]
            );
        }
        println!("wrote {} files to {}", summary.files.len(), a.out.display());
        Ok(())
    }))
}
