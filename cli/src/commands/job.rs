//! The verbs that change one job, bitsadmin-style. Each opens the queue (exit 3 if another
//! process holds it), makes its change through the core's API, and closes the queue, which
//! records the change before the command returns.

use super::transfer::{
    absolute, job_type, parse_bandwidth, parse_priority, shell_quote, start, watch,
};
use super::{apply_credentials, find, read_credentials, Context};
use crate::cli::{Credentials, Kind, Property};
use crate::fail::Fail;
use crate::format;
use crate::interrupt;
use crate::queue::{self, Hold};
use openbits_core::hresult::{self as hr, HResult};

use std::path::Path;

pub fn create(cx: &Context, kind: Kind, name: &str) -> Result<i32, Fail> {
    let manager = queue::open(&cx.dir, Hold::Briefly)?;
    let job = manager
        .create_job(name, job_type(kind))
        .map_err(Fail::call("cannot create the job"))?;
    let id = format::braced(&job.id());
    if cx.global.json {
        cx.json(&serde_json::json!({ "id": id, "state": job_state(&job) }));
    } else {
        // The GUID is the result, not a remark: printed even with --quiet, so that
        // `id=$(openbits -q create NAME)` works.
        println!("{id}");
    }
    Ok(0)
}

/// The job's state name, for the JSON documents the changing verbs print.
fn job_state(job: &openbits_core::Job) -> Option<&'static str> {
    job.state().ok().map(|s| s.name())
}

/// What a changing verb reports: with `--json` one document naming the job and its state now
/// (and `extra` fields), else `text` on stderr.
fn report(
    cx: &Context,
    job: &openbits_core::Job,
    text: String,
    extra: serde_json::Value,
) -> Result<i32, Fail> {
    if cx.global.json {
        let mut doc = serde_json::json!({
            "id": format::braced(&job.id()),
            "state": job_state(job),
        });
        if let (Some(doc), serde_json::Value::Object(extra)) = (doc.as_object_mut(), extra) {
            doc.extend(extra);
        }
        cx.json(&doc);
    } else {
        cx.note(text);
    }
    Ok(0)
}

/// The result code of complete and cancel, for the JSON documents.
fn result_json(code: HResult) -> serde_json::Value {
    serde_json::json!({ "result": crate::fail::code_and_name(code) })
}

pub fn add_file(cx: &Context, query: &str, url: &str, path: &Path) -> Result<i32, Fail> {
    let manager = queue::open(&cx.dir, Hold::Briefly)?;
    let job = find(&manager, query)?;
    let local = absolute(&path.to_string_lossy())?;
    job.add_file(url, &local.to_string_lossy())
        .map_err(Fail::call("cannot add the file"))?;
    report(
        cx,
        &job,
        format!(
            "added {url} -> {} to job {}",
            local.display(),
            format::braced(&job.id())
        ),
        serde_json::json!({ "remote_url": url, "local_path": local.to_string_lossy() }),
    )
}

pub fn resume(
    cx: &Context,
    query: &str,
    wait: bool,
    credentials: &Credentials,
) -> Result<i32, Fail> {
    let credentials = read_credentials(credentials)?;
    if wait {
        interrupt::install();
    }
    let hold = if wait {
        Hold::ToTransfer
    } else {
        Hold::Briefly
    };
    let manager = queue::open(&cx.dir, hold)?;
    let job = find(&manager, query)?;
    let id = format::braced(&job.id());
    apply_credentials(&job, credentials.as_ref())?;
    if !wait {
        job.resume().map_err(Fail::call("cannot resume the job"))?;
        return report(
            cx,
            &job,
            format!(
                "job {id} is queued: it transfers while a process holds the queue \
                 (`{0} resume {id} --wait`, `{0} run`, or your application)",
                cx.openbits()
            ),
            serde_json::Value::Null,
        );
    }
    start(&job)?;
    let again = format!("{} resume {} --wait", cx.openbits(), shell_quote(&id));
    watch(cx, &job, false, again)
}

