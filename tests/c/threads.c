/*
 * threads.c: one manager used from many threads at once.
 *
 * Proves: 8 worker threads, 25 iterations each, can create a job, add a file, resume, suspend,
 * resume, and then cancel it, wait and complete it, or complete it at once, all concurrently, while
 * they also suspend and resume 3 shared jobs and 2 reader threads poll those shared jobs
 * (get_state, get_progress, get_error) and look up the workers' jobs by id. Every return code is
 * one the header documents for that situation; progress never goes backwards; in the end no
 * BIT*.tmp is left, every completed job's file equals its source, no cancelled or partially
 * completed job left a destination, and the shared jobs, suspended and resumed hundreds of times,
 * finish with correct content.
 * Then bits_cancel and bits_complete race on one job from two threads, 20 times: exactly one wins,
 * the other gets BITS_E_INVALID_STATE, and the files match the winner.
 * Bonus: bits_manager_close while other threads are blocked in bits_job_wait on running jobs:
 * the waits return BITS_E_INVALID_STATE and close returns within its documented 5 s.
 *
 * Environment (set by run.sh): OPENBITS_TEST_URL, OPENBITS_TEST_SRC, OPENBITS_TEST_WORK.
 */
#include "check.h"

#include <pthread.h>

#define WORKERS 8
#define ITERATIONS 25
#define READERS 2
#define SHARED 3
#define WAITERS 3

enum outcome { CANCELLED = 1, COMPLETED, PARTIAL };

static const char *base, *src, *work;
static bits_manager *mgr;
static bits_job *shared_jobs[SHARED];
static char shared_dest[SHARED][1024];
static atomic_int workers_running = WORKERS;
static atomic_int reader_rounds;
static atomic_int url_seq;

static pthread_mutex_t published_lock = PTHREAD_MUTEX_INITIALIZER;
static bits_guid published[WORKERS];
static int published_count;

struct worker {
    int index;
    char *dir;
    enum outcome outcome[ITERATIONS];
    char dest[ITERATIONS][1024];
    const char *source[ITERATIONS];
};

static void mkurl(char *buf, size_t len, const char *file, const char *query) {
    snprintf(buf, len, "%s/%s?%s%su=t%d-%d", base, file, query ? query : "", query ? "&" : "", (int)getpid(),
             atomic_fetch_add(&url_seq, 1));
}

static void *worker_main(void *arg) {
    struct worker *w = arg;
    for (int k = 0; k < ITERATIONS; k++) {
        int action = (w->index + k) % 4;
        char name[64], url[512];
        snprintf(name, sizeof name, "worker %d job %d", w->index, k);
        bits_guid id;
        bits_job *job = NULL;
        if (!CHECK_HR(bits_create_job(mgr, name, BITS_JOB_TYPE_DOWNLOAD, &id, &job), BITS_S_OK) || !job) continue;
        pthread_mutex_lock(&published_lock);
        published[w->index] = id;
        if (published_count <= w->index) published_count = w->index + 1;
        pthread_mutex_unlock(&published_lock);

        const char *file = (k % 2) ? "small.bin" : "mid.bin";
        mkurl(url, sizeof url, file, action == 3 ? "rate=2000000" : NULL);
        w->source[k] = file;
        snprintf(w->dest[k], sizeof w->dest[k], "%s/f%02d-%s", w->dir, k, file);
        CHECK_HR(bits_add_file(job, url, w->dest[k]), BITS_S_OK);
        CHECK_HR(bits_resume(job), BITS_S_OK);
        CHECK_HR(bits_suspend(job), BITS_S_OK);
        CHECK_HR(bits_resume(job), BITS_S_OK);

        /* Poke a shared job too. */
        bits_job *s = shared_jobs[(w->index + k) % SHARED];
        if (k % 3 == 0)
            CHECK_HR(bits_suspend(s), BITS_S_OK);
        else
            CHECK_HR(bits_resume(s), BITS_S_OK);

        int32_t st = -1;
        bits_hresult hr;
        switch (action) {
        case 0: /* cancel at once, probably mid-transfer */
        case 3: /* a short wait that usually times out, then cancel */
            if (action == 3) {
                CHECK_HR_ONEOF(bits_job_wait(job, 5, &st), BITS_S_OK, BITS_E_TIMEOUT);
                CHECK(st == 0 || st == BITS_JOB_STATE_TRANSFERRED);
            }
            CHECK_HR_ONEOF(bits_cancel(job), BITS_S_OK, BITS_S_UNABLE_TO_DELETE_FILES);
            CHECK_STATE(job, BITS_JOB_STATE_CANCELLED);
            w->outcome[k] = CANCELLED;
            break;
        case 1: /* wait for the transfer, then complete */
            CHECK_WAIT(job, 60000, BITS_JOB_STATE_TRANSFERRED);
            CHECK_HR(bits_complete(job), BITS_S_OK);
            CHECK_STATE(job, BITS_JOB_STATE_ACKNOWLEDGED);
            w->outcome[k] = COMPLETED;
            break;
        case 2: /* complete at once: whole or nothing */
            hr = bits_complete(job);
            CHECK_HR_ONEOF(hr, BITS_S_OK, BITS_S_PARTIAL_COMPLETE);
            CHECK_STATE(job, BITS_JOB_STATE_ACKNOWLEDGED);
            w->outcome[k] = hr == BITS_S_OK ? COMPLETED : PARTIAL;
            break;
        }
        CHECK_HR(bits_cancel(job), BITS_E_INVALID_STATE);
        bits_job *again = (bits_job *)(uintptr_t)0x1;
        CHECK_HR(bits_get_job(mgr, &id, &again), BITS_E_NOT_FOUND);
        CHECK(again == NULL);
        bits_job_release(job);
    }
    atomic_fetch_sub(&workers_running, 1);
    return NULL;
}

