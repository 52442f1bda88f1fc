//! The checks of the API's arguments: URLs, local names, byte ranges, character limits, and the
//! "only before the first resume" rule. Pure, except that local names are checked against the file
//! system (the folder must exist and be writable).

use crate::error::{Error, Result};
use crate::hresult::{self as hr, HResult};
use crate::job::{self, FileRange, JobRecord};
use crate::localfile::Destination;
use crate::state::Refusal;
use std::path::{Component, Path, PathBuf};

pub(super) fn check_ranges(ranges: &[FileRange]) -> Result<()> {
    let invalid = |why: String| Err(Error::new(hr::E_INVALID_RANGE, why));
    if ranges.is_empty() {
        return Err(Error::new(hr::E_INVALIDARG, "at least one range is needed"));
    }
    for (i, r) in ranges.iter().enumerate() {
        if r.offset == job::LENGTH_TO_EOF {
            return invalid(format!("range {i} starts at BITS_LENGTH_TO_EOF"));
        }
        if r.length == 0 {
            return invalid(format!("range {i} is empty"));
        }
        if r.length == job::LENGTH_TO_EOF && i + 1 != ranges.len() {
            return invalid(format!(
                "range {i}: only the last range may run to the end of the file"
            ));
        }
        if r.length != job::LENGTH_TO_EOF && r.offset.checked_add(r.length).is_none() {
            return invalid(format!("range {i} runs past the largest offset"));
        }
    }
    let mut sorted: Vec<&FileRange> = ranges.iter().collect();
    sorted.sort_by_key(|r| r.offset);
    for pair in sorted.windows(2) {
        let end = pair[0].offset.saturating_add(pair[0].length);
        if pair[0].length == job::LENGTH_TO_EOF || end > pair[1].offset {
            return Err(Error::new(
                hr::E_OVERLAPPING_RANGES,
                format!(
                    "the ranges at {} and {} overlap",
                    pair[0].offset, pair[1].offset
                ),
            ));
        }
    }
    Ok(())
}

/// A string limited to `limit` characters (BITS counts characters, not bytes).
pub(super) fn check_chars(what: &str, text: &str, limit: usize) -> Result<()> {
    let chars = text.chars().count();
    if chars > limit {
        return Err(Error::new(
            hr::E_INVALIDARG,
            format!("{what} has {chars} characters; the limit is {limit}"),
        ));
    }
    Ok(())
}

/// BITS's "only before the first resume" properties.
pub(super) fn before_first_resume(rec: &JobRecord) -> std::result::Result<(), Refusal> {
    if rec.resumed_once {
        return Err((
            hr::E_READ_ONLY_PROPERTY_AFTER_RESUME,
            "this property can be set only before the job is first resumed".into(),
        ));
    }
    Ok(())
}

/// Two local names are the same destination if they name the same entry of the same folder (see
/// `Destination`).
#[cfg(test)]
fn same_destination(a: &Path, b: &Path) -> bool {
    crate::localfile::Destination::of(a) == crate::localfile::Destination::of(b)
}

pub(super) fn validate_remote(remote: &str) -> Result<url::Url> {
    let chars = remote.chars().count();
    if chars > job::MAX_REMOTE_URL_CHARS {
        return Err(Error::new(
            hr::E_INVALIDARG,
            format!(
                "remote URL has {chars} characters; the limit is {}",
                job::MAX_REMOTE_URL_CHARS
            ),
        ));
    }
    let url = url::Url::parse(remote)
        .map_err(|e| Error::new(hr::E_INVALIDARG, format!("malformed URL {remote:?}: {e}")))?;
    match url.scheme() {
        "http" | "https" => {
            if url.host_str().is_none_or(str::is_empty) {
                return Err(Error::new(
                    hr::E_INVALIDARG,
                    format!("URL has no host: {remote}"),
                ));
            }
            // The request line must be expressible as an HTTP URI.
            url.as_str().parse::<hyper::Uri>().map_err(|e| {
                Error::new(
                    hr::E_INVALIDARG,
                    format!("URL cannot be requested: {remote}: {e}"),
                )
            })?;
        }
        "file" => {
            url.to_file_path().map_err(|_| {
                Error::new(
                    hr::E_INVALIDARG,
                    format!("file URL has no local path: {remote}"),
                )
            })?;
        }
        other => {
            return Err(Error::new(
                hr::E_INVALIDARG,
                format!("unsupported protocol {other:?}: only http, https and file are supported"),
            ));
        }
    }
    Ok(url)
}

/// An upload's local file: an absolute path to a regular file this process can read. It is
/// read, never locked or changed.
pub(super) fn validate_source(local: &str) -> Result<PathBuf> {
    let path = Path::new(local);
    if !path.is_absolute() {
        return Err(Error::new(
            hr::E_INVALIDARG,
            format!("local name must be an absolute path: {local:?}"),
        ));
    }
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => {
            return Err(Error::new(
                hr::E_INVALIDARG,
                format!("the file to upload is not a regular file: {local}"),
            ))
        }
        Err(e) => return Err(Error::io("cannot upload", path, &e)),
    }
    if let Err(e) = std::fs::File::open(path) {
        return Err(Error::io("cannot read the file to upload", path, &e));
    }
    Ok(path.to_path_buf())
}

