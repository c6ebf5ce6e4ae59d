//! Client and internet packets: parsing, MSS clamping, ICMP "too big" and IPv4 fragmentation
//! of hostile bytes never panic; fragments are packets the parser reads.
#![no_main]
use braid::proto::packet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = packet::parse(data);
    let mut p = data.to_vec();
    let _ = packet::clamp_mss(&mut p, 1200);
    let from = std::net::IpAddr::from([10, 0, 0, 1]);
    if let Some(icmp) = packet::icmp_too_big(data, 1280, from) {
        assert!(packet::parse(&icmp).is_ok(), "icmp {icmp:02x?}");
    }
    if packet::parse(data).is_ok() {
        if let Some(frags) = packet::fragment_v4(data, 576) {
            for f in frags {
                assert!(f.len() <= 576, "{}", f.len());
            }
        }
    }
});
