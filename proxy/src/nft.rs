//! nftables statements as plain data, rendered in the exact text knftables writes for `nft -f -`
//! (`add rule ip kube-proxy …`), and [`TableState`], a small model of one table that applies
//! transactions the way the kernel would, for tests and for dumping a desired ruleset.

use std::collections::BTreeMap;
use std::fmt;

/// The one table kube-proxy owns; nothing else is written into it.
pub const TABLE: &str = "kube-proxy";

/// An IP family: one proxier, one table (`ip kube-proxy` or `ip6 kube-proxy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpFamily {
    /// IPv4: table family `ip`.
    V4,
    /// IPv6: table family `ip6`.
    V6,
}

impl IpFamily {
    /// The nftables family (and the payload keyword): `ip` or `ip6`.
    pub fn nft(self) -> &'static str {
        match self {
            IpFamily::V4 => "ip",
            IpFamily::V6 => "ip6",
        }
    }

    /// The address data type: `ipv4_addr` or `ipv6_addr`.
    pub fn addr_type(self) -> &'static str {
        match self {
            IpFamily::V4 => "ipv4_addr",
            IpFamily::V6 => "ipv6_addr",
        }
    }

    /// Whether `ip` is of this family.
    pub fn contains(self, ip: &std::net::IpAddr) -> bool {
        matches!(
            (self, ip),
            (IpFamily::V4, std::net::IpAddr::V4(_)) | (IpFamily::V6, std::net::IpAddr::V6(_))
        )
    }

    /// The EndpointSlice `addressType` of this family.
    pub fn address_type(self) -> &'static str {
        match self {
            IpFamily::V4 => "IPv4",
            IpFamily::V6 => "IPv6",
        }
    }
}

/// A base chain's hook binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseChainSpec {
    /// `filter` or `nat`.
    pub chain_type: &'static str,
    /// `prerouting`, `input`, `forward`, `output` or `postrouting`.
    pub hook: &'static str,
    /// The numeric priority (knftables writes named priorities as numbers).
    pub priority: i32,
}

/// A set's or map's declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerDecl {
    /// The `type` expression, e.g. `ipv4_addr . inet_proto . inet_service : verdict`.
    pub type_expr: String,
    /// Set flags, e.g. `dynamic`, `timeout`.
    pub flags: Vec<&'static str>,
    /// Element timeout in seconds.
    pub timeout_seconds: Option<u32>,
    /// The object comment.
    pub comment: Option<String>,
}

/// Whether a container is a set or a map (the keyword differs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ContainerKind {
    /// `set`.
    Set,
    /// `map`.
    Map,
}

impl ContainerKind {
    fn keyword(self) -> &'static str {
        match self {
            ContainerKind::Set => "set",
            ContainerKind::Map => "map",
        }
    }
}

/// One rule: its text and optional comment.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rule {
    /// The rule expression as nft reads it.
    pub text: String,
    /// The rule comment.
    pub comment: Option<String>,
}

impl Rule {
    /// A rule without a comment.
    pub fn new(text: impl Into<String>) -> Self {
        Rule {
            text: text.into(),
            comment: None,
        }
    }

    /// A rule with a comment.
    pub fn commented(text: impl Into<String>, comment: &str) -> Self {
        Rule {
            text: text.into(),
            comment: Some(comment.to_string()),
        }
    }
}

/// One element of a set or map.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Element {
    /// The set or map it belongs to.
    pub container: String,
    /// Set or map.
    pub kind: ContainerKind,
    /// The key's parts, joined with ` . `.
    pub key: Vec<String>,
    /// The map value (a verdict), none for sets.
    pub value: Option<String>,
    /// The element comment.
    pub comment: Option<String>,
}

impl Element {
    /// The key as nft prints it: parts joined with ` . `.
    pub fn key_text(&self) -> String {
        self.key.join(" . ")
    }
}

