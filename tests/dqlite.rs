//! The dqlite backend against a real 3-node cluster of `dqlite-demo` processes on loopback
//! (Debian: `apt-get install -y go-dqlite`). Every test that needs a cluster skips, with a
//! message, only when `dqlite-demo` is not installed.
//!
//! Each cluster is started by the test, in a fresh temp dir, and every node is killed by its
//! PID and waited for when the test ends (a `Drop` guard, so also when it fails). Cluster tests
//! run one at a time (a lock), to stay robust on small machines.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aiolite::{ConnectOptions, Connection, Error, ErrorCode, TransactionBehavior, Value, named_params, params};
use futures::StreamExt;

// ---------------------------------------------------------------------------------------------
// Cluster harness

static SERIAL: Mutex<()> = Mutex::new(());

fn dqlite_demo() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("dqlite-demo"))
        .find(|p| p.is_file())
}

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A raw request on a fresh connection (an implementation independent of aiolite's): the
/// response type and body.
fn raw(addr: &str, kind: u8, body: &[u8]) -> std::io::Result<(u8, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut msg = 1u64.to_le_bytes().to_vec();
    msg.extend(((body.len() / 8) as u32).to_le_bytes());
    msg.extend([kind, 0, 0, 0]);
    msg.extend(body);
    s.write_all(&msg)?;
    let mut head = [0u8; 8];
    s.read_exact(&mut head)?;
    let words = u32::from_le_bytes(head[..4].try_into().unwrap()) as usize;
    let mut out = vec![0u8; words * 8];
    s.read_exact(&mut out)?;
    Ok((head[4], out))
}

fn text_at(b: &[u8], pos: &mut usize) -> String {
    let end = b[*pos..].iter().position(|&c| c == 0).unwrap() + *pos;
    let s = String::from_utf8(b[*pos..end].to_vec()).unwrap();
    *pos = (end + 8) & !7;
    s
}

/// LEADER: the address of the leader this node knows ("" for none).
fn leader_of(addr: &str) -> Option<String> {
    let (kind, body) = raw(addr, 0, &[0; 8]).ok()?;
    (kind == 1).then(|| text_at(&body, &mut 8))
}

/// CLUSTER(1): (address, role) of every node.
fn nodes_of(addr: &str) -> Option<Vec<(String, u64)>> {
    let (kind, body) = raw(addr, 16, &1u64.to_le_bytes()).ok()?;
    if kind != 3 {
        return None;
    }
    let n = u64::from_le_bytes(body[..8].try_into().unwrap()) as usize;
    let mut pos = 8;
    let mut out = Vec::new();
    for _ in 0..n {
        pos += 8;
        let a = text_at(&body, &mut pos);
        let role = u64::from_le_bytes(body[pos..pos + 8].try_into().unwrap());
        pos += 8;
        out.push((a, role));
    }
    Some(out)
}

struct Node {
    addr: String,
    child: Option<Child>,
}

/// A running cluster; dropping it kills every node by PID and reaps it.
struct Cluster {
    nodes: Vec<Node>,
    dir: tempfile::TempDir,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for i in 0..self.nodes.len() {
                eprintln!("--- node {i} ({}) log ---\n{}", self.nodes[i].addr, self.log(i));
            }
        }
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Cluster {
    /// Start 3 nodes and wait until they are 3 voters agreeing on a leader. `None` (after
    /// printing why) when `dqlite-demo` is not installed.
    fn start(test: &str) -> Option<Cluster> {
        let Some(bin) = dqlite_demo() else {
            eprintln!("SKIPPED {test}: dqlite-demo not found (apt-get install -y go-dqlite)");
            return None;
        };
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let mut c = Cluster {
            nodes: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
            _serial: serial,
        };
        for i in 0..3 {
            let addr = format!("127.0.0.1:{}", free_port());
            let join = (i > 0).then(|| c.nodes[0].addr.clone());
            let child = spawn_node(&bin, c.dir.path(), i, &addr, join.as_deref());
            c.nodes.push(Node {
                addr: addr.clone(),
                child: Some(child),
            });
            if i == 0 {
                wait_until("the first node to lead", Duration::from_secs(30), || {
                    leader_of(&addr).as_deref() == Some(addr.as_str())
                });
            }
        }
        let addrs: Vec<String> = c.nodes.iter().map(|n| n.addr.clone()).collect();
        wait_until("3 voters and one leader", Duration::from_secs(30), || {
            let Some(l) = leader_of(&addrs[0]).filter(|l| !l.is_empty()) else {
                return false;
            };
            let voters = nodes_of(&l).is_some_and(|n| n.len() == 3 && n.iter().all(|(_, role)| *role == 0));
            voters && addrs.iter().all(|a| leader_of(a).as_deref() == Some(l.as_str()))
        });
        Some(c)
    }

    fn url(&self, db: &str, options: &str) -> String {
        let addrs: Vec<&str> = self.nodes.iter().map(|n| n.addr.as_str()).collect();
        format!("dqlite://{}/{db}{options}", addrs.join(","))
    }

    /// The leader as the live nodes see it.
    fn leader(&self) -> Option<usize> {
        for n in self.nodes.iter().filter(|n| n.child.is_some()) {
            if let Some(l) = leader_of(&n.addr).filter(|l| !l.is_empty()) {
                return self.nodes.iter().position(|m| m.addr == l);
            }
        }
        None
    }

    /// SIGKILL node `i` by its PID and reap it.
    fn kill(&mut self, i: usize) {
        let mut child = self.nodes[i].child.take().expect("node running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("n{i}.log"))).unwrap_or_default()
    }
}

fn spawn_node(bin: &Path, dir: &Path, i: usize, addr: &str, join: Option<&str>) -> Child {
    let data = dir.join(format!("n{i}"));
    std::fs::create_dir_all(&data).unwrap();
    let log = std::fs::File::create(dir.join(format!("n{i}.log"))).unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg("--api")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--db")
        .arg(addr)
        .arg("-D")
        .arg(&data)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    if let Some(j) = join {
        cmd.arg("--join").arg(j);
    }
    cmd.spawn().expect("start dqlite-demo")
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Real(x), Value::Real(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Without a cluster

#[test]
fn malformed_urls_are_invalid_arguments() {
    rt().block_on(async {
        for url in [
            "dqlite://",
            "dqlite://127.0.0.1/app",
            "dqlite://127.0.0.1:9001",
            "dqlite://a:1/db?x=1",
        ] {
            let e = aiolite::connect(url).await.unwrap_err();
            assert!(matches!(e, Error::InvalidArgument { .. }), "{url}: {e:?}");
        }
    });
}

#[test]
fn no_cluster_is_unavailable() {
    rt().block_on(async {
        let url = format!("dqlite://127.0.0.1:{}/app?leader_timeout=500ms", free_port());
        let e = aiolite::connect(url).await.unwrap_err();
        assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
    });
}

// ---------------------------------------------------------------------------------------------
// With a cluster

#[test]
fn statements_values_cursors_transactions() {
    let Some(cluster) = Cluster::start("statements_values_cursors_transactions") else {
        return;
    };
    let started = Instant::now();
    rt().block_on(async {
        let db = aiolite::connect(cluster.url("app", "")).await.unwrap();
        values_round_trip(&db).await;
        declared_types(&db).await;
        parameters(&db).await;
        errors_and_unsupported(&db).await;
        returning(&db).await;
        big_query(&db).await;
        abandoned_and_interleaved_cursors(&db).await;
        transactions(&db).await;
        tracked_transaction_statements(&db).await;
        second_writer_busy(&cluster).await;
        options(&cluster).await;
        db.close().await.unwrap();
    });
    eprintln!("statements_values_cursors_transactions: {:.1?}", started.elapsed());
}

async fn values_round_trip(db: &Connection) {
    db.execute_script(
        "CREATE TABLE v(id INTEGER PRIMARY KEY, x); CREATE TABLE typed(i INTEGER, r REAL, t TEXT, b BLOB);",
    )
    .await
    .unwrap();
    let values = vec![
        Value::Null,
        Value::Integer(0),
        Value::Integer(i64::MIN),
        Value::Integer(i64::MAX),
        Value::Integer(-1),
        Value::Real(1.5),
        Value::Real(-0.0),
        Value::Real(f64::MIN_POSITIVE),
        Value::Real(f64::MAX),
        Value::Real(std::f64::consts::PI),
        Value::Text(String::new()),
        Value::Text("1234567".into()),
        Value::Text("12345678".into()),
        Value::Text("héllo wörld ✓ 🦀".into()),
        Value::Text("x".repeat(100_000)),
        Value::Blob(Vec::new()),
        Value::Blob(vec![0, 1, 2, 255]),
        Value::Blob(vec![7; 8]),
        Value::Blob((0..100_000).map(|i| (i % 251) as u8).collect()),
    ];
    for v in &values {
        db.execute("INSERT INTO v(x) VALUES (?)", [v.clone()]).await.unwrap();
        // A bound parameter comes back as itself.
        let echo: Value = db.fetch_scalar("SELECT ?", [v.clone()]).await.unwrap().unwrap();
        assert!(same(&echo, v), "{echo:?} != {v:?}");
    }
    // fetch_all
    let rows = db.fetch_all("SELECT x FROM v ORDER BY id", ()).await.unwrap();
    assert_eq!(rows.len(), values.len());
    for (r, v) in rows.iter().zip(&values) {
        assert!(same(r.get_value(0).unwrap(), v), "{r:?} != {v:?}");
    }
    // fetch_one / fetch_scalar, by id
    for (i, v) in values.iter().enumerate() {
        let row = db
            .fetch_one("SELECT id, x FROM v WHERE id = ?", [i as i64 + 1])
            .await
            .unwrap()
            .unwrap();
        assert!(same(&row["x"], v));
        let s: Value = db
            .fetch_scalar("SELECT x FROM v WHERE id = ?", [i as i64 + 1])
            .await
            .unwrap()
            .unwrap();
        assert!(same(&s, v));
    }
    // query: a cursor over the same rows (several batches: the big values exceed a page)
    let mut cur = db.query("SELECT x FROM v ORDER BY id", ()).await.unwrap();
    assert_eq!(cur.columns()[0].name(), "x");
    let mut i = 0;
    while let Some(row) = cur.next().await {
        assert!(same(row.unwrap().get_value(0).unwrap(), &values[i]));
        i += 1;
    }
    assert_eq!(i, values.len());
    // Declared column types: what goes in comes out.
    db.execute(
        "INSERT INTO typed VALUES (?, ?, ?, ?)",
        params![i64::MIN, 2.25, "t", vec![1_u8, 2]],
    )
    .await
    .unwrap();
    let row = db.fetch_one("SELECT * FROM typed", ()).await.unwrap().unwrap();
    assert_eq!(
        row.values(),
        [
            Value::Integer(i64::MIN),
            Value::Real(2.25),
            Value::Text("t".into()),
            Value::Blob(vec![1, 2])
        ]
    );
    assert_eq!(
        row.columns()[0].decl_type(),
        None,
        "dqlite does not send declared types"
    );
    // serde
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Typed {
        i: i64,
        r: f64,
        t: String,
        b: Vec<u8>,
    }
    let t: Vec<Typed> = db.fetch_all_as("SELECT * FROM typed", ()).await.unwrap();
    assert_eq!(
        t,
        [Typed {
            i: i64::MIN,
            r: 2.25,
            t: "t".into(),
            b: vec![1, 2]
        }]
    );
    let one: Option<Typed> = db.fetch_one_as("SELECT * FROM typed WHERE 0", ()).await.unwrap();
    assert_eq!(one, None);
    // NaN is stored as NULL, as by SQLite; NUL inside text cannot travel.
    let nan: Value = db.fetch_scalar("SELECT ?", [f64::NAN]).await.unwrap().unwrap();
    assert_eq!(nan, Value::Null);
    let e = db.execute("INSERT INTO v(x) VALUES (?)", ["a\0b"]).await.unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e:?}");
    // An empty result still has its columns.
    let cur = db.query("SELECT id, x FROM v WHERE 0", ()).await.unwrap();
    assert_eq!(cur.columns().len(), 2);
}

/// dqlite's UNIXTIME / ISO8601 / BOOLEAN codes come back as Integer / Text / Integer. (Never a
/// REAL or BLOB in a date column or a non-integer in a BOOLEAN one: that aborts the server.)
async fn declared_types(db: &Connection) {
    db.execute("CREATE TABLE d(t DATETIME, day DATE, ts TIMESTAMP, b BOOLEAN)", ())
        .await
        .unwrap();
    db.execute(
        "INSERT INTO d VALUES (?, ?, ?, ?)",
        params![
            1_700_000_000_i64,
            "2024-05-06",
            "2024-01-02 03:04:05.123456789+00:00",
            1
        ],
    )
    .await
    .unwrap();
    db.execute("INSERT INTO d VALUES (?, ?, ?, ?)", params![-1, 0, "x", 5])
        .await
        .unwrap();
    db.execute("INSERT INTO d VALUES (NULL, NULL, NULL, NULL)", ())
        .await
        .unwrap();
    let rows = db.fetch_all("SELECT * FROM d", ()).await.unwrap();
    assert_eq!(
        rows[0].values(),
        [
            Value::Integer(1_700_000_000),
            Value::Text("2024-05-06".into()),
            Value::Text("2024-01-02 03:04:05.123456789+00:00".into()),
            Value::Integer(1)
        ]
    );
    assert_eq!(
        rows[1].values(),
        [
            Value::Integer(-1),
            Value::Integer(0),
            Value::Text("x".into()),
            Value::Integer(5)
        ]
    );
    // NULLs: dqlite sends "" for date columns (read back as NULL) and 0 for BOOLEAN.
    assert_eq!(
        rows[2].values(),
        [Value::Null, Value::Null, Value::Null, Value::Integer(0)]
    );
}

async fn parameters(db: &Connection) {
    let row = db
        .fetch_one(
            "SELECT :a AS a, @b AS b, $c AS c, :a + @b AS sum",
            named_params! {":a": 1, "@b": 2, "$c": "three"},
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.values(),
        [
            Value::Integer(1),
            Value::Integer(2),
            Value::Text("three".into()),
            Value::Integer(3)
        ]
    );
    // Names without their prefix, and numbered parameters.
    let n: Option<i64> = db
        .fetch_scalar("SELECT :x * 10 + :y", [("y", 2), ("x", 4)])
        .await
        .unwrap();
    assert_eq!(n, Some(42));
    let n: Option<i64> = db.fetch_scalar("SELECT ?2 - ?1", [1, 10]).await.unwrap();
    assert_eq!(n, Some(9));
    let e = db.fetch_one("SELECT :a", [("b", 1)]).await.unwrap_err();
    assert!(matches!(e, Error::ParameterName { .. }), "{e:?}");
    let e = db.fetch_one("SELECT :a, :b", [("a", 1)]).await.unwrap_err();
    assert!(matches!(e, Error::ParameterName { .. }), "{e:?}");
    let e = db.fetch_one("SELECT ?, ?", [1]).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::ParameterCount {
                expected: 2,
                given: 1,
                ..
            }
        ),
        "{e:?}"
    );
    let e = db.execute("SELECT ?", ()).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::ParameterCount {
                expected: 1,
                given: 0,
                ..
            }
        ),
        "{e:?}"
    );
    // 255 parameters is the most dqlite 1.11 takes (schema 0); more is a clear error there.
    let holders = vec!["?"; 255].join("+");
    let sum: Option<i64> = db
        .fetch_scalar(&format!("SELECT {holders}"), vec![1; 255])
        .await
        .unwrap();
    assert_eq!(sum, Some(255));
    let holders = vec!["?"; 256].join("+");
    match db.fetch_scalar::<i64>(&format!("SELECT {holders}"), vec![1; 256]).await {
        Ok(sum) => assert_eq!(sum, Some(256)), // dqlite >= 1.12
        Err(e) => assert!(e.to_string().contains("255"), "{e}"),
    }
    // The connection is fine afterwards.
    assert_eq!(db.fetch_scalar::<i64>("SELECT 1", ()).await.unwrap(), Some(1));
}

