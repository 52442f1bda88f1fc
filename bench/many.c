/*
 * bench/many.c: many small files through the openbits C ABI, one process per run (bench/many.sh).
 *
 *   many one  STATE_DIR BASE_URL DEST_DIR NAMES_FILE
 *       One job with every file: bits_create_job, bits_add_file_set of all of them, bits_resume,
 *       bits_job_wait, bits_complete. The manager is opened with max_files_per_job raised to the
 *       number of files (BITS's default is 200).
 *
 *   many jobs STATE_DIR BASE_URL DEST_DIR NAMES_FILE
 *       One job per file: for every file bits_create_job + bits_add_file + bits_resume (all jobs
 *       are resumed before any is waited for), then for every job in creation order
 *       bits_job_wait + bits_complete. The manager is opened with max_jobs and
 *       max_jobs_per_owner raised to the number of files (defaults 300 and 60).
 *
 *   many creates DIR COUNT
 *       Creates the folder DIR and COUNT empty files in it (open with O_CREAT|O_EXCL, close),
 *       and prints `create_us`, the mean time of one create in microseconds. bench/many.sh runs it
 *       beside the destination before each round: it tells how dear creating a file is at the
 *       time (on ext4, new inodes skip recently deleted ones, a CPU scan that curl pays on one
 *       thread and openbits on two), one of the things that move the ratios most.
 *
 * NAMES_FILE holds one file name per line; file NAME is downloaded from BASE_URL/NAME to
 * DEST_DIR/NAME. STATE_DIR should not exist yet: bits_manager_open_ex creates it and its
 * database. Every job gets a no-progress timeout of 0, so any error is fatal at once instead of
 * being retried for 14 days. Every other option keeps its default (max_concurrent_jobs: 6).
 *
 * What is timed: CLOCK_MONOTONIC from just before the first bits_create_job to just after the last
 * bits_complete returns (bits_complete fsyncs the files and their folder). Opening and closing
 * the manager are timed apart.
 *
 * Where the CPU of the timed part goes (Linux): each thread's time on a CPU
 * (/proc/self/task/TID/schedstat, in ns) is read just before and just after it, and summed as
 * the application's thread (this one, which makes every call), the engine (threads named
 * openbits-worker: the runtime's workers and its blocking pool, which runs the checkpoint
 * batches) and the rest (the notification and network threads). A thread that ends inside the
 * timed part is not counted (the runtime's blocking threads live 10 s when idle).
 *
 * stdout: `key value` lines for bench/many.sh: seconds, complete_seconds (the part of `seconds`
 * spent inside bits_complete), after_transfers_ms, cpu_app_ms, cpu_engine_ms, cpu_other_ms,
 * open_seconds, close_seconds, files; for `creates`, create_us.
 * Diagnostics go to stderr; exit status 1 on any failure, 2 on bad usage.
 */
#define _POSIX_C_SOURCE 200809L

#include "openbits.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* BITS's defaults, which a manager opened with 0 in these fields uses (include/openbits.h). */
#define DEFAULT_MAX_JOBS 300u
#define DEFAULT_MAX_JOBS_PER_OWNER 60u
#define DEFAULT_MAX_FILES_PER_JOB 200u

/* Each thread's CPU time, read from /proc (see the header comment). */
#define MAX_THREADS 64
struct cpu_times {
    int n;
    int tid[MAX_THREADS];
    long long ns[MAX_THREADS];
    int kind[MAX_THREADS]; /* an index into cpu_ms: 0 application, 1 engine, 2 other */
};

static void read_cpu(struct cpu_times *t)
{
    t->n = 0;
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return;
    int self = (int)getpid();
    struct dirent *e;
    while ((e = readdir(d)) != NULL && t->n < MAX_THREADS) {
        int tid = atoi(e->d_name);
        if (tid <= 0)
            continue; /* "." and ".." */
        char path[64], comm[32] = "";
        long long ns = 0;
        snprintf(path, sizeof path, "/proc/self/task/%d/schedstat", tid);
        FILE *f = fopen(path, "r");
        if (!f)
            continue; /* the thread just ended */
        int got = fscanf(f, "%lld", &ns);
        fclose(f);
        if (got != 1)
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%d/comm", tid);
        f = fopen(path, "r");
        if (f) {
            if (!fgets(comm, sizeof comm, f))
                comm[0] = 0;
            fclose(f);
        }
        t->tid[t->n] = tid;
        t->ns[t->n] = ns;
        if (tid == self)
            t->kind[t->n] = 0;
        else if (strncmp(comm, "openbits-worker", 15) == 0)
            t->kind[t->n] = 1;
        else
            t->kind[t->n] = 2;
        t->n++;
    }
    closedir(d);
}

