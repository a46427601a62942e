//! `k8s.io/api/core/v1` messages (field numbers from its `generated.proto`), for the kinds kubectl's
//! generators send: Service, ConfigMap, Secret, Namespace, ServiceAccount and Pod.

use super::meta::{CONDITION, OBJECT_META};
use super::schema::*;

/// `corev1.Service`.
pub static SERVICE: Message = Message {
    name: "Service",
    fields: &[
        message(1, "metadata", &OBJECT_META),
        message(2, "spec", &SERVICE_SPEC),
        message(3, "status", &SERVICE_STATUS),
    ],
};

/// `corev1.ServiceSpec`.
pub static SERVICE_SPEC: Message = Message {
    name: "ServiceSpec",
    fields: &[
        messages(1, "ports", &SERVICE_PORT),
        string_map(2, "selector"),
        string(3, "clusterIP"),
        strings(18, "clusterIPs"),
        string(4, "type"),
        strings(5, "externalIPs"),
        string(7, "sessionAffinity"),
        string(8, "loadBalancerIP"),
        strings(9, "loadBalancerSourceRanges"),
        string(10, "externalName"),
        string(11, "externalTrafficPolicy"),
        int32(12, "healthCheckNodePort"),
        boolean(13, "publishNotReadyAddresses"),
        message_ptr(14, "sessionAffinityConfig", &SESSION_AFFINITY_CONFIG),
        strings(19, "ipFamilies"),
        string_ptr(17, "ipFamilyPolicy"),
        boolean_ptr(20, "allocateLoadBalancerNodePorts"),
        string_ptr(21, "loadBalancerClass"),
        string_ptr(22, "internalTrafficPolicy"),
        string_ptr(23, "trafficDistribution"),
    ],
};

/// `corev1.ServicePort`.
pub static SERVICE_PORT: Message = Message {
    name: "ServicePort",
    fields: &[
        string(1, "name"),
        string(2, "protocol"),
        string_ptr(6, "appProtocol"),
        int32_always(3, "port"),
        int_or_string(4, "targetPort"),
        int32(5, "nodePort"),
    ],
};

/// `corev1.SessionAffinityConfig`.
pub static SESSION_AFFINITY_CONFIG: Message = Message {
    name: "SessionAffinityConfig",
    fields: &[message_ptr(1, "clientIP", &CLIENT_IP_CONFIG)],
};

/// `corev1.ClientIPConfig`.
pub static CLIENT_IP_CONFIG: Message = Message {
    name: "ClientIPConfig",
    fields: &[int32_ptr(1, "timeoutSeconds")],
};

/// `corev1.ServiceStatus`.
pub static SERVICE_STATUS: Message = Message {
    name: "ServiceStatus",
    fields: &[
        message(1, "loadBalancer", &LOAD_BALANCER_STATUS),
        messages(2, "conditions", &CONDITION),
    ],
};

/// `corev1.LoadBalancerStatus`.
pub static LOAD_BALANCER_STATUS: Message = Message {
    name: "LoadBalancerStatus",
    fields: &[messages(1, "ingress", &LOAD_BALANCER_INGRESS)],
};

/// `corev1.LoadBalancerIngress`.
pub static LOAD_BALANCER_INGRESS: Message = Message {
    name: "LoadBalancerIngress",
    fields: &[
        string(1, "ip"),
        string(2, "hostname"),
        string_ptr(3, "ipMode"),
        messages(4, "ports", &PORT_STATUS),
    ],
};

/// `corev1.PortStatus`.
pub static PORT_STATUS: Message = Message {
    name: "PortStatus",
    fields: &[
        int32_always(1, "port"),
        string_always(2, "protocol"),
        string_ptr(3, "error"),
    ],
};

/// `corev1.ConfigMap`.
pub static CONFIG_MAP: Message = Message {
    name: "ConfigMap",
    fields: &[
        message(1, "metadata", &OBJECT_META),
        boolean_ptr(4, "immutable"),
        string_map(2, "data"),
        bytes_map(3, "binaryData"),
    ],
};

/// `corev1.Secret`.
pub static SECRET: Message = Message {
    name: "Secret",
    fields: &[
        message(1, "metadata", &OBJECT_META),
        boolean_ptr(5, "immutable"),
        bytes_map(2, "data"),
        string_map(4, "stringData"),
        string(3, "type"),
    ],
};

/// `corev1.Namespace`.
pub static NAMESPACE: Message = Message {
    name: "Namespace",
    fields: &[
        message(1, "metadata", &OBJECT_META),
        message(2, "spec", &NAMESPACE_SPEC),
        message(3, "status", &NAMESPACE_STATUS),
    ],
};

