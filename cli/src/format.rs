//! How jobs read: human sizes and rates (binary units, `12.3 MiB/s`), times, the list table, the
//! `info` text, and the JSON documents (`--json`), whose field names are stable for scripts.

use openbits_core::job::{JobRecord, SIZE_UNKNOWN};
use openbits_core::{JobId, JobState, JobType, Priority};
use serde_json::{json, Value};

pub fn braced(id: &JobId) -> String {
    openbits_core::job::braced(id)
}

/// `512 B`, `1.5 KiB`, `12.3 MiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

pub fn rate(bytes_per_second: f64) -> String {
    format!("{}/s", size(bytes_per_second.max(0.0) as u64))
}

/// `42 s`, `3 min 20 s`, `2 h 05 min`.
pub fn duration(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min {} s", s / 60, s % 60),
        s => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}

/// `transferred / total` with the total unknown shown as `?`.
pub fn progress(done: u64, total: u64) -> String {
    if total == SIZE_UNKNOWN {
        format!("{} / ?", size(done))
    } else {
        format!("{} / {}", size(done), size(total))
    }
}

/// Milliseconds since the epoch as `2026-12-03T08:15:06Z` (UTC, ISO 8601).
pub fn time(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil: the proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + (m <= 2) as i64, m, d)
}

pub fn priority_name(p: Priority) -> &'static str {
    match p {
        Priority::Foreground => "FOREGROUND",
        Priority::High => "HIGH",
        Priority::Normal => "NORMAL",
        Priority::Low => "LOW",
    }
}

pub fn type_name(t: JobType) -> &'static str {
    match t {
        JobType::Download => "DOWNLOAD",
        JobType::Upload => "UPLOAD",
        JobType::UploadReply => "UPLOAD_REPLY",
    }
}

fn total_or_null(total: u64) -> Value {
    if total == SIZE_UNKNOWN {
        Value::Null
    } else {
        json!(total)
    }
}

/// The `--json` document of a job: every property, every file, the error.
pub fn job_json(job: &JobRecord) -> Value {
    let p = job.progress();
    let extras = job.extras();
    let files: Vec<Value> = job
        .files
        .iter()
        .map(|f| {
            json!({
                "remote_url": &*f.remote_url,
                "local_path": &*f.local_path,
                "temp_path": f.temp_path.as_deref(),
                "bytes_total": f.bytes_total.map(|v| v.get()),
                "bytes_transferred": f.bytes_transferred,
                "completed": f.completed,
                "ranges": f.extras().ranges.as_ref().map(|r| r
                    .iter()
                    .map(|r| json!({"offset": r.offset, "length": range_length_json(r.length)}))
                    .collect::<Vec<_>>()),
                "reply": f.extras().reply.as_ref().map(|r| json!({
                    "url": &*r.url,
                    "bytes_total": r.total,
                    "bytes_transferred": r.received,
                })),
            })
        })
        .collect();
    let error = job.error.as_ref().map(|e| {
        json!({
            "code": format!("0x{:08X}", e.code.as_u32()),
            "name": e.code.name(),
            "description": e.description,
            "code_text": e.code.description(),
            "context": format!("{:?}", e.context),
            "context_text": e.context.description(),
            "file_index": e.file_index,
        })
    });
    json!({
        "id": braced(&job.id),
        "display_name": &*job.display_name,
        "description": &*job.description,
        "type": type_name(job.job_type),
        "state": job.state.name(),
        "owner": &*job.owner,
        "priority": priority_name(job.priority),
        "bytes_total": total_or_null(p.bytes_total),
        "bytes_transferred": p.bytes_transferred,
        "files_total": p.files_total,
        "files_transferred": p.files_transferred,
        "created": time(job.created_ms),
        "modified": time(job.modified_ms),
        "transfer_completed": job.transfer_completed_ms.map(|t| time(t.get())),
        "error_count": job.error_count,
        "retry_delay_s": job.minimum_retry_delay_s,
        "no_progress_timeout_s": job.no_progress_timeout_s,
        "max_download_time_s": job.max_download_time_s,
        "max_download_size": job.max_download_size.map(|v| v.get()),
        "dynamic_content": job.dynamic_content,
        "notify_flags": job.notify_flags,
        "min_notification_interval_ms": job.min_notification_interval_ms,
        "security_flags": job.security_flags,
        "proxy_usage": proxy_usage_name(job.proxy_usage),
        "proxy_list": extras.proxy_list.as_deref(),
        "proxy_bypass": extras.proxy_bypass.as_deref(),
        "custom_headers": extras.custom_headers.as_deref(),
        "custom_headers_write_only": extras.custom_headers_write_only,
        "notify_program": extras.notify_program.as_deref(),
        "notify_parameters": extras.notify_parameters.as_deref(),
        "max_bandwidth": extras.max_bandwidth,
        "transfer_policy": extras.transfer_policy.unwrap_or(openbits_core::job::TRANSFER_POLICY_ALWAYS),
        "retry_at": job.retry_at_ms.map(|t| time(t.get())),
        "trusted_roots": extras.trusted_roots.as_deref(),
        "crl_file": extras.crl_file.as_deref(),
        "client_certificate": extras.client_certificate.as_deref(),
        "client_key": extras.client_key.as_deref(),
        "certificate_callback_required": extras.certificate_callback_required,
        "reply_file_name": job.reply_path().map(|p| p.to_string_lossy().into_owned()),
        "files": files,
        "error": error,
    })
}

