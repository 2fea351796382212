//! Promptable segmentation of an image: `cargo run --release --example segment -- --help`.

fn main() -> std::process::ExitCode {
    sam_burn::segment::main(std::env::args().skip(1))
}
