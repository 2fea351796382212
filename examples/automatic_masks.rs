//! Segment everything in an image: `cargo run --release --example automatic_masks -- --help`.

fn main() -> std::process::ExitCode {
    sam_burn::automatic_masks::main(std::env::args().skip(1))
}
