//! The reorder buffer under any sequence of arrivals and timeouts from a hostile peer: never
//! panics, delivers each sequence number at most once, stays within its bounds.
#![no_main]
use std::collections::HashSet;
use std::time::Duration;

use braid::proto::reorder::{Reorder, ReorderConfig};
use braid::proto::Instant;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cfg = ReorderConfig {
        max_packets: 64,
        max_bytes: 16 << 10,
        window_log2: 10,
    };
    let mut r = Reorder::new(cfg);
    r.set_wait(Duration::from_millis(50));
    let mut now = Instant(1_000_000);
    let mut seen = HashSet::new();
    // Each step: [seq u16][prev u8][len u8][time step u8]
    for step in data.chunks_exact(5) {
        let seq = u32::from(u16::from_be_bytes([step[0], step[1]]));
        let prev = u16::from(step[2]);
        let len = usize::from(step[3]);
        now = now + Duration::from_millis(u64::from(step[4] & 0x3f));
        if step[4] & 0x80 != 0 {
            r.handle_timeout(now);
        } else {
            let payload = vec![step[3]; len];
            r.insert(now, seq, prev, &payload);
        }
        assert!(r.waiting() <= cfg.max_packets, "{}", r.waiting());
        assert!(r.waiting_bytes() <= cfg.max_bytes);
        while let Some(d) = r.poll() {
            assert!(seen.insert(d.seq), "seq {} delivered twice", d.seq);
            r.recycle(d.data);
        }
    }
});
