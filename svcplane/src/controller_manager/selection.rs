//! `--controllers` as kube-controller-manager reads it: `*` turns on the controllers that are on
//! by default, `name` turns one on, `-name` turns one off (and wins).

/// One of svcplane's controllers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ControllerName {
    /// The EndpointSlice controller.
    EndpointSlice,
    /// The legacy Endpoints controller.
    Endpoint,
    /// The EndpointSlice-mirroring controller.
    EndpointSliceMirroring,
    /// ClusterIP and NodePort release and repair.
    AllocationRepair,
    /// The default `kubernetes` Service maintainer (kube-apiserver's job in a real cluster).
    KubernetesService,
}

/// Every controller, in start order.
pub const ALL: [ControllerName; 5] = [
    ControllerName::KubernetesService,
    ControllerName::EndpointSlice,
    ControllerName::Endpoint,
    ControllerName::EndpointSliceMirroring,
    ControllerName::AllocationRepair,
];

impl ControllerName {
    /// The name used in `--controllers`.
    pub fn as_str(self) -> &'static str {
        match self {
            ControllerName::EndpointSlice => "endpointslice",
            ControllerName::Endpoint => "endpoint",
            ControllerName::EndpointSliceMirroring => "endpointslicemirroring",
            ControllerName::AllocationRepair => "allocation-repair",
            ControllerName::KubernetesService => "kubernetes-service",
        }
    }

    /// Whether `*` includes it.
    pub fn on_by_default(self) -> bool {
        self != ControllerName::KubernetesService
    }

    fn from_name(name: &str) -> Option<Self> {
        ALL.into_iter().find(|c| c.as_str() == name)
    }
}

/// Resolves `--controllers` into the controllers to run, in start order.
pub fn enabled_controllers(entries: &[String]) -> Result<Vec<ControllerName>, String> {
    let mut star = false;
    let mut on = Vec::new();
    let mut off = Vec::new();
    for entry in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
        if entry == "*" {
            star = true;
            continue;
        }
        let (list, name) = match entry.strip_prefix('-') {
            Some(name) => (&mut off, name),
            None => (&mut on, entry),
        };
        let controller = ControllerName::from_name(name).ok_or_else(|| {
            format!(
                "{} is not in the list of known controllers",
                gocompat::quote::go_quote(name)
            )
        })?;
        list.push(controller);
    }
    Ok(ALL
        .into_iter()
        .filter(|c| !off.contains(c) && (on.contains(c) || (star && c.on_by_default())))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ControllerName::*;

    fn resolve(flag: &str) -> Result<Vec<ControllerName>, String> {
        let entries: Vec<String> = flag.split(',').map(String::from).collect();
        enabled_controllers(&entries)
    }

    #[test]
    fn star_name_and_minus_name() {
        assert_eq!(
            resolve("*").unwrap(),
            [
                EndpointSlice,
                Endpoint,
                EndpointSliceMirroring,
                AllocationRepair
            ]
        );
        assert_eq!(
            resolve("*,-endpoint,kubernetes-service").unwrap(),
            [
                KubernetesService,
                EndpointSlice,
                EndpointSliceMirroring,
                AllocationRepair
            ]
        );
        assert_eq!(resolve("endpointslice").unwrap(), [EndpointSlice]);
        // `-name` wins over `name`, whatever the order.
        assert_eq!(resolve("-endpointslice,endpointslice").unwrap(), []);
        assert_eq!(resolve("").unwrap(), []);
        assert_eq!(
            resolve("*,-endpointslices").unwrap_err(),
            "\"endpointslices\" is not in the list of known controllers"
        );
    }
}
