//! TLS for the test receivers: a CA, a server certificate for 127.0.0.1 and
//! localhost, a client certificate, all generated here (rcgen), written to a
//! temporary directory for the `OTEL_EXPORTER_OTLP_*CERTIFICATE*` variables;
//! and OTLP receivers (gRPC with tonic's rustls, HTTP with tokio-rustls)
//! that may require a client certificate. Nothing leaves 127.0.0.1.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;

use super::otel::{Sink, grpc_services, http_app};

/// One test's certificates (PEM) and the files holding them.
pub struct Pki {
    pub ca: String,
    pub server_cert: String,
    pub server_key: String,
    pub client_cert: String,
    pub client_key: String,
    /// A CA that signed nothing here: trusting it is trusting the wrong CA.
    pub other_ca: String,
    pub dir: PathBuf,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

impl Pki {
    pub fn generate() -> Self {
        let issuer = ca("telltale test CA");
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap()
            .signed_by(&server_key, &issuer)
            .unwrap();
        let client_key = KeyPair::generate().unwrap();
        let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        client_params
            .distinguished_name
            .push(DnType::CommonName, "telltale test client");
        let client = client_params.signed_by(&client_key, &issuer).unwrap();
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "telltale-tls-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let pki = Pki {
            ca: issuer.pem(),
            server_cert: server.pem(),
            server_key: server_key.serialize_pem(),
            client_cert: client.pem(),
            client_key: client_key.serialize_pem(),
            other_ca: ca("some other CA").pem(),
            dir,
        };
        for (name, pem) in [
            ("ca.pem", &pki.ca),
            ("client.pem", &pki.client_cert),
            ("client.key", &pki.client_key),
            ("other-ca.pem", &pki.other_ca),
        ] {
            std::fs::write(pki.dir.join(name), pem).unwrap();
        }
        pki
    }

    /// The path of one of the files (`ca.pem`, `client.pem`, `client.key`,
    /// `other-ca.pem`), as a string for a variable.
    pub fn file(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A real OTLP/gRPC collector over TLS on 127.0.0.1:0, requiring a client
/// certificate signed by the test CA when `mutual`; returns its endpoint
/// (`https://127.0.0.1:port`).
pub async fn grpc_tls_receiver(pki: &Pki, mutual: bool) -> (Sink, String) {
    use tonic::transport::{Certificate, Identity, ServerTlsConfig};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("https://{}", listener.local_addr().unwrap());
    let mut tls =
        ServerTlsConfig::new().identity(Identity::from_pem(&pki.server_cert, &pki.server_key));
    if mutual {
        tls = tls.client_ca_root(Certificate::from_pem(&pki.ca));
    }
    let sink = Sink::default();
    let (traces, logs) = grpc_services(&sink);
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .tls_config(tls)
            .unwrap()
            .add_service(traces)
            .add_service(logs)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await;
    });
    (sink, endpoint)
}

/// A real OTLP/HTTP collector over TLS on 127.0.0.1:0 (see
/// [`grpc_tls_receiver`]); returns its base URL (`https://127.0.0.1:port`).
pub async fn http_tls_receiver(pki: &Pki, mutual: bool) -> (Sink, String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("https://{}", listener.local_addr().unwrap());
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(pki.server_cert.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_slice(pki.server_key.as_bytes()).unwrap();
    let builder = rustls::ServerConfig::builder();
    let builder = if mutual {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pki.ca.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        builder.with_client_cert_verifier(
            rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                .build()
                .unwrap(),
        )
    } else {
        builder.with_no_client_auth()
    };
    let config = builder.with_single_cert(certs, key).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let sink = Sink::default();
    let app = http_app(&sink);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                // A refused handshake ends the connection, as a collector's.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (sink, base)
}
