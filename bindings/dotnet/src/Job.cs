using System;
using System.Collections.Generic;
using System.IO;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;

namespace OpenBits
{
    /// <summary>
    /// A reference to a BITS job (IBackgroundCopyJob). Disposing it releases the reference only:
    /// the job goes on in its manager's queue until it is completed or cancelled.
    /// </summary>
    /// <remarks>
    /// Every member may be called from any thread. After the job's <see cref="Manager"/> is
    /// disposed, every call throws <see cref="BitsInvalidStateException"/> (0x80200002); after
    /// the job itself is disposed, <see cref="ObjectDisposedException"/>.
    /// </remarks>
    public sealed class Job : IDisposable
    {
        private readonly JobHandle handle;
        private readonly Manager manager;
        private readonly Guid id;

        internal Job(Manager manager, JobHandle handle, Guid id)
        {
            this.manager = manager;
            this.handle = handle;
            this.id = id;
            HandleCounts.Acquired(ref HandleCounts.jobs);
        }

        /// <summary>The job's id.</summary>
        public Guid Id { get { return id; } }

        /// <summary>The manager this reference was obtained from.</summary>
        public Manager Manager { get { return manager; } }

        private JobHandle H
        {
            get
            {
                if (handle.IsClosed)
                    throw new ObjectDisposedException("Job");
                return handle;
            }
        }

        /// <summary>
        /// Adds a file (IBackgroundCopyJob::AddFile): <paramref name="remoteUrl"/> (http, https or
        /// file URL) to <paramref name="localPath"/> (a relative path is taken from the current
        /// directory; its folder must exist). The destination is written only by <see cref="Complete"/>.
        /// </summary>
        public void AddFile(string remoteUrl, string localPath)
        {
            if (remoteUrl == null)
                throw new ArgumentNullException("remoteUrl");
            if (localPath == null)
                throw new ArgumentNullException("localPath");
            byte[] url = NativeMethods.ToUtf8(remoteUrl, "remoteUrl");
            byte[] path = NativeMethods.ToUtf8(localPath.Length == 0 ? localPath : Path.GetFullPath(localPath), "localPath");
            NativeMethods.ThrowIfFailed(NativeMethods.bits_add_file(H, url, path));
        }

        /// <summary>Starts or restarts the transfer: SUSPENDED, ERROR and TRANSIENT_ERROR become QUEUED.</summary>
        public void Resume()
        {
            NativeMethods.ThrowIfFailed(NativeMethods.bits_resume(H));
        }

        /// <summary>Suspends the job; bytes already written are kept for the next <see cref="Resume"/>.</summary>
        public void Suspend()
        {
            NativeMethods.ThrowIfFailed(NativeMethods.bits_suspend(H));
        }

        /// <summary>
        /// Cancels the job and deletes its temporary files. Blocks until its transfer has stopped.
        /// Returns false if some temporary file could not be deleted (BITS_S_UNABLE_TO_DELETE_FILES).
        /// </summary>
        public bool Cancel()
        {
            return NativeMethods.ThrowIfFailed(NativeMethods.bits_cancel(H)) == HResults.S_OK;
        }

        /// <summary>
        /// Completes the job: every fully transferred file is flushed and renamed onto its
        /// destination, atomically; the job becomes ACKNOWLEDGED. Returns true when every file
        /// landed; false for BITS_S_PARTIAL_COMPLETE (the job was not TRANSFERRED: complete files
        /// were kept, partial ones deleted). Throws <see cref="BitsInvalidStateException"/> when
        /// already completed or cancelled.
        /// </summary>
        public bool Complete()
        {
            return NativeMethods.ThrowIfFailed(NativeMethods.bits_complete(H)) == HResults.S_OK;
        }

        /// <summary>The job's state.</summary>
        public JobState State
        {
            get
            {
                int s;
                NativeMethods.ThrowIfFailed(NativeMethods.bits_job_get_state(H, out s));
                return (JobState)s;
            }
        }

        /// <summary>The job's progress.</summary>
        public JobProgress Progress
        {
            get
            {
                NativeProgress p;
                NativeMethods.ThrowIfFailed(NativeMethods.bits_job_get_progress(H, out p));
                return new JobProgress(p);
            }
        }

