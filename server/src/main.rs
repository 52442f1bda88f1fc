use clap::Parser;
use std::io::Write;

fn main() {
    let cfg = match openbits_server::config::Options::parse().resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("openbits-server: {e}");
            std::process::exit(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("openbits-server: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = rt.block_on(openbits_server::run(
        cfg,
        |addr, tls| {
            // The first line on stdout; scripts and tests wait for it.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "listening on {}://{addr}",
                if tls { "https" } else { "http" }
            );
            let _ = out.flush();
        },
        shutdown_signal(),
    ));
    if let Err(e) = result {
        eprintln!("openbits-server: {e}");
        std::process::exit(1);
    }
}

/// SIGTERM or SIGINT. If a handler cannot be installed the server runs until killed.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        eprintln!("openbits-server: cannot install signal handlers; stop it with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
