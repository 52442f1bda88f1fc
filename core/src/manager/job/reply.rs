//! IBackgroundCopyJob2's reply calls: the reply of an upload-reply job, its progress, its data,
//! and where `complete` puts it.

use super::Job;
use crate::error::{Error, Result};
use crate::hresult as hr;
use crate::job::{self, JobRecord, ReplyProgress};
use crate::manager::validate::validate_local;
use crate::state::{self, JobState, JobType};
use std::path::PathBuf;

/// BITS answers E_NOTIMPL when a reply call is made on another job type.
fn reply_job(rec: &JobRecord) -> Result<()> {
    if rec.job_type == JobType::UploadReply {
        Ok(())
    } else {
        Err(Error::new(
            hr::E_NOTIMPL,
            "only upload-reply jobs have a reply",
        ))
    }
}

impl Job {
    /// GetReplyProgress: the reply's size (SIZE_UNKNOWN until the server's answer says) and the
    /// bytes of it received.
    pub fn reply_progress(&self) -> Result<ReplyProgress> {
        self.check_open()?;
        let slot = self.cell.slot.lock();
        reply_job(&slot.rec)?;
        let reply = slot
            .rec
            .files
            .first()
            .and_then(|f| f.extras().reply.as_ref());
        Ok(ReplyProgress {
            bytes_total: reply.and_then(|r| r.total).unwrap_or(job::SIZE_UNKNOWN),
            bytes_transferred: reply.map_or(0, |r| r.received),
        })
    }

    /// GetReplyData: the whole reply, once the job is TRANSFERRED (or ACKNOWLEDGED: then from
    /// the reply file). A reply over 1 MiB gives BITS_E_TOO_LARGE; read its file instead.
    pub fn reply_data(&self) -> Result<Vec<u8>> {
        self.check_open()?;
        let path = {
            let slot = self.cell.slot.lock();
            let rec = &slot.rec;
            reply_job(rec)?;
            if !matches!(rec.state, JobState::Transferred | JobState::Acknowledged) {
                return Err(Error::new(
                    hr::E_INVALID_STATE,
                    format!(
                        "the reply is available once the job is TRANSFERRED (it is {})",
                        rec.state.name()
                    ),
                ));
            }
            let f = rec.files.first();
            match f.and_then(|f| f.temp_path.as_deref().filter(|_| !f.committed)) {
                Some(temp) => PathBuf::from(temp),
                None => rec
                    .reply_path()
                    .ok_or_else(|| Error::new(hr::E_INVALID_STATE, "the job has no reply"))?,
            }
        };
        let size = std::fs::metadata(&path)
            .map_err(|e| Error::io("cannot read the reply", &path, &e))?
            .len();
        if size > job::MAX_REPLY_DATA {
            return Err(Error::new(
                hr::E_TOO_LARGE,
                format!(
                    "the reply has {size} bytes, more than the {} GetReplyData hands over; read {}",
                    job::MAX_REPLY_DATA,
                    path.display()
                ),
            ));
        }
        std::fs::read(&path).map_err(|e| Error::io("cannot read the reply", &path, &e))
    }

    /// SetReplyFileName: where `complete` puts the reply (an absolute path whose folder exists;
    /// None: the default beside the uploaded file). Refused once the reply is being fetched: its
    /// temporary file already lives in the old name's folder.
    pub fn set_reply_file_name(&self, path: Option<&str>) -> Result<()> {
        if let Some(p) = path {
            validate_local(p)?;
        }
        self.update(|rec| {
            reply_job(rec).map_err(|e| (e.code, e.message))?;
            state::modify(rec.state, "change")?;
            if rec
                .files
                .first()
                .is_some_and(|f| f.extras().reply.is_some())
            {
                return Err((
                    hr::E_INVALID_STATE,
                    "the reply is already being fetched; set its file name before resume".into(),
                ));
            }
            rec.set_extras(|e| e.reply_file_name = path.map(Box::from));
            Ok(())
        })
    }

    /// GetReplyFileName: the name set, else the default once the job has its file (None before).
    pub fn reply_file_name(&self) -> Result<Option<String>> {
        self.check_open()?;
        let slot = self.cell.slot.lock();
        reply_job(&slot.rec)?;
        Ok(slot
            .rec
            .reply_path()
            .map(|p| p.to_string_lossy().into_owned()))
    }
}
