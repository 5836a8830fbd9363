//! The single redaction layer: every line dbflow prints, journals, plans or renders
//! passes through [`redact`], so a password can only leak if it bypasses this module.

use regex::Regex;
use std::sync::{OnceLock, RwLock};

/// What a secret is replaced with.
pub const MASK: &str = "****";

/// Secrets learned during this process (passwords from URLs, values of variables
/// named like `*PASSWORD*`), kept process-wide because output comes from everywhere.
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

fn url_password() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    // scheme://user:password@host — the password may itself contain ':' but not '@' or
    // whitespace; percent-encoded '@' (%40) stays inside the match. ASCII classes: the
    // Unicode ones took half a millisecond to compile, on every command that prints.
    RE.get_or_init(|| {
        Regex::new(r"(?i)(?-u:\b)([a-z][a-z0-9+.\-]*://[^:/@\t\n\x0B\x0C\r ]*:)([^@\t\n\x0B\x0C\r /]+|[^@\t\n\x0B\x0C\r ]+?)(@)").unwrap()
    })
}

fn secret_query_param() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(?i)([?&](?:password|passwd|pwd|sslpassword)=)([^&\s]+)").unwrap()
    })
}

/// True when a variable's name says its value is a secret.
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    [
        "PASSWORD",
        "PASSWD",
        "SECRET",
        "TOKEN",
        "API_KEY",
        "PRIVATE_KEY",
    ]
    .iter()
    .any(|needle| upper.contains(needle))
}

/// Remembers a secret value so that it is masked wherever it appears later.
/// Very short values are ignored: masking every "a" would make output unreadable and
/// such values are not secrets worth the name.
pub fn register_secret(value: &str) {
    let value = value.trim();
    if value.len() < 4 {
        return;
    }
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if !secrets.iter().any(|s| s == value) {
        secrets.push(value.to_string());
        // Longest first, so a secret that contains another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// Registers the password of a connection URL (raw and percent-decoded forms).
pub fn register_url(url: &str) {
    if let Ok(parsed) = url::Url::parse(url) {
        if let Some(password) = parsed.password() {
            register_secret(password);
            if let Ok(decoded) = percent_encoding::percent_decode_str(password).decode_utf8() {
                register_secret(&decoded);
            }
        }
        for (key, value) in parsed.query_pairs() {
            if is_secret_name(&key) || key.eq_ignore_ascii_case("pwd") {
                register_secret(&value);
            }
        }
    }
}

/// Registers every variable of an environment whose name marks it as secret, and the
/// passwords of every URL-looking value.
pub fn register_env<'a>(vars: impl IntoIterator<Item = (&'a str, &'a str)>) {
    for (name, value) in vars {
        if is_secret_name(name) {
            register_secret(value);
        }
        if value.contains("://") {
            register_url(value);
        }
    }
}

/// Whether some `://` in `text` is followed by `user:` and an `@` before whitespace: the
/// only shape the URL pattern can match. Most output has URLs without a password (or
/// none), and skipping the regex there spares compiling it at all.
fn may_hold_url_password(text: &str) -> bool {
    text.match_indices("://").any(|(i, _)| {
        let rest = &text[i + 3..];
        let end = rest
            .find(|c: char| c == ':' || c == '/' || c == '@' || is_space(c))
            .unwrap_or(rest.len());
        rest[end..].starts_with(':')
            && rest[end..]
                .split(is_space)
                .next()
                .is_some_and(|word| word.contains('@'))
    })
}

/// The whitespace of the URL pattern's classes.
fn is_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\x0B' | '\x0C' | '\r' | ' ')
}

/// Masks every known secret and every password embedded in a URL.
pub fn redact(text: &str) -> String {
    // Both patterns need `://` or `=`: skipping the regexes when neither occurs keeps
    // large outputs (a lint report of thousands of findings) cheap to redact.
    let mut out = if may_hold_url_password(text) {
        url_password()
            .replace_all(text, format!("${{1}}{MASK}${{3}}"))
            .into_owned()
    } else {
        text.to_string()
    };
    if out.contains('=') {
        out = secret_query_param()
            .replace_all(&out, format!("${{1}}{MASK}"))
            .into_owned();
    }
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    for secret in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), MASK);
        }
    }
    out
}

/// Redacts every string inside a JSON value (keys included), for journals and `--json`.
pub fn redact_json(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => Value::String(redact(s)),
        Value::Array(items) => Value::Array(items.iter().map(redact_json).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if is_secret_name(k) && v.is_string() {
                        Value::String(MASK.into())
                    } else {
                        redact_json(v)
                    };
                    (redact(k), v)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_url_passwords() {
        assert_eq!(
            redact("postgres://app:s3cr3t@db.internal:5432/shop"),
            "postgres://app:****@db.internal:5432/shop"
        );
        assert_eq!(
            redact("url=postgresql://u:p%40ss:word@h/db?sslmode=require done"),
            "url=postgresql://u:****@h/db?sslmode=require done"
        );
        assert_eq!(redact("postgres://app@db/shop"), "postgres://app@db/shop");
        assert_eq!(
            redact("(postgres://app@127.0.0.1:5432/shop)"),
            "(postgres://app@127.0.0.1:5432/shop)"
        );
        assert_eq!(
            redact("x://y and mysql://root:pa\u{a0}ss@h/db"),
            "x://y and mysql://root:****@h/db"
        );
        assert_eq!(redact("a://b://c:pw@x"), "a://b:****@x");
        assert_eq!(
            redact("see https://example.com/a:b then x@y"),
            "see https://example.com/a:b then x@y"
        );
        assert_eq!(redact("sqlite:./dev.db"), "sqlite:./dev.db");
        assert_eq!(redact("host=h password=x"), "host=h password=x");
        assert_eq!(
            redact("postgres://h/db?password=hunter22&x=1"),
            "postgres://h/db?password=****&x=1"
        );
    }

    #[test]
    fn masks_registered_secrets_anywhere() {
        register_url("postgres://app:Zebra-Horse-42@db/shop");
        assert_eq!(
            redact("PGPASSWORD=Zebra-Horse-42 psql"),
            "PGPASSWORD=**** psql"
        );
        register_env([("STRIPE_SECRET_KEY", "sk_live_abcdef")]);
        assert_eq!(redact("key sk_live_abcdef."), "key ****.");
        assert!(is_secret_name("db_password"));
        assert!(!is_secret_name("DATABASE_URL"));
    }

    #[test]
    fn redacts_json_values_and_secret_keys() {
        let v = serde_json::json!({"url": "postgres://a:bcdefg@h/d", "API_TOKEN": "xyz", "n": 1});
        let r = redact_json(&v);
        assert_eq!(r["url"], "postgres://a:****@h/d");
        assert_eq!(r["API_TOKEN"], "****");
        assert_eq!(r["n"], 1);
    }
}