pub fn suspend(cx: &Context, query: &str) -> Result<i32, Fail> {
    let manager = queue::open(&cx.dir, Hold::Briefly)?;
    let job = find(&manager, query)?;
    job.suspend()
        .map_err(Fail::call("cannot suspend the job"))?;
    report(
        cx,
        &job,
        format!("job {} is suspended", format::braced(&job.id())),
        serde_json::Value::Null,
    )
}

pub fn cancel(cx: &Context, query: &str) -> Result<i32, Fail> {
    let manager = queue::open(&cx.dir, Hold::Briefly)?;
    let job = find(&manager, query)?;
    let code = job.cancel().map_err(Fail::call("cannot cancel the job"))?;
    report(
        cx,
        &job,
        format!(
            "job {} is cancelled{}",
            format::braced(&job.id()),
            informational(code)
        ),
        result_json(code),
    )
}

pub fn complete(cx: &Context, query: &str) -> Result<i32, Fail> {
    let manager = queue::open(&cx.dir, Hold::Briefly)?;
    let job = find(&manager, query)?;
    let code = job
        .complete()
        .map_err(Fail::call("cannot complete the job"))?;
    report(
        cx,
        &job,
        format!(
            "job {} is complete{}",
            format::braced(&job.id()),
            informational(code)
        ),
        result_json(code),
    )
}

/// `BITS_S_PARTIAL_COMPLETE` and its kind are success, but the user should hear about them.
fn informational(code: HResult) -> String {
    if code == hr::S_OK {
        String::new()
    } else {
        format!(
            " ({}: {})",
            crate::fail::code_and_name(code),
            code.description()
        )
    }
}