static struct cpu_times cpu_start;
static double cpu_ms[3]; /* application, engine, other: CPU of the timed part */

static void cpu_begin(void) { read_cpu(&cpu_start); }

static void cpu_end(void)
{
    struct cpu_times now;
    read_cpu(&now);
    cpu_ms[0] = cpu_ms[1] = cpu_ms[2] = 0;
    for (int i = 0; i < now.n; i++) {
        long long before = 0;
        for (int j = 0; j < cpu_start.n; j++)
            if (cpu_start.tid[j] == now.tid[i])
                before = cpu_start.ns[j];
        cpu_ms[now.kind[i]] += (double)(now.ns[i] - before) / 1e6;
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The wall clock in milliseconds since 1970, as the library's job times are. */
static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* How long before `end_ms` the last of `jobs` became TRANSFERRED (their
   transfer_completion_ms), in milliseconds: what the completes and their syncs added after the
   transfers were over. -1 if a job's times cannot be read. */
static long long after_transfers_ms(bits_job *const *jobs, uint32_t n, uint64_t end_ms)
{
    uint64_t last = 0;
    for (uint32_t i = 0; i < n; i++) {
        bits_job_times t;
        if (bits_job_get_times(jobs[i], &t) != BITS_S_OK)
            return -1;
        if (t.transfer_completion_ms > last)
            last = t.transfer_completion_ms;
    }
    return (long long)end_ms - (long long)last;
}

static int check(bits_hresult hr, const char *what)
{
    if (BITS_FAILED(hr)) {
        fprintf(stderr, "many: %s failed: 0x%08X %s\n", what, (unsigned)hr,
                bits_last_error_message());
        return 0;
    }
    return 1;
}

/* `n` if it is above the default, else 0 (the default): the limit is raised, never lowered. */
static uint32_t raised(uint32_t n, uint32_t def)
{
    return n > def ? n : 0;
}

/* Explains why a job did not end TRANSFERRED. */
static void report_state(bits_job *job, int32_t state, const char *name)
{
    int32_t ctx = 0;
    bits_hresult code = 0;
    char *desc = NULL;
    if (BITS_SUCCEEDED(bits_job_get_error(job, &ctx, &code, &desc)))
        fprintf(stderr, "many: job of %s ended in state %d: 0x%08X %s\n", name, (int)state,
                (unsigned)code, desc ? desc : "");
    else
        fprintf(stderr, "many: job of %s ended in state %d\n", name, (int)state);
    bits_free_string(desc);
}

/* The files: remote URLs and local paths, built before anything is timed. */
struct files {
    uint32_t count;
    char **names;
    char **urls;
    char **paths;
};

static void free_files(struct files *f)
{
    for (uint32_t i = 0; i < f->count; i++) {
        free(f->names[i]);
        free(f->urls[i]);
        free(f->paths[i]);
    }
    free(f->names);
    free(f->urls);
    free(f->paths);
    memset(f, 0, sizeof *f);
}

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + 1 + lb + 1);
    if (!s)
        return NULL;
    memcpy(s, a, la);
    s[la] = '/';
    memcpy(s + la + 1, b, lb + 1);
    return s;
}

static int read_files(const char *names_file, const char *base_url, const char *dest_dir,
                      struct files *f)
{
    memset(f, 0, sizeof *f);
    FILE *in = fopen(names_file, "r");
    if (!in) {
        fprintf(stderr, "many: %s: %s\n", names_file, strerror(errno));
        return 0;
    }
    uint32_t cap = 0;
    char line[1024];
    int ok = 1;
    while (ok && fgets(line, sizeof line, in)) {
        size_t len = strcspn(line, "\r\n");
        line[len] = '\0';
        if (len == 0)
            continue;
        if (f->count == cap) {
            cap = cap ? cap * 2 : 1024;
            char **n = realloc(f->names, cap * sizeof *n);
            if (n)
                f->names = n;
            char **u = realloc(f->urls, cap * sizeof *u);
            if (u)
                f->urls = u;
            char **p = realloc(f->paths, cap * sizeof *p);
            if (p)
                f->paths = p;
            if (!n || !u || !p) {
                ok = 0;
                break;
            }
        }
        f->names[f->count] = strdup(line);
        f->urls[f->count] = join(base_url, line);
        f->paths[f->count] = join(dest_dir, line);
        f->count++;
        if (!f->names[f->count - 1] || !f->urls[f->count - 1] || !f->paths[f->count - 1])
            ok = 0;
    }
    fclose(in);
    if (!ok) {
        fprintf(stderr, "many: out of memory reading %s\n", names_file);
        free_files(f);
        return 0;
    }
    if (f->count == 0) {
        fprintf(stderr, "many: %s lists no files\n", names_file);
        return 0;
    }
    return 1;
}

