//! Braid bonds the uplinks of a router into one multipath tunnel to a cloud peer.
//!
//! `braid edge` runs on the router, `braid core` on the server. Client packets enter the edge
//! through its hub (a veth into a namespace it owns), are spread over every uplink, sealed with
//! authenticated encryption, and restored in order by the core, which forwards them with NAT.
//!
//! # Layout
//! - [`proto`]: the protocol core, free of I/O and of the clock (time is passed in): wire format,
//!   Noise handshake and AEAD, per-link estimation, the three schedulers, the reorder buffer and
//!   the session state machine.
//! - [`config`]: UCI parser, typed model, the pure diff behind live reload, and the memory
//!   budget every buffer bound is derived from ([`config::budget`]).
//! - [`ingress`]: the byte-bounded channel from TCP links to the event loop; [`memory`]: the
//!   budget's bounds turned into the sessions' and tables' settings.
//! - [`keytext`]: keys as base64 text ([`config`]'s key values, `braid genkey`/`pubkey`).
//! - [`classify`]: the edge's traffic classifier, [`config`]'s policies over [`proto`]'s packets.
//! - [`os`]: Linux I/O: rtnetlink, the space (namespace), the hub (AF_PACKET), uplink sockets, NAT.
//! - [`resolve`], [`devices`]: what the edge waits for at boot: the core's address (resolved off
//!   the event loop, with backoff and failover between addresses) and each link's device.
//! - [`linkmodel`]: the one emulation model of a link direction (rate or trace, delay, jitter,
//!   loss process, queue, outage schedule) that the simulator and the lab both replay.
//! - [`sim`]: the deterministic multi-link simulator behind `braid sim` and the tests, and the
//!   one scenario format and parser (`sim::scenario`, TOML) of the simulator and the lab.
//! - [`trace`]: Mahimahi link traces: the cellular link model and presets behind generated
//!   traces (`gen:hsr`), recorded trace files, their statistics (`braid trace`; host builds).
//! - [`lab`]: emulated topologies in network namespaces (host builds only).
//!
//! Layers point one way: `proto` uses nothing of ours, `config` nothing but `keytext`, `os` uses
//! `proto` (and `config`'s value types), the daemons use all of them: [`daemon`] is the runtime
//! both run (start-up, signals, hub capture, link and control sockets, errors), [`edge`] and
//! [`core_daemon`] each a thin event loop over its role's plain logic (fail-open, quotas,
//! neighbours, the config in the session's terms); the core uses nothing of the edge.
//! `sim` and `lab` share one emulation model (`linkmodel`, with `trace::Trace`), one scenario
//! parser (`sim::scenario`) and `config::model::parse_rate`. Unsafe code is forbidden everywhere
//! but `os`, `daemon`, `edge`, `cli` and `lab` (sockets, namespaces, `getrusage`), each unsafe
//! block with its SAFETY line.
//!
//! # Public API
//! Everything is `pub(crate)` unless something outside the library uses it. The public API is
//! what these use, and nothing more: `src/main.rs` (one entry point per command: [`cli`],
//! `edge::cli_main`, `core_daemon::cli_main`, `sim::cli_main`, `trace::cli::cli_main`,
//! `lab::cli_main`), the integration tests (`tests/`: the protocol's types, the UCI parser and
//! model, the control socket's status, the OS adapters and the lab they drive), `examples/` and
//! the fuzz targets (`fuzz/`). A module nothing outside names is `pub(crate) mod`. A new test
//! that needs an item makes it `pub` (and its module `pub mod`); the rest may change freely.
#![forbid(unsafe_op_in_unsafe_fn)]

pub(crate) mod classify;
pub mod cli;
pub mod config;
pub mod control;
#[cfg(target_os = "linux")]
pub mod core_daemon;
#[cfg(target_os = "linux")]
pub(crate) mod daemon;
pub(crate) mod devices;
#[cfg(target_os = "linux")]
pub mod edge;
pub(crate) mod ingress;
pub mod keytext;
#[cfg(target_os = "linux")]
pub(crate) mod memory;
pub mod proto;
pub(crate) mod resolve;

#[cfg(target_os = "linux")]
pub mod os;

#[cfg(feature = "sim")]
pub mod sim;

#[cfg(feature = "sim")]
pub mod trace;

#[cfg(feature = "sim")]
pub(crate) mod linkmodel;

#[cfg(feature = "lab")]
pub mod lab;
