//! Real TCP through the switch, in memory: two smoltcp TCP/IP stacks, each behind a mem port of
//! a running `Switch`, do a handshake and move data; the switch learns both stations from real
//! ARP and TCP frames and forwards unicast once it knows them. Deterministic apart from thread
//! scheduling: no devices, no namespaces, no root.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant as StdInstant};

use datapath::port::mem::{MemPeer, MemPort, MemPortOptions};
use datapath::switch::{Switch, SwitchConfig, VlanMode};
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

/// A smoltcp device over the test side of a mem port.
struct Dev(MemPeer);

struct Rx(Vec<u8>);
struct Tx<'a>(&'a MemPeer);

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0u8; len];
        let r = f(&mut buf);
        assert!(self.0.send(&buf), "mem port rx channel full");
        r
    }
}

impl Device for Dev {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _: Instant) -> Option<(Rx, Tx<'_>)> {
        self.0.try_recv().map(|(f, _)| (Rx(f), Tx(&self.0)))
    }

    fn transmit(&mut self, _: Instant) -> Option<Tx<'_>> {
        Some(Tx(&self.0))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        c.max_transmission_unit = 1514;
        c
    }
}

struct Host {
    dev: Dev,
    iface: Interface,
    sockets: SocketSet<'static>,
    tcp: smoltcp::iface::SocketHandle,
}

fn host(peer: MemPeer, mac: [u8; 6], ip: [u8; 4], t0: StdInstant) -> Host {
    let mut dev = Dev(peer);
    let cfg = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
    let mut iface = Interface::new(cfg, &mut dev, now(t0));
    iface.update_ip_addrs(|a| {
        a.push(IpCidr::new(IpAddress::v4(ip[0], ip[1], ip[2], ip[3]), 24))
            .unwrap();
    });
    let sock = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 65_536]),
        tcp::SocketBuffer::new(vec![0; 65_536]),
    );
    let mut sockets = SocketSet::new(Vec::new());
    let tcp = sockets.add(sock);
    Host {
        dev,
        iface,
        sockets,
        tcp,
    }
}

fn now(t0: StdInstant) -> Instant {
    Instant::from_micros(i64::try_from(t0.elapsed().as_micros()).unwrap())
}

#[test]
fn smoltcp_stacks_complete_a_handshake_and_move_a_megabyte_through_the_switch() {
    let mut sw = Switch::start(SwitchConfig::default()).unwrap();
    let mut peers = Vec::new();
    for name in ["s1", "s2", "s3"] {
        let (p, peer) = MemPort::new(name, MemPortOptions::default());
        sw.add_port_backend(Box::new(p), VlanMode::default())
            .unwrap();
        peers.push(peer);
    }
    let bystander = peers.pop().unwrap();
    let t0 = StdInstant::now();
    let mut server = host(peers.pop().unwrap(), [2, 0, 0, 0, 0, 2], [10, 0, 0, 2], t0);
    let mut client = host(peers.pop().unwrap(), [2, 0, 0, 0, 0, 1], [10, 0, 0, 1], t0);
    server
        .sockets
        .get_mut::<tcp::Socket<'_>>(server.tcp)
        .listen(80)
        .unwrap();
    let ctx = client.iface.context();
    client
        .sockets
        .get_mut::<tcp::Socket<'_>>(client.tcp)
        .connect(ctx, (IpAddress::v4(10, 0, 0, 2), 80), 49_152)
        .unwrap();

    const TOTAL: usize = 1 << 20;
    let mut sent = 0usize;
    let mut received = Vec::with_capacity(TOTAL);
    let deadline = StdInstant::now() + Duration::from_secs(30);
    while received.len() < TOTAL {
        assert!(
            StdInstant::now() < deadline,
            "transfer stalled at {} bytes",
            received.len()
        );
        let ts = now(t0);
        client.iface.poll(ts, &mut client.dev, &mut client.sockets);
        server.iface.poll(ts, &mut server.dev, &mut server.sockets);
        let c = client.sockets.get_mut::<tcp::Socket<'_>>(client.tcp);
        if c.can_send() && sent < TOTAL {
            sent += c
                .send(|buf| {
                    let n = buf.len().min(TOTAL - sent);
                    for (i, b) in buf[..n].iter_mut().enumerate() {
                        *b = ((sent + i) % 251) as u8;
                    }
                    (n, n)
                })
                .unwrap();
        }
        let s = server.sockets.get_mut::<tcp::Socket<'_>>(server.tcp);
        if s.can_recv() {
            s.recv(|buf| {
                received.extend_from_slice(buf);
                (buf.len(), ())
            })
            .unwrap();
        }
        std::thread::sleep(Duration::from_micros(50));
    }
    assert!(
        received
            .iter()
            .enumerate()
            .all(|(i, b)| *b == (i % 251) as u8),
        "payload intact"
    );

    // Both stations learned on their ports; after the ARP broadcast, the bystander saw only
    // flooded frames (the first ARP request and at most the SYN before the server was learned).
    let macs = sw.mac_table();
    assert_eq!(macs.len(), 2, "{macs:?}");
    let seen_by_bystander = bystander.drain().len();
    assert!(
        seen_by_bystander <= 2,
        "unicast leaked to the bystander: {seen_by_bystander} frames"
    );
    let stats = sw.port_stats(Some("s1")).unwrap();
    assert!(
        stats[0].1.rx_pkts > 700,
        "client frames counted: {:?}",
        stats[0].1
    );
    assert_eq!(stats[0].1.rx_dropped(), 0);
    sw.shutdown();
}
