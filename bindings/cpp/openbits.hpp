/*
 * openbits.hpp: the C++17 interface of openbits (BITS job semantics as an embeddable library).
 *
 * Header-only: a thin layer over the C API in openbits.h, which it includes. Link with libopenbits
 * as for C (CMake: `find_package(openbits)` and `openbits::openbits`; pkg-config: `openbits`).
 *
 *   openbits::Manager manager("/var/tmp/myapp-transfers");
 *   openbits::Job job = manager.create_job("nightly update");
 *   job.add_file("https://example.com/update.bin", "/var/tmp/update.bin");
 *   job.resume();
 *   if (job.wait() == openbits::JobState::Transferred) job.complete();
 *
 * Conventions
 * - Ownership: Manager and Job own one C handle each (bits_manager_close / bits_job_release in
 *   the destructor). They are move-only. A moved-from object holds no handle: destroying or
 *   assigning to it is safe, and any other call on it throws Error(BITS_E_POINTER).
 * - Errors: every failed C call throws openbits::Error, which carries the HRESULT (code()) and the
 *   library's message for the failure (message(), read at once from bits_last_error_message on the
 *   calling thread). Informational success codes (BITS_S_PARTIAL_COMPLETE,
 *   BITS_S_UNABLE_TO_DELETE_FILES) are returned, not thrown. Timeouts of wait_for / next_event are
 *   not errors: they return std::nullopt. Destructors never throw.
 * - Strings are UTF-8 (std::string_view in, std::string out). A string containing a NUL character
 *   is rejected with Error(BITS_E_INVALIDARG) rather than silently truncated.
 * - Threads: as in C, every call may be made from any thread, concurrently, except that a Manager
 *   must not be closed or destroyed while another thread uses it; the one exception is a
 *   next_event() wait, which a close() on another thread ends with Error(BITS_E_INVALID_STATE).
 *   Jobs may outlive their Manager: calls on them then throw Error(BITS_E_INVALID_STATE);
 *   destroying them stays safe.
 * - Not wrapped yet: push callbacks (the C API has only the pull queue, Manager::next_event).
 */
#ifndef OPENBITS_HPP
#define OPENBITS_HPP

#include "openbits.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#if __cplusplus < 201703L && !(defined(_MSVC_LANG) && _MSVC_LANG >= 201703L)
#error "openbits.hpp needs C++17 or later"
#endif

namespace openbits {

/// An HRESULT: >= 0 success, < 0 failure. The values are the BITS_S_* / BITS_E_* macros of openbits.h.
using hresult = bits_hresult;

/// The library's version at run time, e.g. "0.1.0" (the header's is BITS_VERSION_STRING).
[[nodiscard]] inline std::string_view version() noexcept { return bits_version_string(); }

/// `0x80070057`: an HRESULT as Windows prints it.
[[nodiscard]] inline std::string format_hresult(hresult code) {
    static const char digits[] = "0123456789ABCDEF";
    std::uint32_t v = static_cast<std::uint32_t>(code);
    std::string s = "0x00000000";
    for (std::size_t i = 9; v != 0; --i, v >>= 4) s[i] = digits[v & 0xFu];
    return s;
}

// ---- Enums ---------------------------------------------------------------------------------------

/// BG_JOB_STATE.
enum class JobState : std::int32_t {
    Queued = BITS_JOB_STATE_QUEUED,
    Connecting = BITS_JOB_STATE_CONNECTING,
    Transferring = BITS_JOB_STATE_TRANSFERRING,
    Suspended = BITS_JOB_STATE_SUSPENDED,
    Error = BITS_JOB_STATE_ERROR,
    TransientError = BITS_JOB_STATE_TRANSIENT_ERROR,
    Transferred = BITS_JOB_STATE_TRANSFERRED,
    Acknowledged = BITS_JOB_STATE_ACKNOWLEDGED,
    Cancelled = BITS_JOB_STATE_CANCELLED,
};

/// BG_JOB_TYPE. Only Download is implemented; the others give Error(BITS_E_NOTIMPL).
enum class JobType : std::int32_t {
    Download = BITS_JOB_TYPE_DOWNLOAD,
    Upload = BITS_JOB_TYPE_UPLOAD,
    UploadReply = BITS_JOB_TYPE_UPLOAD_REPLY,
};

/// BG_ERROR_CONTEXT: where a job's error happened.
enum class ErrorContext : std::int32_t {
    None = BITS_ERROR_CONTEXT_NONE,
    Unknown = BITS_ERROR_CONTEXT_UNKNOWN,
    GeneralQueueManager = BITS_ERROR_CONTEXT_GENERAL_QUEUE_MANAGER,
    QueueManagerNotification = BITS_ERROR_CONTEXT_QUEUE_MANAGER_NOTIFICATION,
    LocalFile = BITS_ERROR_CONTEXT_LOCAL_FILE,
    RemoteFile = BITS_ERROR_CONTEXT_REMOTE_FILE,
    GeneralTransport = BITS_ERROR_CONTEXT_GENERAL_TRANSPORT,
    RemoteApplication = BITS_ERROR_CONTEXT_REMOTE_APPLICATION,
    ServerCertificateCallback = BITS_ERROR_CONTEXT_SERVER_CERTIFICATE_CALLBACK,
};

/// BG_JOB_PRIORITY. Higher priorities take the transfer slots first.
enum class JobPriority : std::int32_t {
    Foreground = BITS_JOB_PRIORITY_FOREGROUND,
    High = BITS_JOB_PRIORITY_HIGH,
    Normal = BITS_JOB_PRIORITY_NORMAL,
    Low = BITS_JOB_PRIORITY_LOW,
};

/// BG_NOTIFY_* flags of a job (Job::notify_flags); combine them with | and test them with &.
/// The pull queue (Manager::next_event) gets every event whatever the flags.
enum class NotifyFlags : std::uint32_t {
    None = 0,
    JobTransferred = BITS_NOTIFY_JOB_TRANSFERRED,
    JobError = BITS_NOTIFY_JOB_ERROR,
    Disable = BITS_NOTIFY_DISABLE,
    JobModification = BITS_NOTIFY_JOB_MODIFICATION,
    FileTransferred = BITS_NOTIFY_FILE_TRANSFERRED,
    FileRangesTransferred = BITS_NOTIFY_FILE_RANGES_TRANSFERRED,
};

constexpr NotifyFlags operator|(NotifyFlags a, NotifyFlags b) noexcept {
    return static_cast<NotifyFlags>(static_cast<std::uint32_t>(a) | static_cast<std::uint32_t>(b));
}
constexpr NotifyFlags operator&(NotifyFlags a, NotifyFlags b) noexcept {
    return static_cast<NotifyFlags>(static_cast<std::uint32_t>(a) & static_cast<std::uint32_t>(b));
}
constexpr NotifyFlags operator~(NotifyFlags a) noexcept {
    return static_cast<NotifyFlags>(~static_cast<std::uint32_t>(a));
}
constexpr NotifyFlags &operator|=(NotifyFlags &a, NotifyFlags b) noexcept { return a = a | b; }
constexpr NotifyFlags &operator&=(NotifyFlags &a, NotifyFlags b) noexcept { return a = a & b; }
/// True if `flags` has any bit of `which`.
constexpr bool has(NotifyFlags flags, NotifyFlags which) noexcept { return (flags & which) != NotifyFlags::None; }

/// Which jobs Manager::job_ids / jobs list (bits_enum_jobs flags).
enum class EnumFlags : std::uint32_t {
    /// The manager's owner's jobs.
    Owner = 0,
    /// Every owner's jobs (BG_JOB_ENUM_ALL_USERS); needs a manager in service mode.
    AllUsers = BITS_JOB_ENUM_ALL_USERS,
};

/// The kind of an Event (the BG_NOTIFY_* values).
enum class EventKind : std::int32_t {
    JobTransferred = BITS_NOTIFY_JOB_TRANSFERRED,
    JobError = BITS_NOTIFY_JOB_ERROR,
    JobModification = BITS_NOTIFY_JOB_MODIFICATION,
    FileTransferred = BITS_NOTIFY_FILE_TRANSFERRED,
};

/// "TRANSFERRED", …: the C name without its prefix; "?" for a value this header does not know.
inline const char *to_string(JobState s) noexcept {
    switch (s) {
    case JobState::Queued: return "QUEUED";
    case JobState::Connecting: return "CONNECTING";
    case JobState::Transferring: return "TRANSFERRING";
    case JobState::Suspended: return "SUSPENDED";
    case JobState::Error: return "ERROR";
    case JobState::TransientError: return "TRANSIENT_ERROR";
    case JobState::Transferred: return "TRANSFERRED";
    case JobState::Acknowledged: return "ACKNOWLEDGED";
    case JobState::Cancelled: return "CANCELLED";
    }
    return "?";
}

inline const char *to_string(JobType t) noexcept {
    switch (t) {
    case JobType::Download: return "DOWNLOAD";
    case JobType::Upload: return "UPLOAD";
    case JobType::UploadReply: return "UPLOAD_REPLY";
    }
    return "?";
}

inline const char *to_string(ErrorContext c) noexcept {
    switch (c) {
    case ErrorContext::None: return "NONE";
    case ErrorContext::Unknown: return "UNKNOWN";
    case ErrorContext::GeneralQueueManager: return "GENERAL_QUEUE_MANAGER";
    case ErrorContext::QueueManagerNotification: return "QUEUE_MANAGER_NOTIFICATION";
    case ErrorContext::LocalFile: return "LOCAL_FILE";
    case ErrorContext::RemoteFile: return "REMOTE_FILE";
    case ErrorContext::GeneralTransport: return "GENERAL_TRANSPORT";
    case ErrorContext::RemoteApplication: return "REMOTE_APPLICATION";
    case ErrorContext::ServerCertificateCallback: return "SERVER_CERTIFICATE_CALLBACK";
    }
    return "?";
}

inline const char *to_string(JobPriority p) noexcept {
    switch (p) {
    case JobPriority::Foreground: return "FOREGROUND";
    case JobPriority::High: return "HIGH";
    case JobPriority::Normal: return "NORMAL";
    case JobPriority::Low: return "LOW";
    }
    return "?";
}

inline const char *to_string(EventKind k) noexcept {
    switch (k) {
    case EventKind::JobTransferred: return "JOB_TRANSFERRED";
    case EventKind::JobError: return "JOB_ERROR";
    case EventKind::JobModification: return "JOB_MODIFICATION";
    case EventKind::FileTransferred: return "FILE_TRANSFERRED";
    }
    return "?";
}

/// True for the states a job never leaves (ACKNOWLEDGED, CANCELLED).
constexpr bool is_final(JobState s) noexcept {
    return s == JobState::Acknowledged || s == JobState::Cancelled;
}

// ---- Error ---------------------------------------------------------------------------------------

/// A failed call: the HRESULT and the library's sentence about it. what() is
/// "<message> (0x80070057)".
class Error : public std::runtime_error {
public:
    Error(hresult code, std::string message)
        : std::runtime_error(compose(code, message)), code_(code),
          message_(std::make_shared<const std::string>(std::move(message))) {}

