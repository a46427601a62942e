#![forbid(unsafe_code)]
//! Kubernetes manifests as users hand them to `kubectl apply -f`: a file holding a JSON stream or
//! YAML documents separated by `---`, read into one JSON value per document. `svcplane slices`
//! (the controllers' planners) and `svcplane validate` (the webhook's checks) read their files
//! through here, so both count documents alike and name the same one in an error.

use std::fmt::Display;
use std::io::Cursor;

use serde_json::Value;

/// Why a manifest could not be read: the first document that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("document {document}: {message}")]
pub struct DocumentError {
    /// 1-based index of the document, counted as [`documents`] counts them.
    pub document: usize,
    /// The parser's words, with the line and column where YAML has them.
    pub message: String,
}

/// The documents of `text`, in order. Text that starts with `{` or `[` is a JSON stream (one
/// value after another, as kubectl accepts); anything else is YAML, where documents that hold
/// nothing (empty, only comments, or `null`) are skipped and not counted.
pub fn documents(text: &str) -> Result<Vec<Value>, DocumentError> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        json_documents(text)
    } else {
        yaml_documents(text)
    }
}

fn json_documents(text: &str) -> Result<Vec<Value>, DocumentError> {
    collect(serde_json::Deserializer::from_str(text).into_iter::<Value>())
}

// serde-saphyr's streaming reader rather than `from_multiple`: it yields each document's result
// on its own, so an error can name the document, and its messages are one line with the line and
// column in the whole file.
fn yaml_documents(text: &str) -> Result<Vec<Value>, DocumentError> {
    collect(serde_saphyr::read::<_, Value>(&mut Cursor::new(
        text.as_bytes(),
    )))
}

// The documents up to the first that fails, which is named by its place among them.
fn collect<E: Display>(
    results: impl Iterator<Item = Result<Value, E>>,
) -> Result<Vec<Value>, DocumentError> {
    let mut out = Vec::new();
    for result in results {
        let value = result.map_err(|e| DocumentError {
            document: out.len() + 1,
            message: e.to_string(),
        })?;
        out.push(value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_documents_skip_the_empty_ones() {
        let text = "# a comment\n---\nkind: Service\n---\n---\n# only a comment\n---\n\
                    kind: Pod\n...\n--- {kind: Node}\n";
        assert_eq!(
            documents(text),
            Ok(vec![
                json!({"kind": "Service"}),
                json!({"kind": "Pod"}),
                json!({"kind": "Node"})
            ])
        );
        assert_eq!(documents(""), Ok(vec![]));
        assert_eq!(
            documents("null\n---\nkind: Pod\n"),
            Ok(vec![json!({"kind": "Pod"})])
        );
    }

    #[test]
    fn a_json_stream_is_one_document_per_value() {
        let text = "{\"kind\": \"Service\"}\n{\"kind\": \"Pod\"} [1]";
        assert_eq!(
            documents(text),
            Ok(vec![
                json!({"kind": "Service"}),
                json!({"kind": "Pod"}),
                json!([1])
            ])
        );
    }

    #[test]
    fn errors_name_the_document_and_the_line_in_the_file() {
        let err = documents("kind: Service\n---\nkind: [Pod\n---\nkind: Node\n").unwrap_err();
        assert_eq!(err.document, 2);
        assert!(err.message.contains("line 3"), "{err}");
        assert!(!err.message.contains('\n'), "{err}");
        let err = documents("{\"kind\": \"Service\"}\n{\"kind\": ").unwrap_err();
        assert_eq!(err.document, 2);
        assert!(
            err.to_string().starts_with("document 2: EOF while parsing"),
            "{err}"
        );
    }
}
