//! What the dqlite client must know about SQL text without a local SQLite: where a statement
//! ends (dqlite 1.11 silently ignores a statement's tail), how its parameters are numbered (the
//! protocol gives only their count), whether it opens or ends a transaction (the protocol does
//! not report it), and whether it is likely to return rows (EXEC and QUERY are different
//! requests).

use crate::sql::{self, Verb};

/// A lexical token, as far as statement boundaries are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    Semi,
    Space,
    Other,
    Explain,
    Create,
    Temp,
    Trigger,
    End,
}

/// Scan one token at the start of `s` (non-empty): its kind and byte length. `None` for an
/// unterminated string, identifier or block comment (the rest of the text is one token).
fn token(s: &str) -> (Tok, usize) {
    let b = s.as_bytes();
    match b[0] {
        b';' => (Tok::Semi, 1),
        c if c.is_ascii_whitespace() => (Tok::Space, 1),
        b'-' if b.get(1) == Some(&b'-') => (Tok::Space, s.find('\n').map_or(s.len(), |i| i + 1)),
        b'/' if b.get(1) == Some(&b'*') => (Tok::Space, s[2..].find("*/").map_or(s.len(), |i| i + 4)),
        q @ (b'\'' | b'"' | b'`') => {
            // A doubled quote ends the token and starts another one: same result.
            (Tok::Other, s[1..].find(q as char).map_or(s.len(), |i| i + 2))
        }
        b'[' => (Tok::Other, s.find(']').map_or(s.len(), |i| i + 1)),
        c if is_ident_byte(c) => {
            let n = s.bytes().position(|c| !is_ident_byte(c)).unwrap_or(s.len());
            let word = &s[..n];
            let kind = if word.eq_ignore_ascii_case("explain") {
                Tok::Explain
            } else if word.eq_ignore_ascii_case("create") {
                Tok::Create
            } else if word.eq_ignore_ascii_case("temp") || word.eq_ignore_ascii_case("temporary") {
                Tok::Temp
            } else if word.eq_ignore_ascii_case("trigger") {
                Tok::Trigger
            } else if word.eq_ignore_ascii_case("end") {
                Tok::End
            } else {
                Tok::Other
            };
            (kind, n)
        }
        _ => (Tok::Other, s.chars().next().map_or(1, char::len_utf8)),
    }
}

/// Identifier characters as SQLite's tokenizer sees them (any non-ASCII byte included).
fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// The state machine of `sqlite3_complete()`: a `;` ends a statement unless it is inside a
/// `CREATE [TEMP] TRIGGER … BEGIN … END` body.
fn next_state(state: u8, t: Tok) -> u8 {
    const TRANS: [[u8; 8]; 8] = [
        // Semi Space Other Explain Create Temp Trigger End
        [1, 0, 2, 3, 4, 2, 2, 2], // 0 INVALID
        [1, 1, 2, 3, 4, 2, 2, 2], // 1 START
        [1, 2, 2, 2, 2, 2, 2, 2], // 2 NORMAL
        [1, 3, 3, 2, 4, 2, 2, 2], // 3 EXPLAIN
        [1, 4, 2, 2, 2, 4, 5, 2], // 4 CREATE
        [6, 5, 5, 5, 5, 5, 5, 5], // 5 TRIGGER
        [6, 6, 5, 5, 5, 5, 5, 7], // 6 SEMI
        [1, 7, 5, 5, 5, 5, 5, 5], // 7 END
    ];
    TRANS[state as usize][t as usize]
}

/// Split off the first statement: `(statement, rest)`. The statement includes its `;` (empty
/// statements before it are dropped); `rest` may be blank. A text without a terminating `;` is
/// one statement.
pub(crate) fn split_first(text: &str) -> (&str, &str) {
    let mut state = 0_u8;
    let mut pos = 0;
    // Empty statements before the first real one are dropped.
    let mut start = 0;
    let mut seen = false;
    while pos < text.len() {
        let (t, n) = token(&text[pos..]);
        pos += n;
        state = next_state(state, t);
        if t != Tok::Space && t != Tok::Semi {
            seen = true;
        }
        if t == Tok::Semi && state == 1 {
            if seen {
                return (&text[start..pos], &text[pos..]);
            }
            start = pos;
        }
    }
    (&text[start..], "")
}