    /// The HRESULT, e.g. BITS_E_INVALIDARG or BITS_E_HTTP_ERROR(404).
    hresult code() const noexcept { return code_; }

    /// The library's message (bits_last_error_message at the time of the failure), never empty.
    const std::string &message() const noexcept { return *message_; }

private:
    static std::string compose(hresult code, const std::string &message) {
        return (message.empty() ? std::string("openbits call failed") : message) + " (" +
               format_hresult(code) + ")";
    }
    hresult code_;
    std::shared_ptr<const std::string> message_; // shared: copying an exception must not throw
};

namespace detail {

/// Throws Error for a failure code, with this thread's last error message read at once;
/// returns success codes (BITS_S_OK or an informational BITS_S_*) unchanged.
inline hresult check(hresult hr) {
    if (hr >= 0) return hr;
    const char *text = bits_last_error_message();
    std::string message = text != nullptr ? text : "";
    if (message.empty()) { // not expected: every failure leaves a message; fall back on the code's text
        char *description = nullptr;
        if (bits_get_error_description(hr, &description) >= 0 && description != nullptr) message = description;
        bits_free_string(description);
        if (message.empty()) message = "openbits call failed";
    }
    throw Error(hr, std::move(message));
}

[[noreturn]] inline void throw_invalid_argument(std::string message) {
    throw Error(BITS_E_INVALIDARG, std::move(message));
}

/// A NUL-terminated copy of `s`; a NUL inside `s` is an error, not a truncation.
inline std::string c_string(std::string_view s, const char *what) {
    if (s.find('\0') != std::string_view::npos)
        throw_invalid_argument(std::string("openbits: ") + what + " contains a NUL character");
    return std::string(s);
}

/// A C timeout in milliseconds: rounded up, negative -> 0, at most 0xFFFFFFFE (BITS_INFINITE,
/// 0xFFFFFFFF, means no limit and is reserved for the calls without a timeout).
template <class Rep, class Period>
std::uint32_t timeout_ms(const std::chrono::duration<Rep, Period> &timeout) {
    const std::chrono::duration<double, std::milli> ms = timeout;
    const double v = std::ceil(ms.count());
    if (!(v > 0.0)) return 0; // also NaN
    if (v >= 4294967294.0) return 0xFFFFFFFEu;
    return static_cast<std::uint32_t>(v);
}

inline std::uint32_t seconds_u32(std::chrono::seconds s, const char *what) {
    if (s.count() < 0 || s.count() > static_cast<std::chrono::seconds::rep>(UINT32_MAX))
        throw_invalid_argument(std::string("openbits: ") + what + " out of range (0 to 4294967295 s)");
    return static_cast<std::uint32_t>(s.count());
}

struct free_memory {
    void operator()(void *p) const noexcept { bits_free(p); }
};

/// An out-parameter for a string the library allocates: freed by the destructor, whatever the
/// call returned.
class out_string {
public:
    out_string() = default;
    out_string(const out_string &) = delete;
    out_string &operator=(const out_string &) = delete;
    ~out_string() { bits_free_string(p_); }
    char **put() noexcept { return &p_; }
    std::string str() const { return p_ != nullptr ? std::string(p_) : std::string(); }

private:
    char *p_ = nullptr;
};

inline std::uint32_t count_u32(std::size_t n, const char *what) {
    if (n > UINT32_MAX) throw_invalid_argument(std::string("openbits: too many ") + what);
    return static_cast<std::uint32_t>(n);
}

} // namespace detail

/// BITS's sentence for any code (IBackgroundCopyManager::GetErrorDescription), e.g. "The requested
/// job was not found." for BITS_E_NOT_FOUND; a generic text with the number for unknown codes.
[[nodiscard]] inline std::string error_description(hresult code) {
    detail::out_string text;
    detail::check(bits_get_error_description(code, text.put()));
    return text.str();
}

/// The library's version as numbers (BITS_VERSION_MAJOR/MINOR/PATCH are the header's).
struct LibraryVersion {
    std::uint32_t major_version = 0;
    std::uint32_t minor_version = 0;
    std::uint32_t patch_version = 0;
};

[[nodiscard]] inline LibraryVersion library_version() {
    LibraryVersion v;
    detail::check(bits_get_version(&v.major_version, &v.minor_version, &v.patch_version));
    return v;
}

// ---- Guid ----------------------------------------------------------------------------------------

/// A job id: a GUID, written `{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}`.
class Guid {
public:
    /// The nil GUID (all zero).
    constexpr Guid() noexcept : g_{0, 0, 0, {0, 0, 0, 0, 0, 0, 0, 0}} {}
    constexpr explicit Guid(const bits_guid &g) noexcept : g_(g) {}

