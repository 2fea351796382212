//! Timed jobs on one backend, one JSON line each: `cargo run --release --example bench -- --help`.
//! `tools/reference/compare.py` runs it beside the official PyTorch model.

fn main() -> std::process::ExitCode {
    sam_burn::bench::main(std::env::args().skip(1))
}
