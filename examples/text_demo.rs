//! Text prompts end to end on a CPU: `cargo run --release --example text_demo -- --help`.

fn main() -> std::process::ExitCode {
    sam_burn::text_demo::main(std::env::args().skip(1))
}
