use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = alexnet::cli::Cli::parse();
    match alexnet::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            match err.downcast_ref::<alexnet::training::TrainingStopped>() {
                Some(stop) if stop.by_user() => ExitCode::from(130),
                _ => ExitCode::FAILURE,
            }
        }
    }
}