        /// <summary>An upload-reply job's reply progress (other job types: <see cref="BitsException"/> E_NotImpl).</summary>
        public ReplyProgress ReplyProgress
        {
            get
            {
                NativeReplyProgress p;
                NativeMethods.ThrowIfFailed(NativeMethods.bits_job_get_reply_progress(H, out p));
                return new ReplyProgress(p.BytesTotal, p.BytesTransferred);
            }
        }

        /// <summary>The whole reply of an upload-reply job once it is TRANSFERRED (GetReplyData). Over 1 MiB:
        /// <see cref="BitsException"/> E_TooLarge (read <see cref="ReplyFileName"/> after <see cref="Complete"/>).</summary>
        public byte[] ReplyData
        {
            get
            {
                IntPtr data;
                ulong length;
                NativeMethods.ThrowIfFailed(NativeMethods.bits_job_get_reply_data(H, out data, out length));
                try
                {
                    var bytes = new byte[checked((int)length)];
                    Marshal.Copy(data, bytes, 0, bytes.Length);
                    return bytes;
                }
                finally
                {
                    NativeMethods.bits_free(data);
                }
            }
        }

        /// <summary>Where <see cref="Complete"/> puts an upload-reply job's reply: the name set, else
        /// <c>&lt;uploaded file&gt;.&lt;job id&gt;.reply</c> beside the upload once the job has its file (null before).
        /// Set an absolute path before <see cref="Resume"/>; null goes back to the default.</summary>
        public string ReplyFileName
        {
            get
            {
                IntPtr text;
                int hr = NativeMethods.bits_job_get_reply_file_name(H, out text);
                NativeMethods.ThrowIfFailed(hr);
                return hr == HResults.S_False ? null : NativeMethods.TakeString(text);
            }
            set
            {
                byte[] path = value == null ? null : NativeMethods.ToUtf8(value, "value");
                NativeMethods.ThrowIfFailed(NativeMethods.bits_job_set_reply_file_name(H, path));
            }
        }

        /// <summary>The job's error in ERROR and TRANSIENT_ERROR; null in every other state.</summary>
        public JobErrorInfo Error
        {
            get
            {
                int context, code;
                IntPtr text;
                int hr = NativeMethods.bits_job_get_error(H, out context, out code, out text);
                if (hr == HResults.E_ErrorInformationUnavailable)
                    return null;
                NativeMethods.ThrowIfFailed(hr);
                string description = NativeMethods.TakeString(text);

                // The detail is a second call (IBackgroundCopyError's other getters). If the job
                // left the error state in between, the detail stays null.
                int? fileIndex = null;
                string protocol = null, contextDescription = null;
                uint index;
                IntPtr proto, ctx;
                hr = NativeMethods.bits_job_get_error_detail(H, out index, out proto, out ctx);
                protocol = NativeMethods.TakeString(proto);
                contextDescription = NativeMethods.TakeString(ctx);
                if (hr >= 0)
                {
                    fileIndex = (int)index;
                }
                else if (hr == HResults.E_FileNotAvailable || hr == HResults.E_ProtocolNotAvailable)
                {
                    // An error of no file: only the context's description is there.
                    hr = NativeMethods.bits_job_get_error_detail(H, IntPtr.Zero, IntPtr.Zero, out ctx);
                    contextDescription = NativeMethods.TakeString(ctx);
                }
                return new JobErrorInfo((ErrorContext)context, code, description, fileIndex, protocol, contextDescription);
            }
        }

        /// <summary>How many times the job failed (transient and fatal errors).</summary>
        public int ErrorCount
        {
            get { return (int)GetUInt(NativeMethods.bits_job_get_error_count); }
        }

        // ---- properties ----

        private delegate int StringGetter(JobHandle job, out IntPtr text);
        private delegate int UIntGetter(JobHandle job, out uint value);
        private delegate int IntGetter(JobHandle job, out int value);

        private string GetString(StringGetter getter)
        {
            IntPtr text;
            int hr = getter(H, out text);
            if (hr < 0)
                throw NativeMethods.Error(hr);
            return NativeMethods.TakeString(text);
        }