    /// Parses `{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}`, with or without braces, any case.
    /// Throws Error(BITS_E_INVALIDARG) if `text` is not a GUID.
    [[nodiscard]] static Guid parse(std::string_view text) {
        const std::string s = detail::c_string(text, "GUID text");
        bits_guid g;
        detail::check(bits_guid_from_string(s.c_str(), &g));
        return Guid(g);
    }

    /// `{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}`, upper case.
    [[nodiscard]] std::string to_string() const {
        char buffer[BITS_GUID_STRING_LEN];
        detail::check(bits_guid_to_string(&g_, buffer, sizeof buffer));
        return std::string(buffer);
    }

    bool is_nil() const noexcept { return *this == Guid(); }

    const bits_guid &capi() const noexcept { return g_; }

    friend bool operator==(const Guid &a, const Guid &b) noexcept { return a.key() == b.key(); }
    friend bool operator!=(const Guid &a, const Guid &b) noexcept { return !(a == b); }
    friend bool operator<(const Guid &a, const Guid &b) noexcept { return a.key() < b.key(); }
    friend bool operator>(const Guid &a, const Guid &b) noexcept { return b < a; }
    friend bool operator<=(const Guid &a, const Guid &b) noexcept { return !(b < a); }
    friend bool operator>=(const Guid &a, const Guid &b) noexcept { return !(a < b); }

    /// A hash for std::hash / unordered containers.
    std::size_t hash() const noexcept {
        const auto k = key();
        return std::hash<std::uint64_t>()(k.first) ^ (std::hash<std::uint64_t>()(k.second) * 31u);
    }

private:
    std::pair<std::uint64_t, std::uint64_t> key() const noexcept {
        std::uint64_t lo = 0;
        for (std::uint8_t b : g_.data4) lo = (lo << 8) | b;
        const std::uint64_t hi = (std::uint64_t{g_.data1} << 32) | (std::uint64_t{g_.data2} << 16) | g_.data3;
        return {hi, lo};
    }
    bits_guid g_;
};

// ---- Value types ---------------------------------------------------------------------------------

/// A job's progress (BG_JOB_PROGRESS).
struct Progress {
    /// Bytes of all files; std::nullopt while the size of any file is not known yet.
    std::optional<std::uint64_t> bytes_total;
    std::uint64_t bytes_transferred = 0;
    std::uint32_t files_total = 0;
    std::uint32_t files_transferred = 0;
};

/// An upload-reply job's reply (BG_JOB_REPLY_PROGRESS).
struct ReplyProgress {
    /// The reply's size; std::nullopt until the server's answer gives it.
    std::optional<std::uint64_t> bytes_total;
    std::uint64_t bytes_transferred = 0;
};

/// A job's error (IBackgroundCopyJob::GetError and IBackgroundCopyError).
struct JobError {
    ErrorContext context = ErrorContext::None;
    hresult code = BITS_S_OK; ///< e.g. BITS_E_HTTP_ERROR(404)
    std::string description;  ///< e.g. "HTTP 404 Not Found: http://host/x.bin"
    /// The file the error belongs to (its index in the job); std::nullopt if none.
    std::optional<std::uint32_t> file_index;
    /// That file's protocol: "http", "https" or "file"; empty if the error belongs to no file.
    std::string protocol;
    /// A sentence describing the context; empty if the error belongs to no file (the C API gives
    /// it only together with the file).
    std::string context_description;
};

/// One file to add (BG_FILE_INFO), for Job::add_file_set.
struct FileInfo {
    std::string remote_url;
    std::string local_path;
};

/// A file's progress (BG_FILE_PROGRESS).
struct FileProgress {
    /// std::nullopt until the size is known.
    std::optional<std::uint64_t> bytes_total;
    std::uint64_t bytes_transferred = 0;
    bool completed = false;
};

/// A file of a job (Job::file, Job::files).
struct File {
    std::string remote_url;
    std::string local_path;
    /// The BIT*.tmp file the bytes go to; empty until the transfer of the file first starts.
    std::string temporary_path;
    FileProgress progress;
};

/// A job's times (BG_JOB_TIMES).
struct JobTimes {
    std::chrono::system_clock::time_point creation;
    /// Last change of a property or the state, or the last recorded progress.
    std::chrono::system_clock::time_point modification;
    /// When the job last became TRANSFERRED; std::nullopt if it has not.
    std::optional<std::chrono::system_clock::time_point> transfer_completion;
};

/// Something that happened to a job (see Manager::next_event).
struct Event {
    Guid job_id;
    EventKind kind = EventKind::JobModification;
    JobState state = JobState::Queued; ///< the job's state when the event was queued
    hresult code = BITS_S_OK;          ///< for JobError: the job's error code
    std::uint32_t file_index = 0;      ///< for FileTransferred: the file's index in the job
};

namespace detail {
inline Event to_event(const bits_event &e) {
    Event r;
    r.job_id = Guid(e.job_id);
    r.kind = static_cast<EventKind>(e.kind);
    r.state = static_cast<JobState>(e.state);
    r.code = e.code;
    r.file_index = e.file_index;
    return r;
}

inline std::atomic<void (*)(std::exception_ptr)> &callback_exception_handler() {
    static std::atomic<void (*)(std::exception_ptr)> handler{nullptr};
    return handler;
}
} // namespace detail

/// Where an exception escaping a notify callback goes: it cannot cross into the library. By
/// default (nullptr) std::terminate is called, as for an exception escaping a std::thread; install
/// a handler to log it instead. The handler runs on the notification thread and must not throw.
inline void set_callback_exception_handler(void (*handler)(std::exception_ptr)) noexcept {
    detail::callback_exception_handler().store(handler);
}

/// Options for Manager(const ManagerOptions &) (bits_manager_open_ex). Zero means the default.
struct ManagerOptions {
    /// State folder (absolute); empty: the per-user default ($OPENBITS_HOME, …).
    std::string state_dir;
    /// The library version needed, (major << 16) | minor; by default the version of this header,
    /// so an older library fails the open with REGDB_E_CLASSNOTREG (0x80040154). 0: any.
    std::uint32_t required_version = (std::uint32_t{BITS_VERSION_MAJOR} << 16) | BITS_VERSION_MINOR;
    /// Background jobs transferring at once (default 6). Background jobs go strictly by priority;
    /// Foreground jobs do not count.
    std::uint32_t max_concurrent_jobs = 0;
    /// Progress is made durable at most this often per file (default 1 s)…
    std::chrono::milliseconds checkpoint_interval{0};
    /// …or after this many bytes of a file (default 8 MiB).
    std::uint64_t checkpoint_bytes = 0;
    /// Jobs with no progress and no change for this long are cancelled (default 90 days).
    std::chrono::seconds inactivity_timeout{0};
    /// The user this manager acts for: new jobs belong to it and it sees only its own jobs.
    /// Empty: the OS user name of the process.
    std::string owner;
    /// BITS's "administrators and services": every owner's jobs are visible
    /// (EnumFlags::AllUsers, get_job, Job::take_ownership) and the limits below do not apply.
    bool service_mode = false;
    /// Jobs in the queue, all owners together (MaxJobsPerMachine, default 300).
    std::uint32_t max_jobs = 0;
    /// Jobs per owner (MaxJobsPerUser, default 60).
    std::uint32_t max_jobs_per_owner = 0;
    /// Files per job (MaxFilesPerJob, default 200).
    std::uint32_t max_files_per_job = 0;
    /// Byte ranges per file (MaxRangesPerFile, default 500).
    std::uint32_t max_ranges_per_file = 0;
    /// How long a background job keeps its transfer slot while others of its priority wait
    /// (round-robin turns; default 30 s).
    std::chrono::milliseconds time_slice{0};
    /// Files transferred from one origin at once, over every job (default 6).
    std::uint32_t max_connections_per_host = 0;
    /// Files of one job transferring at once (default 6; 1 moves them one after another, as
    /// BITS does). Files are reported transferred in order either way.
    std::uint32_t files_in_flight = 0;
};

// ---- Job -----------------------------------------------------------------------------------------

/// A reference to a job (bits_job). Move-only; the job itself lives in its manager's queue until it
/// is completed or cancelled, whatever happens to this reference.
class Job {
public:
    /// Adopts a C reference (released by the destructor) to the job with id `id`.
    Job(bits_job *raw, const Guid &id) noexcept : ptr_(raw), id_(id) {}

