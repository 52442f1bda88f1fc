// The binding's tests, against the real libopenbits and the project's test server.

using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace OpenBits.Tests
{
    public static class Tests
    {
        private static TestServer Server { get { return TestServer.Shared; } }

        [DllImport("openbits", CallingConvention = CallingConvention.Cdecl)]
        private static extern int bits_guid_to_string(ref Guid id, byte[] buffer, UIntPtr bufferLen);

        [DllImport("openbits", CallingConvention = CallingConvention.Cdecl)]
        private static extern int bits_guid_from_string(byte[] text, out Guid id);

        // ---- basics ----

        [Test]
        public static void VersionMatches()
        {
            string expected = NativeMethods.ExpectedMajor + "." + NativeMethods.ExpectedMinor + ".";
            Assert.True(Manager.LibraryVersion.StartsWith(expected), "version " + expected + "x: " + Manager.LibraryVersion);
        }

        [Test]
        public static void GuidHasTheLayoutOfBitsGuid()
        {
            var id = new Guid("00112233-4455-6677-8899-aabbccddeeff");
            var buf = new byte[39];
            Assert.HResult(0, bits_guid_to_string(ref id, buf, (UIntPtr)buf.Length), "bits_guid_to_string");
            Assert.Equal("{00112233-4455-6677-8899-AABBCCDDEEFF}", Encoding.ASCII.GetString(buf, 0, 38), "formatted by the library");
            Guid back;
            Assert.HResult(0, bits_guid_from_string(Encoding.ASCII.GetBytes("{00112233-4455-6677-8899-aabbccddeeff}\0"), out back), "bits_guid_from_string");
            Assert.Equal(id, back, "parsed by the library");
            using (var m = new Manager(Fixture.TempDir("guid")))
            using (var job = m.CreateJob("guid"))
            {
                Assert.True(job.Id != Guid.Empty, "a new id");
                Guid copy = job.Id;
                bits_guid_to_string(ref copy, buf, (UIntPtr)buf.Length);
                Assert.Equal(job.Id.ToString("B").ToUpperInvariant(), Encoding.ASCII.GetString(buf, 0, 38), "job id formatted alike");
                using (var again = m.GetJob(job.Id))
                    Assert.Equal(job.Id, again.Id, "GetJob finds it by System.Guid");
            }
        }

        [Test]
        public static void UploadReplyBringsBackTheAnswer()
        {
            string dir = Fixture.TempDir("upload-reply");
            byte[] question = new byte[200 * 1024];
            new Random(7).NextBytes(question);
            string source = Path.Combine(dir, "question.bin");
            File.WriteAllBytes(source, question);
            string answer = Path.Combine(dir, "answer.bin");
            using (var server = new ReplyServer(Server))
            using (var m = new Manager(Path.Combine(dir, "state")))
            using (var job = m.CreateJob("ask", JobType.UploadReply))
            {
                Assert.True(job.ReplyFileName == null, "no file, no reply file name");
                job.AddFile(server.BaseUrl + "/ask/question.bin", source);
                var e = Assert.Throws<BitsException>(() => job.AddFile(server.BaseUrl + "/other.bin", source), "a second file");
                Assert.HResult(HResults.E_TooManyFiles, e.HResult, "HResult");
                job.ReplyFileName = answer;
                Assert.Equal(answer, job.ReplyFileName, "reply file name");
                Assert.True(!job.ReplyProgress.IsTotalKnown, "reply size unknown before the transfer");
                job.Resume();
                Assert.Equal(JobState.Transferred, job.Wait(TimeSpan.FromSeconds(60)), "wait");
                Assert.Equal((ulong)question.Length, job.ReplyProgress.BytesTotal, "reply size");
                byte[] reply = job.ReplyData;
                Array.Reverse(reply);
                Assert.True(reply.Length == question.Length && Convert.ToBase64String(reply) == Convert.ToBase64String(question), "the reply is the upload reversed");
                Assert.True(!File.Exists(answer), "the reply file appears at Complete");
                Assert.True(job.Complete(), "Complete");
            }
            byte[] kept = File.ReadAllBytes(answer);
            Array.Reverse(kept);
            Assert.True(Convert.ToBase64String(kept) == Convert.ToBase64String(question), "the reply file");
        }

        [Test]
        public static void DownloadByteForByte()
        {
            string dir = Fixture.TempDir("download");
            string dest = Path.Combine(dir, "a.bin");
            using (var m = new Manager(Path.Combine(dir, "state")))
            using (var job = m.CreateJob("download", JobType.Download))
            {
                Assert.Equal(JobState.Suspended, job.State, "a new job");
                Assert.True(job.Error == null, "no error in SUSPENDED");
                job.AddFile(Server.Url("/a.bin"), dest);
                Assert.Equal(1, job.Progress.FilesTotal, "files total");
                job.Resume();
                Assert.Equal(JobState.Transferred, job.Wait(TimeSpan.FromSeconds(30)), "wait");
                JobProgress p = job.Progress;
                Assert.Equal((ulong)Server.Content("/a.bin").Length, p.BytesTotal, "bytes total");
                Assert.Equal(p.BytesTotal, p.BytesTransferred, "bytes transferred");
                Assert.Equal(1, p.FilesTransferred, "files transferred");
                Assert.Equal(1.0, p.Fraction.Value, "fraction");
                Assert.True(!File.Exists(dest), "nothing at the destination before Complete");
                Assert.True(job.Complete(), "Complete: every file landed");
                Assert.Equal(JobState.Acknowledged, job.State, "after Complete");
            }
            Fixture.AssertFileEquals(Server.Content("/a.bin"), dest);
            Fixture.AssertNoTempFiles(dir);
        }

        // Against the HTTPS server test.sh starts (tests/server/start_tls.sh: openssl-made certificates).
        [Test]
        public static void TlsTrustedRootsCallbackClientCertificateAndWriteOnlyHeaders()
        {
            string url = Environment.GetEnvironmentVariable("OPENBITS_TEST_TLS_URL");
            string pki = Environment.GetEnvironmentVariable("OPENBITS_TEST_TLS_DIR");
            string served = Environment.GetEnvironmentVariable("OPENBITS_TEST_TLS_FILE");
            Assert.True(url != null && pki != null && served != null,
                        "OPENBITS_TEST_TLS_URL, _DIR and _FILE are set (bindings/dotnet/test.sh starts the TLS server)");
            string dir = Fixture.TempDir("tls");
            using (var m = new Manager(Path.Combine(dir, "state")))
            {
                using (var untrusted = m.CreateJob("platform roots"))
                {
                    untrusted.AddFile(url + "/tls.bin", Path.Combine(dir, "untrusted.bin"));
                    untrusted.Resume();
                    Assert.Equal(JobState.Error, untrusted.Wait(TimeSpan.FromSeconds(30)), "untrusted root");
                    Assert.HResult(unchecked((int)0x80072F0D), untrusted.Error.Code, "ERROR_INTERNET_INVALID_CA");
                    untrusted.Cancel();
                }
                string host = null;
                int chainLength = 0;
                string dest = Path.Combine(dir, "tls.bin");
                using (var job = m.CreateJob("own roots"))
                {
                    job.SetTrustedRoots(Path.Combine(pki, "ca.pem"));
                    job.CustomHeaders = "Authorization: Bearer dotnet-t0k3n\r\n";
                    Assert.Equal("Authorization: Bearer dotnet-t0k3n\r\n", job.CustomHeaders, "readable before");
                    job.MakeCustomHeadersWriteOnly();
                    var e = Assert.Throws<BitsException>(() => { string h = job.CustomHeaders; }, "write-only");
                    Assert.HResult(HResults.E_AccessDenied, e.HResult, "write-only code");
                    job.SetServerCertificateCallback((j, h, chain, libraryResult) =>
                    {
                        host = h;
                        chainLength = chain.Length;
                        return libraryResult;
                    });
                    job.AddFile(url + "/tls.bin", dest);
                    job.Resume();
                    Assert.Equal(JobState.Transferred, job.Wait(TimeSpan.FromSeconds(30)), "own roots");
                    Assert.True(job.Complete(), "complete");
                }
                Fixture.AssertFileEquals(File.ReadAllBytes(served), dest);
                Assert.Equal("localhost", host, "the callback's host");
                Assert.True(chainLength >= 1, "the callback's chain");

                using (var refused = m.CreateJob("refused"))
                {
                    refused.SetTrustedRoots(Path.Combine(pki, "ca.pem"));
                    refused.SetServerCertificateCallback((j, h, chain, r) => { throw new InvalidOperationException("no"); });
                    refused.AddFile(url + "/tls.bin", Path.Combine(dir, "refused.bin"));
                    refused.Resume();
                    var deadline = DateTime.UtcNow.AddSeconds(30);
                    while (refused.State != JobState.TransientError && DateTime.UtcNow < deadline)
                        Thread.Sleep(5);
                    Assert.Equal(JobState.TransientError, refused.State, "an exception refuses");
                    Assert.Equal(ErrorContext.ServerCertificateCallback, refused.Error.Context, "context");
                    Assert.HResult(HResults.E_Unexpected, refused.Error.Code, "code");
                    refused.Cancel();
                }

                using (var client = m.CreateJob("client certificate"))
                {
                    Assert.True(client.ClientCertificateFile == null, "none yet");
                    client.SetClientCertificateFile(Path.Combine(pki, "client.pem"), Path.Combine(pki, "client.key"));
                    Assert.Equal(Path.Combine(pki, "client.pem"), client.ClientCertificateFile, "set");
                    Assert.True(client.RemoveClientCertificate(), "removed");
                    Assert.True(!client.RemoveClientCertificate(), "none to remove");
                    client.Cancel();
                }
            }
        }

        [Test]
        public static void SeveralFilesUtf8NamesAndRelativePath()
        {
            string dir = Fixture.TempDir("utf8");
            string name = "données-日本-✓.bin";
            string saved = Environment.CurrentDirectory;
            using (var m = new Manager(Path.Combine(dir, "state")))
            using (var job = m.CreateJob("Téléchargement ✓ 日本"))
            {
                job.AddFile(Server.Url("/b.bin"), Path.Combine(dir, name));
                Environment.CurrentDirectory = dir;
                try
                {
                    job.AddFile(Server.Url("/empty.bin"), "empty.bin"); // relative: from the current directory
                }
                finally
                {
                    Environment.CurrentDirectory = saved;
                }
                job.Resume();
                Assert.Equal(JobState.Transferred, job.Wait(TimeSpan.FromSeconds(30)), "wait");
                Assert.Equal(2, job.Progress.FilesTransferred, "files transferred");
                Assert.True(job.Complete(), "complete");
            }
            Fixture.AssertFileEquals(Server.Content("/b.bin"), Path.Combine(dir, name));
            Fixture.AssertFileEquals(new byte[0], Path.Combine(dir, "empty.bin"));
        }

        [Test]
        public static void TransientErrorRetries()
        {
            string dir = Fixture.TempDir("retry");
            using (var m = new Manager(Path.Combine(dir, "state")))
            using (var job = m.CreateJob("retry"))
            {
                job.MinimumRetryDelay = TimeSpan.Zero;
                job.NoProgressTimeout = TimeSpan.FromMinutes(5);
                job.AddFile(Server.Url("/a.bin?fail=503:1&n=" + Guid.NewGuid().ToString("N")), Path.Combine(dir, "a.bin"));
                job.Resume();
                Assert.Equal(JobState.Transferred, job.Wait(TimeSpan.FromSeconds(30)), "after one 503 and a retry");
                Assert.True(job.Complete(), "complete");
            }
            Fixture.AssertFileEquals(Server.Content("/a.bin"), Path.Combine(dir, "a.bin"));
        }

        [Test]
        public static void RateLimitsAndNetworkCost()
        {
            string dir = Fixture.TempDir("manners");
            using (var m = new Manager(Path.Combine(dir, "state")))
            {
                Assert.True(m.MaxBandwidth == 0, "no manager limit by default");
                m.MaxBandwidth = 2000000;
                Assert.True(m.MaxBandwidth == 2000000, "manager limit");
                Assert.True(m.NetworkCost == CostState.Unrestricted, "unrestricted by default");
                using (var job = m.CreateJob("picky"))
                {
                    Assert.True(job.TransferPolicy == TransferPolicy.Always, "default policy");
                    job.MaxBandwidth = 1000000;
                    Assert.True(job.MaxBandwidth == 1000000, "job limit");
                    job.TransferPolicy = TransferPolicy.NotRoaming;
                    m.NetworkCost = CostState.Roaming;
                    job.AddFile(Server.Url("/a.bin?n=" + Guid.NewGuid().ToString("N")), Path.Combine(dir, "a.bin"));
                    job.Resume();
                    DateTime end = DateTime.UtcNow.AddSeconds(20);
                    while (job.State != JobState.TransientError && DateTime.UtcNow < end)
                        Thread.Sleep(5);
                    Assert.Equal(JobState.TransientError, job.State, "blocked while roaming");
                    Assert.HResult(HResults.E_BlockedByCostTransferPolicy, job.Error.Code, "error code");
                    m.NetworkCost = CostState.Unrestricted;
                    Assert.Equal(JobState.Transferred, job.Wait(TimeSpan.FromSeconds(30)), "after the cost allows it");
                    Assert.True(job.Complete(), "complete");
                }
            }
            Fixture.AssertFileEquals(Server.Content("/a.bin"), Path.Combine(dir, "a.bin"));
            using (var m = new Manager(Path.Combine(dir, "state")))
            {
                Assert.True(m.MaxBandwidth == 2000000, "the manager limit is kept");
                Assert.True(m.BandwidthSchedule == null, "no schedule by default");
                m.BandwidthSchedule = new BandwidthSchedule
                {
                    Work = new ScheduleWindow { Days = 0x3e, StartMinute = 480, EndMinute = 1020, Low = BandwidthSchedule.Blocked },
                    OtherNormal = 1000000,
                    Maintenance = new ScheduleWindow { Days = 1, StartMinute = 1380, EndMinute = 60, High = 5 },
                };
                var bad = new BandwidthSchedule { Work = new ScheduleWindow { StartMinute = 2000 } };
                var e = Assert.Throws<BitsException>(() => { m.BandwidthSchedule = bad; }, "bad schedule");
                Assert.HResult(HResults.E_InvalidArg, e.HResult, "HResult");
            }
            var options = new ManagerOptions { StateDirectory = Path.Combine(dir, "state"), MaxConnectionsPerHost = 2, TimeSlice = TimeSpan.FromSeconds(5) };
            using (var m = new Manager(options))
            {
                BandwidthSchedule s = m.BandwidthSchedule;
                Assert.True(s != null && s.Work.Days == 0x3e && s.Work.Low == BandwidthSchedule.Blocked
                    && s.OtherNormal == 1000000 && s.Maintenance != null && s.Maintenance.High == 5, "the schedule is kept");
                m.BandwidthSchedule = null;
                Assert.True(m.BandwidthSchedule == null, "removed");
            }
        }

        // ---- errors ----

        [Test]
        public static void Http404IsTheJobsError()
        {
            string dir = Fixture.TempDir("404");
            using (var m = new Manager(Path.Combine(dir, "state")))
            using (var job = m.CreateJob("404"))
            {
                string url = Server.Url("/a.bin?status=404");
                job.AddFile(url, Path.Combine(dir, "x.bin"));
                job.Resume();
                Assert.Equal(JobState.Error, job.Wait(TimeSpan.FromSeconds(30)), "wait");
                JobErrorInfo e = job.Error;
                Assert.True(e != null, "an error in ERROR");
                Assert.HResult(unchecked((int)0x80190194), e.Code, "error code");
                Assert.HResult(HResults.HttpError(404), e.Code, "HttpError(404)");
                Assert.Equal((int?)404, e.HttpStatus, "HTTP status");
                Assert.Equal(ErrorContext.RemoteFile, e.Context, "context");
                Assert.True(e.Description.Contains("404"), "description names the status: " + e.Description);
                Assert.Equal((int?)0, e.FileIndex, "the error's file");
                Assert.Equal("http", e.Protocol, "protocol");
                Assert.True(!string.IsNullOrEmpty(e.ContextDescription), "context description");
                Assert.True(job.ErrorCount >= 1, "error count");
                BitsException x = e.ToException();
                Assert.HResult(e.Code, x.HResult, "ToException");
                Assert.True(job.Cancel(), "cancel");
                Assert.Equal(JobState.Cancelled, job.State, "after Cancel");
            }
            Fixture.AssertNoTempFiles(dir);
        }

        [Test]
        public static void BadArgumentsThrowWithHResultAndMessage()
        {
            string dir = Fixture.TempDir("badarg");
            using (var m = new Manager(Path.Combine(dir, "state")))
            using (var job = m.CreateJob("bad"))
            {
                var e = Assert.Throws<BitsException>(() => job.AddFile("not a url", Path.Combine(dir, "x")), "malformed URL");
                Assert.HResult(unchecked((int)0x80070057), e.HResult, "HResult");
                Assert.HResult(e.HResult, e.ErrorCode, "ErrorCode");
                Assert.True(e is ExternalException, "an ExternalException");
                Assert.True(e.LibraryMessage.Contains("bits_add_file"), "the library's message: " + e.LibraryMessage);
                Assert.True(e.Message.Contains(e.LibraryMessage) && e.Message.Contains("0x80070057"), "Message: " + e.Message);

                e = Assert.Throws<BitsException>(() => job.AddFile("ftp://example.com/x", Path.Combine(dir, "x")), "unsupported scheme");
                Assert.HResult(HResults.E_InvalidArg, e.HResult, "HResult");

                e = Assert.Throws<BitsException>(() => m.CreateJob(new string('n', 300)), "name too long");
                Assert.HResult(HResults.E_InvalidArg, e.HResult, "HResult");
                Assert.True(e.LibraryMessage.Length > 0, "message");

                e = Assert.Throws<BitsException>(() => job.AddFile(Server.Url("/a.bin"), Path.Combine(dir, "missing", "x")), "missing folder");
                Assert.HResult(HResults.E_PathNotFound, e.HResult, "HResult");

                e = Assert.Throws<BitsException>(() => { var unused = job.ReplyData; }, "a download job has no reply");
                Assert.HResult(HResults.E_NotImpl, e.HResult, "HResult");

                e = Assert.Throws<BitsException>(() => job.Resume(), "resume without files");
                Assert.HResult(HResults.E_Empty, e.HResult, "HResult");

                // Checked before the call, in .NET's own terms (ArgumentException's HResult is E_INVALIDARG too).
                var a = Assert.Throws<ArgumentException>(() => job.AddFile(Server.Url("/a.bin") + "\0x", Path.Combine(dir, "x")), "NUL in a string");
                Assert.HResult(HResults.E_InvalidArg, a.HResult, "ArgumentException's HResult");
                Assert.Throws<ArgumentException>(() => m.CreateJob("lone \ud800 surrogate"), "invalid UTF-16");
                Assert.Throws<ArgumentNullException>(() => job.AddFile(null, "x"), "null URL");
                Assert.Throws<ArgumentOutOfRangeException>(() => job.MinimumRetryDelay = TimeSpan.FromSeconds(-1), "negative delay");
                Assert.Throws<ArgumentOutOfRangeException>(() => job.Wait(TimeSpan.FromSeconds(-2)), "negative timeout");
            }
        }

        [Test]
        public static void CompleteTwiceIsInvalidState()
        {
            string dir = Fixture.TempDir("twice");
            using (var m = new Manager(Path.Combine(dir, "state")))
            using (var job = m.CreateJob("twice"))
            {
                job.AddFile(Server.Url("/a.bin"), Path.Combine(dir, "a.bin"));
                job.Resume();
                job.Wait(TimeSpan.FromSeconds(30));
                Assert.True(job.Complete(), "first Complete");
                var e = Assert.Throws<BitsInvalidStateException>(() => job.Complete(), "second Complete");
                Assert.HResult(unchecked((int)0x80200002), e.HResult, "HResult");
                Assert.True(e.IsInvalidState && !e.IsNotFound, "IsInvalidState");
                Assert.True(e.LibraryMessage.Length > 0, "message");
                Assert.Throws<BitsInvalidStateException>(() => job.Cancel(), "Cancel after Complete");
                Assert.Throws<BitsNotFoundException>(() => m.GetJob(job.Id).Dispose(), "an acknowledged job leaves the queue");
            }
        }

        [Test]
        public static void PartialCompleteReturnsFalse()
        {
            string dir = Fixture.TempDir("partial");
            using (var m = new Manager(Path.Combine(dir, "state")))
            using (var job = m.CreateJob("partial"))
            {
                job.AddFile(Server.Url("/a.bin"), Path.Combine(dir, "a.bin"));
                Assert.True(!job.Complete(), "Complete of a SUSPENDED job is BITS_S_PARTIAL_COMPLETE");
                Assert.Equal(JobState.Acknowledged, job.State, "state");
            }
            Assert.True(!File.Exists(Path.Combine(dir, "a.bin")), "no file");
            Fixture.AssertNoTempFiles(dir);
        }

        [Test]
        public static void NotFoundAndTryGetJob()
        {
            using (var m = new Manager(Fixture.TempDir("notfound")))
            {
                var e = Assert.Throws<BitsNotFoundException>(() => m.GetJob(Guid.NewGuid()), "GetJob of an unknown id");
                Assert.HResult(unchecked((int)0x80200001), e.HResult, "HResult");
                Assert.True(e.IsNotFound, "IsNotFound");
                Job j;
                Assert.True(!m.TryGetJob(Guid.NewGuid(), out j) && j == null, "TryGetJob");
            }
        }

        [Test]
        public static void WaitTimesOut()
        {
            string dir = Fixture.TempDir("timeout");
            using (var m = new Manager(Path.Combine(dir, "state")))
            using (var job = m.CreateJob("slow"))
            {
                job.AddFile(Server.Url("/b.bin?rate=20000"), Path.Combine(dir, "b.bin"));
                job.Resume();
                var e = Assert.Throws<BitsTimeoutException>(() => job.Wait(TimeSpan.FromMilliseconds(300)), "Wait");
                Assert.HResult(unchecked((int)0x800705B4), e.HResult, "HResult");
                Assert.True(job.Cancel(), "cancel");
                Assert.Throws<BitsNotFoundException>(() => m.GetJob(job.Id), "a cancelled job leaves the queue");
            }
            Fixture.AssertNoTempFiles(dir);
        }

        [Test]
        public static void SecondManagerOnAFolderIsRefused()
        {
            string dir = Fixture.TempDir("lock");
            using (new Manager(dir))
            {
                var e = Assert.Throws<BitsException>(() => new Manager(dir).Dispose(), "second open");
                Assert.HResult(HResults.E_SharingViolation, e.HResult, "HResult");
            }
            using (new Manager(dir)) { } // free again
        }

        [Test]
        public static void EnumerationAndReopen()
        {
            string dir = Fixture.TempDir("enum");
            var ids = new List<Guid>();
            using (var m = new Manager(new ManagerOptions { StateDirectory = dir, MaxConcurrentJobs = 2, CheckpointInterval = TimeSpan.FromMilliseconds(500) }))
            {
                for (int i = 0; i < 3; i++)
                    using (var j = m.CreateJob("job " + i))
                    {
                        j.AddFile(Server.Url("/a.bin"), Path.Combine(dir, "f" + i));
                        ids.Add(j.Id);
                    }
                Assert.True(ids.SequenceEqual(m.JobIds), "JobIds in creation order");
                using (var j = m.GetJob(ids[1]))
                    j.Cancel();
                var jobs = m.Jobs;
                try
                {
                    Assert.True(jobs.Select(j => j.Id).SequenceEqual(new[] { ids[0], ids[2] }), "Jobs without the cancelled one");
                    Assert.True(jobs.All(j => j.State == JobState.Suspended), "all suspended");
                }
                finally
                {
                    foreach (var j in jobs) j.Dispose();
                }
            }
            using (var m = new Manager(dir))
            {
                Assert.True(new[] { ids[0], ids[2] }.SequenceEqual(m.JobIds), "the jobs survive a reopen");
                using (var j = m.GetJob(ids[2]))
                {
                    Assert.Equal(JobState.Suspended, j.State, "state after reopen");
                    Assert.Equal(1, j.Progress.FilesTotal, "its file");
                    j.Cancel();
                }
                using (var j = m.GetJob(ids[0]))
                    j.Cancel();
                Assert.Equal(0, m.JobIds.Count, "empty");
            }
        }

        // ---- properties, files, owners and limits ----

        [Test]
        public static void JobProperties()
        {
            string dir = Fixture.TempDir("props");
            DateTimeOffset before = DateTimeOffset.UtcNow.AddSeconds(-2);
            using (var m = new Manager(new ManagerOptions { StateDirectory = Path.Combine(dir, "state"), Owner = "alice" }))
            using (var job = m.CreateJob("props"))
            {
                Assert.Equal("props", job.DisplayName, "display name");
                job.DisplayName = "Téléchargement ✓ 日本";
                Assert.Equal("Téléchargement ✓ 日本", job.DisplayName, "UTF-8 display name round trip");
                Assert.Equal("", job.Description, "description by default");
                job.Description = "une description";
                Assert.Equal("une description", job.Description, "description");
                Assert.Equal("alice", job.Owner, "owner from the options");
                Assert.Equal(JobType.Download, job.Type, "type");
                Assert.Equal(JobPriority.Normal, job.Priority, "default priority");
                job.Priority = JobPriority.High;
                Assert.Equal(JobPriority.High, job.Priority, "priority");
                Assert.Equal(NotifyFlags.JobTransferred | NotifyFlags.JobError, job.NotifyFlags, "default notify flags");
                job.NotifyFlags = NotifyFlags.JobModification;
                Assert.Equal(NotifyFlags.JobModification, job.NotifyFlags, "notify flags");
                Assert.Equal(TimeSpan.FromSeconds(600), job.MinimumRetryDelay, "default retry delay");
                job.MinimumRetryDelay = TimeSpan.FromMilliseconds(1500);
                Assert.Equal(TimeSpan.FromSeconds(2), job.MinimumRetryDelay, "rounded up to whole seconds");
                Assert.Equal(TimeSpan.FromSeconds(1209600), job.NoProgressTimeout, "default no-progress timeout");
                job.NoProgressTimeout = TimeSpan.FromMinutes(1);
                Assert.Equal(TimeSpan.FromMinutes(1), job.NoProgressTimeout, "no-progress timeout");
                Assert.Equal(TimeSpan.FromMilliseconds(500), job.MinimumNotificationInterval, "default notification interval");
                job.MinimumNotificationInterval = TimeSpan.FromMilliseconds(100);
                Assert.Equal(TimeSpan.FromMilliseconds(100), job.MinimumNotificationInterval, "notification interval");
                JobTimes t = job.Times;
                Assert.True(t.Creation >= before && t.Creation <= DateTimeOffset.UtcNow.AddSeconds(2), "creation time: " + t.Creation);
                Assert.True(t.TransferCompletion == null, "not transferred yet");
                Assert.Equal(0, job.ErrorCount, "no error yet");

                var e = Assert.Throws<BitsException>(() => job.Priority = (JobPriority)9, "undefined priority");
                Assert.HResult(HResults.E_NotImpl, e.HResult, "as BITS: E_NOTIMPL");
                e = Assert.Throws<BitsException>(() => job.DisplayName = new string('x', 300), "name too long");
                Assert.HResult(HResults.E_InvalidArg, e.HResult, "HResult");

                job.AddFile(Server.Url("/a.bin"), Path.Combine(dir, "a.bin"));
                job.Resume();
                job.Wait(TimeSpan.FromSeconds(30));
                Assert.True(job.Times.TransferCompletion.HasValue, "transfer completion time");
                job.Complete();
            }
        }

        [Test]
        public static void FilesAndFileSets()
        {
            string dir = Fixture.TempDir("files");
            using (var m = new Manager(Path.Combine(dir, "state")))
            using (var job = m.CreateJob("files"))
            {
                job.AddFiles(new[]
                {
                    new BitsFileInfo(Server.Url("/a.bin"), Path.Combine(dir, "a.bin")),
                    new BitsFileInfo(Server.Url("/nothing-here.bin"), Path.Combine(dir, "b.bin")),
                });
                Assert.Equal(2, job.FileCount, "two files added at once");
                var e = Assert.Throws<BitsException>(() => job.AddFiles(new[]
                {
                    new BitsFileInfo(Server.Url("/empty.bin"), Path.Combine(dir, "c.bin")),
                    new BitsFileInfo("not a url", Path.Combine(dir, "d.bin")),
                }), "a set with a bad URL");
                Assert.HResult(HResults.E_InvalidArg, e.HResult, "HResult");
                Assert.Equal(2, job.FileCount, "all or none: nothing added");
                job.AddFiles(new BitsFileInfo[0]);

                IReadOnlyList<JobFile> files = job.Files;
                Assert.Equal(Server.Url("/nothing-here.bin"), files[1].RemoteUrl, "remote URL");
                Assert.Equal(Path.Combine(dir, "b.bin"), files[1].LocalPath, "local path");
                Assert.True(files[1].TemporaryPath == null, "no temporary file before the transfer");
                Assert.True(!files[1].Progress.IsTotalKnown && !files[1].Progress.IsCompleted, "no progress yet");

                string prefix = string.Format("http://127.0.0.1:{0}/", Server.Port);
                Assert.True(!job.ReplaceRemotePrefix("http://elsewhere.example/", "http://x/"), "no URL with that prefix");
                Assert.True(job.ReplaceRemotePrefix(prefix + "nothing", prefix + "b"), "prefix replaced");
                Assert.Equal(Server.Url("/b-here.bin"), job.GetFile(1).RemoteUrl, "new URL");
                job.SetRemoteUrl(1, Server.Url("/b.bin"));
                Assert.Equal(Server.Url("/b.bin"), job.GetFile(1).RemoteUrl, "SetRemoteUrl");
                e = Assert.Throws<BitsException>(() => job.SetRemoteUrl(5, Server.Url("/b.bin")), "index out of range");
                Assert.HResult(HResults.E_InvalidArg, e.HResult, "HResult");
                Assert.Throws<BitsException>(() => job.GetFile(2), "GetFile out of range");

                job.Resume();
                Assert.Equal(JobState.Transferred, job.Wait(TimeSpan.FromSeconds(30)), "wait");
                files = job.Files;
                Assert.True(files.All(f => f.Progress.IsCompleted && f.Progress.BytesTransferred == f.Progress.BytesTotal), "every file complete");
                Assert.Equal((ulong)Server.Content("/b.bin").Length, files[1].Progress.BytesTotal, "size of file 1");
                Assert.True(files[0].TemporaryPath != null && Path.GetFileName(files[0].TemporaryPath).StartsWith("BIT"), "temporary name: " + files[0].TemporaryPath);
                Assert.True(job.Complete(), "complete");
            }
            Fixture.AssertFileEquals(Server.Content("/a.bin"), Path.Combine(dir, "a.bin"));
            Fixture.AssertFileEquals(Server.Content("/b.bin"), Path.Combine(dir, "b.bin"));
        }

        [Test]
        public static void OwnersAndLimits()
        {
            string dir = Fixture.TempDir("owners");
            Guid aliceJob;
            using (var m = new Manager(new ManagerOptions { StateDirectory = dir, Owner = "alice", MaxJobsPerOwner = 2, MaxFilesPerJob = 1 }))
            {
                using (var a = m.CreateJob("a"))
                {
                    aliceJob = a.Id;
                    a.AddFile(Server.Url("/a.bin"), Path.Combine(dir, "a.bin"));
                    var e = Assert.Throws<BitsException>(() => a.AddFile(Server.Url("/b.bin"), Path.Combine(dir, "b.bin")), "a second file");
                    Assert.HResult(HResults.E_TooManyFilesInJob, e.HResult, "MaxFilesPerJob");
                }
                m.CreateJob("b").Dispose();
                var x = Assert.Throws<BitsException>(() => m.CreateJob("c"), "a third job");
                Assert.HResult(HResults.E_TooManyJobsPerUser, x.HResult, "MaxJobsPerOwner");
                x = Assert.Throws<BitsException>(() => m.GetJobIds(true), "all owners without service mode");
                Assert.HResult(HResults.E_AccessDenied, x.HResult, "HResult");
            }
            using (var m = new Manager(new ManagerOptions { StateDirectory = dir, Owner = "bob" }))
            {
                Assert.Equal(0, m.JobIds.Count, "bob sees none of alice's jobs");
                var e = Assert.Throws<BitsException>(() => m.GetJob(aliceJob), "another owner's job");
                Assert.HResult(HResults.E_AccessDenied, e.HResult, "HResult");
            }
            using (var m = new Manager(new ManagerOptions { StateDirectory = dir, Owner = "service", ServiceMode = true }))
            {
                Assert.Equal(2, m.GetJobIds(true).Count, "service mode sees every owner's jobs");
                using (var j = m.GetJob(aliceJob))
                {
                    Assert.Equal("alice", j.Owner, "owner");
                    j.TakeOwnership();
                    Assert.Equal("service", j.Owner, "after TakeOwnership");
                }
            }
        }

        [Test]
        public static void ErrorDescriptions()
        {
            string text = HResults.Describe(HResults.E_NotFound);
            Assert.True(text.Contains("not found"), "description of BITS_E_NOT_FOUND: " + text);
            Assert.True(HResults.Describe(unchecked((int)0x80190194)).Contains("404"), "HTTP 404");
            Assert.True(HResults.Describe(0x12345678).Length > 0, "unknown code");
        }

        // ---- lifetime ----

        [Test]
        public static void DisposeTwice()
        {
            var m = new Manager(Fixture.TempDir("dispose"));
            var job = m.CreateJob("d");
            job.Dispose();
            job.Dispose();
            Assert.Throws<ObjectDisposedException>(() => { var s = job.State; }, "a disposed job");
            m.Dispose();
            m.Dispose();
            Assert.True(m.IsDisposed, "IsDisposed");
            Assert.Throws<ObjectDisposedException>(() => m.CreateJob("x"), "a disposed manager");
            Assert.Throws<ObjectDisposedException>(() => { var x = m.JobIds; }, "a disposed manager");
            Assert.Throws<ObjectDisposedException>(() => m.StartEvents(), "a disposed manager");
        }

        [Test]
        public static void JobAfterItsManagerWasDisposed()
        {
            string dir = Fixture.TempDir("orphan");
            var m = new Manager(Path.Combine(dir, "state"));
            using (var job = m.CreateJob("orphan"))
            {
                job.AddFile(Server.Url("/a.bin"), Path.Combine(dir, "a.bin"));
                m.Dispose();
                var e = Assert.Throws<BitsException>(() => job.Resume(), "Resume");
                Assert.HResult(unchecked((int)0x80200002), e.HResult, "HResult");
                Assert.True(e is BitsInvalidStateException, "typed");
                Assert.Throws<BitsInvalidStateException>(() => { var s = job.State; }, "State");
                Assert.Throws<BitsInvalidStateException>(() => { var p = job.Progress; }, "Progress");
                Assert.Throws<BitsInvalidStateException>(() => job.Wait(TimeSpan.FromSeconds(1)), "Wait");
                Assert.Throws<BitsInvalidStateException>(() => job.Complete(), "Complete");
                Assert.Throws<BitsInvalidStateException>(() => job.AddFile(Server.Url("/b.bin"), Path.Combine(dir, "b.bin")), "AddFile");
                Assert.Throws<BitsInvalidStateException>(() => job.MinimumRetryDelay = TimeSpan.Zero, "setter");
            } // releasing the job after its manager: fine
        }

        [Test]
        public static void DisposeWhileAnotherThreadWaits()
        {
            string dir = Fixture.TempDir("waiting");
            var m = new Manager(Path.Combine(dir, "state"));
            using (var job = m.CreateJob("slow"))
            {
                job.AddFile(Server.Url("/b.bin?rate=20000"), Path.Combine(dir, "b.bin"));
                job.Resume();
                Exception caught = null;
                var t = new Thread(() => { try { job.Wait(); } catch (Exception e) { caught = e; } });
                t.Start();
                Thread.Sleep(300);
                m.Dispose();
                Assert.True(t.Join(TimeSpan.FromSeconds(10)), "the blocked Wait returned");
                Assert.True(caught is BitsInvalidStateException, "Wait ended with BITS_E_INVALID_STATE: " + caught);
            }
        }

        [MethodImpl(MethodImplOptions.NoInlining)]
        private static void Abandon(string dir, bool events, bool waitAsync)
        {
            var m = new Manager(dir);
            var a = m.CreateJob("abandoned a");
            a.AddFile(Server.Url("/a.bin"), Path.Combine(dir, "a.bin"));
            var b = m.CreateJob("abandoned b");
            b.AddFile(Server.Url("/b.bin?rate=100000"), Path.Combine(dir, "b.bin"));
            b.Resume();
            if (events)
                m.JobModified += (s, e) => { };
            if (waitAsync)
                a.WaitAsync(TimeSpan.FromMilliseconds(100), CancellationToken.None).ContinueWith(t => { var x = t.Exception; });
            // no Dispose: the handles' finalizers (or the event thread) must close and release them
        }

        [MethodImpl(MethodImplOptions.NoInlining)]
        private static void AbandonJobOfDisposedManager(string dir)
        {
            using (var m = new Manager(dir))
                m.CreateJob("job without Dispose");
        }

        private static bool CanOpen(string dir)
        {
            try
            {
                using (new Manager(dir)) { }
                return true;
            }
            catch (BitsException e)
            {
                if (e.HResult != HResults.E_SharingViolation)
                    throw;
                return false;
            }
        }

        [Test(TimeoutSeconds = 90)]
        public static void FinalizersCloseWhatWasNotDisposed()
        {
            int managers = HandleCounts.Managers, jobs = HandleCounts.Jobs;
            string d1 = Fixture.TempDir("fin1"), d2 = Fixture.TempDir("fin2"), d3 = Fixture.TempDir("fin3"), d4 = Fixture.TempDir("fin4");
            Abandon(d1, false, false);
            Abandon(d2, true, false);
            Abandon(d3, true, true);
            AbandonJobOfDisposedManager(d4);
            // (CanOpen is false while a manager holds the folder: SecondManagerOnAFolderIsRefused.)
            bool closed = Fixture.Eventually(() =>
            {
                Fixture.Collect();
                return CanOpen(d1) && CanOpen(d2) && CanOpen(d3);
            }, TimeSpan.FromSeconds(60));
            Assert.True(closed, "every abandoned manager was closed by the garbage collector");
            Assert.True(Fixture.Eventually(() => { Fixture.Collect(); return HandleCounts.Jobs == jobs; }, TimeSpan.FromSeconds(10)),
                string.Format("every job handle released ({0} left)", HandleCounts.Jobs - jobs));
            Assert.Equal(managers, HandleCounts.Managers, "every manager handle released");
            // The abandoned jobs are still in their folders, as after a close.
            using (var m = new Manager(d1))
                Assert.Equal(2, m.JobIds.Count, "jobs kept");
        }

        // ---- events ----

        [Test]
        public static void EventsForADownload()
        {
            string dir = Fixture.TempDir("events");
            using (var m = new Manager(Path.Combine(dir, "state")))
            using (var job = m.CreateJob("events"))
            {
                var transferred = new ManualResetEventSlim();
                var sync = new object();
                var seen = new List<JobEventArgs>();
                Guid id = job.Id;
                EventHandler<JobEventArgs> record = (s, e) =>
                {
                    Assert.True(ReferenceEquals(s, m), "sender is the manager");
                    lock (sync) seen.Add(e);
                    if (e.Kind == EventKind.JobTransferred && e.JobId == id)
                        transferred.Set();
                };
                m.JobTransferred += record;
                m.JobModified += record;
                m.FileTransferred += record;
                job.AddFile(Server.Url("/a.bin"), Path.Combine(dir, "a.bin"));
                job.AddFile(Server.Url("/empty.bin"), Path.Combine(dir, "e.bin"));
                job.Resume();
                Assert.True(transferred.Wait(TimeSpan.FromSeconds(30)), "JobTransferred raised");
                List<JobEventArgs> mine;
                lock (sync) mine = seen.Where(e => e.JobId == id).ToList();
                var t = mine.First(e => e.Kind == EventKind.JobTransferred);
                Assert.Equal(JobState.Transferred, t.State, "state of the event");
                Assert.Equal(0, t.Code, "code");
                var files = mine.Where(e => e.Kind == EventKind.FileTransferred).Select(e => e.FileIndex).ToList();
                Assert.True(files.SequenceEqual(new[] { 0, 1 }), "FileTransferred for files 0 and 1: " + string.Join(",", files));
                Assert.True(mine.Any(e => e.Kind == EventKind.JobModification), "JobModified raised");
                Assert.True(mine.IndexOf(t) > mine.FindLastIndex(e => e.Kind == EventKind.FileTransferred), "files before the job");
                m.JobModified -= record;
                job.Complete();
            }
        }

        [Test]
        public static void JobErrorEvent()
        {
            string dir = Fixture.TempDir("errevent");
            using (var m = new Manager(Path.Combine(dir, "state")))
            using (var job = m.CreateJob("error event"))
            {
                JobEventArgs got = null;
                var raised = new ManualResetEventSlim();
                m.JobError += (s, e) => { if (e.JobId == job.Id) { got = e; raised.Set(); } };
                job.AddFile(Server.Url("/a.bin?status=404"), Path.Combine(dir, "x.bin"));
                job.Resume();
                Assert.True(raised.Wait(TimeSpan.FromSeconds(30)), "JobError raised");
                Assert.Equal(EventKind.JobError, got.Kind, "kind");
                Assert.Equal(JobState.Error, got.State, "state");
                Assert.HResult(unchecked((int)0x80190194), got.Code, "code");
                job.Cancel();
            }
        }

        [Test]
        public static void HandlerExceptionsAreReported()
        {
            string dir = Fixture.TempDir("handlerex");
            using (var m = new Manager(Path.Combine(dir, "state")))
            using (var job = m.CreateJob("throwing handler"))
            {
                var failed = new ManualResetEventSlim();
                EventHandlerFailedEventArgs report = null;
                bool secondRan = false;
                m.EventHandlerFailed += (s, e) => { report = e; failed.Set(); };
                m.JobTransferred += (s, e) => { throw new InvalidOperationException("handler failed on purpose"); };
                m.JobTransferred += (s, e) => { secondRan = true; };
                job.AddFile(Server.Url("/a.bin"), Path.Combine(dir, "a.bin"));
                job.Resume();
                Assert.True(failed.Wait(TimeSpan.FromSeconds(30)), "EventHandlerFailed raised");
                Assert.Equal("handler failed on purpose", report.Exception.Message, "the exception");
                Assert.Equal(EventKind.JobTransferred, report.Event.Kind, "the event");
                Assert.True(Fixture.Eventually(() => secondRan, TimeSpan.FromSeconds(5)), "the other handler still ran");
                job.Complete();
            }
        }

        [Test]
        public static void DisposeFromAHandler()
        {
            string dir = Fixture.TempDir("disposeinhandler");
            var m = new Manager(Path.Combine(dir, "state"));
            using (var job = m.CreateJob("dispose in handler"))
            {
                var done = new ManualResetEventSlim();
                m.JobTransferred += (s, e) => { ((Manager)s).Dispose(); done.Set(); };
                job.AddFile(Server.Url("/a.bin"), Path.Combine(dir, "a.bin"));
                job.Resume();
                Assert.True(done.Wait(TimeSpan.FromSeconds(30)), "handler ran and Dispose returned (no self-join)");
                Assert.True(m.IsDisposed, "disposed");
                Assert.Throws<BitsInvalidStateException>(() => job.Complete(), "job of the closed manager");
            }
            using (var m2 = new Manager(Path.Combine(dir, "state")))
                Assert.Equal(1, m2.JobIds.Count, "the job is still there, TRANSFERRED");
        }

        // ---- push callbacks ----

        [Test]
        public static void PushCallbackCompletesTheJob()
        {
            string dir = Fixture.TempDir("callback");
            using (var m = new Manager(Path.Combine(dir, "state")))
            using (var job = m.CreateJob("callback"))
            {
                var completed = new ManualResetEventSlim();
                var kinds = new List<EventKind>();
                Job seen = null;
                int testThread = Thread.CurrentThread.ManagedThreadId, callbackThread = 0;
                job.AddFile(Server.Url("/a.bin"), Path.Combine(dir, "a.bin"));
                job.SetNotifyCallback((j, e) =>
                {
                    lock (kinds) kinds.Add(e.Kind);
                    seen = j;
                    callbackThread = Thread.CurrentThread.ManagedThreadId;
                    if (e.Kind == EventKind.JobTransferred)
                    {
                        Assert.True(j.Complete(), "Complete inside the callback");
                        completed.Set();
                    }
                }, NotifyFlags.JobTransferred | NotifyFlags.FileTransferred);
                Assert.Equal(NotifyFlags.JobTransferred | NotifyFlags.FileTransferred, job.NotifyFlags, "the flags became the job's");
                job.Resume();
                Assert.True(completed.Wait(TimeSpan.FromSeconds(30)), "the callback ran and completed the job");
                Assert.Equal(JobState.Acknowledged, job.State, "state");
                Assert.True(ReferenceEquals(seen, job), "the callback gets the registering Job object");
                Assert.True(callbackThread != testThread, "on the notification thread");
                lock (kinds)
                    Assert.True(kinds.SequenceEqual(new[] { EventKind.FileTransferred, EventKind.JobTransferred }), "events selected by the flags, in order: " + string.Join(",", kinds));
            }
            Fixture.AssertFileEquals(Server.Content("/a.bin"), Path.Combine(dir, "a.bin"));
        }

        [Test]
        public static void PushCallbackRegistrationLifetime()
        {
            string dir = Fixture.TempDir("cblife");
            using (var m = new Manager(Path.Combine(dir, "state")))
            {
                int before = HandleCounts.Callbacks;
                using (var job = m.CreateJob("lifetime"))
                {
                    job.SetNotifyCallback((j, e) => { });
                    Assert.Equal(before + 1, HandleCounts.Callbacks, "registered");
                    job.SetNotifyCallback((j, e) => { }, NotifyFlags.JobError);
                    Assert.True(Fixture.Eventually(() => HandleCounts.Callbacks == before + 1, TimeSpan.FromSeconds(5)), "the replaced one is freed");
                    job.ClearNotifyCallback();
                    Assert.True(Fixture.Eventually(() => HandleCounts.Callbacks == before, TimeSpan.FromSeconds(5)), "removed and freed");
                    Assert.Equal(NotifyFlags.JobError, job.NotifyFlags, "ClearNotifyCallback keeps the flags");
                    job.SetNotifyCallback((j, e) => { });
                } // Dispose releases the last reference: the library frees the registration
                Assert.True(Fixture.Eventually(() => HandleCounts.Callbacks == before, TimeSpan.FromSeconds(5)), "freed when the job's last reference is released");

                using (var job = m.CreateJob("final"))
                {
                    job.Cancel();
                    var e = Assert.Throws<BitsInvalidStateException>(() => job.SetNotifyCallback((j, x) => { }), "registration on a cancelled job");
                    Assert.True(e.LibraryMessage.Length > 0, "message");
                    Assert.True(Fixture.Eventually(() => HandleCounts.Callbacks == before, TimeSpan.FromSeconds(5)), "a failed registration's user data is freed at once");
                    e = Assert.Throws<BitsInvalidStateException>(() => job.SetNotifyCallback(null), "removal on a cancelled job");
                }

                var kept = m.CreateJob("kept until the manager closes");
                var second = m.GetJob(kept.Id);
                kept.SetNotifyCallback((j, e) => { });
                kept.Dispose(); // another reference (second) remains
                Assert.Equal(before + 1, HandleCounts.Callbacks, "still registered while a reference remains");
                second.Dispose();
                Assert.True(Fixture.Eventually(() => HandleCounts.Callbacks == before, TimeSpan.FromSeconds(5)), "freed with the last reference");
            }
        }

        [Test]
        public static void PushCallbackForAnEventThatAlreadyHappenedAndExceptions()
        {
            string dir = Fixture.TempDir("cbearly");
            using (var m = new Manager(Path.Combine(dir, "state")))
            using (var job = m.CreateJob("early"))
            {
                job.AddFile(Server.Url("/a.bin?status=404"), Path.Combine(dir, "x.bin"));
                job.Resume();
                Assert.Equal(JobState.Error, job.Wait(TimeSpan.FromSeconds(30)), "in ERROR before registering");
                var failed = new ManualResetEventSlim();
                EventHandlerFailedEventArgs report = null;
                m.EventHandlerFailed += (s, e) => { report = e; failed.Set(); };
                int code = 0;
                job.SetNotifyCallback((j, e) => { code = e.Code; throw new InvalidOperationException("callback failed on purpose"); });
                Assert.True(failed.Wait(TimeSpan.FromSeconds(10)), "the ERROR event was delivered right after registration and its exception reported");
                Assert.HResult(HResults.HttpError(404), code, "code of the event");
                Assert.Equal(EventKind.JobError, report.Event.Kind, "kind");
                Assert.Equal("callback failed on purpose", report.Exception.Message, "exception");
                job.Cancel();
            }
        }

        [MethodImpl(MethodImplOptions.NoInlining)]
        private static void AbandonWithCallback(string dir)
        {
            var m = new Manager(dir);
            var j = m.CreateJob("abandoned with a callback");
            j.SetNotifyCallback((job, e) => { });
        }

        [Test(TimeoutSeconds = 90)]
        public static void PushCallbackOfAnAbandonedJobIsFreed()
        {
            int callbacks = HandleCounts.Callbacks;
            string dir = Fixture.TempDir("cbabandon");
            AbandonWithCallback(dir);
            Assert.True(Fixture.Eventually(() => { Fixture.Collect(); return HandleCounts.Callbacks == callbacks && CanOpen(dir); }, TimeSpan.FromSeconds(60)),
                "the collected job's and manager's finalizers end the registration and close the manager");
        }

        /// <summary>In a child process: a callback throws and nobody handles it.</summary>
        public static int ChildCallbackThrows(string url, string dir)
        {
            using (var m = new Manager(Path.Combine(dir, "state")))
            using (var job = m.CreateJob("child"))
            {
                job.AddFile(url, Path.Combine(dir, "x.bin"));
                job.SetNotifyCallback((j, e) => { throw new InvalidOperationException("unhandled in a callback"); });
                job.Resume();
                Thread.Sleep(10000);
            }
            return 0; // not reached: the process ends first
        }

        [Test]
        public static void UnhandledCallbackExceptionEndsTheProcess()
        {
            string dir = Fixture.TempDir("cbfailfast");
            var psi = new System.Diagnostics.ProcessStartInfo(System.Diagnostics.Process.GetCurrentProcess().MainModule.FileName,
                string.Format("\"{0}\" --child-callback-throws \"{1}\" \"{2}\"", typeof(Tests).Assembly.Location, Server.Url("/a.bin"), dir))
            {
                UseShellExecute = false,
                RedirectStandardError = true,
                RedirectStandardOutput = true,
            };
            psi.EnvironmentVariables["MONO_DEBUG"] = "no-gdb-backtrace"; // Mono: no gdb dump on the abort
            using (var p = System.Diagnostics.Process.Start(psi))
            {
                string stderr = p.StandardError.ReadToEnd();
                p.StandardOutput.ReadToEnd();
                Assert.True(p.WaitForExit(20000), "the child ended");
                Assert.True(p.ExitCode != 0, "non-zero exit: " + p.ExitCode);
                Assert.True(stderr.Contains("unhandled in a callback"), "the exception is reported: " + stderr.Substring(0, Math.Min(400, stderr.Length)));
            }
        }

        [Test]
        public static void WaitAsyncCompletes()
        {
            string dir = Fixture.TempDir("waitasync");
            using (var m = new Manager(Path.Combine(dir, "state")))
            using (var job = m.CreateJob("async"))
            {
                job.AddFile(Server.Url("/b.bin"), Path.Combine(dir, "b.bin"));
                job.Resume();
                Task<JobState> t = job.WaitAsync(TimeSpan.FromSeconds(30), CancellationToken.None);
                Assert.True(t.Wait(TimeSpan.FromSeconds(40)), "task completed");
                Assert.Equal(JobState.Transferred, t.Result, "result");
                // Already ended: completes at once.
                Task<JobState> again = job.WaitAsync();
                Assert.True(again.Wait(TimeSpan.FromSeconds(5)), "second wait");
                Assert.Equal(JobState.Transferred, again.Result, "result");
                Assert.True(job.Complete(), "complete");
                Assert.Equal(JobState.Acknowledged, job.WaitAsync(TimeSpan.FromSeconds(5), CancellationToken.None).Result, "after Complete");
            }
            Fixture.AssertFileEquals(Server.Content("/b.bin"), Path.Combine(dir, "b.bin"));
        }

        private static Exception Fault(Task t)
        {
            try
            {
                t.Wait(TimeSpan.FromSeconds(20));
            }
            catch (AggregateException e)
            {
                return e.InnerException;
            }
            return null;
        }

        [Test]
        public static void WaitAsyncTimeoutCancellationAndDispose()
        {
            string dir = Fixture.TempDir("waitasync2");
            var m = new Manager(Path.Combine(dir, "state"));
            using (var job = m.CreateJob("slow"))
            {
                job.AddFile(Server.Url("/b.bin?rate=20000"), Path.Combine(dir, "b.bin"));
                job.Resume();

                var timedOut = Fault(job.WaitAsync(TimeSpan.FromMilliseconds(200), CancellationToken.None));
                Assert.True(timedOut is BitsTimeoutException, "timeout: " + timedOut);
                Assert.HResult(HResults.E_Timeout, timedOut.HResult, "HResult");

                using (var cts = new CancellationTokenSource())
                {
                    Task<JobState> t = job.WaitAsync(TimeSpan.FromSeconds(30), cts.Token);
                    Thread.Sleep(100);
                    Assert.True(!t.IsCompleted, "still waiting");
                    cts.Cancel();
                    var cancelled = Fault(t);
                    Assert.True(cancelled is OperationCanceledException && t.IsCanceled, "cancelled: " + cancelled);
                    Assert.True(job.WaitAsync(cts.Token).IsCanceled, "an already cancelled token");
                }

                Task<JobState> pending = job.WaitAsync();
                Thread.Sleep(100);
                m.Dispose();
                var disposed = Fault(pending);
                Assert.True(disposed is BitsInvalidStateException, "manager disposed: " + disposed);
                var late = Fault(job.WaitAsync());
                Assert.True(late is BitsInvalidStateException, "WaitAsync after the manager was disposed: " + late);
            }
        }

        [Test]
        public static void ManyConcurrentJobsWithEvents()
        {
            string dir = Fixture.TempDir("many");
            const int n = 8;
            using (var m = new Manager(new ManagerOptions { StateDirectory = Path.Combine(dir, "state"), MaxConcurrentJobs = 4 }))
            {
                var done = new HashSet<Guid>();
                var all = new ManualResetEventSlim();
                m.JobTransferred += (s, e) => { lock (done) { done.Add(e.JobId); if (done.Count == n) all.Set(); } };
                var jobs = new List<Job>();
                try
                {
                    for (int i = 0; i < n; i++)
                    {
                        var j = m.CreateJob("many " + i);
                        jobs.Add(j);
                        j.AddFile(Server.Url("/a.bin?n=" + i), Path.Combine(dir, "a" + i));
                        j.Resume();
                    }
                    var tasks = jobs.Select(j => j.WaitAsync(TimeSpan.FromSeconds(60), CancellationToken.None)).ToArray();
                    Assert.True(Task.WaitAll(tasks, TimeSpan.FromSeconds(70)), "every WaitAsync completed");
                    Assert.True(tasks.All(t => t.Result == JobState.Transferred), "all transferred");
                    Assert.True(all.Wait(TimeSpan.FromSeconds(10)), "a JobTransferred event for each");
                    foreach (var j in jobs)
                        Assert.True(j.Complete(), "complete");
                }
                finally
                {
                    foreach (var j in jobs) j.Dispose();
                }
            }
            for (int i = 0; i < n; i++)
                Fixture.AssertFileEquals(Server.Content("/a.bin"), Path.Combine(dir, "a" + i));
        }
    }
}
