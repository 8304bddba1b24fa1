//! A bound on open client connections.
//!
//! Every accepted connection holds a permit until it closes. When all are
//! taken, a new connection is closed at once (the client sees the
//! connection refused and retries later, typically on another node) rather
//! than kept waiting in a queue that could grow without bound.
//!
//! A connection must also send its first [`OPENING_BYTES`] (the HTTP/2
//! client preface, or the start of a TLS handshake) within the opening
//! timeout; one that does not is closed, so clients that connect and then
//! stall cannot hold every permit. Once open, HTTP/2 keep-alive PINGs find
//! connections that stop answering.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Duration, Sleep};
use tokio_stream::Stream;
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};

/// Bytes a new connection must send within the opening timeout: the length
/// of the HTTP/2 client preface.
pub(crate) const OPENING_BYTES: usize = 24;

/// Accepted TCP connections, at most `connections_max` open at once.
pub(crate) struct BoundedIncoming {
    incoming: TcpIncoming,
    permits: Arc<Semaphore>,
    connections_max: usize,
    opening_timeout: Duration,
}

impl BoundedIncoming {
    pub(crate) fn new(incoming: TcpIncoming, connections_max: usize, opening_timeout: Duration) -> BoundedIncoming {
        BoundedIncoming {
            incoming,
            permits: Arc::new(Semaphore::new(connections_max)),
            connections_max,
            opening_timeout,
        }
    }
}

impl Stream for BoundedIncoming {
    type Item = io::Result<BoundedConnection>;

    fn poll_next(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let stream = match Pin::new(&mut self.incoming).poll_next(context) {
                Poll::Ready(Some(Ok(stream))) => stream,
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            };
            match self.permits.clone().try_acquire_owned() {
                Ok(permit) => {
                    let opening =
                        Some(Opening { deadline: Box::pin(tokio::time::sleep(self.opening_timeout)), read: 0 });
                    return Poll::Ready(Some(Ok(BoundedConnection { stream, opening, _permit: permit })));
                }
                Err(_) => {
                    // Dropping the stream closes it; accept the next one.
                    tracing::warn!(connections_max = self.connections_max, "client connection refused: too many open");
                }
            }
        }
    }
}

/// A connection that has not yet sent its first [`OPENING_BYTES`].
struct Opening {
    deadline: Pin<Box<Sleep>>,
    read: usize,
}

/// An accepted connection that holds its permit until it is dropped.
pub(crate) struct BoundedConnection {
    stream: TcpStream,
    /// `None` once the opening bytes arrived.
    opening: Option<Opening>,
    _permit: OwnedSemaphorePermit,
}

impl Connected for BoundedConnection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for BoundedConnection {
    fn poll_read(mut self: Pin<&mut Self>, context: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let Some(opening) = &mut this.opening else {
            return Pin::new(&mut this.stream).poll_read(context, buf);
        };
        let filled = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(context, buf) {
            Poll::Ready(Ok(())) => {
                opening.read += buf.filled().len() - filled;
                if opening.read >= OPENING_BYTES {
                    this.opening = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            // Nothing to read: the deadline's waker is registered too.
            Poll::Pending => match opening.deadline.as_mut().poll(context) {
                Poll::Ready(()) => {
                    tracing::debug!("client connection closed: it did not open within the timeout");
                    Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "the connection did not open in time")))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for BoundedConnection {
    fn poll_write(mut self: Pin<&mut Self>, context: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(context, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(context)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(context, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
