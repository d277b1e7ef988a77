//! The API key string: generation, parsing and verification (SPEC §2.1).
//!
//! A key reads `<prefix>_<env>_<id>_<random><check>`. The `id` is public and is how the index finds
//! the record; `check` is a CRC32 of everything before it, so typos and garbage are refused without
//! touching the index. Only the SHA-256 [`Digest`] of the whole string is ever stored.
//!
//! This module does no I/O and never logs: a [`Secret`] has a redacted `Debug` and no `Display`.

use std::fmt;

use rand::{rngs::OsRng, RngCore};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use crate::record::Environment;

/// Length of the public key id.
pub const ID_LEN: usize = 16;
/// Length of the random part (about 190 bits from the OS CSPRNG).
pub const RANDOM_LEN: usize = 32;
/// Length of the base62 CRC32 check.
pub const CHECK_LEN: usize = 6;

/// Base62 digits in the order SPEC §2.1 fixes: `0-9`, `A-Z`, `a-z`.
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A key's public id: 16 characters of `[0-9A-Za-z]`, stored inline so it hashes and copies cheaply.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; ID_LEN]);

/// SHA-256 of a full key string. The only form in which a key is kept.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Digest(pub [u8; 32]);

/// A full key string, as returned once at creation or rotation. Never logged, never stored.
pub struct Secret(String);

/// The last 4 characters of a key (UIs show it as `••••a9Zq`); kept inline, not as a `String`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Mark(pub(crate) [u8; 4]);

/// The pieces of a presented key string that parsed and whose checksum holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedKey {
    pub environment: Environment,
    pub id: KeyId,
}

// === impl KeyId ===

impl KeyId {
    /// A fresh random id.
    pub fn generate() -> Self {
        let mut id = [0u8; ID_LEN];
        fill_base62(&mut id);
        KeyId(id)
    }

    /// Parses a 16-character base62 id (as found in admin API paths).
    pub fn parse(text: &str) -> Option<Self> {
        let bytes: [u8; ID_LEN] = text.as_bytes().try_into().ok()?;
        bytes.iter().all(u8::is_ascii_alphanumeric).then_some(KeyId(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; ID_LEN] {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        // Invariant: only ASCII alphanumerics get in (`generate`, `parse`).
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.as_str())
    }
}

// === impl Digest ===

impl Digest {
    pub fn of(text: &[u8]) -> Self {
        Digest(Sha256::digest(text).into())
    }

    /// Constant-time comparison: the time taken does not depend on where the digests differ.
    pub fn matches(&self, other: &Digest) -> bool {
        bool::from(self.0[..].ct_eq(&other.0[..]))
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(text: &str) -> Option<Self> {
        // Digit by digit: `u8::from_str_radix` would also take a leading `+`.
        fn nibble(digit: u8) -> Option<u8> {
            (digit as char).to_digit(16).map(|value| value as u8)
        }
        let text = text.as_bytes();
        if text.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
            *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
        }
        Some(Digest(out))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Digest(..)")
    }
}

// === impl Secret ===

impl Secret {
    /// Generates a new key for `id` in `environment` under the configured `prefix`.
    pub fn generate(prefix: &str, environment: Environment, id: KeyId) -> Self {
        let mut random = [0u8; RANDOM_LEN];
        fill_base62(&mut random);
        let mut text = String::with_capacity(prefix.len() + 1 + 4 + 1 + ID_LEN + 1 + 38);
        text.push_str(prefix);
        text.push('_');
        text.push_str(environment.tag());
        text.push('_');
        text.push_str(id.as_str());
        text.push('_');
        // Invariant: base62 bytes are ASCII.
        text.push_str(std::str::from_utf8(&random).unwrap_or_default());
        let check = checksum(text.as_bytes());
        text.push_str(std::str::from_utf8(&check).unwrap_or_default());
        Secret(text)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn digest(&self) -> Digest {
        Digest::of(self.0.as_bytes())
    }

    /// The last four characters, shown by UIs as `••••a9Zq`.
    pub fn mark(&self) -> Mark {
        let tail = &self.0.as_bytes()[self.0.len() - 4..];
        Mark([tail[0], tail[1], tail[2], tail[3]])
    }
}

impl Mark {
    pub fn from_str_exact(text: &str) -> Option<Self> {
        let bytes: [u8; 4] = text.as_bytes().try_into().ok()?;
        bytes.iter().all(u8::is_ascii_alphanumeric).then_some(Mark(bytes))
    }