static void *reader_main(void *arg) {
    (void)arg;
    uint64_t last_bytes[SHARED] = {0};
    while (atomic_load(&workers_running) > 0) {
        for (int i = 0; i < SHARED; i++) {
            int32_t st = -1;
            CHECK_HR(bits_job_get_state(shared_jobs[i], &st), BITS_S_OK);
            CHECKF(st >= BITS_JOB_STATE_QUEUED && st <= BITS_JOB_STATE_TRANSFERRED && st != BITS_JOB_STATE_ERROR,
                   "shared job %d in state %d (%s)", i, st, check_state_name(st));
            bits_job_progress p;
            CHECK_HR(bits_job_get_progress(shared_jobs[i], &p), BITS_S_OK);
            CHECK(p.files_total == 1 && p.files_transferred <= 1);
            CHECKF(p.bytes_total == BITS_SIZE_UNKNOWN || p.bytes_transferred <= p.bytes_total,
                   "bytes_transferred %llu > bytes_total %llu", (unsigned long long)p.bytes_transferred,
                   (unsigned long long)p.bytes_total);
            CHECKF(p.bytes_transferred >= last_bytes[i], "shared job %d went back from %llu to %llu bytes", i,
                   (unsigned long long)last_bytes[i], (unsigned long long)p.bytes_transferred);
            last_bytes[i] = p.bytes_transferred;
            int32_t ctx;
            bits_hresult code;
            char *desc = NULL;
            bits_hresult hr = bits_job_get_error(shared_jobs[i], &ctx, &code, &desc);
            CHECK_HR_ONEOF(hr, BITS_S_OK, BITS_E_ERROR_INFORMATION_UNAVAILABLE);
            if (hr == BITS_S_OK) fprintf(stderr, "note: shared job %d reports error 0x%08X: %s\n", i, (uint32_t)code, desc);
            bits_free_string(desc);
        }
        /* Look up whatever the workers are doing now. */
        pthread_mutex_lock(&published_lock);
        int n = published_count;
        bits_guid ids[WORKERS];
        memcpy(ids, published, sizeof ids);
        pthread_mutex_unlock(&published_lock);
        for (int i = 0; i < n; i++) {
            bits_job *j = NULL;
            bits_hresult hr = bits_get_job(mgr, &ids[i], &j);
            CHECK_HR_ONEOF(hr, BITS_S_OK, BITS_E_NOT_FOUND);
            if (hr == BITS_S_OK && CHECK(j != NULL)) {
                int32_t st = -1;
                CHECK_HR(bits_job_get_state(j, &st), BITS_S_OK);
                CHECK(st >= BITS_JOB_STATE_QUEUED && st <= BITS_JOB_STATE_CANCELLED);
                bits_job_progress p;
                CHECK_HR(bits_job_get_progress(j, &p), BITS_S_OK);
                bits_job_release(j);
            } else {
                CHECK(j == NULL);
            }
        }
        atomic_fetch_add(&reader_rounds, 1);
    }
    return NULL;
}

struct waiter {
    bits_job *job;
    atomic_int started;
    bits_hresult result;
    int32_t state;
};

static void *waiter_main(void *arg) {
    struct waiter *w = arg;
    atomic_store(&w->started, 1);
    w->state = 0x7777;
    w->result = bits_job_wait(w->job, BITS_INFINITE, &w->state);
    return NULL;
}

/* Two threads race bits_cancel and bits_complete on one job: exactly one wins. */
#define RACES 20
struct racer {
    bits_job *job;
    pthread_barrier_t *start;
    int complete; /* 1: calls bits_complete, 0: bits_cancel */
    bits_hresult result;
};

