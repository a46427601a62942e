//! The text of `explain service` for people: one section per field of [`Explanation`], the
//! verdict last, where the eye lands.

use std::fmt::Write;

use super::{EndpointReport, Explanation, PodReport};

impl Explanation {
    /// The explanation as text, ending in a newline.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        self.write_service(&mut out);
        self.write_ports(&mut out);
        self.write_pods(&mut out);
        self.write_slices(&mut out);
        self.write_endpoints(&mut out);
        self.write_environment(&mut out);
        self.write_dns(&mut out);
        self.write_verdict(&mut out);
        out
    }

    fn write_service(&self, out: &mut String) {
        let s = &self.service;
        let _ = writeln!(out, "Service:    {}/{}", s.namespace, s.name);
        let _ = writeln!(out, "Type:       {}", s.type_);
        match (&s.external_name, s.cluster_ips.as_slice()) {
            (Some(name), _) if s.type_ == "ExternalName" => {
                let _ = writeln!(out, "ExternalName: {name}");
            }
            (_, []) => {
                let _ = writeln!(out, "ClusterIP:  <none yet>");
            }
            (_, ips) => {
                let _ = writeln!(out, "ClusterIP:  {}", ips.join(", "));
            }
        }
        let _ = writeln!(out, "Selector:   {}", s.selector_text());
        if s.publish_not_ready_addresses {
            let _ = writeln!(
                out,
                "publishNotReadyAddresses: true (not-ready pods are ready endpoints)"
            );
        }
    }

    fn write_ports(&self, out: &mut String) {
        let _ = writeln!(out, "\nPorts (port -> targetPort -> nodePort):");
        if self.ports.is_empty() {
            let _ = writeln!(out, "  <none>");
        }
        for p in &self.ports {
            let _ = write!(out, "  {} -> {}", p.label(), p.target_port);
            if let Some(node_port) = p.node_port {
                let _ = write!(out, " -> {node_port}");
            }
            out.push('\n');
        }
    }

    fn write_pods(&self, out: &mut String) {
        if self.service.selector.is_none() || self.service.type_ == "ExternalName" {
            return;
        }
        let _ = writeln!(out, "\nPods matching the selector: {}", self.pods.len());
        for pod in &self.pods {
            write_pod(out, pod);
        }
    }

    fn write_slices(&self, out: &mut String) {
        if self.service.type_ == "ExternalName" {
            return;
        }
        let _ = writeln!(out, "\nEndpointSlices: {}", self.endpoint_slices.len());
        for slice in &self.endpoint_slices {
            let ports = if slice.ports.is_empty() {
                "no ports".to_owned()
            } else {
                slice.ports.join(", ")
            };
            let _ = writeln!(
                out,
                "  {} ({}; {}; managed by {})",
                slice.name,
                slice.address_type,
                ports,
                if slice.managed_by.is_empty() {
                    "<unset>"
                } else {
                    slice.managed_by.as_str()
                }
            );
            if slice.endpoints.is_empty() {
                let _ = writeln!(out, "    <no endpoints>");
            }
            for endpoint in &slice.endpoints {
                write_endpoint(out, endpoint);
            }
        }
    }

    fn write_endpoints(&self, out: &mut String) {
        // The legacy object matters where people write it by hand: selector-less Services.
        if self.service.selector.is_some() {
            return;
        }
        let Some(e) = &self.endpoints else {
            return;
        };
        let _ = writeln!(out, "\nEndpoints (the object):");
        let none = |v: &[String]| {
            if v.is_empty() {
                "<none>".to_owned()
            } else {
                v.join(", ")
            }
        };
        let _ = writeln!(out, "  addresses:          {}", none(&e.addresses));
        let _ = writeln!(
            out,
            "  not-ready addresses: {}",
            none(&e.not_ready_addresses)
        );
        let _ = writeln!(out, "  ports:              {}", none(&e.ports));
    }

    fn write_environment(&self, out: &mut String) {
        let env = &self.environment;
        let _ = writeln!(
            out,
            "\nEnvironment of a new pod in {} (enableServiceLinks: {}):",
            env.namespace, env.enable_service_links
        );
        if !env.includes_service {
            let why = if self.service.type_ == "ExternalName" {
                "it is of type ExternalName"
            } else if self.service.cluster_ips.iter().any(|ip| ip == "None") {
                "it is headless"
            } else {
                "it has no ClusterIP yet"
            };
            let _ = writeln!(out, "  ({} gets no variables: {why})", self.service.name);
        }
        for var in &env.variables {
            let _ = writeln!(out, "  {var}");
        }
    }

    fn write_dns(&self, out: &mut String) {
        let _ = writeln!(out, "\nDNS ({}):", self.dns.zone);
        if self.dns.records.is_empty() {
            let _ = writeln!(out, "  <no records>");
        }
        for record in &self.dns.records {
            let _ = writeln!(out, "  {record}");
        }
    }

    fn write_verdict(&self, out: &mut String) {
        let _ = writeln!(out, "\nVerdict: {}", self.verdict.summary);
        for finding in &self.verdict.findings {
            let _ = writeln!(out, "  - {}", finding.message());
        }
    }
}

