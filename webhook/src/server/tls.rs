//! The serving certificate: loaded from PEM, and reloaded from disk when cert-manager rotates
//! the files, by swapping an `Arc` that each new handshake picks up (open connections keep
//! theirs, so none is dropped); or generated with a throw-away CA where nobody issues one
//! (`svcplane up`, tests).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use thiserror::Error;

/// Why a certificate could not be loaded.
#[derive(Debug, Error)]
pub enum CertificateError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The PEM holds no certificate.
    #[error("no certificate found in {0}")]
    NoCertificate(String),
    /// The PEM holds no private key.
    #[error("no private key found in {0}")]
    NoKey(String),
    /// The PEM is corrupt.
    #[error("parsing {what}: {source}")]
    Pem {
        /// What was parsed.
        what: String,
        /// The parse error.
        source: std::io::Error,
    },
    /// rustls refused the key, or the key does not belong to the certificate.
    #[error("unusable certificate/key pair: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Where the serving certificate comes from.
#[derive(Clone, Debug)]
pub enum CertificateSource {
    /// PEM files (`tls.crt`, `tls.key` of a cert-manager Secret), watched for changes.
    Files {
        /// Certificate chain, leaf first.
        cert: PathBuf,
        /// Private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
        /// How often at most a handshake checks the files' modification times.
        poll_interval: Duration,
    },
    /// PEM held in memory (fixed for the server's life).
    Pem {
        /// Certificate chain, leaf first.
        cert: String,
        /// Private key.
        key: String,
    },
}

/// Parses a PEM chain and key into a rustls `CertifiedKey`, checking that they match.
pub fn certified_key_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
    origin: &str,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, CertificateError> {
    let certs = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| CertificateError::Pem {
            what: format!("certificate of {origin}"),
            source,
        })?;
    if certs.is_empty() {
        return Err(CertificateError::NoCertificate(origin.to_owned()));
    }
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|source| CertificateError::Pem {
            what: format!("key of {origin}"),
            source,
        })?
        .ok_or_else(|| CertificateError::NoKey(origin.to_owned()))?;
    Ok(CertifiedKey::from_der(certs, key, provider)?)
}

type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

struct FileWatch {
    cert: PathBuf,
    key: PathBuf,
    poll_interval: Duration,
    // (cert stamp, key stamp) of the pair currently served, and when the files were last looked at.
    state: Mutex<(Stamp, Stamp, Instant)>,
}

/// A `ResolvesServerCert` that serves the current pair and, for file sources, reloads it when
/// the files change. A half-written rotation (new certificate, old key) is skipped until the
/// pair matches again.
pub struct ReloadingCertResolver {
    current: RwLock<Arc<CertifiedKey>>,
    watch: Option<FileWatch>,
    provider: Arc<CryptoProvider>,
    reloads: std::sync::atomic::AtomicU64,
}

impl fmt::Debug for ReloadingCertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingCertResolver")
            .field("files", &self.watch.as_ref().map(|w| (&w.cert, &w.key)))
            .finish()
    }
}

impl ReloadingCertResolver {
    /// Loads the pair from `source`; fails if it is unusable now.
    pub fn new(
        source: &CertificateSource,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, CertificateError> {
        let (key, watch) = match source {
            CertificateSource::Pem { cert, key } => (
                certified_key_from_pem(
                    cert.as_bytes(),
                    key.as_bytes(),
                    "in-memory PEM",
                    &provider,
                )?,
                None,
            ),
            CertificateSource::Files {
                cert,
                key,
                poll_interval,
            } => {
                let stamps = (stamp(cert), stamp(key));
                let loaded = load_files(cert, key, &provider)?;
                (
                    loaded,
                    Some(FileWatch {
                        cert: cert.clone(),
                        key: key.clone(),
                        poll_interval: *poll_interval,
                        state: Mutex::new((stamps.0, stamps.1, Instant::now())),
                    }),
                )
            }
        };
        Ok(ReloadingCertResolver {
            current: RwLock::new(Arc::new(key)),
            watch,
            provider,
            reloads: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// How many times a changed pair was loaded.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Checks the files now (regardless of the poll interval); true if a new pair is served.
    pub fn reload_if_changed(&self) -> bool {
        self.check(true)
    }

    fn check(&self, force: bool) -> bool {
        let Some(watch) = &self.watch else {
            return false;
        };
        let mut state = watch.state.lock().unwrap_or_else(|p| p.into_inner());
        if !force && state.2.elapsed() < watch.poll_interval {
            return false;
        }
        state.2 = Instant::now();
        let stamps = (stamp(&watch.cert), stamp(&watch.key));
        if stamps.0 == state.0 && stamps.1 == state.1 {
            return false;
        }
        match load_files(&watch.cert, &watch.key, &self.provider) {
            Ok(key) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(key);
                state.0 = stamps.0;
                state.1 = stamps.1;
                self.reloads
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(cert = %watch.cert.display(), "serving certificate reloaded");
                true
            }
            Err(e) => {
                // Keep serving the old pair; the stamps stay old so the next look retries.
                tracing::warn!(error = %e, "certificate files changed but cannot be loaded yet");
                false
            }
        }
    }
}

fn load_files(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, CertificateError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| CertificateError::Read {
            path: path.to_owned(),
            source,
        })
    };
    certified_key_from_pem(
        &read(cert)?,
        &read(key)?,
        &cert.display().to_string(),
        provider,
    )
}

impl ResolvesServerCert for ReloadingCertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.check(false);
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

/// The rustls server configuration: TLS 1.2 and 1.3, ALPN h2 and http/1.1, `resolver`'s pair.
pub fn server_config(
    resolver: Arc<ReloadingCertResolver>,
    provider: Arc<CryptoProvider>,
) -> Result<rustls::ServerConfig, rustls::Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// A CA and a leaf for `names` (IP addresses or DNS names), PEM: (ca, leaf cert, leaf key).
pub fn generate_certificates(names: &[String]) -> Result<(String, String, String), rcgen::Error> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "svcplane-webhook-ca");
    let issuer = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let leaf_key = KeyPair::generate()?;
    let leaf = CertificateParams::new(names.to_vec())?.signed_by(&leaf_key, &issuer)?;
    Ok((issuer.pem(), leaf.pem(), leaf_key.serialize_pem()))
}
