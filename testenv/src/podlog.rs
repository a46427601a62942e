//! The `pods/log` subresource: `PodLogOptions` from the query (validated as
//! `ValidatePodLogOptions` does, 422 `Invalid`), the container's log from the runtime, rendered as
//! the kubelet renders it (`tailLines`, `sinceSeconds`/`sinceTime`, `timestamps`, `limitBytes`),
//! answered `200 text/plain`, and with `follow` streamed chunk by chunk until the runtime closes
//! the log or the client leaves (k/k `pkg/registry/core/pod/rest/log.go`,
//! `pkg/kubelet/kuberuntime/logs/logs.go`).

use std::convert::Infallible;

use bytes::Bytes;
use http::Response;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use jiff::Timestamp;
use tokio::sync::broadcast;

use crate::pod_target::{choose_container, get_pod, no_runtime, pod_ref, runtime_error};
use crate::runtime::LogEntry;
use crate::server::{ApiServer, Body, bytes_response, error_response};
use crate::status::{ApiError, StatusCause, cause};

/// `PodLogOptions` from the query.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogOptions {
    /// `container`.
    pub container: Option<String>,
    /// `follow`.
    pub follow: bool,
    /// `previous`.
    pub previous: bool,
    /// `timestamps`.
    pub timestamps: bool,
    /// `tailLines`.
    pub tail_lines: Option<i64>,
    /// `limitBytes`.
    pub limit_bytes: Option<i64>,
    /// `sinceSeconds`.
    pub since_seconds: Option<i64>,
    /// `sinceTime`.
    pub since_time: Option<Timestamp>,
}

fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A boolean parameter as apimachinery converts it: `0` and `false` are false, anything else true.
fn query_bool(pairs: &[(String, String)], key: &str) -> bool {
    first(pairs, key).is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// An integer parameter; a value that is not one is a 400 worded as Go's `strconv.ParseInt`.
fn query_int(pairs: &[(String, String)], key: &str) -> Result<Option<i64>, ApiError> {
    first(pairs, key)
        .map(|v| {
            v.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!(
                    "strconv.ParseInt: parsing {}: invalid syntax",
                    crate::meta::go_quote(v)
                ))
            })
        })
        .transpose()
}

impl LogOptions {
    /// Reads and validates the options of a request for pod `name`'s log.
    pub fn from_query(pairs: &[(String, String)], name: &str) -> Result<Self, ApiError> {
        let since_time = first(pairs, "sinceTime")
            .map(|v| {
                v.parse::<Timestamp>().map_err(|_| {
                    ApiError::bad_request(format!(
                        "parsing time {} as \"2006-01-02T15:04:05Z07:00\": not an RFC 3339 time",
                        crate::meta::go_quote(v)
                    ))
                })
            })
            .transpose()?;
        let options = Self {
            container: first(pairs, "container")
                .filter(|c| !c.is_empty())
                .map(str::to_string),
            follow: query_bool(pairs, "follow"),
            previous: query_bool(pairs, "previous"),
            timestamps: query_bool(pairs, "timestamps"),
            tail_lines: query_int(pairs, "tailLines")?,
            limit_bytes: query_int(pairs, "limitBytes")?,
            since_seconds: query_int(pairs, "sinceSeconds")?,
            since_time,
        };
        let causes = options.validate(first(pairs, "stream").is_some());
        if causes.is_empty() {
            Ok(options)
        } else {
            Err(ApiError::invalid("PodLogOptions", "", name, &causes))
        }
    }

    /// `ValidatePodLogOptions` with the split-streams gate off (its default through 1.34).
    fn validate(&self, stream_given: bool) -> Vec<StatusCause> {
        let mut causes = Vec::new();
        if let Some(n) = self.tail_lines.filter(|n| *n < 0) {
            causes.push(cause(
                "FieldValueInvalid",
                "tailLines",
                format!("Invalid value: {n}: must be greater than or equal to 0"),
            ));
        }
        if let Some(n) = self.limit_bytes.filter(|n| *n < 1) {
            causes.push(cause(
                "FieldValueInvalid",
                "limitBytes",
                format!("Invalid value: {n}: must be greater than 0"),
            ));
        }
        match (self.since_seconds, self.since_time) {
            (Some(_), Some(_)) => causes.push(cause(
                "FieldValueForbidden",
                "",
                "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified",
            )),
            (Some(n), None) if n < 1 => causes.push(cause(
                "FieldValueInvalid",
                "sinceSeconds",
                format!("Invalid value: {n}: must be greater than 0"),
            )),
            _ => {}
        }
        if stream_given {
            causes.push(cause(
                "FieldValueForbidden",
                "stream",
                "Forbidden: may not be specified",
            ));
        }
        causes
    }

