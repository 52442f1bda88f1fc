//! `completions bash|zsh|fish` and the hidden `man`: generated from the clap definitions, so
//! they never drift from the tool.

use crate::cli::Cli;
use crate::fail::Fail;
use clap::CommandFactory;

pub fn print(shell: clap_complete::Shell) -> Result<i32, Fail> {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "openbits", &mut std::io::stdout());
    Ok(0)
}

pub fn man() -> Result<i32, Fail> {
    let page = clap_mangen::Man::new(Cli::command());
    let mut out = Vec::new();
    page.render(&mut out)
        .map_err(|e| Fail::Other(format!("cannot render the manual page: {e}")))?;
    use std::io::Write;
    std::io::stdout()
        .write_all(&out)
        .map_err(|e| Fail::Other(format!("cannot write the manual page: {e}")))?;
    Ok(0)
}
