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
    if chars.len() > NAME_CHARS {
        format!(
            "…{}",
            chars[chars.len() - (NAME_CHARS - 1)..]
                .iter()
                .collect::<String>()
        )
    } else {
        name
    }
}

/// `42s`, `3m20s`, `2h05m`, at most `99h59m` (longer waits say `>99h`): a bar's time left in at
/// most 6 columns.
fn compact_duration(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 100 * 3600 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => ">99h".into(),
    }
}

/// A message cut to `MESSAGE_CHARS`, so that it never pushes a line past the terminal's width.
fn short(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() > MESSAGE_CHARS {
        let mut cut: String = chars[..MESSAGE_CHARS - 1].iter().collect();
        cut.push('…');
        cut
    } else {
        text.to_string()
    }
}

/// The job bar's total: the sizes known so far, and what the files of unknown size have
/// brought. None until some file's size is known. It grows as the files' sizes arrive (each file
/// of a job is sized when its own transfer starts).
fn known_total(job: &JobRecord) -> Option<u64> {
    let mut any = false;
    let mut total = 0u64;
    for f in &job.files {
        match f.bytes_total {
            Some(t) => {
                any = true;
                total = total.saturating_add(t.get());
            }
            None => total = total.saturating_add(f.bytes_transferred),
        }
    }
    any.then_some(total)
}

pub struct Bars {
    multi: MultiProgress,
    files: Vec<ProgressBar>,
    job: ProgressBar,
    sized: bool,
    started: Instant,
}

// `done`, `total`, `rate` and `left` are ours (see `style`): the same units as every other line
// the tool prints (`12.3 MiB/s`), where indicatif's own keys would say `12.30 MiB`. The bar takes
// what the columns leave ({wide_bar}): the rest is at most 14 + 4 + 21 + 13 + 12 columns and a
// message of at most MESSAGE_CHARS (64 + 14), so every line fits an 80-column terminal.
const BAR: &str =
    "{prefix:>14} [{wide_bar:.cyan/blue}] {done:>10}/{total:<10} {rate:>12} {left:>11} {msg}";
const SPIN: &str = "{prefix:>14} {spinner:.green} {done:>10} {rate:>12} {msg}";
/// Names are cut to this many characters (keeping their end), messages to MESSAGE_CHARS.
const NAME_CHARS: usize = 14;
const MESSAGE_CHARS: usize = 14;

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
                    let _ = write!(w, "{} left", compact_duration(s.eta().as_secs()));
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
            if let Some(total) = f.bytes_total.map(|v| v.get()) {
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
        let total = known_total(job);
        if total.is_some() && !self.sized && p.bytes_transferred > 0 {
            self.job.set_style(Self::style(BAR));
            self.sized = true;
        }
        if let (true, Some(total)) = (self.sized, total) {
            self.job.set_length(total);
        }
        self.job.set_position(p.bytes_transferred);
        self.job.set_message(short(&match job.state {
            JobState::Transferring => String::new(),
            JobState::Queued | JobState::Connecting => "connecting".to_string(),
            JobState::TransientError => match &job.error {
                Some(e) => format!("retrying: {}", e.description),
                None => "retrying".into(),
            },
            s => s.name().to_lowercase(),
        }));
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
        Lines::starting(Instant::now())
    }

    fn starting(started: Instant) -> Lines {
        Lines {
            started,
            last_line: None,
            last_state: None,
            last_tenth: 0,
            last_bytes: 0,
            first_bytes: None,
        }
    }

    fn update(&mut self, job: &JobRecord) {
        if let Some(line) = self.line_at(job, Instant::now()) {
            eprintln!("{line}");
        }
    }

    /// The line to print at `now` for `job`, if one is due (the clock is a parameter so the
    /// pacing can be tested without waiting).
    fn line_at(&mut self, job: &JobRecord, now: Instant) -> Option<String> {
        let p = job.progress();
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
            return None;
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
                let wait = at.get().saturating_sub(openbits_core::job::now_ms()) / 1000;
                line.push_str(&format!("; retrying in {}", format::duration(wait)));
            }
        }
        self.last_line = Some(now);
        self.last_state = Some(job.state);
        self.last_tenth = tenth;
        self.last_bytes = p.bytes_transferred;
        Some(strip_controls(&line))
    }
}

