/*
 * tests/soak/soak_child.c: the process tests/soak/run.py kills with SIGKILL at random moments.
 *
 *   soak_child STATE_DIR MANIFEST     drive every job of the manifest to the end
 *   soak_child --count STATE_DIR      print `COUNT <n>`: jobs in the store after open's recovery
 *
 * MANIFEST has one line per job: `NAME URL DEST`. For each line: DEST exists -> a predecessor
 * completed that job; else the job named NAME is taken from the store (a predecessor created it;
 * if it has no file yet, the file is added) or created (retry delay 0); then resumed. The child
 * then polls every 50 ms: a TRANSFERRED job is completed (`DONE NAME`), a job in ERROR ends the
 * child (`FAIL ...`, exit 5: the soak's faults are all transient). `ALL DONE` and exit 0 when
 * every DEST exists. Exit 3: open failed; 6: an API call failed; 7: complete did not return S_OK.
 */
#define _POSIX_C_SOURCE 200809L

#include <openbits.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MAX_JOBS 256

static void check(const char *what, bits_hresult hr) {
    if (BITS_FAILED(hr)) {
        printf("FAIL %s: 0x%08" PRIX32 " %s\n", what, (uint32_t)hr, bits_last_error_message());
        fflush(stdout);
        exit(6);
    }
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

struct entry {
    char name[128], url[1024], dest[1024];
    bits_job *job;
    int done;
};

static bits_manager *open_manager(const char *dir) {
    bits_manager *mgr = NULL;
    bits_hresult hr = bits_manager_open(dir, &mgr);
    if (hr != BITS_S_OK) {
        printf("FAIL bits_manager_open: 0x%08" PRIX32 " %s\n", (uint32_t)hr, bits_last_error_message());
        fflush(stdout);
        exit(3);
    }
    return mgr;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--count") == 0) {
        bits_manager *mgr = open_manager(argv[2]);
        bits_guid *ids = NULL;
        uint32_t n = 0;
        check("bits_enum_jobs", bits_enum_jobs(mgr, 0, &ids, &n));
        printf("COUNT %" PRIu32 "\n", n);
        bits_free(ids);
        bits_manager_close(mgr);
        return 0;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: soak_child STATE_DIR MANIFEST | soak_child --count STATE_DIR\n");
        return 2;
    }
    static struct entry e[MAX_JOBS];
    int count = 0;
    FILE *m = fopen(argv[2], "r");
    if (!m) {
        perror(argv[2]);
        return 2;
    }
    while (count < MAX_JOBS && fscanf(m, "%127s %1023s %1023s", e[count].name, e[count].url, e[count].dest) == 3)
        count++;
    fclose(m);

    bits_manager *mgr = open_manager(argv[1]);
    bits_guid *ids = NULL;
    uint32_t n = 0;
    check("bits_enum_jobs", bits_enum_jobs(mgr, 0, &ids, &n));
    for (uint32_t i = 0; i < n; i++) {
        bits_job *job = NULL;
        char *name = NULL;
        check("bits_get_job", bits_get_job(mgr, &ids[i], &job));
        check("bits_job_get_display_name", bits_job_get_display_name(job, &name));
        int taken = 0;
        for (int k = 0; k < count && !taken; k++) {
            if (strcmp(e[k].name, name) == 0 && e[k].job == NULL) {
                e[k].job = job;
                taken = 1;
            }
        }
        if (!taken) {
            printf("FAIL the store holds a job nobody created: %s\n", name);
            return 4;
        }
        bits_free_string(name);
    }
    bits_free(ids);

    for (int k = 0; k < count; k++) {
        if (exists(e[k].dest)) {
            if (e[k].job) {
                printf("FAIL %s: its file is in place but the job is still queued\n", e[k].name);
                return 4;
            }
            e[k].done = 1;
            continue;
        }
        if (!e[k].job) {
            check("bits_create_job", bits_create_job(mgr, e[k].name, BITS_JOB_TYPE_DOWNLOAD, NULL, &e[k].job));
        }
        uint32_t files = 0;
        check("bits_job_get_file_count", bits_job_get_file_count(e[k].job, &files));
        if (files == 0) {
            check("bits_job_set_minimum_retry_delay", bits_job_set_minimum_retry_delay(e[k].job, 0));
            check("bits_add_file", bits_add_file(e[k].job, e[k].url, e[k].dest));
        }
        int32_t state = 0;
        check("bits_job_get_state", bits_job_get_state(e[k].job, &state));
        if (state != BITS_JOB_STATE_TRANSFERRED) check("bits_resume", bits_resume(e[k].job));
    }
    printf("RESUMED %d\n", count);
    fflush(stdout);

    for (;;) {
        int left = 0;
        for (int k = 0; k < count; k++) {
            if (e[k].done) continue;
            int32_t state = 0;
            check("bits_job_get_state", bits_job_get_state(e[k].job, &state));
            if (state == BITS_JOB_STATE_TRANSFERRED) {
                bits_hresult hr = bits_complete(e[k].job);
                if (hr != BITS_S_OK) {
                    printf("FAIL complete %s: 0x%08" PRIX32 " %s\n", e[k].name, (uint32_t)hr, bits_last_error_message());
                    return 7;
                }
                e[k].done = 1;
                bits_job_release(e[k].job);
                e[k].job = NULL;
                printf("DONE %s\n", e[k].name);
                fflush(stdout);
                continue;
            }
            if (state == BITS_JOB_STATE_ERROR) {
                int32_t context = 0;
                bits_hresult code = 0;
                char *text = NULL;
                check("bits_job_get_error", bits_job_get_error(e[k].job, &context, &code, &text));
                printf("FAIL %s in ERROR: 0x%08" PRIX32 " %s\n", e[k].name, (uint32_t)code, text ? text : "");
                return 5;
            }
            left++;
        }
        if (left == 0) break;
        struct timespec pause = {0, 50 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    printf("ALL DONE\n");
    fflush(stdout);
    bits_manager_close(mgr);
    return 0;
}
