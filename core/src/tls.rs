//! A job's TLS settings (IBackgroundCopyJobHttpOptions's client certificate and security flags,
//! HttpOptions3's server certificate callback, and openbits' own trusted roots and CRL file), the
//! rustls client configuration built from them, and what a certificate failure means in BITS's
//! codes.
//!
//! The library's own checks always run first (rustls's WebPkiServerVerifier: chain to a trusted
//! root, validity dates, host name, key usage, and revocation against the job's CRL file). A
//! BG_SSL_IGNORE_* flag lets the matching failure through only to the application's callback,
//! never to the transfer on its own: openbits does not weaken verification unless the application
//! checks the certificate itself.

use crate::hresult::{self as hr, HResult};
use crate::state::ErrorContext;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::SystemTime;

/// BG_SSL_* security flags.
pub const SSL_ENABLE_CRL_CHECK: u32 = 0x01;
pub const SSL_IGNORE_CERT_CN_INVALID: u32 = 0x02;
pub const SSL_IGNORE_CERT_DATE_INVALID: u32 = 0x04;
pub const SSL_IGNORE_UNKNOWN_CA: u32 = 0x08;
pub const SSL_IGNORE_CERT_WRONG_USAGE: u32 = 0x10;
pub const SSL_IGNORE_MASK: u32 = 0x1E;
pub const SSL_MASK: u32 = 0x1F;

/// What the application's callback is shown for one server certificate.
pub struct CertificateCheck<'a> {
    /// The name (or IP address) the connection was made to.
    pub host: &'a str,
    /// The chain the server sent, DER, the server's own certificate first.
    pub chain: &'a [&'a [u8]],
    /// BITS_S_OK, or the failure (one a BG_SSL_IGNORE_* flag lets through) the library found.
    pub library_result: HResult,
}

/// An application's check of server certificates (IBackgroundCopyServerCertificateValidationCallback):
/// BITS_S_OK accepts, any other value refuses.
pub type CheckFn = dyn Fn(&CertificateCheck<'_>) -> HResult + Send + Sync;

/// A registered check, with an identity so pools can be keyed by it.
pub struct ServerCertificateCallback {
    id: u64,
    check: Box<CheckFn>,
}

impl ServerCertificateCallback {
    pub fn new(check: Box<CheckFn>) -> Arc<ServerCertificateCallback> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Arc::new(ServerCertificateCallback {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            check,
        })
    }

    /// Runs the check; a panic in it counts as a refusal, so none reaches the TLS stack.
    fn run(&self, c: &CertificateCheck<'_>) -> HResult {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (self.check)(c)))
            .unwrap_or(hr::E_UNEXPECTED)
    }
}

impl std::fmt::Debug for ServerCertificateCallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerCertificateCallback({})", self.id)
    }
}

/// A job's TLS settings, as a transfer reads them.
#[derive(Clone, Debug, Default)]
pub struct TlsSettings {
    /// A PEM file of root certificates the job trusts instead of the platform's.
    pub trusted_roots: Option<Box<str>>,
    /// PEM files of the client certificate chain and its private key.
    pub client_certificate: Option<(Box<str>, Box<str>)>,
    /// A PEM file of certificate revocation lists.
    pub crl_file: Option<Box<str>>,
    /// The BG_SSL_* bits of the job's security flags.
    pub ssl_flags: u32,
    /// The job had a callback (persisted): until one is set again, HTTPS fails with
    /// BG_E_SERVER_CERT_VALIDATION_INTERFACE_REQUIRED.
    pub callback_required: bool,
    pub callback: Option<Arc<ServerCertificateCallback>>,
}

/// What identifies a TLS configuration: jobs with equal keys share a connection pool. Files are
/// named with their modification time, so a renewed certificate or CRL gets a new configuration.
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq)]
pub struct TlsKey {
    files: [Option<(Box<str>, Option<SystemTime>)>; 4],
    ssl_flags: u32,
    callback_required: bool,
    callback: Option<u64>,
}

fn stamped(path: &Option<Box<str>>) -> Option<(Box<str>, Option<SystemTime>)> {
    path.as_ref().map(|p| {
        let modified = std::fs::metadata(&**p).and_then(|m| m.modified()).ok();
        (p.clone(), modified)
    })
}