/// One statement of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    /// `add table` (with its comment).
    AddTable {
        /// The table comment.
        comment: String,
    },
    /// `delete table`.
    DeleteTable,
    /// `add chain`, a base chain when `base` is set.
    AddChain {
        /// The chain name.
        name: String,
        /// Hook binding of a base chain.
        base: Option<BaseChainSpec>,
        /// The chain comment.
        comment: Option<String>,
    },
    /// `flush chain`: removes its rules.
    FlushChain(String),
    /// `delete chain`.
    DeleteChain(String),
    /// `add rule`: appends to the chain.
    AddRule {
        /// The chain.
        chain: String,
        /// The rule.
        rule: Rule,
    },
    /// `add set` / `add map`.
    AddContainer {
        /// Set or map.
        kind: ContainerKind,
        /// Its name.
        name: String,
        /// Its declaration.
        decl: ContainerDecl,
    },
    /// `flush set` / `flush map`: removes every element.
    FlushContainer(ContainerKind, String),
    /// `delete set` / `delete map`.
    DeleteContainer(ContainerKind, String),
    /// `add element`.
    AddElement(Element),
    /// `delete element` (by key).
    DeleteElement(Element),
}

impl Statement {
    /// The statement as one line of `nft -f` input for table `kube-proxy` of `family`.
    pub fn render(&self, family: IpFamily) -> String {
        Rendered(self, family).to_string()
    }
}

struct Rendered<'a>(&'a Statement, IpFamily);

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fam = self.1.nft();
        match self.0 {
            Statement::AddTable { comment } => {
                write!(f, "add table {fam} {TABLE} {{ comment {comment:?} ; }}")
            }
            Statement::DeleteTable => write!(f, "delete table {fam} {TABLE}"),
            Statement::AddChain {
                name,
                base,
                comment,
            } => {
                write!(f, "add chain {fam} {TABLE} {name}")?;
                if base.is_some() || comment.is_some() {
                    write!(f, " {{")?;
                    if let Some(b) = base {
                        write!(
                            f,
                            " type {} hook {} priority {} ;",
                            b.chain_type, b.hook, b.priority
                        )?;
                    }
                    if let Some(c) = comment {
                        write!(f, " comment {c:?} ;")?;
                    }
                    write!(f, " }}")?;
                }
                Ok(())
            }
            Statement::FlushChain(name) => write!(f, "flush chain {fam} {TABLE} {name}"),
            Statement::DeleteChain(name) => write!(f, "delete chain {fam} {TABLE} {name}"),
            Statement::AddRule { chain, rule } => {
                write!(f, "add rule {fam} {TABLE} {chain} {}", rule.text)?;
                if let Some(c) = &rule.comment {
                    write!(f, " comment {c:?}")?;
                }
                Ok(())
            }
            Statement::AddContainer { kind, name, decl } => {
                write!(
                    f,
                    "add {} {fam} {TABLE} {name} {{ type {} ;",
                    kind.keyword(),
                    decl.type_expr
                )?;
                if !decl.flags.is_empty() {
                    write!(f, " flags {} ;", decl.flags.join(","))?;
                }
                if let Some(t) = decl.timeout_seconds {
                    write!(f, " timeout {t}s ;")?;
                }
                if let Some(c) = &decl.comment {
                    write!(f, " comment {c:?} ;")?;
                }
                write!(f, " }}")
            }
            Statement::FlushContainer(kind, name) => {
                write!(f, "flush {} {fam} {TABLE} {name}", kind.keyword())
            }
            Statement::DeleteContainer(kind, name) => {
                write!(f, "delete {} {fam} {TABLE} {name}", kind.keyword())
            }
            Statement::AddElement(e) => {
                write!(
                    f,
                    "add element {fam} {TABLE} {} {{ {}",
                    e.container,
                    e.key_text()
                )?;
                if let Some(c) = &e.comment {
                    write!(f, " comment {c:?}")?;
                }
                if let Some(v) = &e.value {
                    write!(f, " : {v}")?;
                }
                write!(f, " }}")
            }
            Statement::DeleteElement(e) => write!(
                f,
                "delete element {fam} {TABLE} {} {{ {} }}",
                e.container,
                e.key_text()
            ),
        }
    }
}

