//! `completions bash|zsh|fish`: generated from the clap definitions, so they never drift.

use crate::cli::Cli;
use crate::fail::Fail;
use clap::CommandFactory;

pub fn print(shell: clap_complete::Shell) -> Result<i32, Fail> {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "openbits", &mut std::io::stdout());
    Ok(0)
}
