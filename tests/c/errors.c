/*
 * errors.c: every error path the header documents, and the state rules around them.
 *
 * Proves, one function per topic:
 * - NULL pointers give BITS_E_POINTER and failed calls write NULL / zero into their out-params
 *   (prefilled with garbage first); invalid UTF-8 and undefined enum values give BITS_E_INVALIDARG;
 *   the 256-character display-name limit counts characters, not bytes; an upload's local file
 *   must exist.
 * - bits_add_file refuses relative paths, folders, duplicates, unsupported schemes, malformed and
 *   over-long URLs (BITS_E_INVALIDARG) and missing folders (0x80070003).
 * - bits_resume on an empty job is BITS_E_EMPTY and the job stays SUSPENDED; bits_job_get_error
 *   outside an error state is BITS_E_ERROR_INFORMATION_UNAVAILABLE.
 * - HTTP 404 is a fatal ERROR (context REMOTE_FILE, code BITS_E_HTTP_ERROR(404), a description with
 *   the status and the URL); a 503 that clears is retried (retry delay 0) to TRANSFERRED; with a
 *   600 s delay (the default) a 503 leaves the job in TRANSIENT_ERROR and a 200 ms bits_job_wait
 *   times out; a no-progress timeout of 0 makes the 503 fatal.
 * - ERROR and TRANSFERRED are not final: files can be added and resumed; file:// sources work; a
 *   file already at the destination is replaced only by bits_complete.
 * - A failed rename in bits_complete returns a Win32 HRESULT, keeps the job TRANSFERRED, and a
 *   second bits_complete succeeds.
 * - Cancel deletes temp files and is final (second cancel, add_file: BITS_E_INVALID_STATE);
 *   complete of a half-done job is BITS_S_PARTIAL_COMPLETE and creates no partial destination;
 *   suspend stops a transfer at once and resume continues from the bytes already there.
 * - Server faults end to end: a body cut every 3 MB resumes with Range and downloads each byte
 *   exactly once (the server's own count); a server that ignores Range after a suspend makes the
 *   file restart, never splice; a redirect is followed; no Content-Length is a fatal
 *   BITS_E_MISSING_FILE_SIZE.
 * - GUID text round trip; unknown ids are BITS_E_NOT_FOUND; a job handle outlives its closed
 *   manager (BITS_E_INVALID_STATE, release still fine); the NULL no-ops; version; last error
 *   message per thread; the default state folder comes from $OPENBITS_HOME.
 *
 * Environment (set by run.sh): OPENBITS_TEST_URL, OPENBITS_TEST_SRC, OPENBITS_TEST_WORK.
 */
#include "check.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

static const char *base, *src, *work;
static bits_manager *mgr;

#define GARBAGE_PTR ((void *)(uintptr_t)0x1)

/* A URL on the test server, unique per call so per-URL fault counters (fail=S:K) start afresh. */
static const char *mkurl(char *buf, size_t len, const char *file, const char *query) {
    static int seq;
    snprintf(buf, len, "%s/%s?%s%su=%d-%d", base, file, query ? query : "", query ? "&" : "", (int)getpid(), ++seq);
    return buf;
}

static const char *srcpath(char *buf, size_t len, const char *file) {
    return path_in(buf, len, src, file);
}

/* The test server's count of body bytes sent so far (GET /_stats), or -1. */
static long long server_bytes_sent(void) {
    const char *colon = strrchr(base, ':');
    int port = colon ? atoi(colon + 1) : 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || port <= 0) return -1;
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    long long result = -1;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0) {
        static const char req[] = "GET /_stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
        char buf[4096];
        size_t got = 0;
        if (send(fd, req, sizeof req - 1, 0) == (ssize_t)(sizeof req - 1)) {
            ssize_t n;
            while (got < sizeof buf - 1 && (n = recv(fd, buf + got, sizeof buf - 1 - got, 0)) > 0) got += (size_t)n;
        }
        buf[got] = '\0';
        const char *v = strstr(buf, "bytes_sent=");
        if (v) result = strtoll(v + strlen("bytes_sent="), NULL, 10);
    }
    close(fd);
    return result;
}

static bits_job *new_job(const char *name) {
    bits_job *job = NULL;
    CHECK_HR(bits_create_job(mgr, name, BITS_JOB_TYPE_DOWNLOAD, NULL, &job), BITS_S_OK);
    return job;
}

static int guid_is_zero(const bits_guid *g) {
    static const bits_guid zero;
    return memcmp(g, &zero, sizeof zero) == 0;
}

static int progress_is_zero(const bits_job_progress *p) {
    return p->bytes_total == 0 && p->bytes_transferred == 0 && p->files_total == 0 && p->files_transferred == 0;
}

/* ---------------------------------------------------------------------------------------------- */

static void test_version(void) {
    CHECK(bits_version_string() != NULL);
    CHECKF(strcmp(bits_version_string(), BITS_VERSION_STRING) == 0, "bits_version_string() = \"%s\", header says \"%s\"",
           bits_version_string(), BITS_VERSION_STRING);
    char expect[32];
    snprintf(expect, sizeof expect, "%d.%d.%d", BITS_VERSION_MAJOR, BITS_VERSION_MINOR, BITS_VERSION_PATCH);
    CHECK(strcmp(BITS_VERSION_STRING, expect) == 0);
    CHECK(BITS_SUCCEEDED(BITS_S_PARTIAL_COMPLETE) && BITS_FAILED(BITS_E_NOT_FOUND));
    CHECK((uint32_t)BITS_E_HTTP_ERROR(404) == 0x80190194u);
}

static void *fresh_thread_messages(void *arg) {
    (void)arg;
    const char *m = bits_last_error_message();
    CHECKF(m != NULL && m[0] == '\0', "a new thread's last error message is \"%s\", expected empty", m ? m : "(NULL)");
    CHECK_HR(bits_guid_from_string("not a guid on this thread", NULL), BITS_E_POINTER);
    m = bits_last_error_message();
    CHECK(m != NULL && m[0] != '\0');
    return NULL;
}

/* bits_last_error_message: "" before any failure, a description after one, one per thread. */
static void test_last_error_message(void) {
    const char *m = bits_last_error_message();
    CHECKF(m != NULL && m[0] == '\0', "last error message before any failure is \"%s\"", m ? m : "(NULL)");
    bits_job *j = GARBAGE_PTR;
    CHECK_HR(bits_create_job(mgr, "x", 3, NULL, &j), BITS_E_INVALIDARG);
    m = bits_last_error_message();
    CHECKF(m != NULL && strstr(m, "bits_create_job") != NULL, "message \"%s\" should name bits_create_job",
           m ? m : "(NULL)");
    char mine[512];
    snprintf(mine, sizeof mine, "%s", m ? m : "");
    /* A success does not clear it. */
    CHECK_HR(bits_guid_to_string(&(bits_guid){0}, (char[BITS_GUID_STRING_LEN]){0}, BITS_GUID_STRING_LEN), BITS_S_OK);
    CHECK(strcmp(bits_last_error_message(), mine) == 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, fresh_thread_messages, NULL) == 0);
    pthread_join(t, NULL);
    CHECKF(strcmp(bits_last_error_message(), mine) == 0, "another thread's failure changed this thread's message");
}

static void test_null_noops(void) {
    bits_manager_close(NULL);
    bits_job_release(NULL);
    bits_free_string(NULL);
    CHECK(1); /* reaching here is the test */
}