type Refusal = (HResult, String);

fn read_failure(what: &str, path: &str, e: &dyn std::fmt::Display) -> Refusal {
    (hr::E_INVALIDARG, format!("{what} {path}: {e}"))
}

fn io_refusal(what: &str, path: &str, e: std::io::Error) -> Refusal {
    (
        hr::from_io(&e),
        format!("cannot read the {what} {path}: {e}"),
    )
}

/// Reads the items of one kind (`T`) from a PEM file: at least one, or a refusal naming `what`.
fn load_pem<T: PemObject>(what: &str, path: &str, kind: &str) -> Result<Vec<T>, Refusal> {
    let bytes = std::fs::read(path).map_err(|e| io_refusal(what, path, e))?;
    let items = T::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_failure(what, path, &e))?;
    if items.is_empty() {
        return Err((
            hr::E_INVALIDARG,
            format!("the {what} {path} holds no PEM {kind}"),
        ));
    }
    Ok(items)
}

/// Reads the certificates of a PEM file (at least one).
pub fn load_certificates(what: &str, path: &str) -> Result<Vec<CertificateDer<'static>>, Refusal> {
    load_pem(what, path, "certificate")
}

fn load_key(path: &str) -> Result<PrivateKeyDer<'static>, Refusal> {
    let bytes = std::fs::read(path).map_err(|e| io_refusal("private key", path, e))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| read_failure("private key", path, &e))
}

/// Reads the CRLs of a PEM file (at least one).
pub fn load_crls(path: &str) -> Result<Vec<CertificateRevocationListDer<'static>>, Refusal> {
    load_pem("revocation list file", path, "X509 CRL")
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The platform's root certificates, loaded once per process. If none can be loaded the store is
/// empty and HTTPS fails with a certificate error, while HTTP keeps working.
pub fn platform_roots() -> Arc<rustls::RootCertStore> {
    static ROOTS: std::sync::OnceLock<Arc<rustls::RootCertStore>> = std::sync::OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            Arc::new(roots)
        })
        .clone()
}

fn builder() -> rustls::ConfigBuilder<rustls::ClientConfig, rustls::WantsVerifier> {
    match rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
    {
        Ok(b) => b,
        // ring supports the default versions; this arm exists so no panic is possible.
        Err(_) => rustls::ClientConfig::builder(),
    }
}

/// The configuration of jobs with default settings: the platform's roots, no client certificate.
pub fn default_client_config() -> rustls::ClientConfig {
    builder()
        .with_root_certificates(platform_roots())
        .with_no_client_auth()
}

/// Checks a client certificate and key pair (the key matches the certificate, rustls can sign
/// with it).
pub fn check_client_certificate(cert: &str, key: &str) -> Result<(), Refusal> {
    let chain = load_certificates("client certificate", cert)?;
    let key = load_key(key)?;
    builder()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_client_auth_cert(chain, key)
        .map(|_| ())
        .map_err(|e| {
            (
                hr::E_INVALIDARG,
                format!("the client certificate {cert} cannot be used with its key: {e}"),
            )
        })
}

/// Checks a trusted-roots file: PEM certificates that rustls accepts as trust anchors.
pub fn check_trusted_roots(path: &str) -> Result<(), Refusal> {
    roots_from(path).map(|_| ())
}

fn roots_from(path: &str) -> Result<rustls::RootCertStore, Refusal> {
    let mut roots = rustls::RootCertStore::empty();
    let (added, ignored) =
        roots.add_parsable_certificates(load_certificates("trusted roots file", path)?);
    if added == 0 || ignored > 0 {
        return Err((
            hr::E_INVALIDARG,
            format!("the trusted roots file {path} holds {ignored} certificate(s) that cannot be trust anchors"),
        ));
    }
    Ok(roots)
}

impl TlsSettings {
    /// True when the job uses the shared default configuration.
    pub fn is_default(&self) -> bool {
        self.trusted_roots.is_none()
            && self.client_certificate.is_none()
            && self.crl_file.is_none()
            && self.ssl_flags == 0
            && !self.callback_required
            && self.callback.is_none()
    }

