// Enums and small value types of the job model. The numbers are those of include/openbits.h,
// which keeps Windows BITS's (BG_JOB_STATE, BG_JOB_TYPE, BG_ERROR_CONTEXT, BG_NOTIFY_*).

using System;

namespace OpenBits
{
    /// <summary>What the network costs (BITS_COST_STATE_*): Manager.NetworkCost takes one; a
    /// job's TransferPolicy is a mask of them.</summary>
    [Flags]
    public enum CostState : uint
    {
        Unrestricted = 0x1,
        CappedUsageUnknown = 0x2,
        BelowCap = 0x4,
        NearCap = 0x8,
        OvercapCharged = 0x10,
        OvercapThrottled = 0x20,
        UsageBased = 0x40,
        Roaming = 0x80,
        IgnoreCongestion = 0x80000000,
    }

    /// <summary>BITS_JOB_TRANSFER_POLICY_*: the usual Job.TransferPolicy values.</summary>
    public static class TransferPolicy
    {
        public const CostState Always = (CostState)0x800000FF;
        public const CostState NotRoaming = (CostState)0x8000007F;
        public const CostState NoSurcharge = (CostState)0x8000006F;
        public const CostState Standard = (CostState)0x80000067;
        public const CostState Unrestricted = (CostState)0x80000021;
    }

    /// <summary>A job's state (BG_JOB_STATE).</summary>
    public enum JobState
    {
        Queued = 0,
        Connecting = 1,
        Transferring = 2,
        Suspended = 3,
        /// <summary>A fatal error: see <see cref="Job.Error"/>; <see cref="Job.Resume"/> retries.</summary>
        Error = 4,
        /// <summary>A recoverable error: the job retries after its minimum retry delay.</summary>
        TransientError = 5,
        /// <summary>Every byte is on disk; call <see cref="Job.Complete"/> to put the files in place.</summary>
        Transferred = 6,
        /// <summary>Completed: final.</summary>
        Acknowledged = 7,
        /// <summary>Cancelled: final.</summary>
        Cancelled = 8,
    }

    /// <summary>A job's type (BG_JOB_TYPE). Only <see cref="Download"/> is implemented so far.</summary>
    public enum JobType
    {
        Download = 0,
        Upload = 1,
        UploadReply = 2,
    }

    /// <summary>A job's priority (BG_JOB_PRIORITY); the default is <see cref="Normal"/>.</summary>
    public enum JobPriority
    {
        Foreground = 0,
        High = 1,
        Normal = 2,
        Low = 3,
    }

    /// <summary>
    /// A job's notify flags (BG_NOTIFY_*). They select the events of push callbacks; the
    /// manager's events (<see cref="Manager.JobTransferred"/> and the others) get every event.
    /// </summary>
    [Flags]
    public enum NotifyFlags
    {
        None = 0,
        JobTransferred = 0x1,
        JobError = 0x2,
        Disable = 0x4,
        JobModification = 0x8,
        FileTransferred = 0x10,
        FileRangesTransferred = 0x20,
    }

    /// <summary>Where an error happened (BG_ERROR_CONTEXT).</summary>
    public enum ErrorContext
    {
        None = 0,
        Unknown = 1,
        GeneralQueueManager = 2,
        QueueManagerNotification = 3,
        LocalFile = 4,
        RemoteFile = 5,
        GeneralTransport = 6,
        RemoteApplication = 7,
        ServerCertificateCallback = 8,
    }

    /// <summary>The kind of a job event (BG_NOTIFY_* flags).</summary>
    public enum EventKind
    {
        JobTransferred = 0x1,
        JobError = 0x2,
        JobModification = 0x8,
        FileTransferred = 0x10,
    }

    /// <summary>A job's progress (BG_JOB_PROGRESS).</summary>
    public struct JobProgress : IEquatable<JobProgress>
    {
        /// <summary>The value of <see cref="BytesTotal"/> while the size of some file is unknown.</summary>
        public const ulong SizeUnknown = ulong.MaxValue;

        private readonly ulong bytesTotal, bytesTransferred;
        private readonly int filesTotal, filesTransferred;

        public JobProgress(ulong bytesTotal, ulong bytesTransferred, int filesTotal, int filesTransferred)
        {
            this.bytesTotal = bytesTotal;
            this.bytesTransferred = bytesTransferred;
            this.filesTotal = filesTotal;
            this.filesTransferred = filesTransferred;
        }

        internal JobProgress(NativeProgress p)
            : this(p.BytesTotal, p.BytesTransferred, (int)p.FilesTotal, (int)p.FilesTransferred) { }

        /// <summary>Bytes of all files; <see cref="SizeUnknown"/> while any file's size is unknown.</summary>
        public ulong BytesTotal { get { return bytesTotal; } }
        public ulong BytesTransferred { get { return bytesTransferred; } }
        public int FilesTotal { get { return filesTotal; } }
        public int FilesTransferred { get { return filesTransferred; } }

        /// <summary>False while the size of some file is not known yet.</summary>
        public bool IsTotalKnown { get { return bytesTotal != SizeUnknown; } }

