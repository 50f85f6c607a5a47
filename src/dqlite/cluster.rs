//! The cluster: the `dqlite://` address, the known nodes, and leader discovery.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::conn::{Conn, ConnError};
use super::proto::{Request, Response};
use crate::error::{Error, Result};

/// What a `dqlite://` URL says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Settings {
    /// The node addresses given (`host:port`), in order.
    pub(crate) seeds: Vec<String>,
    /// The database name (dqlite's `OPEN`).
    pub(crate) database: String,
    /// How long a call looks for a leader before failing with `Unavailable`.
    pub(crate) leader_timeout: Duration,
    /// Dial timeout, also the limit for a node's answer to a leader probe.
    pub(crate) connect_timeout: Duration,
    /// How long to wait for any response once a request is sent.
    pub(crate) request_timeout: Duration,
}

/// Default [`Settings::leader_timeout`]: a dqlite election takes a few seconds (about 6–8 s
/// after a leader is killed, observed on 1.11.1).
pub(crate) const DEFAULT_LEADER_TIMEOUT: Duration = Duration::from_secs(20);
/// Default [`Settings::connect_timeout`].
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default [`Settings::request_timeout`].
pub(crate) const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

fn invalid(url: &str, why: impl std::fmt::Display) -> Error {
    Error::InvalidArgument {
        message: format!("invalid dqlite URL {url:?}: {why} (expected dqlite://host:port[,host:port…]/database)"),
    }
}

/// Parse a duration: `250ms`, `3s`, `1.5s` or a bare number of seconds.
fn parse_duration(v: &str) -> Option<Duration> {
    let (num, scale) = if let Some(n) = v.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1.0)
    } else {
        (v, 1.0)
    };
    let x: f64 = num.parse().ok()?;
    (x.is_finite() && x >= 0.0 && x * scale < 1e9).then(|| Duration::from_secs_f64(x * scale))
}

/// Parse `dqlite://host:port[,host:port…]/database[?leader_timeout=20s&connect_timeout=5s&timeout=60s]`.
pub(crate) fn parse_url(url: &str) -> Result<Settings> {
    let Some(rest) = url.strip_prefix("dqlite://") else {
        return Err(invalid(url, "it must start with dqlite://"));
    };
    let Some((hosts, path)) = rest.split_once('/') else {
        return Err(invalid(url, "no database name"));
    };
    let (database, query) = match path.split_once('?') {
        Some((d, q)) => (d, Some(q)),
        None => (path, None),
    };
    if database.is_empty() {
        return Err(invalid(url, "no database name"));
    }
    if database.contains(['/', '\0']) {
        return Err(invalid(url, "the database name may not contain '/' or NUL"));
    }
    let mut seeds = Vec::new();
    for host in hosts.split(',') {
        let host = host.trim();
        if host.is_empty() {
            return Err(invalid(url, "empty node address"));
        }
        let port = if let Some(h) = host.strip_prefix('[') {
            // [v6]:port
            let Some((v6, port)) = h.split_once("]:") else {
                return Err(invalid(url, format!("{host:?}: expected [ipv6]:port")));
            };
            if v6.is_empty() {
                return Err(invalid(url, format!("{host:?}: empty host")));
            }
            port
        } else {
            let Some((h, port)) = host.rsplit_once(':') else {
                return Err(invalid(url, format!("{host:?} has no port")));
            };
            if h.is_empty() || h.contains([':', '@', '[', ']']) {
                return Err(invalid(url, format!("{host:?}: bad host")));
            }
            port
        };
        if !matches!(port.parse::<u16>(), Ok(p) if p != 0) {
            return Err(invalid(url, format!("{host:?}: bad port {port:?}")));
        }
        if !seeds.iter().any(|s| s == host) {
            seeds.push(host.to_owned());
        }
    }
    let mut s = Settings {
        seeds,
        database: database.to_owned(),
        leader_timeout: DEFAULT_LEADER_TIMEOUT,
        connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        request_timeout: DEFAULT_REQUEST_TIMEOUT,
    };
    for pair in query.into_iter().flat_map(|q| q.split('&')).filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let d = parse_duration(v).ok_or_else(|| invalid(url, format!("{k}: bad duration {v:?}")))?;
        match k {
            "leader_timeout" => s.leader_timeout = d,
            "connect_timeout" => s.connect_timeout = d.max(Duration::from_millis(1)),
            "timeout" => s.request_timeout = d.max(Duration::from_millis(1)),
            _ => {
                return Err(invalid(
                    url,
                    format!("unknown option {k:?} (known: leader_timeout, connect_timeout, timeout)"),
                ));
            }
        }
    }
    Ok(s)
}

