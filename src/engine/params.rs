//! Step parameters: deserializing a step's JSON parameters into its typed struct, with
//! a structured error. An unknown key comes back as data (the key and the keys the step
//! accepts, from serde's own `unknown_field` call, at any depth), so the diagnostic can
//! point at it and suggest the nearest name without reading serde's message.

use serde::de::value::{MapAccessDeserializer, MapDeserializer, SeqDeserializer};
use serde::de::{self, IntoDeserializer, Visitor};
use serde_json::Value;
use std::fmt;
use std::marker::PhantomData;

/// What is wrong with a step's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    /// For people (serde's wording for type errors; the step's own otherwise).
    pub message: String,
    /// When a key is not a parameter of the step: the key and the keys it accepts.
    pub unknown: Option<UnknownField>,
    /// When a value is not one of the names a parameter accepts (`fail_on: [pendng]`):
    /// the value and the names it accepts.
    pub unknown_value: Option<UnknownValue>,
}

/// A key the step (or a nested part of its parameters) does not accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownField {
    /// The key as written.
    pub field: String,
    /// The keys accepted where it was written.
    pub expected: Vec<String>,
}

/// A name (an enum's value) the parameter does not accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownValue {
    /// The value as written.
    pub value: String,
    /// The values accepted there.
    pub expected: Vec<String>,
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParamError {}

impl From<String> for ParamError {
    fn from(message: String) -> Self {
        ParamError {
            message,
            unknown: None,
            unknown_value: None,
        }
    }
}

impl From<&str> for ParamError {
    fn from(message: &str) -> Self {
        message.to_string().into()
    }
}

impl de::Error for ParamError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        msg.to_string().into()
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        // serde's own wording, so messages read as they always did.
        let message = match expected {
            [] => format!("unknown field `{field}`, there are no fields"),
            [one] => format!("unknown field `{field}`, expected `{one}`"),
            [a, b] => format!("unknown field `{field}`, expected `{a}` or `{b}`"),
            many => format!(
                "unknown field `{field}`, expected one of {}",
                many.iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        ParamError {
            message,
            unknown: Some(UnknownField {
                field: field.to_string(),
                expected: expected.iter().map(|s| s.to_string()).collect(),
            }),
            unknown_value: None,
        }
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        // serde's own wording (serde_json's, for the same value).
        let message = match expected {
            [] => format!("unknown variant `{variant}`, there are no variants"),
            [one] => format!("unknown variant `{variant}`, expected `{one}`"),
            [a, b] => format!("unknown variant `{variant}`, expected `{a}` or `{b}`"),
            many => format!(
                "unknown variant `{variant}`, expected one of {}",
                many.iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        ParamError {
            message,
            unknown: None,
            unknown_value: Some(UnknownValue {
                value: variant.to_string(),
                expected: expected.iter().map(|s| s.to_string()).collect(),
            }),
        }
    }
}

/// Deserializes `params` into `T`.
pub fn parse_params<T: de::DeserializeOwned>(params: &Value) -> Result<T, ParamError> {
    T::deserialize(ValueDeserializer::<ParamError>::new(params.clone()))
}

/// A `serde_json::Value` as a deserializer with any error type (serde_json's own is
/// fixed to `serde_json::Error`, whose unknown-field report is only text).
struct ValueDeserializer<E> {
    value: Value,
    error: PhantomData<E>,
}

impl<E> ValueDeserializer<E> {
    fn new(value: Value) -> Self {
        ValueDeserializer {
            value,
            error: PhantomData,
        }
    }
}

impl<'de, E: de::Error> IntoDeserializer<'de, E> for ValueDeserializer<E> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de, E: de::Error> de::Deserializer<'de> for ValueDeserializer<E> {
    type Error = E;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => visitor.visit_string(s),
            Value::Array(items) => {
                let mut seq = SeqDeserializer::new(items.into_iter().map(ValueDeserializer::new));
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            Value::Object(map) => {
                let mut access = MapDeserializer::new(
                    map.into_iter().map(|(k, v)| (k, ValueDeserializer::new(v))),
                );
                let value = visitor.visit_map(&mut access)?;
                access.end()?;
                Ok(value)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, E> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, E> {
        match self.value {
            Value::String(s) => visitor.visit_enum(s.into_deserializer()),
            Value::Object(map) if map.len() == 1 => {
                let access = MapDeserializer::new(
                    map.into_iter().map(|(k, v)| (k, ValueDeserializer::new(v))),
                );
                MapAccessDeserializer::new(access).deserialize_enum(name, variants, visitor)
            }
            other => Err(de::Error::invalid_type(
                unexpected(&other),
                &"a string or a map with one key",
            )),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

fn unexpected(value: &Value) -> de::Unexpected<'_> {
    match value {
        Value::Null => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Number(_) => de::Unexpected::Other("number"),
        Value::String(s) => de::Unexpected::Str(s),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Object(_) => de::Unexpected::Map,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Check {
        name: Option<String>,
        sql: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Params {
        checks: Vec<Check>,
        retries: Option<u32>,
        mode: Option<Mode>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Mode {
        Fast,
        Careful,
    }

    #[test]
    fn an_unknown_key_comes_back_as_data_at_any_depth() {
        let err = parse_params::<Params>(&serde_json::json!({ "checkz": [] })).unwrap_err();
        let unknown = err.unknown.expect("structured");
        assert_eq!(unknown.field, "checkz");
        assert_eq!(unknown.expected, ["checks", "retries", "mode"]);
        assert_eq!(
            err.message,
            "unknown field `checkz`, expected one of `checks`, `retries`, `mode`"
        );
        let err = parse_params::<Params>(&serde_json::json!({ "checks": [{ "nmae": "x" }] }))
            .unwrap_err();
        assert_eq!(err.unknown.unwrap().expected, ["name", "sql"]);
    }

    #[test]
    fn other_errors_read_as_serde_json_words_them() {
        let value = serde_json::json!({ "checks": [], "retries": "three" });
        let ours = parse_params::<Params>(&value).unwrap_err().message;
        let theirs = serde_json::from_value::<Params>(value)
            .unwrap_err()
            .to_string();
        assert_eq!(ours, theirs);
        assert!(
            parse_params::<Params>(&serde_json::json!({ "checks": [], "mode": "careful" }))
                .is_ok_and(|p| p.mode == Some(Mode::Careful))
        );
        let value = serde_json::json!({ "checks": [], "mode": "slow" });
        assert_eq!(
            parse_params::<Params>(&value).unwrap_err().message,
            serde_json::from_value::<Params>(value)
                .unwrap_err()
                .to_string()
        );
    }

    #[test]
    fn an_unknown_value_comes_back_as_data() {
        let err = parse_params::<Params>(&serde_json::json!({ "checks": [], "mode": "fats" }))
            .unwrap_err();
        let unknown = err.unknown_value.expect("structured");
        assert_eq!(unknown.value, "fats");
        assert_eq!(unknown.expected, ["fast", "careful"]);
        assert_eq!(err.unknown, None);
    }
}