/// Names and URLs come from users and servers: a control character in them must not reach a log.
fn strip_controls(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use openbits_core::job::NonMaxU64;
    use openbits_core::{FileRecord, JobId, JobType};

    fn job(state: JobState, done: u64, total: Option<u64>) -> JobRecord {
        let mut j = JobRecord::new(JobId::from_u128(7), JobType::Download, "pace".into(), 0);
        let mut f = FileRecord::new("http://h/f".into(), "/tmp/f".into());
        f.bytes_transferred = done;
        f.bytes_total = total.and_then(NonMaxU64::new);
        j.files.push(f);
        j.state = state;
        j
    }

    /// At most a line a second, and within that only for a new tenth or a new state.
    #[test]
    fn lines_come_at_most_once_a_second_and_each_tenth() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut lines = Lines::starting(t0);
        let total = Some(1000);
        // The first look always prints.
        assert!(lines
            .line_at(&job(JobState::Queued, 0, None), at(0))
            .is_some());
        // A new state within the second: held back.
        assert_eq!(
            lines.line_at(&job(JobState::Transferring, 50, total), at(300)),
            None
        );
        // After a second, the new state prints (with size and percentage).
        let line = lines
            .line_at(&job(JobState::Transferring, 50, total), at(1000))
            .expect("the state changed and a second passed");
        assert!(
            line.contains("TRANSFERRING") && line.contains("(5%)"),
            "{line}"
        );
        // Same tenth, seconds later: nothing new to say.
        assert_eq!(
            lines.line_at(&job(JobState::Transferring, 90, total), at(3000)),
            None
        );
        let line = lines
            .line_at(&job(JobState::Transferring, 350, total), at(4500))
            .expect("a new tenth after a second");
        assert!(line.contains("(35%)"), "{line}");
        // A new tenth less than a second after that line: held back...
        assert_eq!(
            lines.line_at(&job(JobState::Transferring, 550, total), at(5000)),
            None
        );
        // ...and once the second has passed, several tenths at once make one line.
        let line = lines
            .line_at(&job(JobState::Transferring, 990, total), at(5600))
            .expect("new tenths after a second");
        assert!(line.contains("(99%)"), "{line}");
        assert_eq!(
            lines.line_at(&job(JobState::Transferring, 995, total), at(6700)),
            None
        );
    }

    /// With no size to take tenths of, a line every 10 s while bytes arrive.
    #[test]
    fn unknown_sizes_get_a_line_every_ten_seconds_of_progress() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut lines = Lines::starting(t0);
        assert!(lines
            .line_at(&job(JobState::Transferring, 10, None), at(0))
            .is_some());
        assert_eq!(
            lines.line_at(&job(JobState::Transferring, 5000, None), at(9)),
            None
        );
        let line = lines
            .line_at(&job(JobState::Transferring, 6000, None), at(10))
            .expect("10 s of progress");
        assert!(line.contains("/ ?") && !line.contains('%'), "{line}");
        // No new bytes: silence, however long.
        assert_eq!(
            lines.line_at(&job(JobState::Transferring, 6000, None), at(60)),
            None
        );
    }

    #[test]
    fn no_control_character_reaches_a_line() {
        let mut j = job(JobState::Queued, 0, None);
        j.display_name = "evil\x1b[2Jname\r".into();
        let line = Lines::starting(Instant::now())
            .line_at(&j, Instant::now())
            .expect("first line");
        assert!(!line.chars().any(char::is_control), "{line:?}");
    }

    #[test]
    fn the_job_total_grows_with_the_sizes_known() {
        let mut j = job(JobState::Transferring, 100, Some(600));
        j.files
            .push(FileRecord::new("http://h/g".into(), "/tmp/g".into()));
        assert_eq!(known_total(&j), Some(600));
        j.files[1].bytes_total = NonMaxU64::new(300);
        assert_eq!(known_total(&j), Some(900));
        j.files[0].bytes_total = None;
        j.files[1].bytes_total = None;
        assert_eq!(known_total(&j), None);
    }

    #[test]
    fn bar_pieces_stay_short() {
        assert_eq!(compact_duration(42), "42s");
        assert_eq!(compact_duration(200), "3m20s");
        assert_eq!(compact_duration(7500), "2h05m");
        assert_eq!(compact_duration(1_000_000), ">99h");
        assert_eq!(short("retrying: connection refused").chars().count(), 14);
        assert_eq!(
            file_name("/x/a-rather-long-file-name.bin").chars().count(),
            14
        );
    }
}
