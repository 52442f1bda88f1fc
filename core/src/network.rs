//! Whether this machine has a network at all, and a watcher that says when that changes.
//!
//! "A network" is an interface other than loopback that is up and running (IFF_UP and
//! IFF_RUNNING, as getifaddrs reports them): with every such link down no transfer can succeed, so jobs wait for one instead
//! of spending their retries. On Linux the watcher is a netlink socket subscribed to link, address
//! and route changes (each message makes it look at the interfaces again); elsewhere there is no
//! watcher and the network is taken as always present (jobs retry on their timers).

/// A watcher's thread runs until the watcher is dropped, which wakes it and waits for it: a closed
/// manager leaves no thread, socket or buffer behind.
pub(crate) struct Watcher {
    #[cfg(target_os = "linux")]
    stop: std::os::fd::OwnedFd,
    #[cfg(target_os = "linux")]
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        {
            let one: u64 = 1;
            // SAFETY: an 8-byte write from a live u64 to the eventfd this watcher owns.
            let _ = unsafe {
                libc::write(
                    std::os::fd::AsRawFd::as_raw_fd(&self.stop),
                    (&one as *const u64).cast(),
                    8,
                )
            };
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use super::Watcher;
    use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
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
        // The thread waits on the socket and on this eventfd, which `Drop` signals.
        // SAFETY: eventfd returns a new descriptor (or -1), which OwnedFd then owns alone.
        let stop = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if stop < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `stop` is a fresh descriptor nothing else owns.
        let stop = unsafe { OwnedFd::from_raw_fd(stop) };
        let wake = stop.as_raw_fd();
        let thread = std::thread::Builder::new()
            .name("openbits-network".into())
            .spawn(move || {
                let mut up = is_up();
                let mut buf = vec![0u8; 16 * 1024];
                let mut fds = [
                    libc::pollfd {
                        fd: socket.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    },
                    libc::pollfd {
                        fd: wake,
                        events: libc::POLLIN,
                        revents: 0,
                    },
                ];
                loop {
                    // SAFETY: poll on two descriptors that stay open while this thread runs
                    // (Drop joins it before closing the eventfd; the socket is the thread's).
                    let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
                    if n < 0 {
                        if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
                        {
                            continue;
                        }
                        return;
                    }
                    if fds[1].revents != 0 {
                        return;
                    }
                    buf.clear();
                    match socket.recv(&mut buf, libc::MSG_DONTWAIT) {
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
        Ok(Watcher {
            stop,
            thread: Some(thread),
        })
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
