//! Frames of an opened datagram: decoding hostile bytes never panics, and every frame decoded
//! is written back and read again as the same frame.
#![no_main]
use braid::proto::wire::{frames, Frame, FrameWriter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for f in frames(data) {
        let Ok(f) = f else { break };
        let mut buf = vec![0u8; data.len() + 64];
        let mut w = FrameWriter::new(&mut buf);
        let wrote = match &f {
            Frame::Data(h, p) => w.push_data(h, p),
            Frame::Ack(a) => w.push_ack(a),
            Frame::Probe(p) => w.push_probe(p),
            Frame::Control(c) => w.push_control(c),
        };
        if wrote.is_err() {
            // A frame the writer refuses (a sender never makes it) may still be read.
            continue;
        }
        let again: Vec<_> = frames(w.as_slice()).collect();
        assert_eq!(again.len(), 1, "{f:?}");
        assert_eq!(again[0].as_ref().ok(), Some(&f), "{f:?} written back");
    }
});