/* Every pointer argument, NULL in turn; failed calls zero their out-params. */
static void test_null_pointers(void) {
    char dir_buf[1024], url[512], dest[1024];
    char *dest_dir = make_dir(work, "null-dest");
    mkurl(url, sizeof url, "small.bin", NULL);
    path_in(dest, sizeof dest, dest_dir, "x.bin");

    CHECK_HR(bits_manager_open(path_in(dir_buf, sizeof dir_buf, work, "never"), NULL), BITS_E_POINTER);

    bits_guid id;
    bits_job *j;
    memset(&id, 0xA5, sizeof id);
    j = GARBAGE_PTR;
    CHECK_HR(bits_create_job(NULL, "x", BITS_JOB_TYPE_DOWNLOAD, &id, &j), BITS_E_POINTER);
    CHECK(j == NULL);
    CHECK(guid_is_zero(&id));

    memset(&id, 0xA5, sizeof id);
    j = GARBAGE_PTR;
    CHECK_HR(bits_create_job(mgr, NULL, BITS_JOB_TYPE_DOWNLOAD, &id, &j), BITS_E_POINTER);
    CHECK(j == NULL);
    CHECK(guid_is_zero(&id));

    memset(&id, 0xA5, sizeof id);
    CHECK_HR(bits_create_job(mgr, "x", BITS_JOB_TYPE_DOWNLOAD, &id, NULL), BITS_E_POINTER);
    CHECKF(guid_is_zero(&id), "out_job_id not zeroed when out_job is NULL (header: \"zeroed on failure\")");

    /* out_job_id is optional. */
    j = NULL;
    CHECK_HR(bits_create_job(mgr, "no id wanted", BITS_JOB_TYPE_DOWNLOAD, NULL, &j), BITS_S_OK);
    bits_job *job = j;
    if (!CHECK(job != NULL)) return;

    bits_guid some;
    memset(&some, 0x11, sizeof some);
    j = GARBAGE_PTR;
    CHECK_HR(bits_get_job(NULL, &some, &j), BITS_E_POINTER);
    CHECK(j == NULL);
    j = GARBAGE_PTR;
    CHECK_HR(bits_get_job(mgr, NULL, &j), BITS_E_POINTER);
    CHECK(j == NULL);
    CHECK_HR(bits_get_job(mgr, &some, NULL), BITS_E_POINTER);

    CHECK_HR(bits_add_file(NULL, url, dest), BITS_E_POINTER);
    CHECK_HR(bits_add_file(job, NULL, dest), BITS_E_POINTER);
    CHECK_HR(bits_add_file(job, url, NULL), BITS_E_POINTER);
    CHECK_HR(bits_resume(NULL), BITS_E_POINTER);
    CHECK_HR(bits_suspend(NULL), BITS_E_POINTER);
    CHECK_HR(bits_cancel(NULL), BITS_E_POINTER);
    CHECK_HR(bits_complete(NULL), BITS_E_POINTER);
    CHECK_HR(bits_job_set_minimum_retry_delay(NULL, 5), BITS_E_POINTER);
    CHECK_HR(bits_job_set_no_progress_timeout(NULL, 5), BITS_E_POINTER);

    int32_t st = 0x7777;
    CHECK_HR(bits_job_get_state(NULL, &st), BITS_E_POINTER);
    CHECK(st == 0);
    CHECK_HR(bits_job_get_state(job, NULL), BITS_E_POINTER);

    bits_job_progress p;
    memset(&p, 0xAB, sizeof p);
    CHECK_HR(bits_job_get_progress(NULL, &p), BITS_E_POINTER);
    CHECK(progress_is_zero(&p));
    CHECK_HR(bits_job_get_progress(job, NULL), BITS_E_POINTER);

    int32_t ctx = 0x7777;
    bits_hresult code = 0x7777;
    char *desc = GARBAGE_PTR;
    CHECK_HR(bits_job_get_error(NULL, &ctx, &code, &desc), BITS_E_POINTER);
    CHECK(ctx == 0 && code == 0 && desc == NULL);
    code = 0x7777;
    desc = GARBAGE_PTR;
    CHECK_HR(bits_job_get_error(job, NULL, &code, &desc), BITS_E_POINTER);
    CHECKF(code == 0, "out_code is 0x%X after a failed bits_job_get_error(job, NULL, &code, &desc) "
           "(header: \"All are zero / NULL on failure\")", (uint32_t)code);
    CHECK(desc == NULL);
    ctx = 0x7777;
    desc = GARBAGE_PTR;
    CHECK_HR(bits_job_get_error(job, &ctx, NULL, &desc), BITS_E_POINTER);
    CHECK(ctx == 0 && desc == NULL);

    st = 0x7777;
    CHECK_HR(bits_job_wait(NULL, 0, &st), BITS_E_POINTER);
    CHECK(st == 0);
    /* out_state may be NULL. */
    CHECK_HR(bits_job_wait(job, 0, NULL), BITS_E_TIMEOUT);

    char buf[64];
    memset(buf, 'x', sizeof buf);
    CHECK_HR(bits_guid_to_string(NULL, buf, sizeof buf), BITS_E_POINTER);
    CHECK(buf[0] == '\0');
    CHECK_HR(bits_guid_to_string(&some, NULL, sizeof buf), BITS_E_POINTER);
    memset(&id, 0xA5, sizeof id);
    CHECK_HR(bits_guid_from_string(NULL, &id), BITS_E_POINTER);
    CHECK(guid_is_zero(&id));
    CHECK_HR(bits_guid_from_string("{12345678-9ABC-DEF0-0123-456789ABCDEF}", NULL), BITS_E_POINTER);

    CHECK_HR(bits_cancel(job), BITS_S_OK);
    bits_job_release(job);
    free(dest_dir);
}

/* Invalid UTF-8 in each string argument. */
static void test_bad_utf8(void) {
    static const char *const bad[] = {"\xff", "ab\xc0\xaf", "\x80x", "\xe2\x82", "\xed\xa0\x80", "caf\xe9"};
    char *dest_dir = make_dir(work, "utf8-dest");
    char url[512], dest[1024], dir[1024];
    mkurl(url, sizeof url, "small.bin", NULL);
    path_in(dest, sizeof dest, dest_dir, "ok.bin");
    bits_job *job = new_job("utf8");
    if (!job) return;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bits_guid id;
        memset(&id, 0xA5, sizeof id);
        bits_job *j = GARBAGE_PTR;
        CHECK_HR(bits_create_job(mgr, bad[i], BITS_JOB_TYPE_DOWNLOAD, &id, &j), BITS_E_INVALIDARG);
        CHECK(j == NULL && guid_is_zero(&id));

        char bad_url[512], bad_dest[1024];
        snprintf(bad_url, sizeof bad_url, "%s/%s", base, bad[i]);
        CHECK_HR(bits_add_file(job, bad_url, dest), BITS_E_INVALIDARG);
        snprintf(bad_dest, sizeof bad_dest, "%s/%s", dest_dir, bad[i]);
        CHECK_HR(bits_add_file(job, url, bad_dest), BITS_E_INVALIDARG);

        memset(&id, 0xA5, sizeof id);
        CHECK_HR(bits_guid_from_string(bad[i], &id), BITS_E_INVALIDARG);
        CHECK(guid_is_zero(&id));

        bits_manager *m = GARBAGE_PTR;
        snprintf(dir, sizeof dir, "%s/%s", work, bad[i]);
        CHECK_HR(bits_manager_open(dir, &m), BITS_E_INVALIDARG);
        CHECK(m == NULL);
    }
    bits_job_progress p;
    CHECK_HR(bits_job_get_progress(job, &p), BITS_S_OK);
    CHECKF(p.files_total == 0, "refused add_file calls added %u files", p.files_total);
    CHECK_HR(bits_cancel(job), BITS_S_OK);
    bits_job_release(job);
    free(dest_dir);
}

static char *repeat(const char *unit, int n) {
    size_t len = strlen(unit);
    char *s = malloc(len * (size_t)n + 1);
    if (!s) abort();
    for (int i = 0; i < n; i++) memcpy(s + len * (size_t)i, unit, len);
    s[len * (size_t)n] = '\0';
    return s;
}

