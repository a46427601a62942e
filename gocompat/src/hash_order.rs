//! The order upstream's controllers write ports in: sorted by the MD5 of a go-spew dump of each
//! port (`hashutil.DeepHashObject`: `spew.ConfigState{Indent: " ", SortKeys: true,
//! DisableMethods: true, SpewKeys: true}.Fprintf(hasher, "%#v", port)`).
//!
//! - EndpointSlice ports (`discovery.EndpointPort`): the EndpointSlice controller's
//!   `NewPortMapKey` sorts the list it then writes (`portsInOrder`, hex digests compared), and the
//!   mirroring controller's does the same with the ports it mirrors;
//! - Endpoints subset ports (`v1.EndpointPort`): `RepackSubsets` → `SortSubsets` →
//!   `portsByHash` (digests compared as bytes, the same order).
//!
//! `%#v` prints no pointer addresses (only `%+v` does), so the dump is a plain function of the
//! values: `(v1.EndpointPort){Name:(*string)http Protocol:(*v1.Protocol)TCP Port:(*int32)8080
//! AppProtocol:(*string)<nil>}` (both packages are named `v1`). The dumps and digests in the
//! tests are what `dump.ForHash` (k8s.io/apimachinery v0.34.10, go-spew v1.1.1, the versions
//! kube-controller-manager 1.34.10 is built with) prints for k8s.io/api v0.34.10's structs, and
//! `NewPortMapKey` sorts `[sctp, http]` to `[http, sctp]` as [`sort_by_dump_hash`] does.

/// The go-spew `%#v` dump of a `discovery.EndpointPort` (every field a pointer; `None` is nil).
/// Its Go package, `k8s.io/api/discovery/v1`, is named `v1`, and the dump says so.
pub fn discovery_port_dump(
    name: Option<&str>,
    protocol: Option<&str>,
    port: Option<i32>,
    app_protocol: Option<&str>,
) -> String {
    let or_nil = |v: Option<String>| v.unwrap_or_else(|| "<nil>".to_string());
    format!(
        "(v1.EndpointPort){{Name:(*string){} Protocol:(*v1.Protocol){} Port:(*int32){} AppProtocol:(*string){}}}",
        or_nil(name.map(str::to_string)),
        or_nil(protocol.map(str::to_string)),
        or_nil(port.map(|p| p.to_string())),
        or_nil(app_protocol.map(str::to_string)),
    )
}

/// The go-spew `%#v` dump of a core `v1.EndpointPort` (name, port and protocol are values, so
/// unset reads as empty; appProtocol is a pointer).
pub fn core_port_dump(name: &str, port: i32, protocol: &str, app_protocol: Option<&str>) -> String {
    format!(
        "(v1.EndpointPort){{Name:(string){name} Port:(int32){port} Protocol:(v1.Protocol){protocol} AppProtocol:(*string){}}}",
        app_protocol.unwrap_or("<nil>")
    )
}

/// Sorts `items` as upstream's hash order: by the MD5 of each one's dump.
pub fn sort_by_dump_hash<T>(items: &mut [T], dump: impl Fn(&T) -> String) {
    items.sort_by_cached_key(|item| md5(dump(item).as_bytes()));
}

/// MD5 (RFC 1321) of `data`: the digest Go's `crypto/md5` gives upstream's hashers.
pub fn md5(data: &[u8]) -> [u8; 16] {
    use md5::Digest as _;
    md5::Md5::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn md5_matches_the_rfc_1321_test_suite() {
        for (input, digest) in [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                "abcdefghijklmnopqrstuvwxyz",
                "c3fcd3d76192e4007dfb496cca67e13b",
            ),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ] {
            assert_eq!(hex(&md5(input.as_bytes())), digest, "{input:?}");
        }
    }

    /// Dumps and digests printed by `dump.ForHash` (k8s.io/apimachinery v0.34.10) itself for
    /// k8s.io/api v0.34.10's structs.
    #[test]
    fn dumps_and_digests_match_upstream() {
        let http = discovery_port_dump(Some("http"), Some("TCP"), Some(8080), None);
        assert_eq!(
            http,
            "(v1.EndpointPort){Name:(*string)http Protocol:(*v1.Protocol)TCP Port:(*int32)8080 AppProtocol:(*string)<nil>}"
        );
        assert_eq!(
            hex(&md5(http.as_bytes())),
            "3a668b0e210f1dc6528e2da191cd41d4"
        );
        let sctp = discovery_port_dump(Some("sctp"), Some("SCTP"), Some(7777), None);
        assert_eq!(
            hex(&md5(sctp.as_bytes())),
            "6033b92a0bb190c84939f6037148b8d4"
        );
        let unnamed = discovery_port_dump(Some(""), Some("TCP"), Some(8080), Some("https"));
        assert_eq!(
            hex(&md5(unnamed.as_bytes())),
            "17c0d593a023d16973cb265c33423ce9"
        );

        let core = core_port_dump("http", 8080, "TCP", None);
        assert_eq!(
            core,
            "(v1.EndpointPort){Name:(string)http Port:(int32)8080 Protocol:(v1.Protocol)TCP AppProtocol:(*string)<nil>}"
        );
        assert_eq!(
            hex(&md5(core.as_bytes())),
            "fc51ca7087ce52e70c38709727f8f0b6"
        );
        let udp = core_port_dump("", 53, "UDP", Some("https"));
        assert_eq!(
            hex(&md5(udp.as_bytes())),
            "af821e53ea531a7bc14f0830bbd513c8"
        );
    }

    #[test]
    fn ports_sort_as_new_port_map_key_sorts_them() {
        // upstream: [sctp, http, "" (https)] → ["" (17c0…), http (3a66…), sctp (6033…)].
        let mut ports = vec![
            (Some("sctp"), Some("SCTP"), Some(7777), None),
            (Some("http"), Some("TCP"), Some(8080), None),
            (Some(""), Some("TCP"), Some(8080), Some("https")),
        ];
        sort_by_dump_hash(&mut ports, |(name, protocol, port, app)| {
            discovery_port_dump(*name, *protocol, *port, *app)
        });
        let names: Vec<_> = ports.iter().map(|p| p.0.unwrap_or_default()).collect();
        assert_eq!(names, ["", "http", "sctp"]);
    }
}
