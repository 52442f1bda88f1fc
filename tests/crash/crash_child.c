/*
 * tests/crash/crash_child.c: the process tests/crash/run.py kills with SIGKILL at chosen moments.
 *
 *   crash_child STATE_DIR URL DEST   drive the folder's single download job to the end (see below)
 *   crash_child --upload STATE_DIR URL SOURCE DONE
 *                                    the same with an upload job of SOURCE to URL; DONE is where
 *                                    the server places the file (the test's own server folder)
 *   crash_child --count STATE_DIR    open the manager, print `COUNT <n>` (jobs in the store after
 *                                    the open's recovery) and one `JOB ...` line per job, exit 0
 *
 * Drive mode: opens the manager on STATE_DIR (which recovers whatever a killed predecessor left) and
 * enumerates its jobs:
 *   - none and DEST (DONE) exists: a predecessor completed the job -> `ALREADY_DONE`, exit 0;
 *   - none: creates a job, sets its minimum retry delay to 0, adds URL -> DEST (URL <- SOURCE for
 *     an upload) -> `CREATED`;
 *   - one: takes it -> `FOUND ...`; if it has no file (a predecessor died between create and
 *     add-file) the setup is finished -> `ADOPTED`;
 *   - more than one: exit 4.
 * Then resumes it (`RESUMED`), prints `PROGRESS <bytes> <total> <state>` every 50 ms (waiting with
 * bits_job_wait) until TRANSFERRED, prints `COMPLETING`, completes, prints `COMPLETED 0x<hr>`, exit 0.
 * Every line is flushed at once: the harness times its kills on them.
 *
 * Exit codes: 0 done; 2 usage; 3 open failed; 4 more than one job; 5 job in ERROR; 6 an API call
 * failed; 7 complete did not return S_OK.
 */
#define _POSIX_C_SOURCE 200809L

#include <openbits.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *state_name(int32_t s) {
    static const char *const names[] = {"QUEUED",      "CONNECTING",      "TRANSFERRING",
                                        "SUSPENDED",   "ERROR",           "TRANSIENT_ERROR",
                                        "TRANSFERRED", "ACKNOWLEDGED",    "CANCELLED"};
    return (s >= 0 && s <= 8) ? names[s] : "?";
}

static void say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

/* Reports a failed call (its code and the library's sentence, read at once) and exits with `code`. */
static void die(const char *what, bits_hresult hr, int code) {
    const char *msg = bits_last_error_message();
    say("FAIL %s 0x%08" PRIX32 " %s", what, (uint32_t)hr, msg ? msg : "");
    fprintf(stderr, "crash_child: %s failed: 0x%08" PRIX32 " %s\n", what, (uint32_t)hr,
            msg ? msg : "");
    exit(code);
}

static void check(const char *what, bits_hresult hr) {
    if (hr != BITS_S_OK) die(what, hr, 6);
}

static bits_manager *open_manager(const char *dir) {
    bits_manager *mgr = NULL;
    bits_hresult hr = bits_manager_open(dir, &mgr);
    if (hr != BITS_S_OK || mgr == NULL) die("bits_manager_open", hr, 3);
    return mgr;
}

static int count_mode(const char *dir) {
    bits_manager *mgr = open_manager(dir);
    bits_guid *ids = NULL;
    uint32_t n = 0;
    check("bits_enum_jobs", bits_enum_jobs(mgr, 0, &ids, &n));
    say("COUNT %" PRIu32, n);
    for (uint32_t i = 0; i < n; i++) {
        char text[BITS_GUID_STRING_LEN];
        bits_job *job = NULL;
        int32_t state = 0;
        bits_job_progress p;
        check("bits_guid_to_string", bits_guid_to_string(&ids[i], text, sizeof text));
        check("bits_get_job", bits_get_job(mgr, &ids[i], &job));
        check("bits_job_get_state", bits_job_get_state(job, &state));
        check("bits_job_get_progress", bits_job_get_progress(job, &p));
        say("JOB %s state=%s files=%" PRIu32 "/%" PRIu32 " bytes=%" PRIu64, text, state_name(state),
            p.files_transferred, p.files_total, p.bytes_transferred);
        bits_job_release(job);
    }
    bits_free(ids);
    bits_manager_close(mgr);
    return 0;
}

/* Finishes the setup of a job that has no file yet (also used right after creating it). `local` is
 * the destination of a download, the source of an upload. */
