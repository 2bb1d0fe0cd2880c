//! A private certificate authority trusted beside the public ones (GATEHOUSE_TLS_CA_FILE),
//! as hospital networks run their mail relays, databases and caches.

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use std::path::Path;

/// The PEM certificates of a CA file, checked when loaded.
#[derive(Clone)]
pub struct TrustedCa {
    pem: Vec<u8>,
    certificates: usize,
}

impl std::fmt::Debug for TrustedCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TrustedCa({} certificates)", self.certificates)
    }
}

impl TrustedCa {
    /// Reads a PEM file of one or more certificates; anything else is refused, naming why.
    pub fn load(path: &Path) -> Result<Self, String> {
        let pem =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::from_pem(pem).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn from_pem(pem: Vec<u8>) -> Result<Self, String> {
        let certificates = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("not a PEM certificate file ({e})"))?
            .len();
        if certificates == 0 {
            return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
        }
        Ok(Self { pem, certificates })
    }

    pub fn pem(&self) -> &[u8] {
        &self.pem
    }

    /// This CA and the system's trusted roots, as one PEM bundle: for clients that take
    /// a bundle in place of the system's roots (Redis).
    pub fn with_system_roots(&self) -> Vec<u8> {
        use base64::Engine as _;
        let mut bundle = self.pem.clone();
        bundle.push(b'\n');
        for cert in rustls_native_certs::load_native_certs().certs {
            let text = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
            bundle.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
            for line in text.as_bytes().chunks(64) {
                bundle.extend_from_slice(line);
                bundle.push(b'\n');
            }
            bundle.extend_from_slice(b"-----END CERTIFICATE-----\n");
        }
        bundle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anything_but_certificates_is_refused() {
        assert!(TrustedCa::from_pem(b"hello".to_vec()).is_err());
        assert!(TrustedCa::from_pem(Vec::new()).is_err());
        let broken = b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n".to_vec();
        assert!(TrustedCa::from_pem(broken).is_err());
    }
}
