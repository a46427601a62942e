//! The shell: hickory-server on UDP and TCP (one port), answering from the shared index, which
//! the watches in [`crate::watch`] keep; both stop on one `kuberun::Shutdown`.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo, Server};
use hickory_server::zone_handler::MessageResponseBuilder;
use kuberun::Shutdown;
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

use crate::answer::answer;
use crate::config::DnsConfig;
use crate::index::DnsIndex;

/// The index the server reads and the watches write.
pub type SharedIndex = Arc<RwLock<DnsIndex>>;

/// An idle TCP connection is closed after this long.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Responses queued per TCP connection.
const TCP_RESPONSE_BUFFER: usize = 32;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A socket could not be bound.
    #[error("cannot listen on {addr} ({protocol}): {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// `udp` or `tcp`.
        protocol: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

impl ServeError {
    /// The bind error, for callers that word it themselves.
    pub fn io_error(&self) -> &std::io::Error {
        match self {
            ServeError::Bind { source, .. } => source,
        }
    }
}

/// Answers every query from the index.
struct ClusterDnsHandler {
    config: Arc<DnsConfig>,
    index: SharedIndex,
}

#[async_trait::async_trait]
impl RequestHandler for ClusterDnsHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        // Echo EDNS as CoreDNS does (request.SizeAndDo): the client's size, never below 512.
        let edns = request.edns.as_ref().map(|_| {
            let mut edns = Edns::new();
            edns.set_max_payload(request.max_payload());
            edns
        });
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(edns) = &edns {
            builder.edns(edns);
        }
        let queries = request.queries.queries();
        let fail = |code: ResponseCode| {
            let mut metadata = Metadata::response_from_request(&request.metadata);
            metadata.response_code = code;
            metadata
        };
        let result = if request.metadata.message_type != MessageType::Query
            || request.metadata.op_code != OpCode::Query
        {
            response_handle
                .send_response(builder.build_no_records(fail(ResponseCode::NotImp)))
                .await
        } else if queries.len() != 1 {
            response_handle
                .send_response(builder.build_no_records(fail(ResponseCode::FormErr)))
                .await
        } else {
            let query = queries[0].original();
            let got = {
                let index = self.index.read().unwrap_or_else(|e| e.into_inner());
                answer(
                    &self.config,
                    &index,
                    query.name(),
                    query.query_type(),
                    query.query_class(),
                )
            };
            let mut metadata = Metadata::response_from_request(&request.metadata);
            metadata.response_code = got.rcode;
            metadata.authoritative = got.flags.authoritative;
            metadata.truncation = got.flags.truncated;
            let response = builder.build(
                metadata,
                got.answers.iter(),
                got.authority.iter(),
                std::iter::empty(),
                got.additional.iter(),
            );
            response_handle.send_response(response).await
        };
        match result {
            Ok(info) => info,
            Err(error) => {
                tracing::warn!(%error, src = %request.src(), "cannot send a DNS response");
                let mut metadata = fail(ResponseCode::ServFail);
                metadata.message_type = MessageType::Response;
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}

/// A running DNS server.
pub struct DnsServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl DnsServer {
    /// Binds UDP and TCP on `listen` (port 0: one free port for both) and serves `index` until
    /// `shutdown`.
    pub async fn start(
        listen: SocketAddr,
        config: Arc<DnsConfig>,
        index: SharedIndex,
        shutdown: Shutdown,
    ) -> Result<DnsServer, ServeError> {
        let (udp, tcp) = bind_both(listen).await?;
        Self::serve_on(udp, tcp, config, index, shutdown)
    }

    /// Serves `index` on sockets bound elsewhere (the playground binds them inside the cluster
    /// DNS pod's network namespace) until `shutdown`.
    pub fn serve_on(
        udp: UdpSocket,
        tcp: TcpListener,
        config: Arc<DnsConfig>,
        index: SharedIndex,
        shutdown: Shutdown,
    ) -> Result<DnsServer, ServeError> {
        let addr = udp.local_addr().map_err(|source| ServeError::Bind {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            protocol: "udp",
            source,
        })?;
        let mut server = Server::new(ClusterDnsHandler { config, index });
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
        let token = server.shutdown_token().clone();
        let task = tokio::spawn(async move {
            let stop = tokio::spawn(async move {
                shutdown.wait().await;
                token.cancel();
            });
            if let Err(error) = server.block_until_done().await {
                tracing::warn!(%error, "the DNS server stopped with an error");
            }
            stop.abort();
        });
        Ok(DnsServer { addr, task })
    }

    /// The address both protocols listen on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits until the server has stopped (after its shutdown fired).
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

/// UDP and TCP on one port. With port 0 the UDP port is picked first and TCP must get the same
/// one; another process may hold it on TCP, so a few fresh picks are tried.
async fn bind_both(listen: SocketAddr) -> Result<(UdpSocket, TcpListener), ServeError> {
    let attempts = if listen.port() == 0 { 8 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let udp = UdpSocket::bind(listen)
            .await
            .map_err(|source| ServeError::Bind {
                addr: listen,
                protocol: "udp",
                source,
            })?;
        let port = udp.local_addr().map(|a| a.port()).unwrap_or(listen.port());
        let tcp_addr = SocketAddr::new(listen.ip(), port);
        match TcpListener::bind(tcp_addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(source) => {
                last = Some(ServeError::Bind {
                    addr: tcp_addr,
                    protocol: "tcp",
                    source,
                })
            }
        }
    }
    Err(last.unwrap_or_else(|| ServeError::Bind {
        addr: listen,
        protocol: "tcp",
        source: std::io::Error::other("no attempt made"),
    }))
}
