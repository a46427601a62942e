//! The `--config` file: a YAML mapping whose keys are the flag names. Its entries become flags
//! placed before the command line's, so the command line wins and every value goes through the
//! same parser and validation as the flag.

use std::collections::BTreeSet;

use serde_json::Value;

/// Why a config file was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigFileError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// The file is not YAML, or not a mapping.
    #[error("config file {path}: {reason}")]
    Malformed {
        /// The file.
        path: String,
        /// The parse error.
        reason: String,
    },
    /// A key that is no flag.
    #[error("config file {path}: unknown key \"{key}\"")]
    UnknownKey {
        /// The file.
        path: String,
        /// The key.
        key: String,
    },
    /// A value that is a mapping or null.
    #[error("config file {path}: key \"{key}\" must be a string, number, boolean or list")]
    BadValue {
        /// The file.
        path: String,
        /// The key.
        key: String,
    },
}

/// Turns the YAML `text` of `path` into `--key=value` arguments, refusing keys not in `known`.
pub fn flags_from_yaml(
    path: &str,
    text: &str,
    known: &BTreeSet<String>,
) -> Result<Vec<String>, ConfigFileError> {
    let malformed = |reason: String| ConfigFileError::Malformed {
        path: path.to_string(),
        reason,
    };
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let document: Value = serde_saphyr::from_str(text).map_err(|e| malformed(e.to_string()))?;
    let entries = match document {
        Value::Object(entries) => entries,
        Value::Null => return Ok(Vec::new()),
        _ => {
            return Err(malformed(
                "the file must be a mapping of flag names to values".into(),
            ));
        }
    };
    let mut flags = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        if key == "config" || !known.contains(&key) {
            return Err(ConfigFileError::UnknownKey {
                path: path.to_string(),
                key,
            });
        }
        let bad = || ConfigFileError::BadValue {
            path: path.to_string(),
            key: key.clone(),
        };
        let text = match &value {
            Value::Array(items) => items
                .iter()
                .map(|item| scalar_text(item).ok_or_else(bad))
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            scalar => scalar_text(scalar).ok_or_else(bad)?,
        };
        flags.push(format!("--{key}={text}"));
    }
    Ok(flags)
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> BTreeSet<String> {
        [
            "max-endpoints-per-slice",
            "controllers",
            "leader-elect",
            "config",
        ]
        .into_iter()
        .map(String::from)
        .collect()
    }

    #[test]
    fn entries_become_flags_in_file_order() {
        let text =
            "max-endpoints-per-slice: 50\ncontrollers: ['*', -endpoint]\nleader-elect: false\n";
        assert_eq!(
            flags_from_yaml("c.yaml", text, &known()).unwrap(),
            [
                "--max-endpoints-per-slice=50",
                "--controllers=*,-endpoint",
                "--leader-elect=false"
            ]
        );
        assert!(flags_from_yaml("c.yaml", "", &known()).unwrap().is_empty());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let err = flags_from_yaml("c.yaml", "max-endpoint-per-slice: 5\n", &known()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config file c.yaml: unknown key \"max-endpoint-per-slice\""
        );
        let err = flags_from_yaml("c.yaml", "config: other.yaml\n", &known()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config file c.yaml: unknown key \"config\""
        );
        let err = flags_from_yaml("c.yaml", "controllers: {a: 1}\n", &known()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config file c.yaml: key \"controllers\" must be a string, number, boolean or list"
        );
        assert!(matches!(
            flags_from_yaml("c.yaml", "- a\n- b\n", &known()),
            Err(ConfigFileError::Malformed { .. })
        ));
    }
}
