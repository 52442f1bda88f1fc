/* properties.c: issue 4's job API through the C ABI.
 * - Properties: display name, description, priority (undefined -> NOTIMPL), notify flags, retry
 *   delay, no-progress timeout, notification interval, times, type, id, owner, error count; all
 *   persisted across a reopen; refused on a final job.
 * - Files: bits_add_file_set (all or none), enumeration with names, temporary name and progress,
 *   bits_file_set_remote_name and bits_job_replace_remote_prefix on a real transfer.
 * - Manager: limits (jobs, jobs per owner, files per job), owners (another owner's job is
 *   ACCESSDENIED, service mode sees and takes it), bits_get_version, bits_get_error_description,
 *   bits_job_get_error_detail. */
#include "check.h"

static bits_manager *open_opts(const char *dir, const char *owner, int service, uint32_t max_jobs,
                               uint32_t per_owner, uint32_t max_files) {
    bits_manager_options o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.state_dir = dir;
    o.owner = owner;
    o.service_mode = service;
    o.max_jobs = max_jobs;
    o.max_jobs_per_owner = per_owner;
    o.max_files_per_job = max_files;
    bits_manager *m = NULL;
    CHECK_HR(bits_manager_open_ex(&o, &m), BITS_S_OK);
    return m;
}

static int str_is(char *s, const char *expected) {
    int ok = s && strcmp(s, expected) == 0;
    if (!ok) printf("  got \"%s\", expected \"%s\"\n", s ? s : "(null)", expected);
    bits_free_string(s);
    return ok;
}

