//! Serving a router on a socket: plain or TLS, with the limits that keep slow, idle and
//! greedy clients from holding the server (connections, header size and time, body time,
//! stalled answers) and a graceful shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::Router;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use vaxlake_query::Warehouse;

use super::{router, ApiState};

/// Serves the API on `listen` until `shutdown` completes, then lets running requests
/// finish. For the dashboards or non-default limits, build the router yourself and use
/// [`serve_with`].
pub async fn serve(
    warehouse: Warehouse,
    listen: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = std::net::TcpListener::bind(listen)?;
    serve_with(
        listener,
        router(Arc::new(ApiState::new(warehouse))),
        &ServeOptions::default(),
        shutdown,
    )
    .await
}

/// Serves `app` on an already bound listener (e.g. port 0 in tests) until `shutdown`.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(
        listener.into_std()?,
        app,
        &ServeOptions::default(),
        shutdown,
    )
    .await
}

/// Certificate chain and private key files (PEM) for TLS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub certificate: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// How the server treats connections: TLS, and the limits that keep slow, idle or greedy
/// clients from holding connections or memory (a slowloris sends headers a byte at a time,
/// a trickler the body; a client that never reads keeps its answer in the server).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub tls: Option<TlsFiles>,
    /// A connection must send its request headers within this (also the first request of a
    /// new connection, and the next one of a kept-alive connection).
    pub header_timeout: std::time::Duration,
    /// Connections open at once. One more is closed as soon as it is accepted (no answer:
    /// the server cannot tell it is HTTP), and a warning is logged, so thousands of idle
    /// sockets cannot take every file descriptor; they free their places after
    /// [`ServeOptions::header_timeout`]. Keep it well below `ulimit -n`: queries open files too.
    pub max_connections: usize,
    /// Bytes of one request's start line and headers (HTTP/1; the header list of HTTP/2):
    /// more is answered 431 and the connection closed. At least 8192.
    pub max_header_bytes: usize,
    /// A request body must have arrived whole within this after its headers; a body
    /// trickled slower is cut (408 from `/api/sql`) and the connection closed.
    pub body_timeout: std::time::Duration,
    /// A connection whose client takes nothing of its answer for this long (the socket stays
    /// full) is closed, so that a client that stops reading does not hold the answer, the
    /// connection and its query's place for ever.
    pub send_timeout: std::time::Duration,
    /// A whole request must be answered within this (queries have their own, shorter limit);
    /// applied by [`router_with`], inside the audit, which records the 503.
    pub request_timeout: std::time::Duration,
    /// After the shutdown signal, running requests get this long to finish.
    pub shutdown_grace: std::time::Duration,
    /// Browser origins allowed to call the API from their pages (CORS). Empty (the
    /// default): no CORS headers, so browsers keep other sites' pages out. Applied by
    /// [`router_with`].
    pub cors_origins: Vec<String>,
}

/// See [`ServeOptions::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// See [`ServeOptions::max_header_bytes`]: browsers send a few KiB (cookies included).
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// The least [`ServeOptions::max_header_bytes`] hyper accepts (its smallest read buffer).
const MIN_HEADER_BYTES: usize = 8192;

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            tls: None,
            header_timeout: std::time::Duration::from_secs(10),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            body_timeout: std::time::Duration::from_secs(30),
            send_timeout: std::time::Duration::from_secs(60),
            request_timeout: std::time::Duration::from_secs(300),
            shutdown_grace: std::time::Duration::from_secs(30),
            cors_origins: Vec::new(),
        }
    }
}

