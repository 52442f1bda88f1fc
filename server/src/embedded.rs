//! A server run on a thread of its own inside another program (tests of BITS clients, tools):
//! started from command-line arguments, stopped and joined on drop.

use crate::config::Options;
use clap::Parser;
use std::net::SocketAddr;
use std::time::Duration;

pub struct Embedded {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl Embedded {
    /// Starts a server as `openbits-server ARGS` would (ARGS without the program name), and
    /// returns once it accepts connections.
    pub fn start(args: &[&str]) -> Result<Embedded, String> {
        let cfg =
            Options::try_parse_from(std::iter::once("openbits-server").chain(args.iter().copied()))
                .map_err(|e| e.to_string())?
                .resolve()?;
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("openbits-server".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                rt.block_on(crate::run(
                    cfg,
                    move |addr, _tls| {
                        let _ = addr_tx.send(addr);
                    },
                    async move {
                        let _ = stopped.await;
                    },
                ))
            })
            .map_err(|e| e.to_string())?;
        match addr_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => Ok(Embedded {
                addr,
                stop: Some(stop),
                thread: Some(thread),
            }),
            // It stopped before listening: its own error says why.
            Err(_) => Err(match thread.join() {
                Ok(Err(e)) => e,
                _ => "the server did not start".into(),
            }),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
