//! 32-byte keys as text: standard base64, 44 characters, as `wg genkey` prints them.
//!
//! The base layer under both [`crate::proto`] (which names keys in its Debug output) and
//! [`crate::config`] (which reads them from UCI): neither depends on the other for it.
#![forbid(unsafe_code)]

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// A 32-byte key in standard base64 (44 characters), as `wg` prints keys.
pub fn key_to_base64(key: &[u8; 32]) -> String {
    let mut out = String::with_capacity(44);
    for chunk in key.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Parses a key written by [`key_to_base64`] (or by `wg genkey`).
pub fn key_from_base64(s: &str) -> Option<[u8; 32]> {
    let s = s.trim().as_bytes();
    if s.len() != 44 || s[43] != b'=' || s[42] == b'=' {
        return None;
    }
    let mut out = [0u8; 33];
    let mut bits = 0u32;
    let mut nbits = 0;
    let mut at = 0;
    for &c in &s[..43] {
        let v = B64.iter().position(|&x| x == c)? as u32;
        bits = (bits << 6) | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out[at] = (bits >> nbits) as u8;
            at += 1;
        }
    }
    // 43 symbols carry 258 bits: the last two must be zero for a canonical encoding.
    if bits & ((1 << nbits) - 1) != 0 {
        return None;
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&out[..32]);
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_keys_round_trip() {
        // A key as `wg genkey` prints it.
        let k = key_from_base64("yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=").unwrap();
        assert_eq!(
            key_to_base64(&k),
            "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
        );
        assert_eq!(
            key_to_base64(&[0; 32]),
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
        );
        assert!(key_from_base64("short").is_none());
        assert!(key_from_base64("yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBm!=").is_none());
        assert!(
            key_from_base64("yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmn=").is_none(),
            "non-canonical"
        );
    }
}
