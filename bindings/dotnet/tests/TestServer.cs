// The project's test server (tests/server: target/debug/openbits-testserver) as a child process:
// it prints "port=<P>" first, serves until its stdin closes, and takes fault-injecting query
// strings (?status=404, ?rate=B, ?fail=S:K, ...).

using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Text;

namespace OpenBits.Tests
{
    public sealed class TestServer : IDisposable
    {
        public static string BinaryPath = Environment.GetEnvironmentVariable("OPENBITS_TESTSERVER");

        private static TestServer shared;
        private static readonly object sharedLock = new object();

        private readonly Process process;
        private readonly Dictionary<string, byte[]> files = new Dictionary<string, byte[]>();
        private readonly string dir;

        public int Port { get; private set; }

        /// <summary>One server for the whole run, serving /a.bin (300 KiB), /b.bin (1 MiB), /empty.bin.</summary>
        public static TestServer Shared
        {
            get
            {
                lock (sharedLock)
                {
                    if (shared == null)
                        shared = new TestServer(new Dictionary<string, int> { { "/a.bin", 300 * 1024 }, { "/b.bin", 1024 * 1024 }, { "/empty.bin", 0 } });
                    return shared;
                }
            }
        }

        public static void StopShared()
        {
            lock (sharedLock)
            {
                if (shared != null)
                    shared.Dispose();
                shared = null;
            }
        }

        public TestServer(Dictionary<string, int> sizes)
        {
            if (string.IsNullOrEmpty(BinaryPath) || !File.Exists(BinaryPath))
                throw new InvalidOperationException("the test server binary is not set or missing (--server PATH or OPENBITS_TESTSERVER): " + BinaryPath);
            dir = Fixture.TempDir("server");
            var rng = new Random(12345);
            var args = new StringBuilder();
            foreach (var kv in sizes)
            {
                var data = new byte[kv.Value];
                rng.NextBytes(data);
                string local = Path.Combine(dir, kv.Key.TrimStart('/').Replace('/', '_'));
                File.WriteAllBytes(local, data);
                files[kv.Key] = data;
                args.AppendFormat(" --file {0}={1}", kv.Key, local);
            }
            var psi = new ProcessStartInfo(BinaryPath, args.ToString().Trim())
            {
                UseShellExecute = false,
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = false,
            };
            process = Process.Start(psi);
            string line = process.StandardOutput.ReadLine();
            if (line == null || !line.StartsWith("port="))
                throw new InvalidOperationException("the test server did not report its port: " + line);
            Port = int.Parse(line.Substring(5));
        }

        public string Url(string pathAndQuery)
        {
            return string.Format("http://127.0.0.1:{0}{1}", Port, pathAndQuery);
        }

        public byte[] Content(string path)
        {
            return files[path];
        }

        public void Dispose()
        {
            try
            {
                process.StandardInput.Close(); // the server stops at EOF on stdin
                if (!process.WaitForExit(5000))
                    process.Kill();
            }
            catch (InvalidOperationException)
            {
            }
            process.Dispose();
            try { Directory.Delete(dir, true); } catch (IOException) { }
        }
    }
}