        private uint GetUInt(UIntGetter getter)
        {
            uint value;
            NativeMethods.ThrowIfFailed(getter(H, out value));
            return value;
        }

        private int GetInt(IntGetter getter)
        {
            int value;
            NativeMethods.ThrowIfFailed(getter(H, out value));
            return value;
        }

        /// <summary>The job's display name (at most 256 characters).</summary>
        public string DisplayName
        {
            get { return GetString(NativeMethods.bits_job_get_display_name); }
            set
            {
                if (value == null)
                    throw new ArgumentNullException("value");
                NativeMethods.ThrowIfFailed(NativeMethods.bits_job_set_display_name(H, NativeMethods.ToUtf8(value, "value")));
            }
        }

        /// <summary>The job's description (at most 1,024 characters; empty by default).</summary>
        public string Description
        {
            get { return GetString(NativeMethods.bits_job_get_description); }
            set
            {
                if (value == null)
                    throw new ArgumentNullException("value");
                NativeMethods.ThrowIfFailed(NativeMethods.bits_job_set_description(H, NativeMethods.ToUtf8(value, "value")));
            }
        }

        /// <summary>The user the job belongs to (see <see cref="ManagerOptions.Owner"/>).</summary>
        public string Owner
        {
            get { return GetString(NativeMethods.bits_job_get_owner); }
        }

        public JobType Type
        {
            get { return (JobType)GetInt(NativeMethods.bits_job_get_type); }
        }

        /// <summary>The job's priority (default <see cref="JobPriority.Normal"/>); the scheduler applies a change at once.</summary>
        public JobPriority Priority
        {
            get { return (JobPriority)GetInt(NativeMethods.bits_job_get_priority); }
            set { NativeMethods.ThrowIfFailed(NativeMethods.bits_job_set_priority(H, (int)value)); }
        }

        /// <summary>The BG_NOTIFY_* flags (default JobTransferred | JobError). The manager's events get every event whatever these say.</summary>
        public NotifyFlags NotifyFlags
        {
            get { return (NotifyFlags)GetUInt(NativeMethods.bits_job_get_notify_flags); }
            set { NativeMethods.ThrowIfFailed(NativeMethods.bits_job_set_notify_flags(H, (uint)value)); }
        }

        /// <summary>Progress events of the job come at most this often (default 500 ms). Whole milliseconds, rounded up.</summary>
        public TimeSpan MinimumNotificationInterval
        {
            get { return TimeSpan.FromMilliseconds(GetUInt(NativeMethods.bits_job_get_minimum_notification_interval)); }
            set
            {
                if (value < TimeSpan.Zero)
                    throw new ArgumentOutOfRangeException("value", "must not be negative");
                double ms = Math.Ceiling(value.TotalMilliseconds);
                if (ms > uint.MaxValue)
                    throw new ArgumentOutOfRangeException("value", "too long");
                NativeMethods.ThrowIfFailed(NativeMethods.bits_job_set_minimum_notification_interval(H, (uint)ms));
            }
        }

        /// <summary>The job's creation, modification and transfer-completion times.</summary>
        public JobTimes Times
        {
            get
            {
                NativeJobTimes t;
                NativeMethods.ThrowIfFailed(NativeMethods.bits_job_get_times(H, out t));
                return new JobTimes(t);
            }
        }

        /// <summary>Makes the job belong to the manager's owner (IBackgroundCopyJob::TakeOwnership); needs <see cref="ManagerOptions.ServiceMode"/>.</summary>
        public void TakeOwnership()
        {
            NativeMethods.ThrowIfFailed(NativeMethods.bits_job_take_ownership(H));
        }

        // ---- push callbacks ----

