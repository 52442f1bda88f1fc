//! Ctrl-C and SIGTERM as a flag. The waiting loops poll it several times a second, so the
//! handler does nothing but a store (the only thing a signal handler may safely do), and the
//! loop then suspends the job or closes the queue in an orderly way.

use std::sync::atomic::{AtomicI32, Ordering};

static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    SIGNAL.store(signal, Ordering::SeqCst);
}

/// From now on SIGINT and SIGTERM set the flag instead of killing the process.
pub fn install() {
    // SAFETY: `on_signal` is async-signal-safe (one atomic store); sigaction is given a zeroed,
    // then filled, struct that lives for the call.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
        libc::sigemptyset(&mut action.sa_mask);
        // SA_RESTART: a read or write interrupted by the signal is restarted, not failed.
        action.sa_flags = libc::SA_RESTART;
        libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut());
        libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut());
    }
}

/// The signal received since `install`, if any.
pub fn received() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}
