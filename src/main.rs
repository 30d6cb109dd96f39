//! The `pullstack` binary: parses the command line and hands over to the library.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = pullstack::cli::Cli::parse();
    pullstack::cli::run(cli)
}
