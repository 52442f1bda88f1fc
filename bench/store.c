/*
 * bench/store.c: the durable store under many idle jobs, through the openbits C ABI.
 *
 *   store create STATE_DIR N [DEST_DIR]
 *       Opens a manager on STATE_DIR, creates N download jobs with one file each
 *       (http://127.0.0.1:9/fileI -> DEST_DIR/fileI; DEST_DIR defaults to STATE_DIR/dest and is
 *       created if missing). The jobs are never resumed: they stay SUSPENDED and no network is
 *       used. Times the N bits_create_job + bits_add_file pairs (CLOCK_MONOTONIC), then closes
 *       the manager.
 *
 *   store reopen STATE_DIR
 *       Times bits_manager_open alone (it loads and recovers every stored job), then
 *       bits_enum_jobs plus bits_get_job / bits_job_get_state / bits_job_release for every id,
 *       then reports the peak resident memory (getrusage ru_maxrss) and the current one
 *       (/proc/self/status VmRSS) with everything loaded, then closes the manager.
 *
 * stdout: `key value` lines, one per measurement (seconds, counts, MiB), for bench/store.sh to
 * parse. Diagnostics go to stderr; exit status 1 on any failure, 2 on bad usage.
 */
#define _POSIX_C_SOURCE 200809L

#include "openbits.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

/* BITS's default limits (300 jobs, 60 per owner) would refuse 10,000 jobs: raise them through the
 * manager's options, as an application with a large queue would. */
static bits_hresult open_unlimited(const char *state_dir, bits_manager **out) {
    bits_manager_options o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.state_dir = state_dir;
    o.max_jobs = 1000000;
    o.max_jobs_per_owner = 1000000;
    return bits_manager_open_ex(&o, out);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int check(bits_hresult hr, const char *what)
{
    if (BITS_FAILED(hr)) {
        fprintf(stderr, "store: %s failed: 0x%08X %s\n", what, (unsigned)hr,
                bits_last_error_message());
        return 0;
    }
    return 1;
}

/* VmRSS from /proc/self/status, in KiB; -1 if it cannot be read. */
static long vm_rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kib;
}

/* Peak resident set size so far, in KiB (Linux reports ru_maxrss in KiB). */
static long max_rss_kib(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return ru.ru_maxrss;
}

static int create_mode(const char *state_dir, long n, const char *dest_arg)
{
    char dest_dir[4096];
    if (dest_arg)
        snprintf(dest_dir, sizeof dest_dir, "%s", dest_arg);
    else
        snprintf(dest_dir, sizeof dest_dir, "%s/dest", state_dir);

    bits_manager *mgr = NULL;
    double t_open0 = now_s();
    if (!check(open_unlimited(state_dir, &mgr), "bits_manager_open_ex"))
        return 1;
    double t_open1 = now_s();
    /* After the open, which creates STATE_DIR when DEST_DIR is inside it. */
    if (mkdir(dest_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "store: mkdir %s: %s\n", dest_dir, strerror(errno));
        bits_manager_close(mgr);
        return 1;
    }

    int rc = 1;
    char name[64], url[128], path[4096 + 64];
    double t_create = 0, t_add = 0;
    long done = 0;
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        bits_job *job = NULL;
        bits_guid id;
        snprintf(name, sizeof name, "store bench %ld", i);
        snprintf(url, sizeof url, "http://127.0.0.1:9/file%ld", i);
        snprintf(path, sizeof path, "%s/file%ld", dest_dir, i);
        double a = now_s();
        if (!check(bits_create_job(mgr, name, BITS_JOB_TYPE_DOWNLOAD, &id, &job),
                   "bits_create_job"))
            goto out;
        double b = now_s();
        bits_hresult hr = bits_add_file(job, url, path);
        double c = now_s();
        bits_job_release(job);
        if (!check(hr, "bits_add_file"))
            goto out;
        t_create += b - a;
        t_add += c - b;
        done++;
    }
    double t1 = now_s();
    rc = 0;
out:;
    double t_close0 = now_s();
    bits_manager_close(mgr);
    double t_close1 = now_s();
    double total = t1 - t0;
    if (rc == 0) {
        printf("jobs %ld\n", done);
        printf("open_seconds %.6f\n", t_open1 - t_open0);
        printf("create_seconds %.6f\n", total);
        printf("creates_per_second %.1f\n", total > 0 ? (double)done / total : 0.0);
        printf("create_job_seconds %.6f\n", t_create);
        printf("add_file_seconds %.6f\n", t_add);
        printf("close_seconds %.6f\n", t_close1 - t_close0);
        printf("peak_rss_mib %.1f\n", (double)max_rss_kib() / 1024.0);
    }
    return rc;
}

static int reopen_mode(const char *state_dir)
{
    long rss_before = vm_rss_kib();
    bits_manager *mgr = NULL;
    double t0 = now_s();
    if (!check(open_unlimited(state_dir, &mgr), "bits_manager_open_ex"))
        return 1;
    double t1 = now_s();

    int rc = 1;
    bits_guid *ids = NULL;
    uint32_t count = 0, read = 0, suspended = 0;
    double t2 = now_s();
    if (!check(bits_enum_jobs(mgr, 0, &ids, &count), "bits_enum_jobs"))
        goto out;
    for (uint32_t i = 0; i < count; i++) {
        bits_job *job = NULL;
        int32_t state = -1;
        if (!check(bits_get_job(mgr, &ids[i], &job), "bits_get_job"))
            goto out;
        bits_hresult hr = bits_job_get_state(job, &state);
        bits_job_release(job);
        if (!check(hr, "bits_job_get_state"))
            goto out;
        read++;
        if (state == BITS_JOB_STATE_SUSPENDED)
            suspended++;
    }
    double t3 = now_s();
    long rss_now = vm_rss_kib();
    long rss_peak = max_rss_kib();
    printf("open_seconds %.6f\n", t1 - t0);
    printf("enum_read_seconds %.6f\n", t3 - t2);
    printf("jobs %u\n", count);
    printf("states_read %u\n", read);
    printf("suspended %u\n", suspended);
    printf("rss_before_open_mib %.1f\n", (double)rss_before / 1024.0);
    printf("peak_rss_mib %.1f\n", (double)rss_peak / 1024.0);
    printf("rss_mib %.1f\n", (double)rss_now / 1024.0);
    rc = 0;
out:
    bits_free(ids);
    {
        double c0 = now_s();
        bits_manager_close(mgr);
        double c1 = now_s();
        if (rc == 0)
            printf("close_seconds %.6f\n", c1 - c0);
    }
    return rc;
}

static int usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s create STATE_DIR N [DEST_DIR]\n"
            "       %s reopen STATE_DIR\n",
            argv0, argv0);
    return 2;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "create") == 0 && (argc == 4 || argc == 5)) {
        char *end = NULL;
        errno = 0;
        long n = strtol(argv[3], &end, 10);
        if (errno || !end || *end || n < 0)
            return usage(argv[0]);
        return create_mode(argv[2], n, argc == 5 ? argv[4] : NULL);
    }
    if (argc == 3 && strcmp(argv[1], "reopen") == 0)
        return reopen_mode(argv[2]);
    return usage(argv[0]);
}