pub(super) fn validate_local(local: &str) -> Result<(PathBuf, Destination)> {
    validate_local_in(local, &mut Folders::default())
}

/// The destination folders one call has checked already (AddFileSet of thousands of files into one
/// folder checks it once, not once per file).
#[derive(Default)]
pub(super) struct Folders(std::collections::HashMap<PathBuf, std::fs::Metadata>);

/// `validate_local`, with the folder checks of earlier files of the same call remembered.
pub(super) fn validate_local_in(
    local: &str,
    folders: &mut Folders,
) -> Result<(PathBuf, Destination)> {
    let path = Path::new(local);
    if !path.is_absolute() {
        return Err(Error::new(
            hr::E_INVALIDARG,
            format!("local name must be an absolute path: {local:?}"),
        ));
    }
    // Lexical normalisation, so "/a/./b" and "/a/b" count as the same destination.
    let norm: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect();
    if local.ends_with('/') || norm.is_dir() {
        return Err(Error::new(
            hr::E_INVALIDARG,
            format!("local name is a folder: {local}"),
        ));
    }
    let Some(dir) = norm.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Err(Error::new(
            hr::E_INVALIDARG,
            format!("local name has no folder: {local}"),
        ));
    };
    let folder = match folders.0.get(dir) {
        Some(folder) => folder,
        None => {
            let folder = writable_folder(dir)?;
            folders.0.entry(dir.to_path_buf()).or_insert(folder)
        }
    };
    let key = match norm.file_name() {
        Some(name) => Destination::in_folder(folder, name),
        None => Destination::Path(norm.clone()),
    };
    Ok((norm, key))
}

