//! One cell of a connectivity matrix: a number of TCP connections (or UDP exchanges, each from
//! a new socket) from inside a network namespace to one address, each asking the data plane's
//! stand-in server who answered and whom it saw ("You've hit <pod>\nclient address: <ip:port>"),
//! summed up as the pods reached, the client addresses they saw, and whether connections were
//! refused (an ICMP reject) or timed out (a drop).

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The transport a cell is probed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// An HTTP request over a TCP connection.
    Tcp,
    /// A datagram from a new socket, answered by one datagram.
    Udp,
}

/// What one connection gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The stand-in in `pod` answered, seeing the connection come from `client`.
    Hit {
        /// The pod's name.
        pod: String,
        /// The address it saw (SNAT or not).
        client: IpAddr,
    },
    /// The connection was refused.
    Refused,
    /// No answer within the timeout.
    TimedOut,
    /// Anything else (unreachable network, a reset, an answer that is not the stand-in's).
    Other(String),
}

/// The summary of a cell's connections: what is compared between the two proxies.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cell {
    /// The pods that answered.
    pub pods: BTreeSet<String>,
    /// The client addresses they saw.
    pub clients: BTreeSet<IpAddr>,
    /// Some connection was refused.
    pub refused: bool,
    /// Some connection timed out.
    pub timed_out: bool,
    /// Other failures, by text.
    pub other: BTreeSet<String>,
}

impl Cell {
    /// The summary of `outcomes`.
    pub fn of(outcomes: &[Outcome]) -> Self {
        let mut cell = Cell::default();
        for outcome in outcomes {
            match outcome {
                Outcome::Hit { pod, client } => {
                    cell.pods.insert(pod.clone());
                    cell.clients.insert(*client);
                }
                Outcome::Refused => cell.refused = true,
                Outcome::TimedOut => cell.timed_out = true,
                Outcome::Other(what) => {
                    cell.other.insert(what.clone());
                }
            }
        }
        cell
    }

    /// Whether no connection got an answer.
    pub fn unanswered(&self) -> bool {
        self.pods.is_empty()
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.pods.is_empty() {
            let pods: Vec<&str> = self.pods.iter().map(String::as_str).collect();
            let clients: Vec<String> = self.clients.iter().map(IpAddr::to_string).collect();
            parts.push(format!(
                "reached {{{}}} seen from {{{}}}",
                pods.join(","),
                clients.join(",")
            ));
        }
        if self.refused {
            parts.push("refused".into());
        }
        if self.timed_out {
            parts.push("timed out".into());
        }
        for other in &self.other {
            parts.push(other.clone());
        }
        if parts.is_empty() {
            parts.push("nothing".into());
        }
        f.write_str(&parts.join("; "))
    }
}

/// Reads the stand-in's answer: the pod and the client address it saw.
pub fn parse_answer(text: &str) -> Option<(String, IpAddr)> {
    let body = text.split_once("\r\n\r\n").map_or(text, |(_, body)| body);
    let mut lines = body.lines();
    let pod = lines.next()?.strip_prefix("You've hit ")?.trim().to_owned();
    let client = lines.next()?.strip_prefix("client address: ")?.trim();
    let client: SocketAddr = client.parse().ok()?;
    Some((pod, client.ip()))
}

/// Classifies a failed connect.
pub fn classify_error(error: &std::io::Error) -> Outcome {
    match error.kind() {
        std::io::ErrorKind::ConnectionRefused => Outcome::Refused,
        std::io::ErrorKind::TimedOut => Outcome::TimedOut,
        _ => Outcome::Other(error.to_string()),
    }
}

/// One HTTP request to `addr` from inside `ns`.
pub async fn connect_once(ns: &str, addr: SocketAddr, timeout: Duration) -> Outcome {
    let mut stream = match dataplane::connect_tcp(ns, addr, timeout).await {
        Ok(stream) => stream,
        Err(e) => return classify_error(&e),
    };
    let exchange = async {
        let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        std::io::Result::Ok(answer)
    };
    match tokio::time::timeout(timeout * 2, exchange).await {
        Err(_) => Outcome::Other("no answer after connecting".into()),
        Ok(Err(e)) => Outcome::Other(format!("after connecting: {e}")),
        Ok(Ok(answer)) => {
            let text = String::from_utf8_lossy(&answer);
            match parse_answer(&text) {
                Some((pod, client)) => Outcome::Hit { pod, client },
                None => Outcome::Other(format!("not the stand-in's answer: {text:?}")),
            }
        }
    }
}

