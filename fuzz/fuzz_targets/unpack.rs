//! Packed headers from the peer: installing a context and rebuilding packets from hostile
//! bytes never panics, and what is rebuilt is a packet the parser reads.
#![no_main]
use braid::proto::pack::Unpacker;
use braid::proto::packet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // [ctx u16][install length u16][installed packet][packed frames...]
    if data.len() < 4 {
        return;
    }
    let ctx = u16::from_be_bytes([data[0], data[1]]);
    let n = usize::from(u16::from_be_bytes([data[2], data[3]])).min(data.len() - 4);
    let (install, packed) = data[4..].split_at(n);
    let mut u = Unpacker::new();
    let installed = u.install(ctx, install);
    let mut out = Vec::new();
    if u.unpack(ctx, packed, &mut out).is_ok() {
        assert!(installed, "unpacked without a context");
        assert!(packet::parse(&out).is_ok(), "rebuilt {out:02x?}");
    }
});