/// `corev1.NamespaceSpec`.
pub static NAMESPACE_SPEC: Message = Message {
    name: "NamespaceSpec",
    fields: &[strings(1, "finalizers")],
};

/// `corev1.NamespaceStatus`.
pub static NAMESPACE_STATUS: Message = Message {
    name: "NamespaceStatus",
    fields: &[
        string(1, "phase"),
        messages(2, "conditions", &NAMESPACE_CONDITION),
    ],
};

/// `corev1.NamespaceCondition`.
pub static NAMESPACE_CONDITION: Message = Message {
    name: "NamespaceCondition",
    fields: &[
        string_always(1, "type"),
        string_always(2, "status"),
        time(4, "lastTransitionTime"),
        string(5, "reason"),
        string(6, "message"),
    ],
};

/// `corev1.ServiceAccount`.
pub static SERVICE_ACCOUNT: Message = Message {
    name: "ServiceAccount",
    fields: &[
        message(1, "metadata", &OBJECT_META),
        messages(2, "secrets", &OBJECT_REFERENCE),
        messages(3, "imagePullSecrets", &LOCAL_OBJECT_REFERENCE),
        boolean_ptr(4, "automountServiceAccountToken"),
    ],
};

/// `corev1.ObjectReference`.
pub static OBJECT_REFERENCE: Message = Message {
    name: "ObjectReference",
    fields: &[
        string(1, "kind"),
        string(2, "namespace"),
        string(3, "name"),
        string(4, "uid"),
        string(5, "apiVersion"),
        string(6, "resourceVersion"),
        string(7, "fieldPath"),
    ],
};

/// `corev1.LocalObjectReference`.
pub static LOCAL_OBJECT_REFERENCE: Message = Message {
    name: "LocalObjectReference",
    fields: &[string(1, "name")],
};

/// `corev1.Pod`.
pub static POD: Message = Message {
    name: "Pod",
    fields: &[
        message(1, "metadata", &OBJECT_META),
        message(2, "spec", &POD_SPEC),
        message(3, "status", &POD_STATUS),
    ],
};

/// `corev1.PodTemplateSpec`.
pub static POD_TEMPLATE_SPEC: Message = Message {
    name: "PodTemplateSpec",
    fields: &[
        message(1, "metadata", &OBJECT_META),
        message(2, "spec", &POD_SPEC),
    ],
};

/// `corev1.PodSpec`.
pub static POD_SPEC: Message = Message {
    name: "PodSpec",
    fields: &[
        unsupported(1, "volumes"),
        messages(20, "initContainers", &CONTAINER),
        messages(2, "containers", &CONTAINER),
        unsupported(34, "ephemeralContainers"),
        string(3, "restartPolicy"),
        int64_ptr(4, "terminationGracePeriodSeconds"),
        int64_ptr(5, "activeDeadlineSeconds"),
        string(6, "dnsPolicy"),
        string_map(7, "nodeSelector"),
        string(8, "serviceAccountName"),
        string(9, "serviceAccount"),
        boolean_ptr(21, "automountServiceAccountToken"),
        string(10, "nodeName"),
        boolean(11, "hostNetwork"),
        boolean(12, "hostPID"),
        boolean(13, "hostIPC"),
        boolean_ptr(27, "shareProcessNamespace"),
        unsupported(14, "securityContext"),
        messages(15, "imagePullSecrets", &LOCAL_OBJECT_REFERENCE),
        string(16, "hostname"),
        string(17, "subdomain"),
        unsupported(18, "affinity"),
        string(19, "schedulerName"),
        messages(22, "tolerations", &TOLERATION),
        messages(23, "hostAliases", &HOST_ALIAS),
        string(24, "priorityClassName"),
        int32_ptr(25, "priority"),
        unsupported(26, "dnsConfig"),
        messages(28, "readinessGates", &POD_READINESS_GATE),
        string_ptr(29, "runtimeClassName"),
        boolean_ptr(30, "enableServiceLinks"),
        string_ptr(31, "preemptionPolicy"),
        quantity_map(32, "overhead"),
        unsupported(33, "topologySpreadConstraints"),
        boolean_ptr(35, "setHostnameAsFQDN"),
        message_ptr(36, "os", &POD_OS),
        boolean_ptr(37, "hostUsers"),
        messages(38, "schedulingGates", &POD_SCHEDULING_GATE),
        unsupported(39, "resourceClaims"),
        message_ptr(40, "resources", &RESOURCE_REQUIREMENTS),
        string_ptr(41, "hostnameOverride"),
        unsupported(42, "workloadRef"),
    ],
};