/// The non-blank statements of a script, in order.
pub(crate) fn statements(mut text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    while !sql::is_blank(text) {
        let (first, rest) = split_first(text);
        if !sql::is_blank(first) {
            out.push(first);
        }
        if rest.len() == text.len() {
            break;
        }
        text = rest;
    }
    out
}

/// How a statement's parameters are numbered: SQLite's rules (`?` takes the next number after
/// the largest so far, `?NNN` takes NNN, a name takes the next number on its first appearance
/// and the same one afterwards).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ParamLayout {
    /// For parameter `i + 1`: its name with prefix (`:a`, `@a`, `$a`), `None` when positional.
    pub(crate) names: Vec<Option<String>>,
}

impl ParamLayout {
    /// The number of parameters (`sqlite3_bind_parameter_count`).
    pub(crate) fn count(&self) -> usize {
        self.names.len()
    }

    /// The 0-based index of a name given with or without its prefix (without: any prefix).
    pub(crate) fn index(&self, name: &str) -> Option<usize> {
        if let Some(i) = self.names.iter().position(|n| n.as_deref() == Some(name)) {
            return Some(i);
        }
        if name.starts_with([':', '@', '$']) {
            return None;
        }
        self.names.iter().position(|n| {
            n.as_deref()
                .is_some_and(|n| n.len() == name.len() + 1 && n.starts_with([':', '@', '$']) && &n[1..] == name)
        })
    }
}

/// The parameter layout of one statement.
pub(crate) fn param_layout(stmt: &str) -> ParamLayout {
    let mut names: Vec<Option<String>> = Vec::new();
    let mut pos = 0;
    let b = stmt.as_bytes();
    while pos < stmt.len() {
        match b[pos] {
            b'?' => {
                let digits = stmt[pos + 1..].bytes().take_while(u8::is_ascii_digit).count();
                let idx = if digits == 0 {
                    names.len() + 1
                } else {
                    stmt[pos + 1..pos + 1 + digits].parse::<usize>().unwrap_or(usize::MAX)
                };
                if idx != usize::MAX && idx > names.len() && idx <= 32766 {
                    names.resize(idx, None);
                }
                pos += 1 + digits;
            }
            p @ (b':' | b'@' | b'$') => {
                let mut end = pos + 1;
                loop {
                    let n = stmt[end..].bytes().take_while(|&c| is_ident_byte(c)).count();
                    end += n;
                    // Tcl-style `$a::b` and `$a(x)`.
                    if p == b'$' && stmt[end..].starts_with("::") {
                        end += 2;
                        continue;
                    }
                    break;
                }
                if p == b'$' && stmt[end..].starts_with('(') {
                    end = stmt[end..].find(')').map_or(stmt.len(), |i| end + i + 1);
                }
                if end > pos + 1 {
                    let name = &stmt[pos..end];
                    if !names.iter().any(|n| n.as_deref() == Some(name)) {
                        names.push(Some(name.to_owned()));
                    }
                }
                pos = end;
            }
            _ => {
                let (_, n) = token(&stmt[pos..]);
                pos += n;
            }
        }
    }
    ParamLayout { names }
}

/// What a statement does to the transaction state, judged by its keywords.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TxEffect {
    /// `BEGIN …`
    Begin,
    /// `COMMIT`, `END`
    Commit,
    /// `ROLLBACK` (the whole transaction)
    Rollback,
    /// `SAVEPOINT name` (name folded to lower case, quotes removed)
    Savepoint(String),
    /// `RELEASE [SAVEPOINT] name`
    Release(String),
    /// `ROLLBACK [TRANSACTION] TO [SAVEPOINT] name`
    RollbackTo(String),
}

/// The words of a statement (identifiers and quoted names, unquoted), up to 6.
fn words(stmt: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < stmt.len() && out.len() < 6 {
        let (t, n) = token(&stmt[pos..]);
        let tok = &stmt[pos..pos + n];
        pos += n;
        match t {
            Tok::Space => {}
            Tok::Semi => break,
            _ => out.push(unquote(tok).to_ascii_lowercase()),
        }
    }
    out
}

