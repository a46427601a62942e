//! A one-question DNS client over UDP or TCP, for tests, benchmarks and readiness checks: the
//! messages are hickory-proto's; TCP adds only RFC 1035's two-byte length prefix.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// The transport of a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// One datagram each way.
    Udp,
    /// A connection per question.
    Tcp,
}

/// Why a probe got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// A socket failed.
    #[error("dns probe i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The message could not be built or read.
    #[error("dns probe message: {0}")]
    Proto(#[from] hickory_proto::ProtoError),
    /// The answer could not be decoded.
    #[error("dns probe decode: {0}")]
    Decode(#[from] hickory_proto::serialize::binary::DecodeError),
    /// No answer in time.
    #[error("dns probe: no answer from {0} in time")]
    Timeout(SocketAddr),
    /// The answer was for another question.
    #[error("dns probe: answer id {got} does not match query id {want}")]
    WrongId {
        /// Sent.
        want: u16,
        /// Received.
        got: u16,
    },
}

/// What a probe asks.
#[derive(Clone, Debug)]
pub struct ProbeQuery {
    /// The name, as sent (its case is kept).
    pub name: Name,
    /// The type.
    pub qtype: RecordType,
    /// The class (IN unless a test says otherwise).
    pub class: DNSClass,
    /// The EDNS UDP payload advertised; `None` sends no OPT record (512-byte UDP answers).
    pub edns_payload: Option<u16>,
}

impl ProbeQuery {
    /// `name qtype IN` with EDNS 1232.
    pub fn new(name: Name, qtype: RecordType) -> Self {
        ProbeQuery {
            name,
            qtype,
            class: DNSClass::IN,
            edns_payload: Some(1232),
        }
    }
}

/// Asks `server` one question and returns the decoded answer.
pub async fn probe(
    server: SocketAddr,
    transport: Transport,
    query: &ProbeQuery,
    timeout: Duration,
) -> Result<Message, ProbeError> {
    let id: u16 = rand_id();
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    let mut q = Query::query(query.name.clone(), query.qtype);
    q.set_query_class(query.class);
    message.add_query(q);
    if let Some(payload) = query.edns_payload {
        let mut edns = Edns::new();
        edns.set_max_payload(payload);
        message.set_edns(edns);
    }
    let bytes = message.to_vec()?;
    let exchange = async {
        match transport {
            Transport::Udp => {
                let bind: SocketAddr = if server.is_ipv4() {
                    "0.0.0.0:0".parse().map_err(std::io::Error::other)?
                } else {
                    "[::]:0".parse().map_err(std::io::Error::other)?
                };
                let socket = UdpSocket::bind(bind).await?;
                socket.connect(server).await?;
                socket.send(&bytes).await?;
                let mut buf = vec![0u8; 65535];
                let n = socket.recv(&mut buf).await?;
                buf.truncate(n);
                Ok::<Vec<u8>, ProbeError>(buf)
            }
            Transport::Tcp => {
                let mut stream = TcpStream::connect(server).await?;
                let len = u16::try_from(bytes.len()).map_err(std::io::Error::other)?;
                stream.write_all(&len.to_be_bytes()).await?;
                stream.write_all(&bytes).await?;
                let mut len = [0u8; 2];
                stream.read_exact(&mut len).await?;
                let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
                stream.read_exact(&mut buf).await?;
                Ok(buf)
            }
        }
    };
    let buf = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| ProbeError::Timeout(server))??;
    let answer = Message::from_vec(&buf)?;
    if answer.metadata.id != id {
        return Err(ProbeError::WrongId {
            want: id,
            got: answer.metadata.id,
        });
    }
    Ok(answer)
}

/// A query id that differs between calls (no need for unpredictability on loopback tests).
fn rand_id() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0x5a5a);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
