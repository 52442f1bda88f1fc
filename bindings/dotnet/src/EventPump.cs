// The manager's event thread: takes events from the pull queue (bits_manager_next_event), raises
// the Manager's events and completes Job.WaitAsync tasks.
//
// Lifetime: the thread holds the ManagerHandle and only a weak reference to the Manager, so a
// Manager nobody references can still be collected; the thread then notices, closes the handle
// itself and ends. Manager.Dispose stops and joins the thread before it closes the handle, and the
// thread never waits longer than PollMs in the library, so the join is short (a call must not run
// on a manager while it is closed; the SafeHandle's reference count would defer the close anyway).

using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;

namespace OpenBits
{
    internal sealed class EventPump
    {
        private const uint PollMs = 200;
        private const long RecheckMs = 1000;

        private readonly ManagerHandle handle;
        private readonly WeakReference<Manager> owner;
        private readonly Thread thread;
        private readonly object sync = new object();
        private readonly List<Waiter> waiters = new List<Waiter>();
        private volatile bool stopping;

        internal EventPump(Manager manager, ManagerHandle handle)
        {
            this.handle = handle;
            owner = new WeakReference<Manager>(manager);
            thread = new Thread(Run) { IsBackground = true, Name = "OpenBits events" };
            thread.Start();
        }

        private static volatile bool supported;

        /// <summary>
        /// Binds bits_manager_next_event now, so that a library without it (older builds of 0.1.0)
        /// fails StartEvents with BITS_E_NOTIMPL instead of the event thread.
        /// </summary>
        internal static void CheckLibrarySupport()
        {
            if (supported)
                return;
            try
            {
                Marshal.Prelink(typeof(NativeMethods).GetMethod("bits_manager_next_event", BindingFlags.NonPublic | BindingFlags.Static));
            }
            catch (EntryPointNotFoundException)
            {
                throw new BitsException("this libopenbits has no bits_manager_next_event: events need a newer build", HResults.E_NotImpl);
            }
            supported = true;
        }

        /// <summary>Stops the thread and, unless called on it (from a handler), joins it.</summary>
        internal void Stop()
        {
            stopping = true;
            if (Thread.CurrentThread != thread)
                thread.Join();
        }

        internal void Add(Waiter w)
        {
            bool failNow;
            lock (sync)
            {
                failNow = stopping;
                if (!failNow)
                    waiters.Add(w);
            }
            if (failNow)
                w.TryFail(new BitsInvalidStateException("the job's manager was disposed"));
        }

        internal void Remove(Waiter w)
        {
            lock (sync) waiters.Remove(w);
        }

        internal void FailWaiters(Exception e)
        {
            Waiter[] all;
            lock (sync)
            {
                all = waiters.ToArray();
                waiters.Clear();
            }
            foreach (Waiter w in all)
                w.TryFail(e);
        }

        private Waiter[] Snapshot()
        {
            lock (sync) return waiters.Count == 0 ? null : waiters.ToArray();
        }

        private void Run()
        {
            var sinceCheck = Stopwatch.StartNew();
            try
            {
                while (!stopping)
                {
                    NativeEvent ev;
                    int hr = NativeMethods.bits_manager_next_event(handle, PollMs, out ev);
                    if (hr == HResults.E_Timeout || hr >= 0)
                    {
                        Manager m;
                        if (!owner.TryGetTarget(out m))
                        {
                            // Garbage: nobody can subscribe or wait any more. Close it here, as
                            // the handle's finalizer would have.
                            stopping = true;
                            handle.Dispose();
                            break;
                        }
                        if (hr >= 0)
                        {
                            var args = new JobEventArgs(ev);
                            Complete(args);
                            if (!stopping)
                                m.Dispatch(args);
                        }
                        m = null;
                    }
                    else
                    {
                        // BITS_E_INVALID_STATE: the manager was closed under us (cannot happen
                        // through this binding); anything else is unexpected. Either way, the
                        // waiters learn it and the thread ends.
                        FailWaiters(NativeMethods.Error(hr));
                        break;
                    }
                    if (sinceCheck.ElapsedMilliseconds >= RecheckMs)
                    {
                        sinceCheck.Restart();
                        Recheck();
                    }
                }
            }
            catch (ObjectDisposedException)
            {
                // The handle was closed by a Dispose racing with the loop's check.
            }
            finally
            {
                if (stopping)
                    FailWaiters(new BitsInvalidStateException("the job's manager was disposed"));
            }
        }

        /// <summary>Completes the waiters of the event's job if its state ends a wait.</summary>
        private void Complete(JobEventArgs e)
        {
            if (!Job.EndsWait(e.State))
                return;
            Waiter[] all = Snapshot();
            if (all == null)
                return;
            foreach (Waiter w in all)
                if (w.JobId == e.JobId)
                    w.TrySet(e.State);
        }

        /// <summary>
        /// Reads the state of every waited job once a second: a safety net for a state change
        /// without an event (the queue promises one, this costs one call per waiter).
        /// </summary>
        private void Recheck()
        {
            Waiter[] all = Snapshot();
            if (all == null)
                return;
            foreach (Waiter w in all)
                w.Check();
        }

        /// <summary>One Job.WaitAsync call.</summary>
        internal sealed class Waiter
        {
            private readonly EventPump pump;
            private readonly Job job; // keeps the job (and so its manager) alive while awaited
            private readonly TaskCompletionSource<JobState> tcs =
                new TaskCompletionSource<JobState>(TaskCreationOptions.RunContinuationsAsynchronously);
            private Timer timer;
            private CancellationTokenRegistration registration;
            private int done;

            internal Waiter(EventPump pump, Job job)
            {
                this.pump = pump;
                this.job = job;
            }

            internal Guid JobId { get { return job.Id; } }
            internal Task<JobState> Task { get { return tcs.Task; } }

            internal void SetTimeout(TimeSpan timeout)
            {
                lock (this)
                {
                    if (done != 0) return;
                    timer = new Timer(_ => TryFail(new BitsTimeoutException(
                        string.Format("the job did not end within {0}", timeout))), null, timeout, Timeout.InfiniteTimeSpan);
                }
            }

            internal void SetCancellation(CancellationToken ct)
            {
                CancellationTokenRegistration r = ct.Register(() => End(() => tcs.TrySetCanceled(ct)));
                lock (this)
                {
                    if (done == 0)
                    {
                        registration = r;
                        return;
                    }
                }
                r.Dispose();
            }

            /// <summary>Reads the job's state; completes if it ends a wait.</summary>
            internal void Check()
            {
                try
                {
                    JobState s = job.State;
                    if (Job.EndsWait(s))
                        TrySet(s);
                }
                catch (Exception e)
                {
                    TryFail(e);
                }
            }

            internal void TrySet(JobState s) { End(() => tcs.TrySetResult(s)); }

            internal void TryFail(Exception e) { End(() => tcs.TrySetException(e)); }

            private void End(Action complete)
            {
                Timer t;
                CancellationTokenRegistration r;
                lock (this)
                {
                    if (done != 0) return;
                    done = 1;
                    t = timer;
                    r = registration;
                    timer = null;
                    registration = default(CancellationTokenRegistration);
                }
                pump.Remove(this);
                if (t != null) t.Dispose();
                r.Dispose();
                complete();
            }
        }
    }
}