/// A name without its quotes (`"a""b"` → `a"b`).
fn unquote(tok: &str) -> String {
    let b = tok.as_bytes();
    if b.len() >= 2 {
        match (b[0], b[b.len() - 1]) {
            (q @ (b'"' | b'\'' | b'`'), e) if q == e => {
                let q = q as char;
                return tok[1..tok.len() - 1].replace(&format!("{q}{q}"), &q.to_string());
            }
            (b'[', b']') => return tok[1..tok.len() - 1].to_owned(),
            _ => {}
        }
    }
    tok.to_owned()
}

/// The transaction effect of one statement, if any.
pub(crate) fn tx_effect(stmt: &str) -> Option<TxEffect> {
    let w = words(stmt);
    let first = w.first()?.as_str();
    let rest: Vec<&str> = w[1..].iter().map(String::as_str).collect();
    match first {
        "begin" => Some(TxEffect::Begin),
        "commit" | "end" => Some(TxEffect::Commit),
        "rollback" => {
            let mut r = rest.as_slice();
            if r.first() == Some(&"transaction") {
                r = &r[1..];
            }
            if r.first() == Some(&"to") {
                r = &r[1..];
                if r.first() == Some(&"savepoint") && r.len() > 1 {
                    r = &r[1..];
                }
                Some(TxEffect::RollbackTo(r.first()?.to_string()))
            } else {
                Some(TxEffect::Rollback)
            }
        }
        "savepoint" => Some(TxEffect::Savepoint(rest.first()?.to_string())),
        "release" => {
            let mut r = rest.as_slice();
            if r.first() == Some(&"savepoint") && r.len() > 1 {
                r = &r[1..];
            }
            Some(TxEffect::Release(r.first()?.to_string()))
        }
        _ => None,
    }
}

/// `true` when the statement probably returns rows, so QUERY is tried before EXEC: `SELECT`,
/// `VALUES`, `WITH … SELECT`, `PRAGMA`, `EXPLAIN`, and DML with `RETURNING`.
pub(crate) fn likely_returns_rows(stmt: &str) -> bool {
    match sql::verb(stmt) {
        Verb::Select => true,
        Verb::Insert | Verb::Update | Verb::Delete => has_word(stmt, "returning"),
        Verb::Other => matches!(words(stmt).first().map(String::as_str), Some("pragma" | "explain")),
    }
}

/// `true` when `word` appears as a bare keyword (not inside a string or quoted name).
pub(crate) fn has_word(stmt: &str, word: &str) -> bool {
    let mut pos = 0;
    while pos < stmt.len() {
        let (t, n) = token(&stmt[pos..]);
        let tok = &stmt[pos..pos + n];
        pos += n;
        if t == Tok::Other && tok.eq_ignore_ascii_case(word) {
            return true;
        }
    }
    false
}

