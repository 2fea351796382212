//! CLIP: the `sam-clip` crate re-exported whole (`sam_burn::clip::ClipModel`,
//! `sam_burn::clip::config::ClipConfig` …), and the `clip` command: embed texts and images
//! with a Hugging Face `CLIPModel` folder and write the token ids and the projected features,
//! as transformers' `get_text_features` / `get_image_features` return them (not normalised).
//! `examples/clip.rs` only calls [`main`].

pub use sam_clip::*;

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Tensor;

use crate::backend;
use crate::cli::{CliError, write_file};

/// The command's results (`Result` here is the crate's, re-exported above).
type CmdResult<T> = std::result::Result<T, CliError>;

/// The usage text.
pub const USAGE: &str = "\
usage: clip --model DIR [--text TEXT]... [--image FILE]... [--device flex|wgpu|cuda] [--out DIR]

DIR is a Hugging Face CLIPModel folder (config.json, model.safetensors, tokenizer.json and,
optionally, preprocessor_config.json), e.g. openai/clip-vit-large-patch14-336. Writes to --out
(default clip_out): input_ids.json (one list of token ids per text, with <|startoftext|> and
<|endoftext|>, unpadded), text_embeds.npy (f32 [T, P]) and image_embeds.npy (f32 [I, P]): the
projected features of get_text_features / get_image_features, not normalised.";

/// Parsed arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipArgs {
    /// The Hugging Face `CLIPModel` folder.
    pub model: PathBuf,
    /// Texts, in order.
    pub texts: Vec<String>,
    /// Image files, in order.
    pub images: Vec<PathBuf>,
    /// Device name.
    pub device: String,
    /// Output folder.
    pub out: PathBuf,
}

impl ClipArgs {
    /// Parses arguments (without the program name).
    pub fn parse(args: impl IntoIterator<Item = String>) -> CmdResult<Self> {
        let mut model = None;
        let mut a = ClipArgs {
            model: PathBuf::new(),
            texts: Vec::new(),
            images: Vec::new(),
            device: "flex".into(),
            out: PathBuf::from("clip_out"),
        };
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            let mut value = || {
                it.next()
                    .ok_or_else(|| CliError::Usage(format!("{flag} needs a value")))
            };
            match flag.as_str() {
                "--model" => model = Some(PathBuf::from(value()?)),
                "--text" => a.texts.push(value()?),
                "--image" => a.images.push(value()?.into()),
                "--device" => a.device = value()?,
                "--out" => a.out = value()?.into(),
                "-h" | "--help" => return Err(CliError::Help(USAGE.into())),
                other => {
                    return Err(CliError::Usage(format!(
                        "unknown argument {other:?}\n{USAGE}"
                    )));
                }
            }
        }
        a.model = model.ok_or_else(|| {
            CliError::Usage(format!(
                "--model DIR is required (a CLIPModel folder)\n{USAGE}"
            ))
        })?;
        if a.texts.is_empty() && a.images.is_empty() {
            return Err(CliError::Usage(format!(
                "nothing to embed: give --text and/or --image\n{USAGE}"
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
    /// Token ids per text.
    pub input_ids: Vec<Vec<u32>>,
    /// `[T, P]` text features (empty without texts).
    pub text_shape: Option<[usize; 2]>,
    /// `[I, P]` image features (empty without images).
    pub image_shape: Option<[usize; 2]>,
    /// Seconds spent loading, embedding texts, embedding images.
    pub seconds: [f64; 3],
}

fn write_npy(path: &Path, t: Tensor<2>) -> CmdResult<[usize; 2]> {
    let shape = t.dims();
    let values: Vec<f32> = t.into_data().convert::<f32>().iter::<f32>().collect();
    sam_data::write_npy_f32(path, &shape, &values)?;
    Ok(shape)
}

/// The ids as JSON, one text's list per line.
fn ids_json(ids: &[Vec<u32>]) -> String {
    let rows: Vec<String> = ids
        .iter()
        .map(|r| serde_json::to_string(r).unwrap_or_default())
        .collect();
    format!("[\n  {}\n]\n", rows.join(",\n  "))
}

/// Runs the command. Every input is read before anything is written.
pub fn run(args: &ClipArgs) -> CmdResult<Summary> {
    let device = backend::device(&args.device)?;
    let start = Instant::now();
    let clip = ClipFolder::load(&args.model, &device)?;
    let images = args
        .images
        .iter()
        .map(load_image)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let pixels = images
        .iter()
        .map(|im| clip.processor.preprocess_image(im))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let input_ids = clip.tokenizer.encode_batch(&args.texts)?;
    let t_load = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let text = if input_ids.is_empty() {
        None
    } else {
        Some(clip.model.get_text_features(&input_ids)?)
    };
    let t_text = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let image = if pixels.is_empty() {
        None
    } else {
        let batch = PixelValues::batch(&pixels, &device)?;
        Some(clip.model.get_image_features(batch)?)
    };
    let t_image = start.elapsed().as_secs_f64();

    std::fs::create_dir_all(&args.out).map_err(|e| CliError::Write {
        path: args.out.clone(),
        reason: e.to_string(),
    })?;
    let mut files = Vec::new();
    let mut text_shape = None;
    if let Some(t) = text {
        let path = args.out.join("input_ids.json");
        write_file(&path, &ids_json(&input_ids))?;
        files.push(path);
        let path = args.out.join("text_embeds.npy");
        text_shape = Some(write_npy(&path, t)?);
        files.push(path);
    }
    let mut image_shape = None;
    if let Some(t) = image {
        let path = args.out.join("image_embeds.npy");
        image_shape = Some(write_npy(&path, t)?);
        files.push(path);
    }
    Ok(Summary {
        files,
        input_ids,
        text_shape,
        image_shape,
        seconds: [t_load, t_text, t_image],
    })
}

/// The example's whole `main`: parse, run, report; a one-line error and exit code 1 on failure.
pub fn main(args: impl IntoIterator<Item = String>) -> std::process::ExitCode {
    crate::allocator::keep_freed_memory();
    crate::cli::exit_code(ClipArgs::parse(args).and_then(|a| {
        let s = run(&a)?;
        let [load, text, image] = s.seconds;
        println!("load {load:.2} s, texts {text:.3} s, images {image:.3} s");
        if let Some([t, p]) = s.text_shape {
            println!("{t} texts → text_embeds.npy [{t}, {p}]");
        }
        if let Some([i, p]) = s.image_shape {
            println!("{i} images → image_embeds.npy [{i}, {p}]");
        }
        println!("wrote {} files to {}", s.files.len(), a.out.display());
        Ok(())
    }))
}