    pub fn key(&self) -> TlsKey {
        let (cert, key) = match &self.client_certificate {
            Some((c, k)) => (Some(c.clone()), Some(k.clone())),
            None => (None, None),
        };
        TlsKey {
            files: [
                stamped(&self.trusted_roots),
                stamped(&cert),
                stamped(&key),
                stamped(&self.crl_file),
            ],
            ssl_flags: self.ssl_flags,
            callback_required: self.callback_required,
            callback: self.callback.as_ref().map(|c| c.id),
        }
    }

    /// The rustls configuration for these settings. The files are read now: a failure is the
    /// job's (fatal) error.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, Refusal> {
        if self.is_default() {
            return Ok(default_client_config());
        }
        let roots = match &self.trusted_roots {
            Some(path) => Arc::new(roots_from(path)?),
            None => platform_roots(),
        };
        let mut webpki = WebPkiServerVerifier::builder_with_provider(roots, provider());
        if let Some(path) = &self.crl_file {
            webpki = webpki.with_crls(load_crls(path)?);
            // Without BG_SSL_ENABLE_CRL_CHECK the file is applied where it speaks; with it, a
            // certificate whose issuer has no list in the file is refused too.
            if self.ssl_flags & SSL_ENABLE_CRL_CHECK == 0 {
                webpki = webpki.allow_unknown_revocation_status();
            }
        }
        let inner = webpki.build().map_err(|e| {
            (
                hr::E_INVALIDARG,
                format!("the job's TLS settings cannot be used: {e}"),
            )
        })?;
        let verifier = Arc::new(JobVerifier {
            inner,
            ignore: self.ssl_flags & SSL_IGNORE_MASK,
            callback_required: self.callback_required,
            callback: self.callback.as_ref().map(Arc::downgrade),
        });
        let b = builder()
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        match &self.client_certificate {
            None => Ok(b.with_no_client_auth()),
            Some((cert, key)) => b
                .with_client_auth_cert(
                    load_certificates("client certificate", cert)?,
                    load_key(key)?,
                )
                .map_err(|e| {
                    (
                        hr::E_INVALIDARG,
                        format!("the client certificate {cert} cannot be used with its key: {e}"),
                    )
                }),
        }
    }
}

/// The application's callback refused the certificate.
#[derive(Debug)]
struct CallbackRefused {
    code: HResult,
    host: String,
}

impl std::fmt::Display for CallbackRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the application's server certificate callback refused the certificate of {} (0x{:08X})",
            self.host,
            self.code.as_u32()
        )
    }
}

impl std::error::Error for CallbackRefused {}

