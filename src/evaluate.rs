//! The `evaluate` command: mIoU of a model after 1..N simulated clicks and with box prompts on
//! an SA-1B-format folder or a COCO instances file, and COCO mask AP from ground-truth or
//! detector boxes. `examples/evaluate.rs` only calls [`main`].

use std::path::PathBuf;
use std::sync::Arc;

use sam_data::DataError;
use sam_data::coco_eval::CocoEval;
use sam_data::dataset::{AnnotatedImage, CocoDataset, Dataset, Sa1bDataset};
use sam_train::{ApConfig, BoxSource, EvalConfig, EvalReport, coco_mask_ap, evaluate};

use crate::backend;
use crate::cli::{CliError, ModelArgs, number, write_file};

type Result<T> = std::result::Result<T, CliError>;

/// The usage text.
pub const USAGE: &str = "\
usage: evaluate (--data DIR | --coco FILE.json --images DIR) [--checkpoint FILE|DIR]
                [--model-type vit_b|vit_l|vit_h | --config FILE.json] [--image-size N] [--dtype f32|bf16|f16] [--clicks N] [--no-boxes]
                [--max-images N] [--max-objects N] [--ap | --detections FILE.json] [--no-miou]
                [--device NAME] [--out FILE.json]

--data DIR        an SA-1B-format folder (sa_<id>.jpg + sa_<id>.json)
--coco FILE       a COCO instances file, with its images in --images DIR
--clicks N        clicks per object (default 5): mIoU after each, at the error's most interior cell
--no-boxes        skip the box-prompt mIoU
--ap              with --coco: COCO mask AP (COCOeval segm, as pycocotools) of one mask per
                  ground-truth box
--detections FILE with --coco: COCO mask AP of one mask per detector box (a COCO results list:
                  image_id, category_id, bbox [x, y, w, h], score)
--no-miou         with --ap/--detections: AP only
Without --checkpoint, the bundled demo model is evaluated. Unreadable items are skipped and counted.";

/// Parsed arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluateArgs {
    /// Model and device (`image` unused).
    pub model: ModelArgs,
    /// SA-1B folder.
    pub data: Option<PathBuf>,
    /// COCO file and image folder.
    pub coco: Option<(PathBuf, PathBuf)>,
    /// What to measure.
    pub eval: EvalConfig,
    /// COCO mask AP, and from which boxes.
    pub ap: Option<BoxSource>,
    /// Skip the mIoU measurement.
    pub no_miou: bool,
    /// Where to write the report.
    pub out: Option<PathBuf>,
}

impl EvaluateArgs {
    /// Parses arguments (without the program name).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self> {
        let mut model = ModelArgs::default();
        let (mut data, mut coco, mut images, mut out) = (None, None, None, None);
        let mut eval = EvalConfig::default();
        let (mut ap, mut no_miou) = (None, false);
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            let mut value = || {
                it.next()
                    .ok_or_else(|| CliError::Usage(format!("{flag} needs a value")))
            };
            if flag != "--image" && model.take(&flag, &mut value)? {
                continue;
            }
            match flag.as_str() {
                "--data" => data = Some(PathBuf::from(value()?)),
                "--coco" => coco = Some(PathBuf::from(value()?)),
                "--images" => images = Some(PathBuf::from(value()?)),
                "--out" => out = Some(PathBuf::from(value()?)),
                "--clicks" => eval.clicks = number(&flag, &value()?)?,
                "--max-images" => eval.max_images = Some(number(&flag, &value()?)?),
                "--max-objects" => eval.max_objects = number(&flag, &value()?)?,
                "--no-boxes" => eval.boxes = false,
                "--ap" => ap = Some(BoxSource::GroundTruth),
                "--detections" => ap = Some(BoxSource::Detections(PathBuf::from(value()?))),
                "--no-miou" => no_miou = true,
                "-h" | "--help" => return Err(CliError::Help(USAGE.into())),
                other => {
                    return Err(CliError::Usage(format!(
                        "unknown argument {other:?}\n{USAGE}"
                    )));
                }
            }
        }
        model.validate()?;
        if !(1..=sam_train::evaluate::MAX_CLICKS).contains(&eval.clicks) {
            return Err(CliError::Usage(format!(
                "--clicks {}: must be 1 to {}",
                eval.clicks,
                sam_train::evaluate::MAX_CLICKS
            )));
        }
        let coco = match (coco, images) {
            (Some(c), Some(i)) => Some((c, i)),
            (None, None) => None,
            _ => return Err(CliError::Usage("--coco and --images go together".into())),
        };
        if data.is_some() == coco.is_some() {
            return Err(CliError::Usage(format!(
                "give either --data DIR or --coco FILE --images DIR\n{USAGE}"
            )));
        }
        if ap.is_some() && coco.is_none() {
            return Err(CliError::Usage(
                "--ap and --detections need --coco FILE --images DIR".into(),
            ));
        }
        if no_miou && ap.is_none() {
            return Err(CliError::Usage(
                "--no-miou leaves nothing to measure without --ap or --detections".into(),
            ));
        }
        Ok(Self {
            model,
            data,
            coco,
            eval,
            ap,
            no_miou,
            out,
        })
    }
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// mIoU with clicks and boxes (absent with `--no-miou`).
    pub miou: Option<EvalReport>,
    /// COCO mask AP (with `--ap` / `--detections`).
    pub coco_ap: Option<CocoEval>,
}

/// Runs the command and prints the report (JSON on stdout; the AP table on stderr).
pub fn run(args: EvaluateArgs) -> Result<Evaluation> {
    let device = backend::device(&args.model.device)?;
    let (sam, demo) = args.model.load_model(&device)?;
    if demo {
        eprintln!("note: no --checkpoint given: evaluating the bundled demo model");
    }
    // AP first: a bad detections file is then reported before the long mIoU run. A model
    // clone shares its weights.
    let coco_ap = match (&args.ap, &args.coco) {
        (Some(boxes), Some((file, images))) => {
            let config = ApConfig {
                boxes: boxes.clone(),
                max_images: args.eval.max_images,
                ..ApConfig::default()
            };
            let result = coco_mask_ap(sam.clone(), file, images, &config)?;
            eprintln!("{}", result.summary);
            Some(result)
        }
        _ => None,
    };
    let miou = if args.no_miou {
        None
    } else {
        let dataset: Arc<dyn Dataset<AnnotatedImage, DataError>> = match (&args.data, &args.coco) {
            (Some(dir), _) => Arc::new(Sa1bDataset::open(dir)?),
            (None, Some((file, images))) => Arc::new(CocoDataset::open(file, images)?),
            (None, None) => return Err(CliError::Usage(USAGE.into())),
        };
        Some(evaluate(&sam, dataset, &args.eval)?)
    };
    let mut json = serde_json::to_value(&miou).unwrap_or_default();
    if let Some(ap) = &coco_ap {
        let names = [
            "AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl",
        ];
        let stats: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .zip(ap.summary.stats)
            .map(|(n, v)| (n.to_string(), v.into()))
            .collect();
        json = serde_json::json!({"miou": json, "coco_mask_ap": stats});
    }
    let text = serde_json::to_string_pretty(&json).unwrap_or_default();
    println!("{text}");
    if let Some(out) = &args.out {
        write_file(out, &text)?;
    }
    Ok(Evaluation { miou, coco_ap })
}

/// `evaluate` with command-line arguments; prints errors and returns the exit code.
pub fn main(args: impl IntoIterator<Item = String>) -> std::process::ExitCode {
    crate::allocator::keep_freed_memory();
    crate::cli::exit_code(EvaluateArgs::parse(args).and_then(run))
}