        /// <summary>
        /// Registers <paramref name="callback"/> for the job's events that <paramref name="flags"/>
        /// selects (IBackgroundCopyJob::SetNotifyInterface); the flags become the job's
        /// <see cref="NotifyFlags"/>. The last registration wins; an event that already happened
        /// (the job is TRANSFERRED or in ERROR) is delivered right after; registrations are not
        /// persisted. Null removes the registration.
        /// </summary>
        /// <remarks>
        /// The callback runs on the manager's notification thread (one per manager, events of a
        /// job in order) and may call anything, <see cref="Complete"/> of this job included. It
        /// receives this <see cref="Job"/> object, so it need not capture it. The registration ends
        /// when it is replaced or removed, when every reference to the job is disposed (or
        /// collected), or when the manager is disposed. An exception it throws goes to
        /// <see cref="OpenBits.Manager.EventHandlerFailed"/>; with no handler there the process ends.
        /// The manager's events (<see cref="OpenBits.Manager.JobTransferred"/> …) get every event
        /// whatever the registration.
        /// </remarks>
        public void SetNotifyCallback(JobNotifyCallback callback, NotifyFlags flags = NotifyFlags.JobTransferred | NotifyFlags.JobError)
        {
            Registration.Register(this, H, callback, flags);
        }

        /// <summary>Removes the push callback, keeping the job's <see cref="NotifyFlags"/>.</summary>
        public void ClearNotifyCallback()
        {
            Registration.Register(this, H, null, NotifyFlags);
        }

        // ---- HTTP options and TLS ----

        /// <summary>
        /// Extra request headers in BITS's form, "Name: value\r\n..." (SetCustomHeaders); null when
        /// none are set. Credentials (Authorization: Bearer ...) are allowed and go only to each
        /// file's own origin. Reading throws BitsException(E_ACCESSDENIED) once
        /// <see cref="MakeCustomHeadersWriteOnly"/> was called. Null or "" removes them.
        /// </summary>
        public string CustomHeaders
        {
            get
            {
                IntPtr text;
                int hr = NativeMethods.bits_job_get_custom_headers(H, out text);
                string headers = NativeMethods.TakeString(text);
                NativeMethods.ThrowIfFailed(hr);
                return headers;
            }
            set
            {
                byte[] h = string.IsNullOrEmpty(value) ? null : NativeMethods.ToUtf8(value, "value");
                NativeMethods.ThrowIfFailed(NativeMethods.bits_job_set_custom_headers(H, h));
            }
        }

        /// <summary>The custom headers are sent but never read back from now on (HttpOptions3). Cannot be undone.</summary>
        public void MakeCustomHeadersWriteOnly()
        {
            NativeMethods.ThrowIfFailed(NativeMethods.bits_job_make_custom_headers_write_only(H));
        }

        /// <summary>BITS_HTTP_REDIRECT_POLICY_* and BITS_SSL_* flags (SetSecurityFlags).</summary>
        public uint SecurityFlags
        {
            get { return GetUInt(NativeMethods.bits_job_get_security_flags); }
            set { NativeMethods.ThrowIfFailed(NativeMethods.bits_job_set_security_flags(H, value)); }
        }

        /// <summary>This job trusts the root certificates of a PEM file instead of the platform's; null gives it the platform's again. Checked now.</summary>
        public void SetTrustedRoots(string pemPath)
        {
            byte[] p = pemPath == null ? null : NativeMethods.ToUtf8(Path.GetFullPath(pemPath), "pemPath");
            NativeMethods.ThrowIfFailed(NativeMethods.bits_job_set_trusted_roots(H, p));
        }

        /// <summary>The server's chain is checked against the CRLs of a PEM file; null removes the check.</summary>
        public void SetCertificateRevocationList(string pemPath)
        {
            byte[] p = pemPath == null ? null : NativeMethods.ToUtf8(Path.GetFullPath(pemPath), "pemPath");
            NativeMethods.ThrowIfFailed(NativeMethods.bits_job_set_certificate_revocation_list(H, p));
        }

        /// <summary>The client certificate (PEM chain) and its private key (PEM) presented when a server asks (SetClientCertificateByName with files). Checked now.</summary>
        public void SetClientCertificateFile(string certPemPath, string keyPemPath)
        {
            if (certPemPath == null)
                throw new ArgumentNullException("certPemPath");
            if (keyPemPath == null)
                throw new ArgumentNullException("keyPemPath");
            NativeMethods.ThrowIfFailed(NativeMethods.bits_job_set_client_certificate_file(
                H, NativeMethods.ToUtf8(Path.GetFullPath(certPemPath), "certPemPath"),
                NativeMethods.ToUtf8(Path.GetFullPath(keyPemPath), "keyPemPath")));
        }

