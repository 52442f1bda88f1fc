using System;
using System.IO;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Threading;

namespace OpenBits.Tests
{
    public static class Fixture
    {
        private static readonly string root = Path.Combine(Path.GetTempPath(), "openbits-dotnet-" + Guid.NewGuid().ToString("N").Substring(0, 8));
        private static int baseManagers, baseJobs, baseCallbacks;

        public static string TempDir(string name)
        {
            string d = Path.Combine(root, name + "-" + Guid.NewGuid().ToString("N").Substring(0, 8));
            Directory.CreateDirectory(d);
            return d;
        }

        public static void CleanUp()
        {
            try { Directory.Delete(root, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }

        /// <summary>Leak tracking: every handle a test created must have been disposed when it returns.</summary>
        public static void CheckNoLeaks()
        {
            int m = HandleCounts.Managers - baseManagers, j = HandleCounts.Jobs - baseJobs;
            if (m != 0 || j != 0)
                throw new AssertionException(string.Format("handles not disposed: {0} manager(s), {1} job(s)", m, j));
            // The library frees a callback's user data on the notification thread: give it a moment.
            if (!Eventually(() => HandleCounts.Callbacks == baseCallbacks, TimeSpan.FromSeconds(5)))
                throw new AssertionException(string.Format("{0} callback registration(s) not freed by the library", HandleCounts.Callbacks - baseCallbacks));
        }

        /// <summary>After each test: collect what a failed test left, so the next starts clean.</summary>
        public static void ResetLeakBaseline()
        {
            if (HandleCounts.Managers != baseManagers || HandleCounts.Jobs != baseJobs || HandleCounts.Callbacks != baseCallbacks)
                Collect();
            baseManagers = HandleCounts.Managers;
            baseJobs = HandleCounts.Jobs;
            baseCallbacks = HandleCounts.Callbacks;
        }

        public static void Collect()
        {
            for (int i = 0; i < 3; i++)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
            }
        }

        public static bool Eventually(Func<bool> condition, TimeSpan limit)
        {
            var end = DateTime.UtcNow + limit;
            while (DateTime.UtcNow < end)
            {
                if (condition())
                    return true;
                Thread.Sleep(20);
            }
            return condition();
        }

        public static void AssertFileEquals(byte[] expected, string path)
        {
            Assert.True(File.Exists(path), "file exists: " + path);
            byte[] actual = File.ReadAllBytes(path);
            Assert.Equal(expected.Length, actual.Length, "length of " + path);
            Assert.True(expected.SequenceEqual(actual), "same bytes: " + path);
        }

        public static void AssertNoTempFiles(string dir)
        {
            var left = Directory.GetFiles(dir, "BIT*.tmp");
            Assert.True(left.Length == 0, "temporary files left: " + string.Join(", ", left));
        }
    }
}
