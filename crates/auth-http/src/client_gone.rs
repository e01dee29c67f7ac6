//! A request whose client went away is dropped, not finished. actix-web drops a handler
//! when the peer resets the connection, but not when it closes it normally (a client that
//! timed out, a proxy that gave up): then a queued password hash would still be computed
//! for nobody. While a request is pending, its connection is checked every
//! [`CHECK_EVERY`]; once the peer has closed it, the handler is dropped (its queued hash is
//! skipped, see `Argon2Hasher`) and the request ends as 499, as nginx records a client that
//! closed its request. Like nginx, a client that half-closes its side of the connection
//! counts as gone.

use std::any::Any;
use std::rc::Rc;
use std::time::Duration;

use actix_web::dev::Extensions;

/// How often a pending request looks at its connection.
pub const CHECK_EVERY: Duration = Duration::from_millis(100);

/// A second handle on a connection's socket (a duplicate descriptor, closed with the
/// connection), taken when it is accepted; only ever peeked at.
#[derive(Debug, Clone)]
pub struct PeerSocket(Rc<std::net::TcpStream>);

/// `HttpServer::on_connect`: keep a handle on the connection's socket for [`until_gone`].
/// Without one (no descriptor left), requests are simply not watched.
pub fn on_connect(connection: &dyn Any, data: &mut Extensions) {
    use std::os::fd::AsFd;
    let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() else {
        return;
    };
    match tcp.as_fd().try_clone_to_owned() {
        Ok(fd) => {
            data.insert(PeerSocket(Rc::new(std::net::TcpStream::from(fd))));
        }
        Err(e) => tracing::debug!(error = %e, "connection not watched for a client going away"),
    }
}

/// Resolves once the peer has closed (or reset) the connection; never on a live one.
pub async fn until_gone(socket: PeerSocket) {
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        if closed_by_peer(&socket) {
            return;
        }
    }
}

/// Whether the peer has closed its side of the connection or the connection failed. The
/// socket is non-blocking (tokio's, shared by the duplicate), so peeking never waits: no
/// data yet means alive, a further request waiting means alive, end of stream or an
/// error means gone.
fn closed_by_peer(socket: &PeerSocket) -> bool {
    let mut byte = [0_u8; 1];
    match socket.0.peek(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
        ),
    }
}