/// BG_LENGTH_TO_EOF as null ("to the end of the file"), any other length as itself.
fn range_length_json(length: u64) -> Value {
    if length == openbits_core::job::LENGTH_TO_EOF {
        Value::Null
    } else {
        json!(length)
    }
}

/// A byte range as `info` shows it: `100-199` (inclusive, as HTTP writes ranges), `100-` to the end.
fn range_text(r: &openbits_core::job::FileRange) -> String {
    if r.length == openbits_core::job::LENGTH_TO_EOF {
        format!("{}-", r.offset)
    } else if r.length == 0 {
        format!("{}+0", r.offset)
    } else {
        format!("{}-{}", r.offset, r.offset.saturating_add(r.length - 1))
    }
}

fn proxy_usage_name(usage: i32) -> &'static str {
    match usage {
        0 => "PRECONFIG",
        1 => "NO_PROXY",
        2 => "OVERRIDE",
        _ => "UNKNOWN",
    }
}

/// The holder of the queue, as the list and info documents report it.
pub fn holder_json(holder: Option<&crate::queue::Holder>) -> Value {
    match holder {
        Some(h) => json!({"pid": h.pid, "name": h.name}),
        None => Value::Null,
    }
}

/// The `list` / `monitor` table: one line per job, columns aligned.
pub fn table(jobs: &[JobRecord], with_owner: bool) -> String {
    let mut out = String::new();
    let owner_head = if with_owner { "OWNER        " } else { "" };
    out.push_str(&format!(
        "{:<38}  {:<15} {:<10} {:>7}  {:<23} {owner_head}NAME\n",
        "GUID", "STATE", "PRIORITY", "FILES", "BYTES"
    ));
    for j in jobs {
        let p = j.progress();
        let owner = if with_owner {
            format!("{:<12} ", j.owner)
        } else {
            String::new()
        };
        out.push_str(&format!(
            "{:<38}  {:<15} {:<10} {:>7}  {:<23} {owner}{}\n",
            braced(&j.id),
            j.state.name(),
            priority_name(j.priority),
            format!("{}/{}", p.files_transferred, p.files_total),
            progress(p.bytes_transferred, p.bytes_total),
            j.display_name
        ));
    }
    out
}

