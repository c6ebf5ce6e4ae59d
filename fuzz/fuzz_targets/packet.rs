//! Client and internet packets: parsing, MSS clamping, address rewriting, and finishing what the hosts' offloads
//! left (a partial checksum, a TCP aggregate cut into segments) never panic on hostile bytes,
//! and every segment that comes out is a packet the parser reads, no larger than asked.
#![no_main]
use braid::proto::offload::{self, Gso, GsoKind, Offload, Partial};
use braid::proto::packet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = packet::parse(data);
    let mut p = data.to_vec();
    let _ = packet::clamp_mss(&mut p, 1200);
    // Rewriting an address (the core's NAT) never panics and keeps the packet parsing the same.
    if let Ok(mut v) = packet::PacketMut::parse(&mut p) {
        let a = if v.info().version == 4 {
            std::net::IpAddr::from([100, 64, 3, 4])
        } else {
            std::net::IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, 0x34])
        };
        v.set_addr(packet::Field::Dst, a).unwrap();
        let info = *v.info();
        assert_eq!(Ok(info), packet::parse(&p));
    }
    // The first 4 bytes choose the offload the capture would have reported.
    let Some((head, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let off = Offload {
        partial: (head[0] & 1 == 1).then_some(Partial {
            start: usize::from(head[1] & 0x7f),
            offset: usize::from(head[2] & 0x1f),
        }),
        gso: (head[0] & 2 == 2).then_some(Gso {
            kind: if head[0] & 4 == 0 { GsoKind::Tcp4 } else { GsoKind::Other(head[0] >> 3) },
            size: u16::from(head[3]) * 8,
        }),
    };
    let mut pkt = rest.to_vec();
    let mut seg = vec![0u8; 120 + usize::from(head[3]) * 8];
    let cap = seg.len();
    let _ = offload::finish(&mut pkt, &off, &mut seg, &mut |s| {
        assert!(s.len() <= cap.max(rest.len()), "{} > {}", s.len(), cap);
        if off.gso.is_some() {
            assert!(packet::parse(s).is_ok(), "segment {s:02x?}");
        }
    });
});
