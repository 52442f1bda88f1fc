//! Basic authentication against an Apache htpasswd file with bcrypt entries (`htpasswd -B`).

use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::path::Path;

pub struct Htpasswd {
    users: HashMap<String, String>,
    /// Digests of credentials that verified, so that a client sending many fragments pays for
    /// bcrypt once, not per request. Bounded: cleared when full.
    verified: Mutex<HashSet<Vec<u8>>>,
}

const CACHE: usize = 4096;

impl Htpasswd {
    pub fn load(path: &Path) -> Result<Htpasswd, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(format!("{}:{}: expected user:hash", path.display(), n + 1));
            };
            if !(hash.starts_with("$2y$") || hash.starts_with("$2a$") || hash.starts_with("$2b$")) {
                return Err(format!(
                    "{}:{}: user {user} is not a bcrypt entry (use htpasswd -B)",
                    path.display(),
                    n + 1
                ));
            }
            users.insert(user.to_owned(), hash.to_owned());
        }
        Ok(Htpasswd {
            users,
            verified: Mutex::new(HashSet::new()),
        })
    }

    /// The user name if the `Authorization` header carries valid Basic credentials.
    pub async fn check(&self, authorization: Option<&str>) -> Option<String> {
        let encoded = authorization?
            .trim()
            .strip_prefix("Basic ")
            .or_else(|| authorization?.trim().strip_prefix("basic "))?;
        let decoded = decode_base64(encoded.trim())?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, pass) = text.split_once(':')?;
        let hash = self.users.get(user)?.clone();
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            format!("{user}\0{pass}\0{hash}").as_bytes(),
        )
        .as_ref()
        .to_vec();
        if self.verified.lock().contains(&digest) {
            return Some(user.to_owned());
        }
        let pass = pass.to_owned();
        // bcrypt is deliberately slow: keep it off the reactor threads.
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(pass, &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
        if !ok {
            return None;
        }
        let mut v = self.verified.lock();
        if v.len() >= CACHE {
            v.clear();
        }
        v.insert(digest);
        Some(user.to_owned())
    }
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let s = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c)? << (18 - 6 * i);
        }
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes() {
        assert_eq!(
            decode_base64("dXNlcjpwYXNz").as_deref(),
            Some(&b"user:pass"[..])
        );
        assert_eq!(decode_base64("YQ==").as_deref(), Some(&b"a"[..]));
        assert_eq!(decode_base64("YWI=").as_deref(), Some(&b"ab"[..]));
        assert_eq!(decode_base64("!!!!"), None);
    }

    #[tokio::test]
    async fn bcrypt_entries_verify() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("h");
        let hash = bcrypt::hash("s3cret", 4)
            .unwrap()
            .replacen("$2b$", "$2y$", 1);
        std::fs::write(&f, format!("# users\nalice:{hash}\n")).unwrap();
        let h = Htpasswd::load(&f).unwrap();
        let basic = |s: &str| format!("Basic {}", encode(s.as_bytes()));
        assert_eq!(
            h.check(Some(&basic("alice:s3cret"))).await.as_deref(),
            Some("alice")
        );
        assert_eq!(
            h.check(Some(&basic("alice:s3cret"))).await.as_deref(),
            Some("alice"),
            "cached"
        );
        assert_eq!(h.check(Some(&basic("alice:wrong"))).await, None);
        assert_eq!(h.check(Some(&basic("bob:s3cret"))).await, None);
        assert_eq!(h.check(None).await, None);
        std::fs::write(&f, "carol:{SHA}abc\n").unwrap();
        assert!(Htpasswd::load(&f).is_err());
    }

    fn encode(b: &[u8]) -> String {
        const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = String::new();
        for c in b.chunks(3) {
            let n = (c[0] as u32) << 16
                | (*c.get(1).unwrap_or(&0) as u32) << 8
                | *c.get(2).unwrap_or(&0) as u32;
            for i in 0..4 {
                if i <= c.len() {
                    s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    s.push('=');
                }
            }
        }
        s
    }
}