    /// The earliest line time shown, from `sinceTime` or `sinceSeconds` before `now`.
    pub fn since(&self, now: Timestamp) -> Option<Timestamp> {
        self.since_time.or_else(|| {
            self.since_seconds
                .and_then(|s| now.checked_sub(jiff::SignedDuration::from_secs(s)).ok())
        })
    }
}

/// A time as the kubelet prefixes log lines: RFC 3339 with nanoseconds always nine digits, UTC.
pub fn format_timestamp(t: Timestamp) -> String {
    format!(
        "{}.{:09}Z",
        t.strftime("%Y-%m-%dT%H:%M:%S"),
        t.subsec_nanosecond()
    )
}

/// A piece of one line: a whole line, or the part of one that a single write held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinePiece {
    /// When the write that held it happened.
    pub time: Timestamp,
    /// The bytes, with the line's `\n` if this piece ends it.
    pub bytes: Bytes,
    /// Whether the line starts here (and not in an earlier write).
    pub starts_line: bool,
}

/// Cuts writes into line pieces, remembering across writes whether a line is open.
#[derive(Debug, Clone, Default)]
pub struct LineSplitter {
    in_line: bool,
}

impl LineSplitter {
    /// The pieces of one write.
    pub fn split(&mut self, entry: &LogEntry) -> Vec<LinePiece> {
        let mut pieces = Vec::new();
        let mut rest = entry.bytes.clone();
        while !rest.is_empty() {
            let end = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |i| i + 1);
            let piece = rest.split_to(end);
            let ends_line = piece.last() == Some(&b'\n');
            pieces.push(LinePiece {
                time: entry.time,
                bytes: piece,
                starts_line: !self.in_line,
            });
            self.in_line = !ends_line;
        }
        pieces
    }
}

/// The pieces from where the last `n` lines start.
pub fn tail(pieces: Vec<LinePiece>, n: usize) -> Vec<LinePiece> {
    let starts: Vec<usize> = pieces
        .iter()
        .enumerate()
        .filter(|(_, p)| p.starts_line)
        .map(|(i, _)| i)
        .collect();
    if n == 0 {
        return Vec::new();
    }
    match starts.len().checked_sub(n) {
        Some(skip) if skip > 0 => pieces.into_iter().skip(starts[skip]).collect(),
        _ => pieces,
    }
}

/// Turns line pieces into the response bytes: drops lines older than `since`, prefixes each line
/// with its time for `timestamps`, and stops at `limitBytes`.
#[derive(Debug, Clone)]
pub struct LogRenderer {
    timestamps: bool,
    since: Option<Timestamp>,
    remaining: Option<u64>,
    showing_line: bool,
}

impl LogRenderer {
    /// A renderer for `options`, with `now` for `sinceSeconds`.
    pub fn new(options: &LogOptions, now: Timestamp) -> Self {
        Self {
            timestamps: options.timestamps,
            since: options.since(now),
            remaining: options.limit_bytes.map(|n| n.max(0) as u64),
            showing_line: true,
        }
    }

    /// Whether `limitBytes` is used up: nothing more will be written.
    pub fn is_done(&self) -> bool {
        self.remaining == Some(0)
    }

    /// Appends what `piece` contributes to `out`.
    pub fn render(&mut self, piece: &LinePiece, out: &mut Vec<u8>) {
        if piece.starts_line {
            self.showing_line = self.since.is_none_or(|since| piece.time >= since);
        }
        if !self.showing_line || self.is_done() {
            return;
        }
        let mut bytes = Vec::with_capacity(piece.bytes.len() + 32);
        if self.timestamps && piece.starts_line {
            bytes.extend_from_slice(format_timestamp(piece.time).as_bytes());
            bytes.push(b' ');
        }
        bytes.extend_from_slice(&piece.bytes);
        if let Some(remaining) = self.remaining.as_mut() {
            let take = bytes
                .len()
                .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
            bytes.truncate(take);
            *remaining -= take as u64;
        }
        out.extend_from_slice(&bytes);
    }

