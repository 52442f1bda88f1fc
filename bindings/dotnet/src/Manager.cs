using System;
using System.Collections.Generic;
using System.IO;
using System.Runtime.InteropServices;
using System.Threading;

namespace OpenBits
{
    /// <summary>Options for opening a <see cref="Manager"/> (bits_manager_options). Null means the library's default.</summary>
    public sealed class ManagerOptions
    {
        /// <summary>The state folder; null: the per-user default ($OPENBITS_HOME, else $XDG_DATA_HOME/openbits, else ~/.local/share/openbits).</summary>
        public string StateDirectory { get; set; }

        /// <summary>Jobs transferring at once (default 6).</summary>
        public int? MaxConcurrentJobs { get; set; }

        /// <summary>Progress is made durable at most this often per file (default 1 s).</summary>
        public TimeSpan? CheckpointInterval { get; set; }

        /// <summary>...or after this many bytes of a file (default 8 MiB).</summary>
        public long? CheckpointBytes { get; set; }

        /// <summary>Jobs with no progress and no change for this long are cancelled (default 90 days).</summary>
        public TimeSpan? InactivityTimeout { get; set; }

        /// <summary>The user this manager acts for: new jobs belong to it and it sees only its own jobs. Null: the OS user name of the process.</summary>
        public string Owner { get; set; }

        /// <summary>BITS's "administrators and services": every owner's jobs are visible and the limits below do not apply.</summary>
        public bool ServiceMode { get; set; }

        /// <summary>Jobs in the queue, all owners together (MaxJobsPerMachine, default 300).</summary>
        public int? MaxJobs { get; set; }

        /// <summary>Jobs per owner (MaxJobsPerUser, default 60).</summary>
        public int? MaxJobsPerOwner { get; set; }

        /// <summary>Files per job (MaxFilesPerJob, default 200).</summary>
        public int? MaxFilesPerJob { get; set; }

        /// <summary>Byte ranges per file (MaxRangesPerFile, default 500).</summary>
        public int? MaxRangesPerFile { get; set; }

        /// <summary>How long a background job keeps its slot while others of its priority wait
        /// (default 30 s).</summary>
        public TimeSpan? TimeSlice { get; set; }

        /// <summary>Files transferred from one origin at once, over every job (default 6).</summary>
        public int? MaxConnectionsPerHost { get; set; }

        /// <summary>Files of one job transferring at once (default 6; 1 moves them one after
        /// another, as BITS does). Files are reported transferred in order either way.</summary>
        public int? FilesInFlight { get; set; }
    }

    /// <summary>A weekly window of a bandwidth schedule: the days it starts on (bit 0 Sunday ...
    /// bit 6 Saturday), its minutes [start, end) after local midnight (an end before the start
    /// runs past midnight; an equal one is the whole day), and its limits for High, Normal, Low
    /// in bytes per second (0: none; BandwidthSchedule.Blocked: no transfer).</summary>
    public sealed class ScheduleWindow
    {
        public uint Days { get; set; }
        public uint StartMinute { get; set; }
        public uint EndMinute { get; set; }
        public ulong High { get; set; }
        public ulong Normal { get; set; }
        public ulong Low { get; set; }
    }

    /// <summary>BITS's bandwidth schedule for background jobs (Manager.BandwidthSchedule).</summary>
    public sealed class BandwidthSchedule
    {
        /// <summary>A limit meaning "no background transfer at all".</summary>
        public const ulong Blocked = ulong.MaxValue;

        public ScheduleWindow Work { get; set; }
        public ulong OtherHigh { get; set; }
        public ulong OtherNormal { get; set; }
        public ulong OtherLow { get; set; }
        /// <summary>Null: no maintenance window.</summary>
        public ScheduleWindow Maintenance { get; set; }
    }

    /// <summary>Data of a job event (see <see cref="Manager.JobTransferred"/> and the other events).</summary>
    public sealed class JobEventArgs : EventArgs
    {
        internal JobEventArgs(NativeEvent e)
        {
            JobId = e.JobId;
            Kind = (EventKind)e.Kind;
            State = (JobState)e.State;
            Code = e.Code;
            FileIndex = (int)e.FileIndex;
        }

