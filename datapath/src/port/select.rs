//! Which backend an `auto` port gets (slow path, called once when a port is added).
//!
//! | device | backend | why |
//! |---|---|---|
//! | veth (driver `veth`) | AF_PACKET with `PACKET_VNET_HDR` | an XDP program on a veth turns TSO off on its peer, so AF_XDP carries TCP as MTU-sized frames (single-stream TCP ~0.16× the Linux bridge); AF_PACKET keeps the container's TSO and moves ~64 KB GSO frames (docs/tcp-throughput.md) |
//! | anything else (NICs, …) | AF_XDP, falling back to AF_PACKET when it cannot attach | more small frames per second; NIC drivers keep their offloads with native XDP |
//!
//! AF_XDP on a veth remains available as an explicit choice (`vsctl add-port DEV --type
//! afxdp`): it forwards more 64-byte frames per second than AF_PACKET, at the cost of TCP
//! throughput.

use crate::port::PortKind;
use crate::sys::ethtool;

/// The backend to try first for an `auto` port on device `name`: [`PortKind::AfPacket`] for a
/// veth, [`PortKind::AfXdp`] otherwise (also when the driver cannot be asked; the caller falls
/// back to AF_PACKET if AF_XDP does not open).
pub fn auto_kind(name: &str) -> PortKind {
    match ethtool::driver(name) {
        Ok(d) if d == "veth" => {
            tracing::info!(
                port = name,
                "auto: veth gets an AF_PACKET port (keeps the peer's TSO; --type afxdp to override)"
            );
            PortKind::AfPacket
        }
        _ => PortKind::AfXdp,
    }
}