async fn errors_and_unsupported(db: &Connection) {
    db.execute("CREATE TABLE u(id INTEGER PRIMARY KEY, email TEXT UNIQUE)", ())
        .await
        .unwrap();
    db.execute("INSERT INTO u(email) VALUES ('a')", ()).await.unwrap();
    let e = db.execute("INSERT INTO u(email) VALUES ('a')", ()).await.unwrap_err();
    assert!(e.is_unique_violation(), "{e:?}");
    assert_eq!(e.sql(), Some("INSERT INTO u(email) VALUES ('a')"));
    let e = db.fetch_all("SELEC 1", ()).await.unwrap_err();
    assert_eq!(e.sqlite_code(), Some(ErrorCode::Error), "{e:?}");
    let e = db.fetch_all("SELECT * FROM nope", ()).await.unwrap_err();
    assert!(e.to_string().contains("no such table"), "{e}");
    let e = db.execute("SELECT 1; SELECT 2", ()).await.unwrap_err();
    assert!(matches!(e, Error::MultipleStatements { .. }), "{e:?}");
    // Blank SQL does nothing.
    db.execute("  -- nothing\n", ()).await.unwrap();
    assert!(db.fetch_all(";", ()).await.unwrap().is_empty());
    // Local-only features.
    let e = db.call(|c| c.execute("SELECT 1", [])).await.unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e:?}");
    let e = db.create_function("f", 0, true, |_| Ok(1_i64)).await.unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e:?}");
    let e = db.serialize().await.unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e:?}");
    let e = db.blob_open("u", "email", 1, true).await.unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e:?}");
    let e = aiolite::crud::insert(db, "u", &serde_json::json!({"email": "b"}))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e:?}");
    assert_eq!(
        db.fetch_scalar::<i64>("SELECT count(*) FROM u", ()).await.unwrap(),
        Some(1)
    );
}

