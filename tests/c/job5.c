/* job5.c: BITS 5 job properties and the download limits through the C ABI: dynamic content,
 * maximum download size, maximum download time, the notification command line, and the
 * "only before the first resume" rule. */
#include "check.h"

int main(void) {
    const char *base = test_env("OPENBITS_TEST_URL");
    const char *src = test_env("OPENBITS_TEST_SRC");
    char *work = make_dir(test_env("OPENBITS_TEST_WORK"), "job5");
    char state[1024], d1[1024], d2[1024], d3[1024], marker[1024], params[2048], url[1024], s1[1024];
    path_in(state, sizeof state, work, "state");
    path_in(d1, sizeof d1, work, "dynamic.bin");
    path_in(d2, sizeof d2, work, "big.bin");
    path_in(d3, sizeof d3, work, "slow.bin");
    path_in(marker, sizeof marker, work, "marker");
    path_in(s1, sizeof s1, src, "mid.bin");
    bits_manager *m = NULL;
    CHECK_HR(bits_manager_open(state, &m), BITS_S_OK);
    bits_job *job = NULL;

    /* Dynamic content: no Content-Length; the command line runs on TRANSFERRED. */
    CHECK_HR(bits_create_job(m, "dynamic", BITS_JOB_TYPE_DOWNLOAD, NULL, &job), BITS_S_OK);
    int32_t on = -1;
    CHECK_HR(bits_job_get_dynamic_content(job, &on), BITS_S_OK);
    CHECK(on == 0);
    CHECK_HR(bits_job_set_dynamic_content(job, 1), BITS_S_OK);
    char *prog = (char *)1, *par = (char *)1;
    CHECK_HR(bits_job_get_notify_cmdline(job, &prog, &par), BITS_S_FALSE);
    CHECK(prog == NULL && par == NULL);
    CHECK_HR(bits_job_set_notify_cmdline(job, "touch", NULL), BITS_E_INVALIDARG);
    snprintf(params, sizeof params, "/usr/bin/touch \"%s\"", marker);
    CHECK_HR(bits_job_set_notify_cmdline(job, "/usr/bin/touch", params), BITS_S_OK);
    CHECK_HR(bits_job_get_notify_cmdline(job, &prog, &par), BITS_S_OK);
    CHECK(prog && strcmp(prog, "/usr/bin/touch") == 0 && par && strcmp(par, params) == 0);
    bits_free_string(prog);
    bits_free_string(par);
    snprintf(url, sizeof url, "%s/mid.bin?nolength=1", base);
    CHECK_HR(bits_add_file(job, url, d1), BITS_S_OK);
    CHECK_HR(bits_resume(job), BITS_S_OK);
    CHECK_HR(bits_job_set_dynamic_content(job, 0), BITS_E_READ_ONLY_PROPERTY_AFTER_RESUME);
    CHECK_HR(bits_job_set_max_download_size(job, 5), BITS_E_READ_ONLY_PROPERTY_AFTER_RESUME);
    CHECK_WAIT(job, 20000, BITS_JOB_STATE_TRANSFERRED);
    int64_t end = now_ms() + 10000;
    while (!file_exists(marker) && now_ms() < end) poll_pause();
    CHECK(file_exists(marker));
    CHECK_HR(bits_complete(job), BITS_S_OK);
    CHECK(files_equal(s1, d1));
    bits_job_release(job);

    /* Maximum download size. */
    CHECK_HR(bits_create_job(m, "too big", BITS_JOB_TYPE_DOWNLOAD, NULL, &job), BITS_S_OK);
    uint64_t max = 0;
    CHECK_HR(bits_job_get_max_download_size(job, &max), BITS_S_OK);
    CHECK(max == UINT64_MAX);
    CHECK_HR(bits_job_set_max_download_size(job, 0), BITS_E_MAX_DOWNLOAD_SIZE_INVALID_VALUE);
    CHECK_HR(bits_job_set_max_download_size(job, 1000), BITS_S_OK);
    snprintf(url, sizeof url, "%s/mid.bin", base);
    CHECK_HR(bits_add_file(job, url, d2), BITS_S_OK);
    CHECK_HR(bits_resume(job), BITS_S_OK);
    CHECK_WAIT(job, 20000, BITS_JOB_STATE_ERROR);
    int32_t ctx;
    bits_hresult code;
    CHECK_HR(bits_job_get_error(job, &ctx, &code, NULL), BITS_S_OK);
    CHECK_HR(code, BITS_E_MAX_DOWNLOAD_SIZE_LIMIT_REACHED);
    CHECK_HR(bits_cancel(job), BITS_S_OK);
    bits_job_release(job);

    /* Maximum download time. */
    CHECK_HR(bits_create_job(m, "too slow", BITS_JOB_TYPE_DOWNLOAD, NULL, &job), BITS_S_OK);
    uint32_t secs = 0;
    CHECK_HR(bits_job_get_maximum_download_time(job, &secs), BITS_S_OK);
    CHECK(secs == 7776000);
    CHECK_HR(bits_job_set_maximum_download_time(job, 1), BITS_S_OK);
    snprintf(url, sizeof url, "%s/slow.bin?rate=100000", base);
    CHECK_HR(bits_add_file(job, url, d3), BITS_S_OK);
    CHECK_HR(bits_resume(job), BITS_S_OK);
    CHECK_WAIT(job, 20000, BITS_JOB_STATE_ERROR);
    CHECK_HR(bits_job_get_error(job, &ctx, &code, NULL), BITS_S_OK);
    CHECK_HR(code, BITS_E_MAXDOWNLOAD_TIMEOUT);
    CHECK(ctx == BITS_ERROR_CONTEXT_GENERAL_QUEUE_MANAGER);
    CHECK_HR(bits_cancel(job), BITS_S_OK);
    bits_job_release(job);
    bits_manager_close(m);
    CHECK(count_tmp(work) == 0);
    free(work);
    return check_report("job5");
}