        /// <summary>RemoveClientCertificate: false when the job had none.</summary>
        public bool RemoveClientCertificate()
        {
            int hr = NativeMethods.bits_job_remove_client_certificate(H);
            NativeMethods.ThrowIfFailed(hr);
            return hr == HResults.S_OK;
        }

        /// <summary>The client certificate file, or null when none is set.</summary>
        public string ClientCertificateFile
        {
            get
            {
                IntPtr cert, key;
                int hr = NativeMethods.bits_job_get_client_certificate_file(H, out cert, out key);
                string c = NativeMethods.TakeString(cert);
                NativeMethods.TakeString(key);
                NativeMethods.ThrowIfFailed(hr);
                return c;
            }
        }

        /// <summary>
        /// Sets the server certificate callback (SetServerCertificateValidationInterface); null
        /// removes it. It sees each chain that passed the library's checks (or failed only one a
        /// BITS_SSL_IGNORE_* flag hands over) and returns 0 (S_OK) to accept; anything else refuses,
        /// and the job goes to TRANSIENT_ERROR with context ServerCertificateCallback.
        /// </summary>
        /// <remarks>
        /// It runs on a library transfer thread during the TLS handshake: return quickly. An
        /// exception it throws refuses the certificate (E_UNEXPECTED). It is held with this Job
        /// object weakly: keep a reference to the Job while its transfers need the callback
        /// (once the Job is collected the callback refuses). Only while the job is not active;
        /// not persisted (set it again after reopening the manager).
        /// </remarks>
        public void SetServerCertificateCallback(ServerCertificateCallback callback)
        {
            CertificateRegistration.Register(this, H, callback);
        }

        // ---- files ----

        /// <summary>The number of files in the job.</summary>
        public int FileCount
        {
            get { return (int)GetUInt(NativeMethods.bits_job_get_file_count); }
        }

        /// <summary>File <paramref name="index"/> (0 .. FileCount-1, in the order they were added), as it is now.</summary>
        public JobFile GetFile(int index)
        {
            if (index < 0)
                throw new ArgumentOutOfRangeException("index");
            IntPtr remote, local, temporary;
            NativeFileProgress p;
            int hr = NativeMethods.bits_job_get_file(H, (uint)index, out remote, out local, out temporary, out p);
            if (hr < 0)
                throw NativeMethods.Error(hr);
            return new JobFile(index, NativeMethods.TakeString(remote), NativeMethods.TakeString(local),
                               NativeMethods.TakeString(temporary), new FileProgress(p));
        }

        /// <summary>Every file of the job, as it is now (IBackgroundCopyJob::EnumFiles).</summary>
        public IReadOnlyList<JobFile> Files
        {
            get
            {
                int n = FileCount;
                var list = new List<JobFile>(n);
                for (int i = 0; i < n; i++)
                    list.Add(GetFile(i));
                return list.AsReadOnly();
            }
        }

        /// <summary>
        /// Adds several files at once (IBackgroundCopyJob::AddFileSet): all of them or, if one is
        /// refused, none. Each is checked as <see cref="AddFile"/> checks it.
        /// </summary>
        public void AddFiles(IEnumerable<BitsFileInfo> files)
        {
            if (files == null)
                throw new ArgumentNullException("files");
            var items = new List<BitsFileInfo>(files);
            var native = new NativeFileInfo[items.Count];
            var pins = new List<GCHandle>(2 * items.Count);
            try
            {
                for (int i = 0; i < items.Count; i++)
                {
                    BitsFileInfo f = items[i];
                    if (f.RemoteUrl == null || f.LocalPath == null)
                        throw new ArgumentException("file " + i + " has a null RemoteUrl or LocalPath", "files");
                    native[i].RemoteUrl = Pin(NativeMethods.ToUtf8(f.RemoteUrl, "files"), pins);
                    native[i].LocalPath = Pin(NativeMethods.ToUtf8(f.LocalPath.Length == 0 ? "" : Path.GetFullPath(f.LocalPath), "files"), pins);
                }
                NativeMethods.ThrowIfFailed(NativeMethods.bits_add_file_set(H, (uint)native.Length, native));
            }
            finally
            {
                foreach (GCHandle pin in pins)
                    pin.Free();
            }
        }

