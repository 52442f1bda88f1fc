/*
 * download.c: the happy path of a download job, end to end against the real test server.
 *
 * Proves: a job with three files (9 MiB + a few bytes, ~100 KB, and an empty file) goes
 * SUSPENDED -> TRANSFERRED after bits_resume and bits_job_wait(BITS_INFINITE); the progress totals
 * are exact; until bits_complete no destination exists and the bytes sit in BIT*.tmp files beside
 * them; bits_complete returns S_OK, the job is ACKNOWLEDGED, each destination is byte-for-byte
 * its source and no BIT*.tmp is left; a second bits_complete is BITS_E_INVALID_STATE and the job
 * is gone from the manager (BITS_E_NOT_FOUND).
 *
 * Environment (set by run.sh): OPENBITS_TEST_URL (http://127.0.0.1:PORT), OPENBITS_TEST_SRC
 * (folder with the files the server serves), OPENBITS_TEST_WORK (scratch folder).
 */
#include "check.h"

#define NFILES 3

int main(void) {
    const char *base = test_env("OPENBITS_TEST_URL");
    const char *src = test_env("OPENBITS_TEST_SRC");
    const char *work = test_env("OPENBITS_TEST_WORK");
    static const char *const names[NFILES] = {"big.bin", "small.bin", "empty.bin"};

    char *dest_dir = make_dir(work, "download-dest");
    char *state_dir = make_dir(work, "download-state");
    char url[NFILES][512], dest[NFILES][1024], source[NFILES][1024];
    uint64_t expected_total = 0;
    for (int i = 0; i < NFILES; i++) {
        snprintf(url[i], sizeof url[i], "%s/%s", base, names[i]);
        path_in(dest[i], sizeof dest[i], dest_dir, names[i]);
        path_in(source[i], sizeof source[i], src, names[i]);
        long long size = file_size(source[i]);
        if (size < 0) {
            fprintf(stderr, "missing source %s\n", source[i]);
            return 2;
        }
        expected_total += (uint64_t)size;
    }
    CHECKF(file_size(source[0]) >= 8 * 1024 * 1024, "big.bin must be at least 8 MiB");
    CHECKF(file_size(source[2]) == 0, "empty.bin must be empty");

    bits_manager *mgr = NULL;
    if (!CHECK_HR(bits_manager_open(state_dir, &mgr), BITS_S_OK)) return check_report("download");
    CHECK(mgr != NULL);

    bits_guid id;
    memset(&id, 0xA5, sizeof id);
    bits_job *job = NULL;
    if (!CHECK_HR(bits_create_job(mgr, "download test", BITS_JOB_TYPE_DOWNLOAD, &id, &job), BITS_S_OK))
        return check_report("download");
    CHECK(job != NULL);
    CHECK_STATE(job, BITS_JOB_STATE_SUSPENDED);

    for (int i = 0; i < NFILES; i++) CHECK_HR(bits_add_file(job, url[i], dest[i]), BITS_S_OK);

    bits_job_progress p;
    CHECK_HR(bits_job_get_progress(job, &p), BITS_S_OK);
    CHECKF(p.files_total == NFILES && p.files_transferred == 0 && p.bytes_transferred == 0,
           "before resume: files_total %u files_transferred %u bytes_transferred %llu", p.files_total,
           p.files_transferred, (unsigned long long)p.bytes_transferred);
    CHECKF(p.bytes_total == BITS_SIZE_UNKNOWN, "before resume: bytes_total %llu, expected BITS_SIZE_UNKNOWN",
           (unsigned long long)p.bytes_total);

    CHECK_HR(bits_resume(job), BITS_S_OK);
    CHECK_WAIT(job, BITS_INFINITE, BITS_JOB_STATE_TRANSFERRED);
    CHECK_STATE(job, BITS_JOB_STATE_TRANSFERRED);

    CHECK_HR(bits_job_get_progress(job, &p), BITS_S_OK);
    CHECKF(p.bytes_total == expected_total, "bytes_total %llu, expected %llu", (unsigned long long)p.bytes_total,
           (unsigned long long)expected_total);
    CHECKF(p.bytes_transferred == expected_total, "bytes_transferred %llu, expected %llu",
           (unsigned long long)p.bytes_transferred, (unsigned long long)expected_total);
    CHECKF(p.files_total == NFILES, "files_total %u", p.files_total);
    CHECKF(p.files_transferred == NFILES, "files_transferred %u", p.files_transferred);

    /* Not yet completed: no destination, the bytes are in BIT*.tmp files. */
    for (int i = 0; i < NFILES; i++) CHECKF(!file_exists(dest[i]), "%s exists before bits_complete", dest[i]);
    int tmp = count_tmp(dest_dir);
    CHECKF(tmp == NFILES, "%d BIT*.tmp files in %s before bits_complete, expected %d", tmp, dest_dir, NFILES);

    /* The job can still be found by id while it is not final. */
    bits_job *again = (bits_job *)(uintptr_t)0x1;
    CHECK_HR(bits_get_job(mgr, &id, &again), BITS_S_OK);
    if (again) {
        CHECK_STATE(again, BITS_JOB_STATE_TRANSFERRED);
        bits_job_release(again);
    }

    CHECK_HR(bits_complete(job), BITS_S_OK);
    CHECK_STATE(job, BITS_JOB_STATE_ACKNOWLEDGED);
    for (int i = 0; i < NFILES; i++)
        CHECKF(files_equal(source[i], dest[i]), "%s is not a copy of %s", dest[i], source[i]);
    tmp = count_tmp(dest_dir);
    CHECKF(tmp == 0, "%d BIT*.tmp files left in %s after bits_complete", tmp, dest_dir);

    CHECK_HR(bits_complete(job), BITS_E_INVALID_STATE);
    CHECK_STATE(job, BITS_JOB_STATE_ACKNOWLEDGED);

    again = (bits_job *)(uintptr_t)0x1;
    CHECK_HR(bits_get_job(mgr, &id, &again), BITS_E_NOT_FOUND);
    CHECK(again == NULL);

    /* A wait on a final job returns at once with that state. */
    CHECK_WAIT(job, 0, BITS_JOB_STATE_ACKNOWLEDGED);

    bits_job_release(job);
    bits_manager_close(mgr);
    free(dest_dir);
    free(state_dir);
    return check_report("download");
}
