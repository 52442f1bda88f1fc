using System;
using System.Runtime.InteropServices;

namespace OpenBits
{
    /// <summary>
    /// A failed libopenbits call. <see cref="Exception.HResult"/> (and <see cref="ExternalException.ErrorCode"/>)
    /// is the library's HRESULT, with BITS's numbers; <see cref="LibraryMessage"/> is the detail the
    /// library gave for it (bits_last_error_message). Failures that have a type of their own:
    /// <see cref="BitsNotFoundException"/>, <see cref="BitsInvalidStateException"/>,
    /// <see cref="BitsTimeoutException"/>.
    /// </summary>
    public class BitsException : ExternalException
    {
        public BitsException(string message, int hresult)
            : base(Format(message, hresult), hresult)
        {
            LibraryMessage = message ?? "";
        }

        /// <summary>The library's own text, without the code appended.</summary>
        public string LibraryMessage { get; private set; }

        /// <summary>True for BITS_E_NOT_FOUND (0x80200001).</summary>
        public bool IsNotFound { get { return HResult == HResults.E_NotFound; } }

        /// <summary>True for BITS_E_INVALID_STATE (0x80200002).</summary>
        public bool IsInvalidState { get { return HResult == HResults.E_InvalidState; } }

        /// <summary>The HTTP status for a BG_E_HTTP_ERROR_nnn code, else null.</summary>
        public int? HttpStatus { get { return HResults.HttpStatusOf(HResult); } }

        /// <summary>The exception of the right type for a failed HRESULT.</summary>
        public static BitsException Create(int hresult, string message)
        {
            switch (hresult)
            {
                case HResults.E_NotFound: return new BitsNotFoundException(message);
                case HResults.E_InvalidState: return new BitsInvalidStateException(message);
                case HResults.E_Timeout: return new BitsTimeoutException(message);
                default: return new BitsException(message, hresult);
            }
        }

        private static string Format(string message, int hresult)
        {
            if (string.IsNullOrEmpty(message))
                message = "libopenbits call failed";
            return string.Format("{0} (0x{1:X8})", message, hresult);
        }
    }

    /// <summary>BITS_E_NOT_FOUND: no such job, or it was completed or cancelled.</summary>
    public class BitsNotFoundException : BitsException
    {
        public BitsNotFoundException(string message) : base(message, HResults.E_NotFound) { }
    }

    /// <summary>BITS_E_INVALID_STATE: not allowed in the job's state, or the manager is closed.</summary>
    public class BitsInvalidStateException : BitsException
    {
        public BitsInvalidStateException(string message) : base(message, HResults.E_InvalidState) { }
    }

    /// <summary>BITS_E_TIMEOUT (0x800705B4): a wait ended before the job did.</summary>
    public class BitsTimeoutException : BitsException
    {
        public BitsTimeoutException(string message) : base(message, HResults.E_Timeout) { }
    }
}
