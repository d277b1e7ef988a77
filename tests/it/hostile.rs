//! Hostile input on the proxy and faults of the upstream (issue 6): raw bytes over TCP, never a 5xx
//! from keygate itself, never a hang, never a key accepted that should not be, and the gateway goes
//! on serving afterwards.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{free_port, poll, yaml, FakeMode, FakeUpstream, Gateway};

/// Sends raw bytes to the proxy and reads the answer until the peer closes or `timeout` passes.
fn raw(g: &Gateway, request: &[u8], timeout: Duration) -> (String, bool) {
    let mut stream = TcpStream::connect(("127.0.0.1", g.ports.proxy)).expect("connect to the proxy");
    stream.set_read_timeout(Some(timeout)).unwrap();
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let mut buf = [0u8; 65536];
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&answer).into_owned(), closed)
}

fn status_line(answer: &str) -> &str {
    answer.split("\r\n").next().unwrap_or_default()
}

/// The gateway still admits a valid key after whatever came before.
fn still_serving(g: &Gateway) {
    let key = g.new_key(json!({}));
    assert_eq!(
        g.get_with(key["secret"].as_str().unwrap(), "/after").status,
        200,
        "the gateway stopped serving\n{}",
        g.tail()
    );
}

#[test]
fn a_10_kb_key_header_is_invalid_api_key() {
    let g = Gateway::new();
    let big = "A".repeat(10 * 1024);
    let request = format!("GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-API-Key: {big}\r\n\r\n");
    let (answer, _) = raw(&g, request.as_bytes(), Duration::from_secs(5));
    assert!(status_line(&answer).contains(" 401 "), "{}", status_line(&answer));
    assert!(answer.contains("invalid_api_key") && !answer.contains(&big), "the key is never echoed");
    still_serving(&g);
}

#[test]
fn a_hundred_different_key_headers_are_ambiguous() {
    let g = Gateway::new();
    let headers: String = (0..100).map(|i| format!("X-API-Key: k{i}\r\n")).collect();
    let request = format!("GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n{headers}\r\n");
    let (answer, _) = raw(&g, request.as_bytes(), Duration::from_secs(5));
    assert!(status_line(&answer).contains(" 401 ") && answer.contains("ambiguous_api_key"), "{answer}");
    still_serving(&g);
}

#[test]
fn non_utf8_key_bytes_are_invalid_api_key() {
    let g = Gateway::new();
    let mut request = b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-API-Key: kg_prod_".to_vec();
    request.extend_from_slice(b"\xff\xfe\x80\xc3\x28\r\n\r\n");
    let (answer, _) = raw(&g, &request, Duration::from_secs(5));
    assert!(status_line(&answer).contains(" 401 ") && answer.contains("invalid_api_key"), "{answer}");
    still_serving(&g);
}

#[test]
fn oversized_request_headers_are_refused_without_a_5xx() {
    let g = Gateway::new();
    let padding: String = (0..2000).map(|i| format!("X-Pad-{i}: {}\r\n", "p".repeat(1000))).collect();
    let request = format!("GET /x HTTP/1.1\r\nHost: a\r\n{padding}\r\n");
    let (answer, _) = raw(&g, request.as_bytes(), Duration::from_secs(5));
    let line = status_line(&answer);
    assert!(line.contains(" 4"), "2 MB of headers must be refused with a 4xx, got {line:?}");
    still_serving(&g);
}

#[test]
fn a_huge_body_on_a_rejected_request_is_not_read() {
    let g = Gateway::new();
    let started = Instant::now();
    let mut request = b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100000000\r\n\r\n".to_vec();
    request.extend_from_slice(&[b'x'; 4096]);
    let (answer, closed) = raw(&g, &request, Duration::from_secs(5));
    assert!(status_line(&answer).contains(" 401 ") && answer.contains("missing_api_key"), "{answer}");
    assert!(closed, "the connection is closed instead of draining 100 MB");
    assert!(started.elapsed() < Duration::from_secs(5), "answered without reading the body");
    still_serving(&g);
}

#[test]
fn a_garbage_request_line_is_400_and_the_next_request_is_served() {
    let g = Gateway::new();
    let (answer, _) = raw(&g, b"\x00\x01\x02 not http at all\r\n\r\n", Duration::from_secs(5));
    assert!(status_line(&answer).contains(" 400 "), "{answer:?}");
    still_serving(&g);
}

#[test]
fn an_upstream_that_comes_back_is_served_again_without_a_restart() {
    let port = free_port();
    let g = Gateway::start(move |c| {
        c["environments"]["production"]["upstreams"] = vec![format!("127.0.0.1:{port}")].into()
    });
    let key = g.new_key(json!({}));
    let secret = key["secret"].as_str().unwrap().to_owned();
    assert_eq!(g.get_with(&secret, "/down").status, 502, "nothing listens yet");
    let mut echo = Command::new(env!("CARGO_BIN_EXE_keygate-echo"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--name", "production"])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn keygate-echo");
    let served = poll(Duration::from_secs(10), || (g.get_with(&secret, "/up").status == 200).then_some(()));
    let _ = echo.kill();
    let _ = echo.wait();
    assert!(served.is_some(), "the upstream came back but the gateway did not use it");
}

#[test]
fn an_upstream_reset_in_mid_body_ends_that_answer_and_the_next_request_is_fine() {
    // An upstream that promises 1000 bytes, sends 10, and drops the connection; then answers well.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut head = [0u8; 4096];
            let _ = stream.read(&mut head);
            if n == 0 {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789");
            } else {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            }
            drop(stream);
        }
    });
    let g = Gateway::start(move |c| c["environments"]["production"]["upstreams"] = vec![addr].into());
    let key = g.new_key(json!({}));
    let secret = key["secret"].as_str().unwrap().to_owned();
    let request = format!("GET /cut HTTP/1.1\r\nHost: a\r\nX-API-Key: {secret}\r\n\r\n");
    let (answer, closed) = raw(&g, request.as_bytes(), Duration::from_secs(10));
    assert!(closed, "the truncated answer ends with the connection, not a hang");
    let body = answer.split_once("\r\n\r\n").map_or(0, |(_, body)| body.len());
    assert!(body < 1000, "the client must not receive a complete-looking 1000-byte body ({body} bytes)");
    let next = g.get_with(&secret, "/next");
    assert_eq!((next.status, next.text.as_str()), (200, "ok"), "the next request is served");
}