/// Node roles in CLUSTER answers.
const ROLE_VOTER: u64 = 0;

/// The known nodes and the last leader: finds the leader and connects to it.
#[derive(Debug)]
pub(crate) struct Cluster {
    pub(crate) settings: Settings,
    /// Addresses to probe, voters first: the seeds plus what CLUSTER reported.
    nodes: Vec<String>,
    last_leader: Option<String>,
    client_id: u64,
}

/// Why one probe did not give a leader connection.
type ProbeResult = std::result::Result<Conn, String>;

fn conn_error(e: ConnError) -> String {
    match e {
        ConnError::NotSent(m) | ConnError::Lost(m) | ConnError::Protocol(m) => m,
        ConnError::Timeout(t) => format!("no answer within {t:?}"),
        ConnError::Encode(e) => e.to_string(),
    }
}

/// Dial `addr` and ask it who leads. `Ok` when it says itself (then the CLIENT handshake is
/// done); `Err(Some(other))` when it names another node.
fn ask(
    addr: &str,
    s: &Settings,
    deadline: Instant,
    client_id: u64,
) -> std::result::Result<Conn, (String, Option<String>)> {
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(50));
    let limit = s.connect_timeout.min(left);
    let mut conn = Conn::dial(addr, limit, limit).map_err(|e| (format!("{addr}: {e}"), None))?;
    match conn.call(&Request::Leader) {
        Ok(Response::Node { address, .. }) if address == addr => {}
        Ok(Response::Node { address, .. }) if address.is_empty() => {
            return Err((format!("{addr}: no leader known"), None));
        }
        Ok(Response::Node { address, .. }) => {
            return Err((format!("{addr}: the leader is {address}"), Some(address)));
        }
        Ok(Response::Failure { code, message }) => return Err((format!("{addr}: {message} (code {code})"), None)),
        Ok(other) => return Err((format!("{addr}: unexpected answer {other:?}"), None)),
        Err(e) => return Err((format!("{addr}: {}", conn_error(e)), None)),
    }
    match conn.call(&Request::Client { id: client_id }) {
        Ok(Response::Welcome { .. }) => {}
        Ok(Response::Failure { code, message }) => return Err((format!("{addr}: {message} (code {code})"), None)),
        Ok(other) => return Err((format!("{addr}: unexpected answer {other:?}"), None)),
        Err(e) => return Err((format!("{addr}: {}", conn_error(e)), None)),
    }
    conn.set_timeout(s.request_timeout)
        .map_err(|e| (format!("{addr}: {e}"), None))?;
    Ok(conn)
}

/// Probe one node; follow its pointer to another leader once.
fn probe(addr: &str, s: &Settings, deadline: Instant, client_id: u64) -> ProbeResult {
    match ask(addr, s, deadline, client_id) {
        Ok(c) => Ok(c),
        Err((_, Some(other))) => ask(&other, s, deadline, client_id).map_err(|(e, _)| e),
        Err((e, None)) => Err(e),
    }
}

