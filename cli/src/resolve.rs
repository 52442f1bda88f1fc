//! JOB on the command line: a GUID (braces and case as you like), a unique prefix of one, or a
//! display name that names exactly one job. Anything else is a usage error (exit 2) that lists
//! the candidates, so the user can pick one by GUID.

use crate::fail::Fail;
use crate::format;
use openbits_core::{JobId, JobRecord};

/// The one job `query` names among `jobs`.
pub fn resolve<'a>(query: &str, jobs: &'a [JobRecord]) -> Result<&'a JobRecord, Fail> {
    let bare = query
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .to_ascii_lowercase();
    if let Ok(id) = JobId::parse_str(&bare) {
        if let Some(job) = jobs.iter().find(|j| j.id == id) {
            return Ok(job);
        }
    }
    let hexish = !bare.is_empty() && bare.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    let compact = bare.replace('-', "");
    let mut candidates: Vec<&JobRecord> = jobs
        .iter()
        .filter(|j| {
            let by_prefix = hexish
                && (j.id.hyphenated().to_string().starts_with(&bare)
                    || j.id.simple().to_string().starts_with(&compact));
            by_prefix || *j.display_name == *query
        })
        .collect();
    candidates.dedup_by_key(|j| j.id);
    match candidates.as_slice() {
        [one] => Ok(one),
        [] => Err(Fail::Usage(format!(
            "no job matches {query:?}: give a GUID, a unique GUID prefix or a display name \
             (`openbits list` shows them)"
        ))),
        many => {
            let list: Vec<String> = many
                .iter()
                .map(|j| {
                    format!(
                        "{}  {:<15} {}",
                        format::braced(&j.id),
                        j.state.name(),
                        j.display_name
                    )
                })
                .collect();
            Err(Fail::Usage(format!(
                "{query:?} names {} jobs; give one of their GUIDs (or a longer prefix):\n{}",
                many.len(),
                list.join("\n")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openbits_core::JobType;

    fn job(id: &str, name: &str) -> JobRecord {
        JobRecord::new(
            JobId::parse_str(id).unwrap(),
            JobType::Download,
            name.into(),
            0,
        )
    }

    #[test]
    fn by_guid_prefix_or_unique_name() {
        let jobs = [
            job("aaaa1111-0000-4000-8000-000000000001", "nightly"),
            job("aaaa2222-0000-4000-8000-000000000002", "backup"),
            job("bbbb3333-0000-4000-8000-000000000003", "backup"),
        ];
        let id = |q: &str| resolve(q, &jobs).map(|j| j.display_name.to_string());
        assert_eq!(
            id("{AAAA1111-0000-4000-8000-000000000001}").unwrap(),
            "nightly"
        );
        assert_eq!(id("aaaa2").unwrap(), "backup");
        assert_eq!(id("AAAA22220000").unwrap(), "backup");
        assert_eq!(id("nightly").unwrap(), "nightly");
        for ambiguous in ["aaaa", "backup"] {
            let Err(Fail::Usage(m)) = id(ambiguous) else {
                panic!("{ambiguous} should be ambiguous")
            };
            assert!(m.contains("names 2 jobs"), "{m}");
        }
        let Err(Fail::Usage(m)) = resolve("backup", &jobs) else {
            panic!()
        };
        assert!(m.contains("{AAAA2222-0000-4000-8000-000000000002}"), "{m}");
        assert!(m.contains("{BBBB3333-0000-4000-8000-000000000003}"), "{m}");
        assert!(matches!(id("cccc"), Err(Fail::Usage(_))));
        assert!(matches!(id("nope"), Err(Fail::Usage(_))));
    }
}