/// Serves `app` on `listener` with `options` until `shutdown` completes, then stops accepting
/// and gives running requests [`ServeOptions::shutdown_grace`] to finish. The request timeout
/// and CORS origins of `options` are the router's (build `app` with [`router_with`] and the
/// same options): they must sit inside the audit, so that their answers are recorded.
pub async fn serve_with(
    listener: std::net::TcpListener,
    app: Router,
    options: &ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let address = listener.local_addr()?;
    let handle = axum_server::Handle::new();
    let grace = options.shutdown_grace;
    let signal = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        signal.graceful_shutdown(Some(grace));
    });
    let app = app.layer(axum::middleware::map_request(with_body_deadline(
        options.body_timeout,
    )));
    // The client's address reaches the handlers (the wrong-token throttle counts by it).
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    let admission = Admission::new(options);
    match &options.tls {
        Some(files) => {
            install_crypto_provider();
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(
                &files.certificate,
                &files.key,
            )
            .await
            .map_err(|error| {
                std::io::Error::new(
                    error.kind(),
                    format!(
                        "cannot load the TLS certificate {} and key {}: {error}",
                        files.certificate.display(),
                        files.key.display()
                    ),
                )
            })?;
            let server = with_timeouts(
                axum_server::from_tcp_rustls(listener, config)?.map(|tls| tls.acceptor(admission)),
                handle,
                options,
            );
            tracing::info!(%address, "serving the vaxlake API over TLS");
            server.serve(service).await?;
        }
        None => {
            let server = with_timeouts(
                axum_server::from_tcp(listener)?.acceptor(admission),
                handle,
                options,
            );
            tracing::info!(%address, "serving the vaxlake API");
            server.serve(service).await?;
        }
    }
    tracing::info!("API stopped");
    Ok(())
}

/// `server` with the shutdown handle and the header timeouts and sizes of `options`, plain
/// or TLS.
fn with_timeouts<A>(
    server: axum_server::Server<SocketAddr, A>,
    handle: axum_server::Handle<SocketAddr>,
    options: &ServeOptions,
) -> axum_server::Server<SocketAddr, A> {
    let mut server = server
        .handle(handle)
        .first_request_timeout(options.header_timeout);
    let header_bytes = options.max_header_bytes.max(MIN_HEADER_BYTES);
    let builder = server.http_builder();
    // hyper reads a request head into one buffer: its size bounds the headers (431 beyond).
    builder
        .http1()
        .header_read_timeout(options.header_timeout)
        .max_buf_size(header_bytes);
    builder
        .http2()
        .max_header_list_size(u32::try_from(header_bytes).unwrap_or(u32::MAX));
    server
}

/// Admits a connection while fewer than [`ServeOptions::max_connections`] are open, and gives
/// it the send timeout ([`Admitted`]); closes it at once otherwise.
#[derive(Clone)]
struct Admission {
    places: Arc<Semaphore>,
    max_connections: usize,
    send_timeout: Duration,
    /// Connections closed for want of a place since the last warning.
    refused: Arc<AtomicU64>,
    /// When the last warning was logged (milliseconds since `epoch`), to log at most one
    /// every 10 s however many connections are refused.
    last_warning_ms: Arc<AtomicU64>,
    epoch: Instant,
}

impl Admission {
    fn new(options: &ServeOptions) -> Self {
        let max_connections = options.max_connections.max(1);
        Admission {
            places: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            send_timeout: options.send_timeout,
            refused: Arc::new(AtomicU64::new(0)),
            last_warning_ms: Arc::new(AtomicU64::new(0)),
            epoch: Instant::now(),
        }
    }

    fn refuse(&self) -> io::Error {
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let now = self.epoch.elapsed().as_millis() as u64 + 10_000;
        let last = self.last_warning_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 10_000
            && self
                .last_warning_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.refused.fetch_sub(refused, Ordering::Relaxed);
            tracing::warn!(
                refused,
                max_connections = self.max_connections,
                "connections closed on arrival: the server has as many open as --max-connections allows"
            );
        }
        io::Error::new(io::ErrorKind::ConnectionRefused, "too many connections")
    }
}

impl<S> axum_server::accept::Accept<TcpStream, S> for Admission {
    type Stream = Admitted;
    type Service = S;
    type Future = std::future::Ready<io::Result<(Admitted, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        std::future::ready(match self.places.clone().try_acquire_owned() {
            Ok(place) => Ok((
                Admitted {
                    stream,
                    _place: place,
                    send_timeout: self.send_timeout,
                    stalled: None,
                },
                service,
            )),
            // Dropping the stream closes it.
            Err(_) => Err(self.refuse()),
        })
    }
}

