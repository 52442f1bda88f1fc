using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

[assembly: AssemblyTitle("OpenBits")]
[assembly: AssemblyDescription(".NET binding of openbits (Windows BITS job semantics as an embeddable library)")]
[assembly: AssemblyVersion("0.2.0.0")]
// The test program checks the live-handle counters (leak tracking).
[assembly: InternalsVisibleTo("OpenBits.Tests")]
// DllImport("openbits"): look beside OpenBits.dll first, then the system's safe folders.
[assembly: DefaultDllImportSearchPaths(DllImportSearchPath.AssemblyDirectory | DllImportSearchPath.SafeDirectories)]