static void *racer_main(void *arg) {
    struct racer *r = arg;
    pthread_barrier_wait(r->start);
    r->result = r->complete ? bits_complete(r->job) : bits_cancel(r->job);
    return NULL;
}

static void race_cancel_and_complete(void) {
    char *dir = make_dir(work, "threads-race");
    char mid[1024];
    path_in(mid, sizeof mid, src, "mid.bin");
    int wins[2] = {0};
    for (int i = 0; i < RACES; i++) {
        char url[512], dest[1024];
        bits_job *job = NULL;
        if (!CHECK_HR(bits_create_job(mgr, "race", BITS_JOB_TYPE_DOWNLOAD, NULL, &job), BITS_S_OK) || !job) return;
        mkurl(url, sizeof url, "mid.bin", NULL);
        snprintf(dest, sizeof dest, "%s/race%02d.bin", dir, i);
        CHECK_HR(bits_add_file(job, url, dest), BITS_S_OK);
        CHECK_HR(bits_resume(job), BITS_S_OK);
        if (i % 2) CHECK_WAIT(job, 30000, BITS_JOB_STATE_TRANSFERRED); /* half race on a finished job */

        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, 2);
        struct racer r[2] = {{job, &start, 0, 0}, {job, &start, 1, 0}};
        pthread_t t[2];
        for (int k = 0; k < 2; k++) CHECK(pthread_create(&t[k], NULL, racer_main, &r[k]) == 0);
        for (int k = 0; k < 2; k++) pthread_join(t[k], NULL);
        pthread_barrier_destroy(&start);

        int cancel_won = r[0].result == BITS_S_OK || r[0].result == BITS_S_UNABLE_TO_DELETE_FILES;
        int complete_won = r[1].result == BITS_S_OK || r[1].result == BITS_S_PARTIAL_COMPLETE;
        CHECKF(cancel_won + complete_won == 1, "cancel returned 0x%08X, complete 0x%08X: exactly one must win",
               (uint32_t)r[0].result, (uint32_t)r[1].result);
        CHECK_HR_ONEOF(r[cancel_won ? 1 : 0].result, BITS_E_INVALID_STATE);
        int32_t st = job_state(job);
        CHECKF(st == (cancel_won ? BITS_JOB_STATE_CANCELLED : BITS_JOB_STATE_ACKNOWLEDGED), "state %s after the race",
               check_state_name(st));
        if (complete_won && r[1].result == BITS_S_OK)
            CHECK(files_equal(mid, dest));
        else
            CHECKF(!file_exists(dest), "%s exists though the job was %s", dest,
                   cancel_won ? "cancelled" : "partially completed");
        wins[complete_won]++;
        bits_job_release(job);
    }
    CHECKF(count_tmp(dir) == 0, "BIT*.tmp left in %s", dir);
    printf("  cancel/complete races: cancel won %d, complete won %d\n", wins[0], wins[1]);
    free(dir);
}

/* Bonus: close the manager while threads wait on its running jobs. */
static void close_while_waiting(void) {
    char *dir = make_dir(work, "threads-close");
    struct waiter waiters[WAITERS];
    pthread_t threads[WAITERS];
    for (int i = 0; i < WAITERS; i++) {
        char url[512], dest[1024];
        waiters[i].job = NULL;
        atomic_init(&waiters[i].started, 0);
        CHECK_HR(bits_create_job(mgr, "waited on", BITS_JOB_TYPE_DOWNLOAD, NULL, &waiters[i].job), BITS_S_OK);
        mkurl(url, sizeof url, "slow.bin", "rate=65536");
        snprintf(dest, sizeof dest, "%s/w%d.bin", dir, i);
        CHECK_HR(bits_add_file(waiters[i].job, url, dest), BITS_S_OK);
        CHECK_HR(bits_resume(waiters[i].job), BITS_S_OK);
    }
    for (int i = 0; i < WAITERS; i++) CHECK(pthread_create(&threads[i], NULL, waiter_main, &waiters[i]) == 0);
    /* Every waiter has started and every job is moving bytes. */
    int64_t deadline = now_ms() + 10000;
    for (int i = 0; i < WAITERS; i++) {
        while (!atomic_load(&waiters[i].started) && now_ms() < deadline) poll_pause();
        CHECK(poll_bytes(waiters[i].job, 1, deadline - now_ms()) > 0);
    }
    int64_t t0 = now_ms();
    bits_manager_close(mgr);
    mgr = NULL;
    int64_t took = now_ms() - t0;
    CHECKF(took < 5500, "bits_manager_close took %lld ms", (long long)took);
    for (int i = 0; i < WAITERS; i++) {
        pthread_join(threads[i], NULL);
        CHECK_HR(waiters[i].result, BITS_E_INVALID_STATE);
        CHECKF(waiters[i].state == 0, "out_state %d after a failed wait", waiters[i].state);
        CHECK_HR(bits_job_get_state(waiters[i].job, &waiters[i].state), BITS_E_INVALID_STATE);
        bits_job_release(waiters[i].job);
    }
    free(dir);
}

