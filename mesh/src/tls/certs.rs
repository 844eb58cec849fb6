//! A cluster CA and node certificates (what `mesh-node certs init` writes).

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::TlsError;

/// A cluster certificate authority: signs the certificate of every node.
pub struct ClusterCa {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A node's certificate and private key, PEM encoded.
#[derive(Clone, Debug)]
pub struct NodeCredentials {
    /// The node certificate; its DNS subject alternative name is the node name.
    pub cert_pem: String,
    /// The private key.
    pub key_pem: String,
}

impl ClusterCa {
    /// A new CA for `cluster`.
    pub fn generate(cluster: &str) -> Result<Self, TlsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{cluster} cluster CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA from its certificate and key PEM text.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, TlsError> {
        let key = KeyPair::from_pem(key_pem)?;
        Ok(Self {
            cert_pem: cert_pem.to_string(),
            issuer: Issuer::from_ca_cert_pem(cert_pem, key)?,
        })
    }

    /// The CA certificate in PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key in PEM.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Issues a certificate for node `name` (client and server use).
    pub fn issue(&self, name: &str) -> Result<NodeCredentials, TlsError> {
        let key = KeyPair::generate()?;
        let cert = node_params(name)?.signed_by(&key, &self.issuer)?;
        Ok(NodeCredentials {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

impl NodeCredentials {
    /// A self-signed certificate for `name` (insecure dev mode).
    pub fn self_signed(name: &str) -> Result<Self, TlsError> {
        let key = KeyPair::generate()?;
        let cert = node_params(name)?.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn node_params(name: &str) -> Result<CertificateParams, TlsError> {
    let mut params = CertificateParams::new(vec![name.to_string()])?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    Ok(params)
}

/// Writes a new CA (`ca.pem`, `ca.key`) and `<name>.pem` / `<name>.key` for each
/// node into `dir`, creating it. An existing CA in `dir` is reused, so nodes can
/// be added later.
pub fn write_cluster_dir(dir: &Path, cluster: &str, nodes: &[String]) -> Result<(), TlsError> {
    let write = |file: &str, text: &str| {
        let path = dir.join(file);
        std::fs::write(&path, text).map_err(|error| TlsError::Write {
            path: path.display().to_string(),
            error,
        })
    };
    std::fs::create_dir_all(dir).map_err(|error| TlsError::Write {
        path: dir.display().to_string(),
        error,
    })?;
    let (ca_pem, ca_key) = (dir.join("ca.pem"), dir.join("ca.key"));
    let ca = if ca_pem.exists() && ca_key.exists() {
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|error| TlsError::Read {
                path: path.display().to_string(),
                error,
            })
        };
        ClusterCa::from_pem(&read(&ca_pem)?, &read(&ca_key)?)?
    } else {
        let ca = ClusterCa::generate(cluster)?;
        write("ca.pem", ca.cert_pem())?;
        write("ca.key", &ca.key_pem())?;
        ca
    };
    for name in nodes {
        let creds = ca.issue(name)?;
        write(&format!("{name}.pem"), &creds.cert_pem)?;
        write(&format!("{name}.key"), &creds.key_pem)?;
    }
    Ok(())
}
