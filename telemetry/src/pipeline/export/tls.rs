//! rustls client configuration of OTLP export: the system's roots (read by
//! `rustls-native-certs`, no system library) or a custom CA, and an optional
//! client certificate for mutual TLS.

use std::sync::{Arc, OnceLock};

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use telltale_core::BoxError;
use telltale_core::config::ParseError;

use crate::pipeline::settings::OtlpTls;

/// The certificates of a PEM file; an error when it holds none or a block is
/// not valid.
pub(crate) fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, ParseError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ParseError::new(1, format!("a PEM file of certificates ({e})")))?;
    if certs.is_empty() {
        return Err(ParseError::new(
            1,
            "a PEM file of certificates (no CERTIFICATE block found)",
        ));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, ParseError> {
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| ParseError::new(1, format!("a PEM file with a private key ({e})")))
}

fn system_roots() -> Result<Arc<RootCertStore>, BoxError> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut store = RootCertStore::empty();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(format!(
                    "no trusted root certificates found on this system{}; set \
                     OTEL_EXPORTER_OTLP_CERTIFICATE to the collector's CA",
                    found
                        .errors
                        .first()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                ));
            }
            Ok(Arc::new(store))
        })
        .clone()
        .map_err(Into::into)
}

/// The client configuration `tls` describes (ring provider, TLS 1.2 and 1.3).
pub(crate) fn client_config(tls: &OtlpTls) -> Result<rustls::ClientConfig, BoxError> {
    let roots = match &tls.ca_certificate {
        Some(pem) => {
            let mut store = RootCertStore::empty();
            for cert in certificates(pem)? {
                store.add(cert)?;
            }
            Arc::new(store)
        }
        None => system_roots()?,
    };
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots);
    Ok(match &tls.client_identity {
        Some((cert, key)) => {
            builder.with_client_auth_cert(certificates(cert)?, private_key(key)?)?
        }
        None => builder.with_no_client_auth(),
    })
}