static void set_up(bits_job *job, const char *url, const char *local) {
    check("bits_job_set_minimum_retry_delay", bits_job_set_minimum_retry_delay(job, 0));
    check("bits_add_file", bits_add_file(job, url, local));
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--count") == 0) return count_mode(argv[2]);
    int upload = argc == 6 && strcmp(argv[1], "--upload") == 0;
    if (argc != 4 && !upload) {
        fprintf(stderr, "usage: crash_child STATE_DIR URL DEST | crash_child --upload STATE_DIR URL "
                        "SOURCE DONE | crash_child --count STATE_DIR\n");
        return 2;
    }
    const char *dir = argv[1 + upload], *url = argv[2 + upload], *dest = argv[3 + upload];
    const char *done = upload ? argv[5] : dest;

    bits_manager *mgr = open_manager(dir);
    say("OPENED");

    bits_guid *ids = NULL;
    uint32_t n = 0;
    check("bits_enum_jobs", bits_enum_jobs(mgr, 0, &ids, &n));
    bits_job *job = NULL;
    if (n > 1) {
        say("FAIL the store holds %" PRIu32 " jobs; expected at most one", n);
        bits_free(ids);
        bits_manager_close(mgr);
        return 4;
    }
    if (n == 1) {
        check("bits_get_job", bits_get_job(mgr, &ids[0], &job));
        int32_t state = 0;
        bits_job_progress p;
        check("bits_job_get_state", bits_job_get_state(job, &state));
        check("bits_job_get_progress", bits_job_get_progress(job, &p));
        say("FOUND state=%s files=%" PRIu32 "/%" PRIu32 " bytes=%" PRIu64, state_name(state),
            p.files_transferred, p.files_total, p.bytes_transferred);
        if (p.files_total == 0) {
            set_up(job, url, dest);
            say("ADOPTED");
        }
    } else {
        struct stat st;
        if (stat(done, &st) == 0) {
            say("ALREADY_DONE");
            bits_manager_close(mgr);
            return 0;
        }
        bits_guid id;
        check("bits_create_job",
              bits_create_job(mgr, "crash test",
                              upload ? BITS_JOB_TYPE_UPLOAD : BITS_JOB_TYPE_DOWNLOAD, &id, &job));
        set_up(job, url, dest);
        say("CREATED");
    }
    bits_free(ids);

    /* A found job is QUEUED (it was active: open requeues it, and the scheduler may already have
     * moved it on to CONNECTING or TRANSFERRING), SUSPENDED (its creator died before resuming), or
     * TRANSFERRED (a complete was killed before recording its intent); resume accepts each with
     * S_OK. Anything else is reported by check() and fails the test. */
    check("bits_resume", bits_resume(job));
    say("RESUMED");

    int32_t state = 0;
    int32_t last_reported_error = 0;
    for (;;) {
        bits_hresult hr = bits_job_wait(job, 50, &state);
        if (hr == BITS_E_TIMEOUT) check("bits_job_get_state", bits_job_get_state(job, &state));
        else if (hr != BITS_S_OK) die("bits_job_wait", hr, 6);
        bits_job_progress p;
        check("bits_job_get_progress", bits_job_get_progress(job, &p));
        say("PROGRESS %" PRIu64 " %" PRIu64 " %s", p.bytes_transferred, p.bytes_total,
            state_name(state));
        if (state == BITS_JOB_STATE_TRANSFERRED) break;
        if (state == BITS_JOB_STATE_ERROR || state == BITS_JOB_STATE_TRANSIENT_ERROR) {
            int32_t context = 0;
            bits_hresult code = 0;
            char *text = NULL;
            bits_hresult ehr = bits_job_get_error(job, &context, &code, &text);
            if (ehr == BITS_S_OK && (state == BITS_JOB_STATE_ERROR || code != last_reported_error)) {
                say("%s context=%d 0x%08" PRIX32 " %s",
                    state == BITS_JOB_STATE_ERROR ? "JOB_ERROR" : "TRANSIENT_ERROR", (int)context,
                    (uint32_t)code, text ? text : "");
                last_reported_error = code;
            }
            bits_free_string(text);
            if (state == BITS_JOB_STATE_ERROR) return 5;
        }
        if (state == BITS_JOB_STATE_ACKNOWLEDGED || state == BITS_JOB_STATE_CANCELLED) {
            say("FAIL the job became %s on its own", state_name(state));
            return 6;
        }
    }

    say("COMPLETING");
    bits_hresult hr = bits_complete(job);
    say("COMPLETED 0x%08" PRIX32, (uint32_t)hr);
    if (hr != BITS_S_OK) die("bits_complete", hr, 7);
    bits_job_release(job);
    bits_manager_close(mgr);
    return 0;
}
