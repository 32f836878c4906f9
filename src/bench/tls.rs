//! The bench client's TLS: `https://` targets are trusted through `--ca-cert` (a PEM file of the
//! server's certificate or its CA); without it no certificate is trusted.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

/// A client configuration trusting the certificates in `ca_cert` (HTTP/1.1 over TLS 1.2/1.3).
pub fn client_config(ca_cert: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    if let Some(path) = ca_cert {
        let shown = path.display();
        for cert in CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("{shown}: cannot read certificates: {e}"))?
        {
            let cert = cert.map_err(|e| format!("{shown}: not a PEM certificate: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("{shown}: not a usable certificate: {e}"))?;
        }
        if roots.is_empty() {
            return Err(format!("{shown}: holds no PEM certificate"));
        }
    }
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
