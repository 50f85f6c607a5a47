//! Compile-time helpers for aiolite. Use them through `aiolite` (`aiolite::embed_migrations!`).

use proc_macro::TokenStream;
use std::path::PathBuf;

/// Embed a folder of `<version>_<name>.sql` migration files into the binary: expands to an
/// `aiolite::migrate::Migrator` whose steps hold the files' text (via `include_str!`, so an
/// edited file triggers a rebuild; a new file needs a rebuild of the crate, e.g. `touch` a
/// source file). The path is relative to the crate's `Cargo.toml`; default `"migrations"`.
///
/// ```text
/// let migrator = aiolite::embed_migrations!("migrations");
/// migrator.run(&db).await?;
/// ```
///
/// (A running example is on `aiolite::embed_migrations`, whose crate this macro is made for.)
#[proc_macro]
pub fn embed_migrations(input: TokenStream) -> TokenStream {
    match expand(&input.to_string()) {
        Ok(code) => code.parse().expect("generated code parses"),
        Err(msg) => format!("::core::compile_error!({msg:?})")
            .parse()
            .expect("compile_error parses"),
    }
}

fn expand(input: &str) -> Result<String, String> {
    let arg = input.trim();
    let rel = if arg.is_empty() {
        "migrations".to_owned()
    } else {
        let inner = arg
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .ok_or_else(|| format!("embed_migrations! takes a string literal path, got `{arg}`"))?;
        if inner.contains('\\') {
            return Err("embed_migrations!: escapes in the path are not supported".into());
        }
        inner.to_owned()
    };
    let base = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_default();
    let dir = base.join(&rel);
    let entries =
        std::fs::read_dir(&dir).map_err(|e| format!("embed_migrations!: cannot read {}: {e}", dir.display()))?;
    let mut steps: Vec<(i64, String, PathBuf)> = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| format!("embed_migrations!: {e}"))?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("sql") {
            continue;
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
        let digits = stem.find(|c: char| !c.is_ascii_digit()).unwrap_or(stem.len());
        let version: i64 = stem[..digits].parse().map_err(|_| {
            format!(
                "embed_migrations!: {} must be named <version>_<name>.sql",
                path.display()
            )
        })?;
        let name = stem[digits..].trim_start_matches(['_', '-']);
        let name = if name.is_empty() { stem.clone() } else { name.to_owned() };
        steps.push((version, name, path));
    }
    steps.sort_by_key(|s| s.0);
    if let Some(w) = steps.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!("embed_migrations!: two files have version {}", w[0].0));
    }
    let mut out = String::from("::aiolite::migrate::Migrator::new([");
    for (version, name, path) in steps {
        let abs = path
            .canonicalize()
            .map_err(|e| format!("embed_migrations!: {}: {e}", path.display()))?;
        out.push_str(&format!(
            "::aiolite::migrate::Migration::from_static({version}_i64, {name:?}, ::core::include_str!({:?})),",
            abs.to_string_lossy()
        ));
    }
    out.push_str("])");
    Ok(out)
}
