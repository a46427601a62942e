//! The API differential (issue 12, item 1): the scenarios of `tests/fidelity/*.yaml` replayed
//! against testenv and a real kube-apiserver, one cluster per run and one namespace per scenario.
//!
//! - The fast subset (`fast: true`) runs in the normal suite.
//! - `SVCPLANE_FIDELITY_FULL=1` runs the whole corpus.
//! - `SVCPLANE_FIDELITY_DOCS=1` runs the whole corpus and rewrites the API section of
//!   `docs/fidelity.md` (only that section).
//! - `SVCPLANE_FIDELITY_ONLY=substring` runs the scenarios whose names contain it.
//!
//! The test fails on a difference `tests/fidelity/known.yaml` gives no reason for, printing the
//! first differing step's minimal diff.
//!
//! `testenv_serves_kube_apiservers_openapi_documents` holds testenv's compiled-in copy of
//! kube-apiserver's OpenAPI documents to what the real kube-apiserver serves;
//! `SVCPLANE_OPENAPI_WRITE=1` rewrites the copy (`testenv/data/openapi-kube-apiserver.json.gz`).

use std::path::Path;
use std::time::{Duration, Instant};

use svcplane_tests::fidelity::{self, Outcome};
use svcplane_tests::real::{self, RealClusterOptions};
use testenv::{TestEnv, TestEnvOptions};