async fn returning(db: &Connection) {
    db.execute("CREATE TABLE ret(id INTEGER PRIMARY KEY, a TEXT)", ())
        .await
        .unwrap();
    // Outside a transaction (aiolite wraps it in one: dqlite 1.11 loses autocommit writes run
    // through QUERY) and inside one.
    let id = db.execute_insert("INSERT INTO ret(a) VALUES ('x')", ()).await.unwrap();
    assert_eq!(id, Some(1));
    let row = db
        .fetch_one("INSERT INTO ret(a) VALUES (?) RETURNING id, a", ["y"])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.values(), [Value::Integer(2), Value::Text("y".into())]);
    let r = db
        .execute("UPDATE ret SET a = upper(a) RETURNING id", ())
        .await
        .unwrap();
    assert_eq!(r.changes, 2);
    db.with_transaction(|tx| async move {
        let id: Option<i64> = tx
            .fetch_scalar("INSERT INTO ret(a) VALUES ('z') RETURNING id", ())
            .await?;
        assert_eq!(id, Some(3));
        Ok::<_, Error>(())
    })
    .await
    .unwrap();
    let mut cur = db.query("DELETE FROM ret WHERE id > 1 RETURNING id", ()).await.unwrap();
    let mut ids = Vec::new();
    while let Some(r) = cur.next().await {
        ids.push(r.unwrap().get::<i64>(0).unwrap());
    }
    ids.sort_unstable();
    assert_eq!(ids, [2, 3]);
    let all = db.fetch_all("SELECT a FROM ret", ()).await.unwrap();
    assert_eq!(all.len(), 1);
    assert!(!db.in_transaction());
}