        public Guid JobId { get; private set; }
        public EventKind Kind { get; private set; }

        /// <summary>The job's state when the event was queued.</summary>
        public JobState State { get; private set; }

        /// <summary>For <see cref="EventKind.JobError"/> the job's error code, else 0.</summary>
        public int Code { get; private set; }

        /// <summary>For <see cref="EventKind.FileTransferred"/> the file's index in the job.</summary>
        public int FileIndex { get; private set; }

        public override string ToString()
        {
            return string.Format("{0} {1:B} {2} 0x{3:X8} file {4}", Kind, JobId, State, Code, FileIndex);
        }
    }

    /// <summary>
    /// A BITS job queue (IBackgroundCopyManager): a state folder with its jobs, and the threads that
    /// transfer them. One manager per folder at a time, in any process.
    /// </summary>
    /// <remarks>
    /// Every member may be called from any thread. <see cref="Dispose"/> stops the transfers (they
    /// continue at the next open), stops the event thread and closes the manager; jobs obtained from
    /// it then throw <see cref="BitsInvalidStateException"/>. A manager that is never disposed is
    /// closed when the garbage collector finalizes it.
    /// </remarks>
    public sealed class Manager : IDisposable
    {
        private readonly ManagerHandle handle;
        private readonly object sync = new object();
        private EventPump pump;
        private bool disposed;

        private EventHandler<JobEventArgs> jobTransferred, jobError, jobModified, fileTransferred;
        private EventHandler<EventHandlerFailedEventArgs> eventHandlerFailed;

        /// <summary>Opens the per-user default state folder.</summary>
        public Manager() : this(new ManagerOptions()) { }

        /// <summary>Opens (creating it if needed) the state folder <paramref name="stateDirectory"/>; null: the per-user default. A relative path is taken from the current directory.</summary>
        public Manager(string stateDirectory) : this(new ManagerOptions { StateDirectory = stateDirectory }) { }

        public Manager(ManagerOptions options)
        {
            if (options == null)
                throw new ArgumentNullException("options");
            CheckLibraryVersion();
            string dir = options.StateDirectory == null ? null : Path.GetFullPath(options.StateDirectory);
            byte[] dirBytes = NativeMethods.ToUtf8(dir, "options");
            byte[] ownerBytes = NativeMethods.ToUtf8(options.Owner, "options");
            var native = new NativeManagerOptions
            {
                StructSize = StructSizeFor(options),
                RequiredVersion = (uint)((NativeMethods.ExpectedMajor << 16) | NativeMethods.ExpectedMinor),
                MaxConcurrentJobs = ToUInt(options.MaxConcurrentJobs, "MaxConcurrentJobs"),
                CheckpointIntervalMs = options.CheckpointInterval.HasValue
                    ? Milliseconds(options.CheckpointInterval.Value, "CheckpointInterval") : 0u,
                CheckpointBytes = options.CheckpointBytes.HasValue
                    ? checked((ulong)Positive(options.CheckpointBytes.Value, "CheckpointBytes")) : 0ul,
                InactivityTimeoutS = options.InactivityTimeout.HasValue
                    ? Seconds(options.InactivityTimeout.Value, "InactivityTimeout") : 0u,
                ServiceMode = options.ServiceMode ? 1 : 0,
                MaxJobs = ToUInt(options.MaxJobs, "MaxJobs"),
                MaxJobsPerOwner = ToUInt(options.MaxJobsPerOwner, "MaxJobsPerOwner"),
                MaxFilesPerJob = ToUInt(options.MaxFilesPerJob, "MaxFilesPerJob"),
                MaxRangesPerFile = ToUInt(options.MaxRangesPerFile, "MaxRangesPerFile"),
                TimeSliceMs = options.TimeSlice.HasValue
                    ? Milliseconds(options.TimeSlice.Value, "TimeSlice") : 0u,
                MaxConnectionsPerHost = ToUInt(options.MaxConnectionsPerHost, "MaxConnectionsPerHost"),
                FilesInFlight = ToUInt(options.FilesInFlight, "FilesInFlight"),
            };
            GCHandle pin = default(GCHandle), ownerPin = default(GCHandle);
            try
            {
                if (dirBytes != null)
                {
                    pin = GCHandle.Alloc(dirBytes, GCHandleType.Pinned);
                    native.StateDir = pin.AddrOfPinnedObject();
                }
                if (ownerBytes != null)
                {
                    ownerPin = GCHandle.Alloc(ownerBytes, GCHandleType.Pinned);
                    native.Owner = ownerPin.AddrOfPinnedObject();
                }
                ManagerHandle h;
                int hr = NativeMethods.bits_manager_open_ex(ref native, out h);
                if (hr < 0)
                {
                    BitsException e = NativeMethods.Error(hr);
                    h.Dispose();
                    throw e;
                }
                handle = h;
                HandleCounts.Acquired(ref HandleCounts.managers);
            }
            finally
            {
                if (pin.IsAllocated)
                    pin.Free();
                if (ownerPin.IsAllocated)
                    ownerPin.Free();
            }
        }

