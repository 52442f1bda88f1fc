/*
 * upload.c: an upload-reply job through the C ABI, against openbits-server whose application
 * (the test server's POST /_reverse) answers each upload with its bytes reversed.
 *
 * Proves: BITS_JOB_TYPE_UPLOAD_REPLY jobs are created; one file only (a second is
 * BITS_E_TOO_MANY_FILES); the reply calls refuse other job types (BITS_E_NOTIMPL); before the
 * transfer the reply progress is BITS_SIZE_UNKNOWN / 0, the reply data BITS_E_INVALID_STATE and
 * the reply file name the default beside the upload; a relative reply file name is
 * BITS_E_INVALIDARG; after bits_job_wait the job is TRANSFERRED, the reply progress is exact,
 * bits_job_get_reply_data returns the reversed bytes in a bits_free buffer (NULL / 0 written on
 * failure); bits_complete puts the reply at the name that was set, and no BIT*.tmp is left.
 *
 * Environment (set by run.sh): OPENBITS_REPLY_URL (openbits-server's base URL),
 * OPENBITS_TEST_SRC (mid.bin is uploaded), OPENBITS_TEST_WORK (scratch folder).
 */
#include "check.h"

int main(void) {
    const char *base = test_env("OPENBITS_REPLY_URL");
    const char *src = test_env("OPENBITS_TEST_SRC");
    const char *work = test_env("OPENBITS_TEST_WORK");
    char *state_dir = make_dir(work, "upload-state");
    char *reply_dir = make_dir(work, "upload-reply");
    char source[1024], url[512], reply[1024];
    path_in(source, sizeof source, src, "mid.bin");
    snprintf(url, sizeof url, "%s/c/mid.bin", base);
    path_in(reply, sizeof reply, reply_dir, "answer.bin");

    bits_manager *mgr = NULL;
    if (!CHECK_HR(bits_manager_open(state_dir, &mgr), BITS_S_OK)) return check_report("upload");
    bits_job *download = NULL;
    CHECK_HR(bits_create_job(mgr, "download", BITS_JOB_TYPE_DOWNLOAD, NULL, &download), BITS_S_OK);
    bits_job_reply_progress rp;
    memset(&rp, 0xA5, sizeof rp);
    CHECK_HR(bits_job_get_reply_progress(download, &rp), BITS_E_NOTIMPL);
    CHECK(rp.bytes_total == 0 && rp.bytes_transferred == 0);
    CHECK_HR(bits_job_set_reply_file_name(download, reply), BITS_E_NOTIMPL);
    CHECK_HR(bits_cancel(download), BITS_S_OK);
    bits_job_release(download);

    bits_job *job = NULL;
    if (!CHECK_HR(bits_create_job(mgr, "ask", BITS_JOB_TYPE_UPLOAD_REPLY, NULL, &job), BITS_S_OK))
        return check_report("upload");
    char *name = (char *)1;
    CHECK_HR(bits_job_get_reply_file_name(job, &name), BITS_S_FALSE);
    CHECK(name == NULL);
    CHECK_HR(bits_add_file(job, url, source), BITS_S_OK);
    CHECK_HR(bits_add_file(job, url, source), BITS_E_TOO_MANY_FILES);
    CHECK_HR(bits_job_get_reply_file_name(job, &name), BITS_S_OK);
    CHECKF(name != NULL && strncmp(name, source, strlen(source)) == 0 &&
               strcmp(name + strlen(name) - 6, ".reply") == 0,
           "default reply file name %s", name ? name : "(null)");
    bits_free_string(name);
    CHECK_HR(bits_job_set_reply_file_name(job, "relative/answer.bin"), BITS_E_INVALIDARG);
    CHECK_HR(bits_job_set_reply_file_name(job, reply), BITS_S_OK);
    CHECK_HR(bits_job_get_reply_progress(job, &rp), BITS_S_OK);
    CHECK(rp.bytes_total == BITS_SIZE_UNKNOWN && rp.bytes_transferred == 0);
    uint8_t *data = (uint8_t *)1;
    uint64_t length = 7;
    CHECK_HR(bits_job_get_reply_data(job, &data, &length), BITS_E_INVALID_STATE);
    CHECK(data == NULL && length == 0);

    CHECK_HR(bits_resume(job), BITS_S_OK);
    CHECK_WAIT(job, 60000, BITS_JOB_STATE_TRANSFERRED);
    long long size = file_size(source);
    CHECK_HR(bits_job_get_reply_progress(job, &rp), BITS_S_OK);
    CHECKF(rp.bytes_total == (uint64_t)size && rp.bytes_transferred == (uint64_t)size,
           "reply progress %llu/%llu of %lld", (unsigned long long)rp.bytes_transferred,
           (unsigned long long)rp.bytes_total, size);
    if (CHECK_HR(bits_job_get_reply_data(job, &data, &length), BITS_S_OK)) {
        CHECK(length == (uint64_t)size);
        FILE *f = fopen(source, "rb");
        uint8_t *expected = malloc((size_t)size);
        CHECK(f != NULL && expected != NULL && fread(expected, 1, (size_t)size, f) == (size_t)size);
        int same = 1;
        for (long long i = 0; i < size && same; i++) same = data[i] == expected[size - 1 - i];
        CHECKF(same, "the reply is the upload reversed");
        free(expected);
        if (f) fclose(f);
        bits_free(data);
    }
    CHECK(!file_exists(reply));
    CHECK_HR(bits_complete(job), BITS_S_OK);
    CHECK(file_size(reply) == size);
    CHECK(count_tmp(reply_dir) == 0);
    bits_job_release(job);
    bits_manager_close(mgr);
    free(state_dir);
    free(reply_dir);
    return check_report("upload");
}