    /// Adopts a C reference and reads its id. The reference is released even if this throws.
    explicit Job(bits_job *raw) : ptr_(raw) {
        bits_guid g{};
        detail::check(bits_job_get_id(ptr_.get(), &g));
        id_ = Guid(g);
    }

    Job(Job &&) noexcept = default;
    Job &operator=(Job &&) noexcept = default;
    Job(const Job &) = delete;
    Job &operator=(const Job &) = delete;
    ~Job() = default;

    const Guid &id() const noexcept { return id_; }

    /// Adds a file: a http://, https:// or file:// URL and the absolute destination path, whose
    /// folder must exist. The destination is written only by complete().
    void add_file(std::string_view remote_url, std::string_view local_path) {
        const std::string url = detail::c_string(remote_url, "remote URL");
        const std::string path = detail::c_string(local_path, "local path");
        detail::check(bits_add_file(ptr_.get(), url.c_str(), path.c_str()));
    }

    /// Adds several files at once (IBackgroundCopyJob::AddFileSet): all of them, or none if one is
    /// refused.
    void add_file_set(const std::vector<FileInfo> &files) {
        std::vector<std::string> strings;
        strings.reserve(2 * files.size());
        for (const FileInfo &f : files) {
            strings.push_back(detail::c_string(f.remote_url, "remote URL"));
            strings.push_back(detail::c_string(f.local_path, "local path"));
        }
        std::vector<bits_file_info> infos(files.size());
        for (std::size_t i = 0; i < infos.size(); ++i) {
            infos[i].remote_url = strings[2 * i].c_str();
            infos[i].local_path = strings[2 * i + 1].c_str();
        }
        detail::check(bits_add_file_set(ptr_.get(), detail::count_u32(infos.size(), "files"), infos.data()));
    }

    /// The number of files in the job.
    [[nodiscard]] std::uint32_t file_count() const {
        std::uint32_t n = 0;
        detail::check(bits_job_get_file_count(ptr_.get(), &n));
        return n;
    }

    /// File `index` (0 .. file_count()-1, in the order they were added). Throws
    /// Error(BITS_E_INVALIDARG) for an index out of range.
    [[nodiscard]] File file(std::uint32_t index) const {
        detail::out_string remote, local, temporary;
        bits_file_progress p{};
        detail::check(bits_job_get_file(ptr_.get(), index, remote.put(), local.put(), temporary.put(), &p));
        File f;
        f.remote_url = remote.str();
        f.local_path = local.str();
        f.temporary_path = temporary.str();
        if (p.bytes_total != BITS_SIZE_UNKNOWN) f.progress.bytes_total = p.bytes_total;
        f.progress.bytes_transferred = p.bytes_transferred;
        f.progress.completed = p.completed != 0;
        return f;
    }

    /// Every file of the job, in order.
    [[nodiscard]] std::vector<File> files() const {
        std::vector<File> result;
        const std::uint32_t n = file_count();
        result.reserve(n);
        for (std::uint32_t i = 0; i < n; ++i) result.push_back(file(i));
        return result;
    }

    /// Changes the URL of file `index` (IBackgroundCopyFile2::SetRemoteName). The bytes already
    /// transferred are kept if the new URL serves the same content.
    void set_remote_name(std::uint32_t index, std::string_view remote_url) {
        const std::string url = detail::c_string(remote_url, "remote URL");
        detail::check(bits_file_set_remote_name(ptr_.get(), index, url.c_str()));
    }

    /// Replaces `old_prefix` by `new_prefix` at the start of every file URL that begins with it
    /// (IBackgroundCopyJob3::ReplaceRemotePrefix), all or none. Returns false if no URL began with it.
    bool replace_remote_prefix(std::string_view old_prefix, std::string_view new_prefix) {
        const std::string from = detail::c_string(old_prefix, "old prefix");
        const std::string to = detail::c_string(new_prefix, "new prefix");
        return detail::check(bits_job_replace_remote_prefix(ptr_.get(), from.c_str(), to.c_str())) == BITS_S_OK;
    }

    /// SUSPENDED, ERROR or TRANSIENT_ERROR -> QUEUED: the manager's threads transfer the job.
    void resume() { detail::check(bits_resume(ptr_.get())); }

    /// Stops the transfer; the bytes already written are kept for a later resume().
    void suspend() { detail::check(bits_suspend(ptr_.get())); }

    /// Deletes the temporary files and makes the job CANCELLED. Blocks until its transfer has
    /// stopped. Returns BITS_S_OK or BITS_S_UNABLE_TO_DELETE_FILES.
    hresult cancel() { return detail::check(bits_cancel(ptr_.get())); }

