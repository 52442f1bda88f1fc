/*
 * check.h: the small assertion kit shared by the openbits C tests.
 *
 * - CHECK_HR(expr, expected): compares an HRESULT; on mismatch prints file:line, the expression,
 *   expected and actual in hex (with their names) and bits_last_error_message(), and counts a
 *   failure. Evaluates to 1 if it matched, 0 if not, so `if (!CHECK_HR(...)) return;` works.
 * - CHECK_HR_ONEOF(expr, code, code...): the same, for calls with several acceptable results.
 * - CHECK(cond) / CHECKF(cond, fmt, ...): any other condition (CHECKF adds a formatted detail).
 * - CHECK_STATE(job, state): the job's current state.
 * - CHECK_WAIT(job, timeout_ms, state): bits_job_wait returns S_OK with that state; if not, prints
 *   what the job is doing and its error information.
 * - check_report(name): prints the totals and returns the process exit code (0 only if no check
 *   failed).
 * Counters are atomic: checks may run on several threads at once.
 *
 * Plus helpers the tests share: environment, monotonic time, directories, BIT*.tmp counting, file
 * comparison, and polling a job's state with a deadline.
 *
 * Include this header first (it selects POSIX 2008 before any system header).
 */
#ifndef OPENBITS_CHECK_H
#define OPENBITS_CHECK_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "openbits.h"

static atomic_int check_total;
static atomic_int check_failures;

/* The name of the HRESULTs the tests meet, for readable failure messages. */
static inline const char *check_hr_name(bits_hresult hr) {
    switch ((uint32_t)hr) {
    case 0x00000000u: return "BITS_S_OK";
    case 0x00000001u: return "BITS_S_FALSE";
    case 0x00200017u: return "BITS_S_PARTIAL_COMPLETE";
    case 0x0020001Au: return "BITS_S_UNABLE_TO_DELETE_FILES";
    case 0x80004001u: return "BITS_E_NOTIMPL";
    case 0x80004003u: return "BITS_E_POINTER";
    case 0x80004005u: return "BITS_E_FAIL";
    case 0x8000FFFFu: return "BITS_E_UNEXPECTED";
    case 0x80070003u: return "HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND)";
    case 0x80070005u: return "BITS_E_ACCESSDENIED";
    case 0x8007000Eu: return "BITS_E_OUTOFMEMORY";
    case 0x80070057u: return "BITS_E_INVALIDARG";
    case 0x8007007Au: return "HRESULT_FROM_WIN32(ERROR_INSUFFICIENT_BUFFER)";
    case 0x800705B4u: return "BITS_E_TIMEOUT";
    case 0x80200001u: return "BITS_E_NOT_FOUND";
    case 0x80200002u: return "BITS_E_INVALID_STATE";
    case 0x80200003u: return "BITS_E_EMPTY";
    case 0x8020000Fu: return "BITS_E_ERROR_INFORMATION_UNAVAILABLE";
    case 0x8020001Bu: return "BITS_E_INVALID_SERVER_RESPONSE";
    case 0x8020002Du: return "BITS_E_CONNECT_FAILURE";
    case 0x8020002Eu: return "BITS_E_CONNECTION_CLOSED";
    default:
        if (((uint32_t)hr & 0xFFFF0000u) == 0x80190000u) return "BITS_E_HTTP_ERROR(status)";
        return "?";
    }
}

static inline const char *check_state_name(int32_t s) {
    static const char *const names[] = {"QUEUED", "CONNECTING", "TRANSFERRING", "SUSPENDED", "ERROR",
                                        "TRANSIENT_ERROR", "TRANSFERRED", "ACKNOWLEDGED", "CANCELLED"};
    return s >= 0 && s <= 8 ? names[s] : "(not a state)";
}

static inline void check_failed_(const char *file, int line, const char *what, const char *detail) {
    atomic_fetch_add(&check_failures, 1);
    fprintf(stderr, "%s:%d: CHECK FAILED: %s%s%s\n", file, line, what, detail ? ": " : "", detail ? detail : "");
    fflush(stderr);
}

static inline int check_hr_(const char *file, int line, const char *expr, bits_hresult actual,
                            bits_hresult expected) {
    atomic_fetch_add(&check_total, 1);
    if (actual == expected) return 1;
    /* Read the message before anything else can overwrite it on this thread. */
    const char *msg = bits_last_error_message();
    atomic_fetch_add(&check_failures, 1);
    fprintf(stderr,
            "%s:%d: CHECK_HR FAILED: %s\n    expected 0x%08X (%s), got 0x%08X (%s)\n"
            "    bits_last_error_message: \"%s\"\n",
            file, line, expr, (uint32_t)expected, check_hr_name(expected), (uint32_t)actual,
            check_hr_name(actual), msg ? msg : "(NULL)");
    fflush(stderr);
    return 0;
}

