//! Whether the network is metered, as NetworkManager says over the system D-Bus (Linux only).
//!
//! NetworkManager publishes `Metered` (an NMMetered value) on `/org/freedesktop/NetworkManager`,
//! interface `org.freedesktop.NetworkManager`, and announces changes with
//! `org.freedesktop.DBus.Properties.PropertiesChanged`. `follow` reads it once, then follows the
//! signal, and reads it again whenever NetworkManager (re)starts; it reports a BITS cost state, or
//! 0 when NetworkManager does not know or is not there. The bus is the one
//! `DBUS_SYSTEM_BUS_ADDRESS` names, else the standard system socket; with no bus at all `follow`
//! returns at once and openbits works as if this module did not exist.
//!
//! It runs as a task on the manager's runtime (zbus with its tokio feature spawns its reader there
//! too), so closing the manager, which shuts the runtime down, ends it and closes the connection.

use crate::job::{COST_STATE_CAPPED_USAGE_UNKNOWN, COST_STATE_UNRESTRICTED};

/// The BITS cost state for an NMMetered value; 0 when it says nothing (NM_METERED_UNKNOWN, or a
/// value a later NetworkManager may add).
///
/// A metered link, known (NM_METERED_YES, 1) or guessed (NM_METERED_GUESS_YES, 3, e.g. a phone's
/// hotspot), is BITS_COST_STATE_CAPPED_USAGE_UNKNOWN: NetworkManager tells neither the cap nor the
/// usage, which is exactly that state. NM_METERED_NO (2) and NM_METERED_GUESS_NO (4) are
/// BITS_COST_STATE_UNRESTRICTED.
pub(crate) fn cost_of(nm_metered: u32) -> u32 {
    match nm_metered {
        1 | 3 => COST_STATE_CAPPED_USAGE_UNKNOWN,
        2 | 4 => COST_STATE_UNRESTRICTED,
        _ => 0,
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use futures_util::StreamExt;
    use zbus::fdo::{DBusProxy, PropertiesProxy};
    use zbus::proxy::CacheProperties;
    use zbus::Connection;

    const NM: &str = "org.freedesktop.NetworkManager";
    const NM_PATH: &str = "/org/freedesktop/NetworkManager";
    /// The system bus when `DBUS_SYSTEM_BUS_ADDRESS` names none (the D-Bus specification's
    /// default; /run/dbus/system_bus_socket is the same file through /var/run).
    const SYSTEM_BUS_SOCKET: &str = "/var/run/dbus/system_bus_socket";

    /// Reports NetworkManager's cost (see `cost_of`; 0: unknown) now and at every change, until
    /// the bus goes away. Returns at once when there is no system bus.
    pub(crate) async fn follow(report: impl Fn(u32) + Send + 'static) {
        // No bus named and no socket at the standard place (a container, a server without
        // D-Bus): nothing to ask, and asking zbus anyway costs the process about 0.6 MiB.
        let named = std::env::var_os("DBUS_SYSTEM_BUS_ADDRESS").is_some();
        if !named && !std::path::Path::new(SYSTEM_BUS_SOCKET).exists() {
            return;
        }
        let Ok(conn) = Connection::system().await else {
            return; // no system bus: the application's value (or UNRESTRICTED) stands
        };
        let _ = watch(&conn, &report).await;
        // The bus closed under us: what NetworkManager said no longer holds.
        report(0);
    }

    async fn watch(conn: &Connection, report: &impl Fn(u32)) -> zbus::Result<()> {
        // NetworkManager may start after the manager, stop, or restart: follow its name.
        let bus = DBusProxy::new(conn).await?;
        let mut owners = bus.receive_name_owner_changed_with_args(&[(0, NM)]).await?;
        let props = PropertiesProxy::builder(conn)
            .destination(NM)?
            .path(NM_PATH)?
            .cache_properties(CacheProperties::No)
            .build()
            .await?;
        // Subscribed before the first read, so a change between the two is not lost.
        let mut changes = props.receive_properties_changed().await?;
        report(read(&props).await);
        loop {
            tokio::select! {
                signal = changes.next() => {
                    let Some(signal) = signal else { return Ok(()) };
                    let Ok(args) = signal.args() else { continue };
                    if args.interface_name.as_str() != NM {
                        continue;
                    }
                    if let Some(value) = args.changed_properties.get("Metered") {
                        if let Ok(v) = value.downcast_ref::<u32>() {
                            report(super::cost_of(v));
                        }
                    }
                }
                owner = owners.next() => {
                    let Some(owner) = owner else { return Ok(()) };
                    let started = owner.args().is_ok_and(|a| a.new_owner.is_some());
                    report(if started { read(&props).await } else { 0 });
                }
            }
        }
    }

    /// NetworkManager's cost now; 0 if it is not running or does not answer.
    async fn read(props: &PropertiesProxy<'_>) -> u32 {
        let Ok(iface) = zbus::names::InterfaceName::try_from(NM) else {
            return 0;
        };
        match props.get(iface, "Metered").await {
            Ok(v) => u32::try_from(v).map_or(0, super::cost_of),
            Err(_) => 0,
        }
    }
}

#[cfg(target_os = "linux")]
pub(crate) use linux::follow;

/// Elsewhere there is no NetworkManager to ask: the application's value (or UNRESTRICTED) stands.
#[cfg(not(target_os = "linux"))]
pub(crate) async fn follow(_report: impl Fn(u32) + Send + 'static) {}

#[cfg(test)]
mod tests {
    use super::cost_of;
    use crate::job::{COST_STATE_CAPPED_USAGE_UNKNOWN as CAPPED, COST_STATE_UNRESTRICTED as FREE};

    #[test]
    fn nm_metered_values_map_to_bits_cost_states() {
        // NM_METERED_UNKNOWN, YES, NO, GUESS_YES, GUESS_NO, and a value NM does not define.
        assert_eq!(
            [0, 1, 2, 3, 4, 5].map(cost_of),
            [0, CAPPED, FREE, CAPPED, FREE, 0]
        );
    }
}