pub fn set(
    cx: &Context,
    query: &str,
    property: Property,
    value: &str,
    bypass: Option<&str>,
) -> Result<i32, Fail> {
    // What is refused whatever the job, before the queue is opened.
    if matches!(property, Property::Credentials) {
        return Err(Fail::Usage(
            "credentials are kept in memory only (never written to the queue), so they \
             last only while the process that set them holds the queue: give them to \
             `openbits resume JOB --wait --user U --password-env VAR` or to \
             `openbits transfer --user U --password-env VAR`"
                .into(),
        ));
    }
    let manager = queue::open(&cx.dir, Hold::Briefly)?;
    let job = find(&manager, query)?;
    let doing = format!("cannot set {}", property_name(property));
    let seconds = || -> Result<u32, Fail> {
        value
            .parse()
            .map_err(|_| Fail::Usage(format!("{value:?} is not a number of seconds")))
    };
    let result = match property {
        Property::Priority => {
            let p = parse_priority(value).ok_or_else(|| {
                Fail::Usage(format!(
                    "{value:?} is not a priority: foreground, high, normal or low"
                ))
            })?;
            job.set_priority(p)
        }
        Property::Description => job.set_description(value),
        Property::DisplayName => job.set_display_name(value),
        Property::RetryDelay => job.set_minimum_retry_delay(seconds()?),
        Property::NoProgressTimeout => job.set_no_progress_timeout(seconds()?),
        Property::MaxDownloadTime => job.set_maximum_download_time(seconds()?),
        Property::MaxDownloadSize => {
            let bytes = value
                .parse()
                .map_err(|_| Fail::Usage(format!("{value:?} is not a number of bytes")))?;
            job.set_max_download_size(bytes)
        }
        Property::DynamicContent => {
            let on = value
                .parse()
                .map_err(|_| Fail::Usage(format!("{value:?} is not true or false")))?;
            job.set_dynamic_content(on)
        }
        Property::CustomHeaders => {
            // Several headers arrive on separate lines, or with a literal \n from a shell.
            let lines: Vec<&str> = value
                .split(['\n'])
                .flat_map(|l| l.split("\\n"))
                .map(|l| l.trim_end_matches('\r').trim())
                .filter(|l| !l.is_empty())
                .collect();
            if lines.is_empty() {
                job.set_custom_headers(None)
            } else {
                let text: String = lines.iter().map(|l| format!("{l}\r\n")).collect();
                job.set_custom_headers(Some(&text))
            }
        }
        Property::Proxy => {
            // BG_JOB_PROXY_USAGE_PRECONFIG 0, NO_PROXY 1, OVERRIDE 2.
            match value.to_ascii_lowercase().as_str() {
                "preconfig" | "default" => job.set_proxy_settings(0, None, None),
                "no-proxy" | "no_proxy" | "none" | "direct" => {
                    job.set_proxy_settings(1, None, None)
                }
                _ => job.set_proxy_settings(2, Some(value), bypass),
            }
        }
        Property::NotifyCmdline => {
            if value.trim().is_empty() || value == "none" {
                job.set_notify_cmdline(None, None)
            } else {
                let program = first_word(value);
                job.set_notify_cmdline(Some(&program), Some(value))
            }
        }
        Property::NotifyFlags => {
            let flags = parse_number(value)
                .ok_or_else(|| Fail::Usage(format!("{value:?} is not a number")))?;
            job.set_notify_flags(flags)
        }
        Property::MaxBandwidth => job.set_max_bandwidth(parse_bandwidth(value)?),
        Property::TransferPolicy => {
            // BITS_JOB_TRANSFER_POLICY_* by name, or a BITS_COST_STATE_* mask as a number.
            let flags = match value.to_ascii_lowercase().replace('_', "-").as_str() {
                "always" => openbits_core::job::TRANSFER_POLICY_ALWAYS,
                "not-roaming" => openbits_core::job::TRANSFER_POLICY_NOT_ROAMING,
                "no-surcharge" => openbits_core::job::TRANSFER_POLICY_NO_SURCHARGE,
                "standard" => openbits_core::job::TRANSFER_POLICY_STANDARD,
                "unrestricted" => openbits_core::job::TRANSFER_POLICY_UNRESTRICTED,
                _ => parse_number(value).ok_or_else(|| {
                    Fail::Usage(format!(
                        "{value:?} is not a transfer policy: always, not-roaming, no-surcharge, \
                         standard, unrestricted, or a BITS_COST_STATE_* mask"
                    ))
                })?,
            };
            job.set_transfer_policy(flags)
        }
        Property::Credentials => unreachable!("refused above"),
    };
    result.map_err(Fail::call(doing))?;
    report(
        cx,
        &job,
        format!(
            "job {}: {} set",
            format::braced(&job.id()),
            property_name(property)
        ),
        // Not the value: custom headers may carry a token.
        serde_json::json!({ "property": property_name(property) }),
    )
}

fn property_name(p: Property) -> String {
    use clap::ValueEnum;
    p.to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_else(|| format!("{p:?}"))
}

/// The program of a notification command line: its first word, double quotes grouping, as the
/// library splits the parameters.
fn first_word(cmdline: &str) -> String {
    let t = cmdline.trim_start();
    if let Some(rest) = t.strip_prefix('"') {
        return rest.split('"').next().unwrap_or("").to_string();
    }
    t.split_whitespace().next().unwrap_or("").to_string()
}

fn parse_number(text: &str) -> Option<u32> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// GetReplyData: the reply of an upload-reply job, to stdout or `--output` (other job types:
/// BITS_E_NOTIMPL, as BITS answers).
pub fn get_reply_data(cx: &Context, query: &str, output: Option<&Path>) -> Result<i32, Fail> {
    let manager = queue::open(&cx.dir, Hold::Briefly)?;
    let job = find(&manager, query)?;
    let data = job
        .reply_data()
        .map_err(Fail::call("cannot get the reply data"))?;
    match output {
        Some(path) => std::fs::write(path, &data).map_err(|e| {
            Fail::Other(format!("cannot write the reply to {}: {e}", path.display()))
        })?,
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(&data)
                .and_then(|_| out.flush())
                .map_err(|e| Fail::Other(format!("cannot write the reply: {e}")))?;
        }
    }
    Ok(0)
}
