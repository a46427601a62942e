//! The certificates and keys of a throwaway control plane: one CA that signs kube-apiserver's
//! serving certificate and the admin's client certificate, and the service-account signing key.

use std::net::Ipv4Addr;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use super::RealClusterError;

/// PEM files for kube-apiserver and its admin client.
pub(crate) struct Pki {
    pub(crate) ca_cert: String,
    pub(crate) serving_cert: String,
    pub(crate) serving_key: String,
    pub(crate) admin_cert: String,
    pub(crate) admin_key: String,
    /// PKCS#8 private key (`--service-account-signing-key-file`).
    pub(crate) service_account_key: String,
    /// Its public key (`--service-account-key-file`).
    pub(crate) service_account_public_key: String,
}

impl Pki {
    /// Generates everything. `kubernetes_service_ip` (the first address of the Service range, which
    /// the `kubernetes` Service gets) goes into the serving certificate, as kube-apiserver's own
    /// self-signed one would have it.
    pub(crate) fn generate(
        kubernetes_service_ip: Option<Ipv4Addr>,
    ) -> Result<Self, RealClusterError> {
        Self::try_generate(kubernetes_service_ip)
            .map_err(|e| RealClusterError::Certificates(e.to_string()))
    }

    fn try_generate(kubernetes_service_ip: Option<Ipv4Addr>) -> Result<Self, rcgen::Error> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "svcplane-realk8s-ca");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

        let mut names: Vec<String> = [
            "localhost",
            "127.0.0.1",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ]
        .map(String::from)
        .into();
        names.extend(kubernetes_service_ip.map(|ip| ip.to_string()));
        let mut serving = CertificateParams::new(names)?;
        serving
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let serving_key = KeyPair::generate()?;
        let serving_cert = serving.signed_by(&serving_key, &ca)?;

        // kube-apiserver's client-certificate authenticator: CN is the user, O the groups.
        let mut admin = CertificateParams::new(Vec::<String>::new())?;
        admin.distinguished_name.push(DnType::CommonName, "admin");
        admin
            .distinguished_name
            .push(DnType::OrganizationName, "system:masters");
        admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let admin_key = KeyPair::generate()?;
        let admin_cert = admin.signed_by(&admin_key, &ca)?;

        let service_account = KeyPair::generate()?;
        Ok(Self {
            ca_cert: ca.pem(),
            serving_cert: serving_cert.pem(),
            serving_key: serving_key.serialize_pem(),
            admin_cert: admin_cert.pem(),
            admin_key: admin_key.serialize_pem(),
            service_account_key: service_account.serialize_pem(),
            service_account_public_key: service_account.public_key_pem(),
        })
    }
}
