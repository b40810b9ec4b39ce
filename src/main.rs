//! The `cairn` command: parse arguments, run one command, map its outcome to an exit code.

mod cli;

fn main() -> std::process::ExitCode {
    // Test builds only (`--features failpoints`): the failpoints named in $FAILPOINTS.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    cli::main()
}
