//! CLIP text and image features from a Hugging Face CLIPModel folder:
//! `cargo run --release --example clip -- --help`.

fn main() -> std::process::ExitCode {
    sam_burn::clip::main(std::env::args().skip(1))
}
