//! Disk full, for real: a small tmpfs is mounted for the test (it needs CAP_SYS_ADMIN, as root in
//! CI; elsewhere the test says it was skipped).
//! - Data: the job goes to TRANSIENT_ERROR with 0x80070070 and context LOCAL_FILE, other jobs go
//!   on, and once space is back the job finishes.
//! - Database: the call that needed the write fails with 0x80070070 and nothing stored before is lost.

mod common;
use common::wait_until;

use openbits_core::hresult::HResult;
use openbits_core::{Config, ErrorContext, JobState, JobType, Manager};
use openbits_testserver::{pattern, TestServer};
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::Duration;

const DISK_FULL: u32 = 0x8007_0070;

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let c = |s: &str| CString::new(s).unwrap();
        let target = c(at.to_str().unwrap());
        let opts = c(&format!("size={size},mode=0755"));
        // SAFETY: valid NUL-terminated strings for the duration of the call.
        let rc = unsafe {
            libc::mount(
                c("tmpfs").as_ptr(),
                target.as_ptr(),
                c("tmpfs").as_ptr(),
                0,
                opts.as_ptr().cast(),
            )
        };
        if rc != 0 {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs here ({})",
                std::io::Error::last_os_error()
            );
            return None;
        }
        Some(Tmpfs(at.to_path_buf()))
    }
    fn resize(&self, size: &str) {
        let c = |s: &str| CString::new(s).unwrap();
        let opts = c(&format!("size={size}"));
        // SAFETY: as above.
        let rc = unsafe {
            libc::mount(
                c("tmpfs").as_ptr(),
                c(self.0.to_str().unwrap()).as_ptr(),
                std::ptr::null(),
                libc::MS_REMOUNT,
                opts.as_ptr().cast(),
            )
        };
        assert_eq!(rc, 0, "remount: {}", std::io::Error::last_os_error());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let p = CString::new(self.0.to_str().unwrap()).unwrap();
        // SAFETY: valid path.
        unsafe { libc::umount2(p.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Fills the file system at `dir` to the last byte.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![1u8; 4096];
    while f.write_all(&block).is_ok() {}
    let _ = f.flush();
    path
}

#[test]
fn disk_full_on_data_is_transient_and_on_the_database_fails_the_call_only() {
    let dir = tempfile::tempdir().unwrap();
    let Some(small) = Tmpfs::mount(&dir.path().join("small"), "1m") else {
        return;
    };
    let server = TestServer::start();
    let big = pattern(3 << 20, 1);
    server.add("/big", big.clone());
    server.add("/small", pattern(1000, 2));
    let config = Config {
        checkpoint_interval: Duration::from_millis(50),
        ..Config::default()
    };
    let m = Manager::open(Some(&dir.path().join("state")), config.clone()).unwrap();

    let full = m.create_job("does not fit", JobType::Download).unwrap();
    full.add_file(&server.url("/big"), small.0.join("big").to_str().unwrap())
        .unwrap();
    full.resume().unwrap();
    wait_until("TRANSIENT_ERROR", || {
        full.state().unwrap() == JobState::TransientError
    });
    let e = full.error().unwrap();
    assert_eq!(
        (e.context, e.code.as_u32()),
        (ErrorContext::LocalFile, DISK_FULL),
        "{}",
        e.description
    );

    // The queue stays usable.
    let other = m.create_job("elsewhere", JobType::Download).unwrap();
    other
        .add_file(
            &server.url("/small"),
            dir.path().join("s").to_str().unwrap(),
        )
        .unwrap();
    other.resume().unwrap();
    assert_eq!(
        other.wait(Some(Duration::from_secs(30))).unwrap(),
        JobState::Transferred
    );

    // Space comes back: the retry finishes the file.
    small.resize("16m");
    full.set_minimum_retry_delay(0).unwrap();
    assert_eq!(
        full.wait(Some(Duration::from_secs(30))).unwrap(),
        JobState::Transferred
    );
    assert_eq!(full.complete().unwrap(), HResult(0));
    assert!(std::fs::read(small.0.join("big")).unwrap() == big);
    m.close();
    drop(m);

    // The database's disk fills up: the call fails with the code, earlier jobs are intact.
    let Some(db_disk) = Tmpfs::mount(&dir.path().join("dbdisk"), "2m") else {
        return;
    };
    let state = db_disk.0.join("state");
    // Room for as many calls as the disk takes: the store's log has space allocated ahead
    // (store/sqlite/oplog.rs), so calls go on being taken after the disk is full until that
    // space is used up, more than BITS's 60 jobs per owner.
    let many = Config {
        max_jobs: 100_000,
        max_jobs_per_owner: 100_000,
        ..config.clone()
    };
    let m = Manager::open(Some(&state), many).unwrap();
    let mut kept = Vec::new();
    for i in 0..5 {
        let j = m
            .create_job(&format!("kept {i}"), JobType::Download)
            .unwrap();
        j.add_file(
            &server.url("/small"),
            dir.path().join(format!("k{i}")).to_str().unwrap(),
        )
        .unwrap();
        kept.push(j.id());
    }
    let filler = fill(&db_disk.0);
    let mut refused = None;
    for i in 0..100_000 {
        // The log's space allocated ahead takes a few thousand calls; the disk runs out after.
        match m.create_job(
            &format!("overflow {i} {}", "x".repeat(200)),
            JobType::Download,
        ) {
            Ok(_) => continue,
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let e = refused.expect("a write to a full disk must fail");
    assert_eq!(e.code.as_u32(), DISK_FULL, "{}", e.message);
    m.close();
    drop(m);
    std::fs::remove_file(filler).unwrap();
    let m = Manager::open(Some(&state), config).unwrap();
    for id in &kept {
        assert_eq!(
            m.get_job(id).unwrap().record().unwrap().files.len(),
            1,
            "job stored before the disk filled up"
        );
    }
}
