// A small test runner: every method marked [Test] in the assembly runs on a thread of its own
// with a time limit, in source order; failures are counted and printed, and the exit code is the
// number of failures (capped at 100). Usage: OpenBits.Tests.exe [--server PATH] [NAME-SUBSTRING...]

using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Reflection;
using System.Threading;

namespace OpenBits.Tests
{
    [AttributeUsage(AttributeTargets.Method)]
    public sealed class TestAttribute : Attribute
    {
        /// <summary>Seconds before the test counts as hung.</summary>
        public int TimeoutSeconds = 60;
    }

    public sealed class AssertionException : Exception
    {
        public AssertionException(string message) : base(message) { }
    }

    public static class Assert
    {
        public static void True(bool condition, string what)
        {
            if (!condition) throw new AssertionException(what);
        }

        public static void Equal<T>(T expected, T actual, string what)
        {
            if (!EqualityComparer<T>.Default.Equals(expected, actual))
                throw new AssertionException(string.Format("{0}: expected <{1}>, got <{2}>", what, expected, actual));
        }

        public static void HResult(int expected, int actual, string what)
        {
            if (expected != actual)
                throw new AssertionException(string.Format("{0}: expected HRESULT 0x{1:X8}, got 0x{2:X8}", what, expected, actual));
        }

        public static TEx Throws<TEx>(Action action, string what) where TEx : Exception
        {
            try
            {
                action();
            }
            catch (TEx e)
            {
                return e;
            }
            catch (Exception e)
            {
                throw new AssertionException(string.Format("{0}: expected {1}, got {2}: {3}", what, typeof(TEx).Name, e.GetType().Name, e.Message));
            }
            throw new AssertionException(string.Format("{0}: expected {1}, nothing was thrown", what, typeof(TEx).Name));
        }
    }

    public static class Runner
    {
        public static int Main(string[] args)
        {
            if (args.Length > 0 && args[0] == "--child-callback-throws")
                return Tests.ChildCallbackThrows(args[1], args[2]);
            var filters = new List<string>();
            for (int i = 0; i < args.Length; i++)
            {
                if (args[i] == "--server" && i + 1 < args.Length)
                    TestServer.BinaryPath = args[++i];
                else
                    filters.Add(args[i]);
            }
            var tests = typeof(Runner).Assembly.GetTypes()
                .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.Static))
                .Where(m => m.GetCustomAttributes(typeof(TestAttribute), false).Length > 0)
                .OrderBy(m => m.MetadataToken)
                .Where(m => filters.Count == 0 || filters.Any(f => m.Name.IndexOf(f, StringComparison.OrdinalIgnoreCase) >= 0))
                .ToList();
            Console.WriteLine("OpenBits tests against libopenbits {0}, {1} tests", Manager.LibraryVersion, tests.Count);
            if (tests.Count == 0)
            {
                Console.WriteLine("no test matches {0}", string.Join(" ", filters));
                return 1;
            }
            int passed = 0;
            var failed = new List<string>();
            var total = Stopwatch.StartNew();
            try
            {
                foreach (MethodInfo m in tests)
                {
                    var attr = (TestAttribute)m.GetCustomAttributes(typeof(TestAttribute), false)[0];
                    Exception error = null;
                    var sw = Stopwatch.StartNew();
                    var t = new Thread(() =>
                    {
                        try
                        {
                            m.Invoke(null, null);
                            Fixture.CheckNoLeaks();
                        }
                        catch (TargetInvocationException e)
                        {
                            error = e.InnerException;
                        }
                        catch (Exception e)
                        {
                            error = e;
                        }
                    }) { IsBackground = true, Name = m.Name };
                    t.Start();
                    if (!t.Join(TimeSpan.FromSeconds(attr.TimeoutSeconds)))
                        error = new TimeoutException(string.Format("hung for more than {0} s", attr.TimeoutSeconds));
                    if (error == null)
                    {
                        passed++;
                        Console.WriteLine("  ok    {0} ({1} ms)", m.Name, sw.ElapsedMilliseconds);
                    }
                    else
                    {
                        failed.Add(m.Name);
                        Console.WriteLine("  FAIL  {0} ({1} ms)\n        {2}", m.Name, sw.ElapsedMilliseconds,
                            error is AssertionException ? error.Message : error.ToString().Replace("\n", "\n        "));
                        if (error is TimeoutException)
                            break; // a hung test leaves threads behind: stop here
                    }
                    Fixture.ResetLeakBaseline();
                }
            }
            finally
            {
                TestServer.StopShared();
                Fixture.CleanUp();
            }
            Console.WriteLine("{0} passed, {1} failed, {2} not run ({3:F1} s){4}", passed, failed.Count,
                tests.Count - passed - failed.Count, total.Elapsed.TotalSeconds,
                failed.Count > 0 ? ": " + string.Join(", ", failed) : "");
            int rc = failed.Count > 0 || passed != tests.Count ? Math.Min(100, Math.Max(1, failed.Count)) : 0;
            // A hung test's thread may still be in native code: do not wait for it.
            Environment.Exit(rc);
            return rc;
        }
    }
}
