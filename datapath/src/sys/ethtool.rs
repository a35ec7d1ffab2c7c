//! The driver name of a network device through `SIOCETHTOOL` / `ETHTOOL_GDRVINFO` (slow path:
//! used when a port is opened, to pick a backend for `auto` ports).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `ETHTOOL_GDRVINFO`: get driver info.
const ETHTOOL_GDRVINFO: u32 = 0x0000_0003;

/// `struct ethtool_drvinfo` (include/uapi/linux/ethtool.h).
#[repr(C)]
struct DrvInfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

/// `struct ifreq` with the `ifr_data` member of its union.
#[repr(C)]
struct IfReqData {
    name: [u8; libc::IFNAMSIZ],
    data: *mut DrvInfo,
    /// The rest of the 24-byte union.
    _pad: [u8; 16],
}

/// The name of the driver behind device `name` (`"veth"`, `"tun"`, `"virtio_net"`, …).
///
/// # Errors
/// `InvalidInput` for a malformed name; `ENODEV` when there is no such device; `EOPNOTSUPP`
/// when the driver does not answer ethtool.
pub fn driver(name: &str) -> io::Result<String> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {name:?}"),
        ));
    }
    let mut info = DrvInfo {
        cmd: ETHTOOL_GDRVINFO,
        driver: [0; 32],
        version: [0; 32],
        fw_version: [0; 32],
        bus_info: [0; 32],
        erom_version: [0; 32],
        reserved2: [0; 12],
        n_priv_flags: 0,
        n_stats: 0,
        testinfo_len: 0,
        eedump_len: 0,
        regdump_len: 0,
    };
    let mut req = IfReqData {
        name: [0; libc::IFNAMSIZ],
        data: &raw mut info,
        _pad: [0; 16],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: plain socket(2) call with constant arguments; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: SIOCETHTOOL reads an `ifreq` whose `ifr_data` points to a command struct; `req`
    // has the layout of `struct ifreq` (name, then the union holding the pointer) and `info`
    // is a writable `ethtool_drvinfo`, both alive for the whole call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, &raw mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let end = info.driver.iter().position(|&b| b == 0).unwrap_or(32);
    Ok(String::from_utf8_lossy(&info.driver[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_struct_layouts_match_the_kernel() {
        assert_eq!(size_of::<DrvInfo>(), 196);
        assert_eq!(size_of::<IfReqData>(), 40);
    }

    #[test]
    fn bad_names_are_refused_and_missing_devices_reported() {
        assert_eq!(driver("").unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(
            driver("a-name-much-too-long").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        let e = driver("vsnodev0x").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENODEV), "{e}");
    }

    #[test]
    fn loopback_answers_or_says_it_cannot() {
        // `lo` exists in every namespace; its driver has no ethtool drvinfo on some kernels.
        match driver("lo") {
            Ok(d) => assert!(!d.is_empty()),
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EOPNOTSUPP), "{e}"),
        }
    }
}