/// An admitted connection: holds its place until closed, and fails a write that has made no
/// progress for the send timeout (the client stopped reading), which closes the connection.
struct Admitted {
    stream: TcpStream,
    _place: OwnedSemaphorePermit,
    send_timeout: Duration,
    /// Running while a write waits for room in the socket.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl Admitted {
    /// `written` is what the socket made of a write; `Pending` starts (or checks) the stall clock.
    fn progress<T>(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match written {
            Poll::Ready(result) => {
                self.stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let timeout = self.send_timeout;
                let stalled = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match stalled.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        tracing::info!(
                            timeout_s = timeout.as_secs_f64(),
                            "connection closed: its client took nothing of the answer for the send timeout"
                        );
                        Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the client stopped reading",
                        )))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl AsyncRead for Admitted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Admitted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.progress(cx, written)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.progress(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let flushed = Pin::new(&mut self.stream).poll_flush(cx);
        self.progress(cx, flushed)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The middleware that gives every request body [`ServeOptions::body_timeout`] to arrive.
fn with_body_deadline(
    limit: Duration,
) -> impl Fn(Request) -> std::future::Ready<Request> + Clone + Send + Sync + 'static {
    move |request: Request| {
        if request.body().is_end_stream() {
            return std::future::ready(request);
        }
        let (parts, body) = request.into_parts();
        let body = Body::new(DeadlineBody {
            inner: body,
            deadline: Box::pin(tokio::time::sleep(limit)),
            limit,
        });
        std::future::ready(Request::from_parts(parts, body))
    }
}

/// Why a request body was cut: it did not arrive within the body timeout. Handlers find it
/// in the source chain of their body's error (`/api/sql` answers 408).
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} s", .0.as_secs_f64())]
pub struct BodyTimeout(pub Duration);

/// The first error of type `T` in `error`'s source chain (itself included): what a failed
/// body read was caused by under the layers that wrap it (axum's rejection, its body
/// error, hyper's), such as a [`BodyTimeout`] or the body limit's `LengthLimitError`.
pub(crate) fn cause<'a, T: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    std::iter::successors(Some(error), |error| error.source())
        .find_map(|error| error.downcast_ref::<T>())
}

/// A request body that fails with [`BodyTimeout`] once its deadline has passed.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
    limit: Duration,
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                tracing::info!(
                    timeout_s = self.limit.as_secs_f64(),
                    "request body cut: it did not arrive within the body timeout"
                );
                Poll::Ready(Some(Err(axum::Error::new(BodyTimeout(self.limit)))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Installs the process-wide TLS crypto provider (ring, as for the registry client) that
/// every door's TLS uses; installing it again is a no-op.
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::FromRequest;

    /// A body that never arrives is cut at the deadline, and what the handlers' extractor
    /// sees (axum's rejection around its body error) leads back to the [`BodyTimeout`].
    #[tokio::test]
    async fn a_stalled_body_fails_with_a_body_timeout_in_its_error_chain() {
        let stalled = Body::from_stream(futures::stream::pending::<Result<Bytes, io::Error>>());
        let request = Request::post("/api/sql").body(stalled).unwrap();
        let limit = Duration::from_millis(50);
        let request = with_body_deadline(limit)(request).await;
        let started = Instant::now();
        let rejection =
            tokio::time::timeout(Duration::from_secs(10), Bytes::from_request(request, &()))
                .await
                .expect("the body was not cut")
                .unwrap_err();
        assert!(started.elapsed() >= limit);
        let timeout = cause::<BodyTimeout>(&rejection).expect("a BodyTimeout in the chain");
        assert_eq!(timeout.0, limit);
        assert!(cause::<http_body_util::LengthLimitError>(&rejection).is_none());
    }
}
