//! The single redaction layer: every line dbflow prints, journals, plans or renders
//! passes through [`redact`], so a password can only leak if it bypasses this module.

use regex::Regex;
use std::sync::{OnceLock, RwLock};

/// What a secret is replaced with.
pub const MASK: &str = "****";

/// Secrets learned during this process (passwords from URLs, values of variables
/// named like `*PASSWORD*`), kept process-wide because output comes from everywhere.
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// `key=value` connection strings (libpq's `password=secret`, `password='a b\'c'`) and
/// shell-style assignments (`PGPASSWORD=secret`): the value runs to the closing quote or
/// to whitespace.
fn conninfo_password() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r#"(?i)(?-u:\b)([a-z_]*password|passwd|pwd)([\t ]*=[\t ]*)('(?:[^'\\]|\\.)*'?|[^\s]+)"#,
        )
        .unwrap()
    })
}

/// Whether `text` may hold a match of [`conninfo_password`] or [`secret_query_param`]:
/// each needs `=` and a key ending in `pwd`, `passwd` or `password`, so `wd` or `word`
/// (ASCII letters with no other Unicode case variant, unlike the `s` of `(?i)pass`).
/// Without one, neither regex is built: compiling them costs about a millisecond, paid
/// by every command whose `DATABASE_URL` carries a query (`?schema=public`).
fn may_hold_password_key(text: &str) -> bool {
    let bytes = text.as_bytes();
    text.contains('=')
        && (0..bytes.len().saturating_sub(1)).any(|i| {
            let rest = &bytes[i..];
            rest[..2].eq_ignore_ascii_case(b"wd")
                || rest
                    .get(..4)
                    .is_some_and(|w| w.eq_ignore_ascii_case(b"word"))
        })
}

fn secret_query_param() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(?i)([?&](?:password|passwd|pwd|sslpassword)=)([^&\s]+)").unwrap()
    })
}

/// Byte ranges of the passwords of every `scheme://user:password@host` in `text`, the way
/// libpq reads a URL: the userinfo ends at the LAST `@` before the host, so
/// `postgres://app:p@ss@host/db` has the password `p@ss`. Any character but ASCII
/// whitespace may be written raw in a password (`/`, `?`, `#` too), so the masked range
/// runs to the last `@` of the URL: an `@` in the query (`?email=a@b`) masks more than
/// the password, never less.
fn url_password_ranges(text: &str) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    let bytes = text.as_bytes();
    for (at, _) in text.match_indices("://") {
        // A scheme: a letter, then letters, digits, `+`, `-`, `.`.
        let scheme_start = bytes[..at]
            .iter()
            .rposition(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
            .map_or(0, |i| i + 1);
        if scheme_start == at || !bytes[scheme_start].is_ascii_alphabetic() {
            continue;
        }
        let start = at + 3;
        let end = text[start..]
            .find(['\t', '\n', '\x0B', '\x0C', '\r', ' '])
            .map_or(text.len(), |i| start + i);
        let token = &text[start..end];
        let Some(last_at) = token.rfind('@') else {
            continue;
        };
        let userinfo = &token[..last_at];
        if let Some(colon) = userinfo.find(':') {
            let from = start + colon + 1;
            let to = start + last_at;
            if from < to {
                ranges.push((from, to));
            }
        }
    }
    ranges.sort();
    ranges.dedup();
    ranges
}

/// Replaces the byte ranges (sorted, possibly overlapping) with [`MASK`].
fn mask_ranges(text: &str, ranges: &[(usize, usize)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for &(from, to) in ranges {
        if to <= pos {
            continue;
        }
        let from = from.max(pos);
        out.push_str(&text[pos..from]);
        out.push_str(MASK);
        pos = to;
    }
    out.push_str(&text[pos..]);
    out
}

/// True when a variable's name says its value is a secret.
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["PASSWORD", "PASSWD", "SECRET", "TOKEN", "KEY", "CREDENTIAL"]
        .iter()
        .any(|needle| upper.contains(needle))
}

