//! The process lifecycle (SPEC 1): on SIGTERM in-flight requests finish and the process exits with status 0;
//! a second keygate on a store that one already holds refuses to start and leaves the first serving.

use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{poll, run_cli, yaml, FakeMode, FakeUpstream, Gateway, RequestExt};

#[test]
fn an_in_flight_request_completes_during_sigterm() {
    let slow = FakeUpstream::start(FakeMode::AnswerAfter(Duration::from_secs(1)));
    let addr = slow.addr.clone();
    let mut g = Gateway::start(move |c| c["environments"]["production"]["upstreams"] = yaml(json!([addr])));
    let rec = g.new_key(json!({}));
    let request = g.call("GET", "/slow").key(rec["secret"].as_str().unwrap());
    let in_flight = thread::spawn(move || request.fetch());
    poll(Duration::from_secs(5), || (slow.accepted.load(Ordering::SeqCst) > 0).then_some(()))
        .expect("the request never reached the slow upstream");
    let started = Instant::now();
    let status = g.stop();
    let r = in_flight.join().expect("request thread");
    assert_eq!(r.status, 200, "the in-flight request was cut off: {r:?}");
    assert_eq!(r.text, "slow");
    assert!(status.success(), "exit status {status} after SIGTERM\n{}", g.tail());
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?} to exit", started.elapsed());
}

#[test]
fn sigterm_exits_with_status_zero() {
    let mut g = Gateway::new();
    let rec = g.new_key(json!({}));
    assert_eq!(g.get_with(rec["secret"].as_str().unwrap(), "/reports").status, 200);
    let started = Instant::now();
    let status = g.stop();
    assert!(status.success(), "exit status {status} after SIGTERM\n{}", g.tail());
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?} to exit", started.elapsed());
}

#[test]
fn a_second_keygate_on_the_same_store_refuses_to_start_and_the_first_serves_on() {
    let g = Gateway::new();
    let rec = g.new_key(json!({}));
    let config = g.config_path().to_string_lossy().into_owned();
    let second = run_cli(&["serve", "--config", &config], None, &[], g.dir());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "a second keygate started on a held store\n{stderr}");
    assert!(stderr.contains("cannot open the store at"), "stderr does not name the store:\n{stderr}");
    assert!(stderr.contains("another keygate"), "stderr does not say what to check:\n{stderr}");
    assert_eq!(g.get_with(rec["secret"].as_str().unwrap(), "/reports").status, 200, "{}", g.tail());
}