int main(void) {
    base = test_env("OPENBITS_TEST_URL");
    src = test_env("OPENBITS_TEST_SRC");
    work = test_env("OPENBITS_TEST_WORK");
    char *state = make_dir(work, "threads-state");
    char *shared_dir = make_dir(work, "threads-shared");
    if (!CHECK_HR(bits_manager_open(state, &mgr), BITS_S_OK)) return check_report("threads");

    for (int i = 0; i < SHARED; i++) {
        char url[512];
        mkurl(url, sizeof url, "slow.bin", "rate=1048576");
        snprintf(shared_dest[i], sizeof shared_dest[i], "%s/shared%d.bin", shared_dir, i);
        if (!CHECK_HR(bits_create_job(mgr, "shared", BITS_JOB_TYPE_DOWNLOAD, NULL, &shared_jobs[i]), BITS_S_OK))
            return check_report("threads");
        CHECK_HR(bits_job_set_minimum_retry_delay(shared_jobs[i], 0), BITS_S_OK);
        CHECK_HR(bits_add_file(shared_jobs[i], url, shared_dest[i]), BITS_S_OK);
        CHECK_HR(bits_resume(shared_jobs[i]), BITS_S_OK);
    }

    static struct worker workers[WORKERS];
    pthread_t wt[WORKERS], rt[READERS];
    int64_t t0 = now_ms();
    for (int i = 0; i < WORKERS; i++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "threads-w%d", i);
        workers[i].index = i;
        workers[i].dir = make_dir(work, prefix);
        if (pthread_create(&wt[i], NULL, worker_main, &workers[i]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 2;
        }
    }
    for (int i = 0; i < READERS; i++) {
        if (pthread_create(&rt[i], NULL, reader_main, NULL) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 2;
        }
    }
    for (int i = 0; i < WORKERS; i++) pthread_join(wt[i], NULL);
    for (int i = 0; i < READERS; i++) pthread_join(rt[i], NULL);
    printf("  %d workers x %d jobs in %lld ms; readers made %d rounds\n", WORKERS, ITERATIONS,
           (long long)(now_ms() - t0), atomic_load(&reader_rounds));

    /* Every job is final: no temp file anywhere, destinations exactly as the outcomes say. */
    int counts[4] = {0};
    for (int i = 0; i < WORKERS; i++) {
        int tmp = count_tmp(workers[i].dir);
        CHECKF(tmp == 0, "%d BIT*.tmp left in %s", tmp, workers[i].dir);
        for (int k = 0; k < ITERATIONS; k++) {
            char source[1024];
            path_in(source, sizeof source, src, workers[i].source[k] ? workers[i].source[k] : "none");
            counts[workers[i].outcome[k]]++;
            switch (workers[i].outcome[k]) {
            case COMPLETED:
                CHECKF(files_equal(source, workers[i].dest[k]), "completed job: %s", workers[i].dest[k]);
                break;
            case CANCELLED:
            case PARTIAL:
                CHECKF(!file_exists(workers[i].dest[k]), "%s exists for a %s job", workers[i].dest[k],
                       workers[i].outcome[k] == PARTIAL ? "partially completed" : "cancelled");
                break;
            default:
                CHECKF(0, "worker %d job %d has no outcome", i, k);
            }
        }
    }
    printf("  outcomes: %d cancelled, %d completed, %d partially completed (nothing kept)\n", counts[CANCELLED],
           counts[COMPLETED], counts[PARTIAL]);

    /* The shared jobs, suspended and resumed by everyone, still finish with the right bytes. */
    char slow[1024];
    path_in(slow, sizeof slow, src, "slow.bin");
    for (int i = 0; i < SHARED; i++) {
        CHECK_HR(bits_resume(shared_jobs[i]), BITS_S_OK);
        CHECK_WAIT(shared_jobs[i], 60000, BITS_JOB_STATE_TRANSFERRED);
        CHECK_HR(bits_complete(shared_jobs[i]), BITS_S_OK);
        CHECKF(files_equal(slow, shared_dest[i]), "shared job %d", i);
        bits_job_release(shared_jobs[i]);
    }
    CHECK(count_tmp(shared_dir) == 0);

    race_cancel_and_complete();
    close_while_waiting();

    for (int i = 0; i < WORKERS; i++) free(workers[i].dir);
    free(state);
    free(shared_dir);
    return check_report("threads");
}
