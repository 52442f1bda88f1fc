//! The command line's grammar: every verb, flag and help text. Kept apart from the verbs so the
//! completions (and a man page) can be generated from it alone.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

pub const EXIT_STATUSES: &str = "\
Exit statuses:
  0    done (for `transfer`: every file is in place)
  1    the job failed, or the library refused the call (the BITS code, its name and the sentence are printed)
  2    usage: a malformed command line, or JOB names no job or several
  3    the queue is held by another process (its process id is printed); read-only verbs still work
  130  interrupted by Ctrl-C (`transfer` and `resume --wait` suspend the job first and print how to continue;
       `run` and `monitor` stop; SIGTERM stops `run` with 0, as a service stopped on purpose)";

const QUEUE_HELP: &str = "\
The queue (a state folder) is --state-dir, else $OPENBITS_HOME, else $XDG_DATA_HOME/openbits, else \
~/.local/share/openbits. Jobs transfer only while a process holds the queue: an application that \
embeds openbits, `openbits transfer`, `openbits resume --wait` or `openbits run`.";

#[derive(Parser, Debug)]
#[command(
    name = "openbits",
    version,
    about = "Resumable background transfers, BITS-style: bitsadmin and Start-BitsTransfer for openbits",
    long_about = None,
    before_long_help = QUEUE_HELP,
    after_help = EXIT_STATUSES,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// The queue's state folder (default: the library's per-user folder)
    #[arg(long, global = true, value_name = "DIR", env = "OPENBITS_HOME")]
    pub state_dir: Option<PathBuf>,
    /// Print nothing but errors
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Print one JSON document instead of text (one per line for `monitor`)
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Download (or upload) files in one job, with live progress; waits, completes, exits 0
    ///
    /// As Start-BitsTransfer: one job (FOREGROUND by default), progress while it runs, and the
    /// files in place when it returns. Ctrl-C suspends the job and prints the command that
    /// continues it; running the same transfer again (same files, same owner) continues that job
    /// instead of starting over. On failure: the BITS code, its name and the sentence, exit 1.
    #[command(after_help = EXIT_STATUSES)]
    Transfer(TransferArgs),
    /// Create a SUSPENDED job and print its GUID
    Create {
        #[command(flatten)]
        kind: Kind,
        /// The job's display name
        name: String,
    },
    /// Add a file to a job: URL (http, https, file) to an absolute local PATH
    #[command(name = "addfile", visible_alias = "add-file")]
    AddFile {
        job: String,
        url: String,
        path: PathBuf,
    },
    /// Queue a job (it transfers while a process holds the queue); --wait holds it until done
    #[command(after_help = EXIT_STATUSES)]
    Resume {
        job: String,
        /// Hold the queue and show progress until the job is TRANSFERRED (exit 0) or in ERROR (1)
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        credentials: Credentials,
    },
    /// Suspend a job; its bytes stay for a later resume
    Suspend { job: String },
    /// Cancel a job and delete its temporary files
    Cancel { job: String },
    /// Complete a job: put its transferred files in place
    Complete { job: String },
    /// Change a property of a job
    ///
    /// Values: priority foreground|high|normal|low; description TEXT; display-name TEXT;
    /// retry-delay SECONDS; no-progress-timeout SECONDS; max-download-time SECONDS (0: none);
    /// custom-headers 'K: V' (several separated by newlines or \n; '' clears);
    /// proxy preconfig|no-proxy|PROXY-LIST (with --bypass LIST); notify-cmdline 'PROGRAM ARGS…'
    /// ('' clears); notify-flags NUMBER; dynamic-content true|false and max-download-size BYTES
    /// (before the first resume). credentials: server|proxy:USER with the password in
    /// --password-env; they live in memory only, so they are refused here: give them to
    /// `transfer` or `resume --wait`. max-bandwidth: bytes per second (500k, 2MiB); transfer-policy:
    /// always, not-roaming, no-surcharge, standard, unrestricted, or a BITS_COST_STATE_* mask.
    Set {
        job: String,
        property: Property,
        value: String,
        /// For `proxy`: hosts that bypass the proxy
        #[arg(long, value_name = "LIST")]
        bypass: Option<String>,
    },
    /// Write an upload-reply job's reply to FILE (or stdout)
    #[command(name = "getreplydata", visible_alias = "get-reply-data")]
    GetReplyData {
        job: String,
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// List the queue's jobs (works while an application holds the queue)
    ///
    /// Reads the queue's database without its lock: while another process holds the queue, the
    /// state and progress shown are as fresh as that process's last checkpoint (about once a
    /// second); a job whose recorded bytes moved past 0 shows TRANSFERRING.
    #[command(visible_alias = "ls")]
    List {
        /// Every owner's jobs, not only yours
        #[arg(long)]
        all_users: bool,
    },
    /// Every property of a job, every file with its progress, and its error with the context
    ///
    /// Reads the queue's database without its lock: while another process holds the queue, the
    /// state and progress shown are as fresh as that process's last checkpoint (about once a
    /// second); a job whose recorded bytes moved past 0 shows TRANSFERRING.
    Info { job: String },
    /// A live table of the jobs, refreshed until Ctrl-C (as `bitsadmin /monitor`)
    ///
    /// Reads the queue's database without its lock: while another process holds the queue, the
    /// state and progress shown are as fresh as that process's last checkpoint (about once a
    /// second); a job whose recorded bytes moved past 0 shows TRANSFERRING.
    /// With --json, one document per refresh, one a line. Ctrl-C (or SIGTERM) ends it with
    /// status 130.
    Monitor {
        /// Every owner's jobs, not only yours
        #[arg(long)]
        all_users: bool,
        /// Seconds between refreshes
        #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
        interval: f64,
    },
    /// Hold the queue and transfer its jobs in the foreground (for cron and systemd timers)
    ///
    /// Without --until-idle it runs until Ctrl-C (status 130) or SIGTERM (status 0: how systemd
    /// stops a service on purpose). With --until-idle it returns 0 once no job is QUEUED,
    /// CONNECTING or TRANSFERRING (every job is transferred, suspended, final or in error);
    /// Ctrl-C before that is 130. Either way the queue is closed in order: transfers stop and
    /// continue from their checkpoints at the next run.
    #[command(after_help = EXIT_STATUSES)]
    Run {
        #[arg(long)]
        until_idle: bool,
    },
    /// Print a shell completion script
    Completions { shell: clap_complete::Shell },
    /// Print the manual page (roff), generated from these definitions (for scripts/install.sh)
    #[command(hide = true)]
    Man {
        /// Write openbits.1 and one page per verb (openbits-transfer.1, …) into DIR instead
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Args, Debug, Clone)]
pub struct TransferArgs {
    #[command(flatten)]
    pub kind: Kind,
    #[arg(long, value_enum, default_value_t = PriorityArg::Foreground)]
    pub priority: PriorityArg,
    /// The job's display name (default "BITS Transfer", as Start-BitsTransfer)
    #[arg(long, value_name = "N")]
    pub name: Option<String>,
    /// A request header, 'Name: value' (repeatable)
    #[arg(long = "header", value_name = "K: V")]
    pub headers: Vec<String>,
    #[command(flatten)]
    pub credentials: Credentials,
    /// The job's bandwidth limit, e.g. 500k or 2MiB (bounds it even in the foreground)
    #[arg(long, value_name = "RATE")]
    pub max_bandwidth: Option<String>,
    /// SOURCE DEST pairs: a URL and a local path (a folder takes the URL's file name)
    #[arg(value_name = "SOURCE DEST", num_args = 2.., required = true)]
    pub pairs: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct Credentials {
    /// User name for the server (HTTP Basic)
    #[arg(long, value_name = "U", requires = "password_env")]
    pub user: Option<String>,
    /// The environment variable that holds the password (never on the command line)
    #[arg(long, value_name = "VAR", requires = "user")]
    pub password_env: Option<String>,
}

#[derive(Args, Debug, Clone, Copy)]
#[group(multiple = false)]
pub struct Kind {
    /// An upload job (one file: SOURCE is the local file, DEST the URL)
    #[arg(long)]
    pub upload: bool,
    /// An upload job whose server sends a reply back
    #[arg(long)]
    pub upload_reply: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PriorityArg {
    Foreground,
    High,
    Normal,
    Low,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Property {
    Priority,
    Description,
    DisplayName,
    RetryDelay,
    NoProgressTimeout,
    MaxDownloadTime,
    MaxDownloadSize,
    DynamicContent,
    CustomHeaders,
    Credentials,
    Proxy,
    NotifyCmdline,
    NotifyFlags,
    MaxBandwidth,
    TransferPolicy,
}
