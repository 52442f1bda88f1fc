//! Upload-reply: telling the server application about a finished upload ([MC-BUP] §3.3,
//! "Notification Protocol for Server Applications") and storing its answer as the reply.

use crate::body::{self, Body};
use crate::config::NotifyType;
use crate::service::App;
use crate::store::{ByteStream, Error, SessionMeta, Store, Version};
use futures_util::{StreamExt, TryStreamExt};
use http_body_util::BodyStream;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use openbits_protocol::error::application_status_is_transient;
use openbits_protocol::headers as h;
use openbits_protocol::server::Reply;
use openbits_protocol::{ErrorContext, Hresult};
use std::sync::Arc;
use std::time::Duration;

const E_FAIL: Hresult = Hresult(0x8000_4005);

pub struct Notifier {
    client: Client<HttpConnector, Body>,
    timeout: Duration,
}

impl Notifier {
    pub fn new(timeout: Duration) -> Notifier {
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        Notifier { client, timeout }
    }
}

/// The application URL for an upload: the configured URL resolved against the upload URL, with
/// the upload URL's query string appended (as IIS does).
pub fn target(notify_url: &str, upload_url: &str) -> Option<url::Url> {
    let base = url::Url::parse(upload_url).ok()?;
    let mut t = base.join(notify_url).ok()?;
    if t.scheme() != "http" {
        return None;
    }
    if let Some(q) = base.query().filter(|q| !q.is_empty()) {
        let joined = match t.query() {
            Some(tq) if !tq.is_empty() => format!("{tq}&{q}"),
            _ => q.to_owned(),
        };
        t.set_query(Some(&joined));
    }
    Some(t)
}

fn app_error(status: u16) -> Reply {
    // The client classifies by status under context 0x7; keep the status class the
    // application chose, inside what a BITS Ack may carry.
    let sent = if (400..600).contains(&status) {
        status
    } else if application_status_is_transient(status) {
        503
    } else {
        400
    };
    Reply::error(
        sent,
        Hresult::http(status),
        ErrorContext::REMOTE_APPLICATION,
    )
}

/// Notifies the application and records its reply; the error is the Ack to send instead.
pub async fn notify(
    app: &Arc<App>,
    mut meta: SessionMeta,
    version: Version,
) -> Result<SessionMeta, Reply> {
    let cfg = &app.cfg;
    let Some(url) = cfg.notify_url.as_deref().and_then(|u| target(u, &meta.url)) else {
        return Err(Reply::error(500, E_FAIL, ErrorContext::REMOTE_APPLICATION));
    };
    let mut req = hyper::Request::post(url.as_str())
        .header(h::ORIGINAL_REQUEST_URL, meta.url.as_str())
        .header("user-agent", "BITSExts 1.5");
    let body = match (cfg.notify_type, &app.store) {
        (NotifyType::ByRef, Store::Fs(fs)) => {
            let (Ok(request), Ok(response)) =
                (fs.request_file(&meta.id), fs.response_file(&meta.id))
            else {
                return Err(Reply::session_not_found());
            };
            req = req
                .header(h::REQUEST_DATAFILE_NAME, request.to_string_lossy().as_ref())
                .header(
                    h::RESPONSE_DATAFILE_NAME,
                    response.to_string_lossy().as_ref(),
                )
                .header("content-length", "0");
            body::empty()
        }
        (NotifyType::ByValue, store) => {
            let s = store
                .upload_stream(&meta)
                .await
                .map_err(|_| Reply::error(500, E_FAIL, ErrorContext::REMOTE_FILE))?;
            req = req.header("content-length", meta.total.unwrap_or(0).to_string());
            body::stream(s)
        }
        _ => return Err(Reply::error(500, E_FAIL, ErrorContext::REMOTE_APPLICATION)),
    };
    let req = req
        .body(body)
        .map_err(|_| Reply::error(500, E_FAIL, ErrorContext::REMOTE_APPLICATION))?;
    let id = meta.id.clone();
    let exchange = async {
        let resp = app
            .notifier
            .client
            .request(req)
            .await
            .map_err(|_| Reply::error(503, E_FAIL, ErrorContext::REMOTE_APPLICATION))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(app_error(status));
        }
        let static_url = resp
            .headers()
            .get(h::STATIC_RESPONSE_URL)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let copy = resp.headers().contains_key(h::COPY_FILE_TO_DESTINATION);
        let reply_url = match static_url {
            Some(u)
                if u.len() <= openbits_protocol::client::MAX_REPLY_URL
                    && url::Url::parse(&u).is_ok() =>
            {
                u
            }
            Some(_) => {
                return Err(Reply::error(
                    500,
                    Hresult::E_INVALIDARG,
                    ErrorContext::REMOTE_APPLICATION,
                ))
            }
            None => {
                let stored: ByteStream = match cfg.notify_type {
                    NotifyType::ByValue => BodyStream::new(resp.into_body())
                        .try_filter_map(|f| async move { Ok(f.into_data().ok()) })
                        .map_err(|e| Error::Client(format!("application response: {e}")))
                        .boxed(),
                    // By reference the application wrote the reply file itself; an
                    // application that wrote nothing replied with nothing.
                    _ => futures_util::stream::empty().boxed(),
                };
                let by_ref_written = cfg.notify_type == NotifyType::ByRef
                    && matches!(app.store.reply_info(&id).await, Ok(Some(_)));
                if by_ref_written {
                    if let Store::Fs(fs) = &app.store {
                        fs.sync_reply(&id)
                            .await
                            .map_err(|_| Reply::error(500, E_FAIL, ErrorContext::REMOTE_FILE))?;
                    }
                } else {
                    app.store
                        .put_reply(&id, stored)
                        .await
                        .map_err(|_| Reply::error(500, E_FAIL, ErrorContext::REMOTE_APPLICATION))?;
                }
                format!(r"BITS-Sessions\Replies\{id}\responsefile.bin")
            }
        };
        Ok((reply_url, copy))
    };
    let (reply_url, copy) = match tokio::time::timeout(app.notifier.timeout, exchange).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(Reply::error(
                504,
                Hresult::E_TIMEOUT,
                ErrorContext::REMOTE_APPLICATION,
            ))
        }
    };
    meta.reply_url = Some(reply_url);
    meta.copy_to_destination = copy;
    match app.store.save(&meta, &version).await {
        Ok(_) => Ok(meta),
        // Another node answered the same last fragment first: its reply stands.
        Err(Error::Conflict) => match app.store.load(&meta.id).await {
            Ok(Some((m, _))) if m.reply_url.is_some() => Ok(m),
            _ => Err(Reply::error(503, E_FAIL, ErrorContext::REMOTE_FILE)),
        },
        Err(Error::NotFound) => Err(Reply::session_not_found()),
        Err(_) => Err(Reply::error(500, E_FAIL, ErrorContext::REMOTE_FILE)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_urls_resolve_and_carry_the_query() {
        assert_eq!(
            target("http://app:9/n", "http://h/up/f.bin?x=1")
                .unwrap()
                .as_str(),
            "http://app:9/n?x=1"
        );
        assert_eq!(
            target("/app/n?a=b", "http://h/up/f.bin?x=1")
                .unwrap()
                .as_str(),
            "http://h/app/n?a=b&x=1"
        );
        assert_eq!(
            target("n", "http://h/up/f.bin").unwrap().as_str(),
            "http://h/up/n"
        );
        assert!(target("https://app/n", "http://h/up/f.bin").is_none());
    }
}
