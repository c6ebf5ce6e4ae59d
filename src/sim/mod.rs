//! The deterministic multi-link simulator behind `braid sim`.