int main(void) {
    const char *base = test_env("OPENBITS_TEST_URL");
    const char *src = test_env("OPENBITS_TEST_SRC");
    char *work = make_dir(test_env("OPENBITS_TEST_WORK"), "properties");
    char state[1024], p1[1024], p2[1024], p3[1024], u1[1024], u2[1024], u3[1024], s1[1024];
    path_in(state, sizeof state, work, "state");
    path_in(p1, sizeof p1, work, "one.bin");
    path_in(p2, sizeof p2, work, "two.bin");
    path_in(p3, sizeof p3, work, "three.bin");
    snprintf(u1, sizeof u1, "%s/small.bin", base);
    snprintf(u2, sizeof u2, "%s/mid.bin", base);
    snprintf(u3, sizeof u3, "%s/missing.bin", base);
    path_in(s1, sizeof s1, src, "small.bin");

    /* Version and descriptions. */
    uint32_t major = 99, minor = 99, patch = 99;
    CHECK_HR(bits_get_version(&major, &minor, &patch), BITS_S_OK);
    CHECK(major == BITS_VERSION_MAJOR && minor == BITS_VERSION_MINOR && patch == BITS_VERSION_PATCH);
    char *text = NULL;
    CHECK_HR(bits_get_error_description(BITS_E_NOT_FOUND, &text), BITS_S_OK);
    CHECK(str_is(text, "The requested job was not found."));
    CHECK_HR(bits_get_error_description(BITS_E_HTTP_ERROR(404), &text), BITS_S_OK);
    CHECKF(text && strstr(text, "404 Not Found"), "%s", text ? text : "");
    bits_free_string(text);
    CHECK_HR(bits_get_error_description(0, NULL), BITS_E_POINTER);

    /* Properties, persisted. */
    bits_manager *m = open_opts(state, "alice", 0, 3, 2, 2);
    bits_guid id;
    bits_job *job = NULL;
    CHECK_HR(bits_create_job(m, "first name", BITS_JOB_TYPE_DOWNLOAD, &id, &job), BITS_S_OK);
    char *s = NULL;
    CHECK_HR(bits_job_get_display_name(job, &s), BITS_S_OK);
    CHECK(str_is(s, "first name"));
    CHECK_HR(bits_job_set_display_name(job, "second name"), BITS_S_OK);
    CHECK_HR(bits_job_get_description(job, &s), BITS_S_OK);
    CHECK(str_is(s, ""));
    char long_text[1100];
    memset(long_text, 'd', 1025);
    long_text[1025] = 0;
    CHECK_HR(bits_job_set_description(job, long_text), BITS_E_INVALIDARG);
    long_text[1024] = 0;
    CHECK_HR(bits_job_set_description(job, long_text), BITS_S_OK);
    CHECK_HR(bits_job_set_description(job, "what it is for"), BITS_S_OK);
    CHECK_HR(bits_job_get_owner(job, &s), BITS_S_OK);
    CHECK(str_is(s, "alice"));
    int32_t v = -1;
    CHECK_HR(bits_job_get_priority(job, &v), BITS_S_OK);
    CHECK(v == BITS_JOB_PRIORITY_NORMAL);
    CHECK_HR(bits_job_set_priority(job, 4), BITS_E_NOTIMPL);
    CHECK_HR(bits_job_set_priority(job, -1), BITS_E_NOTIMPL);
    CHECK_HR(bits_job_set_priority(job, BITS_JOB_PRIORITY_HIGH), BITS_S_OK);
    uint32_t u = 0;
    CHECK_HR(bits_job_get_notify_flags(job, &u), BITS_S_OK);
    CHECK(u == (BITS_NOTIFY_JOB_TRANSFERRED | BITS_NOTIFY_JOB_ERROR));
    CHECK_HR(bits_job_set_notify_flags(job, 0x40), BITS_E_NOTIMPL);
    CHECK_HR(bits_job_set_notify_flags(job, BITS_NOTIFY_JOB_MODIFICATION), BITS_S_OK);
    CHECK_HR(bits_job_get_minimum_retry_delay(job, &u), BITS_S_OK);
    CHECK(u == 600);
    CHECK_HR(bits_job_set_minimum_retry_delay(job, 0), BITS_S_OK);
    CHECK_HR(bits_job_get_no_progress_timeout(job, &u), BITS_S_OK);
    CHECK(u == 1209600);
    CHECK_HR(bits_job_set_no_progress_timeout(job, 77), BITS_S_OK);
    CHECK_HR(bits_job_get_minimum_notification_interval(job, &u), BITS_S_OK);
    CHECK(u == 500);
    CHECK_HR(bits_job_set_minimum_notification_interval(job, 250), BITS_S_OK);
    CHECK_HR(bits_job_get_type(job, &v), BITS_S_OK);
    CHECK(v == BITS_JOB_TYPE_DOWNLOAD);
    bits_guid got;
    CHECK_HR(bits_job_get_id(job, &got), BITS_S_OK);
    CHECK(memcmp(&got, &id, sizeof id) == 0);
    bits_job_times times;
    CHECK_HR(bits_job_get_times(job, &times), BITS_S_OK);
    CHECK(times.creation_ms > 1600000000000ull && times.modification_ms >= times.creation_ms);
    CHECK(times.transfer_completion_ms == 0);

    /* Files: a set is all or none; limit of 2 files per job. */
    bits_file_info set[3] = {{u1, p1}, {u2, p2}, {u1, "relative"}};
    CHECK_HR(bits_add_file_set(job, 3, set), BITS_E_INVALIDARG);
    CHECK_HR(bits_job_get_file_count(job, &u), BITS_S_OK);
    CHECK(u == 0);
    set[2].local_path = p3;
    CHECK_HR(bits_add_file_set(job, 3, set), BITS_E_TOO_MANY_FILES_IN_JOB);
    CHECK_HR(bits_add_file_set(job, 2, set), BITS_S_OK);
    CHECK_HR(bits_add_file(job, u1, p3), BITS_E_TOO_MANY_FILES_IN_JOB);
    CHECK_HR(bits_add_file_set(job, 1, NULL), BITS_E_POINTER);
    char *r = NULL, *l = NULL, *t = NULL;
    bits_file_progress fp;
    CHECK_HR(bits_job_get_file(job, 1, &r, &l, &t, &fp), BITS_S_OK);
    CHECK(str_is(r, u2) && str_is(l, p2) && str_is(t, ""));
    CHECK(fp.bytes_total == BITS_SIZE_UNKNOWN && fp.bytes_transferred == 0 && !fp.completed);
    CHECK_HR(bits_job_get_file(job, 2, NULL, NULL, NULL, &fp), BITS_E_INVALIDARG);
    /* Move both files to a prefix that 404s, then back: partial data and a working transfer. */
    char wrong[1100];
    snprintf(wrong, sizeof wrong, "%s/nowhere", base);
    CHECK_HR(bits_job_replace_remote_prefix(job, "http://no-such-prefix/", wrong), BITS_S_FALSE);
    CHECK_HR(bits_file_set_remote_name(job, 0, u3), BITS_S_OK);
    CHECK_HR(bits_file_set_remote_name(job, 5, u3), BITS_E_INVALIDARG);
    CHECK_HR(bits_file_set_remote_name(job, 0, "ftp://x/y"), BITS_E_INVALIDARG);
    bits_job_release(job);
    bits_manager_close(m);

    m = open_opts(state, "alice", 0, 3, 2, 2);
    CHECK_HR(bits_get_job(m, &id, &job), BITS_S_OK);
    CHECK_HR(bits_job_get_display_name(job, &s), BITS_S_OK);
    CHECK(str_is(s, "second name"));
    CHECK_HR(bits_job_get_description(job, &s), BITS_S_OK);
    CHECK(str_is(s, "what it is for"));
    CHECK_HR(bits_job_get_priority(job, &v), BITS_S_OK);
    CHECK(v == BITS_JOB_PRIORITY_HIGH);
    CHECK_HR(bits_job_get_notify_flags(job, &u), BITS_S_OK);
    CHECK(u == BITS_NOTIFY_JOB_MODIFICATION);
    CHECK_HR(bits_job_get_no_progress_timeout(job, &u), BITS_S_OK);
    CHECK(u == 77);
    CHECK_HR(bits_job_get_minimum_notification_interval(job, &u), BITS_S_OK);
    CHECK(u == 250);
    CHECK_HR(bits_job_get_file(job, 0, &r, NULL, NULL, NULL), BITS_S_OK);
    CHECK(str_is(r, u3));

    /* The 404 puts the job in ERROR; its detail names file 0 and http. */
    CHECK_HR(bits_resume(job), BITS_S_OK);
    CHECK_WAIT(job, 20000, BITS_JOB_STATE_ERROR);
    uint32_t file_index = 99;
    char *protocol = NULL, *context = NULL;
    CHECK_HR(bits_job_get_error_detail(job, &file_index, &protocol, &context), BITS_S_OK);
    CHECK(file_index == 0 && str_is(protocol, "http"));
    CHECKF(context && strstr(context, "remote file"), "%s", context ? context : "");
    bits_free_string(context);
    CHECK_HR(bits_job_get_error_count(job, &u), BITS_S_OK);
    CHECK(u >= 1);
    /* Fix the URL and resume: it transfers, and both files are right. */
    CHECK_HR(bits_file_set_remote_name(job, 0, u1), BITS_S_OK);
    CHECK_HR(bits_resume(job), BITS_S_OK);
    CHECK_WAIT(job, 20000, BITS_JOB_STATE_TRANSFERRED);
    CHECK_HR(bits_job_get_file(job, 0, NULL, NULL, &t, &fp), BITS_S_OK);
    CHECKF(t && strstr(t, "/BIT") && strstr(t, ".tmp"), "temporary name %s", t ? t : "");
    bits_free_string(t);
    CHECK(fp.completed && fp.bytes_total == fp.bytes_transferred && fp.bytes_total > 0);
    CHECK_HR(bits_job_get_times(job, &times), BITS_S_OK);
    CHECK(times.transfer_completion_ms >= times.creation_ms);
    CHECK_HR(bits_complete(job), BITS_S_OK);
    CHECK(files_equal(s1, p1));
    CHECK_HR(bits_job_set_display_name(job, "too late"), BITS_E_INVALID_STATE);
    CHECK_HR(bits_job_set_priority(job, BITS_JOB_PRIORITY_LOW), BITS_E_INVALID_STATE);
    bits_job_release(job);

    /* Limits: 2 jobs per owner, 3 in all. */
    bits_job *a = NULL, *b = NULL, *c = NULL;
    CHECK_HR(bits_create_job(m, "a", BITS_JOB_TYPE_DOWNLOAD, NULL, &a), BITS_S_OK);
    CHECK_HR(bits_create_job(m, "b", BITS_JOB_TYPE_DOWNLOAD, NULL, &b), BITS_S_OK);
    CHECK_HR(bits_create_job(m, "c", BITS_JOB_TYPE_DOWNLOAD, NULL, &c), BITS_E_TOO_MANY_JOBS_PER_USER);
    bits_guid alice_job;
    CHECK_HR(bits_job_get_id(a, &alice_job), BITS_S_OK);
    bits_job_release(a);
    bits_job_release(b);
    bits_manager_close(m);
    m = open_opts(state, "bob", 0, 3, 2, 2);
    CHECK_HR(bits_create_job(m, "bob's", BITS_JOB_TYPE_DOWNLOAD, NULL, &c), BITS_S_OK);
    bits_job_release(c);
    CHECK_HR(bits_create_job(m, "one too many", BITS_JOB_TYPE_DOWNLOAD, NULL, &c), BITS_E_TOO_MANY_JOBS_PER_MACHINE);
    /* Owners: bob cannot see alice's jobs; listing everyone's needs service mode. */
    CHECK_HR(bits_get_job(m, &alice_job, &a), BITS_E_ACCESSDENIED);
    CHECK(a == NULL);
    bits_guid *ids = NULL;
    uint32_t count = 0;
    CHECK_HR(bits_enum_jobs(m, 0, &ids, &count), BITS_S_OK);
    CHECK(count == 1);
    bits_free(ids);
    CHECK_HR(bits_enum_jobs(m, BITS_JOB_ENUM_ALL_USERS, &ids, &count), BITS_E_ACCESSDENIED);
    bits_manager_close(m);
    m = open_opts(state, "service", 1, 3, 2, 2);
    CHECK_HR(bits_enum_jobs(m, BITS_JOB_ENUM_ALL_USERS, &ids, &count), BITS_S_OK);
    CHECK(count == 3);
    bits_free(ids);
    CHECK_HR(bits_create_job(m, "limits do not apply", BITS_JOB_TYPE_DOWNLOAD, NULL, &c), BITS_S_OK);
    CHECK_HR(bits_cancel(c), BITS_S_OK);
    bits_job_release(c);
    CHECK_HR(bits_get_job(m, &alice_job, &a), BITS_S_OK);
    CHECK_HR(bits_job_take_ownership(a), BITS_S_OK);
    CHECK_HR(bits_job_get_owner(a, &s), BITS_S_OK);
    CHECK(str_is(s, "service"));
    bits_job_release(a);
    bits_manager_close(m);
    m = open_opts(state, "alice", 0, 3, 2, 2);
    CHECK_HR(bits_get_job(m, &alice_job, &a), BITS_E_ACCESSDENIED);
    CHECK_HR(bits_create_job(m, "alice again", BITS_JOB_TYPE_DOWNLOAD, NULL, &c), BITS_E_TOO_MANY_JOBS_PER_MACHINE);
    bits_manager_close(m);
    free(work);
    return check_report("properties");
}
