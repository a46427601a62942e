//! Decoding vectors: the bodies kubectl 1.33 sends (protobuf) checked against the bodies kubectl
//! 1.31 sends for the same commands (JSON, written by Go's encoder), byte for byte; then hand-built
//! messages for the fields kubectl's generators do not reach, and malformed input.

use serde_json::{Value, json};

use super::test_encoder::Encoder;
use super::*;

const SERVICE: TypeDefaults<'static> = TypeDefaults {
    group: "",
    version: "v1",
    kind: "Service",
};

/// (name, kubectl 1.33 protobuf body, kubectl 1.31 JSON body) for one generator command each.
const KUBECTL_VECTORS: &[(&str, &[u8], &[u8])] = &[
    (
        "create service clusterip web --tcp=80:8080",
        include_bytes!("testdata/service_clusterip.pb"),
        include_bytes!("testdata/service_clusterip.json"),
    ),
    (
        "create service nodeport np --tcp=80:http --node-port=30080",
        include_bytes!("testdata/service_nodeport.pb"),
        include_bytes!("testdata/service_nodeport.json"),
    ),
    (
        "create service externalname ext --external-name=example.com",
        include_bytes!("testdata/service_externalname.pb"),
        include_bytes!("testdata/service_externalname.json"),
    ),
    (
        "create service loadbalancer lb --tcp=443",
        include_bytes!("testdata/service_loadbalancer.pb"),
        include_bytes!("testdata/service_loadbalancer.json"),
    ),
    (
        "create configmap cm --from-literal=a=b --from-literal=z=y",
        include_bytes!("testdata/configmap.pb"),
        include_bytes!("testdata/configmap.json"),
    ),
    (
        "create namespace ns1",
        include_bytes!("testdata/namespace.pb"),
        include_bytes!("testdata/namespace.json"),
    ),
    (
        "create secret generic s --from-literal=a=b",
        include_bytes!("testdata/secret.pb"),
        include_bytes!("testdata/secret.json"),
    ),
    (
        "create serviceaccount sa",
        include_bytes!("testdata/serviceaccount.pb"),
        include_bytes!("testdata/serviceaccount.json"),
    ),
    (
        "create deployment d --image=nginx --port=80 --replicas=2",
        include_bytes!("testdata/deployment.pb"),
        include_bytes!("testdata/deployment.json"),
    ),
];

fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    decode_object(body, SERVICE).map(|d| d.object)
}

#[test]
fn kubectl_protobuf_bodies_decode_to_the_json_kubectl_sent_before() {
    for (command, pb, json) in KUBECTL_VECTORS {
        let decoded = decode(pb).unwrap_or_else(|e| panic!("{command}: {e}"));
        let text = serde_json::to_string(&decoded).expect("serializes");
        assert_eq!(
            text,
            String::from_utf8_lossy(json).trim_end(),
            "{command}: same keys, values and order as Go's encoder"
        );
    }
}

#[test]
fn service_vector_reads_as_expected() {
    let svc = decode(include_bytes!("testdata/service_clusterip.pb")).unwrap();
    assert_eq!(svc["spec"]["ports"][0]["port"], json!(80));
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], json!(8080));
    assert_eq!(svc["spec"]["selector"], json!({"app": "web"}));
    assert_eq!(svc["spec"]["type"], json!("ClusterIP"));
    assert_eq!(svc["metadata"]["creationTimestamp"], Value::Null);
    assert!(
        svc["spec"].get("clusterIP").is_none(),
        "empty strings are omitted"
    );
}

#[test]
fn secret_bytes_are_base64() {
    let body = Encoder::new()
        .message(1, |t| t.string(1, "v1").string(2, "Secret"))
        .message(2, |s| {
            s.message(1, |m| m.string(1, "tls"))
                .message(2, |e| e.string(1, "bin").bytes(2, &[0, 159, 146, 150]))
                .message(2, |e| e.string(1, "empty"))
                .entry(4, "plain", "text")
                .string(3, "kubernetes.io/tls")
                .varint(5, 1)
        })
        .into_body();
    assert_eq!(
        decode(&body).unwrap(),
        json!({"kind": "Secret", "apiVersion": "v1",
            "metadata": {"name": "tls", "creationTimestamp": null},
            "immutable": true,
            "data": {"bin": "AJ+Slg==", "empty": ""},
            "stringData": {"plain": "text"},
            "type": "kubernetes.io/tls"})
    );
}