    /// Renders whole writes, carrying the line state of `splitter`.
    pub fn render_entries(&mut self, splitter: &mut LineSplitter, entries: &[LogEntry]) -> Vec<u8> {
        let mut out = Vec::new();
        for entry in entries {
            for piece in splitter.split(entry) {
                self.render(&piece, &mut out);
            }
        }
        out
    }
}

/// The log written so far, rendered for `options`, and the renderer and splitter to go on with.
pub fn render_written(
    written: &[LogEntry],
    options: &LogOptions,
    now: Timestamp,
) -> (Vec<u8>, LogRenderer, LineSplitter) {
    let mut splitter = LineSplitter::default();
    let pieces: Vec<LinePiece> = written.iter().flat_map(|e| splitter.split(e)).collect();
    let pieces = match options.tail_lines {
        Some(n) => tail(pieces, usize::try_from(n).unwrap_or(0)),
        None => pieces,
    };
    let mut renderer = LogRenderer::new(options, now);
    let mut out = Vec::new();
    for piece in &pieces {
        renderer.render(piece, &mut out);
    }
    (out, renderer, splitter)
}

/// Serves `GET .../pods/{name}/log`.
pub fn serve(
    server: &ApiServer,
    namespace: &str,
    name: &str,
    pairs: &[(String, String)],
) -> Response<Body> {
    match prepare(server, namespace, name, pairs) {
        Ok(response) => response,
        Err(e) => error_response(&e),
    }
}

fn prepare(
    server: &ApiServer,
    namespace: &str,
    name: &str,
    pairs: &[(String, String)],
) -> Result<Response<Body>, ApiError> {
    let options = LogOptions::from_query(pairs, name)?;
    let pod = get_pod(server, namespace, name)?;
    let container = choose_container(&pod, options.container.as_deref())?;
    let Some(pod) = pod_ref(&pod) else {
        // kube-apiserver's LogLocation gives no location for an unscheduled pod, and its
        // streamer answers that with 204 and no body.
        return Ok(bytes_response(204, "text/plain", Bytes::new()));
    };
    let runtime = server.container_runtime().ok_or_else(|| no_runtime(&pod))?;
    if options.previous {
        return Err(ApiError::bad_request(format!(
            "previous terminated container \"{container}\" in pod \"{}\" not found",
            pod.name
        )));
    }
    let log = runtime
        .logs(&pod, &container)
        .map_err(|e| runtime_error(&e))?;
    let (head, renderer, splitter) = render_written(&log.written, &options, Timestamp::now());
    if !options.follow || renderer.is_done() {
        return Ok(bytes_response(200, "text/plain", Bytes::from(head)));
    }
    let state = Follow {
        head: Some(Bytes::from(head)),
        next: log.next,
        renderer,
        splitter,
    };
    let stream = futures::stream::unfold(state, |mut state| async move {
        let chunk = state.next_chunk().await?;
        Some((Ok::<_, Infallible>(Frame::data(chunk)), state))
    });
    let mut response = Response::new(StreamBody::new(stream).boxed());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    Ok(response)
}

/// A followed log: the rendered history first, then each later write as its own chunk.
struct Follow {
    head: Option<Bytes>,
    next: broadcast::Receiver<LogEntry>,
    renderer: LogRenderer,
    splitter: LineSplitter,
}

