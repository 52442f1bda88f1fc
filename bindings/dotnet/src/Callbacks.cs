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

        // Shared by every registration kind: user_data is always a GCHandle to the registration.
        internal static void OnFree(IntPtr userData)
        {
            try
            {
                GCHandle.FromIntPtr(userData).Free();
                HandleCounts.Released(ref HandleCounts.callbacks);
            }
            catch (Exception e)
            {
                Environment.FailFast("OpenBits: freeing a callback registration failed: " + e, e);
            }
        }
    }

    /// <summary>
    /// A server certificate check (see <see cref="Job.SetServerCertificateCallback"/>): the host
    /// connected to, the chain (DER, the server's own certificate first), and 0 or the failure a
    /// BITS_SSL_IGNORE_* flag handed over. Returns 0 (S_OK) to accept.
    /// </summary>
    public delegate int ServerCertificateCallback(Job job, string hostName, byte[][] chain, int libraryResult);

    internal sealed class CertificateRegistration
    {
        private static readonly NativeMethods.CertificateCallback CheckThunk = OnCheck;
        private static readonly NativeMethods.FreeUserData FreeThunk = Registration.OnFree;

        private readonly WeakReference<Job> job;
        private readonly ServerCertificateCallback callback;

        private CertificateRegistration(Job job, ServerCertificateCallback callback)
        {
            this.job = new WeakReference<Job>(job);
            this.callback = callback;
        }

        internal static void Register(Job job, JobHandle handle, ServerCertificateCallback callback)
        {
            if (callback == null)
            {
                NativeMethods.ThrowIfFailed(NativeMethods.bits_job_set_server_certificate_callback(handle, null, IntPtr.Zero, null));
                return;
            }
            IntPtr userData = GCHandle.ToIntPtr(GCHandle.Alloc(new CertificateRegistration(job, callback)));
            HandleCounts.Acquired(ref HandleCounts.callbacks);
            // From here the library owns userData, failing calls included (it frees it at once then).
            NativeMethods.ThrowIfFailed(NativeMethods.bits_job_set_server_certificate_callback(handle, CheckThunk, userData, FreeThunk));
        }

        // Whatever goes wrong refuses the certificate: no exception reaches native code, and none
        // can turn into an acceptance.
        private static int OnCheck(IntPtr userData, IntPtr jobPtr, IntPtr hostName, IntPtr chain, UIntPtr chainLen, int libraryResult)
        {
            try
            {
                var reg = (CertificateRegistration)GCHandle.FromIntPtr(userData).Target;
                Job j;
                if (!reg.job.TryGetTarget(out j))
                    return HResults.E_Unexpected;
                int n = checked((int)chainLen.ToUInt64());
                var ders = new byte[n][];
                int size = Marshal.SizeOf(typeof(NativeMethods.NativeCertificate));
                for (int i = 0; i < n; i++)
                {
                    var c = (NativeMethods.NativeCertificate)Marshal.PtrToStructure(
                        new IntPtr(chain.ToInt64() + (long)i * size), typeof(NativeMethods.NativeCertificate));
                    ders[i] = new byte[checked((int)c.Len.ToUInt64())];
                    Marshal.Copy(c.Der, ders[i], 0, ders[i].Length);
                }
                return reg.callback(j, NativeMethods.FromUtf8(hostName), ders, libraryResult);
            }
            catch (Exception)
            {
                return HResults.E_Unexpected;
            }
        }
    }
}
