//! Evaluate SAM (mIoU with clicks and boxes): `cargo run --release --example evaluate -- --help`.

fn main() -> std::process::ExitCode {
    sam_burn::evaluate::main(std::env::args().skip(1))
}
