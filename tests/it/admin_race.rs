//! Concurrent admin mutations on one key (SPEC 5 "Durability", "Audit"): a rotation racing a revoke
//! always ends revoked with no grace period and no working secret; two rotations at once both succeed
//! and leave exactly one working secret, the later one; the audit chain stays intact throughout.

use std::sync::Barrier;
use std::thread;

use serde_json::{json, Value};

use crate::admin_helpers::{id, secret, verify};
use crate::helpers::{Gateway, RequestExt, Resp};

/// Runs `a` and `b` from two threads released together; returns both answers.
fn race(g: &Gateway, a: (&str, Option<Value>), b: (&str, Option<Value>)) -> (Resp, Resp) {
    let client = g.client("127.0.0.1");
    let base = format!("http://127.0.0.1:{}", g.ports.admin);
    let token = g.admin_token.clone();
    let barrier = Barrier::new(2);
    let send = |(path, body): (&str, Option<Value>)| {
        let mut rb = client.post(format!("{base}{path}")).bearer(&token);
        if let Some(body) = body {
            rb = rb.json(&body);
        }
        barrier.wait();
        rb.fetch()
    };
    let send = &send;
    thread::scope(|s| {
        let first = s.spawn(move || send(a));
        let second = s.spawn(move || send(b));
        (first.join().expect("thread a"), second.join().expect("thread b"))
    })
}

/// The proxy's status for a key.
fn proxy_status(g: &Gateway, key: &str) -> u16 {
    g.get_with(key, "/reports").status
}

#[test]
fn a_rotation_racing_a_revoke_always_ends_revoked_with_no_working_secret() {
    let g = Gateway::new();
    for _ in 0..20 {
        let rec = g.new_key(json!({}));
        let key_id = id(&rec);
        let (rotated, revoked) = race(
            &g,
            (&format!("/v1/keys/{key_id}/rotate"), Some(json!({"grace_period": "1h"}))),
            (&format!("/v1/keys/{key_id}/revoke"), None),
        );
        assert_eq!(revoked.status, 200, "the only revoke must succeed: {revoked:?}");
        match rotated.status {
            200 => {
                let new = rotated.json();
                assert_eq!(proxy_status(&g, secret(&new)), 401, "the rotated secret of a revoked key works");
            }
            409 => assert_eq!(rotated.json()["code"], "invalid_state", "{rotated:?}"),
            _ => panic!("rotate racing revoke: {rotated:?}"),
        }
        let after = g.key(key_id);
        assert_eq!(after["status"], "revoked", "{after}");
        assert!(after["rotation"].is_null(), "a revoked key kept a grace period: {after}");
        assert_eq!(proxy_status(&g, secret(&rec)), 401, "the original secret of a revoked key works");
    }
    let v = verify(&g);
    assert_eq!((v["ok"].as_bool(), v["first_bad"].is_null()), (Some(true), true), "{v}");
}

#[test]
fn two_rotations_at_once_leave_exactly_the_later_secret_working() {
    let g = Gateway::new();
    for _ in 0..10 {
        let rec = g.new_key(json!({}));
        let path = format!("/v1/keys/{}/rotate", id(&rec));
        let (a, b) = race(&g, (&path, None), (&path, None));
        assert_eq!((a.status, b.status), (200, 200), "both rotations succeed: {a:?} {b:?}");
        let (a, b) = (a.json(), b.json());
        let works: Vec<&Value> = [&a, &b].into_iter().filter(|r| proxy_status(&g, secret(r)) == 200).collect();
        assert_eq!(works.len(), 1, "exactly one of the two new secrets must work");
        let mark = g.key(id(&rec))["mark"].clone();
        let winner = secret(works[0]);
        assert_eq!(mark.as_str(), Some(&winner[winner.len() - 4..]), "the working secret is the stored (later) one");
        assert_eq!(proxy_status(&g, secret(&rec)), 401, "the original secret still works");
    }
    let v = verify(&g);
    assert_eq!((v["ok"].as_bool(), v["first_bad"].is_null()), (Some(true), true), "{v}");
}