impl Cluster {
    pub(crate) fn new(settings: Settings) -> Cluster {
        static NEXT_CLIENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let client_id = (u64::from(std::process::id()) << 32)
            | NEXT_CLIENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) & 0xffff_ffff;
        Cluster {
            nodes: settings.seeds.clone(),
            settings,
            last_leader: None,
            client_id,
        }
    }

    /// The addresses probed in a sweep, in order.
    #[cfg(test)]
    pub(crate) fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// Connect to the leader, trying until `deadline`: first the last known leader, then every
    /// known node in parallel (the first to say it leads wins), then again after a backoff
    /// (100 ms doubling to 1 s). Refreshes the node list from the leader's CLUSTER answer.
    ///
    /// # Failure
    /// [`Error::Unavailable`] naming what each node said, when no leader is found in time.
    pub(crate) fn connect(&mut self, deadline: Instant) -> Result<Conn> {
        let mut backoff = Duration::from_millis(100);
        let started = Instant::now();
        loop {
            let mut errors = Vec::new();
            if let Some(l) = self.last_leader.clone() {
                match probe(&l, &self.settings, deadline, self.client_id) {
                    Ok(c) => return Ok(self.welcome(c)),
                    Err(e) => errors.push(e),
                }
            }
            match self.sweep(deadline) {
                Ok(c) => return Ok(self.welcome(c)),
                Err(mut e) => errors.append(&mut e),
            }
            let now = Instant::now();
            if now + backoff >= deadline {
                errors.dedup();
                return Err(Error::Unavailable {
                    message: format!(
                        "no leader found within {:.1?}: {}",
                        now - started,
                        if errors.is_empty() {
                            "no node answered".to_owned()
                        } else {
                            errors.join("; ")
                        }
                    ),
                });
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    /// Probe every known node at once; the first leader connection wins.
    fn sweep(&self, deadline: Instant) -> std::result::Result<Conn, Vec<String>> {
        let (tx, rx) = mpsc::channel::<ProbeResult>();
        let mut pending = 0;
        let mut errors = Vec::new();
        for addr in &self.nodes {
            let tx = tx.clone();
            let addr = addr.clone();
            let settings = self.settings.clone();
            let id = self.client_id;
            let spawned = std::thread::Builder::new()
                .name("aiolite-dqlite-probe".into())
                .spawn(move || {
                    // A late winner's connection is dropped with the send error.
                    let _ = tx.send(probe(&addr, &settings, deadline, id));
                });
            match spawned {
                Ok(_) => pending += 1,
                Err(e) => errors.push(format!("cannot start a probe thread: {e}")),
            }
        }
        drop(tx);
        while pending > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left.max(Duration::from_millis(1))) {
                Ok(Ok(conn)) => return Ok(conn),
                Ok(Err(e)) => {
                    errors.push(e);
                    pending -= 1;
                }
                Err(_) => {
                    errors.push(format!("{pending} node(s) did not answer in time"));
                    break;
                }
            }
        }
        Err(errors)
    }

    /// Remember the leader and refresh the node list (voters first) from its CLUSTER answer.
    fn welcome(&mut self, mut conn: Conn) -> Conn {
        self.last_leader = Some(conn.addr.to_string());
        if let Ok(Response::Nodes(mut nodes)) = conn.call(&Request::Cluster { format: 1 }) {
            nodes.sort_by_key(|n| n.role != ROLE_VOTER);
            let mut list: Vec<String> = nodes.into_iter().map(|n| n.address).filter(|a| !a.is_empty()).collect();
            for s in &self.settings.seeds {
                if !list.contains(s) {
                    list.push(s.clone());
                }
            }
            self.nodes = list;
        }
        conn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let s = parse_url("dqlite://127.0.0.1:9001,127.0.0.1:9002, localhost:9003/app").unwrap();
        assert_eq!(s.seeds, ["127.0.0.1:9001", "127.0.0.1:9002", "localhost:9003"]);
        assert_eq!(s.database, "app");
        assert_eq!(s.leader_timeout, DEFAULT_LEADER_TIMEOUT);
        let s = parse_url("dqlite://[::1]:9001/db?leader_timeout=2.5s&connect_timeout=250ms&timeout=7").unwrap();
        assert_eq!(s.seeds, ["[::1]:9001"]);
        assert_eq!(s.leader_timeout, Duration::from_millis(2500));
        assert_eq!(s.connect_timeout, Duration::from_millis(250));
        assert_eq!(s.request_timeout, Duration::from_secs(7));
        // Duplicates are probed once.
        assert_eq!(parse_url("dqlite://h:1,h:1/d").unwrap().seeds, ["h:1"]);
        for bad in [
            "dqlite://",
            "dqlite://127.0.0.1:9001",
            "dqlite://127.0.0.1:9001/",
            "dqlite:///app",
            "dqlite://127.0.0.1/app",
            "dqlite://127.0.0.1:0/app",
            "dqlite://127.0.0.1:70000/app",
            "dqlite://127.0.0.1:x/app",
            "dqlite://:9001/app",
            "dqlite://a:1,,b:2/app",
            "dqlite://::1:9001/app",
            "dqlite://[::1]/app",
            "dqlite://a:1/app/x",
            "dqlite://a:1/app?nope=1",
            "dqlite://a:1/app?timeout=abc",
            "dqlite://a:1/app?timeout=-1",
            "dqlite://user@a:1/app",
            "sqlite://a:1/app",
        ] {
            let e = parse_url(bad).unwrap_err();
            assert!(matches!(e, Error::InvalidArgument { .. }), "{bad}: {e:?}");
            assert!(e.to_string().contains("dqlite URL"), "{e}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1"), Some(Duration::from_secs(1)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration("inf"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn nobody_listening_is_unavailable() {
        // A port nothing listens on (bound, then released).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut s = parse_url(&format!("dqlite://127.0.0.1:{port}/db")).unwrap();
        s.leader_timeout = Duration::from_millis(300);
        let mut c = Cluster::new(s);
        let start = Instant::now();
        let e = c.connect(start + Duration::from_millis(300)).unwrap_err();
        assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
        assert_eq!(c.nodes(), [format!("127.0.0.1:{port}")]);
    }
}
