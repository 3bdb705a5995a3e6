//! Any bytes as the body of an MCP POST: the parser never panics, and every message it
//! accepts survives a round trip (serialised by the router, parsed again) with its kind,
//! method, id and raw params unchanged, which is what forwarding relies on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpr_core::jsonrpc::{Message, parse_payload};

fuzz_target!(|data: &[u8]| {
    let Ok((messages, batch)) = parse_payload(data) else {
        return;
    };
    assert!(batch || messages.len() == 1);
    for message in messages {
        let kind = message.kind();
        let text = serde_json::to_vec(&message).expect("a parsed message serialises");
        let again = Message::parse(&text).expect("a serialised message parses");
        assert_eq!(again.kind(), kind);
        assert_eq!(again.method, message.method);
        assert_eq!(again.id, message.id);
        assert_eq!(
            again.params.as_ref().map(|p| p.get()),
            message.params.as_ref().map(|p| p.get())
        );
    }
});
