//! Train SAM: `cargo run --release --example train -- --help`.

fn main() -> std::process::ExitCode {
    sam_burn::train::main(std::env::args().skip(1))
}
