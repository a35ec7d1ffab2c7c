//! Input frames for the benches (built once, outside the measured loops).

use etherparse::PacketBuilder;

/// Source MAC of the frames (port A's host).
pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
/// Destination MAC of unicast frames (port B's host).
pub const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
/// A unicast address no port has sent from: frames to it are flooded.
pub const MAC_UNKNOWN: [u8; 6] = [0x02, 0, 0, 0, 0, 0xee];

/// A minimum-size (60-byte) UDP/IPv4 frame from `src` to `dst`.
pub fn udp4_between(src: [u8; 6], dst: [u8; 6]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src, dst)
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(40_000, 4_000);
    let mut v = Vec::with_capacity(60);
    b.write(&mut v, &[0x5a; 18]).unwrap();
    debug_assert_eq!(v.len(), 60);
    v
}

/// A minimum-size (60-byte) UDP/IPv4 frame from [`MAC_A`] to [`MAC_B`].
pub fn udp4() -> Vec<u8> {
    udp4_between(MAC_A, MAC_B)
}

/// A TCP SYN over IPv6 with an 802.1Q tag (VLAN 100), 78 bytes.
pub fn tcp6_vlan() -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .single_vlan(100.try_into().unwrap())
        .ipv6(
            [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            64,
        )
        .tcp(40_000, 443, 1, 64_240)
        .syn();
    let mut v = Vec::with_capacity(80);
    b.write(&mut v, &[]).unwrap();
    v
}

/// `n` copies of `frame`, each in its own buffer (as a batch from a port would be).
pub fn batch(frame: &[u8], n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|_| frame.to_vec()).collect()
}

/// The `i`-th of a family of distinct locally administered unicast MACs.
pub fn mac(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x02, 0x42, b[0], b[1], b[2], b[3]]
}

/// A minimum-size UDP/IPv4 frame from [`MAC_A`] to [`MAC_B`] with the given ports.
pub fn udp4_ports(sport: u16, dport: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(sport, dport);
    let mut v = Vec::with_capacity(60);
    b.write(&mut v, &[0x5a; 18]).unwrap();
    v
}

/// A minimum-size UDP/IPv4 frame with every address and port given.
pub fn udp4_full(
    eth_src: [u8; 6],
    eth_dst: [u8; 6],
    ip_src: [u8; 4],
    ip_dst: [u8; 4],
    sport: u16,
    dport: u16,
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(eth_src, eth_dst)
        .ipv4(ip_src, ip_dst, 64)
        .udp(sport, dport);
    let mut v = Vec::with_capacity(60);
    b.write(&mut v, &[0x5a; 18]).unwrap();
    v
}