/* Job types and display names. */
static void test_create_job_args(void) {
    static const int32_t undefined[] = {3, -1, 100, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof undefined / sizeof undefined[0]; i++) {
        bits_guid id;
        memset(&id, 0xA5, sizeof id);
        bits_job *j = GARBAGE_PTR;
        CHECK_HR(bits_create_job(mgr, "type", undefined[i], &id, &j), BITS_E_INVALIDARG);
        CHECK(j == NULL && guid_is_zero(&id));
    }
    {
        /* Upload jobs have one file, which must exist (upload.c: upload-reply jobs). */
        bits_guid id;
        bits_job *j = NULL;
        CHECK_HR(bits_create_job(mgr, "upload", BITS_JOB_TYPE_UPLOAD, &id, &j), BITS_S_OK);
        /* ENOENT: HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND). */
        CHECK_HR(bits_add_file(j, "http://127.0.0.1:9/up.bin", "/nonexistent/openbits-upload-source"),
                 (bits_hresult)0x80070002u);
        CHECK(strstr(bits_last_error_message(), "openbits-upload-source") != NULL);
        CHECK_HR(bits_cancel(j), BITS_S_OK);
        bits_job_release(j);
    }

    /* The limit is 256 characters, whatever their UTF-8 length. */
    struct { const char *unit; int count; bits_hresult expected; } names[] = {
        {"a", 256, BITS_S_OK},
        {"a", 257, BITS_E_INVALIDARG},
        {"\xc3\xa9", 256, BITS_S_OK},           /* é: 2 bytes */
        {"\xe2\x82\xac", 256, BITS_S_OK},       /* €: 3 bytes */
        {"\xf0\x9f\x98\x80", 256, BITS_S_OK},   /* 😀: 4 bytes */
        {"\xc3\xa9", 257, BITS_E_INVALIDARG},
        {"\xf0\x9f\x98\x80", 257, BITS_E_INVALIDARG},
        {"", 1, BITS_S_OK},                     /* empty name */
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *name = repeat(names[i].unit, names[i].count);
        bits_job *j = GARBAGE_PTR;
        if (!CHECK_HR(bits_create_job(mgr, name, BITS_JOB_TYPE_DOWNLOAD, NULL, &j), names[i].expected))
            fprintf(stderr, "    display name: %d x \"%s\" (%zu bytes)\n", names[i].count, names[i].unit, strlen(name));
        if (names[i].expected == BITS_S_OK) {
            if (CHECK(j != NULL)) {
                CHECK_STATE(j, BITS_JOB_STATE_SUSPENDED);
                CHECK_HR(bits_cancel(j), BITS_S_OK);
                bits_job_release(j);
            }
        } else {
            CHECK(j == NULL);
        }
        free(name);
    }
}

/* bits_add_file's argument checks. */
static void test_add_file_args(void) {
    char *dest_dir = make_dir(work, "addfile-dest");
    char url[512], p[1024], q[1024];
    bits_job *job = new_job("add_file arguments");
    if (!job) return;
    uint32_t accepted = 0;
    mkurl(url, sizeof url, "small.bin", NULL);

    /* Relative and empty local names. */
    CHECK_HR(bits_add_file(job, url, "relative.bin"), BITS_E_INVALIDARG);
    CHECK_HR(bits_add_file(job, url, "./relative.bin"), BITS_E_INVALIDARG);
    CHECK_HR(bits_add_file(job, url, "sub/relative.bin"), BITS_E_INVALIDARG);
    CHECK_HR(bits_add_file(job, url, ""), BITS_E_INVALIDARG);

    /* Folders. */
    CHECK_HR(bits_add_file(job, url, dest_dir), BITS_E_INVALIDARG);
    snprintf(p, sizeof p, "%s/", dest_dir);
    CHECK_HR(bits_add_file(job, url, p), BITS_E_INVALIDARG);
    path_in(p, sizeof p, dest_dir, "subfolder");
    CHECK(mkdir(p, 0700) == 0);
    CHECK_HR(bits_add_file(job, url, p), BITS_E_INVALIDARG);
    CHECK_HR(bits_add_file(job, url, "/"), BITS_E_INVALIDARG);

    /* The same local name twice, also spelled differently. */
    path_in(p, sizeof p, dest_dir, "same.bin");
    if (CHECK_HR(bits_add_file(job, url, p), BITS_S_OK)) accepted++;
    char url2[512];
    mkurl(url2, sizeof url2, "mid.bin", NULL);
    CHECK_HR(bits_add_file(job, url2, p), BITS_E_INVALIDARG);
    CHECK_HR(bits_add_file(job, url, p), BITS_E_INVALIDARG);
    snprintf(q, sizeof q, "%s/./same.bin", dest_dir);
    CHECK_HR(bits_add_file(job, url2, q), BITS_E_INVALIDARG);
    snprintf(q, sizeof q, "%s//same.bin", dest_dir);
    CHECK_HR(bits_add_file(job, url2, q), BITS_E_INVALIDARG);
    snprintf(q, sizeof q, "%s/subfolder/../same.bin", dest_dir);
    bits_hresult hr = bits_add_file(job, url2, q);
    if (hr == BITS_S_OK) accepted++;
    CHECKF(hr == BITS_E_INVALIDARG,
                    "\"DIR/subfolder/../same.bin\" after \"DIR/same.bin\" returned 0x%08X: the same local path twice "
                    "(only \".\" is normalised, not \"..\")", (uint32_t)hr);

    /* The same remote name to two local names is fine. */
    path_in(p, sizeof p, dest_dir, "same-remote.bin");
    if (CHECK_HR(bits_add_file(job, url, p), BITS_S_OK)) accepted++;

    /* Schemes and malformed URLs. */
    path_in(p, sizeof p, dest_dir, "other.bin");
    static const char *const bad_urls[] = {
        "ftp://127.0.0.1/small.bin", "gopher://127.0.0.1/x", "mailto:someone@example.com", "data:text/plain,hi",
        "not a url", "", "http://", "http//127.0.0.1/x", "://127.0.0.1/x", "http://[::1/x", "http://127.0.0.1:99999/x",
        "small.bin", "/small.bin",
    };
    for (size_t i = 0; i < sizeof bad_urls / sizeof bad_urls[0]; i++)
        if (!CHECK_HR(bits_add_file(job, bad_urls[i], p), BITS_E_INVALIDARG))
            fprintf(stderr, "    remote_url was \"%s\"\n", bad_urls[i]);

    /* At most 2,200 characters. */
    size_t prefix = strlen(base) + strlen("/small.bin?pad=");
    for (int extra = 0; extra <= 1; extra++) {
        size_t want = 2200 + (size_t)extra;
        char *long_url = malloc(want + 1);
        if (!long_url) abort();
        snprintf(long_url, want + 1, "%s/small.bin?pad=", base);
        memset(long_url + prefix, 'x', want - prefix);
        long_url[want] = '\0';
        path_in(q, sizeof q, dest_dir, extra ? "long2201.bin" : "long2200.bin");
        bits_hresult expected = extra ? BITS_E_INVALIDARG : BITS_S_OK;
        if (CHECK_HR(bits_add_file(job, long_url, q), expected) && expected == BITS_S_OK) accepted++;
        free(long_url);
    }

    /* A folder that does not exist, or is a file. */
    path_in(p, sizeof p, dest_dir, "missing/x.bin");
    CHECK_HR(bits_add_file(job, url, p), (bits_hresult)0x80070003u);
    snprintf(p, sizeof p, "/nonexistent-openbits-%d/x.bin", (int)getpid());
    CHECK_HR(bits_add_file(job, url, p), (bits_hresult)0x80070003u);
    path_in(q, sizeof q, dest_dir, "plain-file");
    FILE *f = fopen(q, "w");
    if (f) fclose(f);
    path_in(p, sizeof p, dest_dir, "plain-file/x.bin");
    CHECK_HR(bits_add_file(job, url, p), (bits_hresult)0x80070003u);

    /* A folder the process may not write into (meaningless as root, who may write anywhere). */
    if (geteuid() != 0) {
        path_in(q, sizeof q, dest_dir, "readonly");
        CHECK(mkdir(q, 0500) == 0);
        path_in(p, sizeof p, dest_dir, "readonly/x.bin");
        CHECK_HR(bits_add_file(job, url, p), BITS_E_ACCESSDENIED);
    } else {
        printf("note: running as root: the BITS_E_ACCESSDENIED case of bits_add_file is not tested\n");
    }

    /* file:// is a supported scheme. */
    char file_url[1200];
    snprintf(file_url, sizeof file_url, "file://%s/small.bin", src);
    path_in(p, sizeof p, dest_dir, "from-file-url.bin");
    if (CHECK_HR(bits_add_file(job, file_url, p), BITS_S_OK)) accepted++;

    /* Only the accepted calls added files. */
    bits_job_progress prog;
    CHECK_HR(bits_job_get_progress(job, &prog), BITS_S_OK);
    CHECKF(prog.files_total == accepted, "files_total %u, %u add_file calls succeeded", prog.files_total, accepted);
    CHECK_STATE(job, BITS_JOB_STATE_SUSPENDED);
    CHECK_HR(bits_cancel(job), BITS_S_OK);
    bits_job_release(job);
    free(dest_dir);
}

