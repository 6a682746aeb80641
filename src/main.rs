use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = alexnet::cli::Cli::parse();
    match alexnet::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            match err.downcast_ref::<alexnet::training::Interrupted>() {
                Some(_) => ExitCode::from(130),
                None => ExitCode::FAILURE,
            }
        }
    }
}
