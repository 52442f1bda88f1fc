// The P/Invoke layer: every libopenbits function this binding uses, the two SafeHandle types and
// the UTF-8 helpers. Nothing here is public; the API lives in Manager, Job and friends.
//
// Conventions kept throughout (see include/openbits.h):
// - handle parameters are typed as ManagerHandle / JobHandle, so the marshaller AddRefs the handle
//   for the duration of each call and a concurrent Dispose() defers the release (bits_manager_close
//   must not race with other calls on the manager; bits_job_release must not race with calls on
//   the job);
// - strings cross as NUL-terminated UTF-8 byte arrays (netstandard2.0 has no LPUTF8Str), and
//   strings the library returns are copied and then freed with bits_free_string;
// - bits_guid has the layout of System.Guid, so ids cross as ref/out Guid.

using System;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;

namespace OpenBits
{
    /// <summary>A manager handle; releasing it calls <c>bits_manager_close</c>.</summary>
    internal sealed class ManagerHandle : SafeHandle
    {
        public ManagerHandle() : base(IntPtr.Zero, true) { }

        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }

        protected override bool ReleaseHandle()
        {
            HandleCounts.Released(ref HandleCounts.managers);
            // Blocks up to 5 s (the library joins its transfer threads). On the finalizer thread
            // this is allowed: the header only forbids the manager's own threads.
            NativeMethods.bits_manager_close(handle);
            return true;
        }
    }

    /// <summary>A job reference; releasing it calls <c>bits_job_release</c>.</summary>
    internal sealed class JobHandle : SafeHandle
    {
        public JobHandle() : base(IntPtr.Zero, true) { }

        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }

        protected override bool ReleaseHandle()
        {
            HandleCounts.Released(ref HandleCounts.jobs);
            // Valid after the manager was closed too: job references stay valid memory.
            NativeMethods.bits_job_release(handle);
            return true;
        }
    }

    /// <summary>Live native handles, for leak tracking in the tests.</summary>
    internal static class HandleCounts
    {
        internal static int managers, jobs, callbacks;

        internal static int Managers { get { return System.Threading.Volatile.Read(ref managers); } }
        internal static int Jobs { get { return System.Threading.Volatile.Read(ref jobs); } }

        /// <summary>Push-callback registrations whose user_data the library has not freed yet.</summary>
        internal static int Callbacks { get { return System.Threading.Volatile.Read(ref callbacks); } }

        internal static void Acquired(ref int counter) { System.Threading.Interlocked.Increment(ref counter); }
        internal static void Released(ref int counter) { System.Threading.Interlocked.Decrement(ref counter); }
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct NativeReplyProgress
    {
        public ulong BytesTotal;
        public ulong BytesTransferred;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct NativeProgress
    {
        public ulong BytesTotal;
        public ulong BytesTransferred;
        public uint FilesTotal;
        public uint FilesTransferred;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct NativeManagerOptions
    {
        public uint StructSize;
        public uint RequiredVersion;
        public IntPtr StateDir;
        public uint MaxConcurrentJobs;
        public uint CheckpointIntervalMs;
        public ulong CheckpointBytes;
        public uint InactivityTimeoutS;
        // Since fb0ce87 (the library reads only what StructSize covers).
        public IntPtr Owner;
        public int ServiceMode;
        public uint MaxJobs;
        public uint MaxJobsPerOwner;
        public uint MaxFilesPerJob;
        public uint MaxRangesPerFile;
        public uint TimeSliceMs;
        public uint MaxConnectionsPerHost;
        public uint FilesInFlight;
    }

    // bits_bandwidth_schedule; the limit arrays are spelled out so the struct marshals as is.
    [StructLayout(LayoutKind.Sequential)]
    internal struct NativeBandwidthSchedule
    {
        public uint StructSize;
        public uint WorkDays;
        public uint WorkStartMinute;
        public uint WorkEndMinute;
        public ulong WorkHigh, WorkNormal, WorkLow;
        public ulong OtherHigh, OtherNormal, OtherLow;
        public uint MaintenanceEnabled;
        public uint MaintenanceDays;
        public uint MaintenanceStartMinute;
        public uint MaintenanceEndMinute;
        public ulong MaintenanceHigh, MaintenanceNormal, MaintenanceLow;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct NativeFileInfo
    {
        public IntPtr RemoteUrl;
        public IntPtr LocalPath;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct NativeFileProgress
    {
        public ulong BytesTotal;
        public ulong BytesTransferred;
        public int Completed;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct NativeJobTimes
    {
        public ulong CreationMs;
        public ulong ModificationMs;
        public ulong TransferCompletionMs;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct NativeEvent
    {
        public Guid JobId;
        public int Kind;
        public int State;
        public int Code;
        public uint FileIndex;
    }

    internal static class NativeMethods
    {
        // "openbits": libopenbits.so on Linux, libopenbits.dylib on macOS, openbits.dll on
        // Windows. Found through LD_LIBRARY_PATH / the application folder, or a dllmap in
        // OpenBits.dll.config under Mono.
        internal const string Library = "openbits";

        // The version of the C ABI this binding was written against (BITS_VERSION_MAJOR/MINOR).
        internal const int ExpectedMajor = 0;
        internal const int ExpectedMinor = 2;

        internal const uint Infinite = 0xFFFFFFFFu;

        static NativeMethods()
        {
            Loader.Register();
        }

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_manager_open(byte[] stateDir, out ManagerHandle manager);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_manager_open_ex(ref NativeManagerOptions options, out ManagerHandle manager);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern void bits_manager_close(IntPtr manager);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_create_job(ManagerHandle manager, byte[] displayName, int jobType,
                                                   out Guid jobId, out JobHandle job);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_get_job(ManagerHandle manager, ref Guid jobId, out JobHandle job);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_enum_jobs(ManagerHandle manager, uint flags, out IntPtr ids, out uint count);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_manager_next_event(ManagerHandle manager, uint timeoutMs, out NativeEvent ev);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_add_file(JobHandle job, byte[] remoteUrl, byte[] localPath);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_resume(JobHandle job);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_suspend(JobHandle job);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_cancel(JobHandle job);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_complete(JobHandle job);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_get_state(JobHandle job, out int state);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_get_progress(JobHandle job, out NativeProgress progress);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_get_error(JobHandle job, out int context, out int code, out IntPtr description);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_wait(JobHandle job, uint timeoutMs, out int state);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_set_minimum_retry_delay(JobHandle job, uint seconds);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_set_no_progress_timeout(JobHandle job, uint seconds);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_add_file_set(JobHandle job, uint count, [In] NativeFileInfo[] files);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_get_file_count(JobHandle job, out uint count);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_get_file(JobHandle job, uint index, out IntPtr remoteUrl, out IntPtr localPath, out IntPtr temporaryPath, out NativeFileProgress progress);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_file_set_remote_name(JobHandle job, uint index, byte[] remoteUrl);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_replace_remote_prefix(JobHandle job, byte[] oldPrefix, byte[] newPrefix);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_get_error_detail(JobHandle job, out uint fileIndex, out IntPtr protocol, out IntPtr contextDescription);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_get_error_detail(JobHandle job, IntPtr fileIndex, IntPtr protocol, out IntPtr contextDescription);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_get_type(JobHandle job, out int type);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_get_display_name(JobHandle job, out IntPtr name);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_set_display_name(JobHandle job, byte[] name);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_get_reply_progress(JobHandle job, out NativeReplyProgress progress);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_get_reply_data(JobHandle job, out IntPtr data, out ulong length);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_set_reply_file_name(JobHandle job, byte[] path);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_get_reply_file_name(JobHandle job, out IntPtr path);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_get_description(JobHandle job, out IntPtr text);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_set_description(JobHandle job, byte[] description);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_get_owner(JobHandle job, out IntPtr owner);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_get_priority(JobHandle job, out int priority);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_set_priority(JobHandle job, int priority);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_get_notify_flags(JobHandle job, out uint flags);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_set_notify_flags(JobHandle job, uint flags);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_get_minimum_retry_delay(JobHandle job, out uint seconds);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_get_no_progress_timeout(JobHandle job, out uint seconds);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_get_minimum_notification_interval(JobHandle job, out uint ms);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_set_minimum_notification_interval(JobHandle job, uint ms);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_get_times(JobHandle job, out NativeJobTimes times);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_get_error_count(JobHandle job, out uint count);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_set_max_bandwidth(JobHandle job, ulong bytesPerSecond);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_get_max_bandwidth(JobHandle job, out ulong bytesPerSecond);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_set_transfer_policy(JobHandle job, uint costFlags);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_get_transfer_policy(JobHandle job, out uint costFlags);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_manager_set_max_bandwidth(ManagerHandle manager, ulong bytesPerSecond);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_manager_get_max_bandwidth(ManagerHandle manager, out ulong bytesPerSecond);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_manager_set_network_cost(ManagerHandle manager, uint costState);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_manager_set_bandwidth_schedule(ManagerHandle manager, ref NativeBandwidthSchedule schedule);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true, EntryPoint = "bits_manager_set_bandwidth_schedule")]
        internal static extern int bits_manager_clear_bandwidth_schedule(ManagerHandle manager, IntPtr none);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_manager_get_bandwidth_schedule(ManagerHandle manager, ref NativeBandwidthSchedule schedule);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_manager_get_network_cost(ManagerHandle manager, out uint costState);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_take_ownership(JobHandle job);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_get_error_description(int code, out IntPtr text);

        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate void NotifyCallback(IntPtr userData, IntPtr job, IntPtr ev);

        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate void FreeUserData(IntPtr userData);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_set_notify_callback(JobHandle job, uint flags, NotifyCallback callback,
                                                                IntPtr userData, FreeUserData freeUserData);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_set_custom_headers(JobHandle job, byte[] headers);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_get_custom_headers(JobHandle job, out IntPtr headers);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_make_custom_headers_write_only(JobHandle job);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_set_security_flags(JobHandle job, uint flags);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_get_security_flags(JobHandle job, out uint flags);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_set_trusted_roots(JobHandle job, byte[] pemPath);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_set_certificate_revocation_list(JobHandle job, byte[] pemPath);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_set_client_certificate_file(JobHandle job, byte[] certPemPath, byte[] keyPemPath);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_remove_client_certificate(JobHandle job);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_get_client_certificate_file(JobHandle job, out IntPtr certPemPath, out IntPtr keyPemPath);

        [StructLayout(LayoutKind.Sequential)]
        internal struct NativeCertificate
        {
            public IntPtr Der;
            public UIntPtr Len;
        }

        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate int CertificateCallback(IntPtr userData, IntPtr job, IntPtr hostName, IntPtr chain,
                                                  UIntPtr chainLen, int libraryResult);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern int bits_job_set_server_certificate_callback(JobHandle job, CertificateCallback callback,
                                                                            IntPtr userData, FreeUserData freeUserData);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern void bits_job_release(IntPtr job);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern void bits_free_string(IntPtr text);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern void bits_free(IntPtr memory);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern IntPtr bits_last_error_message();

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        internal static extern IntPtr bits_version_string();

        // ---- UTF-8 ----

        // Strict: a lone surrogate in a .NET string is an ArgumentException, not a silent U+FFFD.
        private static readonly UTF8Encoding Strict = new UTF8Encoding(false, true);

        /// <summary>NUL-terminated UTF-8 for an input string; null stays null (a NULL pointer).</summary>
        internal static byte[] ToUtf8(string value, string paramName)
        {
            if (value == null)
                return null;
            if (value.IndexOf('\0') >= 0)
                throw new ArgumentException("The string contains a NUL character, which the C API cannot carry.", paramName);
            byte[] bytes;
            try
            {
                bytes = new byte[Strict.GetByteCount(value) + 1];
                Strict.GetBytes(value, 0, value.Length, bytes, 0);
            }
            catch (EncoderFallbackException e)
            {
                throw new ArgumentException("The string is not valid UTF-16 (lone surrogate).", paramName, e);
            }
            return bytes; // the last byte is already 0
        }

        /// <summary>Reads a NUL-terminated UTF-8 string the caller keeps ownership of.</summary>
        internal static string FromUtf8(IntPtr p)
        {
            if (p == IntPtr.Zero)
                return null;
            int len = 0;
            while (Marshal.ReadByte(p, len) != 0)
                len++;
            var bytes = new byte[len];
            Marshal.Copy(p, bytes, 0, len);
            return Encoding.UTF8.GetString(bytes);
        }

        /// <summary>Reads a string the library returned and frees it with bits_free_string.</summary>
        internal static string TakeString(IntPtr p)
        {
            try
            {
                return FromUtf8(p);
            }
            finally
            {
                if (p != IntPtr.Zero)
                    bits_free_string(p);
            }
        }

        // ---- errors ----

        /// <summary>The exception for a failed HRESULT, with this thread's library message: call right after the failing call.</summary>
        internal static BitsException Error(int hr)
        {
            return BitsException.Create(hr, FromUtf8(bits_last_error_message()));
        }

        /// <summary>
        /// The one place a failed HRESULT becomes an exception. Must be called right after the
        /// failing call, on the same thread: bits_last_error_message is per thread and is
        /// overwritten by the next failing call.
        /// </summary>
        internal static int ThrowIfFailed(int hr)
        {
            if (hr >= 0)
                return hr;
            throw Error(hr);
        }
    }

    /// <summary>
    /// OPENBITS_LIBRARY=/path/to/libopenbits.so overrides where DllImport("openbits") loads from, on
    /// .NET Core 3.0 and later (System.Runtime.InteropServices.NativeLibrary, reached through
    /// reflection since netstandard2.0 does not have it). Elsewhere (Mono, .NET Framework) this does
    /// nothing: use LD_LIBRARY_PATH or the dllmap in OpenBits.dll.config.
    /// </summary>
    internal static class Loader
    {
        private static string path;
        private static MethodInfo load;

        internal static void Register()
        {
            path = Environment.GetEnvironmentVariable("OPENBITS_LIBRARY");
            if (string.IsNullOrEmpty(path))
                return;
            try
            {
                Assembly core = typeof(object).Assembly;
                Type nativeLibrary = core.GetType("System.Runtime.InteropServices.NativeLibrary", false);
                Type resolverType = core.GetType("System.Runtime.InteropServices.DllImportResolver", false);
                if (nativeLibrary == null || resolverType == null)
                    return;
                load = nativeLibrary.GetMethod("Load", new[] { typeof(string) });
                MethodInfo set = nativeLibrary.GetMethod("SetDllImportResolver", new[] { typeof(Assembly), resolverType });
                MethodInfo resolve = typeof(Loader).GetMethod("Resolve", BindingFlags.NonPublic | BindingFlags.Static);
                if (load == null || set == null)
                    return;
                set.Invoke(null, new object[] { typeof(Loader).Assembly, Delegate.CreateDelegate(resolverType, resolve) });
            }
            catch (Exception)
            {
                // A resolver was already set for this assembly, or the API differs: default probing.
            }
        }

        private static IntPtr Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
        {
            if (libraryName != NativeMethods.Library)
                return IntPtr.Zero;
            return (IntPtr)load.Invoke(null, new object[] { path });
        }
    }
}
