//! `openbits`: the command line of openbits, in the spirit of `bitsadmin` and PowerShell's
//! `Start-BitsTransfer`. It drives the core's Rust API (`openbits_core`), never the C ABI.
//!
//! - `cli.rs`: the clap definitions (verbs, flags, the help text with the exit statuses);
//! - `queue.rs`: which state folder, opening it to change it (exit 3 when another process holds
//!   it), reading it without the lock, and who holds it;
//! - `resolve.rs`: JOB as a GUID, a GUID prefix or a display name;
//! - `fail.rs`: the error type every verb returns, and its exit status;
//! - `format.rs`, `progress.rs`: sizes, rates, tables, JSON documents, and the live progress;
//! - `interrupt.rs`: Ctrl-C (and SIGTERM) as a flag the waiting loops poll;
//! - `commands/`: one file per family of verbs.

mod cli;
mod commands;
mod fail;
mod format;
mod interrupt;
mod progress;
mod queue;
mod resolve;

use clap::Parser;
use fail::Fail;

fn main() {
    let args = cli::Cli::parse();
    let status = match commands::run(args) {
        Ok(status) => status,
        Err(fail) => {
            report(&fail);
            fail.exit_status()
        }
    };
    std::process::exit(status);
}

/// Errors go to stderr even with `--quiet` (it silences everything but them). On a terminal the
/// first line is red, as PowerShell shows a failed transfer.
fn report(fail: &Fail) {
    use std::io::IsTerminal;
    let text = fail.to_string();
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("");
    if std::io::stderr().is_terminal() {
        eprintln!("\x1b[31mopenbits: {first}\x1b[0m");
    } else {
        eprintln!("openbits: {first}");
    }
    for line in lines {
        eprintln!("  {line}");
    }
}
