//! A throw-away certificate authority for the test apiserver: its serving certificate, client
//! certificates for any user and groups (so tests can mint limited users at any time), and the
//! service-account signing key.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

const CA_NAME: &str = "meshtest-ca";

pub struct Pki {
    issuer: Issuer<'static, KeyPair>,
    pub ca_pem: String,
}

/// A certificate and its private key, PEM-encoded.
pub struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
}

fn ca_params() -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    Ok(params)
}

impl Pki {
    pub fn generate() -> Result<Pki> {
        let key = KeyPair::generate()?;
        let params = ca_params()?;
        let ca_pem = params.self_signed(&key)?.pem();
        Ok(Pki { issuer: Issuer::new(params, key), ca_pem })
    }

    /// Writes `ca.crt` and `ca.key` so that another process can mint users later.
    pub fn save(&self, dir: &Path) -> Result<()> {
        fs::write(dir.join("ca.crt"), &self.ca_pem)?;
        write_private(&dir.join("ca.key"), &self.issuer.key().serialize_pem())
    }

    /// The authority of a cluster started by another process (`cargo xtask cluster up`).
    pub fn load(dir: &Path) -> Result<Pki> {
        let key_pem = fs::read_to_string(dir.join("ca.key")).context("cannot read ca.key of the test cluster")?;
        let ca_pem = fs::read_to_string(dir.join("ca.crt"))?;
        let key = KeyPair::from_pem(&key_pem)?;
        Ok(Pki { issuer: Issuer::new(ca_params()?, key), ca_pem })
    }

    /// The apiserver's serving certificate, valid for the loopback names.
    pub fn serving(&self) -> Result<Pair> {
        let mut params = CertificateParams::new(vec!["localhost".to_string()])?;
        params.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse()?));
        params.distinguished_name.push(DnType::CommonName, "kube-apiserver");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    /// A client certificate: the apiserver reads the user from the common name and the groups
    /// from the organisations.
    pub fn client(&self, user: &str, groups: &[&str]) -> Result<Pair> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, user);
        for group in groups {
            params.distinguished_name.push(DnType::OrganizationName, *group);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> Result<Pair> {
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Pair { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }
}

/// A new signing key for service-account tokens (ECDSA P-256, which the apiserver accepts), as
/// `(private, public)` PEM: the apiserver reads public keys only from a public-key PEM.
pub fn service_account_key() -> Result<(String, String)> {
    let key = KeyPair::generate()?;
    Ok((key.serialize_pem(), key.public_key_pem()))
}

pub fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    std::io::Write::write_all(&mut file, contents.as_bytes())?;
    Ok(())
}