/// `corev1.Container`.
pub static CONTAINER: Message = Message {
    name: "Container",
    fields: &[
        string_always(1, "name"),
        string(2, "image"),
        strings(3, "command"),
        strings(4, "args"),
        string(5, "workingDir"),
        messages(6, "ports", &CONTAINER_PORT),
        messages(19, "envFrom", &ENV_FROM_SOURCE),
        messages(7, "env", &ENV_VAR),
        message(8, "resources", &RESOURCE_REQUIREMENTS),
        messages(23, "resizePolicy", &CONTAINER_RESIZE_POLICY),
        string_ptr(24, "restartPolicy"),
        unsupported(25, "restartPolicyRules"),
        messages(9, "volumeMounts", &VOLUME_MOUNT),
        messages(21, "volumeDevices", &VOLUME_DEVICE),
        unsupported(10, "livenessProbe"),
        unsupported(11, "readinessProbe"),
        unsupported(22, "startupProbe"),
        unsupported(12, "lifecycle"),
        string(13, "terminationMessagePath"),
        string(20, "terminationMessagePolicy"),
        string(14, "imagePullPolicy"),
        message_ptr(15, "securityContext", &SECURITY_CONTEXT),
        boolean(16, "stdin"),
        boolean(17, "stdinOnce"),
        boolean(18, "tty"),
    ],
};

/// `corev1.ContainerPort`.
pub static CONTAINER_PORT: Message = Message {
    name: "ContainerPort",
    fields: &[
        string(1, "name"),
        int32(2, "hostPort"),
        int32_always(3, "containerPort"),
        string(4, "protocol"),
        string(5, "hostIP"),
    ],
};

/// `corev1.EnvVar`.
pub static ENV_VAR: Message = Message {
    name: "EnvVar",
    fields: &[
        string_always(1, "name"),
        string(2, "value"),
        message_ptr(3, "valueFrom", &ENV_VAR_SOURCE),
    ],
};

/// `corev1.EnvVarSource`.
pub static ENV_VAR_SOURCE: Message = Message {
    name: "EnvVarSource",
    fields: &[
        message_ptr(1, "fieldRef", &OBJECT_FIELD_SELECTOR),
        message_ptr(2, "resourceFieldRef", &RESOURCE_FIELD_SELECTOR),
        message_ptr(3, "configMapKeyRef", &KEY_SELECTOR),
        message_ptr(4, "secretKeyRef", &KEY_SELECTOR),
        unsupported(5, "fileKeyRef"),
    ],
};

/// `corev1.ObjectFieldSelector`.
pub static OBJECT_FIELD_SELECTOR: Message = Message {
    name: "ObjectFieldSelector",
    fields: &[string(1, "apiVersion"), string_always(2, "fieldPath")],
};

/// `corev1.ResourceFieldSelector`.
pub static RESOURCE_FIELD_SELECTOR: Message = Message {
    name: "ResourceFieldSelector",
    fields: &[
        string(1, "containerName"),
        string_always(2, "resource"),
        quantity(3, "divisor"),
    ],
};

/// `corev1.ConfigMapKeySelector` and `corev1.SecretKeySelector`, which share one layout.
pub static KEY_SELECTOR: Message = Message {
    name: "KeySelector",
    fields: &[
        inline(1, &LOCAL_OBJECT_REFERENCE),
        string_always(2, "key"),
        boolean_ptr(3, "optional"),
    ],
};

/// `corev1.EnvFromSource`.
pub static ENV_FROM_SOURCE: Message = Message {
    name: "EnvFromSource",
    fields: &[
        string(1, "prefix"),
        message_ptr(2, "configMapRef", &ENV_SOURCE),
        message_ptr(3, "secretRef", &ENV_SOURCE),
    ],
};

/// `corev1.ConfigMapEnvSource` and `corev1.SecretEnvSource`, which share one layout.
pub static ENV_SOURCE: Message = Message {
    name: "EnvSource",
    fields: &[
        inline(1, &LOCAL_OBJECT_REFERENCE),
        boolean_ptr(2, "optional"),
    ],
};

/// `corev1.ResourceRequirements`.
pub static RESOURCE_REQUIREMENTS: Message = Message {
    name: "ResourceRequirements",
    fields: &[
        quantity_map(1, "limits"),
        quantity_map(2, "requests"),
        messages(3, "claims", &RESOURCE_CLAIM),
    ],
};

/// `corev1.ResourceClaim`.
pub static RESOURCE_CLAIM: Message = Message {
    name: "ResourceClaim",
    fields: &[string_always(1, "name"), string(2, "request")],
};