async fn big_query(db: &Connection) {
    db.execute("CREATE TABLE big(i INTEGER PRIMARY KEY, s TEXT)", ())
        .await
        .unwrap();
    let tx = db.transaction().await.unwrap();
    let n = tx
        .execute_many(
            "INSERT INTO big VALUES (?, ?)",
            (0..3000).map(|i| params![i, format!("row number {i}")]),
        )
        .await
        .unwrap();
    assert_eq!(n, 3000);
    tx.commit().await.unwrap();
    // 3 000 rows take ~50 ROWS batches: the cursor streams them.
    let mut cur = db.query("SELECT i, s FROM big ORDER BY i", ()).await.unwrap();
    let mut i = 0;
    while let Some(row) = cur.next().await {
        let row = row.unwrap();
        assert_eq!(row.get::<i64>(0).unwrap(), i);
        assert_eq!(row.get::<String>(1).unwrap(), format!("row number {i}"));
        i += 1;
    }
    assert_eq!(i, 3000);
    let all = db.fetch_all("SELECT * FROM big", ()).await.unwrap();
    assert_eq!(all.len(), 3000);
    let first = db
        .fetch_one("SELECT * FROM big ORDER BY i DESC", ())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.get::<i64>(0).unwrap(), 2999);
    let mut cur = db.query("SELECT * FROM big", ()).await.unwrap();
    assert_eq!(cur.fetch_many(10).await.unwrap().len(), 10);
    assert_eq!(cur.fetch_all().await.unwrap().len(), 2990);
}