        /// <summary>0..1, or null while the total is unknown.</summary>
        public double? Fraction
        {
            get
            {
                if (!IsTotalKnown) return null;
                return bytesTotal == 0 ? 1.0 : (double)bytesTransferred / bytesTotal;
            }
        }

        public bool Equals(JobProgress other)
        {
            return bytesTotal == other.bytesTotal && bytesTransferred == other.bytesTransferred
                && filesTotal == other.filesTotal && filesTransferred == other.filesTransferred;
        }

        public override bool Equals(object obj) { return obj is JobProgress && Equals((JobProgress)obj); }

        public override int GetHashCode()
        {
            return bytesTotal.GetHashCode() ^ (bytesTransferred.GetHashCode() * 31) ^ (filesTotal * 17) ^ filesTransferred;
        }

        public override string ToString()
        {
            return string.Format("{0} / {1} bytes, {2} / {3} files", bytesTransferred,
                IsTotalKnown ? bytesTotal.ToString() : "?", filesTransferred, filesTotal);
        }
    }

    /// <summary>An upload-reply job's reply (BG_JOB_REPLY_PROGRESS).</summary>
    public struct ReplyProgress
    {
        private readonly ulong bytesTotal, bytesTransferred;

        public ReplyProgress(ulong bytesTotal, ulong bytesTransferred)
        {
            this.bytesTotal = bytesTotal;
            this.bytesTransferred = bytesTransferred;
        }

        /// <summary>The reply's size; <see cref="JobProgress.SizeUnknown"/> until the server's answer gives it.</summary>
        public ulong BytesTotal { get { return bytesTotal; } }
        public ulong BytesTransferred { get { return bytesTransferred; } }
        public bool IsTotalKnown { get { return bytesTotal != JobProgress.SizeUnknown; } }

        public override string ToString()
        {
            return string.Format("{0} / {1} bytes", bytesTransferred, IsTotalKnown ? bytesTotal.ToString() : "?");
        }
    }

    /// <summary>The times of a job (BG_JOB_TIMES).</summary>
    public struct JobTimes
    {
        private static readonly DateTimeOffset Epoch = new DateTimeOffset(1970, 1, 1, 0, 0, 0, TimeSpan.Zero);

        internal JobTimes(NativeJobTimes t)
            : this()
        {
            Creation = Epoch.AddMilliseconds(t.CreationMs);
            Modification = Epoch.AddMilliseconds(t.ModificationMs);
            TransferCompletion = t.TransferCompletionMs == 0 ? (DateTimeOffset?)null : Epoch.AddMilliseconds(t.TransferCompletionMs);
        }

        public DateTimeOffset Creation { get; private set; }

        /// <summary>The last change of a property or the state, or the last recorded progress.</summary>
        public DateTimeOffset Modification { get; private set; }

        /// <summary>When the job last became TRANSFERRED; null if it has not.</summary>
        public DateTimeOffset? TransferCompletion { get; private set; }
    }

    /// <summary>A file's progress (BG_FILE_PROGRESS).</summary>
    public struct FileProgress
    {
        internal FileProgress(NativeFileProgress p)
            : this()
        {
            BytesTotal = p.BytesTotal;
            BytesTransferred = p.BytesTransferred;
            IsCompleted = p.Completed != 0;
        }

        /// <summary><see cref="JobProgress.SizeUnknown"/> until the size is known.</summary>
        public ulong BytesTotal { get; private set; }
        public ulong BytesTransferred { get; private set; }
        public bool IsCompleted { get; private set; }
        public bool IsTotalKnown { get { return BytesTotal != JobProgress.SizeUnknown; } }
    }

    /// <summary>A file to add with <see cref="Job.AddFiles"/> (BG_FILE_INFO).</summary>
    public struct BitsFileInfo
    {
        public BitsFileInfo(string remoteUrl, string localPath)
            : this()
        {
            RemoteUrl = remoteUrl;
            LocalPath = localPath;
        }

        public string RemoteUrl { get; private set; }
        public string LocalPath { get; private set; }
    }

    /// <summary>One file of a job as it was when read (IBackgroundCopyFile); see <see cref="Job.Files"/>.</summary>
    public sealed class JobFile
    {
        internal JobFile(int index, string remoteUrl, string localPath, string temporaryPath, FileProgress progress)
        {
            Index = index;
            RemoteUrl = remoteUrl;
            LocalPath = localPath;
            TemporaryPath = string.IsNullOrEmpty(temporaryPath) ? null : temporaryPath;
            Progress = progress;
        }

        /// <summary>The file's index in the job, in the order the files were added.</summary>
        public int Index { get; private set; }
        public string RemoteUrl { get; private set; }
        public string LocalPath { get; private set; }

        /// <summary>The <c>BIT*.tmp</c> file the bytes go to; null until the file's transfer first starts.</summary>
        public string TemporaryPath { get; private set; }
        public FileProgress Progress { get; private set; }

        public override string ToString()
        {
            return string.Format("{0}: {1} -> {2}", Index, RemoteUrl, LocalPath);
        }
    }

