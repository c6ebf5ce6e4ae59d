//! Sealed datagrams from anyone: the core's acceptor (inits, with or without mac2), an
//! established channel on both sides (data, responses, cookie replies) and the receiver-index
//! demultiplexing never panic; a datagram that opens was sealed by the peer.
#![no_main]
use std::cell::RefCell;

use braid::proto::cookie;
use braid::proto::seal::{self, Acceptor, Admission, Channel, Keypair};
use braid::proto::Instant;
use libfuzzer_sys::fuzz_target;

struct Pair {
    acceptor: Acceptor,
    edge: Channel,
    core: Channel,
}

fn pair() -> Pair {
    let core_key = Keypair::from_private([1; 32]);
    let edge_key = Keypair::from_private([2; 32]);
    let mut acceptor = Acceptor::new(core_key.clone());
    let mut edge = Channel::initiator(&edge_key, core_key.public, Instant(1));
    let mut init = [0u8; 256];
    let n = edge
        .poll_handshake(Instant(1), &mut init)
        .expect("first init");
    let mut resp = [0u8; 256];
    let accepted = acceptor
        .accept(
            Instant(1),
            &init[..n],
            |_, _| Admission::NewSession,
            7,
            &mut resp,
        )
        .expect("the edge's init is accepted");
    let len = accepted.response_len;
    let mut core = Channel::responder(accepted, Instant(1));
    edge.open(Instant(2), &mut resp[..len])
        .expect("response opens");
    // The edge's first data establishes the core's side.
    let mut d = [0u8; 128];
    let n = edge.seal(Instant(3), b"hello", &mut d).expect("seals");
    core.open(Instant(3), &mut d[..n]).expect("data opens");
    Pair {
        acceptor,
        edge,
        core,
    }
}

thread_local! {
    static PAIR: RefCell<Pair> = RefCell::new(pair());
}

fuzz_target!(|data: &[u8]| {
    PAIR.with(|p| {
        let mut p = p.borrow_mut();
        let now = Instant(10_000);
        let mut out = [0u8; 256];
        let _ = p.acceptor.accept_from(
            now,
            data,
            &data.len(),
            |_, _| Admission::NewSession,
            9,
            &mut out,
        );
        let _ = seal::receiver_index(data);
        let _ = seal::is_init(data);
        let _ = cookie::reply_receiver(data);
        let _ = cookie::open_reply(&[1; 32], &[0; 16], data);
        let mut d = data.to_vec();
        let _ = p.edge.handle_cookie(now, &d);
        if let Ok(Some(plain)) = p.core.open(now, &mut d) {
            // Only the edge's keys seal what the core opens: random bytes never do.
            panic!("forged datagram opened: {plain:?}");
        }
        let mut d = data.to_vec();
        if let Ok(Some(plain)) = p.edge.open(now, &mut d) {
            panic!("forged datagram opened: {plain:?}");
        }
    });
});