fn flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testenv_answers_as_kube_apiserver() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("fidelity");
    let docs = flag("SVCPLANE_FIDELITY_DOCS");
    let full = docs || flag("SVCPLANE_FIDELITY_FULL");
    let only = std::env::var("SVCPLANE_FIDELITY_ONLY").unwrap_or_default();
    let all = fidelity::load(&dir);
    let known = fidelity::known(&dir);
    let mut chosen: Vec<_> = all
        .iter()
        .filter(|s| full || s.fast)
        .filter(|s| only.is_empty() || s.name.contains(&only))
        .cloned()
        .collect();
    // The kubectl builds the chosen scenarios run: missing ones fail the test under CI=true and
    // drop those scenarios (saying so) otherwise.
    for version in fidelity::kubectl_versions(&chosen) {
        if let Err(e) = fidelity::kubectl_binary(version.as_deref()) {
            assert!(!real::is_ci(), "{e} (CI=true)");
            eprintln!("skipping the scenarios that run it: {e} (under CI=true this is a failure)");
            chosen.retain(|s| {
                !s.steps
                    .iter()
                    .any(|step| step.kubectl.is_some() && step.kubectl_version == version)
            });
        }
    }
    // The garbage-collector scenarios last: kube-controller-manager starts before them, and its
    // other controllers (root-ca-cert-publisher, serviceaccount) then write into new namespaces.
    chosen.sort_by_key(|s| s.gc);
    let started = Instant::now();
    let Some(cluster) = real::start_or_skip(
        "api_fidelity",
        RealClusterOptions {
            service_cluster_ip_range: "10.96.0.0/16".into(),
            ..RealClusterOptions::default()
        },
    )
    .await
    else {
        return;
    };
    // Each side's namespace controller starts with kube-controller-manager (before the `gc`
    // scenarios): until then a deleted namespace stays Terminating on both.
    let mut env = TestEnv::start_with(TestEnvOptions {
        gc_sweep_interval: Duration::from_millis(500),
        namespace_controller: false,
        ..TestEnvOptions::default()
    })
    .await
    .expect("testenv starts");
    let up = started.elapsed();
    let kubeconfigs = tempfile::tempdir().expect("a temporary directory");
    let testenv_kubeconfig = kubeconfigs.path().join("testenv");
    env.write_kubeconfig(&testenv_kubeconfig)
        .expect("testenv's kubeconfig written");
    let testenv = fidelity::Side {
        client: env.client(),
        kubeconfig: testenv_kubeconfig,
    };
    let realc = fidelity::Side {
        client: cluster.client(),
        kubeconfig: cluster.kubeconfig_path().to_path_buf(),
    };
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut kcm = false;
    for scenario in &chosen {
        if scenario.gc && !kcm {
            cluster
                .start_kube_controller_manager(&[], Duration::from_secs(60))
                .await
                .expect("kube-controller-manager starts");
            env.start_namespace_controller();
            kcm = true;
        }
        outcomes.push(fidelity::run(&testenv, &realc, scenario).await);
    }
    let ran = started.elapsed() - up;
    let differing: Vec<&Outcome> = outcomes.iter().filter(|o| !o.diff.is_empty()).collect();
    let unexplained: Vec<&&Outcome> = differing
        .iter()
        .filter(|o| !known.contains_key(&o.name))
        .collect();
    for o in &differing {
        let why = known
            .get(&o.name)
            .map(String::as_str)
            .unwrap_or("UNEXPLAINED");
        eprintln!(
            "differs: {} ({}) — {why}\n{}",
            o.name,
            o.file,
            o.diff.join("\n")
        );
    }
    let mut slow: Vec<&Outcome> = outcomes.iter().collect();
    slow.sort_by_key(|o| std::cmp::Reverse(o.took));
    for o in slow.iter().take(5) {
        eprintln!("slow: {} {:.1} s", o.name, o.took.as_secs_f64());
    }
    for name in known.keys() {
        if outcomes
            .iter()
            .any(|o| &o.name == name && o.diff.is_empty())
        {
            eprintln!("known.yaml lists {name}, which is now identical: remove it");
        }
    }
    eprintln!(
        "{} scenarios ({} of the corpus): {} identical, {} differing ({} unexplained); \
         servers up in {:.1} s, scenarios in {:.1} s",
        outcomes.len(),
        all.len(),
        outcomes.len() - differing.len(),
        differing.len(),
        unexplained.len(),
        up.as_secs_f64(),
        ran.as_secs_f64()
    );
    if docs {
        let path = root
            .parent()
            .expect("the workspace holds the tests crate")
            .join("docs")
            .join("fidelity.md");
        let doc = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Fidelity\n".into());
        let section = docs_section(&outcomes, &known, &dir);
        std::fs::write(&path, fidelity::replace_section(&doc, &section)).expect("docs written");
        eprintln!("wrote {}", path.display());
    }
    assert!(
        unexplained.is_empty(),
        "{} scenarios differ without a reason in tests/fidelity/known.yaml: {}",
        unexplained.len(),
        unexplained
            .iter()
            .map(|o| o.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// GETs `path` as JSON, or panics saying which request failed.
async fn get_json(client: &kube::Client, path: &str) -> serde_json::Value {
    let request = http::Request::get(path)
        .header("accept", "application/json")
        .body(Vec::new())
        .expect("a request");
    client
        .request::<serde_json::Value>(request)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// GETs `path` as `accept`, the body's bytes.
async fn get_bytes(client: &kube::Client, path: &str, accept: &str) -> Vec<u8> {
    use http_body_util::BodyExt;
    let request = http::Request::get(path)
        .header("accept", accept)
        .body(kube::client::Body::empty())
        .expect("a request");
    let response = client
        .send(request)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert!(
        response.status().is_success(),
        "GET {path}: {}",
        response.status()
    );
    response
        .into_body()
        .collect()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .to_bytes()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testenv_serves_kube_apiservers_openapi_documents() {
    let Some(cluster) =
        real::start_or_skip("openapi_documents", RealClusterOptions::default()).await
    else {
        return;
    };
    let real = cluster.client();
    let table = testenv::resources::ResourceTable::builtin();
    let index = get_json(&real, "/openapi/v3").await;
    let mut v3 = std::collections::BTreeMap::new();
    for (key, entry) in index["paths"].as_object().expect("an index of documents") {
        if !testenv::openapi::serves_path(&table, key) {
            continue;
        }
        let url = entry["serverRelativeURL"].as_str().expect("a document URL");
        v3.insert(key.clone(), get_json(&real, url).await);
    }
    let v2 = get_json(&real, "/openapi/v2").await;
    let expected = testenv::openapi::prune_upstream(&v3, &v2);
    let v2_protobuf = get_bytes(&real, "/openapi/v2", testenv::openapi::OPENAPI_V2_PROTOBUF).await;
    let expected_protobuf =
        testenv::openapi::prune_upstream_v2_protobuf(&v2_protobuf, &expected["v2"])
            .expect("kube-apiserver's protobuf /openapi/v2 decodes");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testenv/data");
    if flag("SVCPLANE_OPENAPI_WRITE") {
        std::fs::write(
            data.join("openapi-kube-apiserver.json.gz"),
            testenv::openapi::encode_upstream_documents(&expected),
        )
        .expect("the stored documents written");
        std::fs::write(
            data.join("openapi-v2-kube-apiserver.pb.gz"),
            testenv::openapi::encode_upstream_v2_protobuf(&expected_protobuf),
        )
        .expect("the stored protobuf document written");
        eprintln!("wrote {}; rebuild testenv to serve them", data.display());
        return;
    }
    let stored = testenv::openapi::stored_upstream_documents();
    let differing: Vec<String> = expected["v3"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(key, doc)| stored["v3"].get(key.as_str()) != Some(doc))
        .map(|(key, _)| format!("v3 {key}"))
        .chain((stored["v2"] != expected["v2"]).then(|| "v2".to_string()))
        .chain((stored["kinds"] != expected["kinds"]).then(|| "kinds".to_string()))
        .chain(
            (testenv::openapi::stored_upstream_v2_protobuf() != expected_protobuf)
                .then(|| "v2 protobuf".to_string()),
        )
        .chain(
            stored["v3"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(key, _)| expected["v3"].get(key.as_str()).is_none())
                .map(|(key, _)| format!("v3 {key} (no longer served)")),
        )
        .collect();
    assert!(
        differing.is_empty(),
        "testenv's copy of kube-apiserver's OpenAPI documents is stale ({}); rerun with \
         SVCPLANE_OPENAPI_WRITE=1 and rebuild",
        differing.join(", ")
    );
    // testenv serves the copy as kube-apiserver serves the originals.
    let env = TestEnv::start().await.expect("testenv starts");
    let testenv = env.client();
    let served_index = get_json(&testenv, "/openapi/v3").await;
    for (key, doc) in expected["v3"].as_object().expect("v3 documents") {
        let url = served_index["paths"][key]["serverRelativeURL"]
            .as_str()
            .unwrap_or_else(|| panic!("testenv's /openapi/v3 lists no {key}"));
        assert_eq!(&get_json(&testenv, url).await, doc, "/openapi/v3/{key}");
    }
    assert_eq!(get_json(&testenv, "/openapi/v2").await, expected["v2"]);
    assert_eq!(
        get_bytes(
            &testenv,
            "/openapi/v2",
            testenv::openapi::OPENAPI_V2_PROTOBUF
        )
        .await,
        expected_protobuf
    );
}

fn docs_section(
    outcomes: &[Outcome],
    known: &std::collections::BTreeMap<String, String>,
    dir: &Path,
) -> String {
    let differing: Vec<&Outcome> = outcomes.iter().filter(|o| !o.diff.is_empty()).collect();
    let mut s = String::new();
    s.push_str(fidelity::DOCS_HEADING);
    s.push_str("\n\n");
    s.push_str(
        "The scenarios of `tests/fidelity/*.yaml` (HTTP requests and kubectl commands, one \
         namespace each) sent to testenv and to kube-apiserver 1.34 (etcd, no webhooks; \
         kube-controller-manager's garbage collector for the `gc` scenarios). HTTP answers are \
         compared on status code, `Content-Type`, `Warning`, `Location` and body; kubectl's \
         (`kubectl.yaml`: kubectl 1.32 on PATH, and 1.27, 1.28 and 1.33 beside it) on exit \
         status and output, JSON as a value and text line by line with column widths and ages \
         aside. Normalised on both sides: uids, timestamps, resourceVersion values (not their \
         order), generated name suffixes, allocated ClusterIPs, IP families and NodePorts, the \
         servers' addresses. Regenerate this section with\n\n    \
         SVCPLANE_FIDELITY_DOCS=1 cargo test -p svcplane-tests --test api_fidelity -- --nocapture\n\n",
    );
    s.push_str(&format!(
        "Last full run: **{} scenarios, {} identical, {} differing** ({:.1} %).\n\n",
        outcomes.len(),
        outcomes.len() - differing.len(),
        differing.len(),
        100.0 * (outcomes.len() - differing.len()) as f64 / outcomes.len().max(1) as f64
    ));
    let deliberate = differing
        .iter()
        .filter(|o| {
            known
                .get(&o.name)
                .is_some_and(|r| r.starts_with("deliberate"))
        })
        .count();
    s.push_str(&format!(
        "Of the differences, {deliberate} are deliberate and {} not fixed yet (`tests/fidelity/known.yaml` \
         gives each one's reason).\n\n",
        differing.len() - deliberate
    ));
    s.push_str(
        "Deliberate and normalised away before comparing: testenv is a generic control plane \
         without a Service registry (svcplane supplies it), so it allocates no ClusterIPs or \
         NodePorts, sets no IP families and validates no Services; the comparison drops \
         `spec.clusterIP(s)`, `spec.ipFamilies`, `spec.ipFamilyPolicy` and `ports[].nodePort` of \
         Services on both sides (kubectl's scenarios use headless and ExternalName Services, \
         whose printed columns do not depend on allocation).\n\n",
    );
    if let Ok(history) = std::fs::read_to_string(dir.join("scores.md")) {
        s.push_str(history.trim_end());
        s.push_str("\n\n");
    }
    if !differing.is_empty() {
        s.push_str("| scenario | file | reason | first difference |\n|---|---|---|---|\n");
        for o in differing {
            let why = known
                .get(&o.name)
                .map(String::as_str)
                .unwrap_or("unexplained");
            let first = o.diff.get(1).map(|l| l.trim()).unwrap_or("");
            s.push_str(&format!(
                "| `{}` | {} | {} | `{}` |\n",
                o.name,
                o.file,
                why.replace('|', "\\|"),
                first.replace('|', "\\|").replace('`', "'")
            ));
        }
    }
    s
}