impl Follow {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(head) = self.head.take().filter(|h| !h.is_empty()) {
            return Some(head);
        }
        loop {
            if self.renderer.is_done() {
                return None;
            }
            let entry = match self.next.recv().await {
                Ok(entry) => entry,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "pods/log follower fell behind; writes skipped");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            let out = self
                .renderer
                .render_entries(&mut self.splitter, std::slice::from_ref(&entry));
            if !out.is_empty() {
                return Some(Bytes::from(out));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn entry(secs: i64, text: &str) -> LogEntry {
        LogEntry {
            time: at(secs),
            bytes: Bytes::copy_from_slice(text.as_bytes()),
        }
    }

    fn pairs(q: &str) -> Vec<(String, String)> {
        crate::server::parse_query_pairs(q)
    }

    fn render(written: &[LogEntry], q: &str, now: Timestamp) -> String {
        let options = LogOptions::from_query(&pairs(q), "web").unwrap();
        String::from_utf8(render_written(written, &options, now).0).unwrap()
    }

    #[test]
    fn options_are_read_and_validated_like_pod_log_options() {
        let o = LogOptions::from_query(
            &pairs("container=c&follow=true&tailLines=2&timestamps=1&limitBytes=10"),
            "web",
        )
        .unwrap();
        assert_eq!(o.container.as_deref(), Some("c"));
        assert!(o.follow && o.timestamps && !o.previous);
        assert_eq!((o.tail_lines, o.limit_bytes), (Some(2), Some(10)));

        let e = LogOptions::from_query(&pairs("tailLines=-1&limitBytes=0"), "web").unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "PodLogOptions \"web\" is invalid: [tailLines: Invalid value: -1: must be greater than or equal to 0, limitBytes: Invalid value: 0: must be greater than 0]"
        );
        let e = LogOptions::from_query(&pairs("sinceSeconds=0"), "web").unwrap_err();
        assert_eq!(
            e.message,
            "PodLogOptions \"web\" is invalid: sinceSeconds: Invalid value: 0: must be greater than 0"
        );
        let e = LogOptions::from_query(&pairs("stream=Stdout"), "web").unwrap_err();
        assert_eq!(
            e.message,
            "PodLogOptions \"web\" is invalid: stream: Forbidden: may not be specified"
        );
        let e = LogOptions::from_query(
            &pairs("sinceSeconds=5&sinceTime=2024-01-01T00:00:00Z"),
            "web",
        )
        .unwrap_err();
        assert_eq!(e.code, 422);

        let e = LogOptions::from_query(&pairs("tailLines=ten"), "web").unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "strconv.ParseInt: parsing \"ten\": invalid syntax")
        );
    }

    #[test]
    fn timestamps_have_nine_fraction_digits() {
        let t = Timestamp::new(1_700_000_000, 1_500).unwrap();
        assert_eq!(format_timestamp(t), "2023-11-14T22:13:20.000001500Z");
    }

    #[test]
    fn writes_are_split_into_lines_that_may_span_writes() {
        let mut s = LineSplitter::default();
        let a = s.split(&entry(0, "one\ntw"));
        let b = s.split(&entry(1, "o\nthree\n"));
        let starts: Vec<(bool, &[u8])> = a
            .iter()
            .chain(&b)
            .map(|p| (p.starts_line, &p.bytes[..]))
            .collect();
        assert_eq!(
            starts,
            [
                (true, &b"one\n"[..]),
                (true, b"tw"),
                (false, b"o\n"),
                (true, b"three\n")
            ]
        );
    }

    #[test]
    fn tail_timestamps_since_and_limit_apply_per_line() {
        let written = [
            entry(0, "one\ntw"),
            entry(1, "o\nthree\n"),
            entry(5, "four\n"),
        ];
        let now = at(10);
        assert_eq!(render(&written, "", now), "one\ntwo\nthree\nfour\n");
        assert_eq!(render(&written, "tailLines=2", now), "three\nfour\n");
        assert_eq!(render(&written, "tailLines=3", now), "two\nthree\nfour\n");
        assert_eq!(render(&written, "tailLines=0", now), "");
        assert_eq!(render(&written, "tailLines=99", now).lines().count(), 4);
        assert_eq!(
            render(&written, "tailLines=2&timestamps=true", now),
            format!(
                "{} three\n{} four\n",
                format_timestamp(at(1)),
                format_timestamp(at(5))
            )
        );
        // The line `two` started at second 0, so it goes with `one`.
        assert_eq!(render(&written, "sinceSeconds=9", now), "three\nfour\n");
        assert_eq!(render(&written, "limitBytes=6", now), "one\ntw");
    }

    #[test]
    fn following_continues_the_open_line_without_a_new_timestamp() {
        let options = LogOptions::from_query(&pairs("timestamps=true"), "web").unwrap();
        let (head, mut renderer, mut splitter) = render_written(&[entry(0, "a")], &options, at(1));
        assert_eq!(head, format!("{} a", format_timestamp(at(0))).into_bytes());
        let more = renderer.render_entries(&mut splitter, &[entry(2, "b\nc\n")]);
        assert_eq!(
            String::from_utf8(more).unwrap(),
            format!("b\n{} c\n", format_timestamp(at(2)))
        );
    }
}
