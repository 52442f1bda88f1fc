// bindings/cpp/tests/test_openbits.cpp: the C++ wrapper (openbits.hpp) against a real local HTTP
// server (target/debug/openbits-testserver), run by bindings/cpp/test.sh.
//
// Environment (set by test.sh):
//   OPENBITS_TEST_URL   http://127.0.0.1:PORT, serving /small.bin, /mid.bin, /big.bin, /slow.bin
//   OPENBITS_TEST_SRC   the folder holding the files the server serves
//   OPENBITS_TEST_WORK  a scratch folder
//
//   test_openbits [NAME...]   runs every test, or only the named ones; prints PASS/FAIL per test;
//                             exits 1 if any check failed.
#include "openbits.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <unordered_set>
#include <vector>

#include <unistd.h>

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using openbits::Error;
using openbits::Job;
using openbits::JobState;
using openbits::Manager;
using openbits::ReplyProgress;

// ---- A small test kit ----------------------------------------------------------------------------

namespace {

std::atomic<int> checks{0};
std::atomic<int> failures{0};
struct Abort {}; // thrown by REQUIRE to end the current test

void report(const char *file, int line, const std::string &what) {
    ++failures;
    std::cerr << file << ":" << line << ": check failed: " << what << std::endl;
}

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        ++checks;                                                                                  \
        if (!(cond)) report(__FILE__, __LINE__, #cond);                                            \
    } while (0)

#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        ++checks;                                                                                  \
        const auto &va_ = (a);                                                                     \
        const auto &vb_ = (b);                                                                     \
        if (!(va_ == vb_)) {                                                                       \
            std::ostringstream os_;                                                                \
            os_ << #a " == " #b " (" << show(va_) << " vs " << show(vb_) << ")";                   \
            report(__FILE__, __LINE__, os_.str());                                                 \
        }                                                                                          \
    } while (0)

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        ++checks;                                                                                  \
        if (!(cond)) {                                                                             \
            report(__FILE__, __LINE__, "required: " #cond);                                        \
            throw Abort{};                                                                         \
        }                                                                                          \
    } while (0)

