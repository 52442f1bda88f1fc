/*
 * examples/demo.c: a BITS download job through the openbits C API, in the documented order:
 *
 *   open the manager -> create a job -> add the files -> resume
 *   -> poll state and progress until TRANSFERRED (or ERROR) -> complete
 *
 *   demo BASE_URL DEST_DIR NAME...
 *
 * Each NAME is downloaded from BASE_URL/NAME to DEST_DIR/NAME. A NAME may carry a query string
 * (e.g. "a.bin?rate=100000"); it is left out of the local name. The manager keeps its state in
 * DEST_DIR/.openbits-state. examples/demo.sh builds and runs this against a local server.
 */
#define _POSIX_C_SOURCE 200809L

#include "openbits.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *state_name(int32_t s)
{
    static const char *const names[] = {
        "QUEUED", "CONNECTING", "TRANSFERRING", "SUSPENDED", "ERROR",
        "TRANSIENT_ERROR", "TRANSFERRED", "ACKNOWLEDGED", "CANCELLED",
    };
    return s >= 0 && s < (int32_t)(sizeof names / sizeof names[0]) ? names[s] : "?";
}

/* Prints what failed and the library's detail for this thread, and returns 0. */
static int ok(bits_hresult hr, const char *what)
{
    if (BITS_FAILED(hr)) {
        fprintf(stderr, "\ndemo: %s failed: 0x%08" PRIX32 " %s\n", what, (uint32_t)hr,
                bits_last_error_message());
        return 0;
    }
    return 1;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One progress line; on a terminal it overwrites itself, elsewhere each call is a new line. */
static void show(int tty, int32_t state, const bits_job_progress *p)
{
    char total[32], percent[16];
    if (p->bytes_total == BITS_SIZE_UNKNOWN) {
        /* BITS reports the job's total only once every file's size is known. */
        snprintf(total, sizeof total, "?");
        snprintf(percent, sizeof percent, "--");
    } else {
        snprintf(total, sizeof total, "%" PRIu64, p->bytes_total);
        double pc = p->bytes_total ? 100.0 * (double)p->bytes_transferred / (double)p->bytes_total
                                   : 100.0;
        snprintf(percent, sizeof percent, "%5.1f%%", pc);
    }
    printf("%s%-15s %10" PRIu64 " / %-10s bytes %7s   files %" PRIu32 "/%" PRIu32 "%s",
           tty ? "\r" : "", state_name(state), p->bytes_transferred, total, percent,
           p->files_transferred, p->files_total, tty ? "\033[K" : "\n");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s BASE_URL DEST_DIR NAME...\n", argv[0]);
        return 2;
    }
    const char *base = argv[1], *dest_dir = argv[2];
    int tty = isatty(STDOUT_FILENO);
    int rc = 1;
    bits_manager *mgr = NULL;
    bits_job *job = NULL;

    printf("openbits %s\n", bits_version_string());

    /* 1. The manager: a queue of jobs, persisted in a state folder, with its own threads. */
    char state_dir[4096];
    snprintf(state_dir, sizeof state_dir, "%s/.openbits-state", dest_dir);
    if (!ok(bits_manager_open(state_dir, &mgr), "bits_manager_open"))
        return 1;

    /* 2. A download job. It starts SUSPENDED. */
    bits_guid id;
    if (!ok(bits_create_job(mgr, "openbits demo", BITS_JOB_TYPE_DOWNLOAD, &id, &job),
            "bits_create_job"))
        goto out;
    char guid[BITS_GUID_STRING_LEN];
    if (!ok(bits_guid_to_string(&id, guid, sizeof guid), "bits_guid_to_string"))
        goto out;
    printf("job %s created\n", guid);

    /* 3. Its files: remote URL -> absolute local path. */
    for (int i = 3; i < argc; i++) {
        const char *name = argv[i];
        size_t name_len = strcspn(name, "?#");
        char url[2300], path[4096];
        if (snprintf(url, sizeof url, "%s/%s", base, name) >= (int)sizeof url ||
            snprintf(path, sizeof path, "%s/%.*s", dest_dir, (int)name_len, name) >=
                (int)sizeof path) {
            fprintf(stderr, "demo: name too long: %s\n", name);
            goto out;
        }
        if (!ok(bits_add_file(job, url, path), "bits_add_file"))
            goto out;
        printf("  + %s -> %s\n", url, path);
    }

    /* 4. Resume: the job is queued and the manager's threads transfer it. */
    if (!ok(bits_resume(job), "bits_resume"))
        goto out;

    /* 5. Poll until the job is TRANSFERRED or ERROR (TRANSIENT_ERROR retries by itself). */
    double t0 = now_s();
    int32_t state = 0;
    bits_job_progress p;
    for (unsigned tick = 0;; tick++) {
        if (!ok(bits_job_get_state(job, &state), "bits_job_get_state") ||
            !ok(bits_job_get_progress(job, &p), "bits_job_get_progress"))
            goto out;
        int done = state == BITS_JOB_STATE_TRANSFERRED || state == BITS_JOB_STATE_ERROR;
        if (tty || done || tick % 10 == 0)
            show(tty, state, &p);
        if (done)
            break;
        sleep_ms(100);
    }
    if (tty)
        printf("\n");

    if (state == BITS_JOB_STATE_ERROR) {
        int32_t context = 0;
        bits_hresult code = 0;
        char *description = NULL;
        if (ok(bits_job_get_error(job, &context, &code, &description), "bits_job_get_error"))
            fprintf(stderr, "demo: job failed: 0x%08" PRIX32 " (context %" PRId32 "): %s\n",
                    (uint32_t)code, context, description ? description : "");
        bits_free_string(description);
        bits_cancel(job); /* deletes the temporary files */
        goto out;
    }
    printf("transferred %" PRIu64 " bytes in %" PRIu32 " files in %.1f s\n",
           p.bytes_transferred, p.files_transferred, now_s() - t0);

    /* 6. Complete: the temporary BIT*.tmp files are flushed and renamed onto the destinations. */
    bits_hresult hr = bits_complete(job);
    if (!ok(hr, "bits_complete"))
        goto out;
    if (hr != BITS_S_OK) {
        fprintf(stderr, "demo: bits_complete returned 0x%08" PRIX32 "\n", (uint32_t)hr);
        goto out;
    }
    if (!ok(bits_job_get_state(job, &state), "bits_job_get_state"))
        goto out;
    printf("job %s %s\n", guid, state_name(state));
    rc = 0;

out:
    bits_job_release(job);
    bits_manager_close(mgr);
    return rc;
}
