//! What the front end needs to know about SQL text before sending it to the worker.

/// Python 3.11 `sqlite3`'s `is_dml` test (`Modules/_sqlite/statement.c`): after leading
/// spaces, tabs and line breaks (not comments), the statement starts with `INSERT`, `UPDATE`,
/// `DELETE` or `REPLACE`. An implicit `BEGIN` is issued before such statements when an
/// `isolation_level` is set, and `rowcount` reports their changes.
pub(crate) fn is_dml(sql: &str) -> bool {
    let s = sql.trim_start_matches([' ', '\r', '\n', '\t']).as_bytes();
    let starts = |w: &[u8]| s.len() >= w.len() && s[..w.len()].eq_ignore_ascii_case(w);
    starts(b"insert") || starts(b"update") || starts(b"delete") || starts(b"replace")
}

/// The parameters of a statement, in SQLite's numbering order, as SQLite's tokenizer sees
/// them: `?`, `?NNN`, `:name`, `@name`, `$name` outside string literals, quoted identifiers
/// and comments. `None` stands for a nameless parameter (`?` / `?NNN`). Repeated names appear
/// once (SQLite gives them one index).
pub(crate) fn parameters(sql: &str) -> Vec<Option<String>> {
    let b = sql.as_bytes();
    let mut out: Vec<Option<String>> = Vec::new();
    let mut i = 0;
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80;
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' | b'`' => {
                let q = b[i];
                i += 1;
                while i < b.len() {
                    if b[i] == q {
                        if i + 1 < b.len() && b[i + 1] == q {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'[' => {
                while i < b.len() && b[i] != b']' {
                    i += 1;
                }
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 2;
            }
            b'?' => {
                i += 1;
                let start = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                if start == i {
                    out.push(None);
                } else {
                    // `?NNN` takes index NNN: pad with nameless slots up to it.
                    let n: usize = sql[start..i].parse().unwrap_or(0);
                    while out.len() < n {
                        out.push(None);
                    }
                }
            }
            b':' | b'@' | b'$' => {
                let start = i;
                i += 1;
                while i < b.len() && (ident(b[i]) || (b[start] == b'$' && b[i] == b':' && b.get(i + 1) == Some(&b':')))
                {
                    i += if b[i] == b':' { 2 } else { 1 };
                }
                if b[start] == b'$' && i > start + 1 && b.get(i) == Some(&b'(') {
                    // Tcl-style `$name(suffix)`: the suffix is part of the name.
                    while i < b.len() && b[i] != b')' {
                        i += 1;
                    }
                    i = (i + 1).min(b.len());
                }
                if i > start + 1 {
                    let name = &sql[start..i];
                    if !out.iter().any(|n| n.as_deref() == Some(name)) {
                        out.push(Some(name.to_owned()));
                    }
                }
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 => {
                // A word: skip it whole, so that `$` or digits inside it are not parameters.
                while i < b.len() && ident(b[i]) {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dml_detection_matches_python_3_11() {
        for sql in [
            "insert into t values (1)",
            " \n\tUPDATE t set x=1",
            "Delete from t",
            "replace into t values (1)",
        ] {
            assert!(is_dml(sql), "{sql}");
        }
        for sql in [
            "select 1",
            "-- c\ninsert into t values (1)",
            "with x as (select 1) insert into t select * from x",
            "create table t(x)",
            "",
        ] {
            assert!(!is_dml(sql), "{sql}");
        }
    }

    #[test]
    fn parameters_in_sqlite_order() {
        let p = parameters("select :a, @b, $c, :a, '?:x', \"?y\", [?z], `:w` -- :c2\n /* ?3 */ from t");
        assert_eq!(p, vec![Some(":a".into()), Some("@b".into()), Some("$c".into())]);
        assert_eq!(parameters("select ?, ?3, ?"), vec![None, None, None, None]);
        assert_eq!(parameters("select x$1, 1e5, :n_1"), vec![Some(":n_1".into())]);
        assert_eq!(parameters("select $a::b(c), 5"), vec![Some("$a::b(c)".into())]);
    }
}
