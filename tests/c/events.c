/* events.c: the pull event queue through the C ABI.
 * - A download yields FILE_TRANSFERRED for each file (in order) and JOB_TRANSFERRED, with the job's id.
 * - A 404 yields JOB_ERROR with BITS_E_HTTP_ERROR(404) and state ERROR.
 * - Timeouts, NULL out-param (zeroed/E_POINTER), and bits_manager_close while another thread waits:
 *   the wait ends with BITS_E_INVALID_STATE and nothing is used after it was freed (valgrind). */
#define _GNU_SOURCE /* syscall(SYS_gettid) */
#include "check.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

static atomic_long waiter_tid;

/* Whether thread `tid` of this process is asleep (state S): the waiter does nothing but call
 * bits_manager_next_event, so asleep means blocked inside it. */
static int thread_asleep(long tid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%ld/stat", tid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *close_paren = strrchr(buf, ')');
    return close_paren && close_paren[1] == ' ' && close_paren[2] == 'S';
}

static void *wait_forever(void *m) {
    atomic_store(&waiter_tid, (long)syscall(SYS_gettid));
    bits_event e;
    memset(&e, 0xA5, sizeof e);
    bits_hresult hr = bits_manager_next_event((bits_manager *)m, BITS_INFINITE, &e);
    CHECK_HR(hr, BITS_E_INVALID_STATE);
    CHECK(e.kind == 0 && e.state == 0 && e.code == 0);
    return NULL;
}

int main(void) {
    const char *base = test_env("OPENBITS_TEST_URL");
    char *work = make_dir(test_env("OPENBITS_TEST_WORK"), "events");
    char state[1024], a[1024], b[1024], url_a[1024], url_b[1024], url_404[1024];
    path_in(state, sizeof state, work, "state");
    path_in(a, sizeof a, work, "a.bin");
    path_in(b, sizeof b, work, "b.bin");
    snprintf(url_a, sizeof url_a, "%s/mid.bin", base);
    snprintf(url_b, sizeof url_b, "%s/small.bin", base);
    snprintf(url_404, sizeof url_404, "%s/missing.bin", base);

    bits_manager *m = NULL;
    CHECK_HR(bits_manager_open(state, &m), BITS_S_OK);
    bits_event e;
    CHECK_HR(bits_manager_next_event(m, 0, &e), BITS_E_TIMEOUT);
    CHECK_HR(bits_manager_next_event(m, 0, NULL), BITS_E_POINTER);
    CHECK_HR(bits_manager_next_event(NULL, 0, &e), BITS_E_POINTER);

    bits_guid id;
    bits_job *job = NULL;
    CHECK_HR(bits_create_job(m, "events", BITS_JOB_TYPE_DOWNLOAD, &id, &job), BITS_S_OK);
    CHECK_HR(bits_add_file(job, url_a, a), BITS_S_OK);
    CHECK_HR(bits_add_file(job, url_b, b), BITS_S_OK);
    CHECK_HR(bits_resume(job), BITS_S_OK);
    int files_seen = 0, transferred = 0;
    uint32_t next_file = 0;
    while (!transferred) {
        if (!CHECK_HR(bits_manager_next_event(m, 20000, &e), BITS_S_OK)) break;
        CHECK(memcmp(&e.job_id, &id, sizeof id) == 0);
        if (e.kind == BITS_NOTIFY_FILE_TRANSFERRED) {
            CHECKF(e.file_index == next_file, "file %u transferred, expected %u", e.file_index, next_file);
            next_file++;
            files_seen++;
        } else if (e.kind == BITS_NOTIFY_JOB_TRANSFERRED) {
            CHECK(e.state == BITS_JOB_STATE_TRANSFERRED && e.code == BITS_S_OK);
            transferred = 1;
        } else {
            CHECKF(e.kind == BITS_NOTIFY_JOB_MODIFICATION, "unexpected kind 0x%x", e.kind);
        }
    }
    CHECK(files_seen == 2);
    CHECK_HR(bits_complete(job), BITS_S_OK);
    bits_job_release(job);

    CHECK_HR(bits_create_job(m, "404", BITS_JOB_TYPE_DOWNLOAD, &id, &job), BITS_S_OK);
    CHECK_HR(bits_add_file(job, url_404, a), BITS_S_OK);
    CHECK_HR(bits_resume(job), BITS_S_OK);
    int error_seen = 0;
    while (!error_seen && CHECK_HR(bits_manager_next_event(m, 20000, &e), BITS_S_OK)) {
        if (e.kind != BITS_NOTIFY_JOB_ERROR) continue;
        CHECK(memcmp(&e.job_id, &id, sizeof id) == 0);
        CHECK(e.state == BITS_JOB_STATE_ERROR);
        CHECK_HR(e.code, BITS_E_HTTP_ERROR(404));
        error_seen = 1;
    }
    CHECK(error_seen);
    CHECK_HR(bits_cancel(job), BITS_S_OK);
    bits_job_release(job);

    /* Drain, then close while another thread waits for ever. */
    while (bits_manager_next_event(m, 0, &e) == BITS_S_OK) {
    }
    pthread_t t;
    pthread_create(&t, NULL, wait_forever, m);
    /* Close only once the waiter is blocked inside the library (a call that started after the
     * close would use a freed manager, which no program may do). */
    int64_t deadline = now_ms() + 10000;
    while (!(atomic_load(&waiter_tid) && thread_asleep(atomic_load(&waiter_tid))) && now_ms() < deadline) {
        poll_pause();
    }
    CHECK(thread_asleep(atomic_load(&waiter_tid)));
    bits_manager_close(m);
    pthread_join(t, NULL);
    free(work);
    return check_report("events");
}
