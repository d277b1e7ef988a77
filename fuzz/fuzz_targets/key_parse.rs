//! Fuzz target `key_parse`: the API-key parser and its checksum/verify path (`keygate::key`).
//!
//! Properties checked on every input:
//! 1. `key::parse` never panics, whatever the bytes (a header value may be anything), for the
//!    default prefix `kg` and for a prefix taken from the input itself.
//! 2. Anything `parse` accepts round-trips: `<prefix>_<env tag>_<id>_<tail>` re-rendered from the
//!    parsed environment and id (plus the input's 38-character tail) equals the input byte for byte,
//!    the tail is base62, and its last 6 characters are `checksum` of everything before them.
//! 3. A key built from the input the way `Secret::generate` builds one (base62 id and random part,
//!    CRC32 check) is accepted with its environment and id, its digest verifies, and changing any one
//!    byte of it gets it refused.
//! 4. The smaller parsers of the module never panic and round-trip what they accept:
//!    `KeyId::parse`/`as_str`, `Mark::from_str_exact`/`as_str`, `Digest::from_hex`/`to_hex`.
#![no_main]

use keygate::key::{self, Digest, KeyId, Mark, ParsedKey, CHECK_LEN, ID_LEN, RANDOM_LEN};
use keygate::record::Environment;
use libfuzzer_sys::fuzz_target;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fuzz_target!(|data: &[u8]| {
    // 1 + 2 with the default prefix.
    check_parse("kg", data);
    // 1 + 2 with the input's own prefix (what a config with another `keys.prefix` would use).
    if let Some(head) = data.split(|b| *b == b'_').next().and_then(|h| std::str::from_utf8(h).ok()) {
        check_parse(head, data);
    }
    // 3.
    check_built_key(data);
    // 4.
    if let Ok(text) = std::str::from_utf8(data) {
        check_small_parsers(text);
    }
});

fn check_parse(prefix: &str, presented: &[u8]) {
    let Some(ParsedKey { environment, id }) = key::parse(prefix, presented) else { return };
    let tail_len = RANDOM_LEN + CHECK_LEN;
    assert!(presented.len() > tail_len, "accepted a key shorter than its tail: {presented:?}");
    let tail = &presented[presented.len() - tail_len..];
    assert!(tail.iter().all(u8::is_ascii_alphanumeric), "accepted a non-base62 tail: {presented:?}");
    let mut rendered = format!("{prefix}_{}_{}_", environment.tag(), id.as_str()).into_bytes();
    rendered.extend_from_slice(tail);
    assert_eq!(rendered, presented, "accepted key does not re-render to itself");
    let (body, check) = presented.split_at(presented.len() - CHECK_LEN);
    assert_eq!(&key::checksum(body)[..], check, "accepted key with a wrong checksum");
    assert!(Digest::of(presented).matches(&Digest::of(&rendered)));
}

fn check_built_key(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else { return };
    let environment = Environment::ALL[usize::from(first) % 3];
    let digit = |i: usize| BASE62[usize::from(rest.get(i).copied().unwrap_or(0)) % 62];
    let id: Vec<u8> = (0..ID_LEN).map(digit).collect();
    let random: Vec<u8> = (ID_LEN..ID_LEN + RANDOM_LEN).map(digit).collect();
    let id_text = std::str::from_utf8(&id).expect("base62 is ASCII");
    let id = KeyId::parse(id_text).expect("16 base62 characters are a key id");

    let mut text = format!("kg_{}_{}_", environment.tag(), id_text).into_bytes();
    text.extend_from_slice(&random);
    let check = key::checksum(&text);
    text.extend_from_slice(&check);
    assert_eq!(key::parse("kg", &text), Some(ParsedKey { environment, id }), "a well-formed key is refused");
    let digest = Digest::of(&text);
    assert!(digest.matches(&Digest::of(&text)));
    assert_eq!(Digest::from_hex(&digest.to_hex()), Some(digest));

    // One changed byte (position and new value from the input) must be refused, and its digest differ.
    let at = rest.get(ID_LEN + RANDOM_LEN).copied().map_or(0, usize::from) % text.len();
    let value = rest.get(ID_LEN + RANDOM_LEN + 1).copied().unwrap_or(b'x');
    if text[at] != value {
        let mut changed = text.clone();
        changed[at] = value;
        assert_eq!(key::parse("kg", &changed), None, "a one-byte change at {at} to {value:#04x} is accepted");
        assert!(!digest.matches(&Digest::of(&changed)));
    }
}

fn check_small_parsers(text: &str) {
    if let Some(id) = KeyId::parse(text) {
        assert_eq!(id.as_str(), text);
        assert_eq!(id.to_string(), text);
    }
    if let Some(mark) = Mark::from_str_exact(text) {
        assert_eq!(mark.as_str(), text);
    }
    if let Some(digest) = Digest::from_hex(text) {
        // Hex digits are case-insensitive on input; the rendering is lower case.
        assert_eq!(digest.to_hex(), text.to_ascii_lowercase(), "Digest::from_hex accepted a non-hex rendering");
    }
}
