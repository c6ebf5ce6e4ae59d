//! Noise IK handshake, AEAD and replay window.
