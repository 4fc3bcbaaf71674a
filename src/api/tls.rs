//! The lab's credentials: a CA of its own, a server certificate for
//! 127.0.0.1 signed by it, and a bearer token. Made anew by each daemon,
//! so a kubeconfig never outlives its lab.

use std::io::Read;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub struct Credentials {
    /// The CA certificate, PEM: what the kubeconfig trusts.
    pub ca_pem: String,
    pub server: rustls::ServerConfig,
    pub token: String,
}

/// Make the CA, the server certificate and the token for `lab`.
pub fn make(lab: &str) -> Result<Credentials, String> {
    let err = |what: &str| {
        let what = what.to_string();
        move |e: rcgen::Error| format!("{what}: {e}")
    };
    let ca_key = KeyPair::generate().map_err(err("generate the CA key"))?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err("CA parameters"))?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(DnType::CommonName, format!("podlab-{lab}-ca"));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).map_err(err("sign the CA"))?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate().map_err(err("generate the server key"))?;
    // A SAN, not the CN: Go's TLS refuses a certificate that names its
    // host only in the Common Name.
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .map_err(err("server certificate parameters"))?;
    leaf.distinguished_name
        .push(DnType::CommonName, format!("podlab-{lab}-apiserver"));
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let leaf_cert = leaf
        .signed_by(&key, &issuer)
        .map_err(err("sign the server certificate"))?;

    let chain = vec![
        CertificateDer::from(leaf_cert.der().to_vec()),
        CertificateDer::from(ca_cert.der().to_vec()),
    ];
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| format!("TLS certificate: {e}"))?;
    // HTTP/1.1 only: kubectl's REST calls and its WebSocket exec upgrade
    // both work over it, and an upgrade needs HTTP/1.1 anyway.
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Credentials {
        ca_pem: ca_cert.pem(),
        server,
        token: token()?,
    })
}

/// 32 random bytes from the kernel, as hex.
fn token() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("read /dev/urandom for the API token: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether an `Authorization` header carries `token`, compared in
/// constant time so the comparison does not leak how much matched.
pub fn authorized(header: Option<&str>, token: &str) -> bool {
    let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The kubeconfig of a lab's API, as `kind get kubeconfig` prints one:
/// one cluster, one user, one context, named `podlab-<lab>`.
pub fn kubeconfig(lab: &str, port: u16, ca_pem: &str, token: &str) -> String {
    let ca = data_encoding::BASE64.encode(ca_pem.as_bytes());
    let name = format!("podlab-{lab}");
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {name}
  cluster:
    server: https://127.0.0.1:{port}
    certificate-authority-data: {ca}
contexts:
- name: {name}
  context:
    cluster: {name}
    user: {name}
    namespace: default
current-context: {name}
users:
- name: {name}
  user:
    token: {token}
preferences: {{}}
"
    )
}
