//! The access log (SPEC §7): one JSON line per proxy request, to stdout, a file, or nowhere.
//!
//! The line is built in the proxy's `logging` phase and handed to `tracing-appender`'s non-blocking
//! writer, whose own thread does the I/O: a slow disk or a full pipe never stalls a request. Under
//! extreme pressure (over [`BUFFERED_LINES`] lines waiting) lines are dropped rather than requests
//! slowed. A line holds the path without its query string, ids and codes — never a key.

use std::io::Write;
use std::net::IpAddr;

use serde::Serialize;
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};

use crate::config::AccessLog as Destination;

/// Lines that may wait for the writer thread before new ones are dropped.
const BUFFERED_LINES: usize = 128 * 1024;

/// A cheap handle on the access log (clone of a channel sender).
#[derive(Clone)]
pub struct AccessLog {
    writer: Option<NonBlocking>,
}

/// One line. Field names are the contract's.
#[derive(Debug, Serialize)]
pub struct Line<'a> {
    pub ts: String,
    pub request_id: &'a str,
    pub method: &'a str,
    /// Without the query string.
    pub path: &'a str,
    pub status: u16,
    pub outcome: &'a str,
    pub key_id: Option<&'a str>,
    pub tenant: Option<&'a str>,
    pub environment: &'a str,
    pub client_ip: Option<IpAddr>,
    pub duration_ms: f64,
    pub upstream_ms: Option<f64>,
}

impl AccessLog {
    /// Opens the destination. Keep the guard until shutdown: dropping it writes what is buffered.
    pub fn open(destination: &Destination) -> std::io::Result<(Self, Option<WorkerGuard>)> {
        let builder = || {
            NonBlockingBuilder::default()
                .lossy(true)
                .buffered_lines_limit(BUFFERED_LINES)
                .thread_name("keygate-access-log")
        };
        let (writer, guard) = match destination {
            Destination::Off => return Ok((AccessLog { writer: None }, None)),
            Destination::Stdout => builder().finish(std::io::stdout()),
            Destination::File(path) => {
                let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
                builder().finish(file)
            }
        };
        Ok((AccessLog { writer: Some(writer) }, Some(guard)))
    }

    pub fn is_on(&self) -> bool {
        self.writer.is_some()
    }

    pub fn write(&self, line: &Line<'_>) {
        let Some(writer) = &self.writer else { return };
        let Ok(mut bytes) = serde_json::to_vec(line) else { return };
        bytes.push(b'\n');
        // One write is one message to the writer thread, so lines never interleave.
        let _ = writer.clone().write_all(&bytes);
    }
}

/// Milliseconds with microsecond precision.
pub fn millis(d: std::time::Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}

/// Now, RFC 3339 with milliseconds.
pub fn timestamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    now.format(&format).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_the_contract_fields() {
        let line = Line {
            ts: timestamp(),
            request_id: "r1",
            method: "GET",
            path: "/reports/7",
            status: 200,
            outcome: "proxied",
            key_id: Some("AAAAAAAAAAAAAAAA"),
            tenant: None,
            environment: "production",
            client_ip: Some("127.0.0.2".parse().unwrap()),
            duration_ms: 1.25,
            upstream_ms: Some(0.5),
        };
        let value: serde_json::Value = serde_json::to_value(&line).unwrap();
        let keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "client_ip",
                "duration_ms",
                "environment",
                "key_id",
                "method",
                "outcome",
                "path",
                "request_id",
                "status",
                "tenant",
                "ts",
                "upstream_ms"
            ]
        );
        assert_eq!(value["client_ip"], "127.0.0.2");
        assert!(line.ts.ends_with('Z') && line.ts.len() == 24, "{}", line.ts);
    }
}