/* A file:// source downloads like an http one. */
static void test_file_url(void) {
    char *dest_dir = make_dir(work, "fileurl-dest");
    char url[1200], dest[1024], source[1024];
    snprintf(url, sizeof url, "file://%s/mid.bin", src);
    path_in(dest, sizeof dest, dest_dir, "mid.bin");
    bits_job *job = new_job("file url");
    if (!job) return;
    CHECK_HR(bits_add_file(job, url, dest), BITS_S_OK);
    CHECK_HR(bits_resume(job), BITS_S_OK);
    CHECK_WAIT(job, 30000, BITS_JOB_STATE_TRANSFERRED);
    CHECK_HR(bits_complete(job), BITS_S_OK);
    CHECK(files_equal(srcpath(source, sizeof source, "mid.bin"), dest));
    bits_job_release(job);
    free(dest_dir);
}

/* A file already at the destination stays untouched until bits_complete replaces it. */
static void test_existing_destination(void) {
    char *dest_dir = make_dir(work, "existing-dest");
    char url[512], dest[1024], source[1024];
    static const char old_text[] = "old contents\n";
    mkurl(url, sizeof url, "small.bin", NULL);
    path_in(dest, sizeof dest, dest_dir, "small.bin");
    FILE *f = fopen(dest, "w");
    if (f) {
        fputs(old_text, f);
        fclose(f);
    }
    bits_job *job = new_job("existing destination");
    if (!job) return;
    CHECK_HR(bits_add_file(job, url, dest), BITS_S_OK);
    CHECK_HR(bits_resume(job), BITS_S_OK);
    CHECK_WAIT(job, 30000, BITS_JOB_STATE_TRANSFERRED);
    CHECKF(file_size(dest) == (long long)strlen(old_text), "the destination changed before bits_complete (%lld bytes)",
           file_size(dest));
    CHECK_HR(bits_complete(job), BITS_S_OK);
    CHECK(files_equal(srcpath(source, sizeof source, "small.bin"), dest));
    CHECK(count_tmp(dest_dir) == 0);
    bits_job_release(job);
    free(dest_dir);
}

/* Resume with no files; error information outside an error state. */
static void test_empty_and_no_error(void) {
    bits_job *job = new_job("empty");
    if (!job) return;
    CHECK_HR(bits_resume(job), BITS_E_EMPTY);
    CHECK_STATE(job, BITS_JOB_STATE_SUSPENDED);
    CHECK(strstr(bits_last_error_message(), "bits_resume") != NULL);

    int32_t ctx = 0x7777;
    bits_hresult code = 0x7777;
    char *desc = GARBAGE_PTR;
    CHECK_HR(bits_job_get_error(job, &ctx, &code, &desc), BITS_E_ERROR_INFORMATION_UNAVAILABLE);
    CHECK(ctx == 0 && code == 0 && desc == NULL);
    CHECK_HR(bits_job_get_error(job, &ctx, &code, NULL), BITS_E_ERROR_INFORMATION_UNAVAILABLE);

    /* Suspend of a suspended job is fine; settings are accepted, 0 included. */
    CHECK_HR(bits_suspend(job), BITS_S_OK);
    CHECK_HR(bits_suspend(job), BITS_S_OK);
    CHECK_HR(bits_job_set_minimum_retry_delay(job, 0), BITS_S_OK);
    CHECK_HR(bits_job_set_minimum_retry_delay(job, UINT32_MAX), BITS_S_OK);
    CHECK_HR(bits_job_set_no_progress_timeout(job, 0), BITS_S_OK);
    CHECK_HR(bits_job_set_no_progress_timeout(job, UINT32_MAX), BITS_S_OK);

    /* Waits on a job that is not moving time out, and say so. */
    int32_t st = 0x7777;
    int64_t t0 = now_ms();
    CHECK_HR(bits_job_wait(job, 0, &st), BITS_E_TIMEOUT);
    CHECK(st == 0);
    CHECK_HR(bits_job_wait(job, 100, &st), BITS_E_TIMEOUT);
    int64_t took = now_ms() - t0;
    CHECKF(took >= 95 && took < 5000, "a 100 ms wait took %lld ms", (long long)took);

    CHECK_HR(bits_cancel(job), BITS_S_OK);
    bits_job_release(job);
}

/* HTTP 404: fatal, with the context, code and a description naming status and URL. */
static void test_http_404(void) {
    char *dest_dir = make_dir(work, "404-dest");
    char url[512], dest[1024];
    mkurl(url, sizeof url, "small.bin", "status=404");
    path_in(dest, sizeof dest, dest_dir, "x.bin");
    bits_job *job = new_job("404");
    if (!job) return;
    CHECK_HR(bits_add_file(job, url, dest), BITS_S_OK);
    CHECK_HR(bits_resume(job), BITS_S_OK);
    CHECK_WAIT(job, 30000, BITS_JOB_STATE_ERROR);

    int32_t ctx = -1;
    bits_hresult code = 0;
    char *desc = NULL;
    CHECK_HR(bits_job_get_error(job, &ctx, &code, &desc), BITS_S_OK);
    CHECKF(ctx == BITS_ERROR_CONTEXT_REMOTE_FILE, "context %d", ctx);
    CHECKF(code == BITS_E_HTTP_ERROR(404), "code 0x%08X", (uint32_t)code);
    CHECK(desc != NULL);
    if (desc) {
        CHECKF(strstr(desc, "404") != NULL, "description \"%s\" lacks the status", desc);
        CHECKF(strstr(desc, url) != NULL, "description \"%s\" lacks the URL %s", desc, url);
        bits_free_string(desc);
    }
    /* The description is optional. */
    ctx = -1;
    code = 0;
    CHECK_HR(bits_job_get_error(job, &ctx, &code, NULL), BITS_S_OK);
    CHECK(ctx == BITS_ERROR_CONTEXT_REMOTE_FILE && code == BITS_E_HTTP_ERROR(404));
    CHECK(!file_exists(dest));

    /* ERROR is not final: files may be added, resume retries (and fails the same way). */
    char url2[512], dest2[1024];
    mkurl(url2, sizeof url2, "small.bin", NULL);
    path_in(dest2, sizeof dest2, dest_dir, "y.bin");
    CHECK_HR(bits_add_file(job, url2, dest2), BITS_S_OK);
    CHECK_HR(bits_resume(job), BITS_S_OK);
    CHECK_WAIT(job, 30000, BITS_JOB_STATE_ERROR);

    CHECK_HR(bits_cancel(job), BITS_S_OK);
    CHECK_STATE(job, BITS_JOB_STATE_CANCELLED);
    CHECK_HR(bits_job_get_error(job, &ctx, &code, NULL), BITS_E_ERROR_INFORMATION_UNAVAILABLE);
    int tmp = count_tmp(dest_dir);
    CHECKF(tmp == 0, "%d BIT*.tmp left after cancel", tmp);
    CHECK(!file_exists(dest) && !file_exists(dest2));
    bits_job_release(job);
    free(dest_dir);
}

/* fail=503:1 with retry delay 0: retried at once, ends TRANSFERRED. Then a file added in TRANSFERRED. */
static void test_transient_retry(void) {
    char *dest_dir = make_dir(work, "retry-dest");
    char url[512], dest[1024], url2[512], dest2[1024], source[1024];
    mkurl(url, sizeof url, "small.bin", "fail=503:1");
    path_in(dest, sizeof dest, dest_dir, "small.bin");
    bits_job *job = new_job("transient retry");
    if (!job) return;
    CHECK_HR(bits_job_set_minimum_retry_delay(job, 0), BITS_S_OK);
    CHECK_HR(bits_add_file(job, url, dest), BITS_S_OK);
    CHECK_HR(bits_resume(job), BITS_S_OK);
    CHECK_WAIT(job, 30000, BITS_JOB_STATE_TRANSFERRED);
    int32_t ctx;
    bits_hresult code;
    CHECK_HR(bits_job_get_error(job, &ctx, &code, NULL), BITS_E_ERROR_INFORMATION_UNAVAILABLE);

    /* TRANSFERRED is not final: add a file, it stays TRANSFERRED until resumed. */
    mkurl(url2, sizeof url2, "mid.bin", NULL);
    path_in(dest2, sizeof dest2, dest_dir, "mid.bin");
    CHECK_HR(bits_add_file(job, url2, dest2), BITS_S_OK);
    bits_job_progress p;
    CHECK_HR(bits_job_get_progress(job, &p), BITS_S_OK);
    CHECK(p.files_total == 2 && p.files_transferred == 1);
    CHECK_HR(bits_resume(job), BITS_S_OK);
    CHECK_WAIT(job, 30000, BITS_JOB_STATE_TRANSFERRED);
    CHECK_HR(bits_job_get_progress(job, &p), BITS_S_OK);
    CHECK(p.files_total == 2 && p.files_transferred == 2);
    CHECK_HR(bits_complete(job), BITS_S_OK);
    CHECK(files_equal(srcpath(source, sizeof source, "small.bin"), dest));
    CHECK(files_equal(srcpath(source, sizeof source, "mid.bin"), dest2));
    CHECK(count_tmp(dest_dir) == 0);
    bits_job_release(job);
    free(dest_dir);
}

