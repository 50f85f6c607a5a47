//! One blocking TCP connection to a dqlite node: handshake, framed requests and responses, one
//! request in flight.

use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use super::proto::{self, EncodeError, HEADER_LEN, Header, Request, Response};

/// Why a request got no response.
#[derive(Debug)]
pub(crate) enum ConnError {
    /// The request was not (completely) written, or the connection was found closed before
    /// writing: the server did not run it.
    NotSent(String),
    /// The connection broke after the request was written: the server may or may not have run
    /// it.
    Lost(String),
    /// No response within the request timeout; the server may still be running the request.
    Timeout(Duration),
    /// The server sent a frame that does not decode: the connection is out of step.
    Protocol(String),
    /// The request cannot be encoded (nothing was sent; the connection is intact).
    Encode(EncodeError),
}

/// The socket, read with delayed ACKs off.
///
/// dqlite's server does not disable Nagle's algorithm, so when it writes a response in several
/// segments (a stream of ROWS batches, a large row), a short segment waits for the ACK of the
/// previous one, and Linux delays that ACK by up to 40 ms: a 10 000-row query took 45 ms
/// instead of 5 (measured on loopback). `TCP_QUICKACK` turns the delay off; the kernel may turn
/// it back on, so it is set again before each read.
struct QuickAck(TcpStream);

impl QuickAck {
    #[cfg(target_os = "linux")]
    fn arm(&self) {
        use std::os::fd::AsRawFd;
        let one: libc::c_int = 1;
        // SAFETY: setsockopt(2) on a socket this struct owns, with a pointer to a live c_int and
        // its size; a failure only leaves delayed ACKs on.
        unsafe {
            libc::setsockopt(
                self.0.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                (&raw const one).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn arm(&self) {}
}

impl Read for QuickAck {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.arm();
        self.0.read(buf)
    }
}

/// A connection to one node, after the protocol handshake.
pub(crate) struct Conn {
    reader: BufReader<QuickAck>,
    /// The address dialed, exactly as given (the cluster compares it with what nodes advertise).
    pub(crate) addr: Arc<str>,
    timeout: Duration,
    wbuf: Vec<u8>,
    rbuf: Vec<u8>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("addr", &self.addr).finish()
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

impl Conn {
    /// Dial `addr` (`host:port`), within `connect_timeout` per resolved address, and send the
    /// protocol version. `timeout` bounds every later read and write.
    pub(crate) fn dial(addr: &str, connect_timeout: Duration, timeout: Duration) -> io::Result<Conn> {
        let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{addr} resolves to no address"));
        for sa in addrs {
            match TcpStream::connect_timeout(&sa, connect_timeout) {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    let mut conn = Conn {
                        reader: BufReader::with_capacity(64 * 1024, QuickAck(stream)),
                        addr: addr.into(),
                        timeout,
                        wbuf: Vec::with_capacity(256),
                        rbuf: Vec::new(),
                    };
                    conn.set_timeout(connect_timeout.min(timeout))?;
                    conn.stream().write_all(&proto::PROTOCOL_VERSION.to_le_bytes())?;
                    conn.set_timeout(timeout)?;
                    return Ok(conn);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn stream(&mut self) -> &mut TcpStream {
        &mut self.reader.get_mut().0
    }

    /// Bound reads and writes by `t` (probes use a shorter limit than statements).
    pub(crate) fn set_timeout(&mut self, t: Duration) -> io::Result<()> {
        let t = t.max(Duration::from_millis(1));
        self.timeout = t;
        self.stream().set_read_timeout(Some(t))?;
        self.stream().set_write_timeout(Some(t))
    }

    /// `false` when the idle connection is known to be dead: the server closed it (a node that
    /// died or restarted), reset it, or sent something unasked. Checked before each request, so
    /// that a connection that died while idle is replaced before anything is sent (and the
    /// request can be retried safely).
    fn idle_alive(&mut self) -> bool {
        if !self.reader.buffer().is_empty() {
            return false;
        }
        let stream = &self.reader.get_ref().0;
        if stream.set_nonblocking(true).is_err() {
            return false;
        }
        let r = stream.peek(&mut [0_u8; 1]);
        let restored = stream.set_nonblocking(false).is_ok();
        restored && matches!(r, Err(ref e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Write a request. `idle`: the connection has no response pending (checked for liveness
    /// first); `false` for INTERRUPT, sent while ROWS are still arriving.
    pub(crate) fn send(&mut self, req: &Request<'_>, idle: bool) -> Result<(), ConnError> {
        self.wbuf.clear();
        req.encode(&mut self.wbuf).map_err(ConnError::Encode)?;
        self.send_encoded(idle)
    }

    /// Send `req` with a schema-1 parameter tuple whatever its size, and read the answer.
    pub(crate) fn call_wide(&mut self, req: &Request<'_>) -> Result<Response, ConnError> {
        self.wbuf.clear();
        req.encode_wide(&mut self.wbuf).map_err(ConnError::Encode)?;
        self.send_encoded(true)?;
        self.recv()
    }

    fn send_encoded(&mut self, idle: bool) -> Result<(), ConnError> {
        if idle && !self.idle_alive() {
            return Err(ConnError::NotSent(format!(
                "the connection to {} was closed",
                self.addr
            )));
        }
        let mut buf = std::mem::take(&mut self.wbuf);
        let r = self.stream().write_all(&buf);
        buf.clear();
        self.wbuf = buf;
        r.map_err(|e| ConnError::NotSent(format!("writing to {}: {e}", self.addr)))
    }

    /// Read one response.
    pub(crate) fn recv(&mut self) -> Result<Response, ConnError> {
        let mut head = [0_u8; HEADER_LEN];
        self.reader.read_exact(&mut head).map_err(|e| self.read_error(&e))?;
        let h = Header::parse(&head);
        let len = h.body_len();
        if len > proto::MAX_BODY {
            return Err(ConnError::Protocol(format!("{}: a {len}-byte message", self.addr)));
        }
        self.rbuf.clear();
        // Grows as the bytes arrive: a bogus length cannot make us allocate it up front.
        let got = (&mut self.reader)
            .take(len as u64)
            .read_to_end(&mut self.rbuf)
            .map_err(|e| self.read_error(&e))?;
        if got < len {
            return Err(ConnError::Lost(format!(
                "{} closed the connection mid-message",
                self.addr
            )));
        }
        Response::decode(h, &self.rbuf).map_err(|e| ConnError::Protocol(format!("{}: {e}", self.addr)))
    }

    fn read_error(&self, e: &io::Error) -> ConnError {
        if is_timeout(e) {
            ConnError::Timeout(self.timeout)
        } else if e.kind() == io::ErrorKind::UnexpectedEof {
            ConnError::Lost(format!("{} closed the connection", self.addr))
        } else {
            ConnError::Lost(format!("reading from {}: {e}", self.addr))
        }
    }

    /// Send a request on an idle connection and read its (first) response.
    pub(crate) fn call(&mut self, req: &Request<'_>) -> Result<Response, ConnError> {
        self.send(req, true)?;
        self.recv()
    }
}