static inline int check_hr_oneof_(const char *file, int line, const char *expr, bits_hresult actual,
                                  const bits_hresult *allowed, size_t n) {
    atomic_fetch_add(&check_total, 1);
    for (size_t i = 0; i < n; i++)
        if (actual == allowed[i]) return 1;
    const char *msg = bits_last_error_message();
    char list[512] = "";
    size_t used = 0;
    for (size_t i = 0; i < n && used < sizeof list - 64; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s0x%08X (%s)", i ? ", " : "",
                                 (uint32_t)allowed[i], check_hr_name(allowed[i]));
    atomic_fetch_add(&check_failures, 1);
    fprintf(stderr,
            "%s:%d: CHECK_HR FAILED: %s\n    expected one of %s, got 0x%08X (%s)\n"
            "    bits_last_error_message: \"%s\"\n",
            file, line, expr, list, (uint32_t)actual, check_hr_name(actual), msg ? msg : "(NULL)");
    fflush(stderr);
    return 0;
}

#define CHECK_HR(expr, expected) check_hr_(__FILE__, __LINE__, #expr, (expr), (expected))

#define CHECK_HR_ONEOF(expr, ...)                                                                \
    check_hr_oneof_(__FILE__, __LINE__, #expr, (expr), (const bits_hresult[]){__VA_ARGS__},      \
                    sizeof((const bits_hresult[]){__VA_ARGS__}) / sizeof(bits_hresult))

#if defined(__GNUC__)
#define CHECK_PRINTF_(f, a) __attribute__((format(printf, f, a)))
#else
#define CHECK_PRINTF_(f, a)
#endif

static inline int check_cond_(const char *file, int line, const char *what, int ok) {
    atomic_fetch_add(&check_total, 1);
    if (!ok) check_failed_(file, line, what, NULL);
    return ok;
}

static inline CHECK_PRINTF_(5, 6) int check_condf_(const char *file, int line, const char *what, int ok,
                                                   const char *fmt, ...) {
    atomic_fetch_add(&check_total, 1);
    if (ok) return 1;
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    check_failed_(file, line, what, detail);
    return 0;
}

#define CHECK(cond) check_cond_(__FILE__, __LINE__, #cond, (cond) ? 1 : 0)

/* The detail arguments are evaluated whether or not the condition holds. */
#define CHECKF(cond, ...) check_condf_(__FILE__, __LINE__, #cond, (cond) ? 1 : 0, __VA_ARGS__)


/* Prints the totals; returns the exit code of the test program. */
static inline int check_report(const char *name) {
    int failed = atomic_load(&check_failures), total = atomic_load(&check_total);
    printf("%s: %d checks, %d failed", name, total, failed);
    printf("\n");
    fflush(stdout);
    return failed == 0 ? 0 : 1;
}

/* ---- Environment ---------------------------------------------------------------------------- */

/* A required environment variable (set by run.sh); exits with a message if missing. */
static inline const char *test_env(const char *name) {
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "environment variable %s is not set (run the tests with tests/c/run.sh)\n", name);
        exit(2);
    }
    return v;
}

/* ---- Time ------------------------------------------------------------------------------------ */

static inline int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The pause between two polls of a condition that has its own deadline. */
static inline void poll_pause(void) {
    struct timespec ts = {0, 2 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

/* ---- Files ----------------------------------------------------------------------------------- */

/* A new empty directory under `base` (mkdtemp); exits if it cannot be made. */
static inline char *make_dir(const char *base, const char *prefix) {
    size_t n = strlen(base) + strlen(prefix) + 16;
    char *p = malloc(n);
    if (!p) abort();
    snprintf(p, n, "%s/%s.XXXXXX", base, prefix);
    if (!mkdtemp(p)) {
        fprintf(stderr, "mkdtemp %s: %s\n", p, strerror(errno));
        exit(2);
    }
    return p;
}

/* dir + "/" + name in a caller buffer. */
static inline const char *path_in(char *buf, size_t len, const char *dir, const char *name) {
    snprintf(buf, len, "%s/%s", dir, name);
    return buf;
}

static inline int file_exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

/* The number of BIT*.tmp files in `dir` (-1 if it cannot be read). */
static inline int count_tmp(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len >= 7 && strncmp(e->d_name, "BIT", 3) == 0 && strcmp(e->d_name + len - 4, ".tmp") == 0) n++;
    }
    closedir(d);
    return n;
}

/* Polls until `dir` holds exactly `n` BIT*.tmp files (or the deadline). Returns the count seen.
   (On Linux a one-file job's file has no name until its first checkpoint, 50 ms into it.) */
static inline int poll_tmp(const char *dir, int n, int64_t timeout_ms) {
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        int seen = count_tmp(dir);
        if (seen == n || now_ms() >= deadline) return seen;
        poll_pause();
    }
}

