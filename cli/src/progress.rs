//! Live progress of one job, in the form the output allows:
//! - on a terminal, bars (indicatif, on stderr): one per file and one for the job, with bytes,
//!   rate and time left, a spinner while connecting;
//! - elsewhere (pipes, CI logs), plain lines on stderr: one when the job passes another tenth or
//!   changes state, at most once a second, never a control character;
//! - with `--quiet` or `--json`, nothing while it runs.

use crate::format;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use openbits_core::job::{JobRecord, SIZE_UNKNOWN};
use openbits_core::JobState;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

pub enum Display {
    Bars(Bars),
    Lines(Lines),
    Silent,
}

impl Display {
    /// The display the output calls for: bars if stderr is a terminal, lines if not, nothing
    /// with `--quiet` or `--json`.
    pub fn new(quiet: bool, json: bool) -> Display {
        if quiet || json {
            Display::Silent
        } else if std::io::stderr().is_terminal() {
            Display::Bars(Bars::new())
        } else {
            Display::Lines(Lines::new())
        }
    }

    pub fn update(&mut self, job: &JobRecord) {
        match self {
            Display::Bars(b) => b.update(job),
            Display::Lines(l) => l.update(job),
            Display::Silent => {}
        }
    }

    /// Stops drawing, leaving the last state on screen; what follows prints below it.
    pub fn finish(&mut self) {
        if let Display::Bars(b) = self {
            b.finish();
        }
    }

    /// Average rate since the display started, for the closing line.
    pub fn started(&self) -> Instant {
        match self {
            Display::Bars(b) => b.started,
            Display::Lines(l) => l.started,
            Display::Silent => Instant::now(),
        }
    }
}

fn file_name(path: &str) -> String {
    let name = std::path::Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_string());
    // Keeps the bars aligned; a long name keeps its end, which is the part that differs.
    let chars: Vec<char> = name.chars().collect();
    if chars.len() > 24 {
        format!("…{}", chars[chars.len() - 23..].iter().collect::<String>())
    } else {
        name
    }
}

pub struct Bars {
    multi: MultiProgress,
    files: Vec<ProgressBar>,
    job: ProgressBar,
    sized: bool,
    started: Instant,
}

// `done`, `total`, `rate` and `left` are ours (see `style`): the same units as every other line
// the tool prints (`12.3 MiB/s`), where indicatif's own keys would say `12.30 MiB`.
const BAR: &str =
    "{prefix:>24} [{bar:30.cyan/blue}] {done:>10}/{total:<10} {rate:>12} {left:>9} {msg}";
const SPIN: &str = "{prefix:>24} {spinner:.green} {done:>10} {rate:>12} {msg}";

impl Bars {
    fn new() -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let job = multi.add(
            ProgressBar::new(0)
                .with_style(Self::style(SPIN))
                .with_prefix("job")
                .with_message("connecting"),
        );
        job.enable_steady_tick(Duration::from_millis(100));
        Bars {
            multi,
            files: Vec::new(),
            job,
            sized: false,
            started: Instant::now(),
        }
    }

    fn style(template: &str) -> ProgressStyle {
        use indicatif::ProgressState;
        use std::fmt::Write;
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ")
            .with_key("done", |s: &ProgressState, w: &mut dyn Write| {
                let _ = w.write_str(&format::size(s.pos()));
            })
            .with_key("total", |s: &ProgressState, w: &mut dyn Write| {
                let _ = w.write_str(&s.len().map_or("?".into(), format::size));
            })
            .with_key("rate", |s: &ProgressState, w: &mut dyn Write| {
                let _ = w.write_str(&format::rate(s.per_sec()));
            })
            .with_key("left", |s: &ProgressState, w: &mut dyn Write| {
                if s.len().is_some_and(|l| l > s.pos()) {
                    let _ = write!(w, "{} left", format::duration(s.eta().as_secs()));
                }
            })
    }

    fn update(&mut self, job: &JobRecord) {
        // A file's bar appears when its transfer starts, above the job's bar.
        for (i, f) in job.files.iter().enumerate() {
            if i >= self.files.len() {
                if f.bytes_transferred == 0 && !f.completed && !is_current(job, i) {
                    break;
                }
                // Styled before it is added, so its first frame is already ours.
                let bar = ProgressBar::new(0)
                    .with_style(Self::style(SPIN))
                    .with_prefix(file_name(&f.local_path));
                self.files.push(self.multi.insert_before(&self.job, bar));
            }
            let bar = &self.files[i];
            if let Some(total) = f.bytes_total {
                if bar.length() != Some(total) {
                    bar.set_style(Self::style(BAR));
                    bar.set_length(total);
                }
            }
            bar.set_position(f.bytes_transferred);
            if f.completed && !bar.is_finished() {
                bar.finish();
            }
        }
        let p = job.progress();
        if p.bytes_total != SIZE_UNKNOWN && !self.sized && p.bytes_transferred > 0 {
            self.job.set_style(Self::style(BAR));
            self.sized = true;
        }
        if self.sized {
            self.job.set_length(p.bytes_total);
        }
        self.job.set_position(p.bytes_transferred);
        self.job.set_message(match job.state {
            JobState::Transferring => String::new(),
            JobState::Queued | JobState::Connecting => "connecting".to_string(),
            JobState::TransientError => match &job.error {
                Some(e) => format!("retrying: {}", e.description),
                None => "retrying".into(),
            },
            s => s.name().to_lowercase(),
        });
    }

    fn finish(&mut self) {
        if self.job.is_finished() {
            return;
        }
        for bar in &self.files {
            bar.abandon();
        }
        self.job.abandon();
        // The last frame leaves the cursor at the end of the job's bar: what follows starts below.
        eprintln!();
    }
}

