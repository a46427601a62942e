//! Spec §5.4 and the apimachinery name tests, on the pure checks.

use webhook::names::{
    is_dns1035_label, is_dns1123_label, is_dns1123_subdomain, is_qualified_name,
    is_valid_label_value, is_valid_port_name,
};

const LABEL_REGEX_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const ONLY_ALNUM: &str = "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)";
const ONE_LETTER: &str = "must contain at least one letter (a-z)";
const HYPHEN_ENDS: &str = "must not begin or end with a hyphen";

#[test]
fn spec_5_4_table() {
    let a16 = "a".repeat(16);
    let a64 = "a".repeat(64);
    let rows: Vec<(&str, Vec<&str>, Vec<&str>)> = vec![
        ("http", vec![], vec![]),
        ("123-abc", vec![], vec![]),
        ("123", vec![], vec![ONE_LETTER]),
        ("123_abc", vec![LABEL_REGEX_MSG], vec![ONLY_ALNUM]),
        ("-web", vec![LABEL_REGEX_MSG], vec![HYPHEN_ENDS]),
        ("web-", vec![LABEL_REGEX_MSG], vec![HYPHEN_ENDS]),
        ("a--b", vec![], vec!["must not contain consecutive hyphens"]),
        ("Web", vec![LABEL_REGEX_MSG], vec![ONLY_ALNUM]),
        ("web.1", vec!["must not contain dots"], vec![ONLY_ALNUM]),
        (&a16, vec![], vec!["must be no more than 15 characters"]),
        (
            &a64,
            vec!["must be no more than 63 characters"],
            vec!["must be no more than 15 characters"],
        ),
        ("", vec![LABEL_REGEX_MSG], vec![ONLY_ALNUM, ONE_LETTER]),
    ];
    for (input, label, iana) in rows {
        assert_eq!(is_dns1123_label(input), label, "IsDNS1123Label({input:?})");
        assert_eq!(
            is_valid_port_name(input),
            iana,
            "IsValidPortName({input:?})"
        );
    }
}

#[test]
fn apimachinery_dns1123_label_cases() {
    let a63 = "a".repeat(63);
    for ok in [
        "a",
        "ab",
        "abc",
        "a1",
        "a-1",
        "a--1--2--b",
        "0",
        "01",
        "012",
        "1a",
        "1-a",
        "1--a--b--2",
        &a63,
    ] {
        assert!(is_dns1123_label(ok).is_empty(), "{ok}");
    }
    let a64 = "a".repeat(64);
    for bad in [
        "", "A", "ABC", "aBc", "A1", "A-1", "1-A", "-", "a-", "-a", "1-", "-1", "_", "a_", "_a",
        "a_b", "1_", "_1", "1_2", ".", "a.", ".a", "a.b", "1.", ".1", "1.2", " ", "a ", " a",
        "a b", "1 ", " 1", "1 2", &a64,
    ] {
        assert!(!is_dns1123_label(bad).is_empty(), "{bad:?}");
    }
}

#[test]
fn apimachinery_port_name_cases() {
    for ok in [
        "telnet",
        "re-mail-ck",
        "pop3",
        "a",
        "a-1",
        "1-a",
        "a-1-b-2-c",
        "1-a-2-b-3",
    ] {
        assert!(is_valid_port_name(ok).is_empty(), "{ok}");
    }
    for bad in [
        "longerthan15characters",
        "",
        "aaaaaaaaaaaaaaaa",
        "12345",
        "1-2-3-4",
        "-begin",
        "end-",
        "two--hyphens",
        "whois++",
    ] {
        assert!(!is_valid_port_name(bad).is_empty(), "{bad:?}");
    }
}

#[test]
fn dns1035_and_subdomain() {
    assert!(is_dns1035_label("web-1").is_empty());
    assert_eq!(
        is_dns1035_label("1web"),
        vec![
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
        ]
    );
    assert!(is_dns1123_subdomain("db.example.com").is_empty());
    assert_eq!(
        is_dns1123_subdomain(&"a".repeat(254))[0],
        "must be no more than 253 characters"
    );
}

#[test]
fn qualified_names_and_label_values() {
    assert!(is_qualified_name("example.com/MyName").is_empty());
    assert!(is_qualified_name("kubernetes.io/h2c").is_empty());
    assert_eq!(
        is_qualified_name("-bad"),
        vec![
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        ]
    );
    assert_eq!(
        is_qualified_name("/x"),
        vec!["prefix part must be non-empty"]
    );
    assert_eq!(is_qualified_name("a/b/c").len(), 1);
    assert!(is_valid_label_value("").is_empty());
    assert_eq!(
        is_valid_label_value("-x"),
        vec![
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        ]
    );
}
