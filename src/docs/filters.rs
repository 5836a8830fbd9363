//! Template filters: `redact`, `shell_quote`, `env_var_ref`, `md_table`.

use std::collections::HashMap;
use tera::{Result, Value};

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `{{ url | redact }}`: masks passwords and known secrets.
pub fn redact(value: &Value, _: &HashMap<String, Value>) -> Result<Value> {
    Ok(Value::String(crate::redact::redact(&text(value))))
}

/// `{{ path | shell_quote }}`: quotes a word for POSIX shells.
pub fn shell_quote(value: &Value, _: &HashMap<String, Value>) -> Result<Value> {
    Ok(Value::String(shell_words::quote(&text(value)).into_owned()))
}

/// `{{ "DATABASE_URL" | env_var_ref }}` → `${DATABASE_URL}` (with `default="x"`:
/// `${DATABASE_URL:-x}`): for compose files and scripts that must reference a secret,
/// never inline it.
pub fn env_var_ref(value: &Value, args: &HashMap<String, Value>) -> Result<Value> {
    let name = text(value);
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(tera::Error::msg(format!(
            "env_var_ref: `{name}` is not a variable name"
        )));
    }
    Ok(Value::String(match args.get("default") {
        Some(default) => format!("${{{name}:-{}}}", text(default)),
        None => format!("${{{name}}}"),
    }))
}

/// `{{ rows | md_table(columns=["name", "protection"], headers=["Environment", "Protection"]) }}`:
/// an array of objects as a Markdown table (pipes escaped, newlines flattened).
pub fn md_table(value: &Value, args: &HashMap<String, Value>) -> Result<Value> {
    let rows = value
        .as_array()
        .ok_or_else(|| tera::Error::msg("md_table expects an array of objects"))?;
    let columns: Vec<String> = match args.get("columns") {
        Some(Value::Array(cols)) => cols.iter().map(text).collect(),
        Some(_) => {
            return Err(tera::Error::msg(
                "md_table: `columns` must be an array of keys",
            ))
        }
        None => rows
            .first()
            .and_then(Value::as_object)
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default(),
    };
    let headers: Vec<String> = match args.get("headers") {
        Some(Value::Array(h)) if h.len() == columns.len() => h.iter().map(text).collect(),
        Some(_) => {
            return Err(tera::Error::msg(
                "md_table: `headers` must be an array as long as `columns`",
            ))
        }
        None => columns.clone(),
    };
    let cell = |v: Option<&Value>| -> String {
        let raw = match v {
            Some(Value::Array(items)) => items.iter().map(text).collect::<Vec<_>>().join(", "),
            Some(v) => text(v),
            None => String::new(),
        };
        crate::redact::redact(&raw.replace('|', "\\|").replace('\n', " "))
    };
    let mut out = format!(
        "| {} |\n|{}|\n",
        headers.join(" | "),
        vec!["---"; headers.len()].join("|")
    );
    for row in rows {
        let cells: Vec<String> = columns.iter().map(|c| cell(row.get(c))).collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    Ok(Value::String(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_behave() {
        let none = HashMap::new();
        assert_eq!(
            env_var_ref(&json!("DATABASE_URL"), &none).unwrap(),
            json!("${DATABASE_URL}")
        );
        let mut args = HashMap::new();
        args.insert("default".to_string(), json!("x"));
        assert_eq!(env_var_ref(&json!("A"), &args).unwrap(), json!("${A:-x}"));
        assert!(env_var_ref(&json!("not a var"), &none).is_err());
        assert_eq!(
            shell_quote(&json!("it's"), &none).unwrap(),
            json!("'it'\\''s'")
        );
        assert_eq!(
            redact(&json!("postgres://u:pw12@h/d"), &none).unwrap(),
            json!("postgres://u:****@h/d")
        );
        let table = md_table(&json!([{"a": "x|y", "b": ["1", "2"]}]), &none).unwrap();
        assert_eq!(table, json!("| a | b |\n|---|---|\n| x\\|y | 1, 2 |\n"));
    }
}
