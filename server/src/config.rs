//! Command line and TOML configuration (the same keys), merged into one [`Config`].

use clap::{Parser, ValueEnum};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// IIS's BITSSessionTimeout default: 14 days.
pub const DEFAULT_SESSION_TIMEOUT: u64 = 1_209_600;
/// The server application must answer within 5 minutes ([MC-BUP] §3.3.2).
pub const DEFAULT_NOTIFY_TIMEOUT: u64 = 300;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum NotifyType {
    #[default]
    None,
    ByRef,
    ByValue,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Every option is optional here so that a config file can supply it; defaults are applied in
/// [`Options::resolve`].
#[derive(Parser, Debug, Default, Deserialize)]
#[command(
    name = "openbits-server",
    version,
    about = "A BITS upload server (BITS Upload Protocol, MC-BUP)"
)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Options {
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free port)
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Folder that uploads land in (same as --storage file:///DIR)
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Where sessions and files live: file:///DIR, s3://bucket/prefix, gs://bucket/prefix, az://container/prefix
    #[arg(long)]
    pub storage: Option<String>,
    /// Largest upload accepted, in bytes (default unlimited)
    #[arg(long)]
    pub max_upload_size: Option<u64>,
    /// Seconds without progress after which a session and its data are removed
    #[arg(long)]
    pub session_timeout: Option<u64>,
    /// Let a Create-Session replace an existing file (default: 409)
    #[arg(long)]
    #[serde(default)]
    pub allow_overwrites: bool,
    /// Open sessions allowed per client (user name, or address without authentication)
    #[arg(long)]
    pub max_sessions_per_client: Option<u64>,
    /// Open sessions allowed in total
    #[arg(long)]
    pub max_sessions: Option<u64>,
    /// Upload-reply notification: none, by-ref or by-value
    #[arg(long, value_enum)]
    pub notify_type: Option<NotifyType>,
    /// The server application's URL (absolute, or relative to the upload URL)
    #[arg(long)]
    pub notify_url: Option<String>,
    /// Seconds the server application has to answer (default 300)
    #[arg(long)]
    pub notify_timeout: Option<u64>,
    /// Sent as BITS-Host-Id: clients send later packets of the session to this host
    #[arg(long)]
    pub host_id: Option<String>,
    /// Sent as BITS-Host-Id-Fallback-Timeout (seconds)
    #[arg(long)]
    pub host_id_fallback_timeout: Option<u64>,
    /// Basic authentication against bcrypt entries (htpasswd -B)
    #[arg(long)]
    pub htpasswd: Option<PathBuf>,
    /// PEM certificate chain for HTTPS
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// Also serve GET/HEAD of stored files (ranges, ETag, Last-Modified)
    #[arg(long)]
    #[serde(default)]
    pub serve_downloads: bool,
    /// TOML file with the same keys as these options; the command line wins
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Log format: text or json (one line per request on stderr)
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Connections served at once; more wait in the kernel's backlog
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Seconds a request may stay silent (headers or body) before the connection is dropped
    #[arg(long)]
    pub read_timeout: Option<u64>,
}

#[derive(Clone, Debug)]
pub enum Storage {
    Dir(PathBuf),
    Url(url::Url),
}

#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub storage: Storage,
    pub max_upload_size: Option<u64>,
    pub session_timeout: Duration,
    pub allow_overwrites: bool,
    pub max_sessions_per_client: Option<u64>,
    pub max_sessions: u64,
    pub notify_type: NotifyType,
    pub notify_url: Option<String>,
    pub notify_timeout: Duration,
    pub host_id: Option<String>,
    pub host_id_fallback_timeout: Option<u64>,
    pub htpasswd: Option<PathBuf>,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub serve_downloads: bool,
    pub log_format: LogFormat,
    pub max_connections: usize,
    pub read_timeout: Duration,
}

