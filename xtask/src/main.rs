//! `cargo xtask header`: regenerate include/openbits.h. `cargo xtask check-header`: fail if it is stale.

fn main() {
    let task = std::env::args().nth(1).unwrap_or_default();
    let result = match task.as_str() {
        "header" => xtask::header()
            .and_then(|h| std::fs::write(xtask::header_path(), h).map_err(|e| e.to_string())),
        "check-header" => xtask::header().and_then(|h| {
            let committed = std::fs::read_to_string(xtask::header_path()).unwrap_or_default();
            if committed == h {
                Ok(())
            } else {
                Err("include/openbits.h is stale: run `cargo xtask header`".into())
            }
        }),
        _ => Err("usage: cargo xtask <header|check-header>".into()),
    };
    if let Err(e) = result {
        eprintln!("xtask {task}: {e}");
        std::process::exit(1);
    }
}
