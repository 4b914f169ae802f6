//! The `keel` binary; everything lives in the library (`keel_tools`).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    keel_tools::main()
}
