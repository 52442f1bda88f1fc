/*
 * bench/download.c: downloads one URL to one file through the openbits C ABI and prints the
 * elapsed wall time in seconds (CLOCK_MONOTONIC, from just before bits_create_job to just after
 * bits_complete returns; bits_complete fsyncs the file and its folder, so the time includes the
 * flush to disk).
 *
 *   download URL DEST_PATH STATE_DIR
 *
 * Compiled with -DBENCH_UPLOAD (bench/upload.sh) it uploads instead: the path is the SOURCE, the
 * job is BITS_JOB_TYPE_UPLOAD, and the server acknowledges only bytes it has made durable (and
 * Close-Session puts the file in place), so the time includes the flush there too.
 *
 * stdout: one line, the seconds (e.g. "1.234567"). Diagnostics go to stderr; exit status 1 on any
 * failure. Opening the manager (state folder, thread start) is not timed.
 */
#define _POSIX_C_SOURCE 200809L

#include "openbits.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifdef BENCH_UPLOAD
#define NAME "upload"
#define JOB_TYPE BITS_JOB_TYPE_UPLOAD
#else
#define NAME "download"
#define JOB_TYPE BITS_JOB_TYPE_DOWNLOAD
#endif

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int check(bits_hresult hr, const char *what)
{
    if (BITS_FAILED(hr)) {
        fprintf(stderr, NAME ": %s failed: 0x%08X %s\n", what, (unsigned)hr,
                bits_last_error_message());
        return 0;
    }
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s URL LOCAL_PATH STATE_DIR\n", argv[0]);
        return 2;
    }
    const char *url = argv[1], *local = argv[2], *state_dir = argv[3];
    int rc = 1;
    bits_manager *mgr = NULL;
    bits_job *job = NULL;
    bits_guid id;
    int32_t state = 0;

    if (!check(bits_manager_open(state_dir, &mgr), "bits_manager_open"))
        return 1;

    double t0 = now_s();
    if (!check(bits_create_job(mgr, "bench", JOB_TYPE, &id, &job), "bits_create_job"))
        goto out;
    /* A benchmark must fail fast rather than retry for 14 days: every error is fatal. */
    if (!check(bits_job_set_no_progress_timeout(job, 0), "bits_job_set_no_progress_timeout"))
        goto out;
    if (!check(bits_add_file(job, url, local), "bits_add_file"))
        goto out;
    if (!check(bits_resume(job), "bits_resume"))
        goto out;
    if (!check(bits_job_wait(job, BITS_INFINITE, &state), "bits_job_wait"))
        goto out;
    if (state != BITS_JOB_STATE_TRANSFERRED) {
        int32_t ctx = 0;
        bits_hresult code = 0;
        char *desc = NULL;
        if (BITS_SUCCEEDED(bits_job_get_error(job, &ctx, &code, &desc)))
            fprintf(stderr, "download: job ended in state %d: 0x%08X %s\n", (int)state,
                    (unsigned)code, desc ? desc : "");
        else
            fprintf(stderr, "download: job ended in state %d\n", (int)state);
        bits_free_string(desc);
        bits_cancel(job);
        goto out;
    }
    bits_hresult hr = bits_complete(job);
    double t1 = now_s();
    if (!check(hr, "bits_complete"))
        goto out;
    if (hr != BITS_S_OK) {
        fprintf(stderr, "download: bits_complete returned 0x%08X\n", (unsigned)hr);
        goto out;
    }
    printf("%.6f\n", t1 - t0);
    rc = 0;
out:
    bits_job_release(job);
    bits_manager_close(mgr);
    return rc;
}
