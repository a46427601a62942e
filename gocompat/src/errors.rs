//! Error text as client-go prints it. kube's own `Display` of an API error appends the whole
//! `Status` in Rust `Debug` syntax (`ApiError: msg: Invalid (Status { status: Some(Failure), …`),
//! which must never reach a user, a log line or an error message.

use std::error::Error;

use kube::runtime::watcher;

/// client-go's `StatusError.Error()`: the Status message of an API error (what kubectl prints
/// after `Error from server (Reason): `); any other client error's own text.
pub fn api_error_text(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        kube::Error::Api(status) => {
            format!("the server answered {} {}", status.code, status.reason)
        }
        other => other.to_string(),
    }
}

/// A watch failure: kube-runtime's words for the phase, then the client error as client-go
/// prints it.
pub fn watcher_error_text(error: &watcher::Error) -> String {
    match error {
        watcher::Error::InitialListFailed(e) => {
            format!(
                "failed to perform initial object list: {}",
                api_error_text(e)
            )
        }
        watcher::Error::WatchStartFailed(e) => {
            format!("failed to start watching object: {}", api_error_text(e))
        }
        watcher::Error::WatchFailed(e) => format!("watch stream failed: {}", api_error_text(e)),
        other => other.to_string(),
    }
}

/// An error and its causes joined by `": "`, as Go's wrapped errors print: API errors through
/// [`api_error_text`], and a cause left out when the text before it already ends with it (an
/// error that prints its source and also returns it from `source()`).
pub fn error_chain_text(error: &(dyn Error + 'static)) -> String {
    let mut text = String::new();
    let mut next = Some(error);
    while let Some(error) = next {
        // A client error's text already holds its causes (an API error's cause is its Status).
        let (part, last) = if let Some(e) = error.downcast_ref::<kube::Error>() {
            (api_error_text(e), true)
        } else if let Some(e) = error.downcast_ref::<watcher::Error>() {
            (watcher_error_text(e), true)
        } else {
            (error.to_string(), false)
        };
        if text.is_empty() {
            text = part;
        } else if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = if last { None } else { error.source() };
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn invalid() -> kube::Error {
        kube::Error::Api(Box::new(Status::failure(
            "Service \"a\" is invalid: spec.ports: Required value",
            "Invalid",
        )))
    }

    #[derive(Debug)]
    struct Wrapped {
        text: String,
        source: Box<dyn Error + 'static>,
    }

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.text)
        }
    }

    impl Error for Wrapped {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(self.source.as_ref())
        }
    }

    #[test]
    fn an_api_error_is_its_status_message_without_debug() {
        assert_eq!(
            api_error_text(&invalid()),
            "Service \"a\" is invalid: spec.ports: Required value"
        );
        assert!(
            invalid().to_string().contains("Status {"),
            "kube's own text"
        );
        assert!(!error_chain_text(&invalid()).contains("Status {"));
    }

    #[test]
    fn a_watch_failure_names_its_phase_without_debug() {
        let error = watcher::Error::InitialListFailed(invalid());
        assert_eq!(
            error_chain_text(&error),
            "failed to perform initial object list: Service \"a\" is invalid: spec.ports: Required value"
        );
    }

    #[test]
    fn a_chain_joins_causes_and_skips_a_repeated_one() {
        let io = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let io_text = io.to_string();
        let repeated = Wrapped {
            text: format!("cannot listen: {io_text}"),
            source: Box::new(io),
        };
        assert_eq!(
            error_chain_text(&repeated),
            format!("cannot listen: {io_text}")
        );
        let wrapped = Wrapped {
            text: "writing the kubernetes endpoints".into(),
            source: Box::new(invalid()),
        };
        assert_eq!(
            error_chain_text(&wrapped),
            "writing the kubernetes endpoints: Service \"a\" is invalid: spec.ports: Required value"
        );
    }
}
