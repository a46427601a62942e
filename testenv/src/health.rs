//! `/healthz`, `/livez` and `/readyz` as kube-apiserver answers them (k8s.io/apiserver
//! `pkg/server/healthz`): `ok`, or with `?verbose` one `[+]check ok` line per check and the
//! verdict; `/readyz/<check>` runs one check, `?exclude=<check>` leaves one out.
//!
//! testenv's checks are its own, not kube-apiserver's long list of post-start hooks: `ping`
//! (the server answers), `log` (it can log) and `store` (its object store answers reads). Each is
//! true while the process serves, as `ping` and `log` are upstream.

/// The checks, in the order they are listed.
pub const CHECKS: [&str; 3] = ["ping", "log", "store"];

/// One health request: which endpoint (`healthz`, `livez`, `readyz`), an optional single check,
/// and the `verbose` and `exclude` query parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthRequest {
    pub endpoint: String,
    pub check: Option<String>,
    pub verbose: bool,
    pub exclude: Vec<String>,
}

/// The status code and plain-text body of the answer.
pub fn answer(request: &HealthRequest) -> (u16, String) {
    if let Some(check) = &request.check {
        return if CHECKS.contains(&check.as_str()) {
            (200, "ok".to_string())
        } else {
            (404, "404 page not found\n".to_string())
        };
    }
    if !request.verbose {
        return (200, "ok".to_string());
    }
    let mut body = String::new();
    for check in CHECKS {
        if request.exclude.iter().any(|e| e == check) {
            body.push_str(&format!("[+]{check} excluded: ok\n"));
        } else {
            body.push_str(&format!("[+]{check} ok\n"));
        }
    }
    // Upstream names the excluded checks it does not have, sorted, so that a typo shows.
    let mut unknown: Vec<&str> = request
        .exclude
        .iter()
        .map(String::as_str)
        .filter(|e| !CHECKS.contains(e))
        .collect();
    unknown.sort_unstable();
    unknown.dedup();
    if !unknown.is_empty() {
        let quoted: Vec<String> = unknown.iter().map(|u| crate::meta::go_quote(u)).collect();
        body.push_str(&format!(
            "warn: some health checks cannot be excluded: no matches for {}\n",
            quoted.join(",")
        ));
    }
    body.push_str(&format!("{} check passed\n", request.endpoint));
    (200, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(
        endpoint: &str,
        check: Option<&str>,
        verbose: bool,
        exclude: &[&str],
    ) -> HealthRequest {
        HealthRequest {
            endpoint: endpoint.into(),
            check: check.map(Into::into),
            verbose,
            exclude: exclude.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn plain_verbose_single_and_excluded_checks() {
        assert_eq!(
            answer(&request("readyz", None, false, &[])),
            (200, "ok".into())
        );
        assert_eq!(
            answer(&request("readyz", None, true, &[])).1,
            "[+]ping ok\n[+]log ok\n[+]store ok\nreadyz check passed\n"
        );
        assert_eq!(
            answer(&request("livez", Some("ping"), false, &[])),
            (200, "ok".into())
        );
        assert_eq!(answer(&request("livez", Some("etcd"), false, &[])).0, 404);
        assert_eq!(
            answer(&request("healthz", None, true, &["log", "nope"])).1,
            "[+]ping ok\n[+]log excluded: ok\n[+]store ok\nwarn: some health checks cannot be excluded: no matches for \"nope\"\nhealthz check passed\n"
        );
    }
}