    /// Renames each fully transferred file onto its destination (flushed, atomic) and makes the
    /// job ACKNOWLEDGED. Blocks. Returns BITS_S_OK, or BITS_S_PARTIAL_COMPLETE when the job was not
    /// TRANSFERRED (partial files were deleted). Throws Error(BITS_E_INVALID_STATE) when the job was
    /// already completed or cancelled.
    hresult complete() { return detail::check(bits_complete(ptr_.get())); }

    [[nodiscard]] JobState state() const {
        std::int32_t s = 0;
        detail::check(bits_job_get_state(ptr_.get(), &s));
        return static_cast<JobState>(s);
    }

    [[nodiscard]] Progress progress() const {
        bits_job_progress p{};
        detail::check(bits_job_get_progress(ptr_.get(), &p));
        Progress r;
        if (p.bytes_total != BITS_SIZE_UNKNOWN) r.bytes_total = p.bytes_total;
        r.bytes_transferred = p.bytes_transferred;
        r.files_total = p.files_total;
        r.files_transferred = p.files_transferred;
        return r;
    }

    /// An upload-reply job's reply progress (other job types: Error(BITS_E_NOTIMPL)).
    [[nodiscard]] ReplyProgress reply_progress() const {
        bits_job_reply_progress p{};
        detail::check(bits_job_get_reply_progress(ptr_.get(), &p));
        ReplyProgress r;
        if (p.bytes_total != BITS_SIZE_UNKNOWN) r.bytes_total = p.bytes_total;
        r.bytes_transferred = p.bytes_transferred;
        return r;
    }

    /// The whole reply of an upload-reply job once it is TRANSFERRED. Throws
    /// Error(BITS_E_TOO_LARGE) over 1 MiB (read reply_file_name() after complete()), and
    /// Error(BITS_E_INVALID_STATE) before the reply is there.
    [[nodiscard]] std::vector<std::uint8_t> reply_data() const {
        std::uint8_t *data = nullptr;
        std::uint64_t length = 0;
        detail::check(bits_job_get_reply_data(ptr_.get(), &data, &length));
        const std::unique_ptr<std::uint8_t, detail::free_memory> owned(data);
        return std::vector<std::uint8_t>(data, data + length);
    }

    /// Where complete() puts the reply: the name set, else `<uploaded file>.<job id>.reply` beside
    /// the upload once the job has its file (std::nullopt before).
    [[nodiscard]] std::optional<std::string> reply_file_name() const {
        detail::out_string text;
        if (detail::check(bits_job_get_reply_file_name(ptr_.get(), text.put())) == BITS_S_FALSE)
            return std::nullopt;
        return text.str();
    }

    /// An absolute path whose folder exists; set it before resume(). std::nullopt: the default.
    void set_reply_file_name(const std::optional<std::string_view> &path) {
        if (!path) {
            detail::check(bits_job_set_reply_file_name(ptr_.get(), nullptr));
            return;
        }
        const std::string s = detail::c_string(*path, "reply file name");
        detail::check(bits_job_set_reply_file_name(ptr_.get(), s.c_str()));
    }

    /// The job's error while it is in ERROR or TRANSIENT_ERROR; std::nullopt in any other state.
    [[nodiscard]] std::optional<JobError> error() const {
        std::int32_t context = 0;
        hresult code = 0;
        detail::out_string text;
        const hresult hr = bits_job_get_error(ptr_.get(), &context, &code, text.put());
        if (hr == BITS_E_ERROR_INFORMATION_UNAVAILABLE) return std::nullopt;
        detail::check(hr);
        JobError e;
        e.context = static_cast<ErrorContext>(context);
        e.code = code;
        e.description = text.str();

        std::uint32_t file_index = 0;
        detail::out_string protocol, context_text;
        const hresult detail_hr =
            bits_job_get_error_detail(ptr_.get(), &file_index, protocol.put(), context_text.put());
        // Not a file's error, or the error went away meanwhile: the error without its detail.
        if (detail_hr == BITS_E_FILE_NOT_AVAILABLE || detail_hr == BITS_E_PROTOCOL_NOT_AVAILABLE ||
            detail_hr == BITS_E_ERROR_INFORMATION_UNAVAILABLE)
            return e;
        detail::check(detail_hr);
        e.file_index = file_index;
        e.protocol = protocol.str();
        e.context_description = context_text.str();
        return e;
    }

    /// How many times the job failed (transient and fatal errors).
    [[nodiscard]] std::uint32_t error_count() const {
        std::uint32_t n = 0;
        detail::check(bits_job_get_error_count(ptr_.get(), &n));
        return n;
    }

    /// Blocks until the job is TRANSFERRED, ERROR, ACKNOWLEDGED or CANCELLED (a transient error does
    /// not end the wait) and returns that state. Not from one of the manager's own threads.
    JobState wait() { return wait_ms(BITS_INFINITE).value(); }

    /// As wait(), for at most `timeout` (rounded up to milliseconds); std::nullopt if it passed.
    template <class Rep, class Period>
    std::optional<JobState> wait_for(const std::chrono::duration<Rep, Period> &timeout) {
        return wait_ms(detail::timeout_ms(timeout));
    }

    /// As wait(), until `deadline`; std::nullopt if it passed.
    template <class Clock, class Duration>
    std::optional<JobState> wait_until(const std::chrono::time_point<Clock, Duration> &deadline) {
        return wait_for(deadline - Clock::now());
    }

    /// How long a job in TRANSIENT_ERROR waits before it retries (default 600 s; 0: at once).
    /// The job's own rate limit in bytes per second (0: none), whatever its priority.
    void set_max_bandwidth(std::uint64_t bytes_per_second) {
        detail::check(bits_job_set_max_bandwidth(ptr_.get(), bytes_per_second));
    }
    [[nodiscard]] std::uint64_t max_bandwidth() const {
        std::uint64_t v = 0;
        detail::check(bits_job_get_max_bandwidth(ptr_.get(), &v));
        return v;
    }

    /// The network costs the job may transfer on: BITS_COST_STATE_* bits or a
    /// BITS_JOB_TRANSFER_POLICY_* value (default BITS_JOB_TRANSFER_POLICY_ALWAYS).
    void set_transfer_policy(std::uint32_t cost_flags) {
        detail::check(bits_job_set_transfer_policy(ptr_.get(), cost_flags));
    }
    [[nodiscard]] std::uint32_t transfer_policy() const {
        std::uint32_t v = 0;
        detail::check(bits_job_get_transfer_policy(ptr_.get(), &v));
        return v;
    }

    void set_minimum_retry_delay(std::chrono::seconds delay) {
        const std::uint32_t s = detail::seconds_u32(delay, "minimum retry delay");
        detail::check(bits_job_set_minimum_retry_delay(ptr_.get(), s));
    }

    [[nodiscard]] std::chrono::seconds minimum_retry_delay() const {
        std::uint32_t s = 0;
        detail::check(bits_job_get_minimum_retry_delay(ptr_.get(), &s));
        return std::chrono::seconds(s);
    }

    /// How long transient errors may last without progress before the job goes to ERROR
    /// (default 14 days; 0: every error is fatal).
    void set_no_progress_timeout(std::chrono::seconds timeout) {
        const std::uint32_t s = detail::seconds_u32(timeout, "no-progress timeout");
        detail::check(bits_job_set_no_progress_timeout(ptr_.get(), s));
    }

