//! The verbs, one file per family:
//! - `transfer.rs`: `transfer` (Start-BitsTransfer), and the wait-with-progress loop it shares
//!   with `resume --wait`;
//! - `job.rs`: the verbs that change one job (`create`, `addfile`, `resume`, `suspend`,
//!   `cancel`, `complete`, `set`, `getreplydata`);
//! - `show.rs`: the verbs that only read (`list`, `info`, `monitor`), which work while another
//!   process holds the queue;
//! - `run.rs`: `run [--until-idle]`;
//! - `completions.rs`: shell completion scripts.

mod completions;
mod job;
mod run;
mod show;
mod transfer;

use crate::cli::{Cli, Command, Credentials, Global};
use crate::fail::Fail;
use crate::queue;
use crate::resolve;
use openbits_core::{Job, Manager};
use std::path::PathBuf;

/// What every verb is given: the global flags and the chosen state folder.
pub struct Context {
    pub global: Global,
    pub dir: PathBuf,
}

impl Context {
    /// Prints a line for the user on stdout, unless `--quiet`.
    pub fn say(&self, text: impl AsRef<str>) {
        if !self.global.quiet {
            println!("{}", text.as_ref());
        }
    }

    /// A remark about what happened (stderr, so stdout stays the result), unless `--quiet`.
    pub fn note(&self, text: impl AsRef<str>) {
        if !self.global.quiet {
            eprintln!("{}", text.as_ref());
        }
    }

    /// `openbits` with the queue this command used, for the commands we suggest.
    pub fn openbits(&self) -> String {
        // A folder that came from $OPENBITS_HOME comes from there again.
        let from_env = std::env::var_os("OPENBITS_HOME").map(std::path::PathBuf::from);
        match &self.global.state_dir {
            Some(d) if Some(d) != from_env.as_ref() => format!(
                "openbits --state-dir {}",
                transfer::shell_quote(&self.dir.to_string_lossy())
            ),
            _ => "openbits".into(),
        }
    }

    /// Prints a JSON document on stdout (with `--json`, whatever `--quiet` says: it was asked for).
    pub fn json(&self, value: &serde_json::Value) {
        println!("{value}");
    }
}

/// Runs the verb; returns the exit status.
pub fn run(cli: Cli) -> Result<i32, Fail> {
    // These describe the tool, not a queue: no state folder needed.
    match cli.command {
        Command::Completions { shell } => return completions::print(shell),
        Command::Man { dir } => return completions::man(dir.as_deref()),
        _ => {}
    }
    let dir = queue::state_dir(cli.global.state_dir.as_deref())?;
    let cx = Context {
        global: cli.global,
        dir,
    };
    match cli.command {
        Command::Transfer(args) => transfer::transfer(&cx, args),
        Command::Create { kind, name } => job::create(&cx, kind, &name),
        Command::AddFile { job, url, path } => job::add_file(&cx, &job, &url, &path),
        Command::Resume {
            job,
            wait,
            credentials,
        } => job::resume(&cx, &job, wait, &credentials),
        Command::Suspend { job } => job::suspend(&cx, &job),
        Command::Cancel { job } => job::cancel(&cx, &job),
        Command::Complete { job } => job::complete(&cx, &job),
        Command::Set {
            job,
            property,
            value,
            bypass,
        } => job::set(&cx, &job, property, &value, bypass.as_deref()),
        Command::GetReplyData { job, output } => job::get_reply_data(&cx, &job, output.as_deref()),
        Command::List { all_users } => show::list(&cx, all_users),
        Command::Info { job } => show::info(&cx, &job),
        Command::Monitor {
            all_users,
            interval,
        } => show::monitor(&cx, all_users, interval),
        Command::Run { until_idle } => run::run(&cx, until_idle),
        Command::Completions { .. } | Command::Man { .. } => unreachable!("handled above"),
    }
}

/// The job JOB names among the queue's jobs this user may change.
pub fn find(manager: &Manager, query: &str) -> Result<Job, Fail> {
    let jobs = manager.jobs().map_err(Fail::call("cannot list the jobs"))?;
    let records: Vec<_> = jobs.iter().filter_map(|j| j.record().ok()).collect();
    let id = resolve::resolve(query, &records)?.id;
    manager
        .get_job(&id)
        .map_err(Fail::call(format!("cannot open job {query}")))
}

/// HTTP Basic credentials for the server: the user and the password read from the named
/// variable (a password on the command line would be visible to every user in `ps`).
pub struct Basic {
    user: String,
    password: String,
}

/// Reads and checks `--user U --password-env VAR` before anything is changed, so that a missing
/// variable or a user name Basic cannot carry leaves no job half set up.
pub fn read_credentials(credentials: &Credentials) -> Result<Option<Basic>, Fail> {
    let (Some(user), Some(var)) = (&credentials.user, &credentials.password_env) else {
        return Ok(None);
    };
    let password = std::env::var(var).map_err(|_| {
        Fail::Usage(format!(
            "--password-env {var}: the variable {var} is not set (or not UTF-8)"
        ))
    })?;
    openbits_core::http_options::basic(user, &password)
        .map_err(|refusal| Fail::call("--user")(openbits_core::Error::from(refusal)))?;
    Ok(Some(Basic {
        user: user.clone(),
        password,
    }))
}

pub fn apply_credentials(job: &Job, credentials: Option<&Basic>) -> Result<(), Fail> {
    let Some(c) = credentials else {
        return Ok(());
    };
    use openbits_core::http_options::{AUTH_SCHEME_BASIC, AUTH_TARGET_SERVER};
    job.set_credentials(AUTH_TARGET_SERVER, AUTH_SCHEME_BASIC, &c.user, &c.password)
        .map_err(Fail::call("cannot set the credentials"))
}