/* (a) one job with every file. */
static int run_one(bits_manager *mgr, const struct files *f, double *out_seconds,
                   double *out_complete, long long *out_after_ms)
{
    bits_file_info *set = calloc(f->count, sizeof *set);
    if (!set) {
        fprintf(stderr, "many: out of memory\n");
        return 0;
    }
    for (uint32_t i = 0; i < f->count; i++) {
        set[i].remote_url = f->urls[i];
        set[i].local_path = f->paths[i];
    }

    int ok = 0;
    bits_job *job = NULL;
    int32_t state = 0;
    cpu_begin();
    double t0 = now_s();
    if (!check(bits_create_job(mgr, "many: one job", BITS_JOB_TYPE_DOWNLOAD, NULL, &job),
               "bits_create_job"))
        goto out;
    if (!check(bits_job_set_no_progress_timeout(job, 0), "bits_job_set_no_progress_timeout"))
        goto out;
    if (!check(bits_add_file_set(job, f->count, set), "bits_add_file_set"))
        goto out;
    if (!check(bits_resume(job), "bits_resume"))
        goto out;
    if (!check(bits_job_wait(job, BITS_INFINITE, &state), "bits_job_wait"))
        goto out;
    if (state != BITS_JOB_STATE_TRANSFERRED) {
        report_state(job, state, "every file");
        bits_cancel(job);
        goto out;
    }
    double tc = now_s();
    bits_hresult hr = bits_complete(job);
    double t1 = now_s();
    cpu_end();
    uint64_t end_ms = wall_ms();
    *out_complete = t1 - tc;
    *out_after_ms = after_transfers_ms(&job, 1, end_ms);
    if (!check(hr, "bits_complete"))
        goto out;
    if (hr != BITS_S_OK) {
        fprintf(stderr, "many: bits_complete returned 0x%08X\n", (unsigned)hr);
        goto out;
    }
    *out_seconds = t1 - t0;
    ok = 1;
out:
    bits_job_release(job);
    free(set);
    return ok;
}

/* (b) one job per file, all resumed, then each waited for and completed. */
static int run_jobs(bits_manager *mgr, const struct files *f, double *out_seconds,
                    double *out_complete, long long *out_after_ms)
{
    bits_job **jobs = calloc(f->count, sizeof *jobs);
    if (!jobs) {
        fprintf(stderr, "many: out of memory\n");
        return 0;
    }

    int ok = 0;
    uint32_t created = 0, completed = 0;
    cpu_begin();
    double t0 = now_s();
    for (uint32_t i = 0; i < f->count; i++) {
        if (!check(bits_create_job(mgr, f->names[i], BITS_JOB_TYPE_DOWNLOAD, NULL, &jobs[i]),
                   "bits_create_job"))
            goto out;
        created++;
        if (!check(bits_job_set_no_progress_timeout(jobs[i], 0),
                   "bits_job_set_no_progress_timeout"))
            goto out;
        if (!check(bits_add_file(jobs[i], f->urls[i], f->paths[i]), "bits_add_file"))
            goto out;
        if (!check(bits_resume(jobs[i]), "bits_resume"))
            goto out;
    }
    for (uint32_t i = 0; i < f->count; i++) {
        int32_t state = 0;
        if (!check(bits_job_wait(jobs[i], BITS_INFINITE, &state), "bits_job_wait"))
            goto out;
        if (state != BITS_JOB_STATE_TRANSFERRED) {
            report_state(jobs[i], state, f->names[i]);
            goto out;
        }
        double tc = now_s();
        bits_hresult hr = bits_complete(jobs[i]);
        *out_complete += now_s() - tc;
        if (!check(hr, "bits_complete"))
            goto out;
        if (hr != BITS_S_OK) {
            fprintf(stderr, "many: bits_complete of %s returned 0x%08X\n", f->names[i],
                    (unsigned)hr);
            goto out;
        }
        completed++;
    }
    double t1 = now_s();
    cpu_end();
    uint64_t end_ms = wall_ms();
    *out_seconds = t1 - t0;
    *out_after_ms = after_transfers_ms(jobs, f->count, end_ms);
    ok = 1;
out:
    /* After a failure, cancel what is left so that no BIT*.tmp file stays behind. */
    for (uint32_t i = 0; i < created; i++) {
        if (!ok && i >= completed)
            bits_cancel(jobs[i]);
        bits_job_release(jobs[i]);
    }
    free(jobs);
    return ok;
}