/// An ordered list of statements applied atomically by one `nft -f -`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// The table's family.
    pub family: IpFamily,
    /// The statements, in order.
    pub statements: Vec<Statement>,
}

impl Transaction {
    /// An empty transaction.
    pub fn new(family: IpFamily) -> Self {
        Transaction {
            family,
            statements: Vec::new(),
        }
    }

    /// Appends a statement.
    pub fn push(&mut self, statement: Statement) {
        self.statements.push(statement);
    }

    /// The number of operations (upstream's `NumOperations`).
    pub fn len(&self) -> usize {
        self.statements.len()
    }

    /// Whether it has no operations.
    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    /// The statements as `nft -f` input, one per line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for s in &self.statements {
            out.push_str(&s.render(self.family));
            out.push('\n');
        }
        out
    }
}

#[derive(Debug, Clone, Default)]
struct ChainState {
    base: Option<BaseChainSpec>,
    comment: Option<String>,
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct ContainerState {
    kind: ContainerKind,
    decl: ContainerDecl,
    elements: BTreeMap<String, Element>,
}

/// A model of the `kube-proxy` table: what the kernel would hold after the transactions applied
/// to it. Operations that nft would refuse are refused with nft's reason.
#[derive(Debug, Clone)]
pub struct TableState {
    family: IpFamily,
    comment: Option<String>,
    exists: bool,
    chains: BTreeMap<String, ChainState>,
    containers: BTreeMap<String, ContainerState>,
}

impl TableState {
    /// No table yet.
    pub fn new(family: IpFamily) -> Self {
        TableState {
            family,
            comment: None,
            exists: false,
            chains: BTreeMap::new(),
            containers: BTreeMap::new(),
        }
    }

    /// Applies `tx` atomically: on an error nothing changes, and the error names the statement.
    pub fn apply(&mut self, tx: &Transaction) -> Result<(), String> {
        let mut next = self.clone();
        for (i, s) in tx.statements.iter().enumerate() {
            next.apply_one(s)
                .map_err(|e| format!("statement {}: {}: {e}", i + 1, s.render(tx.family)))?;
        }
        *self = next;
        Ok(())
    }

    fn need_table(&self) -> Result<(), String> {
        if self.exists {
            Ok(())
        } else {
            Err("No such file or directory (no table)".into())
        }
    }

    fn referenced(&self, name: &str) -> bool {
        let jump = [format!("jump {name}"), format!("goto {name}")];
        let set = format!("@{name}");
        let word = |text: &str, pat: &str| {
            text.match_indices(pat).any(|(i, _)| {
                let end = i + pat.len();
                text[end..]
                    .chars()
                    .next()
                    .is_none_or(|c| c == ' ' || c == ',')
            })
        };
        self.chains.values().any(|c| {
            c.rules
                .iter()
                .any(|r| jump.iter().any(|j| word(&r.text, j)) || word(&r.text, &set))
        }) || self.containers.values().any(|c| {
            c.elements.values().any(|e| {
                e.value
                    .as_deref()
                    .is_some_and(|v| jump.iter().any(|j| word(v, j)))
            })
        })
    }

