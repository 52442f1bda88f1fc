//! Whether this machine has a network at all, and a watcher that says when that changes.
//!
//! "A network" is an interface other than loopback that is up and running (IFF_UP and
//! IFF_RUNNING, as getifaddrs reports them): with every such link down no transfer can succeed, so jobs wait for one instead
//! of spending their retries. On Linux the watcher is a netlink socket subscribed to link, address
//! and route changes (each message makes it look at the interfaces again); elsewhere there is no
//! watcher and the network is taken as always present (jobs retry on their timers).

/// A watcher's thread runs until the watcher is dropped.
pub(crate) struct Watcher {
    #[cfg(target_os = "linux")]
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use super::Watcher;
    use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    const IFF_UP: u32 = 0x1;
    const IFF_LOOPBACK: u32 = 0x8;
    const IFF_RUNNING: u32 = 0x40;
    /// RTMGRP_LINK, RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE, RTMGRP_IPV6_IFADDR, RTMGRP_IPV6_ROUTE.
    const GROUPS: u32 = 0x1 | 0x10 | 0x40 | 0x100 | 0x400;

    /// Whether an interface other than loopback is up and running, in the calling thread's
    /// network namespace (getifaddrs asks the kernel over netlink; /sys/class/net would show the
    /// namespace sysfs was mounted in).
    pub(crate) fn is_up() -> bool {
        let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
        // SAFETY: getifaddrs allocates the list it returns, which we walk and then free.
        if unsafe { libc::getifaddrs(&mut list) } != 0 {
            return true; // nothing to judge by: do not hold jobs back
        }
        let mut up = false;
        let mut at = list;
        while !at.is_null() {
            // SAFETY: `at` is a node of the list getifaddrs returned, not yet freed.
            let flags = unsafe { (*at).ifa_flags };
            up |= flags & IFF_LOOPBACK == 0 && flags & IFF_UP != 0 && flags & IFF_RUNNING != 0;
            // SAFETY: as above.
            at = unsafe { (*at).ifa_next };
        }
        // SAFETY: the list came from getifaddrs and is freed once.
        unsafe { libc::freeifaddrs(list) };
        up
    }

    /// Calls `changed(up)` on a thread of its own whenever `is_up` changes.
    pub(crate) fn watch(changed: impl Fn(bool) + Send + 'static) -> std::io::Result<Watcher> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind(&SocketAddr::new(0, GROUPS))?;
        // A timeout, so the thread sees `stop` even when nothing changes.
        let timeout = libc::timeval {
            tv_sec: 1,
            tv_usec: 0,
        };
        // SAFETY: setsockopt on a descriptor we own, with a timeval that outlives the call.
        let set = unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&socket),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if set != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stop = Arc::new(AtomicBool::new(false));
        let quit = stop.clone();
        std::thread::Builder::new()
            .name("openbits-network".into())
            .spawn(move || {
                let mut up = is_up();
                let mut buf = vec![0u8; 16 * 1024];
                while !quit.load(Ordering::SeqCst) {
                    buf.clear();
                    match socket.recv(&mut buf, 0) {
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        // ENOBUFS: we missed messages; looking again below is all we need.
                        Err(_) => std::thread::sleep(Duration::from_millis(100)),
                    }
                    let now = is_up();
                    if now != up {
                        up = now;
                        changed(up);
                    }
                }
            })?;
        Ok(Watcher { stop })
    }
}

#[cfg(target_os = "linux")]
pub(crate) use linux::{is_up, watch};

#[cfg(not(target_os = "linux"))]
pub(crate) fn is_up() -> bool {
    true
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn watch(_changed: impl Fn(bool) + Send + 'static) -> std::io::Result<Watcher> {
    Ok(Watcher {})
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn a_machine_running_tests_has_a_network_and_a_watcher_starts() {
        // The test machine has at least loopback; is_up must at least not fail, and the watcher
        // must open its netlink socket.
        let _ = super::is_up();
        let w = super::watch(|_| {}).expect("netlink socket");
        drop(w);
    }
}