fn pod_body() -> Vec<u8> {
    let container = |c: Encoder| {
        c.string(1, "web")
            .string(2, "nginx:1.27")
            .string(3, "/bin/sh")
            .string(4, "-c")
            .string(4, "serve")
            .message(6, |p| p.string(1, "http").varint(3, 8080).string(4, "TCP"))
            .message(7, |e| e.string(1, "MODE").string(2, "prod"))
            .message(7, |e| {
                e.string(1, "POD_NAME")
                    .message(3, |s| s.message(1, |f| f.string(2, "metadata.name")))
            })
            .message(7, |e| {
                e.string(1, "TOKEN").message(3, |s| {
                    s.message(4, |k| {
                        k.message(1, |l| l.string(1, "creds"))
                            .string(2, "token")
                            .varint(3, 1)
                    })
                })
            })
            .message(8, |r| {
                r.message(1, |m| {
                    m.string(1, "cpu").message(2, |q| q.string(1, "500m"))
                })
                .message(2, |m| {
                    m.string(1, "memory").message(2, |q| q.string(1, "64Mi"))
                })
            })
            .message(9, |v| v.string(1, "data").string(3, "/data").varint(2, 1))
            .string(14, "IfNotPresent")
            .message(15, |s| s.varint(2, 1).varint(4, 1000))
            .varint(16, 0)
    };
    Encoder::new()
        .message(1, |t| t.string(1, "v1").string(2, "Pod"))
        .message(2, |pod| {
            pod.message(1, |m| {
                m.string(1, "web")
                    .string(3, "default")
                    .entry(11, "run", "web")
                    .entry(12, "note", "hi")
                    .message(13, |o| {
                        o.string(5, "apps/v1")
                            .string(1, "ReplicaSet")
                            .string(3, "rs")
                            .string(4, "u-1")
                            .varint(6, 1)
                    })
                    .string(14, "example.com/f")
                    .message(9, |t| t.varint(1, 1_700_000_000))
                    .varint(10, 30)
            })
            .message(2, |spec| {
                spec.message(2, container)
                    .string(3, "Always")
                    .varint(4, 30)
                    .string(6, "ClusterFirst")
                    .entry(7, "disk", "ssd")
                    .string(8, "builder")
                    .varint(11, 1)
                    .message(22, |t| {
                        t.string(1, "k")
                            .string(2, "Exists")
                            .string(4, "NoExecute")
                            .varint(5, 60)
                    })
                    .varint(25, u64::MAX) // priority -1, sign-extended as Go writes int32
            })
            .message(3, |s| s.string(1, "Pending"))
        })
        .into_body()
}

#[test]
fn pods_decode_containers_env_resources_and_scheduling() {
    let pod = decode(&pod_body()).unwrap();
    assert_eq!(
        pod,
        json!({
            "kind": "Pod", "apiVersion": "v1",
            "metadata": {
                "name": "web", "namespace": "default", "creationTimestamp": null,
                "deletionTimestamp": "2023-11-14T22:13:20Z", "deletionGracePeriodSeconds": 30,
                "labels": {"run": "web"}, "annotations": {"note": "hi"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                    "uid": "u-1", "controller": true}],
                "finalizers": ["example.com/f"]
            },
            "spec": {
                "containers": [{
                    "name": "web", "image": "nginx:1.27", "command": ["/bin/sh"],
                    "args": ["-c", "serve"],
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                    "env": [
                        {"name": "MODE", "value": "prod"},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "TOKEN", "valueFrom": {"secretKeyRef":
                            {"name": "creds", "key": "token", "optional": true}}}
                    ],
                    "resources": {"limits": {"cpu": "500m"}, "requests": {"memory": "64Mi"}},
                    "volumeMounts": [{"name": "data", "readOnly": true, "mountPath": "/data"}],
                    "imagePullPolicy": "IfNotPresent",
                    "securityContext": {"privileged": true, "runAsUser": 1000}
                }],
                "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
                "dnsPolicy": "ClusterFirst", "nodeSelector": {"disk": "ssd"},
                "serviceAccountName": "builder", "hostNetwork": true,
                "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute",
                    "tolerationSeconds": 60}],
                "priority": -1
            },
            "status": {"phase": "Pending"}
        })
    );
}