impl Options {
    /// Reads `--config` (if any) under the command line and checks the combination.
    pub fn resolve(self) -> Result<Config, String> {
        let file = match &self.config {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
                toml::from_str::<Options>(&text).map_err(|e| format!("{}: {e}", p.display()))?
            }
            None => Options::default(),
        };
        let o = self;
        let storage = match (o.root.or(file.root), o.storage.or(file.storage)) {
            (Some(_), Some(_)) => return Err("give --root or --storage, not both".into()),
            (Some(dir), None) => Storage::Dir(dir),
            (None, Some(s)) => {
                let u = url::Url::parse(&s).map_err(|e| format!("--storage {s}: {e}"))?;
                if u.scheme() == "file" {
                    Storage::Dir(
                        u.to_file_path()
                            .map_err(|_| format!("--storage {s}: not a local path"))?,
                    )
                } else if matches!(
                    u.scheme(),
                    "s3" | "s3a" | "gs" | "az" | "azure" | "abfs" | "abfss" | "memory"
                ) {
                    Storage::Url(u)
                } else {
                    return Err(format!(
                        "--storage {s}: unsupported scheme (file, s3, gs, az)"
                    ));
                }
            }
            (None, None) => return Err("--root DIR or --storage URL is required".into()),
        };
        let notify_type = o.notify_type.or(file.notify_type).unwrap_or_default();
        let notify_url = o.notify_url.or(file.notify_url);
        if notify_type != NotifyType::None && notify_url.is_none() {
            return Err("--notify-type by-ref/by-value needs --notify-url".into());
        }
        if notify_type == NotifyType::ByRef && matches!(storage, Storage::Url(_)) {
            return Err("--notify-type by-ref passes file names to the application, so it needs a folder (--root)".into());
        }
        let tls = match (o.tls_cert.or(file.tls_cert), o.tls_key.or(file.tls_key)) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => return Err("--tls-cert and --tls-key go together".into()),
        };
        let host_id = o.host_id.or(file.host_id);
        if host_id
            .as_ref()
            .is_some_and(|h| h.is_empty() || h.len() > 300)
        {
            return Err("--host-id must be 1 to 300 characters".into());
        }
        Ok(Config {
            listen: o
                .listen
                .or(file.listen)
                .ok_or("--listen ADDR:PORT is required")?,
            storage,
            max_upload_size: o.max_upload_size.or(file.max_upload_size),
            session_timeout: Duration::from_secs(
                o.session_timeout
                    .or(file.session_timeout)
                    .unwrap_or(DEFAULT_SESSION_TIMEOUT),
            ),
            allow_overwrites: o.allow_overwrites || file.allow_overwrites,
            max_sessions_per_client: o.max_sessions_per_client.or(file.max_sessions_per_client),
            max_sessions: o.max_sessions.or(file.max_sessions).unwrap_or(100_000),
            notify_type,
            notify_url,
            notify_timeout: Duration::from_secs(
                o.notify_timeout
                    .or(file.notify_timeout)
                    .unwrap_or(DEFAULT_NOTIFY_TIMEOUT),
            ),
            host_id,
            host_id_fallback_timeout: o.host_id_fallback_timeout.or(file.host_id_fallback_timeout),
            htpasswd: o.htpasswd.or(file.htpasswd),
            tls,
            serve_downloads: o.serve_downloads || file.serve_downloads,
            log_format: o.log_format.or(file.log_format).unwrap_or_default(),
            max_connections: o
                .max_connections
                .or(file.max_connections)
                .unwrap_or(1024)
                .max(1),
            read_timeout: Duration::from_secs(
                o.read_timeout.or(file.read_timeout).unwrap_or(30).max(1),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_example_is_a_valid_config() {
        let readme = include_str!("../../README.md");
        let section = &readme[readme.find("## openbits-server").expect("server section")..];
        let start = section.find("```toml\n").expect("a toml block") + "```toml\n".len();
        let block = &section[start..start + section[start..].find("```").expect("block end")];
        let o: Options = toml::from_str(block).unwrap_or_else(|e| panic!("README config: {e}"));
        let c = o.resolve().unwrap();
        assert_eq!(c.max_sessions_per_client, Some(50));
        assert!(c.serve_downloads && c.htpasswd.is_some() && c.host_id.is_some());
    }

    #[test]
    fn the_file_supplies_what_the_command_line_leaves_out() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "listen = \"127.0.0.1:0\"\nroot = \"/srv/x\"\nmax-upload-size = 10\nnotify-type = \"by-value\"\nnotify-url = \"http://app/\"\nallow-overwrites = true\n").unwrap();
        let o = Options::parse_from([
            "s",
            "--config",
            f.to_str().unwrap(),
            "--max-upload-size",
            "5",
        ]);
        let c = o.resolve().unwrap();
        assert_eq!(c.max_upload_size, Some(5));
        assert_eq!(c.notify_type, NotifyType::ByValue);
        assert!(c.allow_overwrites);
        assert!(matches!(c.storage, Storage::Dir(ref p) if p == std::path::Path::new("/srv/x")));
        std::fs::write(&f, "lissen = 1").unwrap();
        assert!(Options::parse_from(["s", "--config", f.to_str().unwrap()])
            .resolve()
            .unwrap_err()
            .contains("lissen"));
        let c = Options::parse_from(["s", "--listen", "127.0.0.1:1", "--storage", "file:///tmp/u"])
            .resolve()
            .unwrap();
        assert!(matches!(c.storage, Storage::Dir(ref p) if p == std::path::Path::new("/tmp/u")));
        assert_eq!(c.session_timeout, Duration::from_secs(1_209_600));
        assert!(Options::parse_from(["s", "--listen", "127.0.0.1:1"])
            .resolve()
            .is_err());
        assert!(Options::parse_from([
            "s",
            "--listen",
            "127.0.0.1:1",
            "--root",
            "/x",
            "--notify-type",
            "by-ref"
        ])
        .resolve()
        .is_err());
    }
}
