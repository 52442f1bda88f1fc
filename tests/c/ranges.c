/* ranges.c: bits_add_file_with_ranges through the C ABI: the ranges of a real file, written one
 * after another (the last to the end of the file), bits_job_get_file_ranges, and the codes. */
#include "check.h"

static int read_file(const char *path, unsigned char **out, long *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    *len = ftell(f);
    fseek(f, 0, SEEK_SET);
    *out = malloc((size_t)*len + 1);
    size_t got = fread(*out, 1, (size_t)*len, f);
    fclose(f);
    return got == (size_t)*len;
}

int main(void) {
    const char *base = test_env("OPENBITS_TEST_URL");
    char *work = make_dir(test_env("OPENBITS_TEST_WORK"), "ranges");
    char state[1024], dest[1024], url[1024], src[1024];
    path_in(state, sizeof state, work, "state");
    path_in(dest, sizeof dest, work, "ranges.bin");
    snprintf(url, sizeof url, "%s/mid.bin", base);
    path_in(src, sizeof src, test_env("OPENBITS_TEST_SRC"), "mid.bin");
    bits_manager *m = NULL;
    CHECK_HR(bits_manager_open(state, &m), BITS_S_OK);
    bits_job *job = NULL;
    CHECK_HR(bits_create_job(m, "ranges", BITS_JOB_TYPE_DOWNLOAD, NULL, &job), BITS_S_OK);

    bits_file_range bad_eof[] = {{0, BITS_LENGTH_TO_EOF}, {100, 5}};
    bits_file_range overlap[] = {{0, 10}, {5, 10}};
    bits_file_range start_eof[] = {{BITS_LENGTH_TO_EOF, 1}};
    CHECK_HR(bits_add_file_with_ranges(job, url, dest, 0, NULL), BITS_E_INVALIDARG);
    CHECK_HR(bits_add_file_with_ranges(job, url, dest, 2, NULL), BITS_E_POINTER);
    CHECK_HR(bits_add_file_with_ranges(job, url, dest, 2, bad_eof), BITS_E_INVALID_RANGE);
    CHECK_HR(bits_add_file_with_ranges(job, url, dest, 2, overlap), BITS_E_OVERLAPPING_RANGES);
    CHECK_HR(bits_add_file_with_ranges(job, url, dest, 1, start_eof), BITS_E_INVALID_RANGE);

    bits_file_range wanted[] = {{7, 1000}, {50000, 20000}, {250000, BITS_LENGTH_TO_EOF}};
    CHECK_HR(bits_add_file_with_ranges(job, url, dest, 3, wanted), BITS_S_OK);
    bits_file_range *got = NULL;
    uint32_t count = 0;
    CHECK_HR(bits_job_get_file_ranges(job, 0, &got, &count), BITS_S_OK);
    CHECK(count == 3 && got && memcmp(got, wanted, sizeof wanted) == 0);
    bits_free(got);
    CHECK_HR(bits_job_get_file_ranges(job, 1, &got, &count), BITS_E_INVALIDARG);
    CHECK_HR(bits_resume(job), BITS_S_OK);
    CHECK_WAIT(job, 20000, BITS_JOB_STATE_TRANSFERRED);
    CHECK_HR(bits_complete(job), BITS_S_OK);

    unsigned char *whole = NULL, *part = NULL;
    long whole_len = 0, part_len = 0;
    CHECK(read_file(src, &whole, &whole_len) && read_file(dest, &part, &part_len));
    long tail = whole_len - 250000;
    CHECKF(part_len == 1000 + 20000 + tail, "local file has %ld bytes", part_len);
    if (part && whole && part_len == 1000 + 20000 + tail) {
        CHECK(memcmp(part, whole + 7, 1000) == 0);
        CHECK(memcmp(part + 1000, whole + 50000, 20000) == 0);
        CHECK(memcmp(part + 21000, whole + 250000, (size_t)tail) == 0);
    }
    free(whole);
    free(part);
    bits_job_release(job);

    /* A file without ranges has none. */
    CHECK_HR(bits_create_job(m, "whole", BITS_JOB_TYPE_DOWNLOAD, NULL, &job), BITS_S_OK);
    CHECK_HR(bits_add_file(job, url, dest), BITS_S_OK);
    CHECK_HR(bits_job_get_file_ranges(job, 0, &got, &count), BITS_S_FALSE);
    CHECK(got == NULL && count == 0);
    CHECK_HR(bits_cancel(job), BITS_S_OK);
    bits_job_release(job);
    bits_manager_close(m);
    free(work);
    return check_report("ranges");
}
