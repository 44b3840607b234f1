//! A certificate authority made for one test, and an HTTPS server with a certificate from it:
//! the MTA-STS policy host (`mta-sts.<domain>`) on a loopback address, with the policy file
//! the test sets. mailgate trusts the CA through `tls_policy.ca_file`.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    task::JoinHandle,
};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        self,
        pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
    },
};

pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// The CA certificate as a PEM file, for `tls_policy.ca_file`.
    pub file: PathBuf,
}

impl TestCa {
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "mailgate test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let file = std::env::temp_dir().join(format!(
            "mailgate-test-ca-{}.pem",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&file, issuer.pem()).unwrap();
        Self { issuer, file }
    }

    /// A TLS server configuration with a certificate this CA signed for `names`.
    pub fn server_config(&self, names: &[&str]) -> Arc<rustls::ServerConfig> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, names[0].clone());
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let chain = vec![
            cert.der().clone(),
            CertificateDer::from(self.issuer.der().to_vec()),
        ];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

struct Served {
    status: u16,
    content_type: String,
    body: String,
    requests: usize,
}

/// An HTTPS server answering `GET /.well-known/mta-sts.txt` with the policy set, on one
/// address (port 443, as MTA-STS requires).
pub struct PolicyServer {
    pub addr: SocketAddr,
    served: Arc<Mutex<Served>>,
    task: JoinHandle<()>,
}

impl PolicyServer {
    /// Serves `policy` over TLS for `host` (a certificate from `ca`) on `ip:443`.
    pub async fn start(ip: &str, host: &str, ca: &TestCa, policy: &str) -> Self {
        let addr: SocketAddr = format!("{ip}:443").parse().unwrap();
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("bind the policy server on {addr} (needs root): {e}"));
        let acceptor = TlsAcceptor::from(ca.server_config(&[host]));
        let served = Arc::new(Mutex::new(Served {
            status: 200,
            content_type: "text/plain".into(),
            body: policy.to_string(),
            requests: 0,
        }));
        let task = tokio::spawn(serve(listener, acceptor, served.clone()));
        Self { addr, served, task }
    }

    /// Serves this policy from now on.
    pub fn set_policy(&self, policy: &str) {
        let mut served = self.served.lock().unwrap();
        served.status = 200;
        served.body = policy.to_string();
    }

    /// Answers every request with `status` (and an HTML body) from now on.
    pub fn fail_with(&self, status: u16) {
        let mut served = self.served.lock().unwrap();
        served.status = status;
        served.content_type = "text/html".into();
        served.body = "<html>unavailable</html>".into();
    }

    /// Requests for the policy file so far.
    pub fn requests(&self) -> usize {
        self.served.lock().unwrap().requests
    }
}

impl Drop for PolicyServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, acceptor: TlsAcceptor, served: Arc<Mutex<Served>>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let served = served.clone();
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
                match tls.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let line = String::from_utf8_lossy(&request);
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let (status, content_type, body) = if path == "/.well-known/mta-sts.txt" {
                let mut s = served.lock().unwrap();
                s.requests += 1;
                (s.status, s.content_type.clone(), s.body.clone())
            } else {
                (404, "text/plain".into(), "not found".into())
            };
            let response = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.write_all(response.as_bytes()).await;
            let _ = tls.shutdown().await;
        });
    }
}

/// One request a [`ReportServer`] took.
#[derive(Debug, Clone)]
pub struct Posted {
    pub method: String,
    pub path: String,
    pub content_type: String,
    pub body: Vec<u8>,
}

struct Reports {
    status: u16,
    posted: Vec<Posted>,
}

/// An HTTPS server on `ip:443` taking TLS-RPT reports (RFC 8460 §5.3: POST with
/// `application/tlsrpt+gzip`), answering each with the status set (200 at first).
pub struct ReportServer {
    reports: Arc<Mutex<Reports>>,
    task: JoinHandle<()>,
}

impl ReportServer {
    pub async fn start(ip: &str, host: &str, ca: &TestCa) -> Self {
        let addr: SocketAddr = format!("{ip}:443").parse().unwrap();
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("bind the report server on {addr} (needs root): {e}"));
        let acceptor = TlsAcceptor::from(ca.server_config(&[host]));
        let reports = Arc::new(Mutex::new(Reports {
            status: 200,
            posted: Vec::new(),
        }));
        let task = tokio::spawn(take_reports(listener, acceptor, reports.clone()));
        Self { reports, task }
    }

    /// Answers every request with `status` from now on.
    pub fn answer(&self, status: u16) {
        self.reports.lock().unwrap().status = status;
    }

    /// Every request so far, answered or not.
    pub fn posted(&self) -> Vec<Posted> {
        self.reports.lock().unwrap().posted.clone()
    }
}

impl Drop for ReportServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn take_reports(listener: TcpListener, acceptor: TlsAcceptor, reports: Arc<Mutex<Reports>>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let reports = reports.clone();
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            let head_end = loop {
                if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                    break at + 4;
                }
                match tls.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            };
            let head = String::from_utf8_lossy(&request[..head_end]).to_string();
            let header = |name: &str| {
                head.lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.trim()
                            .eq_ignore_ascii_case(name)
                            .then(|| v.trim().to_string())
                    })
                    .unwrap_or_default()
            };
            let length: usize = header("content-length").parse().unwrap_or(0);
            while request.len() < head_end + length {
                match tls.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let mut words = head.split_whitespace();
            let posted = Posted {
                method: words.next().unwrap_or("").to_string(),
                path: words.next().unwrap_or("").to_string(),
                content_type: header("content-type"),
                body: request[head_end..head_end + length].to_vec(),
            };
            let status = {
                let mut r = reports.lock().unwrap();
                r.posted.push(posted);
                r.status
            };
            let response =
                format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = tls.write_all(response.as_bytes()).await;
            let _ = tls.shutdown().await;
        });
    }
}