/* status=503 with a 600 s retry delay: TRANSIENT_ERROR, which does not end a wait. */
static void test_transient_error_state(void) {
    char *dest_dir = make_dir(work, "transient-dest");
    char url[512], dest[1024];
    mkurl(url, sizeof url, "small.bin", "status=503");
    path_in(dest, sizeof dest, dest_dir, "x.bin");
    bits_job *job = new_job("transient");
    if (!job) return;
    CHECK_HR(bits_job_set_minimum_retry_delay(job, 600), BITS_S_OK);
    CHECK_HR(bits_add_file(job, url, dest), BITS_S_OK);
    CHECK_HR(bits_resume(job), BITS_S_OK);
    int32_t st = poll_state(job, BITS_JOB_STATE_TRANSIENT_ERROR, 10000);
    CHECKF(st == BITS_JOB_STATE_TRANSIENT_ERROR, "a 503 led to %s", check_state_name(st));

    int32_t ctx = -1;
    bits_hresult code = 0;
    char *desc = NULL;
    CHECK_HR(bits_job_get_error(job, &ctx, &code, &desc), BITS_S_OK);
    CHECK(ctx == BITS_ERROR_CONTEXT_REMOTE_FILE);
    CHECKF(code == BITS_E_HTTP_ERROR(503), "code 0x%08X", (uint32_t)code);
    CHECKF(desc && strstr(desc, "503"), "description \"%s\"", desc ? desc : "(NULL)");
    bits_free_string(desc);

    st = 0x7777;
    int64_t t0 = now_ms();
    CHECK_HR(bits_job_wait(job, 200, &st), BITS_E_TIMEOUT);
    int64_t took = now_ms() - t0;
    CHECK(st == 0);
    CHECKF(took >= 190 && took < 5000, "a 200 ms wait took %lld ms", (long long)took);
    CHECK_STATE(job, BITS_JOB_STATE_TRANSIENT_ERROR);

    /* Resume retries at once (TRANSIENT_ERROR -> QUEUED), and the 503 brings it back. */
    CHECK_HR(bits_resume(job), BITS_S_OK);
    st = job_state(job);
    CHECKF(st != BITS_JOB_STATE_ERROR, "state %s after resume", check_state_name(st));
    st = poll_state(job, BITS_JOB_STATE_TRANSIENT_ERROR, 10000);
    CHECK(st == BITS_JOB_STATE_TRANSIENT_ERROR);

    CHECK_HR(bits_cancel(job), BITS_S_OK);
    CHECK(count_tmp(dest_dir) == 0);
    bits_job_release(job);
    free(dest_dir);
}

/* No-progress timeout 0: the first transient error is fatal. */
static void test_no_progress_timeout(void) {
    char *dest_dir = make_dir(work, "noprogress-dest");
    char url[512], dest[1024];
    mkurl(url, sizeof url, "small.bin", "status=503");
    path_in(dest, sizeof dest, dest_dir, "x.bin");
    bits_job *job = new_job("no progress");
    if (!job) return;
    CHECK_HR(bits_job_set_no_progress_timeout(job, 0), BITS_S_OK);
    CHECK_HR(bits_add_file(job, url, dest), BITS_S_OK);
    CHECK_HR(bits_resume(job), BITS_S_OK);
    CHECK_WAIT(job, 30000, BITS_JOB_STATE_ERROR);
    int32_t ctx = -1;
    bits_hresult code = 0;
    CHECK_HR(bits_job_get_error(job, &ctx, &code, NULL), BITS_S_OK);
    CHECKF(code == BITS_E_HTTP_ERROR(503), "code 0x%08X", (uint32_t)code);
    CHECK_HR(bits_cancel(job), BITS_S_OK);
    bits_job_release(job);
    free(dest_dir);
}

/* Cancel mid-transfer: temp files go, the job is final for every call that changes it. */
static void test_cancel(void) {
    char *dest_dir = make_dir(work, "cancel-dest");
    char url[512], dest[1024];
    mkurl(url, sizeof url, "slow.bin", "rate=65536");
    path_in(dest, sizeof dest, dest_dir, "slow.bin");
    bits_guid id;
    bits_job *job = NULL;
    CHECK_HR(bits_create_job(mgr, "cancel", BITS_JOB_TYPE_DOWNLOAD, &id, &job), BITS_S_OK);
    if (!job) return;
    CHECK_HR(bits_add_file(job, url, dest), BITS_S_OK);
    CHECK_HR(bits_resume(job), BITS_S_OK);
    uint64_t got = poll_bytes(job, 1, 10000);
    CHECKF(got > 0, "no byte arrived within 10 s");
    int tmp = poll_tmp(dest_dir, 1, 10000);
    CHECKF(tmp == 1, "%d BIT*.tmp during the transfer", tmp);

    CHECK_HR(bits_cancel(job), BITS_S_OK);
    CHECK_STATE(job, BITS_JOB_STATE_CANCELLED);
    tmp = count_tmp(dest_dir);
    CHECKF(tmp == 0, "%d BIT*.tmp left after cancel", tmp);
    CHECK(!file_exists(dest));

    CHECK_HR(bits_cancel(job), BITS_E_INVALID_STATE);
    char url2[512], dest2[1024];
    mkurl(url2, sizeof url2, "small.bin", NULL);
    path_in(dest2, sizeof dest2, dest_dir, "other.bin");
    CHECK_HR(bits_add_file(job, url2, dest2), BITS_E_INVALID_STATE);
    CHECK_HR(bits_resume(job), BITS_E_INVALID_STATE);
    CHECK_HR(bits_suspend(job), BITS_E_INVALID_STATE);
    CHECK_HR(bits_complete(job), BITS_E_INVALID_STATE);
    CHECK_HR(bits_job_set_minimum_retry_delay(job, 1), BITS_E_INVALID_STATE);
    CHECK_HR(bits_job_set_no_progress_timeout(job, 1), BITS_E_INVALID_STATE);
    CHECK_WAIT(job, 0, BITS_JOB_STATE_CANCELLED);
    bits_job *again = GARBAGE_PTR;
    CHECK_HR(bits_get_job(mgr, &id, &again), BITS_E_NOT_FOUND);
    CHECK(again == NULL);
    CHECK_STATE(job, BITS_JOB_STATE_CANCELLED);
    bits_job_release(job);
    free(dest_dir);
}