    [[nodiscard]] std::chrono::seconds no_progress_timeout() const {
        std::uint32_t s = 0;
        detail::check(bits_job_get_no_progress_timeout(ptr_.get(), &s));
        return std::chrono::seconds(s);
    }

    [[nodiscard]] JobType type() const {
        std::int32_t t = 0;
        detail::check(bits_job_get_type(ptr_.get(), &t));
        return static_cast<JobType>(t);
    }

    [[nodiscard]] std::string display_name() const {
        detail::out_string text;
        detail::check(bits_job_get_display_name(ptr_.get(), text.put()));
        return text.str();
    }

    /// At most 256 characters.
    void set_display_name(std::string_view name) {
        const std::string s = detail::c_string(name, "display name");
        detail::check(bits_job_set_display_name(ptr_.get(), s.c_str()));
    }

    /// Empty by default.
    [[nodiscard]] std::string description() const {
        detail::out_string text;
        detail::check(bits_job_get_description(ptr_.get(), text.put()));
        return text.str();
    }

    /// At most 1,024 characters.
    void set_description(std::string_view description) {
        const std::string s = detail::c_string(description, "description");
        detail::check(bits_job_set_description(ptr_.get(), s.c_str()));
    }

    /// The user the job belongs to.
    [[nodiscard]] std::string owner() const {
        detail::out_string text;
        detail::check(bits_job_get_owner(ptr_.get(), text.put()));
        return text.str();
    }

    /// Makes the job belong to the manager's owner; needs a manager in service mode
    /// (else Error(BITS_E_ACCESSDENIED)).
    void take_ownership() { detail::check(bits_job_take_ownership(ptr_.get())); }

    /// Default Normal.
    [[nodiscard]] JobPriority priority() const {
        std::int32_t p = 0;
        detail::check(bits_job_get_priority(ptr_.get(), &p));
        return static_cast<JobPriority>(p);
    }

    /// Applied at once (a running transfer stops only if a higher priority needs its slot). An
    /// undefined value gives Error(BITS_E_NOTIMPL), as in BITS.
    void set_priority(JobPriority priority) {
        detail::check(bits_job_set_priority(ptr_.get(), static_cast<std::int32_t>(priority)));
    }

    /// Default JobTransferred | JobError.
    [[nodiscard]] NotifyFlags notify_flags() const {
        std::uint32_t f = 0;
        detail::check(bits_job_get_notify_flags(ptr_.get(), &f));
        return static_cast<NotifyFlags>(f);
    }

    /// A push callback: a reference of its own to the job (it may complete, cancel or keep it) and
    /// the event.
    using NotifyCallback = std::function<void(Job &, const Event &)>;

    /// Calls `callback` for the events `flags` selects (bits_job_set_notify_callback), on the
    /// manager's notification thread, outside every lock of the library. As in BITS: the last
    /// registration wins, an event that already happened is delivered right away, registrations
    /// are not persisted. The registration ends when replaced, when removed (an empty callback),
    /// when the last reference to the job is released (every Job object for it destroyed), or when
    /// the manager closes; the std::function is destroyed then, once it is no longer running.
    /// An exception escaping the callback goes to set_callback_exception_handler's handler.
    void set_notify_callback(NotifyFlags flags, NotifyCallback callback) {
        const auto f = static_cast<std::uint32_t>(flags);
        if (!callback) {
            detail::check(bits_job_set_notify_callback(ptr_.get(), f, nullptr, nullptr, nullptr));
            return;
        }
        // The library owns the copy from here on, even if the call fails (it then frees it at once).
        auto *owned = new NotifyCallback(std::move(callback));
        detail::check(bits_job_set_notify_callback(ptr_.get(), f, &notify_trampoline, owned, &free_notify_callback));
    }

    /// Extra request headers in BITS's form, "Name: value\r\n..." (bits_job_set_custom_headers);
    /// empty removes them. Credentials (Authorization: Bearer ...) are allowed and go only to
    /// each file's own origin.
    void set_custom_headers(std::string_view headers) {
        const std::string h = detail::c_string(headers, "custom headers");
        detail::check(bits_job_set_custom_headers(ptr_.get(), h.empty() ? nullptr : h.c_str()));
    }

    /// The custom headers as set; std::nullopt when none. Error(BITS_E_ACCESSDENIED) once they
    /// are write-only.
    [[nodiscard]] std::optional<std::string> custom_headers() const {
        detail::out_string text;
        if (detail::check(bits_job_get_custom_headers(ptr_.get(), text.put())) == BITS_S_FALSE) return std::nullopt;
        return text.str();
    }

    /// From now on the custom headers are sent but never read back (HttpOptions3). Cannot be undone.
    void make_custom_headers_write_only() { detail::check(bits_job_make_custom_headers_write_only(ptr_.get())); }

    /// BITS_HTTP_REDIRECT_POLICY_* and BITS_SSL_* flags (bits_job_set_security_flags).
    void set_security_flags(std::uint32_t flags) { detail::check(bits_job_set_security_flags(ptr_.get(), flags)); }

    [[nodiscard]] std::uint32_t security_flags() const {
        std::uint32_t f = 0;
        detail::check(bits_job_get_security_flags(ptr_.get(), &f));
        return f;
    }

    /// This job trusts the roots of a PEM file (absolute path) instead of the platform's; an
    /// empty path gives it the platform's again. Checked now.
    void set_trusted_roots(std::string_view pem_path) {
        const std::string p = detail::c_string(pem_path, "trusted roots path");
        detail::check(bits_job_set_trusted_roots(ptr_.get(), p.empty() ? nullptr : p.c_str()));
    }

    /// The server's chain is checked against the CRLs of a PEM file (absolute path); empty
    /// removes the check.
    void set_certificate_revocation_list(std::string_view pem_path) {
        const std::string p = detail::c_string(pem_path, "revocation list path");
        detail::check(bits_job_set_certificate_revocation_list(ptr_.get(), p.empty() ? nullptr : p.c_str()));
    }

    /// The client certificate (PEM chain) and its private key (PEM), absolute paths, presented
    /// when a server asks (SetClientCertificateByName with files). Checked now.
    void set_client_certificate_file(std::string_view cert_pem_path, std::string_view key_pem_path) {
        const std::string c = detail::c_string(cert_pem_path, "client certificate path");
        const std::string k = detail::c_string(key_pem_path, "private key path");
        detail::check(bits_job_set_client_certificate_file(ptr_.get(), c.c_str(), k.c_str()));
    }

    /// RemoveClientCertificate: false when the job had none.
    bool remove_client_certificate() {
        return detail::check(bits_job_remove_client_certificate(ptr_.get())) == BITS_S_OK;
    }

    /// The client certificate and key files, or std::nullopt.
    [[nodiscard]] std::optional<std::pair<std::string, std::string>> client_certificate_file() const {
        detail::out_string cert, key;
        if (detail::check(bits_job_get_client_certificate_file(ptr_.get(), cert.put(), key.put())) == BITS_S_FALSE)
            return std::nullopt;
        return std::make_pair(cert.str(), key.str());
    }