    pub fn as_str(&self) -> &str {
        // Invariant: only ASCII alphanumerics get in.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mark({})", self.as_str())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

// === parsing ===

/// Parses a presented key: the prefix, the environment tag, the id and the checksum must all hold.
/// Works on bytes, so any header value (even non-UTF-8) can be given; never panics.
pub fn parse(prefix: &str, presented: &[u8]) -> Option<ParsedKey> {
    let rest = presented.strip_prefix(prefix.as_bytes())?.strip_prefix(b"_")?;
    let (environment, rest) = Environment::ALL.iter().find_map(|env| {
        let after = rest.strip_prefix(env.tag().as_bytes())?.strip_prefix(b"_")?;
        Some((*env, after))
    })?;
    let (id, rest) = rest.split_at_checked(ID_LEN)?;
    let tail = rest.strip_prefix(b"_")?;
    if tail.len() != RANDOM_LEN + CHECK_LEN || !tail.iter().all(u8::is_ascii_alphanumeric) {
        return None;
    }
    let id = KeyId::parse(std::str::from_utf8(id).ok()?)?;
    let (body, check) = presented.split_at(presented.len() - CHECK_LEN);
    (checksum(body) == check).then_some(ParsedKey { environment, id })
}

/// The 6-character base62 rendering of the IEEE CRC32 of `body`, most significant digit first.
pub fn checksum(body: &[u8]) -> [u8; CHECK_LEN] {
    let mut n = crc32fast::hash(body);
    let mut out = [b'0'; CHECK_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out
}

/// `len` uniform base62 characters from the OS CSPRNG (for other secrets, e.g. admin tokens).
pub fn random_base62(len: usize) -> String {
    let mut out = vec![0u8; len];
    fill_base62(&mut out);
    // Invariant: base62 bytes are ASCII.
    String::from_utf8(out).unwrap_or_default()
}

/// Fills `out` with uniform base62 digits from the OS CSPRNG: one read of random bytes, each byte
/// below 248 (= 4 × 62) kept as `byte % 62` so every digit is equally likely, the rest redrawn.
fn fill_base62(out: &mut [u8]) {
    let mut pool = [0u8; 64];
    let mut used = pool.len();
    for slot in out.iter_mut() {
        loop {
            if used == pool.len() {
                OsRng.fill_bytes(&mut pool);
                used = 0;
            }
            let byte = pool[used];
            used += 1;
            if byte < 248 {
                *slot = BASE62[usize::from(byte % 62)];
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(env: Environment) -> (KeyId, Secret) {
        let id = KeyId::generate();
        (id, Secret::generate("kg", env, id))
    }

    #[test]
    fn generated_keys_have_the_documented_shape() {
        for env in Environment::ALL {
            let (id, secret) = fresh(env);
            let text = secret.expose();
            let parts: Vec<&str> = text.split('_').collect();
            assert_eq!(parts.len(), 4, "{text}");
            assert_eq!((parts[0], parts[1], parts[2]), ("kg", env.tag(), id.as_str()));
            assert_eq!(parts[3].len(), RANDOM_LEN + CHECK_LEN);
            assert!(parts[3].bytes().all(|b| b.is_ascii_alphanumeric()));
            assert_eq!(secret.mark().as_str(), &text[text.len() - 4..]);
        }
    }

    #[test]
    fn generated_keys_parse_back() {
        let (id, secret) = fresh(Environment::Staging);
        let parsed = parse("kg", secret.expose().as_bytes()).expect("parses");
        assert_eq!(parsed, ParsedKey { environment: Environment::Staging, id });
    }

    #[test]
    fn checksum_matches_the_spec_alphabet_and_padding() {
        // CRC32("") = 0 → all zeros; CRC32("a") = 0xE8B7BE43 = 3904355907.
        assert_eq!(&checksum(b""), b"000000");
        let mut n: u64 = 3_904_355_907;
        let mut expected = Vec::new();
        while n > 0 {
            expected.push(BASE62[(n % 62) as usize]);
            n /= 62;
        }
        expected.reverse();
        while expected.len() < 6 {
            expected.insert(0, b'0');
        }
        assert_eq!(checksum(b"a").to_vec(), expected);
        assert_eq!(&checksum(b"a"), b"4GEHKN", "base62 of 3904355907, 0-9A-Za-z order");
    }

    #[test]
    fn every_single_character_change_is_refused() {
        let (_, secret) = fresh(Environment::Production);
        let text = secret.expose().as_bytes().to_vec();
        for i in 0..text.len() {
            let mut changed = text.clone();
            changed[i] = if changed[i] == b'x' { b'y' } else { b'x' };
            assert!(parse("kg", &changed).is_none(), "change at {i} accepted");
        }
    }

    #[test]
    fn garbage_and_wrong_prefixes_are_refused() {
        let (_, secret) = fresh(Environment::Development);
        assert!(parse("other", secret.expose().as_bytes()).is_none());
        for junk in [&b""[..], b"kg", b"kg_dev_", b"\xff\xfe", b"kg_prod_AAAAAAAAAAAAAAAA_short"] {
            assert!(parse("kg", junk).is_none());
        }
        let mut long = secret.expose().as_bytes().to_vec();
        long.push(b'A');
        assert!(parse("kg", &long).is_none());
    }

    #[test]
    fn digest_comparison_and_hex_round_trip() {
        let a = Digest::of(b"one");
        assert!(a.matches(&Digest::of(b"one")));
        assert!(!a.matches(&Digest::of(b"two")));
        assert_eq!(Digest::from_hex(&a.to_hex()), Some(a));
        assert_eq!(Digest::from_hex("zz"), None);
        assert_eq!(Digest::from_hex(&a.to_hex().to_uppercase()), Some(a));
    }

    #[test]
    fn digest_hex_takes_hex_digits_only() {
        // Found by the key_parse fuzz target: a `+` sign before a pair was read as a digit pair.
        let hex = Digest::of(b"one").to_hex();
        for bad in [format!("+{}", &hex[1..]), format!("{}+{}", &hex[..10], &hex[11..]), format!("{} ", &hex[1..])] {
            assert_eq!(Digest::from_hex(&bad), None, "{bad:?}");
        }
        assert_eq!(Digest::from_hex(&format!("é{}", &hex[2..])), None);
    }

    #[test]
    fn random_digits_cover_the_whole_alphabet_evenly() {
        let mut counts = [0u32; 62];
        let mut buf = [0u8; 62 * 200];
        fill_base62(&mut buf);
        for b in buf {
            counts[BASE62.iter().position(|d| *d == b).expect("a base62 digit")] += 1;
        }
        // 200 expected per digit; a biased or truncated alphabet would leave some far off.
        assert!(counts.iter().all(|&c| (120..=290).contains(&c)), "{counts:?}");
    }

    #[test]
    fn secrets_do_not_print() {
        let (_, secret) = fresh(Environment::Production);
        assert_eq!(format!("{secret:?}"), "Secret(..)");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn environment() -> impl Strategy<Value = Environment> {
            prop::sample::select(Environment::ALL.to_vec())
        }

        proptest! {
            #[test]
            fn the_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
                let _ = parse("kg", &bytes);
            }

            #[test]
            fn near_keys_never_panic_the_parser(tail in "[0-9A-Za-z_]{0,80}", env in "(prod|stg|dev|x)") {
                let _ = parse("kg", format!("kg_{env}_{tail}").as_bytes());
            }

            #[test]
            fn generated_keys_round_trip(env in environment(), prefix in "[0-9A-Za-z]{1,16}") {
                let id = KeyId::generate();
                let secret = Secret::generate(&prefix, env, id);
                prop_assert_eq!(parse(&prefix, secret.expose().as_bytes()), Some(ParsedKey { environment: env, id }));
            }

            #[test]
            fn any_single_character_change_is_refused(position in 0usize..200, replacement in any::<u8>()) {
                let id = KeyId::generate();
                let secret = Secret::generate("kg", Environment::Production, id);
                let mut bytes = secret.expose().as_bytes().to_vec();
                let position = position % bytes.len();
                prop_assume!(bytes[position] != replacement);
                bytes[position] = replacement;
                prop_assert_eq!(parse("kg", &bytes), None);
            }
        }
    }
}
