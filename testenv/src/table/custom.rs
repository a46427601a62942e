//! Custom resources: `NAME` plus the CRD version's `additionalPrinterColumns` (default `AGE`),
//! filled the way apiextensions-apiserver's tableconvertor fills them.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::{NAME, age_since, name_of};

/// One additional printer column of a CRD version.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomColumn {
    /// Header.
    pub name: String,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub kind: String,
    /// Optional OpenAPI format.
    pub format: String,
    /// Description.
    pub description: String,
    /// 0 or 1 (wide).
    pub priority: i64,
    /// A simple JSONPath such as `.spec.replicas`.
    pub json_path: String,
}

impl CustomColumn {
    /// The JSON form of the column definition.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.kind,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// The columns of a CRD version (`spec.versions[].additionalPrinterColumns`), the name column
/// first; a version without any gets the `Age` column, as the CRD defaulting gives it.
pub fn custom_columns(crd: &Value, version: &str) -> Vec<CustomColumn> {
    let v = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .and_then(|vs| vs.iter().find(|v| v["name"].as_str() == Some(version)));
    let declared = v
        .and_then(|v| v.get("additionalPrinterColumns"))
        .and_then(Value::as_array);
    let mut out = vec![CustomColumn {
        name: NAME.name.into(),
        kind: NAME.kind.into(),
        format: NAME.format.into(),
        description: NAME.description.into(),
        priority: 0,
        json_path: ".metadata.name".into(),
    }];
    match declared {
        Some(cols) => {
            for c in cols {
                let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                out.push(CustomColumn {
                    name: s("name"),
                    kind: s("type"),
                    format: s("format"),
                    description: s("description"),
                    priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                    json_path: s("jsonPath"),
                });
            }
        }
        None => out.push(CustomColumn {
            name: "Age".into(),
            kind: "date".into(),
            format: String::new(),
            description: super::AGE_DOC.into(),
            priority: 0,
            json_path: ".metadata.creationTimestamp".into(),
        }),
    }
    out
}

/// The cells of one custom resource for `columns` (as from [`custom_columns`]).
pub fn custom_resource_cells(obj: &Value, columns: &[CustomColumn], now: Timestamp) -> Vec<Value> {
    columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i == 0 {
                return json!(name_of(obj));
            }
            match json_path_first(obj, &c.json_path) {
                None | Some(Value::Null) => Value::Null,
                Some(v) => cell_for(&c.kind, v, now),
            }
        })
        .collect()
}

fn cell_for(kind: &str, v: &Value, now: Timestamp) -> Value {
    match kind {
        "string" => match v {
            Value::String(s) => json!(s),
            other => json!(other.to_string()),
        },
        "integer" => v
            .as_i64()
            .or_else(|| v.as_f64().map(|f| f as i64))
            .map_or(Value::Null, |i| json!(i)),
        "number" => v.as_f64().map_or(Value::Null, |f| json!(f)),
        "boolean" => v.as_bool().map_or(Value::Null, |b| json!(b)),
        "date" => match v.as_str() {
            Some(s) => match s.parse::<Timestamp>() {
                Ok(_) => json!(age_since(Some(v), now)),
                Err(_) => json!("<invalid>"),
            },
            None => Value::Null,
        },
        _ => Value::Null,
    }
}

/// One step of a simple JSONPath.
#[derive(Debug, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    Wildcard,
    /// `[?(@.key=="value")]`
    Filter(Vec<String>, String),
}

fn parse_path(path: &str) -> Option<Vec<Step>> {
    let path = path.trim();
    let path = path
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(path);
    let chars: Vec<char> = path.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let mut field = String::new();
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    field.push(chars[i]);
                    i += 1;
                }
                if !field.is_empty() {
                    steps.push(Step::Field(field));
                }
            }
            '[' => {
                let close = chars[i..].iter().position(|&c| c == ']')? + i;
                let inner: String = chars[i + 1..close].iter().collect();
                let inner = inner.trim();
                if inner == "*" {
                    steps.push(Step::Wildcard);
                } else if let Ok(n) = inner.parse::<usize>() {
                    steps.push(Step::Index(n));
                } else if let Some(expr) =
                    inner.strip_prefix("?(").and_then(|e| e.strip_suffix(')'))
                {
                    let (lhs, rhs) = expr.split_once("==")?;
                    let keys: Vec<String> = lhs
                        .trim()
                        .strip_prefix("@.")?
                        .split('.')
                        .map(String::from)
                        .collect();
                    let value = rhs
                        .trim()
                        .trim_matches(|c| c == '"' || c == '\'')
                        .to_string();
                    steps.push(Step::Filter(keys, value));
                } else {
                    let key = inner.trim_matches(|c| c == '"' || c == '\'');
                    steps.push(Step::Field(key.to_string()));
                }
                i = close + 1;
            }
            _ => return None,
        }
    }
    Some(steps)
}

/// The first value a simple JSONPath selects.
pub(crate) fn json_path_first<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let steps = parse_path(path)?;
    let mut current: Vec<&Value> = vec![obj];
    for step in &steps {
        let mut next = Vec::new();
        for v in current {
            match step {
                Step::Field(f) => next.extend(v.get(f.as_str())),
                Step::Index(n) => next.extend(v.get(*n)),
                Step::Wildcard => match v {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
                Step::Filter(keys, want) => {
                    for item in v.as_array().into_iter().flatten() {
                        let mut x = Some(item);
                        for k in keys {
                            x = x.and_then(|x| x.get(k.as_str()));
                        }
                        let matches = match x {
                            Some(Value::String(s)) => s == want,
                            Some(other) => {
                                serde_json::from_str::<Value>(want).is_ok_and(|w| w == *other)
                            }
                            None => false,
                        };
                        if matches {
                            next.push(item);
                        }
                    }
                }
            }
        }
        current = next;
    }
    current.into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_columns_and_cells() {
        let crd = json!({"spec": {"versions": [
            {"name": "v1", "additionalPrinterColumns": [
                {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                {"name": "Missing", "type": "string", "jsonPath": ".spec.nothing", "priority": 1}]},
            {"name": "v2"}]}});
        let cols = custom_columns(&crd, "v1");
        assert_eq!(
            cols.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["Name", "Replicas", "Ready", "Age", "Missing"]
        );
        let obj = json!({"metadata": {"name": "a", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"replicas": 3},
            "status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        let now: Timestamp = "2026-01-01T00:00:07Z".parse().unwrap();
        assert_eq!(
            custom_resource_cells(&obj, &cols, now),
            vec![
                json!("a"),
                json!(3),
                json!("True"),
                json!("7s"),
                Value::Null
            ]
        );
        let v2 = custom_columns(&crd, "v2");
        assert_eq!(v2.len(), 2);
        assert_eq!(v2[1].name, "Age");
        assert_eq!(custom_resource_cells(&obj, &v2, now)[1], json!("7s"));
    }

    #[test]
    fn json_paths_index_and_escape() {
        let obj = json!({"a": [{"b": 1}, {"b": 2}], "metadata": {"labels": {"x.io/y": "z"}}});
        assert_eq!(json_path_first(&obj, ".a[1].b"), Some(&json!(2)));
        assert_eq!(json_path_first(&obj, "{.a[*].b}"), Some(&json!(1)));
        assert_eq!(
            json_path_first(&obj, ".metadata.labels.x\\.io/y"),
            Some(&json!("z"))
        );
        assert_eq!(json_path_first(&obj, "a.b"), None);
    }
}
