/* http_options.c: custom headers (get returns S_FALSE + NULL when none), Basic credentials against
 * a server that demands them, the redirect policy, proxy settings (the test server is also a
 * forwarding proxy), and the codes for what is refused. */
#include "check.h"

int main(void) {
    const char *base = test_env("OPENBITS_TEST_URL");
    char *work = make_dir(test_env("OPENBITS_TEST_WORK"), "http_options");
    char state[1024], d1[1024], d2[1024], auth_url[1024], redirect_url[1024];
    path_in(state, sizeof state, work, "state");
    path_in(d1, sizeof d1, work, "auth.bin");
    path_in(d2, sizeof d2, work, "redirect.bin");
    snprintf(auth_url, sizeof auth_url, "%s/small.bin?auth=ann:s3cret", base);
    snprintf(redirect_url, sizeof redirect_url, "%s/moved?redirect=/small.bin", base);

    bits_manager *m = NULL;
    CHECK_HR(bits_manager_open(state, &m), BITS_S_OK);
    bits_job *job = NULL;
    CHECK_HR(bits_create_job(m, "http", BITS_JOB_TYPE_DOWNLOAD, NULL, &job), BITS_S_OK);

    char *h = (char *)0x1;
    CHECK_HR(bits_job_get_custom_headers(job, &h), BITS_S_FALSE);
    CHECK(h == NULL);
    CHECK_HR(bits_job_set_custom_headers(job, "X-A: 1\nX-B: 2"), BITS_E_INVALIDARG);
    CHECK_HR(bits_job_set_custom_headers(job, "Host: elsewhere"), BITS_E_INVALIDARG);
    CHECK_HR(bits_job_set_custom_headers(job, "X-Client: openbits-test\r\n"), BITS_S_OK);
    CHECK_HR(bits_job_get_custom_headers(job, &h), BITS_S_OK);
    CHECK(h && strcmp(h, "X-Client: openbits-test\r\n") == 0);
    bits_free_string(h);
    CHECK_HR(bits_job_set_custom_headers(job, NULL), BITS_S_OK);
    CHECK_HR(bits_job_get_custom_headers(job, &h), BITS_S_FALSE);

    /* Credentials: refused without, accepted with. */
    CHECK_HR(bits_job_set_credentials(job, 3, BITS_AUTH_SCHEME_BASIC, "u", "p"), BITS_E_INVALID_AUTH_TARGET);
    CHECK_HR(bits_job_set_credentials(job, BITS_AUTH_TARGET_SERVER, 9, "u", "p"), BITS_E_INVALID_AUTH_SCHEME);
    CHECK_HR(bits_job_set_credentials(job, BITS_AUTH_TARGET_SERVER, BITS_AUTH_SCHEME_NTLM, "u", "p"), BITS_E_NOTIMPL);
    CHECK_HR(bits_job_set_credentials(job, BITS_AUTH_TARGET_SERVER, BITS_AUTH_SCHEME_BASIC, NULL, "p"), BITS_E_POINTER);
    CHECK_HR(bits_job_remove_credentials(job, BITS_AUTH_TARGET_SERVER, BITS_AUTH_SCHEME_BASIC), BITS_S_FALSE);
    CHECK_HR(bits_add_file(job, auth_url, d1), BITS_S_OK);
    CHECK_HR(bits_resume(job), BITS_S_OK);
    CHECK_WAIT(job, 20000, BITS_JOB_STATE_ERROR);
    int32_t ctx;
    bits_hresult code;
    CHECK_HR(bits_job_get_error(job, &ctx, &code, NULL), BITS_S_OK);
    CHECK_HR(code, BITS_E_HTTP_ERROR(401));
    CHECK_HR(bits_job_set_credentials(job, BITS_AUTH_TARGET_SERVER, BITS_AUTH_SCHEME_BASIC, "ann", "s3cret"), BITS_S_OK);
    CHECK_HR(bits_resume(job), BITS_S_OK);
    CHECK_WAIT(job, 20000, BITS_JOB_STATE_TRANSFERRED);
    CHECK_HR(bits_job_remove_credentials(job, BITS_AUTH_TARGET_SERVER, BITS_AUTH_SCHEME_BASIC), BITS_S_OK);
    CHECK_HR(bits_complete(job), BITS_S_OK);
    bits_job_release(job);

    /* Redirect policy. */
    CHECK_HR(bits_create_job(m, "redirect", BITS_JOB_TYPE_DOWNLOAD, NULL, &job), BITS_S_OK);
    uint32_t flags = 99;
    CHECK_HR(bits_job_get_security_flags(job, &flags), BITS_S_OK);
    CHECK(flags == 0);
    CHECK_HR(bits_job_set_security_flags(job, 0x20 /* undefined */), BITS_E_NOTIMPL);
    CHECK_HR(bits_job_set_security_flags(job, BITS_HTTP_REDIRECT_POLICY_DISALLOW), BITS_S_OK);
    CHECK_HR(bits_add_file(job, redirect_url, d2), BITS_S_OK);
    CHECK_HR(bits_resume(job), BITS_S_OK);
    CHECK_WAIT(job, 20000, BITS_JOB_STATE_ERROR);
    CHECK_HR(bits_job_get_error(job, &ctx, &code, NULL), BITS_S_OK);
    CHECK_HR(code, (bits_hresult)0x8007012E);
    CHECK_HR(bits_job_set_security_flags(job, BITS_HTTP_REDIRECT_POLICY_ALLOW_REPORT), BITS_S_OK);
    CHECK_HR(bits_resume(job), BITS_S_OK);
    CHECK_WAIT(job, 20000, BITS_JOB_STATE_TRANSFERRED);
    char *remote = NULL;
    CHECK_HR(bits_job_get_file(job, 0, &remote, NULL, NULL, NULL), BITS_S_OK);
    CHECKF(remote && strstr(remote, "/small.bin") && !strstr(remote, "moved"), "remote name %s", remote ? remote : "");
    bits_free_string(remote);
    CHECK_HR(bits_complete(job), BITS_S_OK);
    bits_job_release(job);
    /* Proxy: OVERRIDE through the test server, to a host that does not even resolve. */
    char d3[1024], proxy[256];
    path_in(d3, sizeof d3, work, "proxied.bin");
    snprintf(proxy, sizeof proxy, "%s", base + strlen("http://"));
    CHECK_HR(bits_create_job(m, "proxied", BITS_JOB_TYPE_DOWNLOAD, NULL, &job), BITS_S_OK);
    int32_t usage = -1;
    char *list = (char *)1, *bypass = (char *)1;
    CHECK_HR(bits_job_get_proxy_settings(job, &usage, &list, &bypass), BITS_S_OK);
    CHECK(usage == BITS_PROXY_USAGE_PRECONFIG && list == NULL && bypass == NULL);
    CHECK_HR(bits_job_set_proxy_settings(job, BITS_PROXY_USAGE_OVERRIDE, NULL, NULL), BITS_E_INVALIDARG);
    CHECK_HR(bits_job_set_proxy_settings(job, BITS_PROXY_USAGE_NO_PROXY, proxy, NULL), BITS_E_INVALIDARG);
    CHECK_HR(bits_job_set_proxy_settings(job, BITS_PROXY_USAGE_OVERRIDE, "bad/proxy", NULL), BITS_E_INVALID_PROXY_INFO);
    CHECK_HR(bits_job_set_proxy_settings(job, BITS_PROXY_USAGE_AUTODETECT, NULL, NULL), BITS_E_NOTIMPL);
    CHECK_HR(bits_job_set_proxy_settings(job, 7, NULL, NULL), BITS_E_INVALIDARG);
    CHECK_HR(bits_job_set_proxy_settings(job, BITS_PROXY_USAGE_OVERRIDE, proxy, "<local>"), BITS_S_OK);
    CHECK_HR(bits_job_get_proxy_settings(job, &usage, &list, &bypass), BITS_S_OK);
    CHECK(usage == BITS_PROXY_USAGE_OVERRIDE && list && strcmp(list, proxy) == 0 && bypass && strcmp(bypass, "<local>") == 0);
    bits_free_string(list);
    bits_free_string(bypass);
    CHECK_HR(bits_add_file(job, "http://no-such-host.invalid/small.bin", d3), BITS_S_OK);
    CHECK_HR(bits_resume(job), BITS_S_OK);
    CHECK_WAIT(job, 20000, BITS_JOB_STATE_TRANSFERRED);
    CHECK_HR(bits_complete(job), BITS_S_OK);
    char s1[1024];
    path_in(s1, sizeof s1, test_env("OPENBITS_TEST_SRC"), "small.bin");
    CHECK(files_equal(s1, d3));
    bits_job_release(job);
    bits_manager_close(m);
    free(work);
    return check_report("http_options");
}
