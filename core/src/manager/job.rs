//! `Job`: a handle to one job, with its properties, files, state changes and callback.

use super::validate::validate_source;
use super::validate::{
    before_first_resume, check_chars, check_ranges, validate_local, validate_local_in,
    validate_remote, Folders,
};
use crate::error::{Error, Result};
use crate::hresult::{self as hr, HResult};
use crate::http_options;
use crate::job::{
    self, now_ms, FileRange, FileRecord, JobError, JobId, JobRecord, NonMaxU64, Progress,
};
use crate::queue::events::{self, Deliver, Event, Registration};
use crate::queue::{check_open, publish, Destination, JobCell, Shared, Touch};
use crate::settle;
use crate::state::{self, JobState, JobType, Priority, Refusal};
use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

// GetReplyData and the other upload-reply calls.
mod reply;

/// A push callback: called on the manager's notification thread with a handle to the job (valid
/// for the call) and the event.
pub type Callback = Arc<dyn Fn(&Job, &Event) + Send + Sync>;

/// A server certificate check (`Job::set_server_certificate_callback`): called on a transfer
/// thread with a handle to the job and the certificate; BITS_S_OK accepts.
pub type ServerCertificateCheck =
    Box<dyn Fn(&Job, &crate::tls::CertificateCheck<'_>) -> HResult + Send + Sync>;

/// Paths the library keeps and opens later must not depend on the working directory.
fn check_absolute(what: &str, path: &str) -> Result<()> {
    if Path::new(path).is_absolute() {
        Ok(())
    } else {
        Err(Error::new(
            hr::E_INVALIDARG,
            format!("the {what} path must be absolute: {path}"),
        ))
    }
}

/// A handle to one job. Cloning gives another handle to the same job.
pub struct Job {
    cell: Arc<JobCell>,
    shared: Arc<Shared>,
    /// Whether this handle counts as the application's (see `JobCell::app_handles`).
    counted: bool,
}

impl Clone for Job {
    fn clone(&self) -> Job {
        if self.counted {
            self.cell.app_handles.fetch_add(1, Ordering::SeqCst);
        }
        Job {
            cell: self.cell.clone(),
            shared: self.shared.clone(),
            counted: self.counted,
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if self.counted && self.cell.app_handles.fetch_sub(1, Ordering::SeqCst) == 1 {
            // The application released the job for the last time: its callback goes (BITS
            // releases the notify interface with the last reference).
            let registration = self.cell.notify.lock().take();
            drop(registration);
        }
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Job({})", job::braced(&self.id()))
    }
}

impl Job {
    /// A handle for the library's own use: it does not keep a callback registered.
    pub(crate) fn from_cell(shared: Arc<Shared>, cell: Arc<JobCell>) -> Job {
        Job {
            cell,
            shared,
            counted: false,
        }
    }

    /// A handle given to the application.
    pub(super) fn for_app(shared: Arc<Shared>, cell: Arc<JobCell>) -> Job {
        cell.app_handles.fetch_add(1, Ordering::SeqCst);
        Job {
            cell,
            shared,
            counted: true,
        }
    }

    /// Another handle to the job that does not count as the application's: what a callback is
    /// given for the duration of its call.
    pub fn borrowed(&self) -> Job {
        Job::from_cell(self.shared.clone(), self.cell.clone())
    }

    /// SetNotifyInterface + SetNotifyFlags: registers `callback` (None: removes it) for the events
    /// `flags` selects (BITS_NOTIFY_*; BG_NOTIFY_DISABLE silences it). The last registration wins;
    /// the previous callback is dropped once no delivery uses it. An event that already happened
    /// (the job is TRANSFERRED or in ERROR) is delivered at once, as in BITS. Not persisted.
    pub fn set_notify_callback(&self, flags: u32, callback: Option<Callback>) -> Result<()> {
        self.set_notify_flags(flags)?;
        let registration = callback.map(|callback| {
            // The handle is built at delivery time. The manager is held weakly: a registration
            // must not keep it alive (the cell -> registration -> cell cycle is cut where the
            // registration is dropped, see `Registration`).
            let shared = Arc::downgrade(&self.shared);
            let cell = self.cell.clone();
            let deliver: Deliver = Arc::new(move |event: &Event| {
                if let Some(shared) = shared.upgrade() {
                    callback(&Job::from_cell(shared, cell.clone()), event);
                }
            });
            Arc::new(Registration { flags, deliver })
        });
        let previous = std::mem::replace(&mut *self.cell.notify.lock(), registration.clone());
        drop(previous);
        if let Some(r) = registration {
            let (happened, interval) = {
                let slot = self.cell.slot.lock();
                (
                    events::already_happened(&slot.rec),
                    slot.rec.min_notification_interval_ms,
                )
            };
            if let Some(e) = happened.filter(|e| r.wants(e.kind)) {
                self.shared.dispatcher.send(
                    r.deliver.clone(),
                    e,
                    Duration::from_millis(interval.into()),
                );
            }
        }
        Ok(())
    }

    fn check_open(&self) -> Result<()> {
        check_open(&self.shared)
    }

    pub fn id(&self) -> JobId {
        self.cell.slot.lock().rec.id
    }

    /// A copy of the job's record. Write-only custom headers are left out (`custom_headers` is
    /// None and `custom_headers_write_only` says why).
    pub fn record(&self) -> Result<JobRecord> {
        self.check_open()?;
        let mut rec = self.cell.slot.lock().rec.clone();
        rec.redact_write_only();
        Ok(rec)
    }

    pub fn state(&self) -> Result<JobState> {
        self.check_open()?;
        Ok(self.cell.slot.lock().rec.state)
    }

    pub fn progress(&self) -> Result<Progress> {
        self.check_open()?;
        Ok(self.cell.slot.lock().rec.progress())
    }

    /// GetError: only in ERROR / TRANSIENT_ERROR.
    pub fn error(&self) -> Result<JobError> {
        self.check_open()?;
        let slot = self.cell.slot.lock();
        match (&slot.rec.error, slot.rec.state) {
            (Some(e), JobState::Error | JobState::TransientError) => Ok((**e).clone()),
            _ => Err(Error::new(
                hr::E_ERROR_INFORMATION_UNAVAILABLE,
                format!("no error information: the job is {}", slot.rec.state.name()),
            )),
        }
    }

    /// Applies `f` to a copy of the record and publishes it. The scheduler is not woken: callers
    /// whose change can move one of its decisions call `wake_scheduler`.
    fn update<R>(
        &self,
        f: impl FnOnce(&mut JobRecord) -> std::result::Result<R, Refusal>,
    ) -> Result<R> {
        self.update_touching(|_| Touch::Job, f)
    }

    /// `update` of a change that touches more than the job's own row: `touch` says what, from the
    /// record as it is when the change is made.
    fn update_touching<R>(
        &self,
        touch: impl FnOnce(&JobRecord) -> Touch,
        f: impl FnOnce(&mut JobRecord) -> std::result::Result<R, Refusal>,
    ) -> Result<R> {
        self.check_open()?;
        let mut slot = self.cell.slot.lock();
        let touch = touch(&slot.rec);
        publish(&self.shared, &self.cell, &mut slot, touch, |rec| {
            f(rec).map_err(Error::from)
        })
    }

    /// A property change: refused in a final state, published otherwise.
    fn change(&self, set: impl FnOnce(&mut JobRecord)) -> Result<()> {
        self.update(|rec| {
            state::modify(rec.state, "change")?;
            set(rec);
            Ok(())
        })
    }

    fn wake_scheduler(&self) {
        self.shared.wake.notify_one();
    }

    /// AddFile: http, https or file URL to an absolute local path whose folder exists.
    pub fn add_file(&self, remote_url: &str, local_path: &str) -> Result<()> {
        self.add_file_set(&[(remote_url, local_path)])
    }

    /// AddFileSet: every file, or none (the first invalid one is reported).
    pub fn add_file_set(&self, files: &[(&str, &str)]) -> Result<()> {
        self.check_open()?;
        let upload = self.cell.slot.lock().rec.job_type != JobType::Download;
        if upload {
            return self.add_upload_file(files);
        }
        let mut new = Vec::with_capacity(files.len());
        let mut keys = Vec::with_capacity(files.len());
        let mut folders = Folders::default();
        for (remote, local) in files {
            let url = validate_remote(remote)?;
            let (local, key) = validate_local_in(local, &mut folders)?;
            new.push(FileRecord::new(
                url.to_string(),
                local.to_string_lossy().into_owned(),
            ));
            keys.push(key);
        }
        self.append_files(new, keys, |_| Ok(()))
    }

    /// An upload job's one file: an http(s) URL and a readable regular file, the source. A second
    /// file, or a set of more than one, is BITS_E_TOO_MANY_FILES.
    fn add_upload_file(&self, files: &[(&str, &str)]) -> Result<()> {
        let too_many = || Error::new(hr::E_TOO_MANY_FILES, "an upload job has exactly one file");
        let [(remote, local)] = files else {
            return Err(if files.is_empty() {
                Error::new(hr::E_INVALIDARG, "no file given")
            } else {
                too_many()
            });
        };
        let url = validate_remote(remote)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::new(
                hr::E_INVALIDARG,
                format!(
                    "an upload goes to an http or https URL, not {}",
                    url.scheme()
                ),
            ));
        }
        let path = validate_source(local)?;
        let f = FileRecord::new(url.to_string(), path.to_string_lossy().into_owned());
        self.update_touching(
            |_| Touch::Appended,
            |rec| {
                state::modify(rec.state, "add a file to")?;
                if !rec.files.is_empty() {
                    return Err((
                        hr::E_TOO_MANY_FILES,
                        "an upload job has exactly one file".into(),
                    ));
                }
                rec.files.push(f);
                Ok(())
            },
        )
    }

    /// Appends `new` (whose destinations are `keys`, from `validate_local`) after BITS's checks
    /// (`check` first, then the file limit, then one file per destination), in one store
    /// transaction. The job's destinations are kept in a set, built on first use, so adding a file
    /// costs the same in a job of 2,000 files as in an empty one.
    fn append_files(
        &self,
        new: Vec<FileRecord>,
        keys: Vec<Destination>,
        check: impl FnOnce(&JobRecord) -> std::result::Result<(), Refusal>,
    ) -> Result<()> {
        let config = &self.shared.config;
        let mut slot = self.cell.slot.lock();
        let slot = &mut *slot;
        let mut known = match slot.destinations.take() {
            Some(set) => set,
            None => Box::new(
                slot.rec
                    .files
                    .iter()
                    .map(|f| Destination::of(Path::new(&*f.local_path)))
                    .collect(),
            ),
        };
        let result = publish(&self.shared, &self.cell, slot, Touch::Appended, |rec| {
            state::modify(rec.state, "add a file to")?;
            check(rec)?;
            if !config.service_mode
                && rec.files.len() + new.len() > config.max_files_per_job as usize
            {
                return Err(Error::new(
                    hr::E_TOO_MANY_FILES_IN_JOB,
                    format!(
                        "the job has {} files; {} more would pass the limit of {}",
                        rec.files.len(),
                        new.len(),
                        config.max_files_per_job
                    ),
                ));
            }
            let mut batch = HashSet::with_capacity(keys.len());
            for (i, key) in keys.iter().enumerate() {
                if known.contains(key) || !batch.insert(key) {
                    return Err(Error::new(
                        hr::E_INVALIDARG,
                        format!(
                            "the job already has a file with local name {}",
                            new[i].local_path
                        ),
                    ));
                }
            }
            rec.files.extend(new);
            Ok(())
        });
        if result.is_ok() {
            known.extend(keys);
        }
        slot.destinations = Some(known);
        result
    }

    /// AddFileWithRanges: only `ranges` of the remote file are downloaded, one after another, into
    /// the local file. BITS's codes: no range -> BITS_E_INVALIDARG; a range starting at
    /// LENGTH_TO_EOF, of length 0, overflowing, or LENGTH_TO_EOF anywhere but last ->
    /// BITS_E_INVALID_RANGE; overlapping or duplicate -> BITS_E_OVERLAPPING_RANGES; more than the
    /// manager's max_ranges_per_file -> BITS_E_TOO_MANY_RANGES_IN_FILE. http and https only.
    pub fn add_file_with_ranges(
        &self,
        remote_url: &str,
        local_path: &str,
        ranges: &[FileRange],
    ) -> Result<()> {
        self.check_open()?;
        if self.cell.slot.lock().rec.job_type != JobType::Download {
            return Err(Error::new(
                hr::E_NOTIMPL,
                "byte ranges are for download jobs (AddFileWithRanges is IBackgroundCopyJob3's, download only)",
            ));
        }
        let config = &self.shared.config;
        if !config.service_mode && ranges.len() > config.max_ranges_per_file as usize {
            return Err(Error::new(
                hr::E_TOO_MANY_RANGES_IN_FILE,
                format!(
                    "{} ranges; the limit is {}",
                    ranges.len(),
                    config.max_ranges_per_file
                ),
            ));
        }
        check_ranges(ranges)?;
        let url = validate_remote(remote_url)?;
        if url.scheme() == "file" {
            return Err(Error::new(
                hr::E_NOTIMPL,
                "byte ranges are supported for http and https files only",
            ));
        }
        let (local, key) = validate_local(local_path)?;
        let mut f = FileRecord::new(url.to_string(), local.to_string_lossy().into_owned());
        f.set_extras(|e| e.ranges = Some(ranges.into()));
        self.append_files(vec![f], vec![key], |rec| {
            if rec.dynamic_content {
                return Err((
                    hr::E_UNSUPPORTED_JOB_CONFIGURATION,
                    "a job with dynamic content cannot have byte ranges".into(),
                ));
            }
            Ok(())
        })
    }

    /// IBackgroundCopyFile2::SetRemoteName, e.g. a fresh signed URL. The partial data stays: the
    /// next request asks for the rest with If-Range, so the new URL continues the file if it serves
    /// the same representation and restarts it if not.
    pub fn set_remote_name(&self, index: u32, remote_url: &str) -> Result<()> {
        let url = validate_remote(remote_url)?;
        self.update_touching(
            |_| Touch::Files(vec![index as usize]),
            |rec| {
                state::modify(rec.state, "change a file of")?;
                let count = rec.files.len();
                let f = rec.files.get_mut(index as usize).ok_or_else(|| {
                    (
                        hr::E_INVALIDARG,
                        format!("file index {index} is out of range (the job has {count})"),
                    )
                })?;
                f.remote_url = url.to_string().into();
                Ok(())
            },
        )?;
        // A transfer in flight uses the old URL: stop it; the scheduler starts it again.
        JobCell::signal_stop(&self.cell.slot.lock());
        Ok(())
    }

    /// IBackgroundCopyJob3::ReplaceRemotePrefix: every file whose URL starts with `old` gets `new`
    /// instead; all or none. S_FALSE when no file matched.
    pub fn replace_remote_prefix(&self, old: &str, new: &str) -> Result<HResult> {
        if old.is_empty() {
            return Err(Error::new(hr::E_INVALIDARG, "the old prefix is empty"));
        }
        let matching = |rec: &JobRecord| {
            let files = rec.files.iter().enumerate();
            Touch::Files(
                files
                    .filter(|(_, f)| f.remote_url.starts_with(old))
                    .map(|(i, _)| i)
                    .collect(),
            )
        };
        let matched = self.update_touching(matching, |rec| {
            state::modify(rec.state, "change the files of")?;
            let mut replaced = Vec::new();
            for f in &rec.files {
                if let Some(rest) = f.remote_url.strip_prefix(old) {
                    let url = validate_remote(&format!("{new}{rest}"))
                        .map_err(|e| (e.code, e.message))?;
                    replaced.push(Some(url.to_string()));
                } else {
                    replaced.push(None);
                }
            }
            let matched = replaced.iter().filter(|r| r.is_some()).count();
            for (f, r) in rec.files.iter_mut().zip(replaced) {
                if let Some(url) = r {
                    f.remote_url = url.into();
                }
            }
            Ok(matched)
        })?;
        if matched == 0 {
            return Ok(hr::S_FALSE);
        }
        JobCell::signal_stop(&self.cell.slot.lock());
        Ok(hr::S_OK)
    }

    pub fn set_display_name(&self, name: &str) -> Result<()> {
        check_chars("display name", name, job::MAX_DISPLAY_NAME_CHARS)?;
        self.change(|rec| rec.display_name = name.into())
    }

    pub fn set_description(&self, description: &str) -> Result<()> {
        check_chars("description", description, job::MAX_DESCRIPTION_CHARS)?;
        self.change(|rec| rec.description = description.into())
    }

    /// SetPriority; the scheduler applies it at once, stopping a transfer only if it must.
    pub fn set_priority(&self, priority: Priority) -> Result<()> {
        self.change(|rec| rec.priority = priority)?;
        self.wake_scheduler();
        Ok(())
    }

    /// SetNotifyFlags: undefined bits give BITS_E_NOTIMPL, as in BITS.
    pub fn set_notify_flags(&self, flags: u32) -> Result<()> {
        if flags & !job::NOTIFY_FLAGS_MASK != 0 {
            return Err(Error::new(
                hr::E_NOTIMPL,
                format!("undefined notify flags 0x{flags:X}"),
            ));
        }
        self.change(|rec| rec.notify_flags = flags)
    }

    /// BITS_JOB_PROPERTY_MINIMUM_NOTIFICATION_INTERVAL_MS; may change during a transfer.
    pub fn set_minimum_notification_interval(&self, ms: u32) -> Result<()> {
        self.change(|rec| rec.min_notification_interval_ms = ms)
    }

    /// SetCustomHeaders: BITS's `"Name: value\r\n..."` form; None or "" clears them.
    pub fn set_custom_headers(&self, headers: Option<&str>) -> Result<()> {
        let headers = headers.filter(|h| !h.is_empty());
        if let Some(h) = headers {
            http_options::parse_headers(h).map_err(Error::from)?;
        }
        self.change(|rec| rec.set_extras(|e| e.custom_headers = headers.map(Box::from)))
    }

    /// GetCustomHeaders: None when none are set; BITS_E_ACCESSDENIED once they are write-only.
    pub fn custom_headers(&self) -> Result<Option<String>> {
        self.check_open()?;
        let slot = self.cell.slot.lock();
        let e = slot.rec.extras();
        if e.custom_headers_write_only {
            return Err(Error::new(
                hr::E_ACCESSDENIED,
                "the job's custom headers are write-only",
            ));
        }
        Ok(e.custom_headers.as_deref().map(str::to_string))
    }

    /// HttpOptions3::MakeCustomHeadersWriteOnly: from now on the headers are sent but never read
    /// back. Cannot be undone; headers set later are write-only too.
    pub fn make_custom_headers_write_only(&self) -> Result<()> {
        self.change(|rec| rec.set_extras(|e| e.custom_headers_write_only = true))
    }

    /// Beyond BITS: the job trusts the root certificates of a PEM file instead of the platform's
    /// (None: the platform's again). The file is checked now and read again by each new
    /// connection pool (the path is stored, not the certificates).
    pub fn set_trusted_roots(&self, pem_path: Option<&str>) -> Result<()> {
        if let Some(p) = pem_path {
            check_absolute("trusted roots file", p)?;
            crate::tls::check_trusted_roots(p).map_err(Error::from)?;
        }
        self.change(|rec| rec.set_extras(|e| e.trusted_roots = pem_path.map(Box::from)))
    }

    /// Beyond BITS: the server's chain is checked against the CRLs of a PEM file (None: no
    /// list). With BG_SSL_ENABLE_CRL_CHECK every certificate of the chain needs a list from its
    /// issuer in the file.
    pub fn set_certificate_revocation_list(&self, pem_path: Option<&str>) -> Result<()> {
        if let Some(p) = pem_path {
            check_absolute("revocation list file", p)?;
            crate::tls::load_crls(p).map_err(Error::from)?;
        }
        self.change(|rec| rec.set_extras(|e| e.crl_file = pem_path.map(Box::from)))
    }

    /// SetClientCertificateByName, with PEM files in place of a certificate store: the chain
    /// (the client's certificate first) and its private key. Checked now (the key must match).
    pub fn set_client_certificate_file(&self, cert_path: &str, key_path: &str) -> Result<()> {
        check_absolute("client certificate", cert_path)?;
        check_absolute("private key", key_path)?;
        crate::tls::check_client_certificate(cert_path, key_path).map_err(Error::from)?;
        self.change(|rec| {
            rec.set_extras(|e| {
                e.client_certificate = Some(cert_path.into());
                e.client_key = Some(key_path.into());
            })
        })
    }

    /// RemoveClientCertificate: S_FALSE when the job had none.
    pub fn remove_client_certificate(&self) -> Result<HResult> {
        self.update(|rec| {
            state::modify(rec.state, "change")?;
            let had = rec.extras().client_certificate.is_some();
            rec.set_extras(|e| {
                e.client_certificate = None;
                e.client_key = None;
            });
            Ok(if had { hr::S_OK } else { hr::S_FALSE })
        })
    }

    /// The client certificate and key files, if set (GetClientCertificate's analogue).
    pub fn client_certificate_file(&self) -> Result<Option<(String, String)>> {
        let rec = self.record()?;
        let e = rec.extras();
        Ok(e.client_certificate
            .as_deref()
            .zip(e.client_key.as_deref())
            .map(|(c, k)| (c.to_string(), k.to_string())))
    }

    /// HttpOptions3::SetServerCertificateValidationInterface: `check` sees each server
    /// certificate chain that passed the library's checks (or failed only those a BG_SSL_IGNORE_*
    /// flag names) and accepts it with BITS_S_OK. Runs on a transfer thread during the TLS
    /// handshake. Only while the job is not active (BITS_E_READ_ONLY_WHEN_JOB_ACTIVE). Not
    /// stored: the job remembers it had one, and after a restart its HTTPS transfers stop with
    /// BG_E_SERVER_CERT_VALIDATION_INTERFACE_REQUIRED until one is set again. None removes it.
    pub fn set_server_certificate_callback(
        &self,
        check: Option<ServerCertificateCheck>,
    ) -> Result<()> {
        let callback = check.map(|check| {
            // Both weak: the cell holds the callback, so a strong reference would be a cycle.
            let shared = Arc::downgrade(&self.shared);
            let cell = Arc::downgrade(&self.cell);
            crate::tls::ServerCertificateCallback::new(Box::new(
                move |c: &crate::tls::CertificateCheck<'_>| match (shared.upgrade(), cell.upgrade())
                {
                    (Some(shared), Some(cell)) => check(&Job::from_cell(shared, cell), c),
                    _ => hr::E_UNEXPECTED,
                },
            ))
        });
        let required = callback.is_some();
        self.check_open()?;
        let mut slot = self.cell.slot.lock();
        state::modify(slot.rec.state, "change")?;
        if matches!(
            slot.rec.state,
            JobState::Queued | JobState::Connecting | JobState::Transferring
        ) {
            return Err(Error::new(
                hr::E_READ_ONLY_WHEN_JOB_ACTIVE,
                format!(
                    "the server certificate callback can be set only while the job is not active (it is {})",
                    slot.rec.state.name()
                ),
            ));
        }
        if slot.rec.extras().certificate_callback_required != required {
            publish(&self.shared, &self.cell, &mut slot, Touch::Job, |rec| {
                rec.set_extras(|e| e.certificate_callback_required = required);
                Ok(())
            })?;
        }
        // The old registration (and the application's data) goes once no handshake uses it.
        let previous = std::mem::replace(&mut slot.certificate_callback, callback);
        drop(slot);
        drop(previous);
        Ok(())
    }

    /// SetSecurityFlags: the redirect policy (BG_HTTP_REDIRECT_POLICY_*) and BG_SSL_* flags.
    pub fn set_security_flags(&self, flags: u32) -> Result<()> {
        http_options::check_security_flags(flags).map_err(Error::from)?;
        self.change(|rec| rec.security_flags = flags)
    }

    /// SetProxySettings: PRECONFIG (the environment, as curl reads it), NO_PROXY, or OVERRIDE with
    /// a proxy list and a bypass list.
    pub fn set_proxy_settings(
        &self,
        usage: i32,
        list: Option<&str>,
        bypass: Option<&str>,
    ) -> Result<()> {
        http_options::check_proxy(usage, list, bypass).map_err(Error::from)?;
        self.update(|rec| {
            state::modify(rec.state, "change")?;
            rec.proxy_usage = usage;
            rec.set_extras(|e| {
                e.proxy_list = list.map(Box::from);
                e.proxy_bypass = bypass.map(Box::from);
            });
            Ok(())
        })
    }

    /// SetCredentials (BASIC only; kept in memory, never stored).
    pub fn set_credentials(
        &self,
        target: i32,
        scheme: i32,
        user: &str,
        password: &str,
    ) -> Result<()> {
        let slot_index =
            http_options::check_target_and_scheme(target, scheme).map_err(Error::from)?;
        let value = http_options::basic(user, password).map_err(Error::from)?;
        self.check_open()?;
        let mut slot = self.cell.slot.lock();
        state::modify(slot.rec.state, "change")?;
        slot.credentials.set(slot_index, value);
        Ok(())
    }

    /// RemoveCredentials: S_FALSE when none were set for that target and scheme.
    pub fn remove_credentials(&self, target: i32, scheme: i32) -> Result<HResult> {
        let slot_index =
            http_options::check_target_and_scheme(target, scheme).map_err(Error::from)?;
        self.check_open()?;
        let mut slot = self.cell.slot.lock();
        state::modify(slot.rec.state, "change")?;
        Ok(if slot.credentials.take(slot_index).is_some() {
            hr::S_OK
        } else {
            hr::S_FALSE
        })
    }

    /// BITS_JOB_PROPERTY_DYNAMIC_CONTENT: the server need not send Content-Length or honour
    /// Range; an interruption restarts the file from 0. Only before the first resume.
    pub fn set_dynamic_content(&self, enable: bool) -> Result<()> {
        self.update(|rec| {
            state::modify(rec.state, "change")?;
            before_first_resume(rec)?;
            if enable && rec.files.iter().any(|f| f.extras().ranges.is_some()) {
                return Err((
                    hr::E_UNSUPPORTED_JOB_CONFIGURATION,
                    "a job with byte ranges cannot have dynamic content".into(),
                ));
            }
            rec.dynamic_content = enable;
            Ok(())
        })
    }

    /// BITS_JOB_PROPERTY_MAX_DOWNLOAD_SIZE (per file; 1..UINT64_MAX, UINT64_MAX being no limit, as
    /// the getter reports none). Only before the first resume.
    pub fn set_max_download_size(&self, bytes: u64) -> Result<()> {
        if bytes == 0 {
            return Err(Error::new(
                hr::E_MAX_DOWNLOAD_SIZE_INVALID_VALUE,
                "the maximum download size must be at least 1",
            ));
        }
        self.update(|rec| {
            state::modify(rec.state, "change")?;
            before_first_resume(rec)?;
            rec.max_download_size = NonMaxU64::new(bytes);
            Ok(())
        })
    }

    /// The job's own rate limit in bytes per second (0: none), beyond BITS: it bounds this job,
    /// foreground or not, beside the manager's limit for background jobs. A transfer in flight
    /// follows a change within a quarter of a second.
    pub fn set_max_bandwidth(&self, bytes_per_second: u64) -> Result<()> {
        self.check_open()?;
        let mut slot = self.cell.slot.lock();
        publish(&self.shared, &self.cell, &mut slot, Touch::Job, |rec| {
            state::modify(rec.state, "change").map_err(Error::from)?;
            rec.set_extras(|e| e.max_bandwidth = bytes_per_second);
            Ok(())
        })?;
        if let Some(r) = &slot.runner {
            r.bucket.set_rate(bytes_per_second);
        }
        Ok(())
    }

    /// BITS_JOB_PROPERTY_ID_COST_FLAGS: the network costs (BITS_COST_STATE_* bits, or a
    /// BITS_JOB_TRANSFER_POLICY_* value) this job may transfer on. A job whose policy excludes the
    /// current cost waits in TRANSIENT_ERROR with BITS_E_BLOCKED_BY_COST_TRANSFER_POLICY; the
    /// change takes effect at once, also on a transfer in flight.
    pub fn set_transfer_policy(&self, cost_flags: u32) -> Result<()> {
        if cost_flags & !job::TRANSFER_POLICY_MASK != 0 || cost_flags & 0xFF == 0 {
            return Err(Error::new(
                hr::E_INVALIDARG,
                format!(
                    "transfer policy {cost_flags:#010x}: use BITS_COST_STATE_* bits                      (0x01-0x80, at least one) and BITS_COST_OPTION_IGNORE_CONGESTION only"
                ),
            ));
        }
        let policy = (cost_flags != job::TRANSFER_POLICY_ALWAYS).then_some(cost_flags);
        self.change(|rec| rec.set_extras(|e| e.transfer_policy = policy))?;
        self.wake_scheduler();
        Ok(())
    }

    /// SetMaximumDownloadTime: seconds of CONNECTING + TRANSFERRING after which the job goes to
    /// ERROR with BITS_E_MAXDOWNLOAD_TIMEOUT (0: no limit). Counted from the last resume.
    pub fn set_maximum_download_time(&self, seconds: u32) -> Result<()> {
        self.change(|rec| rec.max_download_time_s = seconds)?;
        self.wake_scheduler();
        Ok(())
    }

    /// SetNotifyCmdLine: `program` (an absolute path; None removes the command line) runs when the
    /// job becomes TRANSFERRED or goes to ERROR and no callback is registered; `parameters`, if
    /// given, start with the program (argv[0]) and are split at spaces (double quotes group).
    pub fn set_notify_cmdline(
        &self,
        program: Option<&str>,
        parameters: Option<&str>,
    ) -> Result<()> {
        if let Some(p) = program {
            crate::queue::cmdline::check(p, parameters).map_err(Error::from)?;
        }
        self.update(|rec| {
            state::modify(rec.state, "change")?;
            rec.set_extras(|e| {
                e.notify_program = program.map(Box::from);
                e.notify_parameters = program.and(parameters).map(Box::from);
            });
            Ok(())
        })
    }

    /// TakeOwnership: a manager in service mode makes the job its owner's.
    pub fn take_ownership(&self) -> Result<()> {
        if !self.shared.config.service_mode {
            return Err(Error::new(
                hr::E_ACCESSDENIED,
                "taking ownership of a job needs service mode",
            ));
        }
        let owner = self.shared.owner.clone();
        self.update(|rec| {
            state::modify(rec.state, "take ownership of")?;
            rec.owner = owner;
            Ok(())
        })
    }

    pub fn resume(&self) -> Result<()> {
        self.update(|rec| {
            let next = state::resume(rec.state, rec.files.len(), rec.all_files_done())?;
            if next == JobState::Queued && !rec.state.is_active() {
                rec.error = None;
                rec.retry_at_ms = None;
                rec.no_progress_since_ms = None;
                // SetMaximumDownloadTime counts from the last resume.
                rec.active_ms = 0;
            }
            rec.state = next;
            rec.resumed_once = true;
            Ok(())
        })?;
        self.wake_scheduler();
        Ok(())
    }

    /// Suspend: the transfer stops at once; the bytes stay for a later resume.
    pub fn suspend(&self) -> Result<()> {
        self.update(|rec| {
            rec.state = state::suspend(rec.state)?;
            rec.retry_at_ms = None;
            Ok(())
        })?;
        JobCell::signal_stop(&self.cell.slot.lock());
        Ok(())
    }

    /// Complete: renames every fully transferred file onto its destination and deletes partial ones.
    /// Returns S_OK, or BITS_S_PARTIAL_COMPLETE when some files were incomplete. If a rename fails the
    /// job keeps its state and complete can be called again. A crash after the intent is recorded is
    /// finished by the next open (see `settle.rs`).
    pub fn complete(&self) -> Result<HResult> {
        settle::complete(&self.shared, &self.cell)
    }

    /// Cancel: deletes the temporary files; the job becomes CANCELLED. Returns S_OK, or
    /// BITS_S_UNABLE_TO_DELETE_FILES when some temporary file could not be removed.
    pub fn cancel(&self) -> Result<HResult> {
        settle::cancel(&self.shared, &self.cell)
    }

    /// Blocks until the job is TRANSFERRED, ERROR, ACKNOWLEDGED or CANCELLED, or `timeout` passes
    /// (None: no limit).
    pub fn wait(&self, timeout: Option<Duration>) -> Result<JobState> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut slot = self.cell.slot.lock();
        loop {
            self.check_open()?;
            if slot.rec.state.ends_wait() {
                return Ok(slot.rec.state);
            }
            match deadline {
                None => self.cell.changed.wait(&mut slot),
                Some(d) => {
                    if self.cell.changed.wait_until(&mut slot, d).timed_out()
                        && !slot.rec.state.ends_wait()
                    {
                        self.check_open()?;
                        return Err(Error::new(
                            hr::E_TIMEOUT,
                            format!(
                                "the job is still {} after the timeout",
                                slot.rec.state.name()
                            ),
                        ));
                    }
                }
            }
        }
    }

    pub fn set_minimum_retry_delay(&self, seconds: u32) -> Result<()> {
        self.update(|rec| {
            state::modify(rec.state, "change")?;
            rec.minimum_retry_delay_s = seconds;
            // A shorter delay takes effect for a job already waiting to retry.
            if let Some(at) = rec.retry_at_ms {
                rec.retry_at_ms = NonMaxU64::new(at.get().min(now_ms() + seconds as u64 * 1000));
            }
            Ok(())
        })?;
        self.wake_scheduler();
        Ok(())
    }

    pub fn set_no_progress_timeout(&self, seconds: u32) -> Result<()> {
        self.change(|rec| rec.no_progress_timeout_s = seconds)?;
        self.wake_scheduler();
        Ok(())
    }
}
