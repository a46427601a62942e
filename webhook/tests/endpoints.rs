//! Endpoint address and container port checks.

use k8s_openapi::api::core::v1::{Container, EndpointAddress};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;
use webhook::endpoints::{
    validate_container_ports, validate_endpoint_address, validate_endpoint_slice_addresses,
};
use webhook::{FieldPath, ValueRendering};

fn messages(errs: &[webhook::FieldError]) -> Vec<String> {
    errs.iter()
        .map(|e| e.message(ValueRendering::Json))
        .collect()
}

#[test]
fn endpoints_special_addresses() {
    let path = FieldPath::new("subsets")
        .index(0)
        .child("addresses")
        .index(0);
    let cases = [
        ("10.1.2.3", vec![]),
        (
            "0.0.0.0",
            vec![
                "subsets[0].addresses[0].ip: Invalid value: \"0.0.0.0\": may not be unspecified (0.0.0.0)",
            ],
        ),
        (
            "::",
            vec!["subsets[0].addresses[0].ip: Invalid value: \"::\": may not be unspecified (::)"],
        ),
        (
            "127.0.0.1",
            vec![
                "subsets[0].addresses[0].ip: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)",
            ],
        ),
        (
            "::1",
            vec![
                "subsets[0].addresses[0].ip: Invalid value: \"::1\": may not be in the loopback range (127.0.0.0/8, ::1/128)",
            ],
        ),
        (
            "169.254.169.254",
            vec![
                "subsets[0].addresses[0].ip: Invalid value: \"169.254.169.254\": may not be in the link-local range (169.254.0.0/16, fe80::/10)",
            ],
        ),
        (
            "fe80::1",
            vec![
                "subsets[0].addresses[0].ip: Invalid value: \"fe80::1\": may not be in the link-local range (169.254.0.0/16, fe80::/10)",
            ],
        ),
        (
            "224.0.0.1",
            vec![
                "subsets[0].addresses[0].ip: Invalid value: \"224.0.0.1\": may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
            ],
        ),
        (
            "ff02::1",
            vec![
                "subsets[0].addresses[0].ip: Invalid value: \"ff02::1\": may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
            ],
        ),
        (
            "::ffff:127.0.0.1",
            vec![
                "subsets[0].addresses[0].ip: Invalid value: \"::ffff:127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)",
            ],
        ),
        (
            "nope",
            vec![
                "subsets[0].addresses[0].ip: Invalid value: \"nope\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                "subsets[0].addresses[0].ip: Invalid value: \"nope\": must be a valid IP address",
            ],
        ),
    ];
    for (ip, expected) in cases {
        let addr = EndpointAddress {
            ip: ip.to_owned(),
            ..Default::default()
        };
        assert_eq!(
            messages(&validate_endpoint_address(&addr, &path)),
            expected,
            "{ip}"
        );
    }
}

#[test]
fn endpoint_slice_addresses() {
    let slice: EndpointSlice = serde_json::from_value(json!({
        "addressType": "IPv4",
        "metadata": {"name": "web-abc"},
        "endpoints": [{"addresses": ["10.0.0.1", "127.0.0.1", "fd00::1"]}, {"addresses": []}],
    }))
    .expect("fixture");
    assert_eq!(
        messages(&validate_endpoint_slice_addresses(&slice)),
        vec![
            "endpoints[0].addresses[1]: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)",
            "endpoints[0].addresses[2]: Invalid value: \"fd00::1\": must be a valid IPv4 address",
            "endpoints[1].addresses: Required value: must contain at least 1 address",
        ]
    );
}

#[test]
fn container_port_names() {
    let containers: Vec<Container> = serde_json::from_value(json!([
        {"name": "app", "ports": [{"name": "http", "containerPort": 8080}, {"name": "http", "containerPort": 8081}, {"name": "8080", "containerPort": 70000}]}
    ]))
    .expect("fixture");
    assert_eq!(
        messages(&validate_container_ports(
            &containers,
            &FieldPath::new("spec").child("containers")
        )),
        vec![
            "spec.containers[0].ports[1].name: Duplicate value: \"http\"",
            "spec.containers[0].ports[2].name: Invalid value: \"8080\": must contain at least one letter (a-z)",
            "spec.containers[0].ports[2].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
        ]
    );
}