    fn apply_one(&mut self, s: &Statement) -> Result<(), String> {
        match s {
            Statement::AddTable { comment } => {
                self.exists = true;
                self.comment = Some(comment.clone());
            }
            Statement::DeleteTable => {
                self.need_table()?;
                *self = TableState::new(self.family);
            }
            Statement::AddChain {
                name,
                base,
                comment,
            } => {
                self.need_table()?;
                let chain = self.chains.entry(name.clone()).or_default();
                if chain.base.is_some() && base.is_some() && chain.base != *base {
                    return Err("Device or resource busy (base chain changed)".into());
                }
                if base.is_some() {
                    chain.base = base.clone();
                }
                if comment.is_some() {
                    chain.comment = comment.clone();
                }
            }
            Statement::FlushChain(name) => {
                self.need_table()?;
                self.chains
                    .get_mut(name)
                    .ok_or("No such file or directory")?
                    .rules
                    .clear();
            }
            Statement::DeleteChain(name) => {
                self.need_table()?;
                if !self.chains.contains_key(name) {
                    return Err("No such file or directory".into());
                }
                if self.referenced(name) {
                    return Err("Device or resource busy (chain is referenced)".into());
                }
                self.chains.remove(name);
            }
            Statement::AddRule { chain, rule } => {
                self.need_table()?;
                for target in targets(&rule.text) {
                    if !self.chains.contains_key(target) && !self.containers.contains_key(target) {
                        return Err(format!("No such file or directory ({target})"));
                    }
                }
                self.chains
                    .get_mut(chain)
                    .ok_or("No such file or directory")?
                    .rules
                    .push(rule.clone());
            }
            Statement::AddContainer { kind, name, decl } => {
                self.need_table()?;
                match self.containers.get(name) {
                    Some(existing)
                        if existing.decl.type_expr != decl.type_expr
                            || existing.decl.timeout_seconds != decl.timeout_seconds =>
                    {
                        return Err("File exists (declaration differs)".into());
                    }
                    Some(_) => {}
                    None => {
                        self.containers.insert(
                            name.clone(),
                            ContainerState {
                                kind: *kind,
                                decl: decl.clone(),
                                elements: BTreeMap::new(),
                            },
                        );
                    }
                }
            }
            Statement::FlushContainer(_, name) => {
                self.need_table()?;
                self.containers
                    .get_mut(name)
                    .ok_or("No such file or directory")?
                    .elements
                    .clear();
            }
            Statement::DeleteContainer(_, name) => {
                self.need_table()?;
                if !self.containers.contains_key(name) {
                    return Err("No such file or directory".into());
                }
                if self.referenced(name) {
                    return Err("Device or resource busy (set is referenced)".into());
                }
                self.containers.remove(name);
            }
            Statement::AddElement(e) => {
                self.need_table()?;
                if let Some(v) = &e.value {
                    for target in targets(v) {
                        if !self.chains.contains_key(target) {
                            return Err(format!("No such file or directory ({target})"));
                        }
                    }
                }
                let c = self
                    .containers
                    .get_mut(&e.container)
                    .ok_or("No such file or directory")?;
                match c.elements.get(&e.key_text()) {
                    // "add" of an existing element with another value is refused.
                    Some(old) if old.value != e.value => return Err("File exists".into()),
                    _ => {
                        c.elements.insert(e.key_text(), e.clone());
                    }
                }
            }
            Statement::DeleteElement(e) => {
                self.need_table()?;
                let c = self
                    .containers
                    .get_mut(&e.container)
                    .ok_or("No such file or directory")?;
                c.elements
                    .remove(&e.key_text())
                    .ok_or("No such file or directory (element)")?;
            }
        }
        Ok(())
    }

    /// Whether the table exists.
    pub fn exists(&self) -> bool {
        self.exists
    }

    /// Names of every chain.
    pub fn chain_names(&self) -> Vec<String> {
        self.chains.keys().cloned().collect()
    }