/* Complete of a suspended, half-transferred job: whole files kept, the partial one dropped. */
static void test_partial_complete(void) {
    char *dest_dir = make_dir(work, "partial-dest");
    char url_fast[512], url_slow[512], dest_fast[1024], dest_slow[1024], source[1024];
    mkurl(url_fast, sizeof url_fast, "small.bin", NULL);
    mkurl(url_slow, sizeof url_slow, "slow.bin", "rate=65536");
    path_in(dest_fast, sizeof dest_fast, dest_dir, "fast.bin");
    path_in(dest_slow, sizeof dest_slow, dest_dir, "slow.bin");
    uint64_t fast_size = (uint64_t)file_size(srcpath(source, sizeof source, "small.bin"));
    bits_job *job = new_job("partial complete");
    if (!job) return;
    CHECK_HR(bits_add_file(job, url_fast, dest_fast), BITS_S_OK);
    CHECK_HR(bits_add_file(job, url_slow, dest_slow), BITS_S_OK);
    CHECK_HR(bits_resume(job), BITS_S_OK);
    /* Both files may be in flight at once: the fast one is whole once it is reported
       transferred, and the slow one has begun once more bytes than the fast one's arrived. */
    uint32_t files = poll_files(job, 1, 10000);
    CHECKF(files == 1, "%u files transferred within 10 s", files);
    uint64_t got = poll_bytes(job, fast_size + 1, 10000);
    CHECKF(got > fast_size, "only %llu bytes within 10 s", (unsigned long long)got);
    CHECK_HR(bits_suspend(job), BITS_S_OK);
    CHECK_STATE(job, BITS_JOB_STATE_SUSPENDED);
    bits_job_progress p;
    CHECK_HR(bits_job_get_progress(job, &p), BITS_S_OK);
    CHECKF(p.files_transferred == 1, "files_transferred %u", p.files_transferred);
    int tmp = count_tmp(dest_dir);
    CHECKF(tmp == 2, "%d BIT*.tmp before complete", tmp);

    CHECK_HR(bits_complete(job), BITS_S_PARTIAL_COMPLETE);
    CHECK_STATE(job, BITS_JOB_STATE_ACKNOWLEDGED);
    CHECK(files_equal(source, dest_fast));
    CHECKF(!file_exists(dest_slow), "the partial file %s was created", dest_slow);
    tmp = count_tmp(dest_dir);
    CHECKF(tmp == 0, "%d BIT*.tmp left after complete", tmp);
    CHECK_HR(bits_complete(job), BITS_E_INVALID_STATE);
    bits_job_release(job);

    /* A job that never ran: nothing transferred, nothing created. */
    job = new_job("never resumed");
    if (!job) return;
    char dest3[1024];
    path_in(dest3, sizeof dest3, dest_dir, "never.bin");
    CHECK_HR(bits_add_file(job, url_fast, dest3), BITS_S_OK);
    CHECK_HR(bits_complete(job), BITS_S_PARTIAL_COMPLETE);
    CHECK(!file_exists(dest3) && count_tmp(dest_dir) == 0);
    bits_job_release(job);
    free(dest_dir);
}

/* Suspend stops a transfer at once; resume continues from the bytes already there. */
static void test_suspend_resume(void) {
    char *dest_dir = make_dir(work, "suspend-dest");
    char url[512], dest[1024], source[1024];
    mkurl(url, sizeof url, "slow.bin", "rate=524288");
    path_in(dest, sizeof dest, dest_dir, "slow.bin");
    srcpath(source, sizeof source, "slow.bin");
    bits_job *job = new_job("suspend promptness");
    if (!job) return;
    CHECK_HR(bits_add_file(job, url, dest), BITS_S_OK);
    CHECK_HR(bits_resume(job), BITS_S_OK);
    uint64_t got = poll_bytes(job, 150000, 10000);
    CHECKF(got >= 150000, "only %llu bytes within 10 s", (unsigned long long)got);
    int32_t st = job_state(job);
    CHECKF(st == BITS_JOB_STATE_TRANSFERRING, "state %s while bytes arrive", check_state_name(st));
    /* Resume of an active job changes nothing. */
    CHECK_HR(bits_resume(job), BITS_S_OK);
    st = job_state(job);
    CHECKF(st == BITS_JOB_STATE_TRANSFERRING, "state %s after resuming a transferring job", check_state_name(st));

    CHECK_HR(bits_suspend(job), BITS_S_OK);
    CHECK_STATE(job, BITS_JOB_STATE_SUSPENDED);
    bits_job_progress p1, p2, p3;
    CHECK_HR(bits_job_get_progress(job, &p1), BITS_S_OK);
    /* A wait that SUSPENDED cannot end lets time pass without a sleep. */
    CHECK_HR(bits_job_wait(job, 300, &st), BITS_E_TIMEOUT);
    CHECK_HR(bits_job_get_progress(job, &p2), BITS_S_OK);
    CHECK_HR(bits_job_wait(job, 300, &st), BITS_E_TIMEOUT);
    CHECK_HR(bits_job_get_progress(job, &p3), BITS_S_OK);
    CHECK_STATE(job, BITS_JOB_STATE_SUSPENDED);
    CHECKF(p2.bytes_transferred <= p1.bytes_transferred + 65536,
           "%llu bytes arrived after bits_suspend returned", (unsigned long long)(p2.bytes_transferred - p1.bytes_transferred));
    CHECKF(p3.bytes_transferred == p2.bytes_transferred, "still transferring while suspended: %llu then %llu",
           (unsigned long long)p2.bytes_transferred, (unsigned long long)p3.bytes_transferred);
    CHECKF(file_size(source) > 0 && p3.bytes_transferred < (uint64_t)file_size(source),
           "the file finished before the suspend (%llu bytes): the test proves nothing", (unsigned long long)p3.bytes_transferred);
    CHECK(count_tmp(dest_dir) == 1);

    CHECK_HR(bits_resume(job), BITS_S_OK);
    uint64_t lowest = UINT64_MAX;
    int64_t deadline = now_ms() + 30000;
    for (;;) {
        bits_job_progress p;
        if (bits_job_get_progress(job, &p) == BITS_S_OK && p.bytes_transferred < lowest) lowest = p.bytes_transferred;
        st = job_state(job);
        if (st == BITS_JOB_STATE_TRANSFERRED || st == BITS_JOB_STATE_ERROR || now_ms() > deadline) break;
        poll_pause();
    }
    CHECKF(st == BITS_JOB_STATE_TRANSFERRED, "after resume the job ended in %s", check_state_name(st));
    CHECKF(lowest >= p3.bytes_transferred, "bytes_transferred fell to %llu after the resume (was %llu): restarted",
           (unsigned long long)lowest, (unsigned long long)p3.bytes_transferred);
    CHECK_HR(bits_complete(job), BITS_S_OK);
    CHECK(files_equal(source, dest));
    bits_job_release(job);
    free(dest_dir);
}

/* Misbehaving servers, end to end. */
static void test_server_faults(void) {
    char *dest_dir = make_dir(work, "faults-dest");
    char url[512], dest[1024], source[1024];

    /* Every response cut after 3,000,000 bytes: resumed with Range until done, no byte twice. */
    bits_job *job = new_job("drop");
    if (!job) return;
    srcpath(source, sizeof source, "big.bin");
    mkurl(url, sizeof url, "big.bin", "drop=3000000");
    path_in(dest, sizeof dest, dest_dir, "dropped.bin");
    CHECK_HR(bits_job_set_minimum_retry_delay(job, 0), BITS_S_OK);
    CHECK_HR(bits_add_file(job, url, dest), BITS_S_OK);
    long long sent_before = server_bytes_sent();
    CHECK(sent_before >= 0);
    CHECK_HR(bits_resume(job), BITS_S_OK);
    CHECK_WAIT(job, 60000, BITS_JOB_STATE_TRANSFERRED);
    long long sent = server_bytes_sent() - sent_before;
    CHECKF(sent == file_size(source), "the server sent %lld bytes for a %lld-byte file", sent, file_size(source));
    CHECK_HR(bits_complete(job), BITS_S_OK);
    CHECK(files_equal(source, dest));
    bits_job_release(job);

    /* Range ignored (200 with the whole file) after a suspend: the file restarts, it is not spliced. */
    job = new_job("norange");
    if (!job) return;
    srcpath(source, sizeof source, "slow.bin");
    mkurl(url, sizeof url, "slow.bin", "norange=1&rate=524288");
    path_in(dest, sizeof dest, dest_dir, "norange.bin");
    CHECK_HR(bits_add_file(job, url, dest), BITS_S_OK);
    CHECK_HR(bits_resume(job), BITS_S_OK);
    CHECK(poll_bytes(job, 100000, 10000) >= 100000);
    CHECK_HR(bits_suspend(job), BITS_S_OK);
    CHECK_HR(bits_resume(job), BITS_S_OK);
    CHECK_WAIT(job, 60000, BITS_JOB_STATE_TRANSFERRED);
    bits_job_progress p;
    CHECK_HR(bits_job_get_progress(job, &p), BITS_S_OK);
    CHECK(p.bytes_transferred == (uint64_t)file_size(source) && p.bytes_total == p.bytes_transferred);
    CHECK_HR(bits_complete(job), BITS_S_OK);
    CHECK(files_equal(source, dest));
    bits_job_release(job);

    /* A 302 is followed. */
    job = new_job("redirect");
    if (!job) return;
    srcpath(source, sizeof source, "mid.bin");
    mkurl(url, sizeof url, "small.bin", "redirect=/mid.bin");
    path_in(dest, sizeof dest, dest_dir, "redirected.bin");
    CHECK_HR(bits_add_file(job, url, dest), BITS_S_OK);
    CHECK_HR(bits_resume(job), BITS_S_OK);
    CHECK_WAIT(job, 60000, BITS_JOB_STATE_TRANSFERRED);
    CHECK_HR(bits_complete(job), BITS_S_OK);
    CHECK(files_equal(source, dest));
    bits_job_release(job);

    /* No Content-Length: BITS_E_MISSING_FILE_SIZE, fatal. */
    job = new_job("nolength");
    if (!job) return;
    mkurl(url, sizeof url, "small.bin", "nolength=1");
    path_in(dest, sizeof dest, dest_dir, "nolength.bin");
    CHECK_HR(bits_add_file(job, url, dest), BITS_S_OK);
    CHECK_HR(bits_resume(job), BITS_S_OK);
    CHECK_WAIT(job, 60000, BITS_JOB_STATE_ERROR);
    int32_t ctx = -1;
    bits_hresult code = 0;
    CHECK_HR(bits_job_get_error(job, &ctx, &code, NULL), BITS_S_OK);
    CHECKF(code == BITS_E_MISSING_FILE_SIZE && ctx == BITS_ERROR_CONTEXT_REMOTE_FILE, "context %d code 0x%08X", ctx,
           (uint32_t)code);
    CHECK_HR(bits_cancel(job), BITS_S_OK);
    bits_job_release(job);

    CHECK(count_tmp(dest_dir) == 0);
    free(dest_dir);
}