        /// <summary>
        /// The smallest struct_size covering the options in use: a library built before the owner
        /// and limit fields existed (same version number, 0.1.0) refuses a larger struct_size.
        /// </summary>
        private static uint StructSizeFor(ManagerOptions o)
        {
            bool extended = o.Owner != null || o.ServiceMode || o.MaxJobs.HasValue || o.MaxJobsPerOwner.HasValue
                || o.MaxFilesPerJob.HasValue || o.MaxRangesPerFile.HasValue || o.TimeSlice.HasValue
                || o.MaxConnectionsPerHost.HasValue || o.FilesInFlight.HasValue;
            return extended
                ? (uint)Marshal.SizeOf(typeof(NativeManagerOptions))
                : (uint)Marshal.OffsetOf(typeof(NativeManagerOptions), "Owner").ToInt32();
        }

        /// <summary>The native library's version, e.g. "0.1.0".</summary>
        public static string LibraryVersion
        {
            get { return NativeMethods.FromUtf8(NativeMethods.bits_version_string()); }
        }

        private static void CheckLibraryVersion()
        {
            string v = LibraryVersion;
            string[] parts = (v ?? "").Split('.');
            int major, minor;
            if (parts.Length < 2 || !int.TryParse(parts[0], out major) || !int.TryParse(parts[1], out minor)
                || major != NativeMethods.ExpectedMajor || minor != NativeMethods.ExpectedMinor)
            {
                throw new BitsException(string.Format(
                    "libopenbits {0} is not the version this binding was written for ({1}.{2}.x)",
                    v, NativeMethods.ExpectedMajor, NativeMethods.ExpectedMinor), HResults.E_ClassNotRegistered);
            }
        }

        /// <summary>The rate limit of every background job together, in bytes per second (0:
        /// none); Foreground jobs are exempt. Kept in the state folder.</summary>
        public ulong MaxBandwidth
        {
            get
            {
                ulong v;
                NativeMethods.ThrowIfFailed(NativeMethods.bits_manager_get_max_bandwidth(Handle, out v));
                return v;
            }
            set { NativeMethods.ThrowIfFailed(NativeMethods.bits_manager_set_max_bandwidth(Handle, value)); }
        }

        /// <summary>What the network costs now: one CostState value (Unrestricted until set; not
        /// kept).</summary>
        public CostState NetworkCost
        {
            get
            {
                uint v;
                NativeMethods.ThrowIfFailed(NativeMethods.bits_manager_get_network_cost(Handle, out v));
                return (CostState)v;
            }
            set { NativeMethods.ThrowIfFailed(NativeMethods.bits_manager_set_network_cost(Handle, (uint)value)); }
        }