/// The `info` text: every property, every file, the error.
pub fn info(job: &JobRecord) -> String {
    let p = job.progress();
    let extras = job.extras();
    let mut lines: Vec<(String, String)> = vec![
        ("GUID".into(), braced(&job.id)),
        ("Display name".into(), job.display_name.to_string()),
        ("Description".into(), job.description.to_string()),
        ("Type".into(), type_name(job.job_type).into()),
        ("State".into(), job.state.name().into()),
        ("Owner".into(), job.owner.to_string()),
        ("Priority".into(), priority_name(job.priority).into()),
        (
            "Progress".into(),
            format!(
                "{} in {} of {} files",
                progress(p.bytes_transferred, p.bytes_total),
                p.files_transferred,
                p.files_total
            ),
        ),
        ("Created".into(), time(job.created_ms)),
        ("Modified".into(), time(job.modified_ms)),
    ];
    let mut add = |k: &str, v: String| lines.push((k.into(), v));
    if let Some(t) = job.transfer_completed_ms {
        add("Transfer completed", time(t.get()));
    }
    add("Error count", job.error_count.to_string());
    add("Retry delay", format!("{} s", job.minimum_retry_delay_s));
    add(
        "No-progress timeout",
        format!("{} s", job.no_progress_timeout_s),
    );
    add(
        "Max download time",
        match job.max_download_time_s {
            0 => "none".into(),
            s => format!("{s} s"),
        },
    );
    add(
        "Max download size",
        job.max_download_size
            .map_or("none".into(), |b| format!("{b} bytes")),
    );
    add("Dynamic content", job.dynamic_content.to_string());
    if let Some(at) = job
        .retry_at_ms
        .filter(|_| job.state == JobState::TransientError)
    {
        add("Next retry", time(at.get()));
    }
    add("Notify flags", format!("0x{:X}", job.notify_flags));
    add(
        "Min notification interval",
        format!("{} ms", job.min_notification_interval_ms),
    );
    add(
        "Notify command line",
        match (&extras.notify_program, &extras.notify_parameters) {
            (Some(prog), Some(params)) => format!("{prog} ({params})"),
            (Some(prog), None) => prog.to_string(),
            _ => "none".into(),
        },
    );
    add("Security flags", format!("0x{:04X}", job.security_flags));
    add(
        "Max bandwidth",
        match extras.max_bandwidth {
            0 => "none".into(),
            b => rate(b as f64),
        },
    );
    add(
        "Transfer policy",
        format!(
            "0x{:08X}",
            extras
                .transfer_policy
                .unwrap_or(openbits_core::job::TRANSFER_POLICY_ALWAYS)
        ),
    );
    add(
        "Proxy",
        match (job.proxy_usage, &extras.proxy_list) {
            (2, Some(list)) => format!(
                "OVERRIDE {list}{}",
                extras
                    .proxy_bypass
                    .as_ref()
                    .map_or(String::new(), |b| format!(" (bypass {b})"))
            ),
            (usage, _) => proxy_usage_name(usage).into(),
        },
    );
    add(
        "Custom headers",
        match (&extras.custom_headers, extras.custom_headers_write_only) {
            (_, true) => "write-only".into(),
            (None, false) => "none".into(),
            (Some(h), false) => h.trim_end().replace("\r\n", "; "),
        },
    );
    let path_or = |p: &Option<Box<str>>, none: &str| p.as_deref().unwrap_or(none).to_string();
    add(
        "Trusted roots",
        path_or(&extras.trusted_roots, "the platform's"),
    );
    add("Revocation list", path_or(&extras.crl_file, "none"));
    add(
        "Client certificate",
        match (&extras.client_certificate, &extras.client_key) {
            (Some(cert), Some(key)) => format!("{cert} (key {key})"),
            (Some(cert), None) => cert.to_string(),
            _ => "none".into(),
        },
    );
    add(
        "Certificate callback",
        if extras.certificate_callback_required {
            // Callbacks live in the process that set them; the record only says one was set.
            "set by the application (HTTPS waits for it to be set again)".into()
        } else {
            "none".into()
        },
    );
    if let Some(reply) = job.reply_path() {
        add("Reply file", reply.to_string_lossy().into_owned());
        let got = job.files.first().and_then(|f| f.extras().reply.as_ref());
        add(
            "Reply progress",
            match got {
                Some(r) => format!(
                    "{} from {}",
                    progress(r.received, r.total.unwrap_or(SIZE_UNKNOWN)),
                    r.url
                ),
                None => "no reply yet".into(),
            },
        );
    }
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out: String = lines
        .iter()
        .map(|(k, v)| format!("{k:<width$}  {v}\n"))
        .collect();
    if let Some(e) = &job.error {
        out.push_str(&format!(
            "Error\n  {}\n  {}\n  {} ({:?})\n",
            crate::fail::code_and_name(e.code),
            e.description,
            e.context.description(),
            e.context,
        ));
        if let Some(f) = e.file_index.and_then(|i| job.files.get(i as usize)) {
            out.push_str(&format!("  file: {} -> {}\n", f.remote_url, f.local_path));
        }
    }
    out.push_str(&format!("Files ({})\n", job.files.len()));
    for (i, f) in job.files.iter().enumerate() {
        let state = if f.completed {
            "done"
        } else if f.bytes_transferred > 0 {
            "partial"
        } else {
            "waiting"
        };
        out.push_str(&format!(
            "  {i}: {} -> {}\n     {} {}{}\n",
            f.remote_url,
            f.local_path,
            progress(
                f.bytes_transferred,
                f.bytes_total.map_or(SIZE_UNKNOWN, |v| v.get())
            ),
            state,
            f.temp_path
                .as_ref()
                .map_or(String::new(), |t| format!(", temporary file {t}"))
        ));
        if let Some(ranges) = &f.extras().ranges {
            let list: Vec<String> = ranges.iter().map(range_text).collect();
            out.push_str(&format!("     ranges (bytes): {}\n", list.join(", ")));
        }
    }
    out
}

/// Whether the scheduler still has work in this job (what `run --until-idle` waits out).
pub fn is_busy(state: JobState) -> bool {
    state.is_active()
}