/// Whether file `i` is the one the job is on (the first not completed).
fn is_current(job: &JobRecord, i: usize) -> bool {
    job.state.is_active() && job.files.iter().position(|f| !f.completed) == Some(i)
}

pub struct Lines {
    started: Instant,
    last_line: Option<Instant>,
    last_state: Option<JobState>,
    last_tenth: u64,
    last_bytes: u64,
    first_bytes: Option<u64>,
}

impl Lines {
    fn new() -> Lines {
        Lines {
            started: Instant::now(),
            last_line: None,
            last_state: None,
            last_tenth: 0,
            last_bytes: 0,
            first_bytes: None,
        }
    }

    fn update(&mut self, job: &JobRecord) {
        let p = job.progress();
        let now = Instant::now();
        let first = *self.first_bytes.get_or_insert(p.bytes_transferred);
        let known = p.bytes_total != SIZE_UNKNOWN && p.bytes_total > 0;
        let tenth = if known {
            p.bytes_transferred.saturating_mul(10) / p.bytes_total
        } else {
            0
        };
        let changed_state = self.last_state != Some(job.state);
        let since = self.last_line.map(|t| now - t);
        let due = match since {
            None => true,
            Some(s) if s < Duration::from_secs(1) => false,
            // With no size to take tenths of, a line every 10 s while bytes arrive.
            Some(s) => {
                changed_state
                    || tenth > self.last_tenth
                    || (!known
                        && p.bytes_transferred != self.last_bytes
                        && s >= Duration::from_secs(10))
            }
        };
        if !due {
            return;
        }
        let elapsed = (now - self.started).as_secs_f64().max(0.001);
        let rate = (p.bytes_transferred.saturating_sub(first)) as f64 / elapsed;
        let mut line = format!(
            "{}: {} {}",
            job.display_name,
            job.state.name(),
            format::progress(p.bytes_transferred, p.bytes_total)
        );
        if known {
            line.push_str(&format!(
                " ({}%)",
                p.bytes_transferred * 100 / p.bytes_total
            ));
        }
        if job.state == JobState::Transferring && rate > 0.0 {
            line.push_str(&format!(", {}", format::rate(rate)));
            if known {
                let left = (p.bytes_total - p.bytes_transferred.min(p.bytes_total)) as f64 / rate;
                line.push_str(&format!(", {} left", format::duration(left.ceil() as u64)));
            }
        }
        if job.state == JobState::TransientError {
            if let Some(e) = &job.error {
                line.push_str(&format!(": {}", e.description));
            }
            if let Some(at) = job.retry_at_ms {
                let wait = at.saturating_sub(openbits_core::job::now_ms()) / 1000;
                line.push_str(&format!("; retrying in {}", format::duration(wait)));
            }
        }
        eprintln!("{}", strip_controls(&line));
        self.last_line = Some(now);
        self.last_state = Some(job.state);
        self.last_tenth = tenth;
        self.last_bytes = p.bytes_transferred;
    }
}

/// Names and URLs come from users and servers: a control character in them must not reach a log.
fn strip_controls(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}
