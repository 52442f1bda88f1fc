/* persistence.c: what the durable store promises through the C ABI.
 * - bits_manager_open_ex: struct_size bounds, required_version, an older (shorter) struct, options.
 * - A second manager on an open folder fails with 0x80070020; after close it opens.
 * - A job, its files and its progress survive close and reopen; bits_enum_jobs finds it, and the
 *   transfer continues and completes.
 * - bits_enum_jobs: BITS_JOB_ENUM_ALL_USERS is refused without service mode; bits_free(NULL). */
#include "check.h"

#include <stddef.h>

static bits_manager *open_with(const char *dir, uint32_t checkpoint_ms) {
    bits_manager_options o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.state_dir = dir;
    o.checkpoint_interval_ms = checkpoint_ms;
    o.checkpoint_bytes = 64 * 1024;
    bits_manager *m = NULL;
    CHECK_HR(bits_manager_open_ex(&o, &m), BITS_S_OK);
    return m;
}

int main(void) {
    const char *base = test_env("OPENBITS_TEST_URL");
    char *work = make_dir(test_env("OPENBITS_TEST_WORK"), "persistence");
    char state[1024], dest[1024], url[1024];
    path_in(state, sizeof state, work, "state");
    path_in(dest, sizeof dest, work, "big.bin");
    snprintf(url, sizeof url, "%s/big.bin?rate=2000000", base);

    /* Options: size bounds and the version check. */
    bits_manager_options o;
    memset(&o, 0, sizeof o);
    bits_manager *m = (bits_manager *)0x1;
    o.struct_size = 4;
    CHECK_HR(bits_manager_open_ex(&o, &m), BITS_E_INVALIDARG);
    CHECK(m == NULL);
    /* A newer caller's larger struct: accepted if the unknown tail is zero, refused if not. */
    struct { bits_manager_options known; uint64_t newer_field; } bigger;
    memset(&bigger, 0, sizeof bigger);
    bigger.known.struct_size = sizeof bigger;
    bigger.known.state_dir = state;
    bigger.newer_field = 1;
    CHECK_HR(bits_manager_open_ex(&bigger.known, &m), BITS_E_INVALIDARG);
    bigger.newer_field = 0;
    CHECK_HR(bits_manager_open_ex(&bigger.known, &m), BITS_S_OK);
    bits_manager_close(m);
    m = NULL;
    o.struct_size = sizeof o;
    o.state_dir = state;
    o.required_version = ((uint32_t)BITS_VERSION_MAJOR << 16) | (BITS_VERSION_MINOR + 1);
    CHECK_HR(bits_manager_open_ex(&o, &m), (bits_hresult)0x80040154);
    CHECK(m == NULL);
    CHECK_HR(bits_manager_open_ex(NULL, &m), BITS_E_POINTER);
    /* A caller compiled against an older, shorter struct: only the fields it has are read. */
    o.required_version = ((uint32_t)BITS_VERSION_MAJOR << 16) | BITS_VERSION_MINOR;
    o.struct_size = (uint32_t)offsetof(bits_manager_options, max_concurrent_jobs);
    o.checkpoint_bytes = 12345; /* beyond the declared size: ignored */
    CHECK_HR(bits_manager_open_ex(&o, &m), BITS_S_OK);

    /* One manager per folder. */
    bits_manager *second = (bits_manager *)0x1;
    CHECK_HR(bits_manager_open(state, &second), (bits_hresult)0x80070020);
    CHECK(second == NULL);
    CHECKF(strstr(bits_last_error_message(), "in use") != NULL, "%s", bits_last_error_message());
    bits_manager_close(m);

    /* A job survives close and reopen, with its progress. */
    m = open_with(state, 50);
    bits_guid id;
    bits_job *job = NULL;
    CHECK_HR(bits_create_job(m, "survivor", BITS_JOB_TYPE_DOWNLOAD, &id, &job), BITS_S_OK);
    CHECK_HR(bits_add_file(job, url, dest), BITS_S_OK);
    CHECK_HR(bits_job_set_minimum_retry_delay(job, 0), BITS_S_OK);
    CHECK_HR(bits_resume(job), BITS_S_OK);
    uint64_t before = poll_bytes(job, 1500000, 20000);
    CHECKF(before >= 1500000, "only %llu bytes after 20 s", (unsigned long long)before);
    bits_manager_close(m);
    int32_t st = 99;
    CHECK_HR(bits_job_get_state(job, &st), BITS_E_INVALID_STATE);
    bits_job_release(job);

    m = open_with(state, 50);
    bits_guid *ids = (bits_guid *)0x1;
    uint32_t count = 77;
    CHECK_HR(bits_enum_jobs(m, BITS_JOB_ENUM_ALL_USERS, &ids, &count), BITS_E_ACCESSDENIED);
    CHECK(ids == NULL && count == 0);
    CHECK_HR(bits_enum_jobs(m, 0x2, &ids, &count), BITS_E_INVALIDARG);
    CHECK_HR(bits_enum_jobs(m, 0, NULL, &count), BITS_E_POINTER);
    CHECK_HR(bits_enum_jobs(m, 0, &ids, &count), BITS_S_OK);
    CHECK(count == 1 && ids != NULL && memcmp(&ids[0], &id, sizeof id) == 0);
    bits_free(ids);
    bits_free(NULL);
    CHECK_HR(bits_get_job(m, &id, &job), BITS_S_OK);
    bits_job_progress p;
    CHECK_HR(bits_job_get_progress(job, &p), BITS_S_OK);
    CHECKF(p.bytes_transferred > 0 && p.bytes_transferred <= before + 2000000,
           "progress after reopen: %llu (had %llu)", (unsigned long long)p.bytes_transferred, (unsigned long long)before);
    CHECK_WAIT(job, 60000, BITS_JOB_STATE_TRANSFERRED);
    CHECK_HR(bits_complete(job), BITS_S_OK);
    char src[1024];
    path_in(src, sizeof src, test_env("OPENBITS_TEST_SRC"), "big.bin");
    CHECK(files_equal(src, dest));
    CHECK(count_tmp(work) == 0);
    bits_job_release(job);
    bits_manager_close(m);
    free(work);
    return check_report("persistence");
}
