// openbits-server (target/debug/openbits-server, from OPENBITS_SERVER_BIN) for upload-reply jobs:
// its application is the test server's POST /_reverse, which answers each upload reversed. It
// prints "listening on http://ADDR:PORT" first and stops on SIGTERM (Process.Kill here).

using System;
using System.Diagnostics;
using System.IO;

namespace OpenBits.Tests
{
    public sealed class ReplyServer : IDisposable
    {
        private readonly Process process;
        private readonly string dir;

        public string BaseUrl { get; private set; }

        public ReplyServer(TestServer app)
        {
            string binary = Environment.GetEnvironmentVariable("OPENBITS_SERVER_BIN");
            if (string.IsNullOrEmpty(binary) || !File.Exists(binary))
                throw new InvalidOperationException("OPENBITS_SERVER_BIN does not name openbits-server: " + binary);
            dir = Fixture.TempDir("uploads");
            var psi = new ProcessStartInfo(binary, string.Format(
                "--listen 127.0.0.1:0 --root {0} --notify-type by-value --notify-url {1}", dir, app.Url("/_reverse")))
            {
                UseShellExecute = false,
                RedirectStandardOutput = true,
            };
            process = Process.Start(psi);
            string line = process.StandardOutput.ReadLine();
            if (line == null || !line.StartsWith("listening on "))
                throw new InvalidOperationException("openbits-server did not start: " + line);
            BaseUrl = line.Substring("listening on ".Length);
        }

        public void Dispose()
        {
            try
            {
                process.Kill();
                process.WaitForExit(5000);
            }
            catch (InvalidOperationException)
            {
            }
            process.Dispose();
            try { Directory.Delete(dir, true); } catch (IOException) { }
        }
    }
}
