/* priority.c: scheduling by priority through the C ABI, on a bandwidth-bound local server (each
 * response throttled). A LOW job starts first; a HIGH job created later finishes first, because
 * the LOW job gives up its slot (QUEUED) and waits; afterwards it resumes and completes, byte for
 * byte. Also: undefined priorities are BITS_E_NOTIMPL. */
#include "check.h"

int main(void) {
    const char *base = test_env("OPENBITS_TEST_URL");
    const char *src = test_env("OPENBITS_TEST_SRC");
    char *work = make_dir(test_env("OPENBITS_TEST_WORK"), "priority");
    char state[1024], low_path[1024], high_path[1024], low_url[1024], high_url[1024], low_src[1024], high_src[1024];
    path_in(state, sizeof state, work, "state");
    path_in(low_path, sizeof low_path, work, "low.bin");
    path_in(high_path, sizeof high_path, work, "high.bin");
    snprintf(low_url, sizeof low_url, "%s/slow.bin?rate=400000", base);
    snprintf(high_url, sizeof high_url, "%s/mid.bin?rate=400000", base);
    path_in(low_src, sizeof low_src, src, "slow.bin");
    path_in(high_src, sizeof high_src, src, "mid.bin");

    bits_manager *m = NULL;
    CHECK_HR(bits_manager_open(state, &m), BITS_S_OK);
    bits_job *low = NULL, *high = NULL;
    CHECK_HR(bits_create_job(m, "low", BITS_JOB_TYPE_DOWNLOAD, NULL, &low), BITS_S_OK);
    CHECK_HR(bits_job_set_priority(low, 7), BITS_E_NOTIMPL);
    CHECK_HR(bits_job_set_priority(low, BITS_JOB_PRIORITY_LOW), BITS_S_OK);
    CHECK_HR(bits_add_file(low, low_url, low_path), BITS_S_OK);
    CHECK_HR(bits_resume(low), BITS_S_OK);
    CHECK(poll_bytes(low, 100000, 20000) >= 100000);

    CHECK_HR(bits_create_job(m, "high", BITS_JOB_TYPE_DOWNLOAD, NULL, &high), BITS_S_OK);
    CHECK_HR(bits_job_set_priority(high, BITS_JOB_PRIORITY_HIGH), BITS_S_OK);
    CHECK_HR(bits_add_file(high, high_url, high_path), BITS_S_OK);
    CHECK_HR(bits_resume(high), BITS_S_OK);
    CHECK(poll_state(low, BITS_JOB_STATE_QUEUED, 20000) == BITS_JOB_STATE_QUEUED);
    CHECK_WAIT(high, 60000, BITS_JOB_STATE_TRANSFERRED);
    int32_t low_state = job_state(low);
    CHECKF(low_state != BITS_JOB_STATE_TRANSFERRED, "LOW is %s when HIGH is done", check_state_name(low_state));
    CHECK_WAIT(low, 60000, BITS_JOB_STATE_TRANSFERRED);
    bits_job_times ht, lt;
    CHECK_HR(bits_job_get_times(high, &ht), BITS_S_OK);
    CHECK_HR(bits_job_get_times(low, &lt), BITS_S_OK);
    CHECKF(ht.transfer_completion_ms < lt.transfer_completion_ms, "HIGH done at %llu, LOW at %llu",
           (unsigned long long)ht.transfer_completion_ms, (unsigned long long)lt.transfer_completion_ms);
    CHECK(lt.creation_ms <= ht.creation_ms);
    CHECK_HR(bits_complete(high), BITS_S_OK);
    CHECK_HR(bits_complete(low), BITS_S_OK);
    CHECK(files_equal(high_src, high_path));
    CHECK(files_equal(low_src, low_path));
    bits_job_release(low);
    bits_job_release(high);
    bits_manager_close(m);
    free(work);
    return check_report("priority");
}
