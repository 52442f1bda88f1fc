// Push callbacks (bits_job_set_notify_callback): the library calls back on its notification thread.
//
// - One static thunk of each kind for every registration, held in static fields, so the function
//   pointers the library keeps never refer to a collected delegate.
// - user_data is a GCHandle to a Registration; the library calls the free thunk exactly once
//   (when the registration is replaced or removed, the job's last reference is released, the
//   manager closes, or at once if the registration fails), and that frees the GCHandle.
// - The Registration holds its Job weakly: a strong reference from a GCHandle (a root) would keep
//   the Job, and so its handle, alive for ever, and the library frees the registration only when
//   that handle is released.
// - No exception crosses back into native code: a callback's exception goes to
//   Manager.EventHandlerFailed, and if nobody takes it there the process ends
//   (Environment.FailFast), as an unhandled exception would.

using System;
using System.Runtime.InteropServices;

namespace OpenBits
{
    /// <summary>A push callback (see <see cref="Job.SetNotifyCallback"/>).</summary>
    public delegate void JobNotifyCallback(Job job, JobEventArgs e);

    internal sealed class Registration
    {
        private static readonly NativeMethods.NotifyCallback NotifyThunk = OnNotify;
        private static readonly NativeMethods.FreeUserData FreeThunk = OnFree;

        private readonly WeakReference<Job> job;
        private readonly JobNotifyCallback callback;

        private Registration(Job job, JobNotifyCallback callback)
        {
            this.job = new WeakReference<Job>(job);
            this.callback = callback;
        }

        internal static void Register(Job job, JobHandle handle, JobNotifyCallback callback, NotifyFlags flags)
        {
            if (callback == null)
            {
                NativeMethods.ThrowIfFailed(NativeMethods.bits_job_set_notify_callback(handle, (uint)flags, null, IntPtr.Zero, null));
                return;
            }
            IntPtr userData = GCHandle.ToIntPtr(GCHandle.Alloc(new Registration(job, callback)));
            HandleCounts.Acquired(ref HandleCounts.callbacks);
            // From here the library owns userData, failing calls included (it frees it at once then).
            NativeMethods.ThrowIfFailed(NativeMethods.bits_job_set_notify_callback(handle, (uint)flags, NotifyThunk, userData, FreeThunk));
        }

        private static void OnNotify(IntPtr userData, IntPtr jobPtr, IntPtr evPtr)
        {
            try
            {
                var reg = (Registration)GCHandle.FromIntPtr(userData).Target;
                Job j;
                if (!reg.job.TryGetTarget(out j))
                    return; // collected: its release will end the registration
                var args = new JobEventArgs((NativeEvent)Marshal.PtrToStructure(evPtr, typeof(NativeEvent)));
                try
                {
                    reg.callback(j, args);
                }
                catch (Exception e)
                {
                    if (!j.Manager.ReportHandlerFailure(args, e))
                        Environment.FailFast("OpenBits: a notify callback threw and Manager.EventHandlerFailed has no handler: " + e, e);
                }
            }
            catch (Exception e)
            {
                Environment.FailFast("OpenBits: notify callback dispatch failed: " + e, e);
            }
        }

        private static void OnFree(IntPtr userData)
        {
            try
            {
                GCHandle.FromIntPtr(userData).Free();
                HandleCounts.Released(ref HandleCounts.callbacks);
            }
            catch (Exception e)
            {
                Environment.FailFast("OpenBits: freeing a notify callback failed: " + e, e);
            }
        }
    }
}