async fn abandoned_and_interleaved_cursors(db: &Connection) {
    // Dropped after a few rows: INTERRUPT and drain; the connection is usable at once.
    for _ in 0..3 {
        let mut cur = db.query("SELECT * FROM big", ()).await.unwrap();
        assert_eq!(cur.fetch_many(5).await.unwrap().len(), 5);
        drop(cur);
        assert_eq!(
            db.fetch_scalar::<i64>("SELECT count(*) FROM big", ()).await.unwrap(),
            Some(3000)
        );
    }
    let cur = db.query("SELECT * FROM big", ()).await.unwrap();
    cur.close();
    db.execute("INSERT INTO big VALUES (5000, 'after close')", ())
        .await
        .unwrap();
    // Another statement while a cursor is mid-stream: the cursor keeps its rows.
    let mut cur = db
        .query("SELECT i FROM big WHERE i < 3000 ORDER BY i", ())
        .await
        .unwrap();
    let head = cur.fetch_many(100).await.unwrap();
    db.execute("DELETE FROM big WHERE i = 5000", ()).await.unwrap();
    let other = db.fetch_all("SELECT i FROM big WHERE i < 3", ()).await.unwrap();
    assert_eq!(other.len(), 3);
    let rest = cur.fetch_all().await.unwrap();
    assert_eq!(head.len() + rest.len(), 3000);
    assert_eq!(rest.last().unwrap().get::<i64>(0).unwrap(), 2999);
    // Two cursors read alternately.
    let mut a = db.query("SELECT i FROM big ORDER BY i", ()).await.unwrap();
    let mut b = db.query("SELECT i FROM big ORDER BY i DESC", ()).await.unwrap();
    for k in 0..200 {
        assert_eq!(a.next().await.unwrap().unwrap().get::<i64>(0).unwrap(), k);
        assert_eq!(b.next().await.unwrap().unwrap().get::<i64>(0).unwrap(), 2999 - k);
    }
}

