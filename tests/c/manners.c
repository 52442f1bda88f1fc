/* manners.c: background manners through the C ABI: the manager's and a job's rate limits (kept in
 * the state folder), transfer policies and the network cost (a job whose policy excludes the cost
 * waits in TRANSIENT_ERROR with BITS_E_BLOCKED_BY_COST_TRANSFER_POLICY, then completes). */
#include "check.h"

int main(void) {
    const char *base = test_env("OPENBITS_TEST_URL");
    const char *src = test_env("OPENBITS_TEST_SRC");
    char *work = make_dir(test_env("OPENBITS_TEST_WORK"), "manners");
    char state[1024], dest[1024], url[1024], source[1024];
    path_in(state, sizeof state, work, "state");
    path_in(dest, sizeof dest, work, "small.bin");
    path_in(source, sizeof source, src, "small.bin");
    snprintf(url, sizeof url, "%s/small.bin", base);

    bits_manager *m = NULL;
    CHECK_HR(bits_manager_open(state, &m), BITS_S_OK);

    /* The manager's limit: 0 by default, kept across a reopen. */
    uint64_t rate = 7;
    CHECK_HR(bits_manager_get_max_bandwidth(m, &rate), BITS_S_OK);
    CHECK(rate == 0);
    CHECK_HR(bits_manager_set_max_bandwidth(m, 2000000), BITS_S_OK);
    CHECK_HR(bits_manager_get_max_bandwidth(NULL, &rate), BITS_E_POINTER);
    CHECK_HR(bits_manager_get_max_bandwidth(m, NULL), BITS_E_POINTER);
    bits_manager_close(m);
    m = NULL;
    CHECK_HR(bits_manager_open(state, &m), BITS_S_OK);
    CHECK_HR(bits_manager_get_max_bandwidth(m, &rate), BITS_S_OK);
    CHECK(rate == 2000000);
    CHECK_HR(bits_manager_set_max_bandwidth(m, 0), BITS_S_OK);

    /* The bandwidth schedule: none by default, bad values refused, set and read back. */
    bits_bandwidth_schedule sched;
    memset(&sched, 0x5a, sizeof sched);
    sched.struct_size = sizeof sched;
    CHECK_HR(bits_manager_get_bandwidth_schedule(m, &sched), BITS_S_FALSE);
    CHECK(sched.struct_size == sizeof sched && sched.work_days == 0 && sched.maintenance_enabled == 0);
    memset(&sched, 0, sizeof sched);
    sched.struct_size = sizeof sched;
    sched.work_days = 0x3e; /* Monday to Friday */
    sched.work_start_minute = 8 * 60;
    sched.work_end_minute = 17 * 60;
    sched.work_limits[1] = BITS_BANDWIDTH_BLOCKED;
    sched.other_limits[1] = 1000000;
    sched.maintenance_enabled = 1;
    sched.maintenance_days = 0x01;
    sched.maintenance_start_minute = 23 * 60;
    sched.maintenance_end_minute = 60;
    sched.maintenance_limits[2] = 5000;
    bits_bandwidth_schedule bad = sched;
    bad.work_end_minute = 1440;
    CHECK_HR(bits_manager_set_bandwidth_schedule(m, &bad), BITS_E_INVALIDARG);
    bad = sched;
    bad.struct_size = 8;
    CHECK_HR(bits_manager_set_bandwidth_schedule(m, &bad), BITS_E_INVALIDARG);
    CHECK_HR(bits_manager_set_bandwidth_schedule(m, &sched), BITS_S_OK);
    bits_bandwidth_schedule back;
    memset(&back, 0, sizeof back);
    back.struct_size = sizeof back;
    CHECK_HR(bits_manager_get_bandwidth_schedule(m, &back), BITS_S_OK);
    CHECK(memcmp(&back, &sched, sizeof back) == 0);
    CHECK_HR(bits_manager_set_bandwidth_schedule(m, NULL), BITS_S_OK);
    CHECK_HR(bits_manager_get_bandwidth_schedule(m, &back), BITS_S_FALSE);

    /* A job's limit and policy: defaults, bad values, set and read back. */
    bits_job *job = NULL;
    CHECK_HR(bits_create_job(m, "picky", BITS_JOB_TYPE_DOWNLOAD, NULL, &job), BITS_S_OK);
    CHECK_HR(bits_job_get_max_bandwidth(job, &rate), BITS_S_OK);
    CHECK(rate == 0);
    CHECK_HR(bits_job_set_max_bandwidth(job, 12345), BITS_S_OK);
    CHECK_HR(bits_job_get_max_bandwidth(job, &rate), BITS_S_OK);
    CHECK(rate == 12345);
    CHECK_HR(bits_job_set_max_bandwidth(job, 0), BITS_S_OK);
    uint32_t policy = 0;
    CHECK_HR(bits_job_get_transfer_policy(job, &policy), BITS_S_OK);
    CHECK(policy == BITS_JOB_TRANSFER_POLICY_ALWAYS);
    CHECK_HR(bits_job_set_transfer_policy(job, 0), BITS_E_INVALIDARG);
    CHECK_HR(bits_job_set_transfer_policy(job, 0x40000001u), BITS_E_INVALIDARG);
    CHECK_HR(bits_job_set_transfer_policy(job, BITS_JOB_TRANSFER_POLICY_UNRESTRICTED), BITS_S_OK);
    CHECK_HR(bits_job_get_transfer_policy(job, &policy), BITS_S_OK);
    CHECK(policy == BITS_JOB_TRANSFER_POLICY_UNRESTRICTED);
    policy = 9;
    CHECK_HR(bits_job_get_transfer_policy(NULL, &policy), BITS_E_POINTER);
    CHECK(policy == 0); /* out-parameters are zeroed on failure */

    /* The network cost: one state at a time. */
    uint32_t cost = 0;
    CHECK_HR(bits_manager_get_network_cost(m, &cost), BITS_S_OK);
    /* No NetworkManager here (a metered one would say CAPPED_USAGE_UNKNOWN). */
    CHECK(cost == BITS_COST_STATE_UNRESTRICTED || cost == BITS_COST_STATE_CAPPED_USAGE_UNKNOWN);
    CHECK_HR(bits_manager_set_network_cost(m, 0x100), BITS_E_INVALIDARG);
    /* An application value, then 0: back to the system's. */
    CHECK_HR(bits_manager_set_network_cost(m, BITS_COST_STATE_ROAMING), BITS_S_OK);
    CHECK_HR(bits_manager_get_network_cost(m, &cost), BITS_S_OK);
    CHECK(cost == BITS_COST_STATE_ROAMING);
    CHECK_HR(bits_manager_set_network_cost(m, 0), BITS_S_OK);
    CHECK_HR(bits_manager_get_network_cost(m, &cost), BITS_S_OK);
    CHECK(cost == BITS_COST_STATE_UNRESTRICTED || cost == BITS_COST_STATE_CAPPED_USAGE_UNKNOWN);
    CHECK_HR(bits_manager_set_network_cost(m, BITS_COST_STATE_UNRESTRICTED | BITS_COST_STATE_ROAMING),
             BITS_E_INVALIDARG);
    CHECK_HR(bits_manager_set_network_cost(m, BITS_COST_STATE_USAGE_BASED), BITS_S_OK);

    /* Metered: the job waits with BITS's code, and completes once the network is unrestricted. */
    CHECK_HR(bits_add_file(job, url, dest), BITS_S_OK);
    CHECK_HR(bits_resume(job), BITS_S_OK);
    int32_t st = -1;
    int64_t end = now_ms() + 20000;
    do {
        CHECK_HR(bits_job_get_state(job, &st), BITS_S_OK);
        if (st == BITS_JOB_STATE_TRANSIENT_ERROR) break;
        poll_pause();
    } while (now_ms() < end);
    CHECK(st == BITS_JOB_STATE_TRANSIENT_ERROR);
    int32_t ctx = -1;
    bits_hresult code = 0;
    char *desc = NULL;
    CHECK_HR(bits_job_get_error(job, &ctx, &code, &desc), BITS_S_OK);
    CHECK(code == BITS_E_BLOCKED_BY_COST_TRANSFER_POLICY);
    CHECK(desc != NULL && strstr(desc, "cost") != NULL);
    bits_free_string(desc);
    CHECK_HR(bits_manager_set_network_cost(m, BITS_COST_STATE_UNRESTRICTED), BITS_S_OK);
    CHECK_WAIT(job, 20000, BITS_JOB_STATE_TRANSFERRED);
    CHECK_HR(bits_complete(job), BITS_S_OK);
    CHECK(files_equal(source, dest));
    bits_job_release(job);
    bits_manager_close(m);
    free(work);
    return check_report("manners");
}