        private static IntPtr Pin(byte[] bytes, List<GCHandle> pins)
        {
            GCHandle h = GCHandle.Alloc(bytes, GCHandleType.Pinned);
            pins.Add(h);
            return h.AddrOfPinnedObject();
        }

        /// <summary>
        /// Changes the URL of file <paramref name="index"/> (IBackgroundCopyFile2::SetRemoteName).
        /// The bytes already transferred are kept if the new URL serves the same content.
        /// </summary>
        public void SetRemoteUrl(int index, string remoteUrl)
        {
            if (index < 0)
                throw new ArgumentOutOfRangeException("index");
            if (remoteUrl == null)
                throw new ArgumentNullException("remoteUrl");
            NativeMethods.ThrowIfFailed(NativeMethods.bits_file_set_remote_name(H, (uint)index, NativeMethods.ToUtf8(remoteUrl, "remoteUrl")));
        }

        /// <summary>
        /// Replaces <paramref name="oldPrefix"/> by <paramref name="newPrefix"/> in every file URL
        /// that starts with it (IBackgroundCopyJob3::ReplaceRemotePrefix), all or none. Returns
        /// false if no URL started with it.
        /// </summary>
        public bool ReplaceRemotePrefix(string oldPrefix, string newPrefix)
        {
            if (oldPrefix == null)
                throw new ArgumentNullException("oldPrefix");
            if (newPrefix == null)
                throw new ArgumentNullException("newPrefix");
            int hr = NativeMethods.bits_job_replace_remote_prefix(H, NativeMethods.ToUtf8(oldPrefix, "oldPrefix"), NativeMethods.ToUtf8(newPrefix, "newPrefix"));
            return NativeMethods.ThrowIfFailed(hr) == HResults.S_OK;
        }

        /// <summary>
        /// How long a job in TRANSIENT_ERROR waits before it retries (default 600 s; zero retries at
        /// once). Whole seconds: a fraction is rounded up.
        /// </summary>
        /// <summary>The job's own rate limit in bytes per second (0: none), whatever its
        /// priority; background jobs are also bound by Manager.MaxBandwidth.</summary>
        public ulong MaxBandwidth
        {
            get
            {
                ulong v;
                NativeMethods.ThrowIfFailed(NativeMethods.bits_job_get_max_bandwidth(H, out v));
                return v;
            }
            set { NativeMethods.ThrowIfFailed(NativeMethods.bits_job_set_max_bandwidth(H, value)); }
        }

        /// <summary>The network costs the job may transfer on (default TransferPolicy.Always);
        /// while Manager.NetworkCost is not in it the job waits in TransientError with
        /// HResults.E_BlockedByCostTransferPolicy.</summary>
        public CostState TransferPolicy
        {
            get { return (CostState)GetUInt(NativeMethods.bits_job_get_transfer_policy); }
            set { NativeMethods.ThrowIfFailed(NativeMethods.bits_job_set_transfer_policy(H, (uint)value)); }
        }

        public TimeSpan MinimumRetryDelay
        {
            get { return TimeSpan.FromSeconds(GetUInt(NativeMethods.bits_job_get_minimum_retry_delay)); }
            set
            {
                uint s = Manager.Seconds(value, "value");
                NativeMethods.ThrowIfFailed(NativeMethods.bits_job_set_minimum_retry_delay(H, s));
            }
        }

        /// <summary>
        /// How long transient errors may last without progress before the job goes to ERROR
        /// (default 14 days; zero makes every error fatal). Whole seconds: a fraction is rounded up.
        /// </summary>
        public TimeSpan NoProgressTimeout
        {
            get { return TimeSpan.FromSeconds(GetUInt(NativeMethods.bits_job_get_no_progress_timeout)); }
            set
            {
                uint s = Manager.Seconds(value, "value");
                NativeMethods.ThrowIfFailed(NativeMethods.bits_job_set_no_progress_timeout(H, s));
            }
        }