    /// What a server certificate callback is shown: the host connected to, the chain (DER, the
    /// server's own certificate first), and BITS_S_OK or the failure a BITS_SSL_IGNORE_* flag
    /// handed over.
    struct CertificateCheck {
        std::string host;
        std::vector<std::vector<std::uint8_t>> chain;
        hresult library_result = BITS_S_OK;
    };

    /// Returns BITS_S_OK to accept the certificate; anything else refuses it.
    using CertificateCallback = std::function<hresult(Job &, const CertificateCheck &)>;

    /// Sets the server certificate callback (bits_job_set_server_certificate_callback): it runs
    /// on a library transfer thread during the TLS handshake, after the library's own checks. A
    /// refusal puts the job in TRANSIENT_ERROR with context ServerCertificateCallback. An
    /// exception escaping it refuses the certificate (BITS_E_UNEXPECTED) and goes to
    /// set_callback_exception_handler's handler. Only while the job is not active; not
    /// persisted (set it again after reopening). An empty callback removes it.
    void set_server_certificate_callback(CertificateCallback callback) {
        if (!callback) {
            detail::check(bits_job_set_server_certificate_callback(ptr_.get(), nullptr, nullptr, nullptr));
            return;
        }
        // The library owns the copy from here on, even if the call fails (it then frees it at once).
        auto *owned = new CertificateCallback(std::move(callback));
        detail::check(bits_job_set_server_certificate_callback(ptr_.get(), &certificate_trampoline, owned,
                                                               &free_certificate_callback));
    }

    /// Selects the events of push callbacks (the pull queue gets every event). Undefined bits give
    /// Error(BITS_E_NOTIMPL).
    void set_notify_flags(NotifyFlags flags) {
        detail::check(bits_job_set_notify_flags(ptr_.get(), static_cast<std::uint32_t>(flags)));
    }

    /// Progress events of the job come at most this often (default 500 ms).
    [[nodiscard]] std::chrono::milliseconds minimum_notification_interval() const {
        std::uint32_t ms = 0;
        detail::check(bits_job_get_minimum_notification_interval(ptr_.get(), &ms));
        return std::chrono::milliseconds(ms);
    }

    void set_minimum_notification_interval(std::chrono::milliseconds interval) {
        if (interval.count() < 0 || interval.count() > static_cast<std::chrono::milliseconds::rep>(UINT32_MAX))
            detail::throw_invalid_argument("openbits: minimum notification interval out of range (0 to 4294967295 ms)");
        detail::check(bits_job_set_minimum_notification_interval(ptr_.get(), static_cast<std::uint32_t>(interval.count())));
    }

    [[nodiscard]] JobTimes times() const {
        bits_job_times t{};
        detail::check(bits_job_get_times(ptr_.get(), &t));
        const auto at = [](std::uint64_t ms) {
            return std::chrono::system_clock::time_point(std::chrono::duration_cast<std::chrono::system_clock::duration>(
                std::chrono::milliseconds(static_cast<std::chrono::milliseconds::rep>(ms))));
        };
        JobTimes r;
        r.creation = at(t.creation_ms);
        r.modification = at(t.modification_ms);
        if (t.transfer_completion_ms != 0) r.transfer_completion = at(t.transfer_completion_ms);
        return r;
    }

    /// False once moved from (or released).
    explicit operator bool() const noexcept { return ptr_ != nullptr; }

    /// The C handle, still owned by this object.
    bits_job *capi() const noexcept { return ptr_.get(); }

    /// Gives up ownership: the caller must bits_job_release the result.
    bits_job *release() noexcept { return ptr_.release(); }

private:
    static void notify_trampoline(void *user, bits_job *job, const bits_event *event) noexcept {
        bits_job *ref = nullptr;
        if (BITS_FAILED(bits_job_add_ref(job, &ref))) return;
        try {
            Job own(ref, Guid(event->job_id));
            (*static_cast<NotifyCallback *>(user))(own, detail::to_event(*event));
        } catch (...) {
            auto handler = detail::callback_exception_handler().load();
            if (handler == nullptr) std::terminate();
            handler(std::current_exception());
        }
    }

    static void free_notify_callback(void *user) noexcept { delete static_cast<NotifyCallback *>(user); }

    static hresult certificate_trampoline(void *user, bits_job *job, const char *host, const bits_certificate *chain,
                                          std::size_t chain_len, hresult library_result) noexcept {
        bits_job *ref = nullptr;
        if (BITS_FAILED(bits_job_add_ref(job, &ref))) return BITS_E_UNEXPECTED;
        try {
            Job own(ref);
            CertificateCheck c;
            c.host = host;
            for (std::size_t i = 0; i < chain_len; i++) c.chain.emplace_back(chain[i].der, chain[i].der + chain[i].len);
            c.library_result = library_result;
            return (*static_cast<CertificateCallback *>(user))(own, c);
        } catch (...) {
            auto handler = detail::callback_exception_handler().load();
            if (handler != nullptr) handler(std::current_exception());
            return BITS_E_UNEXPECTED;
        }
    }

    static void free_certificate_callback(void *user) noexcept { delete static_cast<CertificateCallback *>(user); }

    std::optional<JobState> wait_ms(std::uint32_t ms) {
        std::int32_t s = 0;
        const hresult hr = bits_job_wait(ptr_.get(), ms, &s);
        if (hr == BITS_E_TIMEOUT) return std::nullopt;
        detail::check(hr);
        return static_cast<JobState>(s);
    }

    struct deleter {
        void operator()(bits_job *p) const noexcept { bits_job_release(p); }
    };
    std::unique_ptr<bits_job, deleter> ptr_;
    Guid id_;
};

// ---- Manager -------------------------------------------------------------------------------------

/// A manager: one queue of jobs kept in a state folder, and the threads that transfer them.
/// Move-only; the destructor closes it (bits_manager_close: stops the transfers and joins the
/// threads, blocking up to 5 s). The jobs stay in the folder for the next Manager opened on it.
class Manager {
public:
    /// Opens (creating it if needed) the state folder `state_dir`, an absolute path. Throws Error,
    /// e.g. 0x80070020 when another manager has the folder open.
    explicit Manager(std::string_view state_dir) {
        const std::string dir = detail::c_string(state_dir, "state folder");
        bits_manager *raw = nullptr;
        detail::check(bits_manager_open(dir.c_str(), &raw));
        ptr_.reset(raw);
    }

    /// Opens a manager with options (bits_manager_open_ex).
    explicit Manager(const ManagerOptions &options) {
        const std::string dir = detail::c_string(options.state_dir, "state folder");
        bits_manager_options o{};
        o.struct_size = static_cast<std::uint32_t>(sizeof o);
        o.required_version = options.required_version;
        o.state_dir = dir.empty() ? nullptr : dir.c_str();
        o.max_concurrent_jobs = options.max_concurrent_jobs;
        o.checkpoint_interval_ms = detail::timeout_ms(options.checkpoint_interval);
        o.checkpoint_bytes = options.checkpoint_bytes;
        o.inactivity_timeout_s = detail::seconds_u32(options.inactivity_timeout, "inactivity timeout");
        const std::string owner = detail::c_string(options.owner, "owner");
        o.owner = owner.empty() ? nullptr : owner.c_str();
        o.service_mode = options.service_mode ? 1 : 0;
        o.max_jobs = options.max_jobs;
        o.max_jobs_per_owner = options.max_jobs_per_owner;
        o.max_files_per_job = options.max_files_per_job;
        o.max_ranges_per_file = options.max_ranges_per_file;
        o.time_slice_ms = detail::timeout_ms(options.time_slice);
        o.max_connections_per_host = options.max_connections_per_host;
        o.files_in_flight = options.files_in_flight;
        bits_manager *raw = nullptr;
        detail::check(bits_manager_open_ex(&o, &raw));
        ptr_.reset(raw);
    }