        /// <summary>The bandwidth schedule (null: none). Kept in the state folder.</summary>
        public BandwidthSchedule BandwidthSchedule
        {
            get
            {
                var n = new NativeBandwidthSchedule { StructSize = (uint)Marshal.SizeOf(typeof(NativeBandwidthSchedule)) };
                int hr = NativeMethods.bits_manager_get_bandwidth_schedule(Handle, ref n);
                NativeMethods.ThrowIfFailed(hr);
                if (hr == HResults.S_False)
                    return null;
                return new BandwidthSchedule
                {
                    Work = new ScheduleWindow
                    {
                        Days = n.WorkDays, StartMinute = n.WorkStartMinute, EndMinute = n.WorkEndMinute,
                        High = n.WorkHigh, Normal = n.WorkNormal, Low = n.WorkLow,
                    },
                    OtherHigh = n.OtherHigh, OtherNormal = n.OtherNormal, OtherLow = n.OtherLow,
                    Maintenance = n.MaintenanceEnabled == 0 ? null : new ScheduleWindow
                    {
                        Days = n.MaintenanceDays, StartMinute = n.MaintenanceStartMinute,
                        EndMinute = n.MaintenanceEndMinute,
                        High = n.MaintenanceHigh, Normal = n.MaintenanceNormal, Low = n.MaintenanceLow,
                    },
                };
            }
            set
            {
                if (value == null)
                {
                    NativeMethods.ThrowIfFailed(NativeMethods.bits_manager_clear_bandwidth_schedule(Handle, IntPtr.Zero));
                    return;
                }
                ScheduleWindow w = value.Work ?? new ScheduleWindow();
                var n = new NativeBandwidthSchedule
                {
                    StructSize = (uint)Marshal.SizeOf(typeof(NativeBandwidthSchedule)),
                    WorkDays = w.Days, WorkStartMinute = w.StartMinute, WorkEndMinute = w.EndMinute,
                    WorkHigh = w.High, WorkNormal = w.Normal, WorkLow = w.Low,
                    OtherHigh = value.OtherHigh, OtherNormal = value.OtherNormal, OtherLow = value.OtherLow,
                };
                if (value.Maintenance != null)
                {
                    ScheduleWindow m = value.Maintenance;
                    n.MaintenanceEnabled = 1;
                    n.MaintenanceDays = m.Days;
                    n.MaintenanceStartMinute = m.StartMinute;
                    n.MaintenanceEndMinute = m.EndMinute;
                    n.MaintenanceHigh = m.High;
                    n.MaintenanceNormal = m.Normal;
                    n.MaintenanceLow = m.Low;
                }
                NativeMethods.ThrowIfFailed(NativeMethods.bits_manager_set_bandwidth_schedule(Handle, ref n));
            }
        }

        internal ManagerHandle Handle
        {
            get
            {
                if (handle.IsClosed)
                    throw new ObjectDisposedException("Manager");
                return handle;
            }
        }

        /// <summary>Creates a job (IBackgroundCopyManager::CreateJob). It starts <see cref="JobState.Suspended"/>.</summary>
        public Job CreateJob(string displayName, JobType type = JobType.Download)
        {
            if (displayName == null)
                throw new ArgumentNullException("displayName");
            byte[] name = NativeMethods.ToUtf8(displayName, "displayName");
            Guid id;
            JobHandle jh;
            int hr = NativeMethods.bits_create_job(Handle, name, (int)type, out id, out jh);
            if (hr < 0)
            {
                BitsException e = NativeMethods.Error(hr);
                jh.Dispose();
                throw e;
            }
            return new Job(this, jh, id);
        }

        /// <summary>A new reference to the job <paramref name="id"/>; <see cref="BitsNotFoundException"/> if there is none (or it was completed or cancelled).</summary>
        public Job GetJob(Guid id)
        {
            JobHandle jh;
            int hr = NativeMethods.bits_get_job(Handle, ref id, out jh);
            if (hr < 0)
            {
                BitsException e = NativeMethods.Error(hr);
                jh.Dispose();
                throw e;
            }
            return new Job(this, jh, id);
        }

        /// <summary>Like <see cref="GetJob"/>, but false instead of <see cref="BitsNotFoundException"/>.</summary>
        public bool TryGetJob(Guid id, out Job job)
        {
            JobHandle jh;
            int hr = NativeMethods.bits_get_job(Handle, ref id, out jh);
            if (hr == HResults.E_NotFound)
            {
                jh.Dispose();
                job = null;
                return false;
            }
            if (hr < 0)
            {
                BitsException e = NativeMethods.Error(hr);
                jh.Dispose();
                throw e;
            }
            job = new Job(this, jh, id);
            return true;
        }

