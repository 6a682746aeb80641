use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = alexnet::cli::Cli::parse();
    match alexnet::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
