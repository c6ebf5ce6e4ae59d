//! Mahimahi link traces as the lab's emulator replays them: [`crate::trace::Trace`], the one
//! trace type of the simulator and the lab. Where traces come from (generated or recorded) is
//! [`crate::trace`].

pub use crate::trace::Trace;