    /// Opens the per-user default state folder: $OPENBITS_HOME, else $XDG_DATA_HOME/openbits,
    /// else ~/.local/share/openbits.
    static Manager open_default() {
        bits_manager *raw = nullptr;
        detail::check(bits_manager_open(nullptr, &raw));
        return Manager(raw);
    }

    /// Adopts a C manager (closed by the destructor).
    explicit Manager(bits_manager *raw) noexcept : ptr_(raw) {}

    Manager(Manager &&) noexcept = default;
    Manager &operator=(Manager &&) noexcept = default;
    Manager(const Manager &) = delete;
    Manager &operator=(const Manager &) = delete;
    ~Manager() = default;

    /// Closes now (as the destructor does); afterwards this object is empty. Jobs of this manager
    /// stay safe to destroy; their other calls throw Error(BITS_E_INVALID_STATE).
    void close() noexcept { ptr_.reset(); }

    /// The rate limit of every background job together, in bytes per second (0: none); Foreground
    /// jobs are exempt. Kept in the state folder.
    void set_max_bandwidth(std::uint64_t bytes_per_second) {
        detail::check(bits_manager_set_max_bandwidth(ptr_.get(), bytes_per_second));
    }
    [[nodiscard]] std::uint64_t max_bandwidth() const {
        std::uint64_t v = 0;
        detail::check(bits_manager_get_max_bandwidth(ptr_.get(), &v));
        return v;
    }

    /// What the network costs now: one BITS_COST_STATE_* value (not kept).
    void set_network_cost(std::uint32_t cost_state) {
        detail::check(bits_manager_set_network_cost(ptr_.get(), cost_state));
    }
    [[nodiscard]] std::uint32_t network_cost() const {
        std::uint32_t v = 0;
        detail::check(bits_manager_get_network_cost(ptr_.get(), &v));
        return v;
    }

    /// The bandwidth schedule (std::nullopt: none; struct_size is filled in). Kept in the state
    /// folder.
    void set_bandwidth_schedule(const std::optional<bits_bandwidth_schedule> &schedule) {
        if (!schedule) {
            detail::check(bits_manager_set_bandwidth_schedule(ptr_.get(), nullptr));
            return;
        }
        bits_bandwidth_schedule s = *schedule;
        s.struct_size = sizeof s;
        detail::check(bits_manager_set_bandwidth_schedule(ptr_.get(), &s));
    }
    [[nodiscard]] std::optional<bits_bandwidth_schedule> bandwidth_schedule() const {
        bits_bandwidth_schedule s{};
        s.struct_size = sizeof s;
        if (detail::check(bits_manager_get_bandwidth_schedule(ptr_.get(), &s)) == BITS_S_FALSE) {
            return std::nullopt;
        }
        return s;
    }

    /// Creates a job; it starts SUSPENDED with a new id.
    [[nodiscard]] Job create_job(std::string_view display_name, JobType type = JobType::Download) {
        const std::string name = detail::c_string(display_name, "display name");
        bits_guid id{};
        bits_job *raw = nullptr;
        detail::check(bits_create_job(ptr_.get(), name.c_str(), static_cast<std::int32_t>(type), &id, &raw));
        return Job(raw, Guid(id));
    }

    /// A new reference to the job `id`. Throws Error(BITS_E_NOT_FOUND) if there is no such job (or
    /// it was completed or cancelled).
    [[nodiscard]] Job get_job(const Guid &id) const {
        bits_job *raw = nullptr;
        detail::check(bits_get_job(ptr_.get(), &id.capi(), &raw));
        return Job(raw, id);
    }

    /// The ids of the jobs not in a final state, in creation order: the manager's owner's, or every
    /// owner's (EnumFlags::AllUsers, service mode only).
    [[nodiscard]] std::vector<Guid> job_ids(EnumFlags which = EnumFlags::Owner) const {
        bits_guid *ids = nullptr;
        std::uint32_t count = 0;
        const hresult hr = bits_enum_jobs(ptr_.get(), static_cast<std::uint32_t>(which), &ids, &count);
        std::unique_ptr<void, detail::free_memory> owned(ids);
        detail::check(hr);
        std::vector<Guid> result;
        result.reserve(count);
        for (std::uint32_t i = 0; i < count; ++i) result.emplace_back(ids[i]);
        return result;
    }

    /// References to the jobs not in a final state, in creation order (a job completed or
    /// cancelled meanwhile by another thread is left out).
    [[nodiscard]] std::vector<Job> jobs(EnumFlags which = EnumFlags::Owner) const {
        std::vector<Job> result;
        for (const Guid &id : job_ids(which)) {
            bits_job *raw = nullptr;
            const hresult hr = bits_get_job(ptr_.get(), &id.capi(), &raw);
            if (hr == BITS_E_NOT_FOUND) continue;
            Job job(raw, id); // owns `raw` before anything can throw
            detail::check(hr);
            result.push_back(std::move(job));
        }
        return result;
    }

    /// Takes the next event of any of this manager's jobs, waiting at most `timeout` (0: do not
    /// wait); std::nullopt if none came. Events are never dropped; JobModification events of a job
    /// merge while one waits. Several threads may wait at once (each event goes to one of them).
    /// close() on another thread ends the wait with Error(BITS_E_INVALID_STATE).
    template <class Rep, class Period>
    [[nodiscard]] std::optional<Event> next_event(const std::chrono::duration<Rep, Period> &timeout) {
        return next_event_ms(detail::timeout_ms(timeout));
    }

    /// Waits without limit for the next event.
    [[nodiscard]] Event next_event() { return next_event_ms(BITS_INFINITE).value(); }

    /// False once moved from or closed.
    explicit operator bool() const noexcept { return ptr_ != nullptr; }

    /// The C handle, still owned by this object.
    bits_manager *capi() const noexcept { return ptr_.get(); }

    /// Gives up ownership: the caller must bits_manager_close the result.
    bits_manager *release() noexcept { return ptr_.release(); }

private:
    std::optional<Event> next_event_ms(std::uint32_t ms) {
        bits_event e{};
        const hresult hr = bits_manager_next_event(ptr_.get(), ms, &e);
        if (hr == BITS_E_TIMEOUT) return std::nullopt;
        detail::check(hr);
        return detail::to_event(e);
    }

    struct deleter {
        void operator()(bits_manager *p) const noexcept { bits_manager_close(p); }
    };
    std::unique_ptr<bits_manager, deleter> ptr_;
};

} // namespace openbits

namespace std {
template <> struct hash<openbits::Guid> {
    std::size_t operator()(const openbits::Guid &g) const noexcept { return g.hash(); }
};
} // namespace std

#endif // OPENBITS_HPP