static int usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s one|jobs STATE_DIR BASE_URL DEST_DIR NAMES_FILE\n"
            "       %s creates DIR COUNT\n",
            argv0, argv0);
    return 2;
}

/* `many creates DIR COUNT`: the mean cost of creating an empty file in a new folder DIR. */
static int probe_creates(const char *dir, const char *count_arg)
{
    char *end = NULL;
    errno = 0;
    long count = strtol(count_arg, &end, 10);
    if (errno != 0 || end == count_arg || *end != '\0' || count < 1 || count > 1000000) {
        fprintf(stderr, "many: COUNT must be a number from 1 to 1000000: %s\n", count_arg);
        return 2;
    }
    char path[4096];
    int longest = snprintf(path, sizeof path, "%s/p%06ld", dir, count - 1);
    if (longest < 0 || (size_t)longest >= sizeof path) {
        fprintf(stderr, "many: the folder name is too long: %s\n", dir);
        return 2;
    }
    if (mkdir(dir, 0755) != 0) {
        fprintf(stderr, "many: cannot create the folder %s: %s\n", dir, strerror(errno));
        return 1;
    }
    double t0 = now_s();
    for (long i = 0; i < count; i++) {
        /* No longer than the last name, checked above. */
        snprintf(path, sizeof path, "%s/p%06ld", dir, i);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0) {
            fprintf(stderr, "many: cannot create %s: %s\n", path, strerror(errno));
            return 1;
        }
        close(fd);
    }
    double t1 = now_s();
    printf("create_us %.2f\n", (t1 - t0) * 1e6 / (double)count);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "creates") == 0)
        return probe_creates(argv[2], argv[3]);
    if (argc != 6)
        return usage(argv[0]);
    int one;
    if (strcmp(argv[1], "one") == 0)
        one = 1;
    else if (strcmp(argv[1], "jobs") == 0)
        one = 0;
    else
        return usage(argv[0]);
    const char *state_dir = argv[2], *base_url = argv[3], *dest_dir = argv[4];

    struct files f;
    if (!read_files(argv[5], base_url, dest_dir, &f))
        return 1;

    bits_manager_options o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.state_dir = state_dir;
    if (one) {
        o.max_files_per_job = raised(f.count, DEFAULT_MAX_FILES_PER_JOB);
    } else {
        o.max_jobs = raised(f.count, DEFAULT_MAX_JOBS);
        o.max_jobs_per_owner = raised(f.count, DEFAULT_MAX_JOBS_PER_OWNER);
    }

    bits_manager *mgr = NULL;
    double o0 = now_s();
    if (!check(bits_manager_open_ex(&o, &mgr), "bits_manager_open_ex")) {
        free_files(&f);
        return 1;
    }
    double o1 = now_s();

    double seconds = 0, complete = 0;
    long long after_ms = -1;
    int ok = one ? run_one(mgr, &f, &seconds, &complete, &after_ms)
                 : run_jobs(mgr, &f, &seconds, &complete, &after_ms);

    double c0 = now_s();
    bits_manager_close(mgr);
    double c1 = now_s();
    if (ok) {
        printf("seconds %.6f\n", seconds);
        printf("complete_seconds %.6f\n", complete);
        printf("after_transfers_ms %lld\n", after_ms);
        printf("cpu_app_ms %.1f\ncpu_engine_ms %.1f\ncpu_other_ms %.1f\n", cpu_ms[0], cpu_ms[1],
               cpu_ms[2]);
        printf("open_seconds %.6f\n", o1 - o0);
        printf("close_seconds %.6f\n", c1 - c0);
        printf("files %u\n", f.count);
    }
    free_files(&f);
    return ok ? 0 : 1;
}