async fn transactions(db: &Connection) {
    db.execute("CREATE TABLE acct(id INTEGER PRIMARY KEY, n INTEGER)", ())
        .await
        .unwrap();
    let count = || async {
        db.fetch_scalar::<i64>("SELECT count(*) FROM acct", ())
            .await
            .unwrap()
            .unwrap()
    };
    // commit
    let tx = db.transaction().await.unwrap();
    assert!(db.in_transaction());
    tx.execute("INSERT INTO acct(n) VALUES (1)", ()).await.unwrap();
    tx.commit().await.unwrap();
    assert!(!db.in_transaction());
    assert_eq!(count().await, 1);
    // rollback, and rollback by drop
    let tx = db.transaction_with(TransactionBehavior::Immediate).await.unwrap();
    tx.execute("INSERT INTO acct(n) VALUES (2)", ()).await.unwrap();
    assert_eq!(
        tx.fetch_scalar::<i64>("SELECT count(*) FROM acct", ()).await.unwrap(),
        Some(2)
    );
    tx.rollback().await.unwrap();
    assert_eq!(count().await, 1);
    {
        let tx = db.transaction().await.unwrap();
        tx.execute("INSERT INTO acct(n) VALUES (3)", ()).await.unwrap();
    }
    assert_eq!(count().await, 1);
    assert!(!db.in_transaction());
    // with_transaction
    let r: Result<(), Error> = db
        .with_transaction(|tx| async move {
            tx.execute("INSERT INTO acct(n) VALUES (4)", ()).await?;
            Err(Error::NotFound {
                message: "abort".into(),
            })
        })
        .await;
    assert!(r.is_err());
    assert_eq!(count().await, 1);
    db.with_transaction(|tx| async move {
        tx.execute("INSERT INTO acct(n) VALUES (5)", ()).await?;
        Ok::<_, Error>(())
    })
    .await
    .unwrap();
    assert_eq!(count().await, 2);
    // savepoints
    let mut tx = db.transaction().await.unwrap();
    tx.execute("INSERT INTO acct(n) VALUES (6)", ()).await.unwrap();
    {
        let sp = tx.savepoint().await.unwrap();
        sp.execute("INSERT INTO acct(n) VALUES (7)", ()).await.unwrap();
        sp.rollback().await.unwrap();
    }
    {
        let sp = tx.savepoint().await.unwrap();
        sp.execute("INSERT INTO acct(n) VALUES (8)", ()).await.unwrap();
        sp.commit().await.unwrap();
    }
    tx.commit().await.unwrap();
    let ns: Vec<i64> = db
        .fetch_all("SELECT n FROM acct ORDER BY id", ())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0).unwrap())
        .collect();
    assert_eq!(ns, [1, 5, 6, 8]);
    // A constraint error keeps the transaction; ON CONFLICT ROLLBACK ends it (found out by
    // asking the server), and the handle says so.
    db.execute("CREATE TABLE uniq(k INTEGER UNIQUE)", ()).await.unwrap();
    let tx = db.transaction().await.unwrap();
    tx.execute("INSERT INTO uniq VALUES (1)", ()).await.unwrap();
    assert!(
        tx.execute("INSERT INTO uniq VALUES (1)", ())
            .await
            .unwrap_err()
            .is_unique_violation()
    );
    assert!(db.in_transaction());
    tx.commit().await.unwrap();
    let tx = db.transaction().await.unwrap();
    tx.execute("INSERT INTO uniq VALUES (2)", ()).await.unwrap();
    let e = tx
        .execute("INSERT OR ROLLBACK INTO uniq VALUES (1)", ())
        .await
        .unwrap_err();
    assert!(e.is_constraint_violation(), "{e:?}");
    assert!(!db.in_transaction());
    let e = tx.commit().await.unwrap_err();
    assert!(matches!(e, Error::TransactionEnded { .. }), "{e:?}");
    assert_eq!(
        db.fetch_scalar::<i64>("SELECT count(*) FROM uniq", ()).await.unwrap(),
        Some(1)
    );
}