/* A rename that fails in bits_complete: a Win32 HRESULT, the job keeps its state and files, and a
   second bits_complete finishes the work (the file already renamed is not touched again). */
static void test_complete_rename_failure(void) {
    char *dest_dir = make_dir(work, "rename-dest");
    char url1[512], url2[512], dest1[1024], dest2[1024], src1[1024], src2[1024], inside[1100];
    mkurl(url1, sizeof url1, "small.bin", NULL);
    mkurl(url2, sizeof url2, "mid.bin", NULL);
    path_in(dest1, sizeof dest1, dest_dir, "first.bin");
    path_in(dest2, sizeof dest2, dest_dir, "second.bin");
    bits_job *job = new_job("rename failure");
    if (!job) return;
    CHECK_HR(bits_add_file(job, url1, dest1), BITS_S_OK);
    CHECK_HR(bits_add_file(job, url2, dest2), BITS_S_OK);
    CHECK_HR(bits_resume(job), BITS_S_OK);
    CHECK_WAIT(job, 30000, BITS_JOB_STATE_TRANSFERRED);

    /* A non-empty folder now occupies the second destination. */
    CHECK(mkdir(dest2, 0700) == 0);
    snprintf(inside, sizeof inside, "%s/occupied", dest2);
    FILE *f = fopen(inside, "w");
    if (f) fclose(f);
    bits_hresult hr = bits_complete(job);
    CHECKF(BITS_FAILED(hr) && ((uint32_t)hr & 0xFFFF0000u) == 0x80070000u,
           "bits_complete onto a folder returned 0x%08X, expected an HRESULT_FROM_WIN32 failure", (uint32_t)hr);
    CHECK_STATE(job, BITS_JOB_STATE_TRANSFERRED);
    CHECKF(count_tmp(dest_dir) >= 1, "the temporary file of the second file is gone");

    /* Clear the way and complete again. */
    CHECK(unlink(inside) == 0 && rmdir(dest2) == 0);
    CHECK_HR(bits_complete(job), BITS_S_OK);
    CHECK_STATE(job, BITS_JOB_STATE_ACKNOWLEDGED);
    CHECK(files_equal(srcpath(src1, sizeof src1, "small.bin"), dest1));
    CHECK(files_equal(srcpath(src2, sizeof src2, "mid.bin"), dest2));
    CHECK(count_tmp(dest_dir) == 0);
    bits_job_release(job);
    free(dest_dir);
}

/* Unknown ids; GUID text in and out. */
static void test_guids(void) {
    bits_guid random_id = {0x6BA7B810, 0x9DAD, 0x11D1, {0x80, 0xB4, 0x00, 0xC0, 0x4F, 0xD4, 0x30, 0xC8}};
    bits_job *j = GARBAGE_PTR;
    CHECK_HR(bits_get_job(mgr, &random_id, &j), BITS_E_NOT_FOUND);
    CHECK(j == NULL);

    const bits_guid fixed = {0x12345678, 0x9ABC, 0xDEF0, {0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF}};
    char buf[BITS_GUID_STRING_LEN + 8];
    CHECK_HR(bits_guid_to_string(&fixed, buf, BITS_GUID_STRING_LEN), BITS_S_OK);
    CHECKF(strcmp(buf, "{12345678-9ABC-DEF0-0123-456789ABCDEF}") == 0, "formatted as %s", buf);
    CHECK(strlen(buf) == BITS_GUID_STRING_LEN - 1);

    bits_guid parsed;
    static const char *const good[] = {"{12345678-9ABC-DEF0-0123-456789ABCDEF}", "12345678-9ABC-DEF0-0123-456789ABCDEF",
                                       "{12345678-9abc-def0-0123-456789abcdef}", "12345678-9abc-DEF0-0123-456789abCDef"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        memset(&parsed, 0xA5, sizeof parsed);
        if (CHECK_HR(bits_guid_from_string(good[i], &parsed), BITS_S_OK))
            CHECKF(memcmp(&parsed, &fixed, sizeof fixed) == 0, "\"%s\" parsed to another GUID", good[i]);
    }
    static const char *const bad[] = {"", "hello", "{}", "{12345678-9ABC-DEF0-0123-456789ABCDEF",
                                      "12345678-9ABC-DEF0-0123-456789ABCDEF}", "{{12345678-9ABC-DEF0-0123-456789ABCDEF}}",
                                      "12345678-9ABC-DEF0-0123-456789ABCDEG", "12345678-9ABC-DEF0-0123-456789ABCDE",
                                      "12345678-9ABC-DEF0-0123-456789ABCDEF0", " 12345678-9ABC-DEF0-0123-456789ABCDEF",
                                      "123456789ABCDEF00123456789ABCDEF", "(12345678-9ABC-DEF0-0123-456789ABCDEF)",
                                      "urn:uuid:12345678-9abc-def0-0123-456789abcdef"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&parsed, 0xA5, sizeof parsed);
        if (!CHECK_HR(bits_guid_from_string(bad[i], &parsed), BITS_E_INVALIDARG)) fprintf(stderr, "    text \"%s\"\n", bad[i]);
        CHECK(guid_is_zero(&parsed));
    }

    /* Buffers one byte short, or empty. */
    memset(buf, 'x', sizeof buf);
    CHECK_HR(bits_guid_to_string(&fixed, buf, BITS_GUID_STRING_LEN - 1), (bits_hresult)0x8007007Au);
    CHECK(buf[0] == '\0');
    memset(buf, 'x', sizeof buf);
    CHECK_HR(bits_guid_to_string(&fixed, buf, 0), (bits_hresult)0x8007007Au);
    CHECK(buf[0] == 'x');
    CHECK_HR(bits_guid_to_string(&fixed, buf, 1), (bits_hresult)0x8007007Au);
    CHECK(buf[0] == '\0');

    /* A job's id round-trips through text and finds the job. */
    bits_guid id;
    bits_job *job = NULL;
    CHECK_HR(bits_create_job(mgr, "guid", BITS_JOB_TYPE_DOWNLOAD, &id, &job), BITS_S_OK);
    if (!job) return;
    CHECK(!guid_is_zero(&id));
    CHECK_HR(bits_guid_to_string(&id, buf, sizeof buf), BITS_S_OK);
    CHECK(buf[0] == '{' && buf[37] == '}' && buf[38] == '\0');
    for (char *c = buf; *c; c++) CHECKF(!(*c >= 'a' && *c <= 'z'), "lower case in %s", buf);
    char lower[BITS_GUID_STRING_LEN];
    for (size_t i = 0; i < BITS_GUID_STRING_LEN; i++) lower[i] = (char)((buf[i] >= 'A' && buf[i] <= 'F') ? buf[i] + 32 : buf[i]);
    memset(&parsed, 0, sizeof parsed);
    CHECK_HR(bits_guid_from_string(lower, &parsed), BITS_S_OK);
    CHECK(memcmp(&parsed, &id, sizeof id) == 0);
    bits_job *found = NULL;
    CHECK_HR(bits_get_job(mgr, &parsed, &found), BITS_S_OK);
    if (found) {
        CHECK_HR(bits_suspend(found), BITS_S_OK); /* acts on the same job */
        CHECK_HR(bits_cancel(found), BITS_S_OK);
        CHECK_STATE(job, BITS_JOB_STATE_CANCELLED);
        bits_job_release(found);
    }
    bits_job_release(job);

    /* Two jobs never share an id. */
    bits_guid a, b;
    bits_job *ja = NULL, *jb = NULL;
    CHECK_HR(bits_create_job(mgr, "same name", BITS_JOB_TYPE_DOWNLOAD, &a, &ja), BITS_S_OK);
    CHECK_HR(bits_create_job(mgr, "same name", BITS_JOB_TYPE_DOWNLOAD, &b, &jb), BITS_S_OK);
    CHECK(memcmp(&a, &b, sizeof a) != 0);
    if (ja) { bits_cancel(ja); bits_job_release(ja); }
    if (jb) { bits_cancel(jb); bits_job_release(jb); }
}