        /// <summary>The ids of the owner's jobs that are not in a final state, in creation order (IBackgroundCopyManager::EnumJobs).</summary>
        public IReadOnlyList<Guid> JobIds
        {
            get { return GetJobIds(false); }
        }

        /// <summary>
        /// Like <see cref="JobIds"/>; <paramref name="allOwners"/> lists every owner's jobs
        /// (BG_JOB_ENUM_ALL_USERS), which needs <see cref="ManagerOptions.ServiceMode"/>.
        /// </summary>
        public IReadOnlyList<Guid> GetJobIds(bool allOwners)
        {
            IntPtr ids;
            uint count;
            NativeMethods.ThrowIfFailed(NativeMethods.bits_enum_jobs(Handle, allOwners ? 1u : 0u, out ids, out count));
            try
            {
                var list = new List<Guid>((int)count);
                int size = Marshal.SizeOf(typeof(Guid));
                for (int i = 0; i < (int)count; i++)
                    list.Add((Guid)Marshal.PtrToStructure(IntPtr.Add(ids, i * size), typeof(Guid)));
                return list.AsReadOnly();
            }
            finally
            {
                NativeMethods.bits_free(ids);
            }
        }

        /// <summary>
        /// A new reference to each job of <see cref="JobIds"/> (jobs that end meanwhile are left out).
        /// Each is a handle of its own: dispose it (or leave it to the finalizer).
        /// </summary>
        public IReadOnlyList<Job> Jobs
        {
            get
            {
                var list = new List<Job>();
                try
                {
                    foreach (Guid id in JobIds)
                    {
                        Job j;
                        if (TryGetJob(id, out j))
                            list.Add(j);
                    }
                }
                catch
                {
                    foreach (Job j in list)
                        j.Dispose();
                    throw;
                }
                return list.AsReadOnly();
            }
        }

        // ---- events ----

        /// <summary>A job became TRANSFERRED (BG_NOTIFY_JOB_TRANSFERRED). Raised on the manager's event thread.</summary>
        public event EventHandler<JobEventArgs> JobTransferred
        {
            add { lock (sync) jobTransferred += value; StartEvents(); }
            remove { lock (sync) jobTransferred -= value; }
        }

        /// <summary>A job went to ERROR (BG_NOTIFY_JOB_ERROR; transient errors are not reported); <see cref="JobEventArgs.Code"/> is the error.</summary>
        public event EventHandler<JobEventArgs> JobError
        {
            add { lock (sync) jobError += value; StartEvents(); }
            remove { lock (sync) jobError -= value; }
        }

        /// <summary>A job's state, properties or progress changed (BG_NOTIFY_JOB_MODIFICATION; progress at most every 500 ms per job).</summary>
        public event EventHandler<JobEventArgs> JobModified
        {
            add { lock (sync) jobModified += value; StartEvents(); }
            remove { lock (sync) jobModified -= value; }
        }

        /// <summary>A file of a job was completely transferred (BG_NOTIFY_FILE_TRANSFERRED).</summary>
        public event EventHandler<JobEventArgs> FileTransferred
        {
            add { lock (sync) fileTransferred += value; StartEvents(); }
            remove { lock (sync) fileTransferred -= value; }
        }

        /// <summary>
        /// An event handler or a push callback (<see cref="Job.SetNotifyCallback"/>) threw. Without
        /// a subscriber here (or if this handler throws too), such an exception ends the process,
        /// as any unhandled exception in .NET does.
        /// </summary>
        public event EventHandler<EventHandlerFailedEventArgs> EventHandlerFailed
        {
            add { lock (sync) eventHandlerFailed += value; }
            remove { lock (sync) eventHandlerFailed -= value; }
        }

        /// <summary>
        /// Starts the event thread, which takes events from the manager's queue and raises the
        /// events above. Subscribing to an event, or <see cref="Job.WaitAsync(TimeSpan, CancellationToken)"/>,
        /// starts it too. Idempotent. Handlers run on that thread, one at a time: keep them short.
        /// </summary>
        public void StartEvents()
        {
            EnsurePump();
        }