/* 1 if both files exist and hold the same bytes; else 0, with the reason on stderr. */
static inline int files_equal(const char *expected_path, const char *actual_path) {
    FILE *a = fopen(expected_path, "rb"), *b = fopen(actual_path, "rb");
    int same = 0;
    if (!a || !b) {
        fprintf(stderr, "    cannot open %s: %s\n", !a ? expected_path : actual_path, strerror(errno));
        goto done;
    }
    static _Thread_local unsigned char ba[65536], bb[65536];
    uint64_t offset = 0;
    for (;;) {
        size_t na = fread(ba, 1, sizeof ba, a), nb = fread(bb, 1, sizeof bb, b);
        size_t n = na < nb ? na : nb;
        for (size_t i = 0; i < n; i++) {
            if (ba[i] != bb[i]) {
                fprintf(stderr, "    %s differs from %s at byte %llu\n", actual_path, expected_path,
                        (unsigned long long)(offset + i));
                goto done;
            }
        }
        offset += n;
        if (na != nb) {
            fprintf(stderr, "    %s and %s differ in length (after %llu bytes)\n", actual_path,
                    expected_path, (unsigned long long)offset);
            goto done;
        }
        if (na == 0) break;
    }
    same = 1;
done:
    if (a) fclose(a);
    if (b) fclose(b);
    return same;
}

static inline long long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* ---- Jobs ------------------------------------------------------------------------------------ */

static inline int32_t job_state(bits_job *job) {
    int32_t s = -1;
    if (bits_job_get_state(job, &s) != BITS_S_OK) return -1;
    return s;
}

/* Polls the job's state until it is `want` or `timeout_ms` pass. Returns the last state seen. */
static inline int32_t poll_state(bits_job *job, int32_t want, int64_t timeout_ms) {
    int64_t deadline = now_ms() + timeout_ms;
    int32_t s = job_state(job);
    while (s != want && now_ms() < deadline) {
        poll_pause();
        s = job_state(job);
    }
    return s;
}

/* Polls until at least `min_bytes` are transferred (or the deadline). Returns the bytes seen. */
static inline uint64_t poll_bytes(bits_job *job, uint64_t min_bytes, int64_t timeout_ms) {
    int64_t deadline = now_ms() + timeout_ms;
    bits_job_progress p = {0};
    for (;;) {
        if (bits_job_get_progress(job, &p) != BITS_S_OK) return 0;
        if (p.bytes_transferred >= min_bytes || now_ms() >= deadline) return p.bytes_transferred;
        poll_pause();
    }
}

/* Polls until at least `min_files` files are reported transferred (or the deadline). Returns the
   count seen. */
static inline uint32_t poll_files(bits_job *job, uint32_t min_files, int64_t timeout_ms) {
    int64_t deadline = now_ms() + timeout_ms;
    bits_job_progress p = {0};
    for (;;) {
        if (bits_job_get_progress(job, &p) != BITS_S_OK) return 0;
        if (p.files_transferred >= min_files || now_ms() >= deadline) return p.files_transferred;
        poll_pause();
    }
}

/* Prints the job's error information (if it has any) under a failed check. */
static inline void print_job_error(bits_job *job) {
    int32_t ctx = 0;
    bits_hresult code = 0;
    char *desc = NULL;
    if (bits_job_get_error(job, &ctx, &code, &desc) == BITS_S_OK) {
        fprintf(stderr, "    job error: context %d, code 0x%08X (%s): %s\n", ctx, (uint32_t)code, check_hr_name(code),
                desc ? desc : "");
        bits_free_string(desc);
    }
}

/* bits_job_wait(job, timeout_ms) must return S_OK with state `want`; on failure says what the job
   was doing instead. Evaluates to 1 if it did. */
static inline int check_wait_(const char *file, int line, const char *what, bits_job *job, uint32_t timeout_ms,
                              int32_t want) {
    int32_t st = -1;
    bits_hresult hr = bits_job_wait(job, timeout_ms, &st);
    if (!check_hr_(file, line, what, hr, BITS_S_OK)) {
        int32_t now = job_state(job);
        fprintf(stderr, "    (the job is %s)\n", check_state_name(now));
        if (now == BITS_JOB_STATE_TRANSIENT_ERROR) print_job_error(job);
        return 0;
    }
    char detail[128];
    snprintf(detail, sizeof detail, "the wait ended in %s, expected %s", check_state_name(st), check_state_name(want));
    if (!check_cond_(file, line, what, st == want)) {
        fprintf(stderr, "    %s\n", detail);
        if (st == BITS_JOB_STATE_ERROR) print_job_error(job);
        return 0;
    }
    return 1;
}

#define CHECK_WAIT(job, timeout_ms, want)                                                         \
    check_wait_(__FILE__, __LINE__, "bits_job_wait(" #job ", " #timeout_ms ") -> " #want, job, timeout_ms, want)

#define CHECK_STATE(job, expected)                                                               \
    do {                                                                                         \
        int32_t st_ = job_state(job);                                                            \
        CHECKF(st_ == (expected), "state is %d (%s), expected %d (%s)", st_, check_state_name(st_), \
               (int)(expected), check_state_name(expected));                                     \
    } while (0)

#endif /* OPENBITS_CHECK_H */