// Runs `f`, which must throw openbits::Error with `code` and a non-empty message.
#define CHECK_THROWS(code, ...)                                                                    \
    do {                                                                                           \
        ++checks;                                                                                  \
        std::string why_ = expect_error((code), [&] { (void)(__VA_ARGS__); });                             \
        if (!why_.empty()) report(__FILE__, __LINE__, #__VA_ARGS__ ": " + why_);                   \
    } while (0)

template <class T> std::string show(const T &v) {
    if constexpr (std::is_enum_v<T>) {
        return std::string(openbits::to_string(v)) + "(" +
               std::to_string(static_cast<std::underlying_type_t<T>>(v)) + ")";
    } else if constexpr (std::is_same_v<T, openbits::Guid>) {
        return v.to_string();
    } else if constexpr (std::is_same_v<T, std::int32_t>) {
        return openbits::format_hresult(v);
    } else if constexpr (std::is_arithmetic_v<T>) {
        return std::to_string(v);
    } else if constexpr (std::is_convertible_v<T, std::string>) {
        return "\"" + std::string(v) + "\"";
    } else {
        return "?";
    }
}

template <class F> std::string expect_error(openbits::hresult code, F &&f) {
    try {
        f();
    } catch (const Error &e) {
        if (e.code() != code)
            return "threw " + openbits::format_hresult(e.code()) + " (" + e.what() + "), expected " +
                   openbits::format_hresult(code);
        if (e.message().empty()) return "empty message";
        if (std::string(e.what()).find(e.message()) == std::string::npos)
            return "what() lacks the message: " + std::string(e.what());
        if (std::string(e.what()).find(openbits::format_hresult(code)) == std::string::npos)
            return "what() lacks the code: " + std::string(e.what());
        return "";
    }
    return "did not throw (expected " + openbits::format_hresult(code) + ")";
}

// ---- Environment ---------------------------------------------------------------------------------

std::string env(const char *name) {
    const char *v = std::getenv(name);
    if (v == nullptr || *v == '\0') {
        std::cerr << "test_openbits: " << name << " is not set (run bindings/cpp/test.sh)" << std::endl;
        std::exit(2);
    }
    return v;
}

std::string base_url, src_dir, work_dir, reply_url;

// A URL on the test server, unique per call so per-URL fault counters start afresh.
std::string url(const std::string &file, const std::string &query = "") {
    static std::atomic<int> seq{0};
    return base_url + "/" + file + "?" + query + (query.empty() ? "" : "&") + "u=" +
           std::to_string(getpid()) + "-" + std::to_string(++seq);
}

// A new empty folder under the scratch folder.
std::string fresh_dir(const std::string &name) {
    fs::path p = fs::path(work_dir) / name;
    fs::remove_all(p);
    fs::create_directories(p);
    return p.string();
}

std::string read_file(const fs::path &p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

bool same_bytes(const fs::path &a, const fs::path &b) {
    return fs::exists(a) && fs::exists(b) && fs::file_size(a) == fs::file_size(b) && read_file(a) == read_file(b);
}

int temp_files(const std::string &dir) {
    int n = 0;
    for (const auto &entry : fs::directory_iterator(dir)) {
        const std::string name = entry.path().filename().string();
        if (name.rfind("BIT", 0) == 0 && name.size() > 4 && name.substr(name.size() - 4) == ".tmp") ++n;
    }
    return n;
}

// Polls until `pred` holds or `limit` passes.
template <class P> bool eventually(P pred, std::chrono::milliseconds limit = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(20ms);
    }
    return true;
}

// ---- Tests ---------------------------------------------------------------------------------------

void test_types() {
    // What the header promises about its types, checked at compile time.
    static_assert(!std::is_copy_constructible_v<Manager> && !std::is_copy_assignable_v<Manager>);
    static_assert(!std::is_copy_constructible_v<Job> && !std::is_copy_assignable_v<Job>);
    static_assert(std::is_nothrow_move_constructible_v<Manager> && std::is_nothrow_move_assignable_v<Manager>);
    static_assert(std::is_nothrow_move_constructible_v<Job> && std::is_nothrow_move_assignable_v<Job>);
    static_assert(std::is_base_of_v<std::runtime_error, Error>);
    static_assert(std::is_nothrow_copy_constructible_v<Error>);
    static_assert(std::is_same_v<std::underlying_type_t<JobState>, std::int32_t>);
    static_assert(static_cast<int>(JobState::Transferred) == BITS_JOB_STATE_TRANSFERRED);
    static_assert(static_cast<int>(openbits::EventKind::FileTransferred) == BITS_NOTIFY_FILE_TRANSFERRED);
    static_assert(openbits::is_final(JobState::Cancelled) && !openbits::is_final(JobState::Error));

    CHECK_EQ(std::string(openbits::version()), std::string(BITS_VERSION_STRING));
    const openbits::LibraryVersion v = openbits::library_version();
    CHECK_EQ(v.major_version, std::uint32_t{BITS_VERSION_MAJOR});
    CHECK_EQ(v.minor_version, std::uint32_t{BITS_VERSION_MINOR});
    CHECK_EQ(v.patch_version, std::uint32_t{BITS_VERSION_PATCH});
    CHECK_EQ(openbits::error_description(BITS_E_NOT_FOUND), std::string("The requested job was not found."));
    CHECK(!openbits::error_description(static_cast<openbits::hresult>(0x80FF1234u)).empty());
    constexpr openbits::NotifyFlags both = openbits::NotifyFlags::JobTransferred | openbits::NotifyFlags::JobError;
    static_assert(openbits::has(both, openbits::NotifyFlags::JobError));
    static_assert(!openbits::has(both, openbits::NotifyFlags::JobModification));
    static_assert((both & ~openbits::NotifyFlags::JobError) == openbits::NotifyFlags::JobTransferred);
    CHECK_EQ(openbits::format_hresult(BITS_E_INVALIDARG), std::string("0x80070057"));
    CHECK_EQ(openbits::format_hresult(BITS_S_OK), std::string("0x00000000"));
    CHECK_EQ(openbits::format_hresult(BITS_E_HTTP_ERROR(404)), std::string("0x80190194"));
    CHECK_EQ(std::string(openbits::to_string(JobState::TransientError)), std::string("TRANSIENT_ERROR"));
    CHECK_EQ(std::string(openbits::to_string(static_cast<JobState>(99))), std::string("?"));

    Error e(BITS_E_NOT_FOUND, "no such job");
    CHECK_EQ(e.code(), BITS_E_NOT_FOUND);
    CHECK_EQ(e.message(), std::string("no such job"));
    CHECK_EQ(std::string(e.what()), std::string("no such job (0x80200001)"));
}

void test_guid() {
    const openbits::Guid nil;
    CHECK(nil.is_nil());
    CHECK_EQ(nil.to_string(), std::string("{00000000-0000-0000-0000-000000000000}"));

    const std::string text = "{0123ABCD-4567-89AB-CDEF-0123456789AB}";
    const openbits::Guid g = openbits::Guid::parse(text);
    CHECK(!g.is_nil());
    CHECK_EQ(g.to_string(), text);
    CHECK_EQ(g.capi().data1, 0x0123ABCDu);
    CHECK_EQ(openbits::Guid::parse("0123abcd-4567-89ab-cdef-0123456789ab"), g);
    CHECK(nil < g && g > nil && nil != g && g <= g && g >= g);

    std::unordered_set<openbits::Guid> set{g, nil, g};
    CHECK_EQ(set.size(), std::size_t{2});

    CHECK_THROWS(BITS_E_INVALIDARG, openbits::Guid::parse("not a guid"));
    CHECK_THROWS(BITS_E_INVALIDARG, openbits::Guid::parse(""));
    CHECK_THROWS(BITS_E_INVALIDARG, openbits::Guid::parse(std::string_view(text.c_str(), text.size() + 1)));

    // Ids of real jobs survive a round trip through text.
    Manager manager(fresh_dir("guid"));
    Job job = manager.create_job("guid");
    CHECK(!job.id().is_nil());
    CHECK_EQ(openbits::Guid::parse(job.id().to_string()), job.id());
    CHECK(job.cancel() == BITS_S_OK);
}

void test_download() {
    const std::string dir = fresh_dir("download");
    const std::string dest = dir + "/dest";
    fs::create_directories(dest);
    Manager manager(dir + "/state");
    Job job = manager.create_job("C++ download");
    CHECK_EQ(job.state(), JobState::Suspended);
    const std::vector<std::string> names{"small.bin", "mid.bin", "big.bin"};
    std::uint64_t total = 0;
    for (const auto &n : names) {
        job.add_file(url(n), dest + "/" + n);
        total += fs::file_size(fs::path(src_dir) / n);
    }
    openbits::Progress p = job.progress();
    CHECK_EQ(p.files_total, 3u);
    CHECK_EQ(p.files_transferred, 0u);
    CHECK(!job.error().has_value());

    job.resume();
    const std::optional<JobState> ended = job.wait_for(60s);
    REQUIRE(ended.has_value());
    if (*ended != JobState::Transferred) {
        if (auto err = job.error())
            std::cerr << "job error: " << openbits::format_hresult(err->code) << " " << err->description << std::endl;
    }
    REQUIRE(*ended == JobState::Transferred);
    CHECK_EQ(job.state(), JobState::Transferred);
    p = job.progress();
    REQUIRE(p.bytes_total.has_value());
    CHECK_EQ(*p.bytes_total, total);
    CHECK_EQ(p.bytes_transferred, total);
    CHECK_EQ(p.files_total, 3u);
    CHECK_EQ(p.files_transferred, 3u);
    CHECK(!job.error().has_value());
    for (const auto &n : names) CHECK(!fs::exists(dest + "/" + n)); // not before complete

    CHECK_EQ(job.complete(), BITS_S_OK);
    CHECK_EQ(job.state(), JobState::Acknowledged);
    for (const auto &n : names) CHECK(same_bytes(fs::path(src_dir) / n, fs::path(dest) / n));
    CHECK_EQ(temp_files(dest), 0);
    CHECK(manager.job_ids().empty());
}

void test_http_404() {
    const std::string dest = fresh_dir("404");
    Manager manager(fresh_dir("404-state"));
    Job job = manager.create_job("404");
    job.add_file(url("small.bin", "status=404"), dest + "/small.bin");
    job.resume();
    CHECK_EQ(job.wait_for(30s).value_or(JobState::Queued), JobState::Error);
    const std::optional<openbits::JobError> err = job.error();
    REQUIRE(err.has_value());
    CHECK_EQ(err->code, BITS_E_HTTP_ERROR(404));
    CHECK_EQ(err->context, openbits::ErrorContext::RemoteFile);
    CHECK(err->description.find("404") != std::string::npos);
    CHECK(err->description.find("small.bin") != std::string::npos);
    CHECK_EQ(err->file_index.value_or(99), 0u);
    CHECK_EQ(err->protocol, std::string("http"));
    CHECK(!err->context_description.empty());
    CHECK(job.error_count() >= 1u);

    // ERROR is not final: cancel deletes the temporary file and ends the job.
    CHECK_EQ(job.cancel(), BITS_S_OK);
    CHECK_EQ(job.state(), JobState::Cancelled);
    CHECK(!job.error().has_value());
    CHECK_EQ(temp_files(dest), 0);
    CHECK_THROWS(BITS_E_INVALID_STATE, job.complete());
    CHECK_THROWS(BITS_E_INVALID_STATE, job.cancel());
    CHECK_THROWS(BITS_E_NOT_FOUND, manager.get_job(job.id()));
}

void test_invalid_arguments() {
    const std::string dir = fresh_dir("invalid");
    Manager manager(dir + "/state");
    Job job = manager.create_job("invalid");

    CHECK_THROWS(BITS_E_INVALIDARG, job.add_file(url("small.bin"), "relative/path.bin"));
    CHECK_THROWS(BITS_E_INVALIDARG, job.add_file("gopher://example.com/x", dir + "/x.bin"));
    CHECK_THROWS(BITS_E_INVALIDARG, job.add_file(url("small.bin"), dir + std::string("/a\0b", 4)));
    CHECK_THROWS(BITS_E_INVALIDARG, manager.create_job("bad type", static_cast<openbits::JobType>(42)));
    CHECK_THROWS(BITS_E_NOTIMPL, job.reply_data()); // a download job has no reply
    CHECK_THROWS(BITS_E_INVALIDARG, manager.create_job(std::string(300, 'n')));
    CHECK_THROWS(BITS_E_INVALIDARG, Manager{"relative/state"});
    CHECK_THROWS(BITS_E_INVALIDARG, job.set_minimum_retry_delay(std::chrono::seconds(-1)));
    CHECK_THROWS(BITS_E_INVALIDARG, job.set_no_progress_timeout(std::chrono::seconds(1LL << 33)));
    CHECK_THROWS(BITS_E_EMPTY, job.resume());
    CHECK_THROWS(BITS_E_NOT_FOUND, manager.get_job(openbits::Guid()));

    // The message is the library's own sentence for this failure, and the exception is an
    // ordinary std::runtime_error.
    try {
        job.add_file(url("small.bin"), "relative/path.bin");
        report(__FILE__, __LINE__, "add_file with a relative path did not throw");
    } catch (const std::runtime_error &e) {
        const std::string what = e.what();
        CHECK(what.find("relative/path.bin") != std::string::npos || what.find("absolute") != std::string::npos);
        CHECK(what.find("0x80070057") != std::string::npos);
    }
    CHECK_EQ(job.state(), JobState::Suspended); // failures changed nothing
    CHECK_EQ(job.progress().files_total, 0u);
    CHECK_EQ(job.cancel(), BITS_S_OK);
}

void test_complete_twice() {
    const std::string dest = fresh_dir("twice");
    Manager manager(fresh_dir("twice-state"));
    Job job = manager.create_job("twice");
    job.add_file(url("small.bin"), dest + "/small.bin");
    job.resume();
    CHECK_EQ(job.wait(), JobState::Transferred);
    CHECK_EQ(job.complete(), BITS_S_OK);
    CHECK_THROWS(BITS_E_INVALID_STATE, job.complete());
    CHECK_THROWS(BITS_E_INVALID_STATE, job.add_file(url("mid.bin"), dest + "/mid.bin"));
    CHECK(same_bytes(fs::path(src_dir) / "small.bin", fs::path(dest) / "small.bin"));
}

void test_partial_complete() {
    // Complete on a job that is not TRANSFERRED: an informational success, returned, not thrown.
    const std::string dest = fresh_dir("partial");
    Manager manager(fresh_dir("partial-state"));
    Job job = manager.create_job("partial");
    job.add_file(url("small.bin"), dest + "/small.bin");
    openbits::hresult hr = BITS_E_FAIL;
    try {
        hr = job.complete();
    } catch (const Error &e) {
        report(__FILE__, __LINE__, std::string("complete threw: ") + e.what());
    }
    CHECK_EQ(hr, BITS_S_PARTIAL_COMPLETE);
    CHECK_EQ(job.state(), JobState::Acknowledged);
    CHECK(!fs::exists(dest + "/small.bin"));
}

void test_moved_from() {
    const std::string dir = fresh_dir("moved");
    Manager manager(dir + "/state");
    Job a = manager.create_job("a");
    const openbits::Guid id = a.id();
    Job b = std::move(a);
    CHECK(!a); // NOLINT: the moved-from state is what this test is about
    CHECK(static_cast<bool>(b));
    CHECK_EQ(b.id(), id);
    CHECK_EQ(b.state(), JobState::Suspended);
    CHECK_THROWS(BITS_E_POINTER, a.state());
    CHECK_THROWS(BITS_E_POINTER, a.resume());
    CHECK_THROWS(BITS_E_POINTER, a.wait_for(1ms));

    // Assigning to a moved-from object, and over a live one (which releases its reference).
    a = manager.create_job("a2");
    CHECK(static_cast<bool>(a));
    a = std::move(b);
    CHECK_EQ(a.id(), id);
    { Job gone = std::move(a); } // released here; `a` is empty again
    CHECK(!a);

    // A vector that reallocates moves its jobs.
    std::vector<Job> jobs;
    for (int i = 0; i < 20; ++i) jobs.push_back(manager.create_job("v" + std::to_string(i)));
    for (Job &j : jobs) CHECK_EQ(j.state(), JobState::Suspended);

    // Raw handle escape hatches.
    const openbits::Guid last_id = jobs.back().id();
    bits_job *raw = jobs.back().release();
    CHECK(!jobs.back());
    Job adopted(raw, last_id);
    CHECK_EQ(adopted.id(), last_id);
    CHECK(adopted.capi() == raw);

    Manager other = std::move(manager);
    CHECK(!manager); // NOLINT
    CHECK_THROWS(BITS_E_POINTER, manager.create_job("x"));
    CHECK_THROWS(BITS_E_POINTER, manager.job_ids());
    CHECK_THROWS(BITS_E_POINTER, manager.next_event(0ms));
    manager.close(); // harmless on an empty object
    CHECK_EQ(other.job_ids().size(), std::size_t{22});
    for (Job &j : other.jobs()) j.cancel();
    CHECK(other.job_ids().empty());
    // `a`, `manager` (both moved from) and the rest are destroyed at the end of the scope.
}

void test_enumerate_and_reopen() {
    const std::string dir = fresh_dir("reopen");
    std::vector<openbits::Guid> ids;
    {
        Manager manager(dir);
        for (int i = 0; i < 3; ++i) {
            Job job = manager.create_job("job " + std::to_string(i));
            job.add_file(url("small.bin"), dir + "/file" + std::to_string(i) + ".bin");
            job.set_minimum_retry_delay(7s);
            ids.push_back(job.id());
        }
        CHECK(manager.job_ids() == ids); // creation order

        // One manager per folder, in this process too.
        CHECK_THROWS(static_cast<openbits::hresult>(0x80070020u), Manager{dir});
    }
    Manager manager(dir);
    CHECK(manager.job_ids() == ids);
    std::vector<Job> jobs = manager.jobs();
    REQUIRE(jobs.size() == 3);
    for (std::size_t i = 0; i < jobs.size(); ++i) {
        CHECK_EQ(jobs[i].id(), ids[i]);
        CHECK_EQ(jobs[i].state(), JobState::Suspended);
        CHECK_EQ(jobs[i].progress().files_total, 1u);
    }
    Job again = manager.get_job(ids[1]);
    CHECK_EQ(again.id(), ids[1]);
    CHECK_EQ(again.cancel(), BITS_S_OK);
    CHECK_THROWS(BITS_E_NOT_FOUND, manager.get_job(ids[1]));
    CHECK_EQ(manager.job_ids().size(), std::size_t{2});
}

void test_closed_manager() {
    Manager manager(fresh_dir("closed"));
    Job job = manager.create_job("outlives its manager");
    manager.close();
    CHECK(!manager);
    CHECK_THROWS(BITS_E_INVALID_STATE, job.state());
    CHECK_THROWS(BITS_E_INVALID_STATE, job.resume());
    CHECK_THROWS(BITS_E_INVALID_STATE, job.wait_for(10ms));
    // `job` is released after its manager: that is allowed.
}

void test_wait_timeouts() {
    const std::string dir = fresh_dir("wait");
    Manager manager(dir + "/state");
    Job job = manager.create_job("wait");
    job.add_file(url("small.bin"), dir + "/small.bin");
    // A SUSPENDED job does not end a wait.
    auto t0 = std::chrono::steady_clock::now();
    CHECK(!job.wait_for(0ms).has_value());
    CHECK(!job.wait_for(-5s).has_value());
    CHECK(!job.wait_for(60ms).has_value());
    CHECK(std::chrono::steady_clock::now() - t0 >= 55ms);
    CHECK(!job.wait_for(std::chrono::duration<double>(0.02)).has_value());
    t0 = std::chrono::steady_clock::now();
    CHECK(!job.wait_until(std::chrono::steady_clock::now() + 40ms).has_value());
    CHECK(std::chrono::steady_clock::now() - t0 >= 35ms);

    // A wait on another thread ends when this one resumes the job.
    std::optional<JobState> seen;
    std::thread waiter([&] {
        try {
            Job mine = manager.get_job(job.id());
            seen = mine.wait_for(30s);
        } catch (const Error &e) {
            report(__FILE__, __LINE__, std::string("waiter: ") + e.what());
        }
    });
    std::this_thread::sleep_for(50ms);
    job.resume();
    waiter.join();
    CHECK_EQ(seen.value_or(JobState::Queued), JobState::Transferred);
    CHECK_EQ(job.complete(), BITS_S_OK);
}

void test_suspend_resume() {
    const std::string dest = fresh_dir("suspend");
    Manager manager(fresh_dir("suspend-state"));
    Job job = manager.create_job("suspend");
    job.add_file(url("slow.bin", "rate=400000"), dest + "/slow.bin");
    job.resume();
    REQUIRE(eventually([&] { return job.progress().bytes_transferred > 0; }));
    job.suspend();
    CHECK_EQ(job.state(), JobState::Suspended);
    job.suspend(); // again: still fine
    const std::uint64_t kept = job.progress().bytes_transferred;
    CHECK(kept > 0);
    CHECK(!job.wait_for(100ms).has_value());
    job.resume();
    CHECK_EQ(job.wait_for(60s).value_or(JobState::Queued), JobState::Transferred);
    CHECK_EQ(job.complete(), BITS_S_OK);
    CHECK(same_bytes(fs::path(src_dir) / "slow.bin", fs::path(dest) / "slow.bin"));
}

void test_retry_delay_and_no_progress_timeout() {
    const std::string dest = fresh_dir("retry");
    Manager manager(fresh_dir("retry-state"));

    // A 503 that clears after one answer, retried at once with a retry delay of 0.
    Job retried = manager.create_job("retried");
    retried.set_minimum_retry_delay(0s);
    retried.add_file(url("mid.bin", "fail=503:1"), dest + "/mid.bin");
    retried.resume();
    CHECK_EQ(retried.wait_for(30s).value_or(JobState::Queued), JobState::Transferred);
    CHECK_EQ(retried.complete(), BITS_S_OK);
    CHECK(same_bytes(fs::path(src_dir) / "mid.bin", fs::path(dest) / "mid.bin"));

    // A 503 for ever, with the default delay: TRANSIENT_ERROR, which does not end a wait.
    Job transient = manager.create_job("transient");
    transient.add_file(url("small.bin", "status=503"), dest + "/t.bin");
    transient.resume();
    REQUIRE(eventually([&] { return transient.state() == JobState::TransientError; }));
    CHECK(!transient.wait_for(100ms).has_value());
    const auto err = transient.error();
    REQUIRE(err.has_value());
    CHECK_EQ(err->code, BITS_E_HTTP_ERROR(503));
    transient.cancel();

    // A no-progress timeout of 0 makes the same 503 fatal.
    Job fatal = manager.create_job("fatal");
    fatal.set_no_progress_timeout(0s);
    fatal.add_file(url("small.bin", "status=503"), dest + "/f.bin");
    fatal.resume();
    CHECK_EQ(fatal.wait_for(30s).value_or(JobState::Queued), JobState::Error);
    const auto ferr = fatal.error();
    REQUIRE(ferr.has_value());
    CHECK_EQ(ferr->code, BITS_E_HTTP_ERROR(503));
    fatal.cancel();
}

void test_options() {
    const std::string dir = fresh_dir("options");
    openbits::ManagerOptions options;
    options.state_dir = dir + "/state";
    options.max_concurrent_jobs = 2;
    options.checkpoint_interval = 500ms;
    options.checkpoint_bytes = 1 << 20;
    options.inactivity_timeout = std::chrono::hours(24);
    options.time_slice = 2s;
    {
        Manager manager(options);
        Job job = manager.create_job("options");
        job.add_file(url("small.bin"), dir + "/small.bin");
        job.resume();
        CHECK_EQ(job.wait(), JobState::Transferred);
        CHECK_EQ(job.complete(), BITS_S_OK);
    }
    options.required_version = 0xFFFF0000u; // a library version that does not exist
    CHECK_THROWS(static_cast<openbits::hresult>(0x80040154u), Manager{options});
    options.required_version = 0;
    options.inactivity_timeout = std::chrono::seconds(-1);
    CHECK_THROWS(BITS_E_INVALIDARG, Manager{options});

    // The default folder is $OPENBITS_HOME (test.sh points it into the scratch folder).
    Manager by_default = Manager::open_default();
    CHECK(static_cast<bool>(by_default));
}

void test_manners() {
    const std::string dir = fresh_dir("manners");
    openbits::ManagerOptions options;
    options.state_dir = dir + "/state";
    options.max_connections_per_host = 2;
    {
        Manager manager(options);
        CHECK_EQ(manager.max_bandwidth(), 0u);
        manager.set_max_bandwidth(3000000);
        CHECK(!manager.bandwidth_schedule().has_value());
        bits_bandwidth_schedule s{};
        s.work_days = 0x3e;
        s.work_start_minute = 8 * 60;
        s.work_end_minute = 17 * 60;
        s.work_limits[2] = BITS_BANDWIDTH_BLOCKED; // LOW only: the NORMAL job below is not held
        manager.set_bandwidth_schedule(s);
        bits_bandwidth_schedule bad = s;
        bad.work_start_minute = 5000;
        CHECK_THROWS(BITS_E_INVALIDARG, manager.set_bandwidth_schedule(bad));
        CHECK_EQ(manager.network_cost(), std::uint32_t{BITS_COST_STATE_UNRESTRICTED});
        CHECK_THROWS(BITS_E_INVALIDARG, manager.set_network_cost(3));
        Job job = manager.create_job("manners");
        CHECK_EQ(job.transfer_policy(), std::uint32_t{BITS_JOB_TRANSFER_POLICY_ALWAYS});
        job.set_transfer_policy(BITS_JOB_TRANSFER_POLICY_STANDARD);
        job.set_max_bandwidth(1000000);
        // Roaming: a STANDARD job waits; unrestricted again, it transfers.
        manager.set_network_cost(BITS_COST_STATE_ROAMING);
        job.add_file(url("small.bin"), dir + "/small.bin");
        job.resume();
        const auto deadline = std::chrono::steady_clock::now() + 20s;
        while (job.state() != JobState::TransientError && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(5ms);
        }
        CHECK_EQ(job.state(), JobState::TransientError);
        manager.set_network_cost(BITS_COST_STATE_UNRESTRICTED);
        CHECK_EQ(job.wait(), JobState::Transferred);
        CHECK_EQ(job.complete(), BITS_S_OK);
    }
    Manager again(options);
    CHECK_EQ(again.max_bandwidth(), 3000000u);
    const auto kept = again.bandwidth_schedule();
    CHECK(kept.has_value() && kept->work_days == 0x3e && kept->work_limits[2] == BITS_BANDWIDTH_BLOCKED);
    again.set_bandwidth_schedule(std::nullopt);
    CHECK(!again.bandwidth_schedule().has_value());
}

void test_events() {
    const std::string dest = fresh_dir("events");
    Manager manager(fresh_dir("events-state"));
    CHECK(!manager.next_event(0ms).has_value());
    auto t0 = std::chrono::steady_clock::now();
    CHECK(!manager.next_event(50ms).has_value());
    CHECK(std::chrono::steady_clock::now() - t0 >= 45ms);

    Job job = manager.create_job("events");
    job.add_file(url("small.bin"), dest + "/small.bin");
    job.add_file(url("mid.bin"), dest + "/mid.bin");
    job.resume();
    CHECK_EQ(job.wait(), JobState::Transferred);

    // The queue holds everything that happened: each file, then the job, TRANSFERRED.
    std::set<std::uint32_t> files_before;
    std::optional<openbits::Event> transferred;
    while (!transferred) {
        std::optional<openbits::Event> e = manager.next_event(5s);
        REQUIRE(e.has_value());
        CHECK_EQ(e->job_id, job.id());
        if (e->kind == openbits::EventKind::FileTransferred) files_before.insert(e->file_index);
        if (e->kind == openbits::EventKind::JobTransferred) transferred = e;
        CHECK(e->kind != openbits::EventKind::JobError);
    }
    CHECK_EQ(transferred->state, JobState::Transferred);
    CHECK_EQ(transferred->code, BITS_S_OK);
    CHECK((files_before == std::set<std::uint32_t>{0, 1}));
    CHECK_EQ(job.complete(), BITS_S_OK);

    // An ERROR event carries the code.
    Job failing = manager.create_job("events 404");
    failing.add_file(url("small.bin", "status=404"), dest + "/x.bin");
    failing.resume();
    CHECK_EQ(failing.wait(), JobState::Error);
    std::optional<openbits::Event> error_event;
    while (!error_event) {
        std::optional<openbits::Event> e = manager.next_event(5s);
        REQUIRE(e.has_value());
        if (e->job_id == failing.id() && e->kind == openbits::EventKind::JobError) error_event = e;
    }
    CHECK_EQ(error_event->code, BITS_E_HTTP_ERROR(404));
    CHECK_EQ(error_event->state, JobState::Error);
    failing.cancel();
}

void test_properties() {
    const std::string dir = fresh_dir("properties");
    const auto before = std::chrono::system_clock::now() - 2s;
    {
        Manager manager(dir + "/state");
        Job job = manager.create_job("props");
        CHECK_EQ(job.type(), openbits::JobType::Download);
        CHECK_EQ(job.display_name(), std::string("props"));
        CHECK_EQ(job.description(), std::string());
        CHECK(!job.owner().empty());
        CHECK_EQ(job.priority(), openbits::JobPriority::Normal);
        CHECK((job.notify_flags() == (openbits::NotifyFlags::JobTransferred | openbits::NotifyFlags::JobError)));
        CHECK(job.minimum_retry_delay() == 600s);
        CHECK(job.no_progress_timeout() == std::chrono::seconds(1209600));
        CHECK(job.minimum_notification_interval() == 500ms);
        CHECK_EQ(job.error_count(), 0u);
        const openbits::JobTimes t = job.times();
        CHECK(t.creation >= before && t.creation <= std::chrono::system_clock::now() + 2s);
        CHECK(t.modification >= t.creation);
        CHECK(!t.transfer_completion.has_value());

        job.set_display_name("renamed \xC3\xA9t\xC3\xA9"); // UTF-8
        job.set_description("a description");
        job.set_priority(openbits::JobPriority::High);
        job.set_notify_flags(openbits::NotifyFlags::JobModification | openbits::NotifyFlags::FileTransferred);
        job.set_minimum_retry_delay(42s);
        job.set_no_progress_timeout(3600s);
        job.set_minimum_notification_interval(250ms);
        CHECK_THROWS(BITS_E_NOTIMPL, job.set_priority(static_cast<openbits::JobPriority>(9)));
        CHECK_THROWS(BITS_E_NOTIMPL, job.set_notify_flags(static_cast<openbits::NotifyFlags>(0x1000)));
        CHECK_THROWS(BITS_E_INVALIDARG, job.set_display_name(std::string(300, 'x')));
        CHECK_THROWS(BITS_E_INVALIDARG, job.set_minimum_notification_interval(-1ms));
    }
    // Every property survives a reopen.
    Manager manager(dir + "/state");
    std::vector<Job> jobs = manager.jobs();
    REQUIRE(jobs.size() == 1);
    Job &job = jobs[0];
    CHECK_EQ(job.display_name(), std::string("renamed \xC3\xA9t\xC3\xA9"));
    CHECK_EQ(job.description(), std::string("a description"));
    CHECK_EQ(job.priority(), openbits::JobPriority::High);
    CHECK((job.notify_flags() == (openbits::NotifyFlags::JobModification | openbits::NotifyFlags::FileTransferred)));
    CHECK(job.minimum_retry_delay() == 42s);
    CHECK(job.no_progress_timeout() == 3600s);
    CHECK(job.minimum_notification_interval() == 250ms);

    // Adopting a raw reference reads the id.
    bits_job *raw = nullptr;
    REQUIRE(bits_get_job(manager.capi(), &job.id().capi(), &raw) == BITS_S_OK);
    Job adopted(raw);
    CHECK_EQ(adopted.id(), job.id());
    CHECK_THROWS(BITS_E_POINTER, Job(nullptr));
    job.cancel();
}

void test_files() {
    const std::string dest = fresh_dir("files");
    Manager manager(fresh_dir("files-state"));
    Job job = manager.create_job("files");
    job.add_file_set({{url("small.bin"), dest + "/small.bin"}, {url("mid.bin"), dest + "/mid.bin"}});
    CHECK_EQ(job.file_count(), 2u);
    // All or none: the second file is refused, so the first is not added either.
    CHECK_THROWS(BITS_E_INVALIDARG, job.add_file_set({{url("big.bin"), dest + "/big.bin"}, {url("big.bin"), "relative"}}));
    CHECK_EQ(job.file_count(), 2u);
    job.add_file_set({}); // nothing: fine

    std::vector<openbits::File> files = job.files();
    REQUIRE(files.size() == 2);
    CHECK(files[0].remote_url.find("/small.bin?") != std::string::npos);
    CHECK_EQ(files[1].local_path, dest + "/mid.bin");
    CHECK(files[0].temporary_path.empty()); // not started yet
    CHECK(!files[0].progress.completed);
    CHECK_THROWS(BITS_E_INVALIDARG, (void)job.file(2));

    // New URLs: one file directly, then a prefix for all (to the same server, other spelling).
    job.set_remote_name(0, url("small.bin", "v=2"));
    CHECK(job.file(0).remote_url.find("v=2") != std::string::npos);
    const std::string other_base = "http://localhost:" + base_url.substr(base_url.rfind(':') + 1);
    CHECK(job.replace_remote_prefix(base_url, other_base));
    CHECK(!job.replace_remote_prefix("https://nowhere.invalid/", "https://elsewhere.invalid/"));
    for (const openbits::File &f : job.files()) CHECK_EQ(f.remote_url.rfind(other_base, 0), std::size_t{0});
    CHECK_THROWS(BITS_E_INVALIDARG, job.replace_remote_prefix("", "x"));

    job.resume();
    CHECK_EQ(job.wait_for(30s).value_or(JobState::Queued), JobState::Transferred);
    files = job.files();
    for (const openbits::File &f : files) {
        CHECK(f.progress.completed);
        CHECK(f.progress.bytes_total.has_value() && *f.progress.bytes_total == f.progress.bytes_transferred);
        CHECK(!f.temporary_path.empty() && f.temporary_path.rfind(dest + "/BIT", 0) == 0);
    }
    CHECK(job.times().transfer_completion.has_value());
    CHECK_EQ(job.complete(), BITS_S_OK);
    CHECK(same_bytes(fs::path(src_dir) / "small.bin", fs::path(dest) / "small.bin"));
    CHECK(same_bytes(fs::path(src_dir) / "mid.bin", fs::path(dest) / "mid.bin"));
}

void test_owners_and_limits() {
    const std::string dir = fresh_dir("owners");
    openbits::ManagerOptions alice;
    alice.state_dir = dir;
    alice.owner = "alice";
    alice.max_files_per_job = 2;
    alice.max_jobs_per_owner = 2;
    openbits::Guid alices;
    {
        Manager manager(alice);
        Job job = manager.create_job("alice's");
        alices = job.id();
        CHECK_EQ(job.owner(), std::string("alice"));
        job.add_file(url("small.bin"), dir + "/a.bin");
        job.add_file(url("small.bin"), dir + "/b.bin");
        CHECK_THROWS(BITS_E_TOO_MANY_FILES_IN_JOB, job.add_file(url("small.bin"), dir + "/c.bin"));
        Job second = manager.create_job("alice's second");
        CHECK_THROWS(BITS_E_TOO_MANY_JOBS_PER_USER, (void)manager.create_job("one too many"));
        second.cancel();
        CHECK_THROWS(BITS_E_ACCESSDENIED, (void)manager.job_ids(openbits::EnumFlags::AllUsers));
    }
    openbits::ManagerOptions bob = alice;
    bob.owner = "bob";
    {
        Manager manager(bob);
        CHECK(manager.job_ids().empty()); // bob sees only his own jobs
        CHECK_THROWS(BITS_E_ACCESSDENIED, (void)manager.get_job(alices));
    }
    openbits::ManagerOptions service = alice;
    service.owner = "svc";
    service.service_mode = true;
    Manager manager(service);
    CHECK(manager.job_ids().empty());
    const std::vector<openbits::Guid> all = manager.job_ids(openbits::EnumFlags::AllUsers);
    CHECK(all == std::vector<openbits::Guid>{alices});
    Job job = manager.get_job(alices);
    CHECK_EQ(job.owner(), std::string("alice"));
    job.take_ownership();
    CHECK_EQ(job.owner(), std::string("svc"));
    CHECK_EQ(manager.job_ids().size(), std::size_t{1});
    job.cancel();
}

void test_close_ends_event_wait() {
    // The C API allows bits_manager_close while another thread waits in next_event: the wait
    // ends with BITS_E_INVALID_STATE.
    Manager manager(fresh_dir("close-wait"));
    std::atomic<bool> started{false};
    openbits::hresult seen = BITS_S_OK;
    std::thread waiter([&] {
        started = true;
        try {
            const openbits::Event e = manager.next_event();
            (void)e;
            report(__FILE__, __LINE__, "next_event returned an event");
        } catch (const Error &e) {
            seen = e.code();
        }
    });
    while (!started) std::this_thread::sleep_for(1ms);
    std::this_thread::sleep_for(100ms); // let it block inside bits_manager_next_event
    const auto t0 = std::chrono::steady_clock::now();
    manager.close();
    waiter.join();
    CHECK_EQ(seen, BITS_E_INVALID_STATE);
    CHECK(std::chrono::steady_clock::now() - t0 < 5s);
}

struct Test {
    const char *name;
    void (*run)();
};

// Push callbacks as std::function: the callback completes its own job from the notification
// thread; the captured state is destroyed exactly once, when the last reference goes; an
// exception escaping a callback reaches the handler instead of the library.
std::atomic<int> handled_exceptions{0};
void count_exception(std::exception_ptr) { handled_exceptions++; }

void test_notify_callbacks() {
    const std::string dest = fresh_dir("callbacks");
    Manager manager(fresh_dir("callbacks-state"));
    auto destroyed = std::make_shared<std::atomic<int>>(0);
    struct Witness {
        std::shared_ptr<std::atomic<int>> count;
        ~Witness() { if (count) (*count)++; }
    };
    auto completed = std::make_shared<std::atomic<int>>(0);
    {
        Job job = manager.create_job("callback");
        job.add_file(url("small.bin"), dest + "/small.bin");
        auto witness = std::make_shared<Witness>();
        witness->count = destroyed;
        job.set_notify_callback(openbits::NotifyFlags::JobTransferred,
                                [witness, completed](Job &own, const openbits::Event &e) {
                                    if (e.kind == openbits::EventKind::JobTransferred && own.complete() == BITS_S_OK)
                                        (*completed)++;
                                });
        witness.reset();
        job.resume();
        for (int i = 0; i < 2000 && completed->load() == 0; i++) std::this_thread::sleep_for(5ms);
        CHECK_EQ(completed->load(), 1);
        CHECK_EQ(job.state(), JobState::Acknowledged);
        CHECK_EQ(destroyed->load(), 0);
    } // the last reference: the registration, and the lambda with it, go
    for (int i = 0; i < 2000 && destroyed->load() == 0; i++) std::this_thread::sleep_for(5ms);
    CHECK_EQ(destroyed->load(), 1);
    CHECK(same_bytes(fs::path(src_dir) / "small.bin", fs::path(dest) / "small.bin"));

    openbits::set_callback_exception_handler(&count_exception);
    Job job = manager.create_job("throws");
    job.add_file(url("small.bin"), dest + "/again.bin");
    job.resume();
    CHECK_EQ(job.wait(), JobState::Transferred);
    // Registered after the fact: the event that already happened is delivered, and its exception handled.
    job.set_notify_callback(openbits::NotifyFlags::JobTransferred,
                            [](Job &, const openbits::Event &) { throw std::runtime_error("in a callback"); });
    for (int i = 0; i < 2000 && handled_exceptions.load() == 0; i++) std::this_thread::sleep_for(5ms);
    CHECK_EQ(handled_exceptions.load(), 1);
    job.set_notify_callback(openbits::NotifyFlags::JobTransferred, nullptr);
    openbits::set_callback_exception_handler(nullptr);
    CHECK_EQ(job.complete(), BITS_S_OK);
}

// An upload-reply job to openbits-server, whose application answers with the upload reversed.
void test_upload_reply() {
    const std::string dir = fresh_dir("upload_reply");
    Manager manager(dir + "/state");
    Job job = manager.create_job("ask", openbits::JobType::UploadReply);
    CHECK(!job.reply_file_name().has_value());
    const std::string source = src_dir + "/mid.bin";
    job.add_file(reply_url + "/cpp/mid.bin", source);
    CHECK_THROWS(BITS_E_TOO_MANY_FILES, job.add_file(reply_url + "/cpp/other.bin", source));
    const std::string answer = dir + "/answer.bin";
    job.set_reply_file_name(answer);
    CHECK_EQ(job.reply_file_name().value_or(""), answer);
    CHECK(!job.reply_progress().bytes_total.has_value());
    CHECK_THROWS(BITS_E_INVALID_STATE, job.reply_data());
    job.resume();
    CHECK_EQ(job.wait_for(std::chrono::seconds(60)).value_or(JobState::Error), JobState::Transferred);
    const std::string sent = read_file(source);
    const ReplyProgress p = job.reply_progress();
    CHECK_EQ(p.bytes_total.value_or(0), sent.size());
    CHECK_EQ(p.bytes_transferred, sent.size());
    const std::vector<std::uint8_t> reply = job.reply_data();
    const std::string reversed(sent.rbegin(), sent.rend());
    CHECK(std::string(reply.begin(), reply.end()) == reversed);
    CHECK(!fs::exists(answer));
    CHECK_EQ(job.complete(), BITS_S_OK);
    const std::string kept = read_file(answer);
    CHECK(kept == reversed);
}

// TLS against a Python HTTPS server test.sh starts with openssl-made certificates for localhost.
void test_tls() {
    const std::string tls_url = env("OPENBITS_TEST_TLS_URL") + "/small.bin";
    const std::string pki = env("OPENBITS_TEST_TLS_DIR");
    const std::string dir = fresh_dir("tls");
    Manager manager(dir + "/state");

    Job untrusted = manager.create_job("platform roots");
    untrusted.add_file(tls_url, dir + "/untrusted.bin");
    untrusted.resume();
    CHECK_EQ(untrusted.wait(), JobState::Error);
    CHECK_EQ(untrusted.error().value().code, static_cast<openbits::hresult>(0x80072F0Du));

    std::vector<std::string> hosts;
    std::size_t chain_length = 0;
    Job job = manager.create_job("own roots");
    job.set_trusted_roots(pki + "/ca.pem");
    job.set_custom_headers("Authorization: Bearer cpp-t0k3n\r\n");
    job.make_custom_headers_write_only();
    CHECK_THROWS(BITS_E_ACCESSDENIED, job.custom_headers());
    job.set_server_certificate_callback([&](Job &, const Job::CertificateCheck &c) {
        hosts.push_back(c.host);
        chain_length = c.chain.size();
        return c.library_result;
    });
    job.add_file(tls_url, dir + "/small.bin");
    job.resume();
    CHECK_EQ(job.wait(), JobState::Transferred);
    CHECK_EQ(job.complete(), BITS_S_OK);
    CHECK(same_bytes(src_dir + "/small.bin", dir + "/small.bin"));
    REQUIRE(!hosts.empty());
    CHECK_EQ(hosts[0], std::string("localhost"));
    CHECK(chain_length >= 1);

    // A callback that throws refuses the certificate.
    Job refused = manager.create_job("refused");
    refused.set_trusted_roots(pki + "/ca.pem");
    refused.set_server_certificate_callback(
        [](Job &, const Job::CertificateCheck &) -> openbits::hresult { throw std::runtime_error("no"); });
    refused.add_file(tls_url, dir + "/refused.bin");
    refused.resume();
    CHECK(eventually([&] { return refused.state() == JobState::TransientError; }));
    const auto e = refused.error().value();
    CHECK_EQ(e.context, openbits::ErrorContext::ServerCertificateCallback);
    CHECK_EQ(e.code, BITS_E_UNEXPECTED);
    refused.cancel();

    Job client = manager.create_job("client certificate");
    CHECK(!client.client_certificate_file().has_value());
    client.set_client_certificate_file(pki + "/client.pem", pki + "/client.key");
    const auto files = client.client_certificate_file();
    REQUIRE(files.has_value());
    CHECK_EQ(files->first, pki + "/client.pem");
    CHECK_EQ(files->second, pki + "/client.key");
    CHECK(client.remove_client_certificate());
    CHECK(!client.remove_client_certificate());
    CHECK_THROWS(BITS_E_INVALIDARG, client.set_client_certificate_file(pki + "/client.pem", pki + "/ca.pem"));
    client.cancel();
}

const Test tests[] = {
    {"upload_reply", test_upload_reply},
    {"types", test_types},
    {"guid", test_guid},
    {"download", test_download},
    {"http_404", test_http_404},
    {"invalid_arguments", test_invalid_arguments},
    {"complete_twice", test_complete_twice},
    {"partial_complete", test_partial_complete},
    {"moved_from", test_moved_from},
    {"enumerate_and_reopen", test_enumerate_and_reopen},
    {"closed_manager", test_closed_manager},
    {"wait_timeouts", test_wait_timeouts},
    {"suspend_resume", test_suspend_resume},
    {"retry_delay_and_no_progress_timeout", test_retry_delay_and_no_progress_timeout},
    {"options", test_options},
    {"manners", test_manners},
    {"events", test_events},
    {"properties", test_properties},
    {"files", test_files},
    {"owners_and_limits", test_owners_and_limits},
    {"close_ends_event_wait", test_close_ends_event_wait},
    {"notify_callbacks", test_notify_callbacks},
    {"tls", test_tls},
};

} // namespace