/// Transaction statements run as SQL are tracked too.
async fn tracked_transaction_statements(db: &Connection) {
    db.execute("BEGIN", ()).await.unwrap();
    assert!(db.in_transaction());
    db.execute("INSERT INTO acct(n) VALUES (9)", ()).await.unwrap();
    db.execute("SAVEPOINT s1", ()).await.unwrap();
    db.execute("ROLLBACK TO s1", ()).await.unwrap();
    assert!(db.in_transaction());
    db.execute("COMMIT", ()).await.unwrap();
    assert!(!db.in_transaction());
    db.execute("SAVEPOINT outer_sp", ()).await.unwrap();
    assert!(db.in_transaction());
    db.execute("RELEASE outer_sp", ()).await.unwrap();
    assert!(!db.in_transaction());
    db.execute_script("BEGIN; INSERT INTO acct(n) VALUES (10);")
        .await
        .unwrap();
    assert!(db.in_transaction());
    db.execute_script("INSERT INTO acct(n) VALUES (11); ROLLBACK;")
        .await
        .unwrap();
    assert!(!db.in_transaction());
    db.execute_script(
        "CREATE TABLE log(x); CREATE TRIGGER tr AFTER INSERT ON acct BEGIN INSERT INTO log VALUES (new.n); END; \
         INSERT INTO acct(n) VALUES (12); SELECT * FROM log;",
    )
    .await
    .unwrap();
    assert_eq!(db.fetch_scalar::<i64>("SELECT x FROM log", ()).await.unwrap(), Some(12));
    assert_eq!(
        db.fetch_scalar::<i64>("SELECT count(*) FROM acct WHERE n IN (9, 10, 11, 12)", ())
            .await
            .unwrap(),
        Some(2)
    );
    // Python-style implicit transactions.
    let url = db.path().to_owned();
    let implicit = ConnectOptions::new(url)
        .isolation_level(Some(aiolite::IsolationLevel::Deferred))
        .open()
        .await
        .unwrap();
    implicit.execute("INSERT INTO acct(n) VALUES (13)", ()).await.unwrap();
    assert!(implicit.in_transaction());
    implicit.rollback().await.unwrap();
    assert!(!implicit.in_transaction());
    implicit.close().await.unwrap();
}