        internal EventPump EnsurePump()
        {
            lock (sync)
            {
                if (disposed || handle.IsClosed)
                    throw new ObjectDisposedException("Manager");
                if (pump == null)
                {
                    EventPump.CheckLibrarySupport();
                    pump = new EventPump(this, handle);
                }
                return pump;
            }
        }

        /// <summary>Called on the event thread.</summary>
        internal void Dispatch(JobEventArgs args)
        {
            EventHandler<JobEventArgs> h;
            lock (sync)
            {
                switch (args.Kind)
                {
                    case EventKind.JobTransferred: h = jobTransferred; break;
                    case EventKind.JobError: h = jobError; break;
                    case EventKind.JobModification: h = jobModified; break;
                    case EventKind.FileTransferred: h = fileTransferred; break;
                    default: h = null; break;
                }
            }
            if (h == null)
                return;
            foreach (EventHandler<JobEventArgs> one in h.GetInvocationList())
            {
                try
                {
                    one(this, args);
                }
                catch (Exception e)
                {
                    if (!ReportHandlerFailure(args, e))
                        throw;
                }
            }
        }

        /// <summary>Gives a handler's or callback's exception to <see cref="EventHandlerFailed"/>; false if nobody took it.</summary>
        internal bool ReportHandlerFailure(JobEventArgs args, Exception e)
        {
            EventHandler<EventHandlerFailedEventArgs> failed;
            lock (sync) failed = eventHandlerFailed;
            if (failed == null)
                return false;
            try
            {
                failed(this, new EventHandlerFailedEventArgs(args, e));
                return true;
            }
            catch (Exception)
            {
                return false;
            }
        }

        // ---- lifetime ----

        /// <summary>
        /// Stops the event thread, then closes the manager (bits_manager_close: stops every
        /// transfer, records progress, joins the library's threads; blocks up to 5 s). Safe to call
        /// twice and from an event handler. Pending <see cref="Job.WaitAsync(TimeSpan, CancellationToken)"/>
        /// tasks fail with <see cref="BitsInvalidStateException"/>.
        /// </summary>
        public void Dispose()
        {
            EventPump p;
            lock (sync)
            {
                if (disposed)
                    return;
                disposed = true;
                p = pump;
            }
            if (p != null)
                p.Stop();
            handle.Dispose();
            if (p != null)
                p.FailWaiters(new BitsInvalidStateException("the manager was disposed"));
        }

        public bool IsDisposed { get { lock (sync) return disposed; } }

        // ---- conversions ----

        internal static uint Seconds(TimeSpan t, string name)
        {
            if (t < TimeSpan.Zero)
                throw new ArgumentOutOfRangeException(name, "must not be negative");
            double s = Math.Ceiling(t.TotalSeconds);
            if (s > uint.MaxValue)
                throw new ArgumentOutOfRangeException(name, "at most 4294967295 seconds");
            return (uint)s;
        }

        private static uint Milliseconds(TimeSpan t, string name)
        {
            if (t <= TimeSpan.Zero)
                throw new ArgumentOutOfRangeException(name, "must be positive");
            double ms = Math.Ceiling(t.TotalMilliseconds);
            if (ms >= uint.MaxValue)
                throw new ArgumentOutOfRangeException(name, "too long");
            return (uint)ms;
        }

        private static uint ToUInt(int? v, string name)
        {
            return v.HasValue ? (uint)Positive(v.Value, name) : 0u;
        }

        private static long Positive(long v, string name)
        {
            if (v <= 0)
                throw new ArgumentOutOfRangeException(name, "must be positive");
            return v;
        }
    }

    /// <summary>An exception an event handler threw (see <see cref="Manager.EventHandlerFailed"/>).</summary>
    public sealed class EventHandlerFailedEventArgs : EventArgs
    {
        internal EventHandlerFailedEventArgs(JobEventArgs e, Exception x)
        {
            Event = e;
            Exception = x;
        }

        public JobEventArgs Event { get; private set; }
        public Exception Exception { get; private set; }
    }
}
