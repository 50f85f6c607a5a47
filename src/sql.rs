//! Small lexical helpers over SQL text: no parser, only what the worker needs to know
//! before or without preparing a statement.

/// What a statement does, judged by its first keyword (for `WITH`, by the first keyword after
/// the common table expressions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verb {
    Select,
    Insert,
    Update,
    Delete,
    Other,
}

impl Verb {
    /// INSERT, UPDATE, DELETE or REPLACE: the statements before which Python's sqlite3
    /// (legacy transaction control) opens an implicit transaction.
    pub(crate) fn is_dml(self) -> bool {
        matches!(self, Verb::Insert | Verb::Update | Verb::Delete)
    }
}

/// Skip whitespace and comments; return the rest.
pub(crate) fn skip_trivia(mut s: &str) -> &str {
    loop {
        let trimmed = s.trim_start();
        if let Some(rest) = trimmed.strip_prefix("--") {
            s = rest.find('\n').map_or("", |i| &rest[i + 1..]);
        } else if let Some(rest) = trimmed.strip_prefix("/*") {
            s = rest.find("*/").map_or("", |i| &rest[i + 2..]);
        } else {
            return trimmed;
        }
    }
}

/// `true` if the text holds no statement: only whitespace, comments and semicolons.
pub(crate) fn is_blank(mut s: &str) -> bool {
    loop {
        s = skip_trivia(s);
        match s.strip_prefix(';') {
            Some(rest) => s = rest,
            None => return s.is_empty(),
        }
    }
}

fn keyword(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

fn verb_of(word: &str) -> Option<Verb> {
    const TABLE: [(&str, Verb); 6] = [
        ("SELECT", Verb::Select),
        ("VALUES", Verb::Select),
        ("INSERT", Verb::Insert),
        ("REPLACE", Verb::Insert),
        ("UPDATE", Verb::Update),
        ("DELETE", Verb::Delete),
    ];
    TABLE
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(word))
        .map(|(_, v)| *v)
}

/// Classify a statement by its leading keyword.
///
/// Called on every `fetch_*` (inline reads, pool routing): the common case — optional ASCII
/// whitespace, then an ASCII word — is read from the bytes without the general scan.
#[inline]
pub(crate) fn verb(sql: &str) -> Verb {
    let b = sql.as_bytes();
    let mut i = 0;
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    if i < b.len() && b[i].is_ascii_alphabetic() {
        // The word, upper-cased, packed into a u64 (only its first 8 bytes count: no keyword
        // here is longer than 7).
        let mut word = 0_u64;
        let mut n = 0;
        while let Some(&c) = b.get(i + n) {
            if !(c.is_ascii_alphanumeric() || c == b'_') {
                break;
            }
            if n < 8 {
                word = word << 8 | u64::from(c.to_ascii_uppercase());
            }
            n += 1;
        }
        const fn packed(k: &[u8]) -> u64 {
            let mut w = 0_u64;
            let mut j = 0;
            while j < k.len() {
                w = w << 8 | k[j] as u64;
                j += 1;
            }
            w
        }
        return match (n, word) {
            (6, w) if w == packed(b"SELECT") || w == packed(b"VALUES") => Verb::Select,
            (6, w) if w == packed(b"INSERT") => Verb::Insert,
            (7, w) if w == packed(b"REPLACE") => Verb::Insert,
            (6, w) if w == packed(b"UPDATE") => Verb::Update,
            (6, w) if w == packed(b"DELETE") => Verb::Delete,
            (4, w) if w == packed(b"WITH") => verb_after_ctes(&sql[i + n..]),
            _ => Verb::Other,
        };
    }
    verb_general(sql)
}

/// [`verb`] for any text (comments, other whitespace before the first keyword).
fn verb_general(sql: &str) -> Verb {
    let s = skip_trivia(sql);
    let word = keyword(s);
    if let Some(v) = verb_of(word) {
        return v;
    }
    if word.eq_ignore_ascii_case("WITH") {
        return verb_after_ctes(&s[word.len()..]);
    }
    Verb::Other
}

