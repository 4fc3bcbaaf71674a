use std::process::ExitCode;

fn main() -> ExitCode {
    podlab::cli::main()
}
