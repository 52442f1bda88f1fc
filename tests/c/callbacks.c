/* callbacks.c: push callbacks (bits_job_set_notify_callback).
 * - free_user_data runs exactly once per registration, counted: on replace, on removal, on the
 *   last release of the job, at manager close, and at once when the call fails.
 * - An event that already happened is delivered on registration.
 * - Callbacks call back into the library from the notification thread: complete and release the
 *   job on TRANSFERRED, cancel it on ERROR; 8 threads do this at once, many times. */
#include "check.h"

#include <pthread.h>
#include <stdatomic.h>

static atomic_int freed, called;

typedef struct {
    int id;
    atomic_int frees;      /* must end at exactly 1 */
    bits_job *own;         /* a reference the callback releases (or NULL) */
    atomic_int done;       /* 1 completed, 2 cancelled */
    bits_hresult result;
} ctx_t;

static void free_ctx(void *p) {
    ctx_t *c = p;
    atomic_fetch_add(&c->frees, 1);
    atomic_fetch_add(&freed, 1);
}

/* Completes on TRANSFERRED, cancels on ERROR, then releases its own reference to the job. */
static void on_event(void *p, bits_job *job, const bits_event *e) {
    ctx_t *c = p;
    atomic_fetch_add(&called, 1);
    if (e->kind == BITS_NOTIFY_JOB_TRANSFERRED) {
        c->result = bits_complete(job);
        if (c->own) bits_job_release(c->own), c->own = NULL;
        atomic_store(&c->done, 1);
    } else if (e->kind == BITS_NOTIFY_JOB_ERROR) {
        c->result = bits_cancel(job);
        if (c->own) bits_job_release(c->own), c->own = NULL;
        atomic_store(&c->done, 2);
    }
}

static int wait_done(ctx_t *c, int64_t ms) {
    int64_t end = now_ms() + ms;
    while (!atomic_load(&c->done) && now_ms() < end) poll_pause();
    return atomic_load(&c->done);
}

static int wait_frees(ctx_t *c, int64_t ms) {
    int64_t end = now_ms() + ms;
    while (atomic_load(&c->frees) == 0 && now_ms() < end) poll_pause();
    return atomic_load(&c->frees);
}

static const char *base, *work;
static bits_manager *shared_mgr;

static void *stress(void *arg) {
    long t = (long)arg;
    for (int i = 0; i < 10; i++) {
        char dest[1024], url[1024];
        snprintf(dest, sizeof dest, "%s/stress-%ld-%d.bin", work, t, i);
        snprintf(url, sizeof url, "%s/%s", base, (i % 3 == 2) ? "missing.bin" : "small.bin");
        ctx_t *c = calloc(1, sizeof *c);
        bits_job *job = NULL;
        if (!CHECK_HR(bits_create_job(shared_mgr, "stress", BITS_JOB_TYPE_DOWNLOAD, NULL, &job), BITS_S_OK)) break;
        CHECK_HR(bits_add_file(job, url, dest), BITS_S_OK);
        bits_job *mine = NULL;
        bits_guid id;
        CHECK_HR(bits_job_get_id(job, &id), BITS_S_OK);
        CHECK_HR(bits_get_job(shared_mgr, &id, &mine), BITS_S_OK);
        c->own = mine; /* released by the callback */
        CHECK_HR(bits_job_set_notify_callback(job, BITS_NOTIFY_JOB_TRANSFERRED | BITS_NOTIFY_JOB_ERROR, on_event, c, free_ctx), BITS_S_OK);
        CHECK_HR(bits_resume(job), BITS_S_OK);
        bits_job_release(job); /* the callback's reference keeps it registered */
        int d = wait_done(c, 30000);
        CHECKF(d == ((i % 3 == 2) ? 2 : 1), "thread %ld job %d ended with %d", t, i, d);
        CHECK_HR(c->result, BITS_S_OK);
        /* The callback released the last reference: the registration goes, its data is freed once. */
        CHECK(wait_frees(c, 10000) == 1);
        CHECK(atomic_load(&c->frees) == 1);
        free(c);
    }
    return NULL;
}

