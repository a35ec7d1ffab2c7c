//! Which backend an `auto` port gets (slow path, called once when a port is added).
//!
//! | device | backend | why |
//! |---|---|---|
//! | veth (driver `veth`) | AF_PACKET with `PACKET_VNET_HDR` | keeps the container's TSO and moves ~64 KB GSO frames with no XDP program in their way (docs/tcp-throughput.md); a native XDP program turns the peer's TSO off, a generic one costs the sender a copy per GSO frame (ADR 0008) |
//! | anything else (NICs, …) | AF_XDP, falling back to AF_PACKET when it cannot attach | more small frames per second; NIC drivers keep their offloads with native XDP |
//!
//! AF_XDP on a veth remains available as an explicit choice (`vsctl add-port DEV --type
//! afxdp`): a split port ([`XdpMode::Split`](crate::port::afxdp::XdpMode::Split), ADR 0008)
//! that forwards more 64-byte frames per second than AF_PACKET and carries the container's GSO
//! frames through an AF_PACKET socket of its own (TCP ~0.9–1.0× an AF_PACKET port's).

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