#[test]
fn deployment_strategy_and_int_or_string_percentages() {
    let body = Encoder::new()
        .message(1, |t| t.string(1, "apps/v1").string(2, "Deployment"))
        .message(2, |d| {
            d.message(1, |m| m.string(1, "d")).message(2, |s| {
                s.varint(1, 0)
                    .message(4, |st| {
                        st.string(1, "RollingUpdate").message(2, |r| {
                            r.message(1, |i| i.varint(1, 1).string(3, "25%"))
                                .message(2, |i| i.varint(1, 0).varint(2, 1))
                        })
                    })
                    .varint(6, 3)
            })
        })
        .into_body();
    let d = decode(&body).unwrap();
    assert_eq!(
        d["spec"]["replicas"],
        json!(0),
        "a sent pointer is written even when zero"
    );
    assert_eq!(
        d["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 1}})
    );
    assert_eq!(d["spec"]["revisionHistoryLimit"], json!(3));
    assert_eq!(
        d["spec"]["template"],
        json!({"metadata": {"creationTimestamp": null}, "spec": {}})
    );
    assert!(d["spec"].get("selector").is_none());
}

#[test]
fn protobuf_merge_rules_apply() {
    // spec sent twice merges; the last `type` wins; unknown numbers and wire types are skipped.
    let body = Encoder::new()
        .message(1, |t| t.string(1, "v1").string(2, "Service"))
        .message(2, |s| {
            s.message(1, |m| m.string(1, "a").string(1, "b").fixed32(99, 7))
                .message(2, |sp| sp.string(4, "NodePort").fixed64(200, 1))
                .message(2, |sp| {
                    sp.string(4, "ClusterIP")
                        .entry(2, "app", "x")
                        .string(3, "None")
                        .varint(1000, 5)
                })
                .bytes(9, b"ignored")
        })
        .into_body();
    assert_eq!(
        decode(&body).unwrap(),
        json!({"kind": "Service", "apiVersion": "v1",
            "metadata": {"name": "b", "creationTimestamp": null},
            "spec": {"selector": {"app": "x"}, "clusterIP": "None", "type": "ClusterIP"},
            "status": {"loadBalancer": {}}})
    );
}

#[test]
fn envelope_type_defaults_come_from_the_url() {
    let body = Encoder::new()
        .message(1, |t| t)
        .message(2, |s| s.message(1, |m| m.string(1, "web")))
        .into_body();
    let d = decode_object(&body, SERVICE).unwrap();
    assert_eq!((d.api_version.as_str(), d.kind.as_str()), ("v1", "Service"));
    let apps = TypeDefaults {
        group: "apps",
        version: "v1",
        kind: "Deployment",
    };
    let body = Encoder::new()
        .message(1, |t| t.string(2, "Deployment"))
        .message(2, |s| s.message(1, |m| m.string(1, "d")))
        .into_body();
    assert_eq!(decode_object(&body, apps).unwrap().api_version, "apps/v1");
}

#[test]
fn unsupported_kinds_and_fields_are_refused() {
    let body = Encoder::new()
        .message(1, |t| t.string(1, "v1").string(2, "Endpoints"))
        .message(2, |s| s.message(1, |m| m.string(1, "e")))
        .into_body();
    assert_eq!(
        decode(&body),
        Err(ProtobufError::UnsupportedKind {
            api_version: "v1".into(),
            kind: "Endpoints".into()
        })
    );
    let body = Encoder::new()
        .message(1, |t| t.string(1, "v1").string(2, "Pod"))
        .message(2, |p| {
            p.message(2, |s| {
                s.message(2, |c| {
                    c.string(1, "c").message(10, |probe| probe.varint(2, 5))
                })
            })
        })
        .into_body();
    assert_eq!(
        decode(&body),
        Err(ProtobufError::UnsupportedField {
            message: "Container",
            field: "livenessProbe"
        })
    );
}

#[test]
fn wrong_wire_types_are_refused_as_gogo_words_them() {
    let body = Encoder::new()
        .message(1, |t| t.string(1, "v1").string(2, "Service"))
        .message(2, |s| s.message(2, |sp| sp.varint(3, 1)))
        .into_body();
    let err = decode(&body).unwrap_err();
    assert_eq!(
        err.to_string(),
        "proto: wrong wireType = 0 for field ClusterIP"
    );
}

#[test]
fn invalid_quantities_are_refused() {
    let body = Encoder::new()
        .message(1, |t| t.string(1, "v1").string(2, "Pod"))
        .message(2, |p| {
            p.message(2, |s| {
                s.message(2, |c| {
                    c.string(1, "c").message(8, |r| {
                        r.message(1, |m| {
                            m.string(1, "cpu").message(2, |q| q.string(1, "lots"))
                        })
                    })
                })
            })
        })
        .into_body();
    assert_eq!(decode(&body), Err(ProtobufError::InvalidQuantity));
}

#[test]
fn every_truncation_and_byte_flip_of_real_bodies_is_an_answer_not_a_panic() {
    let mut bodies: Vec<Vec<u8>> = KUBECTL_VECTORS
        .iter()
        .map(|(_, pb, _)| pb.to_vec())
        .collect();
    bodies.push(pod_body());
    let mut errors = 0usize;
    for body in &bodies {
        for cut in 0..body.len() {
            errors += usize::from(decode(&body[..cut]).is_err());
        }
        for i in 0..body.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut mutated = body.clone();
                if let Some(b) = mutated.get_mut(i) {
                    *b ^= flip;
                }
                errors += usize::from(decode(&mutated).is_err());
            }
        }
    }
    assert!(errors > 1000, "most mutations are caught ({errors})");
}