        /// <summary>True for the states that end a wait: TRANSFERRED, ERROR, ACKNOWLEDGED, CANCELLED.</summary>
        public static bool EndsWait(JobState state)
        {
            return state == JobState.Transferred || state == JobState.Error
                || state == JobState.Acknowledged || state == JobState.Cancelled;
        }

        /// <summary>
        /// Blocks until the job is TRANSFERRED, ERROR, ACKNOWLEDGED or CANCELLED (a transient error
        /// does not end the wait) and returns that state. <paramref name="timeout"/> null or
        /// <see cref="Timeout.InfiniteTimeSpan"/> waits for ever; when it passes first,
        /// <see cref="BitsTimeoutException"/>. If the manager is disposed meanwhile,
        /// <see cref="BitsInvalidStateException"/>.
        /// </summary>
        public JobState Wait(TimeSpan? timeout = null)
        {
            uint ms = TimeoutMs(timeout);
            int s;
            NativeMethods.ThrowIfFailed(NativeMethods.bits_job_wait(H, ms, out s));
            return (JobState)s;
        }

        /// <summary>Waits without a limit; see <see cref="WaitAsync(TimeSpan, CancellationToken)"/>.</summary>
        public Task<JobState> WaitAsync(CancellationToken cancellationToken = default(CancellationToken))
        {
            return WaitAsync(Timeout.InfiniteTimeSpan, cancellationToken);
        }

        /// <summary>
        /// Completes when the job is TRANSFERRED, ERROR, ACKNOWLEDGED or CANCELLED, with that state;
        /// no thread is blocked meanwhile (the manager's event thread watches the job). Faults with
        /// <see cref="BitsTimeoutException"/> when <paramref name="timeout"/> passes first
        /// (<see cref="Timeout.InfiniteTimeSpan"/>: no limit), is cancelled by
        /// <paramref name="cancellationToken"/>, and faults with <see cref="BitsInvalidStateException"/>
        /// if the manager is disposed meanwhile. Continuations never run on the event thread.
        /// </summary>
        public Task<JobState> WaitAsync(TimeSpan timeout, CancellationToken cancellationToken)
        {
            TimeoutMs(timeout); // validates
            if (handle.IsClosed)
                throw new ObjectDisposedException("Job");
            if (cancellationToken.IsCancellationRequested)
                return Task.FromCanceled<JobState>(cancellationToken);
            EventPump pump;
            try
            {
                pump = manager.EnsurePump();
            }
            catch (ObjectDisposedException)
            {
                return Task.FromException<JobState>(new BitsInvalidStateException("the job's manager was disposed"));
            }
            var waiter = new EventPump.Waiter(pump, this);
            pump.Add(waiter);
            // The job may have ended before the waiter was registered.
            waiter.Check();
            if (!waiter.Task.IsCompleted)
            {
                if (timeout != Timeout.InfiniteTimeSpan)
                    waiter.SetTimeout(timeout);
                if (cancellationToken.CanBeCanceled)
                    waiter.SetCancellation(cancellationToken);
            }
            return waiter.Task;
        }

        internal static uint TimeoutMs(TimeSpan? timeout)
        {
            if (!timeout.HasValue || timeout.Value == Timeout.InfiniteTimeSpan)
                return NativeMethods.Infinite;
            TimeSpan t = timeout.Value;
            if (t < TimeSpan.Zero)
                throw new ArgumentOutOfRangeException("timeout", "must be positive, zero or Timeout.InfiniteTimeSpan");
            double ms = Math.Ceiling(t.TotalMilliseconds);
            return ms >= NativeMethods.Infinite ? NativeMethods.Infinite - 1 : (uint)ms;
        }

        /// <summary>Releases this reference (bits_job_release). The job itself goes on. Safe to call twice.</summary>
        public void Dispose()
        {
            handle.Dispose();
        }

        public override string ToString()
        {
            return "Job " + id.ToString("B");
        }
    }
}