/// dqlite has no busy timeout: aiolite waits and re-sends up to the connection's.
async fn second_writer_busy(cluster: &Cluster) {
    let a = aiolite::connect(cluster.url("busy", "")).await.unwrap();
    a.execute("CREATE TABLE IF NOT EXISTS w(x)", ()).await.unwrap();
    let impatient = ConnectOptions::new(cluster.url("busy", ""))
        .busy_timeout(Duration::from_millis(200))
        .open()
        .await
        .unwrap();
    let patient = ConnectOptions::new(cluster.url("busy", ""))
        .busy_timeout(Duration::from_secs(30))
        .open()
        .await
        .unwrap();
    let tx = a.transaction_with(TransactionBehavior::Immediate).await.unwrap();
    tx.execute("INSERT INTO w VALUES (1)", ()).await.unwrap();
    let e = impatient.execute("INSERT INTO w VALUES (2)", ()).await.unwrap_err();
    assert!(e.is_busy(), "{e:?}");
    // Readers are not blocked, and see the committed snapshot.
    assert_eq!(
        impatient
            .fetch_scalar::<i64>("SELECT count(*) FROM w", ())
            .await
            .unwrap(),
        Some(0)
    );
    // A writer that waits long enough gets through once the first commits.
    let waiting = tokio::spawn(async move {
        let r = patient.execute("INSERT INTO w VALUES (3)", ()).await;
        patient.close().await.unwrap();
        r
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    tx.commit().await.unwrap();
    waiting.await.unwrap().unwrap();
    assert_eq!(
        a.fetch_scalar::<i64>("SELECT count(*) FROM w", ()).await.unwrap(),
        Some(2)
    );
    impatient.close().await.unwrap();
    a.close().await.unwrap();
}

async fn options(cluster: &Cluster) {
    // Pragmas are applied at connect (and after every reconnection).
    let db = ConnectOptions::new(cluster.url("opts", ""))
        .pragma("foreign_keys", "ON")
        .open()
        .await
        .unwrap();
    db.execute_script("CREATE TABLE p(id INTEGER PRIMARY KEY); CREATE TABLE c(p REFERENCES p(id));")
        .await
        .unwrap();
    let e = db.execute("INSERT INTO c VALUES (1)", ()).await.unwrap_err();
    assert!(e.is_constraint_violation(), "{e:?}");
    // Read-only connections refuse writes before sending them.
    let ro = ConnectOptions::new(cluster.url("opts", ""))
        .read_only(true)
        .open()
        .await
        .unwrap();
    assert_eq!(
        ro.fetch_scalar::<i64>("SELECT count(*) FROM p", ()).await.unwrap(),
        Some(0)
    );
    let e = ro.execute("INSERT INTO p VALUES (1)", ()).await.unwrap_err();
    assert_eq!(e.sqlite_code(), Some(ErrorCode::ReadOnly), "{e:?}");
    ro.close().await.unwrap();
    // A pool: every connection is a connection to the leader; readers refuse writes, which
    // the pool sends to its writer.
    let pool = aiolite::Pool::open(
        ConnectOptions::new(cluster.url("opts", "")),
        aiolite::PoolOptions::new().readers(2),
    )
    .await
    .unwrap();
    pool.execute("INSERT INTO p VALUES (10)", ()).await.unwrap();
    assert_eq!(
        pool.fetch_scalar::<i64>("SELECT count(*) FROM p", ()).await.unwrap(),
        Some(1)
    );
    let reader = pool.reader().await.unwrap();
    let e = reader.execute("INSERT INTO p VALUES (11)", ()).await.unwrap_err();
    assert_eq!(e.sqlite_code(), Some(ErrorCode::ReadOnly), "{e:?}");
    // Reads that overlap start no read anchor on a cluster (its locks are the server's).
    assert_eq!(
        pool.fetch_scalar::<i64>("SELECT count(*) FROM p", ()).await.unwrap(),
        Some(1)
    );
    assert_eq!((pool.stats().anchor_holds, pool.stats().anchor_active), (0, false));
    drop(reader);
    pool.close().await.unwrap();
    db.close().await.unwrap();
}

/// SIGKILL the leader in the middle of a transaction, then take the quorum away.
#[test]
fn leader_failover_and_quorum_loss() {
    let Some(mut cluster) = Cluster::start("leader_failover_and_quorum_loss") else {
        return;
    };
    let started = Instant::now();
    rt().block_on(async {
        let db = aiolite::connect(cluster.url("fail", "?leader_timeout=30s"))
            .await
            .unwrap();
        db.execute("CREATE TABLE f(id INTEGER PRIMARY KEY, v TEXT)", ())
            .await
            .unwrap();
        db.execute_many("INSERT INTO f(v) VALUES (?)", [["a"], ["b"]])
            .await
            .unwrap();
        db.fetch_one("INSERT INTO f(v) VALUES ('c') RETURNING id", ())
            .await
            .unwrap();
        let tx = db.transaction().await.unwrap();
        tx.execute("INSERT INTO f(v) VALUES ('uncommitted')", ()).await.unwrap();

        let leader = cluster.leader().expect("a leader");
        eprintln!("killing leader {}", cluster.nodes[leader].addr);
        cluster.kill(leader);
        let t0 = Instant::now();

        // The open transaction is gone, and reported.
        let e = tx.execute("INSERT INTO f(v) VALUES ('more')", ()).await.unwrap_err();
        assert!(matches!(e, Error::LeaderChanged { .. }), "{e:?}");
        assert!(!db.in_transaction());
        let e = tx.commit().await.unwrap_err();
        assert!(matches!(e, Error::TransactionEnded { .. }), "{e:?}");

        // The next call finds the new leader (within leader_timeout), and committed data
        // survived while the uncommitted row did not.
        let rows: Vec<String> = db
            .fetch_all("SELECT v FROM f ORDER BY id", ())
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0).unwrap())
            .collect();
        eprintln!("new leader after {:.1?}", t0.elapsed());
        assert_eq!(rows, ["a", "b", "c"]);
        db.execute("INSERT INTO f(v) VALUES ('d')", ()).await.unwrap();
        db.with_transaction(|tx| async move {
            tx.execute("INSERT INTO f(v) VALUES ('e')", ()).await?;
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
        assert_eq!(
            db.fetch_scalar::<i64>("SELECT count(*) FROM f", ()).await.unwrap(),
            Some(5)
        );

        // Quorum loss: only one of three nodes left.
        let short = aiolite::connect(cluster.url("fail", "?leader_timeout=3s"))
            .await
            .unwrap();
        let survivor = cluster.leader().expect("a leader");
        let other = (0..3)
            .find(|&i| i != survivor && cluster.nodes[i].child.is_some())
            .unwrap();
        cluster.kill(other);
        let e = short
            .execute("INSERT INTO f(v) VALUES ('no quorum')", ())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
        let e = short.fetch_all("SELECT * FROM f", ()).await.unwrap_err();
        assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
        let e = ConnectOptions::new(cluster.url("fail", "?leader_timeout=1s"))
            .open()
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
        short.close().await.unwrap();
        db.close().await.unwrap();
    });
    eprintln!("leader_failover_and_quorum_loss: {:.1?}", started.elapsed());
}
