//! The `cairn` command: parse arguments, run one command, map its outcome to an exit code.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
