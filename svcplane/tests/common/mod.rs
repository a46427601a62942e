//! What the svcplane process tests share: a plain-HTTP GET against the health/metrics
//! listener and the check that a scrape is upstream's exposition.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An HTTP answer: status, Content-Type (if any) and body.
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: String,
}

/// GET `path` on 127.0.0.1:`port`; `None` when nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<Answer> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let content_type = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("content-type")
            .then(|| value.trim().to_string())
    });
    Some(Answer {
        status,
        content_type,
        body: body.to_string(),
    })
}

/// Asserts a scrape is Prometheus text 0.0.4 with counters under their registered names, and
/// that it holds a line starting with each of `lines`.
pub fn assert_upstream_exposition(answer: &Answer, lines: &[&str]) {
    assert_eq!(
        answer.content_type.as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let metrics = &answer.body;
    for line in [
        "# TYPE endpoint_slice_controller_syncs counter",
        "# TYPE endpoint_slice_controller_changes counter",
        "endpoint_slice_controller_syncs{result=\"success\"} ",
    ]
    .iter()
    .chain(lines)
    {
        assert!(
            metrics.lines().any(|l| l.starts_with(line)),
            "{line}\n{metrics}"
        );
    }
    for openmetrics_only in [
        "_syncs_total",
        "_changes_total",
        "_total_total",
        "_created",
        "# EOF",
    ] {
        assert!(!metrics.contains(openmetrics_only), "{metrics}");
    }
}