#[test]
fn content_types_are_recognised() {
    assert!(is_protobuf("application/vnd.kubernetes.protobuf"));
    assert!(is_protobuf(
        "Application/Vnd.Kubernetes.Protobuf; charset=utf-8"
    ));
    assert!(!is_protobuf("application/json"));
    assert!(!is_protobuf("application/vnd.kubernetes.protobuf+json"));
}

#[test]
fn errors_become_the_status_kube_apiserver_writes() {
    let table = crate::resources::ResourceTable::builtin();
    let rt = table.get("", "v1", "services").expect("services");
    let e = decode_body(
        b"{\"kind\":\"Service\",\"apiVersion\":\"v1\",\"metadata\":{}}",
        &rt,
    )
    .unwrap_err();
    assert_eq!((e.code, e.reason.as_str()), (400, "BadRequest"));
    assert_eq!(
        e.message,
        "the object provided is unrecognized ({\"kind\":\"Service\",\"apiVersion\" ...): provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
    );
    let truncated = &include_bytes!("testdata/service_clusterip.pb")[..40];
    let e = decode_body(truncated, &rt).unwrap_err();
    assert_eq!(
        e.message,
        "Service in version \"v1\" cannot be handled as a Service: unexpected EOF"
    );
    let endpoints = Encoder::new()
        .message(1, |t| t.string(1, "v1").string(2, "Endpoints"))
        .into_body();
    let e = decode_body(&endpoints, &rt).unwrap_err();
    assert_eq!((e.code, e.reason.as_str()), (415, "UnsupportedMediaType"));
    assert_eq!(
        e.message,
        "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml"
    );
}
