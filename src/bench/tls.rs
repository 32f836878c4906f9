//! The bench client's TLS: `https://` targets are trusted through `--ca-cert` (a PEM file of the
//! server's certificate or its CA); without it no certificate is trusted.
//!
//! A certificate in `--ca-cert` that the server presents as it is (pinned) is trusted even when
//! it is marked as a CA: `openssl req -x509` makes such self-signed certificates (CA:TRUE), which
//! webpki refuses as a server's own certificate but curl accepts. Its dates and its names
//! (subject alternative names) are still checked.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// A client configuration trusting the certificates in `ca_cert` (HTTP/1.1 over TLS 1.2/1.3).
pub fn client_config(ca_cert: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let mut config = match ca_cert {
        None => builder
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth(),
        Some(path) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedOrChain::load(path, provider)?))
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// webpki's verification, and besides it a pinned certificate marked as a CA (module comment).
#[derive(Debug)]
struct PinnedOrChain {
    chain: Arc<WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl PinnedOrChain {
    /// Trusts the certificates in `path`, as roots and as pinned certificates.
    fn load(path: &Path, provider: Arc<CryptoProvider>) -> Result<PinnedOrChain, String> {
        let shown = path.display();
        let mut roots = RootCertStore::empty();
        let mut pinned = Vec::new();
        for cert in CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("{shown}: cannot read certificates: {e}"))?
        {
            let cert = cert.map_err(|e| format!("{shown}: not a PEM certificate: {e}"))?;
            roots
                .add(cert.clone())
                .map_err(|e| format!("{shown}: not a usable certificate: {e}"))?;
            pinned.push(cert);
        }
        if roots.is_empty() {
            return Err(format!("{shown}: holds no PEM certificate"));
        }
        let chain = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| format!("{shown}: {e}"))?;
        Ok(PinnedOrChain { chain, pinned })
    }
}

/// Whether webpki refused a certificate only for being a CA: it checks the dates before that.
fn only_marked_as_ca(error: &rustls::Error) -> bool {
    matches!(
        error,
        rustls::Error::InvalidCertificate(CertificateError::Other(other))
            if other.to_string() == "CaUsedAsEndEntity"
    )
}

impl ServerCertVerifier for PinnedOrChain {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.chain.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(e) if only_marked_as_ca(&e) && self.pinned.iter().any(|p| p == end_entity) => {
                let parsed = ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_name(&parsed, server_name)?;
                Ok(ServerCertVerified::assertion())
            }
            verdict => verdict,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for 127.0.0.1, marked as a CA when `ca`, as PEM.
    fn self_signed(ca: bool) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".into()]).unwrap();
        if ca {
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        }
        params.self_signed(&key).unwrap().pem()
    }

    fn verify(trusted: &str, presented: &str, name: &str) -> Result<(), rustls::Error> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, trusted).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = PinnedOrChain::load(&path, provider).unwrap();
        let cert = CertificateDer::from_pem_slice(presented.as_bytes()).unwrap();
        verifier
            .verify_server_cert(
                &cert,
                &[],
                &ServerName::try_from(name.to_string()).unwrap(),
                &[],
                UnixTime::now(),
            )
            .map(|_| ())
    }

    #[test]
    fn a_pinned_ca_certificate_is_trusted_for_its_names_only() {
        let ca = self_signed(true);
        verify(&ca, &ca, "127.0.0.1").unwrap();
        let wrong_name = verify(&ca, &ca, "127.0.0.2").unwrap_err();
        assert!(
            wrong_name.to_string().contains("not valid for name"),
            "{wrong_name}"
        );
        // Another CA-marked certificate, not the pinned one: refused as webpki refuses it.
        let other = verify(&ca, &self_signed(true), "127.0.0.1").unwrap_err();
        assert!(
            matches!(other, rustls::Error::InvalidCertificate(_)),
            "{other}"
        );
        // An ordinary self-signed certificate goes through webpki alone.
        let leaf = self_signed(false);
        verify(&leaf, &leaf, "127.0.0.1").unwrap();
    }
}
