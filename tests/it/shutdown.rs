//! The process lifecycle (SPEC 1): on SIGTERM in-flight requests finish and the process exits with status 0;
//! a SIGTERM as soon as keygate answers at all drains like any other; a second keygate on a store that
//! one already holds refuses to start and leaves the first serving.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{
    default_config, keygate_command, poll, run_cli, signal, yaml, FakeMode, FakeUpstream, Gateway, Ports, RequestExt,
};

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

/// True once `GET /healthz` on `port` gets any HTTP answer.
fn answers_http(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut head = [0u8; 12];
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").is_ok()
        && stream.read_exact(&mut head).is_ok()
        && head.starts_with(b"HTTP/1.1 ")
}

#[test]
fn a_sigterm_as_soon_as_keygate_answers_drains_and_exits_zero() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ports = Ports::pick();
    let config = default_config(ports, ["127.0.0.1:9"; 3], &dir.path().join("keygate.db"));
    let config_path = dir.path().join("keygate.yaml");
    std::fs::write(&config_path, serde_yaml::to_string(&config).expect("yaml")).expect("write config");
    let stderr_path = dir.path().join("stderr.log");
    let mut child = keygate_command()
        .args(["serve", "--config"])
        .arg(&config_path)
        .env("KEYGATE_ADMIN_TOKEN", "kg-test-token-for-shutdown")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("spawn keygate serve");
    let stderr = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    // The earliest moment a supervisor could see keygate up: its first HTTP answer on any listener.
    let end = Instant::now() + Duration::from_secs(20);
    while !answers_http(ports.admin) {
        assert!(child.try_wait().expect("try_wait").is_none(), "keygate exited at startup\n{}", stderr());
        assert!(Instant::now() < end, "keygate never answered\n{}", stderr());
        thread::sleep(Duration::from_millis(1));
    }
    signal(child.id(), "TERM");
    let status = poll(Duration::from_secs(20), || child.try_wait().expect("try_wait")).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("keygate did not exit within 20 s of SIGTERM\n{}", stderr())
    });
    assert!(status.success(), "exit status {status} (killed by the signal, not drained)\n{}", stderr());
    assert!(stderr().contains("SIGTERM: draining"), "{}", stderr());
}
