//! The key string (SPEC 2.1): its shape, environment tag, id, checksum, `mark` and `prefix`, and that the
//! secret is shown only in the create answer.

use serde_json::json;

use crate::helpers::{env_tag, expected_check, Gateway, KeyParts, ENVIRONMENTS};

#[test]
fn secret_matches_the_secret_scanner_pattern() {
    let g = Gateway::new();
    for env in ENVIRONMENTS {
        let rec = g.new_key(json!({"environment": env}));
        let secret = rec["secret"].as_str().expect("secret");
        let parts = KeyParts::parse(secret)
            .unwrap_or_else(|| panic!("not kg_(prod|stg|dev)_[0-9A-Za-z]{{16}}_[0-9A-Za-z]{{38}}: {secret}"));
        assert_eq!(parts.prefix, "kg", "{secret}");
    }
}

#[test]
fn env_tag_matches_the_key_environment() {
    let g = Gateway::new();
    for env in ENVIRONMENTS {
        let rec = g.new_key(json!({"environment": env}));
        let parts = KeyParts::parse(rec["secret"].as_str().unwrap()).expect("key shape");
        assert_eq!(parts.env, env_tag(env), "environment {env}: {}", rec["secret"]);
        assert_eq!(rec["environment"], env);
    }
}

#[test]
fn id_in_the_secret_is_the_record_id() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    let parts = KeyParts::parse(rec["secret"].as_str().unwrap()).expect("key shape");
    assert_eq!(rec["id"], parts.id.as_str());
    assert_eq!(g.key(&parts.id)["id"], parts.id.as_str(), "the id in the key is the admin API id");
}

#[test]
fn check_is_base62_of_the_crc32_of_everything_before_it() {
    let g = Gateway::new();
    for _ in 0..8 {
        let rec = g.new_key(json!({"environment": "staging"}));
        let secret = rec["secret"].as_str().unwrap();
        let (body, check) = secret.split_at(secret.len() - 6);
        assert_eq!(check, expected_check(body), "check of {secret}: base62 (0-9A-Za-z) of the IEEE CRC32, padded to 6");
    }
}

#[test]
fn mark_is_the_last_four_characters() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    let secret = rec["secret"].as_str().unwrap();
    assert_eq!(rec["mark"], &secret[secret.len() - 4..]);
    assert_eq!(g.key(rec["id"].as_str().unwrap())["mark"], &secret[secret.len() - 4..]);
}

#[test]
fn prefix_is_the_public_start_of_the_key() {
    let g = Gateway::new();
    let rec = g.new_key(json!({"environment": "development"}));
    let id = rec["id"].as_str().unwrap();
    assert_eq!(rec["prefix"], format!("kg_dev_{id}"));
    assert!(rec["secret"].as_str().unwrap().starts_with(&format!("kg_dev_{id}_")));
}

#[test]
fn get_never_returns_the_secret() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    let secret = rec["secret"].as_str().unwrap();
    let r = g.api("GET", &format!("/v1/keys/{}", rec["id"].as_str().unwrap()), None);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.json().get("secret").is_none(), "GET shows a secret: {}", r.text);
    assert!(!r.text.contains(secret), "GET echoes the key: {}", r.text);
}

#[test]
fn every_key_is_different() {
    let g = Gateway::new();
    let a = g.new_key(json!({}));
    let b = g.new_key(json!({}));
    assert_ne!(a["id"], b["id"]);
    let (pa, pb) = (
        KeyParts::parse(a["secret"].as_str().unwrap()).unwrap(),
        KeyParts::parse(b["secret"].as_str().unwrap()).unwrap(),
    );
    assert_ne!(pa.random, pb.random, "the random part comes from a CSPRNG");
}

#[test]
fn custom_prefix_from_the_config_shows_up_in_new_keys() {
    let g = Gateway::start(|c| c["keys"]["prefix"] = "acmeco".into());
    let rec = g.new_key(json!({"environment": "production"}));
    let secret = rec["secret"].as_str().unwrap();
    let parts = KeyParts::parse(secret).unwrap_or_else(|| panic!("key shape: {secret}"));
    assert_eq!(parts.prefix, "acmeco");
    assert_eq!(rec["prefix"], format!("acmeco_prod_{}", parts.id));
    let (body, check) = secret.split_at(secret.len() - 6);
    assert_eq!(check, expected_check(body), "the prefix is part of the checksummed body");
    assert_eq!(g.get_with(secret, "/reports").status, 200, "a key with the custom prefix authenticates");
}
