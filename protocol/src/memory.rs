//! A complete BITS upload server in memory, built only from [`crate::server`]'s rules.
//!
//! It is the reference the client state machine is tested against (no sockets), and a test
//! double for engines: faults are injected by editing its public fields between requests.

use crate::error::{application_status_is_transient, ErrorContext, Hresult};
use crate::headers::PacketType;
use crate::server::{self, FragmentPlan, HostId, Progress, Reply};
use http::HeaderMap;
use std::collections::HashMap;

/// What the server application answers in upload-reply mode: `Ok(reply)` or `Err(status)`.
pub type Application = fn(&[u8]) -> Result<Vec<u8>, u16>;

#[derive(Clone, Debug, Default)]
pub struct MemorySession {
    pub path: String,
    pub data: Vec<u8>,
    pub total: Option<u64>,
    /// Set once the application answered: the reply URL (NotifyCache, [MC-BUP] §3.2.5.1.2).
    pub reply_url: Option<String>,
}

#[derive(Default)]
pub struct MemoryServer {
    pub sessions: HashMap<String, MemorySession>,
    /// Files placed by Close-Session, by URL path.
    pub files: HashMap<String, Vec<u8>>,
    /// Replies by URL path.
    pub replies: HashMap<String, Vec<u8>>,
    pub max_size: Option<u64>,
    pub allow_overwrites: bool,
    pub host_id: Option<HostId>,
    pub application: Option<Application>,
    /// Every request seen, for assertions.
    pub log: Vec<PacketType>,
    next_id: u64,
}

impl MemoryServer {
    pub fn new() -> MemoryServer {
        MemoryServer::default()
    }

    /// Handles one BITS request for `path` with `body` (the whole body of a Fragment).
    pub fn handle(&mut self, method: &str, path: &str, headers: &HeaderMap, body: &[u8]) -> Reply {
        if !server::is_bits_request(method, headers) {
            return Reply::error(405, Hresult::E_INVALIDARG, ErrorContext::REMOTE_FILE);
        }
        let req = match server::parse_request(headers) {
            Ok(r) => r,
            Err(reply) => return reply,
        };
        self.log.push(req.packet);
        if req.content_length != body.len() as u64 {
            return Reply::invalid();
        }
        match req.packet {
            PacketType::Ping => server::ack_session(None),
            PacketType::CreateSession => {
                let protocol = match server::negotiate(headers) {
                    Ok(p) => p,
                    Err(reply) => return reply,
                };
                if !self.allow_overwrites && self.files.contains_key(path) {
                    return Reply::error(409, Hresult::E_ACCESSDENIED, ErrorContext::REMOTE_FILE);
                }
                self.next_id += 1;
                let id = format!("{{00000000-0000-4000-8000-{:012x}}}", self.next_id);
                self.sessions.insert(
                    id.clone(),
                    MemorySession {
                        path: path.to_owned(),
                        ..Default::default()
                    },
                );
                server::ack_create(&id, protocol, self.host_id.as_ref())
            }
            PacketType::Fragment => self.fragment(&req, body),
            PacketType::CloseSession => {
                let Some(id) = req.session_id.as_deref() else {
                    return Reply::invalid();
                };
                let Some(s) = self.sessions.remove(id) else {
                    return Reply::session_not_found();
                };
                // Closing before the last byte deletes the upload ([MC-BUP] §2.2.8); a session
                // that never got a fragment is a zero-byte file.
                let complete = s
                    .total
                    .map_or(s.data.is_empty(), |t| s.data.len() as u64 == t);
                if complete && s.reply_url.is_none() {
                    self.files.insert(s.path, s.data);
                }
                server::ack_session(Some(id))
            }
            PacketType::CancelSession => {
                let Some(id) = req.session_id.as_deref() else {
                    return Reply::invalid();
                };
                if self.sessions.remove(id).is_none() {
                    return Reply::session_not_found();
                }
                server::ack_session(Some(id))
            }
            PacketType::Ack => Reply::invalid(),
        }
    }

    fn fragment(&mut self, req: &server::Request, body: &[u8]) -> Reply {
        let (Some(id), Some(range)) = (req.session_id.as_deref(), req.range) else {
            return Reply::invalid();
        };
        let max_size = self.max_size;
        let app = self.application;
        let Some(s) = self.sessions.get_mut(id) else {
            return Reply::session_not_found();
        };
        let progress = Progress {
            total: s.total,
            received: s.data.len() as u64,
        };
        match server::plan_fragment(range, progress, max_size) {
            Err(reply) => reply,
            Ok(FragmentPlan::Duplicate) => {
                server::ack_fragment(id, progress.received, s.reply_url.as_deref())
            }
            Ok(FragmentPlan::Write {
                discard,
                len,
                total,
                ..
            }) => {
                let (d, l) = (discard as usize, len as usize);
                s.data.extend_from_slice(&body[d..d + l]);
                s.total = Some(total);
                let received = s.data.len() as u64;
                if received == total {
                    if let Some(app) = app {
                        match app(&s.data) {
                            Ok(reply) => {
                                let url = format!(r"BITS-Sessions\Replies\{id}\responsefile.bin");
                                self.replies.insert(
                                    format!("BITS-Sessions/Replies/{id}/responsefile.bin"),
                                    reply,
                                );
                                s.reply_url = Some(url);
                            }
                            Err(status) => {
                                // The bytes stay; a resent last fragment notifies again.
                                s.data.truncate(s.data.len() - l);
                                let code = Hresult::http(status);
                                let status = if (400..600).contains(&status) {
                                    status
                                } else if application_status_is_transient(status) {
                                    503
                                } else {
                                    400
                                };
                                return Reply::error(
                                    status,
                                    code,
                                    ErrorContext::REMOTE_APPLICATION,
                                )
                                .with_received(s.data.len() as u64);
                            }
                        }
                    }
                }
                server::ack_fragment(id, received, s.reply_url.as_deref())
            }
        }
    }
}
