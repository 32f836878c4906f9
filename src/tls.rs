//! TLS with rustls (`tls_cert`, `tls_key`: PEM files). The certificate is served through a
//! resolver whose key pair [`ReloadableCert::reload`] swaps (on SIGHUP): new handshakes get the
//! new certificate, open connections keep theirs, and a bad pair leaves the old one in force.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

/// Why a certificate and key cannot be served. Names the files, never key material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {problem}")]
    File { path: String, problem: String },
    #[error("{cert} and {key}: {problem}")]
    Pair {
        cert: String,
        key: String,
        problem: String,
    },
}

/// The certificate and key in force, re-read from their files on [`ReloadableCert::reload`].
#[derive(Debug)]
pub struct ReloadableCert {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadableCert {
    pub fn load(cert: &Path, key: &Path) -> Result<ReloadableCert, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let current = load_pair(cert, key, &provider)?;
        Ok(ReloadableCert {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            provider,
            current: RwLock::new(Arc::new(current)),
        })
    }

    /// Re-reads both files; on failure the pair in force stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let pair = load_pair(&self.cert, &self.key, &self.provider)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(pair);
        Ok(())
    }

    /// The rustls server configuration serving this certificate (TLS 1.2 and 1.3).
    pub fn server_config(self: &Arc<Self>) -> Result<ServerConfig, TlsError> {
        let config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| self.pair_error(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        Ok(config)
    }

    fn pair_error(&self, problem: String) -> TlsError {
        TlsError::Pair {
            cert: self.cert.display().to_string(),
            key: self.key.display().to_string(),
            problem,
        }
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

fn load_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let file_error = |path: &Path, problem: String| TlsError::File {
        path: path.display().to_string(),
        problem,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_error(cert, format!("cannot read certificates: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(cert, format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(file_error(cert, "holds no PEM certificate".into()));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| file_error(key, format!("no usable PEM private key: {e}")))?;
    CertifiedKey::from_der(chain, private, provider).map_err(|e| TlsError::Pair {
        cert: cert.display().to_string(),
        key: key.display().to_string(),
        problem: format!("cannot be served together: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (c, k) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.cert.pem()).unwrap();
        std::fs::write(&k, cert.signing_key.serialize_pem()).unwrap();
        (c, k)
    }

    #[test]
    fn a_pair_loads_reloads_and_a_bad_one_keeps_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_pair(dir.path(), "a");
        let served = Arc::new(ReloadableCert::load(&cert, &key).unwrap());
        served.server_config().unwrap();
        let first = served.current.read().unwrap().cert[0].clone();

        let (cert_b, key_b) = write_pair(dir.path(), "b");
        std::fs::copy(&cert_b, &cert).unwrap();
        std::fs::copy(&key_b, &key).unwrap();
        served.reload().unwrap();
        let second = served.current.read().unwrap().cert[0].clone();
        assert_ne!(first, second);

        // A key that does not belong to the certificate: refused, the pair in force stays.
        let (_, key_c) = write_pair(dir.path(), "c");
        std::fs::copy(&key_c, &key).unwrap();
        let e = served.reload().unwrap_err().to_string();
        assert!(e.contains("cannot be served together"), "{e}");
        assert_eq!(served.current.read().unwrap().cert[0], second);

        std::fs::write(&cert, "not pem").unwrap();
        let e = ReloadableCert::load(&cert, &key).unwrap_err().to_string();
        assert!(
            e.contains("a.crt") && e.contains("no PEM certificate"),
            "{e}"
        );
    }
}