/// One datagram to `addr` from a new socket inside `ns`, and its answer. A reject shows as a
/// refused receive (the ICMP error is reported on the connected socket), a drop as no answer.
pub async fn datagram_once(ns: &str, addr: SocketAddr, timeout: Duration) -> Outcome {
    let unspecified = SocketAddr::new(
        match addr {
            SocketAddr::V4(_) => IpAddr::from([0u8; 4]),
            SocketAddr::V6(_) => IpAddr::from([0u16; 8]),
        },
        0,
    );
    let exchange = async {
        let socket = dataplane::bind_udp(ns, unspecified).await?;
        socket.connect(addr).await?;
        socket.send(b"who is there?").await?;
        let mut answer = vec![0u8; 2048];
        let n = socket.recv(&mut answer).await?;
        answer.truncate(n);
        std::io::Result::Ok(answer)
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => Outcome::TimedOut,
        Ok(Err(e)) => classify_error(&e),
        Ok(Ok(answer)) => {
            let text = String::from_utf8_lossy(&answer);
            match parse_answer(&text) {
                Some((pod, client)) => Outcome::Hit { pod, client },
                None => Outcome::Other(format!("not the stand-in's answer: {text:?}")),
            }
        }
    }
}

/// Up to `attempts` connections (or datagrams) to `addr` from `ns`, one after the other. When
/// the first `give_up_after` all fail the same way (a drop costs a whole timeout each), the
/// rest are not tried.
pub async fn probe(
    ns: &str,
    transport: Transport,
    addr: SocketAddr,
    attempts: usize,
    give_up_after: usize,
    timeout: Duration,
) -> Cell {
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(attempts);
    for _ in 0..attempts {
        outcomes.push(match transport {
            Transport::Tcp => connect_once(ns, addr, timeout).await,
            Transport::Udp => datagram_once(ns, addr, timeout).await,
        });
        if outcomes.len() == give_up_after
            && outcomes.iter().all(|o| !matches!(o, Outcome::Hit { .. }))
            && outcomes.windows(2).all(|w| w[0] == w[1])
        {
            break;
        }
    }
    Cell::of(&outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(pod: &str, client: &str) -> Outcome {
        Outcome::Hit {
            pod: pod.into(),
            client: client.parse().unwrap(),
        }
    }

    #[test]
    fn the_stand_ins_answer_names_the_pod_and_the_client_it_saw() {
        let text = "HTTP/1.1 200 OK\r\ncontent-length: 48\r\n\r\nYou've hit web-a\nclient address: 10.244.1.3:41234\n";
        assert_eq!(
            parse_answer(text),
            Some(("web-a".into(), "10.244.1.3".parse().unwrap()))
        );
        assert_eq!(parse_answer("HTTP/1.1 503 x\r\n\r\nnope"), None);
        assert_eq!(parse_answer("You've hit a\nclient address: nonsense"), None);
    }

    #[test]
    fn a_cell_sums_up_pods_clients_and_failures() {
        let cell = Cell::of(&[
            hit("web-a", "10.244.1.3"),
            hit("web-b", "172.18.0.2"),
            hit("web-a", "10.244.1.3"),
            Outcome::Refused,
        ]);
        assert_eq!(cell.pods.len(), 2);
        assert_eq!(cell.clients.len(), 2);
        assert!(cell.refused && !cell.timed_out && cell.other.is_empty());
        assert_eq!(
            cell.to_string(),
            "reached {web-a,web-b} seen from {10.244.1.3,172.18.0.2}; refused"
        );
        let dropped = Cell::of(&[Outcome::TimedOut]);
        assert!(dropped.unanswered());
        assert_eq!(dropped.to_string(), "timed out");
        assert_eq!(Cell::of(&[]).to_string(), "nothing");
    }

    #[test]
    fn connect_errors_are_told_apart() {
        use std::io::{Error, ErrorKind};
        assert_eq!(
            classify_error(&Error::from(ErrorKind::ConnectionRefused)),
            Outcome::Refused
        );
        assert_eq!(
            classify_error(&Error::from(ErrorKind::TimedOut)),
            Outcome::TimedOut
        );
        assert!(matches!(
            classify_error(&Error::from(ErrorKind::NetworkUnreachable)),
            Outcome::Other(_)
        ));
    }
}