int main(void) {
    base = test_env("OPENBITS_TEST_URL");
    work = make_dir(test_env("OPENBITS_TEST_WORK"), "callbacks");
    char state[1024], dest[1024], url[1024];
    path_in(state, sizeof state, work, "state");
    path_in(dest, sizeof dest, work, "one.bin");
    snprintf(url, sizeof url, "%s/small.bin", base);
    bits_manager *m = NULL;
    CHECK_HR(bits_manager_open(state, &m), BITS_S_OK);
    bits_job *job = NULL;
    CHECK_HR(bits_create_job(m, "callbacks", BITS_JOB_TYPE_DOWNLOAD, NULL, &job), BITS_S_OK);

    /* Failing calls and NULL callbacks consume user_data at once. */
    ctx_t a = {0}, b = {0}, c = {0}, d = {0};
    CHECK_HR(bits_job_set_notify_callback(job, 0x40, on_event, &a, free_ctx), BITS_E_NOTIMPL);
    CHECK(atomic_load(&a.frees) == 1);
    CHECK_HR(bits_job_set_notify_callback(NULL, 1, on_event, &b, free_ctx), BITS_E_POINTER);
    CHECK(atomic_load(&b.frees) == 1);
    CHECK_HR(bits_job_set_notify_callback(job, 1, NULL, &c, free_ctx), BITS_S_OK);
    CHECK(atomic_load(&c.frees) == 1);
    /* Replacing frees the previous registration's data, once. */
    memset(&a, 0, sizeof a);
    CHECK_HR(bits_job_set_notify_callback(job, BITS_NOTIFY_JOB_TRANSFERRED, on_event, &a, free_ctx), BITS_S_OK);
    CHECK_HR(bits_job_set_notify_callback(job, BITS_NOTIFY_JOB_TRANSFERRED, on_event, &d, free_ctx), BITS_S_OK);
    CHECK(wait_frees(&a, 5000) == 1);
    CHECK(atomic_load(&d.frees) == 0);

    /* The job transfers; the callback completes it from the notification thread. */
    CHECK_HR(bits_add_file(job, url, dest), BITS_S_OK);
    CHECK_HR(bits_resume(job), BITS_S_OK);
    CHECK(wait_done(&d, 20000) == 1);
    CHECK_HR(d.result, BITS_S_OK);
    CHECK_STATE(job, BITS_JOB_STATE_ACKNOWLEDGED);
    /* Releasing the last reference frees the registration. */
    bits_job_release(job);
    CHECK(wait_frees(&d, 5000) == 1);

    /* An event that already happened is delivered on registration. */
    ctx_t late = {0}, at_close = {0};
    char dest2[1024];
    path_in(dest2, sizeof dest2, work, "two.bin");
    CHECK_HR(bits_create_job(m, "late", BITS_JOB_TYPE_DOWNLOAD, NULL, &job), BITS_S_OK);
    CHECK_HR(bits_add_file(job, url, dest2), BITS_S_OK);
    CHECK_HR(bits_resume(job), BITS_S_OK);
    CHECK_WAIT(job, 20000, BITS_JOB_STATE_TRANSFERRED);
    CHECK_HR(bits_job_set_notify_callback(job, BITS_NOTIFY_JOB_TRANSFERRED, on_event, &late, free_ctx), BITS_S_OK);
    CHECK(wait_done(&late, 10000) == 1);
    /* A registration still in place at close is freed by the close. */
    bits_job *other = NULL;
    CHECK_HR(bits_create_job(m, "at close", BITS_JOB_TYPE_DOWNLOAD, NULL, &other), BITS_S_OK);
    CHECK_HR(bits_job_set_notify_callback(other, BITS_NOTIFY_JOB_TRANSFERRED, on_event, &at_close, free_ctx), BITS_S_OK);

    /* 8 threads, 10 jobs each: complete / cancel / release from inside callbacks. */
    shared_mgr = m;
    pthread_t threads[8];
    for (long t = 0; t < 8; t++) pthread_create(&threads[t], NULL, stress, (void *)t);
    for (int t = 0; t < 8; t++) pthread_join(threads[t], NULL);

    CHECK(atomic_load(&at_close.frees) == 0);
    bits_manager_close(m);
    CHECK(atomic_load(&at_close.frees) == 1);
    bits_job_release(other);
    bits_job_release(job);
    CHECK(atomic_load(&late.frees) == 1);
    CHECK(count_tmp(work) == 0);
    printf("callbacks: %d calls, %d frees\n", atomic_load(&called), atomic_load(&freed));
    return check_report("callbacks");
}