/// A check the application must make, with no callback registered to make it.
#[derive(Debug)]
struct CallbackRequired(&'static str);

impl std::fmt::Display for CallbackRequired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for CallbackRequired {}

/// The library's checks, then the flags and the application's callback.
#[derive(Debug)]
struct JobVerifier {
    inner: Arc<WebPkiServerVerifier>,
    ignore: u32,
    callback_required: bool,
    /// Weak: a pool keeps its verifier, and the job's registration (with the application's
    /// data) must go when the job drops it, not when the pool does.
    callback: Option<Weak<ServerCertificateCallback>>,
}

fn other(e: impl std::error::Error + Send + Sync + 'static) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(e))))
}

impl ServerCertVerifier for JobVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let library_result = match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(_) => hr::S_OK,
            Err(e) => match certificate_failure(&e) {
                Some((code, _, flag)) if flag & self.ignore != 0 => code,
                _ => return Err(e),
            },
        };
        let callback = self.callback.as_ref().map(Weak::upgrade);
        let Some(Some(callback)) = callback else {
            if callback.is_some() || self.callback_required {
                return Err(other(CallbackRequired(
                    "the job needs a server certificate callback: set it again (it is not kept across a restart)",
                )));
            }
            if library_result != hr::S_OK {
                return Err(other(CallbackRequired(
                    "a BG_SSL_IGNORE_* flag lets a certificate failure through only to a server certificate callback, and the job has none",
                )));
            }
            return Ok(ServerCertVerified::assertion());
        };
        let chain: Vec<&[u8]> = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.as_ref())
            .collect();
        let host = server_name.to_str();
        let code = callback.run(&CertificateCheck {
            host: &host,
            chain: &chain,
            library_result,
        });
        if code == hr::S_OK {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(other(CallbackRefused {
                code: if code.0 < 0 { code } else { hr::E_FAIL },
                host: host.into_owned(),
            }))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A certificate failure of the library's checks: BITS's code, the sentence that says which
/// check failed, and the BG_SSL_IGNORE_* flag that covers it (0: none does).
fn certificate_failure(e: &rustls::Error) -> Option<(HResult, &'static str, u32)> {
    use crate::hresult::win32::*;
    use CertificateError::*;
    let rustls::Error::InvalidCertificate(c) = e else {
        return None;
    };
    let (code, sentence, flag) = match c {
        UnknownIssuer => (
            ERROR_INTERNET_INVALID_CA,
            "the server's certificate is not issued by a trusted root",
            SSL_IGNORE_UNKNOWN_CA,
        ),
        NotValidForName | NotValidForNameContext { .. } => (
            ERROR_INTERNET_SEC_CERT_CN_INVALID,
            "the server's certificate is for another host name",
            SSL_IGNORE_CERT_CN_INVALID,
        ),
        Expired | ExpiredContext { .. } => (
            ERROR_INTERNET_SEC_CERT_DATE_INVALID,
            "a certificate of the server's chain has expired",
            SSL_IGNORE_CERT_DATE_INVALID,
        ),
        NotValidYet | NotValidYetContext { .. } => (
            ERROR_INTERNET_SEC_CERT_DATE_INVALID,
            "a certificate of the server's chain is not valid yet",
            SSL_IGNORE_CERT_DATE_INVALID,
        ),
        InvalidPurpose | InvalidPurposeContext { .. } => (
            ERROR_WINHTTP_SECURE_CERT_WRONG_USAGE,
            "the server's certificate is not for server authentication",
            SSL_IGNORE_CERT_WRONG_USAGE,
        ),
        Revoked => (
            ERROR_INTERNET_SEC_CERT_REVOKED,
            "a certificate of the server's chain is revoked",
            0,
        ),
        UnknownRevocationStatus | ExpiredRevocationList | ExpiredRevocationListContext { .. } => (
            ERROR_INTERNET_SEC_CERT_REV_FAILED,
            "the revocation of a certificate of the server's chain cannot be checked (BG_SSL_ENABLE_CRL_CHECK needs a list from every issuer)",
            0,
        ),
        Other(_) => return None,
        _ => (
            ERROR_INTERNET_SEC_INVALID_CERT,
            "the server's certificate is invalid",
            0,
        ),
    };
    Some((HResult::from_win32(code), sentence, flag))
}

/// How a TLS failure ends a transfer: context, code, sentence, and whether it is transient.
pub fn classify(e: &rustls::Error) -> (ErrorContext, HResult, String, bool) {
    if let rustls::Error::InvalidCertificate(CertificateError::Other(o)) = e {
        // As BITS: a refusal or a missing callback is a TRANSIENT_ERROR in the callback's
        // context; the application fixes it and resumes.
        if let Some(r) = o.0.downcast_ref::<CallbackRefused>() {
            return (
                ErrorContext::ServerCertificateCallback,
                r.code,
                r.to_string(),
                true,
            );
        }
        if let Some(r) = o.0.downcast_ref::<CallbackRequired>() {
            return (
                ErrorContext::ServerCertificateCallback,
                hr::E_SERVER_CERT_VALIDATION_INTERFACE_REQUIRED,
                r.to_string(),
                true,
            );
        }
    }
    if let Some((code, sentence, _)) = certificate_failure(e) {
        return (
            ErrorContext::GeneralTransport,
            code,
            format!("TLS error: {sentence} ({e})"),
            false,
        );
    }
    (
        ErrorContext::GeneralTransport,
        HResult::from_win32(hr::win32::ERROR_INTERNET_SECURE_FAILURE),
        format!("TLS error: {e}"),
        false,
    )
}
