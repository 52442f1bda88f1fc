// examples/Download.cs: a BITS download job through the OpenBits .NET binding, in the documented
// order (the same program as examples/demo.c):
//
//   open the manager -> create a job -> add the files -> resume
//   -> show progress until TRANSFERRED (or ERROR) -> complete
//
//   mono Download.exe BASE_URL DEST_DIR NAME...
//
// Each NAME is downloaded from BASE_URL/NAME to DEST_DIR/NAME; a query string in NAME (e.g.
// "a.bin?rate=100000") is left out of the local name. The manager keeps its state in
// DEST_DIR/.openbits-state. bindings/dotnet/test.sh runs this against a local server.

using System;
using System.Diagnostics;
using System.IO;
using System.Threading;
using OpenBits;

public static class Download
{
    public static int Main(string[] args)
    {
        if (args.Length < 3)
        {
            Console.Error.WriteLine("usage: Download.exe BASE_URL DEST_DIR NAME...");
            return 2;
        }
        string baseUrl = args[0], destDir = Path.GetFullPath(args[1]);
        bool tty = !Console.IsOutputRedirected;
        Console.WriteLine("openbits {0}", Manager.LibraryVersion);
        try
        {
            // 1. The manager: a queue of jobs, persisted in a state folder, with its own threads.
            using (var manager = new Manager(Path.Combine(destDir, ".openbits-state")))
            // 2. A download job. It starts SUSPENDED.
            using (var job = manager.CreateJob("openbits demo", JobType.Download))
            {
                Console.WriteLine("job {0} created", job.Id.ToString("B").ToUpperInvariant());

                // 3. Its files: remote URL -> absolute local path.
                for (int i = 2; i < args.Length; i++)
                {
                    string name = args[i];
                    int cut = name.IndexOfAny(new[] { '?', '#' });
                    string url = baseUrl + "/" + name;
                    string path = Path.Combine(destDir, cut < 0 ? name : name.Substring(0, cut));
                    job.AddFile(url, path);
                    Console.WriteLine("  + {0} -> {1}", url, path);
                }

                // 4. Resume: the job is queued and the manager's threads transfer it.
                job.Resume();

                // 5. Show progress until TRANSFERRED or ERROR (TRANSIENT_ERROR retries by itself).
                var clock = Stopwatch.StartNew();
                JobState state;
                JobProgress p;
                for (int tick = 0; ; tick++)
                {
                    state = job.State;
                    p = job.Progress;
                    bool done = state == JobState.Transferred || state == JobState.Error;
                    if (tty || done || tick % 10 == 0)
                        Show(tty, state, p);
                    if (done)
                        break;
                    Thread.Sleep(100);
                }
                if (tty)
                    Console.WriteLine();

                if (state == JobState.Error)
                {
                    JobErrorInfo error = job.Error;
                    Console.Error.WriteLine("download: job failed: 0x{0:X8} ({1}): {2}", error.Code, error.Context, error.Description);
                    job.Cancel(); // deletes the temporary files
                    return 1;
                }
                Console.WriteLine("transferred {0} bytes in {1} files in {2:F1} s",
                    p.BytesTransferred, p.FilesTransferred, clock.Elapsed.TotalSeconds);

                // 6. Complete: the temporary BIT*.tmp files are flushed and renamed onto the destinations.
                if (!job.Complete())
                {
                    Console.Error.WriteLine("download: only part of the files were complete");
                    return 1;
                }
                Console.WriteLine("job {0} {1}", job.Id.ToString("B").ToUpperInvariant(), job.State);
                return 0;
            }
        }
        catch (BitsException e)
        {
            // HResult is BITS's code; the message is the library's detail for it.
            Console.Error.WriteLine("download: {0}", e.Message);
            return 1;
        }
    }

    // One progress line; on a terminal it overwrites itself, elsewhere each call is a new line.
    private static void Show(bool tty, JobState state, JobProgress p)
    {
        string total = p.IsTotalKnown ? p.BytesTotal.ToString() : "?";
        string percent = p.Fraction.HasValue ? string.Format("{0,5:F1}%", 100 * p.Fraction.Value) : "--";
        Console.Write("{0}{1,-15} {2,10} / {3,-10} bytes {4,7}   files {5}/{6}{7}", tty ? "\r" : "",
            state, p.BytesTransferred, total, percent, p.FilesTransferred, p.FilesTotal, tty ? "\x1b[K" : "\n");
    }
}