    /// <summary>A job's error (IBackgroundCopyJob::GetError): only in ERROR and TRANSIENT_ERROR.</summary>
    public sealed class JobErrorInfo
    {
        internal JobErrorInfo(ErrorContext context, int code, string description,
                              int? fileIndex, string protocol, string contextDescription)
        {
            Context = context;
            Code = code;
            Description = description ?? "";
            FileIndex = fileIndex;
            Protocol = protocol;
            ContextDescription = contextDescription;
        }

        /// <summary>The file the error belongs to (IBackgroundCopyError::GetFile); null if none.</summary>
        public int? FileIndex { get; private set; }

        /// <summary><c>http</c>, <c>https</c> or <c>file</c> (IBackgroundCopyError::GetProtocol); null if the error belongs to no file.</summary>
        public string Protocol { get; private set; }

        /// <summary>A sentence describing <see cref="Context"/> (GetErrorContextDescription); null if unavailable.</summary>
        public string ContextDescription { get; private set; }

        public ErrorContext Context { get; private set; }

        /// <summary>The failure's HRESULT, e.g. <c>HResults.HttpError(404)</c> = 0x80190194.</summary>
        public int Code { get; private set; }

        /// <summary>The library's text, e.g. <c>HTTP 404 Not Found: http://host/x.bin</c>.</summary>
        public string Description { get; private set; }

        /// <summary>The HTTP status for a BG_E_HTTP_ERROR_nnn code, else null.</summary>
        public int? HttpStatus { get { return HResults.HttpStatusOf(Code); } }

        /// <summary>An exception carrying this error, for code that wants to throw it.</summary>
        public BitsException ToException() { return BitsException.Create(Code, Description); }

        public override string ToString()
        {
            return string.Format("0x{0:X8} ({1}): {2}", Code, Context, Description);
        }
    }

    /// <summary>The HRESULT values callers compare against most often (include/openbits.h has them all).</summary>
    public static class HResults
    {
        public const int S_OK = 0;
        public const int S_False = 1;
        public const int S_PartialComplete = 0x00200017;
        public const int S_UnableToDeleteFiles = 0x0020001A;
        public const int E_NotImpl = unchecked((int)0x80004001);
        public const int E_Pointer = unchecked((int)0x80004003);
        public const int E_Fail = unchecked((int)0x80004005);
        public const int E_Unexpected = unchecked((int)0x8000FFFF);
        public const int E_AccessDenied = unchecked((int)0x80070005);
        public const int E_OutOfMemory = unchecked((int)0x8007000E);
        public const int E_InvalidArg = unchecked((int)0x80070057);
        public const int E_PathNotFound = unchecked((int)0x80070003);
        public const int E_SharingViolation = unchecked((int)0x80070020);
        public const int E_DiskFull = unchecked((int)0x80070070);
        public const int E_RevisionMismatch = unchecked((int)0x8007051A);
        public const int E_Timeout = unchecked((int)0x800705B4);
        public const int E_ClassNotRegistered = unchecked((int)0x80040154);
        public const int E_NotFound = unchecked((int)0x80200001);
        public const int E_InvalidState = unchecked((int)0x80200002);
        public const int E_Empty = unchecked((int)0x80200003);
        public const int E_ErrorInformationUnavailable = unchecked((int)0x8020000F);
        public const int E_DatabaseCorrupt = unchecked((int)0x8020006C);
        public const int E_BlockedByPolicy = unchecked((int)0x8020003E);
        public const int E_BlockedByCostTransferPolicy = unchecked((int)0x80200059);
        public const int E_FileNotAvailable = unchecked((int)0x80200004);
        public const int E_ProtocolNotAvailable = unchecked((int)0x80200005);
        public const int E_TooManyJobsPerUser = unchecked((int)0x80200049);
        public const int E_TooManyJobsPerMachine = unchecked((int)0x80200050);
        public const int E_TooManyFilesInJob = unchecked((int)0x80200051);
        public const int E_TooManyFiles = unchecked((int)0x8020001C);
        public const int E_TooLarge = unchecked((int)0x80200020);

        /// <summary>The library's sentence for any code it returns (IBackgroundCopyManager::GetErrorDescription).</summary>
        public static string Describe(int hresult)
        {
            IntPtr text;
            NativeMethods.ThrowIfFailed(NativeMethods.bits_get_error_description(hresult, out text));
            return NativeMethods.TakeString(text);
        }

        /// <summary>BG_E_HTTP_ERROR_nnn: 0x80190000 | status.</summary>
        public static int HttpError(int status)
        {
            if (status < 100 || status > 999)
                throw new ArgumentOutOfRangeException("status");
            return unchecked((int)(0x80190000u | (uint)status));
        }

        /// <summary>The HTTP status of a BG_E_HTTP_ERROR_nnn code, else null.</summary>
        public static int? HttpStatusOf(int hresult)
        {
            uint u = unchecked((uint)hresult);
            if ((u & 0xFFFF0000u) == 0x80190000u && (u & 0xFFFF) >= 100 && (u & 0xFFFF) <= 999)
                return (int)(u & 0xFFFF);
            return null;
        }
    }
}
