//! `completions bash|zsh|fish` and the hidden `man`: generated from the clap definitions, so
//! they never drift from the tool.

use crate::cli::Cli;
use crate::fail::Fail;
use clap::CommandFactory;
use std::path::Path;

pub fn print(shell: clap_complete::Shell) -> Result<i32, Fail> {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "openbits", &mut std::io::stdout());
    Ok(0)
}

/// The top-level page on stdout; with `dir`, that page and one per verb, as `man openbits-transfer`
/// finds them (git's convention for a tool with verbs).
pub fn man(dir: Option<&Path>) -> Result<i32, Fail> {
    let Some(dir) = dir else {
        let out = render(Cli::command())?;
        use std::io::Write;
        std::io::stdout()
            .write_all(&out)
            .map_err(|e| Fail::Other(format!("cannot write the manual page: {e}")))?;
        return Ok(0);
    };
    for (name, page) in pages()? {
        let path = dir.join(format!("{name}.1"));
        std::fs::write(&path, page)
            .map_err(|e| Fail::Other(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(0)
}

/// Every page: `openbits` and `openbits-VERB` for each verb a user sees.
fn pages() -> Result<Vec<(String, Vec<u8>)>, Fail> {
    let mut top = Cli::command();
    // Built, so each verb carries the global flags (--state-dir, --quiet, --json) it accepts.
    top.build();
    let mut pages = vec![("openbits".to_string(), render(top.clone())?)];
    // clap's generated `help` verb is help about the others, not a verb of its own.
    for verb in top
        .get_subcommands()
        .filter(|v| !v.is_hide_set() && v.get_name() != "help")
    {
        let name = format!("openbits-{}", verb.get_name());
        let page = verb.clone().name(name.clone()).display_name(name.clone());
        pages.push((name, render(page)?));
    }
    Ok(pages)
}

fn render(command: clap::Command) -> Result<Vec<u8>, Fail> {
    let mut out = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut out)
        .map_err(|e| Fail::Other(format!("cannot render the manual page: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_page_per_verb() {
        let pages = super::pages().expect("pages render");
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        for name in [
            "openbits",
            "openbits-transfer",
            "openbits-info",
            "openbits-run",
        ] {
            assert!(names.contains(&name), "{name} in {names:?}");
        }
        assert!(
            !names.contains(&"openbits-man"),
            "the hidden verb has no page"
        );
        assert!(!names.contains(&"openbits-help"), "{names:?}");
        let (_, transfer) = pages
            .iter()
            .find(|(n, _)| n == "openbits-transfer")
            .expect("transfer's page");
        let text = String::from_utf8_lossy(transfer);
        assert!(text.contains(".TH openbits-transfer 1"), "{text}");
        assert!(text.contains("password"), "its own flags: {text}");
    }
}