/// `corev1.ContainerResizePolicy`.
pub static CONTAINER_RESIZE_POLICY: Message = Message {
    name: "ContainerResizePolicy",
    fields: &[
        string_always(1, "resourceName"),
        string_always(2, "restartPolicy"),
    ],
};

/// `corev1.VolumeMount`.
pub static VOLUME_MOUNT: Message = Message {
    name: "VolumeMount",
    fields: &[
        string_always(1, "name"),
        boolean(2, "readOnly"),
        string_ptr(7, "recursiveReadOnly"),
        string_always(3, "mountPath"),
        string(4, "subPath"),
        string_ptr(5, "mountPropagation"),
        string(6, "subPathExpr"),
    ],
};

/// `corev1.VolumeDevice`.
pub static VOLUME_DEVICE: Message = Message {
    name: "VolumeDevice",
    fields: &[string_always(1, "name"), string_always(2, "devicePath")],
};

/// `corev1.SecurityContext`.
pub static SECURITY_CONTEXT: Message = Message {
    name: "SecurityContext",
    fields: &[
        message_ptr(1, "capabilities", &CAPABILITIES),
        boolean_ptr(2, "privileged"),
        unsupported(3, "seLinuxOptions"),
        unsupported(10, "windowsOptions"),
        int64_ptr(4, "runAsUser"),
        int64_ptr(8, "runAsGroup"),
        boolean_ptr(5, "runAsNonRoot"),
        boolean_ptr(6, "readOnlyRootFilesystem"),
        boolean_ptr(7, "allowPrivilegeEscalation"),
        string_ptr(9, "procMount"),
        message_ptr(11, "seccompProfile", &PROFILE),
        message_ptr(12, "appArmorProfile", &PROFILE),
        unsupported(13, "ulimits"),
    ],
};

/// `corev1.Capabilities`.
pub static CAPABILITIES: Message = Message {
    name: "Capabilities",
    fields: &[strings(1, "add"), strings(2, "drop")],
};

/// `corev1.SeccompProfile` and `corev1.AppArmorProfile`, which share one layout.
pub static PROFILE: Message = Message {
    name: "Profile",
    fields: &[string_always(1, "type"), string_ptr(2, "localhostProfile")],
};

/// `corev1.Toleration`.
pub static TOLERATION: Message = Message {
    name: "Toleration",
    fields: &[
        string(1, "key"),
        string(2, "operator"),
        string(3, "value"),
        string(4, "effect"),
        int64_ptr(5, "tolerationSeconds"),
    ],
};

/// `corev1.HostAlias`.
pub static HOST_ALIAS: Message = Message {
    name: "HostAlias",
    fields: &[string_always(1, "ip"), strings(2, "hostnames")],
};

/// `corev1.PodReadinessGate`.
pub static POD_READINESS_GATE: Message = Message {
    name: "PodReadinessGate",
    fields: &[string_always(1, "conditionType")],
};

/// `corev1.PodSchedulingGate`.
pub static POD_SCHEDULING_GATE: Message = Message {
    name: "PodSchedulingGate",
    fields: &[string_always(1, "name")],
};

/// `corev1.PodOS`.
pub static POD_OS: Message = Message {
    name: "PodOS",
    fields: &[string_always(1, "name")],
};

/// `corev1.PodStatus`, as far as clients write it.
pub static POD_STATUS: Message = Message {
    name: "PodStatus",
    fields: &[
        int64(17, "observedGeneration"),
        string(1, "phase"),
        unsupported(2, "conditions"),
        string(3, "message"),
        string(4, "reason"),
        string(11, "nominatedNodeName"),
        string(5, "hostIP"),
        messages(16, "hostIPs", &IP_ENTRY),
        string(6, "podIP"),
        messages(12, "podIPs", &IP_ENTRY),
        time_ptr(7, "startTime"),
        unsupported(10, "initContainerStatuses"),
        unsupported(8, "containerStatuses"),
        string(9, "qosClass"),
        unsupported(13, "ephemeralContainerStatuses"),
        string(14, "resize"),
        unsupported(15, "resourceClaimStatuses"),
        unsupported(18, "extendedResourceClaimStatus"),
        quantity_map(19, "allocatedResources"),
        message_ptr(20, "resources", &RESOURCE_REQUIREMENTS),
    ],
};

/// `corev1.PodIP` and `corev1.HostIP`, which share one layout.
pub static IP_ENTRY: Message = Message {
    name: "PodIP",
    fields: &[string_always(1, "ip")],
};
