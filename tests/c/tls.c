/* tls.c: the C side of a job's TLS settings and secrets: BITS_SSL_* flags, trusted roots and
 * revocation lists (files checked when set), client certificate files, write-only custom headers
 * with a bearer token, and the server certificate callback's ownership rules (free_user_data
 * exactly once: on failure, on replacement, on removal, at close). The TLS handshakes themselves
 * are tested against nginx by core/tests/tls.rs and the bindings' tests. */
#include "check.h"

#include <stdatomic.h>

static atomic_int freed;

static void count_free(void *user_data) {
    (void)user_data;
    atomic_fetch_add(&freed, 1);
}

static bits_hresult accept_all(void *user_data, bits_job *job, const char *host, const bits_certificate *chain,
                               size_t chain_len, bits_hresult library_result) {
    (void)user_data, (void)job, (void)host, (void)chain, (void)chain_len, (void)library_result;
    return BITS_S_OK;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(2);
    }
}

int main(void) {
    const char *base = test_env("OPENBITS_TEST_URL");
    char *work = make_dir(test_env("OPENBITS_TEST_WORK"), "tls");
    char state[1024], junk[1024], dest[1024], slow[1024];
    path_in(state, sizeof state, work, "state");
    path_in(junk, sizeof junk, work, "junk.pem");
    path_in(dest, sizeof dest, work, "slow.bin");
    snprintf(slow, sizeof slow, "%s/slow.bin?rate=20000", base);
    write_text(junk, "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n");

    bits_manager *m = NULL;
    CHECK_HR(bits_manager_open(state, &m), BITS_S_OK);
    bits_job *job = NULL;
    CHECK_HR(bits_create_job(m, "tls", BITS_JOB_TYPE_DOWNLOAD, NULL, &job), BITS_S_OK);

    /* BG_SSL_* flags are accepted; undefined bits are not. */
    uint32_t flags = 99;
    CHECK_HR(bits_job_set_security_flags(job, 0x20), BITS_E_NOTIMPL);
    CHECK_HR(bits_job_set_security_flags(job, BITS_SSL_ENABLE_CRL_CHECK | BITS_SSL_IGNORE_UNKNOWN_CA), BITS_S_OK);
    CHECK_HR(bits_job_get_security_flags(job, &flags), BITS_S_OK);
    CHECK(flags == 0x09);
    CHECK_HR(bits_job_set_security_flags(job, 0), BITS_S_OK);

    /* Files are checked when set. */
    CHECK_HR(bits_job_set_trusted_roots(NULL, junk), BITS_E_POINTER);
    CHECK_HR(bits_job_set_trusted_roots(job, "relative.pem"), BITS_E_INVALIDARG);
    CHECK_HR(bits_job_set_trusted_roots(job, "/nonexistent/roots.pem"), (bits_hresult)0x80070002);
    CHECK_HR(bits_job_set_trusted_roots(job, junk), BITS_E_INVALIDARG);
    CHECK_HR(bits_job_set_trusted_roots(job, NULL), BITS_S_OK);
    CHECK_HR(bits_job_set_certificate_revocation_list(job, junk), BITS_E_INVALIDARG);
    CHECK_HR(bits_job_set_certificate_revocation_list(job, "/nonexistent/crl.pem"), (bits_hresult)0x80070002);
    CHECK_HR(bits_job_set_certificate_revocation_list(job, NULL), BITS_S_OK);
    CHECK_HR(bits_job_set_client_certificate_file(job, NULL, junk), BITS_E_POINTER);
    CHECK_HR(bits_job_set_client_certificate_file(job, "/nonexistent/c.pem", "/nonexistent/k.pem"),
             (bits_hresult)0x80070002);
    CHECK_HR(bits_job_set_client_certificate_file(job, junk, junk), BITS_E_INVALIDARG);
    char *cert = (char *)1, *key = (char *)1;
    CHECK_HR(bits_job_get_client_certificate_file(job, &cert, &key), BITS_S_FALSE);
    CHECK(cert == NULL && key == NULL);
    CHECK_HR(bits_job_remove_client_certificate(job), BITS_S_FALSE);

    /* A bearer token in the custom headers, then write-only. */
    char *h = NULL;
    CHECK_HR(bits_job_set_custom_headers(job, "Authorization: Bearer t0k3n\r\n"), BITS_S_OK);
    CHECK_HR(bits_job_get_custom_headers(job, &h), BITS_S_OK);
    CHECK(h && strcmp(h, "Authorization: Bearer t0k3n\r\n") == 0);
    bits_free_string(h);
    CHECK_HR(bits_job_make_custom_headers_write_only(job), BITS_S_OK);
    h = (char *)1;
    CHECK_HR(bits_job_get_custom_headers(job, &h), BITS_E_ACCESSDENIED);
    CHECK(h == NULL);
    CHECK_HR(bits_job_set_custom_headers(job, "X-Api-Key: k\r\n"), BITS_S_OK);
    CHECK_HR(bits_job_get_custom_headers(job, &h), BITS_E_ACCESSDENIED);

    /* The callback's user data: freed at once when the call fails or removes the callback, on
     * replacement, and at close; never twice. */
    CHECK_HR(bits_job_set_server_certificate_callback(NULL, accept_all, NULL, count_free), BITS_E_POINTER);
    CHECK(atomic_load(&freed) == 1);
    CHECK_HR(bits_job_set_server_certificate_callback(job, accept_all, NULL, count_free), BITS_S_OK);
    CHECK(atomic_load(&freed) == 1);
    CHECK_HR(bits_job_set_server_certificate_callback(job, accept_all, NULL, count_free), BITS_S_OK);
    CHECK(atomic_load(&freed) == 2);
    CHECK_HR(bits_job_set_server_certificate_callback(job, NULL, NULL, count_free), BITS_S_OK);
    CHECK(atomic_load(&freed) == 4);

    /* Not while the job transfers: suspend first. */
    CHECK_HR(bits_add_file(job, slow, dest), BITS_S_OK);
    CHECK_HR(bits_resume(job), BITS_S_OK);
    CHECK(poll_state(job, BITS_JOB_STATE_TRANSFERRING, 20000) == BITS_JOB_STATE_TRANSFERRING);
    CHECK_HR(bits_job_set_server_certificate_callback(job, accept_all, NULL, count_free),
             BITS_E_READ_ONLY_WHEN_JOB_ACTIVE);
    CHECK(atomic_load(&freed) == 5);
    CHECK_HR(bits_suspend(job), BITS_S_OK);
    CHECK_HR(bits_job_set_server_certificate_callback(job, accept_all, NULL, count_free), BITS_S_OK);
    CHECK(atomic_load(&freed) == 5);

    bits_job_release(job);
    CHECK(atomic_load(&freed) == 5); /* releasing the handle keeps the callback, as BITS does */
    bits_manager_close(m);
    CHECK(atomic_load(&freed) == 6);
    free(work);
    return check_report("tls");
}