/// The metadata of `dir`, a folder this process may write into.
fn writable_folder(dir: &Path) -> Result<std::fs::Metadata> {
    let folder = match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => m,
        Ok(_) => {
            return Err(Error::new(
                HResult::from_win32(hr::win32::ERROR_PATH_NOT_FOUND),
                format!("not a folder: {}", dir.display()),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::new(
                HResult::from_win32(hr::win32::ERROR_PATH_NOT_FOUND),
                format!("the destination folder does not exist: {}", dir.display()),
            ))
        }
        Err(e) => return Err(Error::io("the destination folder is not usable:", dir, &e)),
    };
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::new(hr::E_INVALIDARG, "local name contains a NUL byte"))?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK) } != 0 {
        return Err(Error::new(
            hr::E_ACCESSDENIED,
            format!("no permission to write into {}", dir.display()),
        ));
    }
    Ok(folder)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobId;
    use crate::state::JobType;

    fn r(offset: u64, length: u64) -> FileRange {
        FileRange { offset, length }
    }

    fn code<T: std::fmt::Debug>(r: Result<T>) -> HResult {
        r.unwrap_err().code
    }

    const EOF: u64 = job::LENGTH_TO_EOF;

    #[test]
    fn ranges() {
        assert!(check_ranges(&[r(0, 10), r(10, 5), r(100, EOF)]).is_ok());
        // The order given need not be sorted; adjacent ranges do not overlap.
        assert!(check_ranges(&[r(50, 10), r(0, 50)]).is_ok());
        assert_eq!(code(check_ranges(&[])), hr::E_INVALIDARG);
        assert_eq!(code(check_ranges(&[r(EOF, 1)])), hr::E_INVALID_RANGE);
        assert_eq!(code(check_ranges(&[r(0, 0)])), hr::E_INVALID_RANGE);
        assert_eq!(
            code(check_ranges(&[r(0, EOF), r(100, 1)])),
            hr::E_INVALID_RANGE,
            "only the last range may run to the end"
        );
        assert_eq!(
            code(check_ranges(&[r(u64::MAX - 1, 2)])),
            hr::E_INVALID_RANGE
        );
        assert_eq!(
            code(check_ranges(&[r(0, 10), r(5, 10)])),
            hr::E_OVERLAPPING_RANGES
        );
        assert_eq!(
            code(check_ranges(&[r(7, 3), r(7, 3)])),
            hr::E_OVERLAPPING_RANGES,
            "duplicates overlap"
        );
        // Last in the list but not last in the file: it runs over the range after it.
        assert_eq!(
            code(check_ranges(&[r(100, 10), r(50, EOF)])),
            hr::E_OVERLAPPING_RANGES
        );
    }

    #[test]
    fn chars_are_counted_not_bytes() {
        assert!(check_chars("name", "", 0).is_ok());
        assert!(check_chars("name", "ééé", 3).is_ok());
        let e = check_chars("name", "éééé", 3).unwrap_err();
        assert_eq!(e.code, hr::E_INVALIDARG);
        assert!(e.message.contains("name has 4 characters"), "{}", e.message);
    }

    #[test]
    fn first_resume() {
        let mut rec = JobRecord::new(JobId::new_v4(), JobType::Download, "j".into(), 0);
        assert!(before_first_resume(&rec).is_ok());
        rec.resumed_once = true;
        assert_eq!(
            before_first_resume(&rec).unwrap_err().0,
            hr::E_READ_ONLY_PROPERTY_AFTER_RESUME
        );
    }

    #[test]
    fn remote_names() {
        for ok in [
            "http://example.com/a",
            "https://example.com:8443/a?b=c",
            "file:///tmp/x",
        ] {
            assert_eq!(validate_remote(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "not a url",
            "ftp://example.com/a",
            "mailto:someone@example.com",
            "http:///",
        ] {
            assert_eq!(code(validate_remote(bad)), hr::E_INVALIDARG, "{bad}");
        }
        let long = format!(
            "http://example.com/{}",
            "a".repeat(job::MAX_REMOTE_URL_CHARS)
        );
        assert_eq!(code(validate_remote(&long)), hr::E_INVALIDARG);
        let at_limit = format!(
            "http://example.com/{}",
            "a".repeat(job::MAX_REMOTE_URL_CHARS - "http://example.com/".len())
        );
        assert!(validate_remote(&at_limit).is_ok());
    }

    #[test]
    fn local_names() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let path_not_found = HResult::from_win32(hr::win32::ERROR_PATH_NOT_FOUND);
        let (path, key) = validate_local(&format!("{d}/f")).unwrap();
        assert_eq!(path, dir.path().join("f"));
        // The key is the one `Destination::of` gives (the set of a job's names mixes both).
        assert_eq!(key, Destination::of(&path));
        // "." components are dropped, so equal destinations compare equal.
        assert_eq!(
            validate_local(&format!("{d}/./f")).unwrap(),
            (dir.path().join("f"), key)
        );
        assert_eq!(code(validate_local("relative/f")), hr::E_INVALIDARG);
        assert_eq!(code(validate_local(&format!("{d}/f/"))), hr::E_INVALIDARG);
        assert_eq!(code(validate_local(d)), hr::E_INVALIDARG, "a folder");
        assert_eq!(code(validate_local("/")), hr::E_INVALIDARG, "no folder");
        assert_eq!(
            code(validate_local(&format!("{d}/missing/f"))),
            path_not_found
        );
        std::fs::write(dir.path().join("file"), b"x").unwrap();
        assert_eq!(
            code(validate_local(&format!("{d}/file/f"))),
            path_not_found,
            "the folder is a file"
        );
    }

    /// One call checks a folder once: later names in it get the same keys as checked alone, and
    /// the per-name checks (a folder by that name) and other folders still apply.
    #[test]
    fn local_names_of_one_call_share_their_folder_check() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let mut folders = Folders::default();
        for name in ["a", "b", "a"] {
            let (path, key) = validate_local_in(&format!("{d}/{name}"), &mut folders).unwrap();
            assert_eq!((path, key), validate_local(&format!("{d}/{name}")).unwrap());
        }
        assert_eq!(folders.0.len(), 1);
        let sub = validate_local_in(&format!("{d}/sub"), &mut folders);
        assert_eq!(code(sub), hr::E_INVALIDARG, "a folder, in a checked folder");
        let missing = validate_local_in(&format!("{d}/missing/f"), &mut folders);
        assert_eq!(
            code(missing),
            HResult::from_win32(hr::win32::ERROR_PATH_NOT_FOUND)
        );
        assert!(validate_local_in(&format!("{d}/sub/f"), &mut folders).is_ok());
        assert_eq!(folders.0.len(), 2);
    }

    #[test]
    fn local_names_need_a_writable_folder() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ro = dir.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o500)).unwrap();
        let writable = std::fs::write(ro.join("probe"), b"").is_ok();
        let result = validate_local(ro.join("f").to_str().unwrap());
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o700)).unwrap();
        // root may write anywhere: then the check rightly lets the name through.
        if writable {
            assert!(result.is_ok());
        } else {
            assert_eq!(code(result), hr::E_ACCESSDENIED);
        }
    }

    #[test]
    fn destinations() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::os::unix::fs::symlink(d.join("sub"), d.join("link")).unwrap();
        let same = |a: &str, b: &str| same_destination(&d.join(a), &d.join(b));
        assert!(same("f", "f"));
        assert!(same("sub/../f", "f"), "`..` does not disguise the folder");
        assert!(same("link/f", "sub/f"), "nor does a symbolic link");
        assert!(!same("sub/f", "f"));
        assert!(!same("sub/f", "sub/g"));
        // A folder that does not exist is compared by name only.
        assert!(same("missing/f", "missing/f"));
        assert!(!same("missing/f", "missing/../f"));
    }
}