    /// Names of every set (not maps).
    pub fn set_names(&self) -> Vec<String> {
        self.containers
            .iter()
            .filter(|(_, c)| c.kind == ContainerKind::Set)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The rules of `chain`, if it exists.
    pub fn rules(&self, chain: &str) -> Option<&[Rule]> {
        self.chains.get(chain).map(|c| c.rules.as_slice())
    }

    /// The state as `add` statements (knftables' `Fake.Dump`), to compare order-insensitively.
    pub fn dump(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.exists {
            return out;
        }
        out.push(
            Statement::AddTable {
                comment: self.comment.clone().unwrap_or_default(),
            }
            .render(self.family),
        );
        for (name, c) in &self.containers {
            out.push(
                Statement::AddContainer {
                    kind: c.kind,
                    name: name.clone(),
                    decl: c.decl.clone(),
                }
                .render(self.family),
            );
        }
        for (name, c) in &self.chains {
            out.push(
                Statement::AddChain {
                    name: name.clone(),
                    base: c.base.clone(),
                    comment: c.comment.clone(),
                }
                .render(self.family),
            );
            for r in &c.rules {
                out.push(
                    Statement::AddRule {
                        chain: name.clone(),
                        rule: r.clone(),
                    }
                    .render(self.family),
                );
            }
        }
        for c in self.containers.values() {
            for e in c.elements.values() {
                out.push(Statement::AddElement(e.clone()).render(self.family));
            }
        }
        out
    }
}

/// The chains and sets a rule or verdict refers to (`jump X`, `goto X`, `@X`).
fn targets(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut words = text.split(' ').peekable();
    while let Some(w) = words.next() {
        if (w == "jump" || w == "goto")
            && let Some(t) = words.peek()
        {
            out.push(t.trim_end_matches(','));
        } else if let Some(set) = w.strip_prefix('@') {
            out.push(set);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_render_as_knftables_writes_them() {
        let fam = IpFamily::V4;
        assert_eq!(
            Statement::AddChain {
                name: "filter-input".into(),
                base: Some(BaseChainSpec {
                    chain_type: "filter",
                    hook: "input",
                    priority: 0
                }),
                comment: None
            }
            .render(fam),
            "add chain ip kube-proxy filter-input { type filter hook input priority 0 ; }"
        );
        assert_eq!(
            Statement::AddContainer {
                kind: ContainerKind::Set,
                name: "affinity-X".into(),
                decl: ContainerDecl {
                    type_expr: "ipv4_addr".into(),
                    flags: vec!["dynamic", "timeout"],
                    timeout_seconds: Some(10800),
                    comment: None
                }
            }
            .render(fam),
            "add set ip kube-proxy affinity-X { type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ; }"
        );
        let e = Element {
            container: "no-endpoint-services".into(),
            kind: ContainerKind::Map,
            key: vec!["172.30.0.46".into(), "tcp".into(), "80".into()],
            value: Some("goto reject-chain".into()),
            comment: Some("ns6/svc6:p80".into()),
        };
        assert_eq!(
            Statement::AddElement(e.clone()).render(fam),
            "add element ip kube-proxy no-endpoint-services { 172.30.0.46 . tcp . 80 comment \"ns6/svc6:p80\" : goto reject-chain }"
        );
        assert_eq!(
            Statement::DeleteElement(e).render(IpFamily::V6),
            "delete element ip6 kube-proxy no-endpoint-services { 172.30.0.46 . tcp . 80 }"
        );
    }

    #[test]
    fn the_table_model_refuses_what_nft_refuses() {
        let mut t = TableState::new(IpFamily::V4);
        let mut tx = Transaction::new(IpFamily::V4);
        tx.push(Statement::AddChain {
            name: "a".into(),
            base: None,
            comment: None,
        });
        assert!(t.apply(&tx).is_err(), "no table yet");
        let mut tx = Transaction::new(IpFamily::V4);
        tx.push(Statement::AddTable {
            comment: "c".into(),
        });
        tx.push(Statement::AddChain {
            name: "a".into(),
            base: None,
            comment: None,
        });
        tx.push(Statement::AddChain {
            name: "b".into(),
            base: None,
            comment: None,
        });
        tx.push(Statement::AddRule {
            chain: "a".into(),
            rule: Rule::new("goto b"),
        });
        t.apply(&tx).expect("valid");
        let mut del = Transaction::new(IpFamily::V4);
        del.push(Statement::DeleteChain("b".into()));
        let err = t.apply(&del).expect_err("b is referenced");
        assert!(err.contains("delete chain ip kube-proxy b"), "{err}");
        let mut tx = Transaction::new(IpFamily::V4);
        tx.push(Statement::FlushChain("a".into()));
        tx.push(Statement::DeleteChain("b".into()));
        t.apply(&tx).expect("no longer referenced");
        assert_eq!(t.chain_names(), vec!["a".to_string()]);
    }
}