int main(int argc, char **argv) {
    base_url = env("OPENBITS_TEST_URL");
    src_dir = env("OPENBITS_TEST_SRC");
    work_dir = env("OPENBITS_TEST_WORK");
    reply_url = env("OPENBITS_REPLY_URL");
    std::vector<std::string> only(argv + 1, argv + argc);
    int passed = 0, failed = 0, ran = 0;
    for (const Test &t : tests) {
        if (!only.empty() && std::find(only.begin(), only.end(), t.name) == only.end()) continue;
        ++ran;
        const int before = failures.load();
        const auto start = std::chrono::steady_clock::now();
        try {
            t.run();
        } catch (const Abort &) {
            // already reported
        } catch (const Error &e) {
            report(__FILE__, __LINE__, std::string(t.name) + ": unexpected openbits::Error: " + e.what());
        } catch (const std::exception &e) {
            report(__FILE__, __LINE__, std::string(t.name) + ": unexpected exception: " + e.what());
        }
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
        const bool ok = failures.load() == before;
        (ok ? passed : failed) += 1;
        std::cout << (ok ? "PASS " : "FAIL ") << t.name << " (" << ms.count() << " ms)" << std::endl;
    }
    if (ran == 0) {
        std::cerr << "test_openbits: no test matched" << std::endl;
        return 2;
    }
    std::cout << passed << " passed, " << failed << " failed, " << checks.load() << " checks" << std::endl;
    return failed == 0 ? 0 : 1;
}