// ------------------------------------------------------------------------------------------ slow clients

/// A gateway whose clients get `timeout` to send a request header.
fn with_header_timeout(timeout: &'static str) -> Gateway {
    Gateway::start(move |c| c["proxy"]["client_header_timeout"] = timeout.into())
}

/// One read, waiting at most 100 ms: true once the peer has closed the connection (end of stream or
/// reset), false when nothing came. An incomplete request header must never get an answer.
fn peer_closed(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut buf = [0u8; 4096];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(n) => panic!("an incomplete header got an answer: {}", String::from_utf8_lossy(&buf[..n])),
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

/// Waits until the peer closes the connection; false if it stayed open past `limit`.
fn wait_until_closed(stream: &mut TcpStream, limit: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if peer_closed(stream) {
            return true;
        }
    }
    false
}

fn header_timeouts(g: &Gateway) -> f64 {
    crate::ops_helpers::value(&crate::ops_helpers::scrape(g), "keygate_client_header_timeouts_total", &[])
}

#[test]
fn a_client_that_stalls_mid_header_is_cut_at_the_header_timeout() {
    let g = with_header_timeout("1s");
    // Timed from before the connect, so the cut can never look earlier than the server's deadline.
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", g.ports.proxy)).unwrap();
    stream.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\nX-API-Ke").unwrap();
    assert!(wait_until_closed(&mut stream, Duration::from_secs(10)), "a stalled header holds the connection");
    let closed = started.elapsed();
    assert!(closed >= Duration::from_secs(1), "cut before its timeout: {closed:?}");
    assert_eq!(header_timeouts(&g), 1.0);
    still_serving(&g);
}

#[test]
fn a_client_trickling_its_header_is_cut_at_the_header_timeout() {
    let g = with_header_timeout("1s");
    let started = Instant::now(); // before the connect, as above
    let mut stream = TcpStream::connect(("127.0.0.1", g.ports.proxy)).unwrap();
    // One byte every 100 ms, never a whole header: each read is quick, the header never completes.
    let header =
        b"GET /slowloris HTTP/1.1\r\nHost: a\r\n".iter().chain(b"X-Padding: ".iter()).chain([b'a'; 200].iter());
    let mut cut = None;
    for byte in header {
        if stream.write_all(&[*byte]).is_err() || peer_closed(&mut stream) {
            cut = Some(started.elapsed());
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "a trickling client was never cut");
    }
    let cut = cut.expect("the trickling client was never cut");
    assert!(cut >= Duration::from_secs(1) && cut < Duration::from_secs(5), "cut after {cut:?}");
    assert_eq!(header_timeouts(&g), 1.0);
    still_serving(&g);
}

#[test]
fn a_kept_alive_connection_may_idle_longer_than_the_header_timeout() {
    let g = with_header_timeout("1s");
    let key = g.new_key(json!({}));
    let secret = key["secret"].as_str().unwrap();
    let request = format!("GET /a HTTP/1.1\r\nHost: a\r\nX-API-Key: {secret}\r\n\r\n");
    let mut stream = TcpStream::connect(("127.0.0.1", g.ports.proxy)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let read_answer = |stream: &mut TcpStream| {
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&answer).contains("\r\n\r\n") {
            let n = stream.read(&mut buf).expect("an answer on the kept-alive connection");
            assert!(n > 0, "the kept-alive connection was closed");
            answer.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&answer).into_owned()
    };
    assert!(read_answer(&mut stream).starts_with("HTTP/1.1 200"));
    // Idle for two header timeouts: the deadline of an idle kept-alive connection is pingora's
    // keep-alive idle time plus the header timeout, so the connection must still serve.
    let idle_until = Instant::now() + Duration::from_secs(2);
    poll(Duration::from_secs(3), || (Instant::now() >= idle_until).then_some(()));
    stream.write_all(request.as_bytes()).unwrap();
    assert!(read_answer(&mut stream).starts_with("HTTP/1.1 200"), "the second request on the connection failed");
    assert_eq!(header_timeouts(&g), 0.0);
}

#[test]
fn a_slow_upstream_is_not_cut_by_the_header_timeout() {
    // The header deadline must not run while a request is being served.
    let slow = FakeUpstream::start(FakeMode::AnswerAfter(Duration::from_secs(2)));
    let addr = slow.addr.clone();
    let g = Gateway::start(move |c| {
        c["proxy"]["client_header_timeout"] = "1s".into();
        c["environments"]["production"]["upstreams"] = yaml(json!([addr]));
    });
    let key = g.new_key(json!({}));
    let r = g.get_with(key["secret"].as_str().unwrap(), "/slow");
    assert_eq!((r.status, r.text.as_str()), (200, "slow"), "{r:?}");
    assert_eq!(header_timeouts(&g), 0.0);
}