#[cfg(test)]
mod tests {
    use super::*;
    use openbits_core::job::NonMaxU64;

    #[test]
    fn human_units() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(12_897_485), "12.3 MiB");
        assert_eq!(rate(12_897_485.0), "12.3 MiB/s");
        assert_eq!(duration(59), "59 s");
        assert_eq!(duration(200), "3 min 20 s");
        assert_eq!(duration(7500), "2 h 05 min");
        assert_eq!(progress(5, SIZE_UNKNOWN), "5 B / ?");
    }

    /// The properties beyond the basic ones, as a record holds them (the TLS files are checked
    /// by the core when set, so the record is made here rather than through a real job).
    #[test]
    fn info_shows_tls_reply_ranges_retry_and_notification_interval() {
        use openbits_core::job::{FileRange, JobExtras, Reply, LENGTH_TO_EOF};
        use openbits_core::FileRecord;
        let mut job = JobRecord::new(JobId::from_u128(1), JobType::UploadReply, "props".into(), 0);
        job.state = JobState::TransientError;
        job.retry_at_ms = NonMaxU64::new(1_700_000_000_000);
        job.min_notification_interval_ms = 750;
        let mut f = FileRecord::new("https://h/up".into(), "/tmp/up.bin".into());
        f.set_extras(|e| {
            e.ranges = Some(
                vec![
                    FileRange {
                        offset: 0,
                        length: 100,
                    },
                    FileRange {
                        offset: 500,
                        length: LENGTH_TO_EOF,
                    },
                ]
                .into_boxed_slice(),
            );
            e.reply = Some(Reply {
                url: "https://h/reply/1".into(),
                total: Some(2048),
                received: 1024,
            });
        });
        job.files.push(f);
        job.extras = Some(Box::new(JobExtras {
            trusted_roots: Some("/etc/roots.pem".into()),
            crl_file: Some("/etc/crl.pem".into()),
            client_certificate: Some("/etc/me.pem".into()),
            client_key: Some("/etc/me.key".into()),
            certificate_callback_required: true,
            reply_file_name: Some("/tmp/answer".into()),
            ..JobExtras::default()
        }));
        let text = info(&job);
        for (key, value) in [
            ("Next retry", "2023-11-14T22:13:20Z"),
            ("Min notification interval", "750 ms"),
            ("Trusted roots", "/etc/roots.pem"),
            ("Revocation list", "/etc/crl.pem"),
            ("Client certificate", "/etc/me.pem (key /etc/me.key)"),
            ("Certificate callback", "set by the application"),
            ("Reply file", "/tmp/answer"),
            ("Reply progress", "1.0 KiB / 2.0 KiB from https://h/reply/1"),
        ] {
            let line = text
                .lines()
                .find(|l| l.starts_with(key))
                .unwrap_or_else(|| panic!("no {key} line in:\n{text}"));
            assert!(line.contains(value), "{line:?} should say {value:?}");
        }
        assert!(text.contains("ranges (bytes): 0-99, 500-"), "{text}");
        let doc = job_json(&job);
        assert_eq!(doc["trusted_roots"], "/etc/roots.pem");
        assert_eq!(doc["certificate_callback_required"], true);
        assert_eq!(doc["reply_file_name"], "/tmp/answer");
        assert_eq!(doc["files"][0]["ranges"][1]["length"], Value::Null);
        assert_eq!(doc["files"][0]["reply"]["bytes_transferred"], 1024);
        assert_eq!(doc["retry_at"], "2023-11-14T22:13:20Z");
    }

    #[test]
    fn utc_times() {
        assert_eq!(time(0), "1970-01-01T00:00:00Z");
        assert_eq!(time(1_700_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(time(951_782_400_000), "2000-02-29T00:00:00Z");
    }
}

/// A rate as users write it: `500000`, `500k`, `2M`, `2MiB`, `1.5 MB/s` in bytes per second. k, M
/// and G are 1024-based whatever the spelling, as curl reads `--limit-rate`.
pub fn parse_rate(text: &str) -> Option<u64> {
    let t = text.trim().trim_end_matches("/s").trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number.parse().ok()?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.trim_end_matches('b').trim_end_matches('i');
    let scale = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = number * scale;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

#[cfg(test)]
mod rate_tests {
    use super::parse_rate;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("500000"), Some(500_000));
        assert_eq!(parse_rate("500k"), Some(512_000));
        assert_eq!(parse_rate("2MiB"), Some(2 << 20));
        assert_eq!(parse_rate("1.5 MB/s"), Some(1_572_864));
        assert_eq!(parse_rate("fast"), None);
        assert_eq!(parse_rate("3 parsecs"), None);
    }
}
