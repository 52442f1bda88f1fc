// examples/Upload.cs: an upload job (or, with --reply, an upload-reply job) through the OpenBits
// .NET binding:
//
//   mono Upload.exe [--reply] FILE URL
//
// Sends FILE to URL, a BITS upload server (IIS's BITS extension or openbits-server), and completes
// the job. With --reply the server's application answers: the program prints the reply's size
// and the file Complete put it in. The manager keeps its state beside FILE, in .openbits-state.
// bindings/dotnet/test.sh runs this against openbits-server.

using System;
using System.IO;
using OpenBits;

public static class Upload
{
    public static int Main(string[] args)
    {
        bool reply = args.Length == 3 && args[0] == "--reply";
        if (args.Length != (reply ? 3 : 2))
        {
            Console.Error.WriteLine("usage: Upload.exe [--reply] FILE URL");
            return 2;
        }
        string file = Path.GetFullPath(args[reply ? 1 : 0]), url = args[reply ? 2 : 1];
        string state = Path.Combine(Path.GetDirectoryName(file), ".openbits-state");
        using (var manager = new Manager(state))
        using (var job = manager.CreateJob("openbits upload example", reply ? JobType.UploadReply : JobType.Upload))
        {
            job.AddFile(url, file);   // an upload job has exactly one file
            job.Resume();             // Create-Session, Fragments, [the reply], Close-Session
            if (job.Wait(TimeSpan.FromMinutes(10)) != JobState.Transferred)
            {
                Console.Error.WriteLine("failed: {0}", job.Error);
                job.Cancel();
                return 1;
            }
            Console.WriteLine("uploaded {0} bytes", job.Progress.BytesTransferred);
            if (reply)
                Console.WriteLine("reply: {0} bytes", job.ReplyData.Length);   // up to 1 MiB
            job.Complete();
            if (reply)
                Console.WriteLine("reply file: {0}", job.ReplyFileName);
        }
        return 0;
    }
}