/// After `WITH`: the first of SELECT/INSERT/… at parenthesis depth 0, skipping strings,
/// quoted identifiers and comments (a CTE name cannot be an unquoted keyword).
fn verb_after_ctes(mut s: &str) -> Verb {
    let mut depth = 0_usize;
    loop {
        s = skip_trivia(s);
        let Some(c) = s.chars().next() else {
            return Verb::Other;
        };
        match c {
            '(' => {
                depth += 1;
                s = &s[1..];
            }
            ')' => {
                depth = depth.saturating_sub(1);
                s = &s[1..];
            }
            '\'' | '"' | '`' => s = skip_quoted(s, c),
            '[' => s = s.find(']').map_or("", |i| &s[i + 1..]),
            c if c.is_ascii_alphabetic() || c == '_' => {
                let word = keyword(s);
                if depth == 0
                    && let Some(v) = verb_of(word)
                {
                    return v;
                }
                s = &s[word.len()..];
            }
            c => s = &s[c.len_utf8()..],
        }
    }
}

fn skip_quoted(s: &str, quote: char) -> &str {
    let mut chars = s.char_indices().skip(1).peekable();
    while let Some((i, c)) = chars.next() {
        if c == quote {
            if chars.peek().map(|&(_, c2)| c2) == Some(quote) {
                chars.next();
                continue;
            }
            return &s[i + 1..];
        }
    }
    ""
}

/// Quote an identifier for SQL: `"name"` with embedded quotes doubled.
pub(crate) fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Quote a string literal for SQL: `'text'` with embedded quotes doubled.
pub(crate) fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs() {
        assert_eq!(verb("  select 1"), Verb::Select);
        assert_eq!(verb("-- c\n/* x */ INSERT INTO t VALUES (1)"), Verb::Insert);
        assert_eq!(verb("replace into t values (1)"), Verb::Insert);
        assert_eq!(verb("UPDATE t SET a = 1"), Verb::Update);
        assert_eq!(verb("delete from t"), Verb::Delete);
        assert_eq!(verb("CREATE TABLE t(a)"), Verb::Other);
        assert_eq!(verb("PRAGMA user_version"), Verb::Other);
        assert_eq!(verb("VALUES (1)"), Verb::Select);
        assert_eq!(
            verb("WITH x(a) AS (SELECT 1), \"insert\" AS (SELECT ')delete(') INSERT INTO t SELECT a FROM x"),
            Verb::Insert
        );
        assert_eq!(
            verb("WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM c) SELECT n FROM c"),
            Verb::Select
        );
        assert_eq!(verb("WITH x AS (SELECT 1) DELETE FROM t"), Verb::Delete);
        assert!(Verb::Update.is_dml());
        assert!(!Verb::Select.is_dml());
    }

    proptest::proptest! {
        /// The byte fast path of `verb` agrees with the general scan on any text, including
        /// the inputs built to sit at its edges.
        #[test]
        fn verb_fast_path_agrees_with_the_general_scan(
            lead in "[ \t\r\n\x0b\x0c]{0,3}",
            word in "(?i)(select|values|insert|replace|update|delete|with|create|pragma|selectx|_x|é)",
            rest in "[ a-zA-Z_(),'\"-/*\n;é]{0,20}",
        ) {
            let text = format!("{lead}{word}{rest}");
            proptest::prop_assert_eq!(verb(&text), verb_general(&text), "{:?}", text);
        }

        #[test]
        fn verb_agrees_on_any_text(text in "\\PC{0,24}") {
            proptest::prop_assert_eq!(verb(&text), verb_general(&text), "{:?}", text);
        }
    }

    #[test]
    fn blanks() {
        assert!(is_blank(""));
        assert!(is_blank("  ; -- hi\n ; /* x */ "));
        assert!(!is_blank("; SELECT 1"));
        assert!(is_blank("-- unterminated"));
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