/// `true` for statements a read-only connection may run: `SELECT`, `VALUES`, `WITH … SELECT`.
pub(crate) fn is_read(stmt: &str) -> bool {
    sql::verb(stmt) == Verb::Select
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_statements() {
        assert_eq!(split_first("SELECT 1; SELECT 2"), ("SELECT 1;", " SELECT 2"));
        assert_eq!(split_first("SELECT 1"), ("SELECT 1", ""));
        assert_eq!(split_first("SELECT ';' ; x"), ("SELECT ';' ;", " x"));
        assert_eq!(
            split_first("SELECT \"a;b\", [c;d], `e;f`; x"),
            ("SELECT \"a;b\", [c;d], `e;f`;", " x")
        );
        assert_eq!(split_first("SELECT 'it''s;'; x"), ("SELECT 'it''s;';", " x"));
        assert_eq!(split_first("SELECT 1 -- c;\n; x"), ("SELECT 1 -- c;\n;", " x"));
        assert_eq!(split_first("SELECT /* ; */ 1; x"), ("SELECT /* ; */ 1;", " x"));
        let trig = "CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO u VALUES (1); UPDATE u SET a = 2; END;";
        assert_eq!(split_first(&format!("{trig} SELECT 1;")), (trig, " SELECT 1;"));
        let trig2 = "create trigger if not exists tr after delete on t begin delete from u; end ;";
        assert_eq!(split_first(&format!("{trig2}x")), (trig2, "x"));
        // `END` as a plain word outside triggers, and CASE … END inside one.
        assert_eq!(
            split_first("SELECT CASE WHEN 1 THEN 2 END; x"),
            ("SELECT CASE WHEN 1 THEN 2 END;", " x")
        );
        let trig3 = "CREATE TRIGGER t3 AFTER INSERT ON t BEGIN SELECT CASE WHEN 1 THEN 2 END; END;";
        assert_eq!(split_first(trig3), (trig3, ""));
        // Leading empty statements are skipped.
        assert_eq!(split_first(";; SELECT 1; x"), (" SELECT 1;", " x"));
        assert_eq!(
            statements("CREATE TABLE t(a); ; INSERT INTO t VALUES (';'); -- done\n"),
            ["CREATE TABLE t(a);", " INSERT INTO t VALUES (';');"]
        );
        assert!(statements("  -- nothing\n;").is_empty());
        assert_eq!(statements("SELECT 'unterminated"), ["SELECT 'unterminated"]);
        assert_eq!(statements("SELECT 1; SELECT 'é';"), ["SELECT 1;", " SELECT 'é';"]);
    }

    #[test]
    fn parameter_layouts() {
        let l = param_layout("SELECT ?, ?, ?");
        assert_eq!(l.count(), 3);
        let l = param_layout("SELECT ?3, ?");
        assert_eq!(l.count(), 4);
        let l = param_layout("SELECT :a, @b, $c, :a, ?");
        assert_eq!(l.names, [Some(":a".into()), Some("@b".into()), Some("$c".into()), None]);
        assert_eq!(l.index(":a"), Some(0));
        assert_eq!(l.index("b"), Some(1));
        assert_eq!(l.index(":b"), None);
        assert_eq!(l.index("nope"), None);
        let l = param_layout("SELECT ':x', \"?\", [?], `$y` -- ?\n, /* :z */ :w");
        assert_eq!(l.names, [Some(":w".into())]);
        let l = param_layout("SELECT $a::b(c d), $e");
        assert_eq!(l.names, [Some("$a::b(c d)".into()), Some("$e".into())]);
        let l = param_layout("SELECT ?2, :n");
        assert_eq!(l.names, [None, None, Some(":n".into())]);
        assert_eq!(param_layout("SELECT 1").count(), 0);
        // `::` is not a parameter, `:1` is one.
        assert_eq!(param_layout("SELECT :1").names, [Some(":1".into())]);
    }

    #[test]
    fn transaction_effects() {
        use TxEffect::*;
        for (s, e) in [
            ("BEGIN", Some(Begin)),
            ("begin immediate transaction", Some(Begin)),
            ("  /* c */ BEGIN EXCLUSIVE;", Some(Begin)),
            ("COMMIT", Some(Commit)),
            ("END TRANSACTION", Some(Commit)),
            ("ROLLBACK", Some(Rollback)),
            ("ROLLBACK TRANSACTION", Some(Rollback)),
            ("ROLLBACK TO sp", Some(RollbackTo("sp".into()))),
            (
                "rollback transaction to savepoint \"Sp\"",
                Some(RollbackTo("sp".into())),
            ),
            ("ROLLBACK TO savepoint", Some(RollbackTo("savepoint".into()))),
            ("SAVEPOINT a1", Some(Savepoint("a1".into()))),
            ("RELEASE a1", Some(Release("a1".into()))),
            ("RELEASE SAVEPOINT [A1]", Some(Release("a1".into()))),
            ("SELECT 1", None),
            ("INSERT INTO t VALUES ('BEGIN')", None),
            ("", None),
        ] {
            assert_eq!(tx_effect(s), e, "{s}");
        }
    }

    #[test]
    fn row_returning_guesses() {
        assert!(likely_returns_rows("SELECT 1"));
        assert!(likely_returns_rows("values (1)"));
        assert!(likely_returns_rows("WITH x AS (SELECT 1) SELECT * FROM x"));
        assert!(likely_returns_rows("PRAGMA user_version"));
        assert!(likely_returns_rows("EXPLAIN QUERY PLAN SELECT 1"));
        assert!(likely_returns_rows("INSERT INTO t VALUES (1) RETURNING id"));
        assert!(!likely_returns_rows("INSERT INTO t VALUES ('RETURNING')"));
        assert!(!likely_returns_rows("UPDATE t SET a = 1"));
        assert!(!likely_returns_rows("CREATE TABLE t(a)"));
        assert!(!likely_returns_rows("BEGIN"));
        assert!(is_read("SELECT 1"));
        assert!(!is_read("DELETE FROM t"));
    }
}