/* bits_manager_open's own checks, and the default state folder. */
static void test_manager_open(void) {
    bits_manager *m = GARBAGE_PTR;
    CHECK_HR(bits_manager_open("relative/state", &m), BITS_E_INVALIDARG);
    CHECK(m == NULL);
    char p[1024];
    path_in(p, sizeof p, work, "state-is-a-file");
    FILE *f = fopen(p, "w");
    if (f) fclose(f);
    m = GARBAGE_PTR;
    bits_hresult hr = bits_manager_open(p, &m);
    CHECKF(hr == BITS_E_INVALIDARG,
                    "bits_manager_open on a regular file returned 0x%08X (header: BITS_E_INVALIDARG for \"not a folder\"): %s",
                    (uint32_t)hr, bits_last_error_message());
    CHECK(BITS_FAILED(hr) && m == NULL);

    /* NULL: $OPENBITS_HOME, created with mode 0700. */
    char *home = make_dir(work, "home");
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/nested/openbits", home);
    CHECK(setenv("OPENBITS_HOME", dir, 1) == 0);
    m = NULL;
    CHECK_HR(bits_manager_open(NULL, &m), BITS_S_OK);
    struct stat st;
    CHECKF(stat(dir, &st) == 0 && S_ISDIR(st.st_mode), "%s was not created", dir);
    CHECKF((st.st_mode & 0777) == 0700, "%s has mode %o, expected 0700", dir, (unsigned)(st.st_mode & 0777));
    bits_manager_close(m);
    free(home);
}

/* A job handle outlives its manager: calls fail with BITS_E_INVALID_STATE, release is fine. */
static void test_closed_manager(void) {
    char *state = make_dir(work, "closed-state");
    char *dest_dir = make_dir(work, "closed-dest");
    char url[512], dest[1024];
    bits_manager *m = NULL;
    if (!CHECK_HR(bits_manager_open(state, &m), BITS_S_OK)) return;
    bits_guid id;
    bits_job *job = NULL, *idle = NULL;
    CHECK_HR(bits_create_job(m, "closed", BITS_JOB_TYPE_DOWNLOAD, &id, &job), BITS_S_OK);
    CHECK_HR(bits_create_job(m, "idle", BITS_JOB_TYPE_DOWNLOAD, NULL, &idle), BITS_S_OK);
    if (!job || !idle) return;
    mkurl(url, sizeof url, "slow.bin", "rate=65536");
    path_in(dest, sizeof dest, dest_dir, "slow.bin");
    CHECK_HR(bits_add_file(job, url, dest), BITS_S_OK);
    CHECK_HR(bits_resume(job), BITS_S_OK);
    CHECK(poll_bytes(job, 1, 10000) > 0); /* close with a transfer running */

    int64_t t0 = now_ms();
    bits_manager_close(m);
    int64_t took = now_ms() - t0;
    CHECKF(took < 5500, "bits_manager_close took %lld ms (documented: within 5 s)", (long long)took);

    bits_job *handles[] = {job, idle};
    for (int i = 0; i < 2; i++) {
        bits_job *h = handles[i];
        int32_t st = 0x7777;
        CHECK_HR(bits_job_get_state(h, &st), BITS_E_INVALID_STATE);
        CHECK(st == 0);
        bits_job_progress p;
        memset(&p, 0xAB, sizeof p);
        CHECK_HR(bits_job_get_progress(h, &p), BITS_E_INVALID_STATE);
        CHECK(progress_is_zero(&p));
        int32_t ctx = 0x7777;
        bits_hresult code = 0x7777;
        char *desc = GARBAGE_PTR;
        CHECK_HR(bits_job_get_error(h, &ctx, &code, &desc), BITS_E_INVALID_STATE);
        CHECK(ctx == 0 && code == 0 && desc == NULL);
        st = 0x7777;
        t0 = now_ms();
        CHECK_HR(bits_job_wait(h, BITS_INFINITE, &st), BITS_E_INVALID_STATE);
        CHECK(st == 0 && now_ms() - t0 < 1000);
        char url2[512], dest2[1024];
        mkurl(url2, sizeof url2, "small.bin", NULL);
        path_in(dest2, sizeof dest2, dest_dir, "after-close.bin");
        CHECK_HR(bits_add_file(h, url2, dest2), BITS_E_INVALID_STATE);
        CHECK_HR(bits_resume(h), BITS_E_INVALID_STATE);
        CHECK_HR(bits_suspend(h), BITS_E_INVALID_STATE);
        CHECK_HR(bits_job_set_minimum_retry_delay(h, 1), BITS_E_INVALID_STATE);
        CHECK_HR(bits_job_set_no_progress_timeout(h, 1), BITS_E_INVALID_STATE);
        CHECK_HR(bits_complete(h), BITS_E_INVALID_STATE);
        CHECK_HR(bits_cancel(h), BITS_E_INVALID_STATE);
        bits_job_release(h);
    }
    CHECK(!file_exists(dest));
    free(state);
    free(dest_dir);
}

int main(void) {
    base = test_env("OPENBITS_TEST_URL");
    src = test_env("OPENBITS_TEST_SRC");
    work = test_env("OPENBITS_TEST_WORK");
    char *state = make_dir(work, "errors-state");

    /* Before any failing call. */
    const char *m = bits_last_error_message();
    CHECKF(m != NULL && m[0] == '\0', "last error message at start is \"%s\"", m ? m : "(NULL)");

    if (!CHECK_HR(bits_manager_open(state, &mgr), BITS_S_OK)) return check_report("errors");

    struct { const char *name; void (*fn)(void); } tests[] = {
        {"version", test_version},
        {"last error message", test_last_error_message},
        {"NULL no-ops", test_null_noops},
        {"NULL pointers", test_null_pointers},
        {"invalid UTF-8", test_bad_utf8},
        {"create_job arguments", test_create_job_args},
        {"add_file arguments", test_add_file_args},
        {"file:// source", test_file_url},
        {"existing destination", test_existing_destination},
        {"empty job, no error info", test_empty_and_no_error},
        {"HTTP 404", test_http_404},
        {"transient 503 retried", test_transient_retry},
        {"TRANSIENT_ERROR state", test_transient_error_state},
        {"no-progress timeout 0", test_no_progress_timeout},
        {"cancel", test_cancel},
        {"partial complete", test_partial_complete},
        {"suspend and resume", test_suspend_resume},
        {"server faults", test_server_faults},
        {"complete: rename fails", test_complete_rename_failure},
        {"GUIDs", test_guids},
        {"manager_open", test_manager_open},
        {"closed manager", test_closed_manager},
    };
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        int before = atomic_load(&check_failures);
        int64_t t0 = now_ms();
        tests[i].fn();
        int failed = atomic_load(&check_failures) - before;
        printf("  %-28s %s (%lld ms)\n", tests[i].name, failed ? "FAILED" : "ok", (long long)(now_ms() - t0));
        fflush(stdout);
    }

    bits_manager_close(mgr);
    free(state);
    return check_report("errors");
}