fn write_pod(out: &mut String, pod: &PodReport) {
    let ips = if pod.ips.is_empty() {
        "<no IP>".to_owned()
    } else {
        pod.ips.join(",")
    };
    let node = if pod.node.is_empty() {
        "<unscheduled>"
    } else {
        pod.node.as_str()
    };
    let state = if !pod.is_endpoint {
        format!("not an endpoint ({})", pod.phase)
    } else {
        conditions_text(pod.ready, pod.serving, pod.terminating)
    };
    let _ = writeln!(out, "  {}  {ips}  {node}  {state}", pod.name);
    if let Some(c) = &pod.not_ready {
        let mut why = format!("Ready={}", c.status);
        for part in [&c.reason, &c.message] {
            if !part.is_empty() {
                why.push_str(": ");
                why.push_str(part);
            }
        }
        let _ = writeln!(out, "      {why}");
    }
    for c in &pod.containers {
        if c.ready && c.restart_count == 0 {
            continue;
        }
        let _ = writeln!(
            out,
            "      container {}: {}, {}, restarts {}",
            c.name,
            if c.ready { "ready" } else { "not ready" },
            c.state,
            c.restart_count
        );
    }
    for t in &pod.named_target_ports {
        match (t.container_port, &t.problem) {
            (Some(port), _) => {
                let _ = writeln!(
                    out,
                    "      targetPort {} ({}) -> {port}",
                    t.target_port, t.service_port
                );
            }
            (None, problem) => {
                let _ = writeln!(
                    out,
                    "      targetPort {} ({}) -> unresolved: {}",
                    t.target_port,
                    t.service_port,
                    problem.as_deref().unwrap_or("")
                );
            }
        }
    }
}

fn conditions_text(ready: bool, serving: bool, terminating: bool) -> String {
    match (ready, serving, terminating) {
        (true, _, false) => "ready".to_owned(),
        (true, _, true) => "ready (terminating; published not-ready)".to_owned(),
        (false, true, true) => "terminating (serving, not ready)".to_owned(),
        (false, false, true) => "terminating (not serving)".to_owned(),
        (false, _, false) => "not ready".to_owned(),
    }
}

fn write_endpoint(out: &mut String, e: &EndpointReport) {
    let _ = write!(
        out,
        "    {}  {}",
        e.addresses.join(","),
        conditions_text(e.ready, e.serving, e.terminating)
    );
    if let Some(pod) = &e.pod {
        let _ = write!(out, "  pod {pod}");
    }
    if let Some(node) = &e.node {
        let _ = write!(out, "  node {node}");
    }
    out.push('\n');
}