/// Remembers a secret value so that it is masked wherever it appears later.
/// Very short values are ignored: masking every "a" would make output unreadable and
/// such values are not secrets worth the name.
pub fn register_secret(value: &str) {
    let value = value.trim();
    // Words that are settings, not secrets: masking every "true" would garble output.
    const NOT_SECRETS: &[&str] = &["true", "false", "none", "null", "unset"];
    if value.len() < 4 || NOT_SECRETS.iter().any(|w| value.eq_ignore_ascii_case(w)) {
        return;
    }
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if !secrets.iter().any(|s| s == value) {
        secrets.push(value.to_string());
        // Longest first, so a secret that contains another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// Registers a secret in every form it may be printed in: as is, percent-decoded and
/// percent-encoded (a URL built from it, a URL it was taken from).
fn register_forms(value: &str) {
    register_secret(value);
    if let Ok(decoded) = percent_encoding::percent_decode_str(value).decode_utf8() {
        register_secret(&decoded);
        register_secret(
            &percent_encoding::utf8_percent_encode(&decoded, percent_encoding::NON_ALPHANUMERIC)
                .to_string(),
        );
    }
    register_secret(
        &percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC)
            .to_string(),
    );
}

/// Registers the password of a connection URL (raw, percent-decoded and -encoded forms),
/// taking the userinfo the way libpq does (up to the last `@` before the host), and the
/// `password=` of a `key=value` connection string.
pub fn register_url(url: &str) {
    for (from, to) in url_password_ranges(url) {
        register_forms(&url[from..to]);
    }
    // The pattern needs a `=`: without one (a plain URL) its regex is not even built,
    // which costs every command that registers `DATABASE_URL` about a millisecond.
    let conninfo = may_hold_password_key(url).then(|| conninfo_password().captures_iter(url));
    for c in conninfo.into_iter().flatten() {
        let value = &c[3];
        let value = value
            .strip_prefix('\'')
            .map(|v| {
                v.strip_suffix('\'')
                    .unwrap_or(v)
                    .replace("\\'", "'")
                    .replace("\\\\", "\\")
            })
            .unwrap_or_else(|| value.to_string());
        register_forms(&value);
    }
    if let Ok(parsed) = url::Url::parse(url) {
        if let Some(password) = parsed.password() {
            register_forms(password);
        }
        for (key, value) in parsed.query_pairs() {
            if is_secret_name(&key) || key.eq_ignore_ascii_case("pwd") {
                register_forms(&value);
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

/// Masks every known secret and every password embedded in a URL or a `key=value`
/// connection string.
pub fn redact(text: &str) -> String {
    // The patterns need `@` or `=`: skipping them when neither occurs keeps large
    // outputs (a lint report of thousands of findings) cheap to redact.
    let mut out = if text.contains("://") && text.contains('@') {
        let ranges = url_password_ranges(text);
        if ranges.is_empty() {
            text.to_string()
        } else {
            mask_ranges(text, &ranges)
        }
    } else {
        text.to_string()
    };
    if may_hold_password_key(&out) {
        out = secret_query_param()
            .replace_all(&out, format!("${{1}}{MASK}"))
            .into_owned();
        let masked = conninfo_password().replace_all(&out, |c: &regex::Captures<'_>| {
            let whole = c.get(0).expect("group 0");
            // In a URL's query the value ends at `&`: done by `secret_query_param`.
            if matches!(out[..whole.start()].chars().last(), Some('?' | '&')) {
                return whole.as_str().to_string();
            }
            format!("{}{}{MASK}", &c[1], &c[2])
        });
        out = masked.into_owned();
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
    use proptest::prelude::*;

    /// The pre-check that spares building the regexes never skips a text they match.
    #[test]
    fn the_password_key_precheck_never_skips_a_match() {
        for text in [
            "host=h password=x",
            "PGPASSWORD=secret",
            "x?sslpassword=a&b=c",
            "pwd = 'a b'",
            "PASSWD=x",
            "pa\u{17f}sword=x",
            "Pa\u{17f}\u{17f}wd=x",
            "?PWD=x",
        ] {
            assert!(
                conninfo_password().is_match(text) || secret_query_param().is_match(text),
                "{text}"
            );
            assert!(may_hold_password_key(text), "{text}");
        }
        for text in [
            "postgres://u@h/db?schema=public",
            "postgres://u:p@h/db?sslmode=require&connect_timeout=5",
            "a=b",
            "no equals password",
        ] {
            assert!(!may_hold_password_key(text), "{text}");
        }
    }

    proptest! {
        #[test]
        fn the_password_key_precheck_is_a_necessary_condition(
            text in "[a-zA-Z_=?&' \u{17f}\u{212a}]{0,24}(pwd|PASSWD|pa\u{17f}sword|Password|word|wd)?[a-zA-Z_=?&' ]{0,12}"
        ) {
            if !may_hold_password_key(&text) {
                prop_assert!(!conninfo_password().is_match(&text), "{}", text);
                prop_assert!(!secret_query_param().is_match(&text), "{}", text);
            }
        }
    }

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
        assert_eq!(redact("host=h password=x"), "host=h password=****");
        // libpq: the userinfo ends at the last `@` before the host.
        assert_eq!(
            redact("postgres://app:p@ss@host/db"),
            "postgres://app:****@host/db"
        );
        assert_eq!(
            redact("postgres://app:p@ss/w?rd#x@host:5432/db?sslmode=require"),
            "postgres://app:****@host:5432/db?sslmode=require"
        );
        assert_eq!(
            redact("postgres://app:pw@host/db?x=a@b"),
            "postgres://app:****@b"
        );
        assert_eq!(
            redact("host=db user=app password='it\\'s a secret' dbname=shop"),
            "host=db user=app password=**** dbname=shop"
        );
        assert_eq!(
            redact("PGPASSWORD=hunter22 pg_dump"),
            "PGPASSWORD=**** pg_dump"
        );
        assert_eq!(
            redact("postgres://h/db?sslmode=require&password=pw1234&x=1"),
            "postgres://h/db?sslmode=require&password=****&x=1"
        );
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
        assert!(is_secret_name("STRIPE_KEY"));
        register_env([("FEATURE_KEY_ENABLED", "true")]);
        assert_eq!(redact("enabled: true"), "enabled: true");
        register_url("postgresql://u:p%40ss%2Fw0rd@h/db");
        assert_eq!(redact("p@ss/w0rd p%40ss%2Fw0rd"), "**** ****");
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
