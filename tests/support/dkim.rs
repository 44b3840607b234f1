//! DKIM keys made with the openssl CLI and signatures checked by dkimpy (Python), so the
//! tests never trust mailgate's own crypto to judge mailgate's signatures.

use std::{
    io::Write,
    path::PathBuf,
    process::{Command, Stdio},
};

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use mailgate::config::{DkimAlgorithm, DkimKeyConfig};

/// A private key on disk and the DNS TXT record that publishes its public half.
pub struct TestKey {
    pub config: DkimKeyConfig,
    pub txt: String,
    dir: PathBuf,
}

impl Drop for TestKey {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}", super::missing_tool("openssl", "openssl", &e)));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A fresh key for `domain` with selector `mg1`.
pub fn generate(domain: &str, algorithm: DkimAlgorithm) -> TestKey {
    let dir = std::env::temp_dir().join(format!("mailgate-dkim-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{domain}.pem"));
    let path = file.to_str().unwrap();
    let (gen_args, k): (&[&str], &str) = match algorithm {
        DkimAlgorithm::RsaSha256 => (
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            "rsa",
        ),
        DkimAlgorithm::Ed25519Sha256 => (&["-algorithm", "ed25519"], "ed25519"),
    };
    let mut args = vec!["genpkey"];
    args.extend_from_slice(gen_args);
    args.extend_from_slice(&["-out", path]);
    openssl(&args);
    let spki = openssl(&["pkey", "-in", path, "-pubout", "-outform", "DER"]);
    // RSA keys are published as the whole SubjectPublicKeyInfo; Ed25519 as the raw 32 bytes
    // (RFC 8463), which end the SPKI.
    let public = match algorithm {
        DkimAlgorithm::RsaSha256 => &spki[..],
        DkimAlgorithm::Ed25519Sha256 => &spki[spki.len() - 32..],
    };
    TestKey {
        config: DkimKeyConfig {
            domain: domain.into(),
            selector: "mg1".into(),
            algorithm,
            private_key_file: file,
        },
        txt: format!("v=DKIM1; k={k}; p={}", B64.encode(public)),
        dir,
    }
}

const VERIFY: &str = r#"
import sys, dkim
expected_name, txt = sys.argv[1].encode(), sys.argv[2].encode()
def dnsfunc(name, timeout=5):
    # Only the record the signature names exists.
    return txt if name.rstrip(b".") == expected_name else None
ok = dkim.verify(sys.stdin.buffer.read(), dnsfunc=dnsfunc)
print("pass" if ok else "fail")
"#;

/// Whether dkimpy accepts the first DKIM signature of `message` with `key` published in DNS.
pub fn verifies(message: &[u8], key: &TestKey) -> bool {
    let name = format!("mg1._domainkey.{}", key.config.domain);
    let mut child = Command::new("python3")
        .args(["-c", VERIFY, &name, &key.txt])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}", super::missing_tool("python3", "python3", &e)));
    child.stdin.take().unwrap().write_all(message).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "dkimpy did not run: apt-get install python3-dkim python3-nacl, or python3 -m pip install dkimpy pynacl (scripts/test installs them): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.trim() == "pass"
}

/// The value of the (unfolded) `DKIM-Signature` header, if the message starts with one.
pub fn signature_header(message: &[u8]) -> Option<String> {
    signature_headers(message).into_iter().next()
}

/// The values of the (unfolded) `DKIM-Signature` headers the message starts with, in order.
pub fn signature_headers(message: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(message);
    let mut out = Vec::new();
    let mut rest = text.as_ref();
    while let Some(after) = rest.strip_prefix("DKIM-Signature:") {
        let mut value = String::new();
        let mut consumed = "DKIM-Signature:".len();
        for (i, line) in after.split("\r\n").enumerate() {
            if i > 0 && !line.starts_with([' ', '\t']) {
                break;
            }
            value.push_str(line.trim());
            value.push(' ');
            consumed += line.len() + 2;
        }
        out.push(value);
        rest = &rest[consumed.min(rest.len())..];
    }
    out
}

/// A tag of a DKIM-Signature value (`d`, `s`, `h`, …), whitespace removed.
pub fn tag(signature: &str, name: &str) -> Option<String> {
    signature.split(';').find_map(|t| {
        let (k, v) = t.split_once('=')?;
        (k.trim() == name).then(|| v.split_whitespace().collect())
    })
}

const VERIFY_VIA_DNS: &str = r#"
import sys, dkim, dns.resolver
resolver = dns.resolver.Resolver(configure=False)
resolver.nameservers = [sys.argv[1]]
resolver.port = int(sys.argv[2])
def dnsfunc(name, timeout=5):
    # The key as the test DNS server publishes it, as a receiver would look it up.
    try:
        answer = resolver.resolve(name.decode().rstrip("."), "TXT")
    except Exception as e:
        print("lookup of", name, "failed:", repr(e), file=sys.stderr)
        return None
    return b"".join(answer[0].strings)
import logging
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
d = dkim.DKIM(sys.stdin.buffer.read(), logger=logging.getLogger("dkim"))
try:
    ok = d.verify(idx=int(sys.argv[3]), dnsfunc=dnsfunc)
except dkim.DKIMException as e:
    # As dkim.verify does: a bad signature is a failed check, not an error.
    print("not verified:", e, file=sys.stderr)
    ok = False
print("pass" if ok else "fail")
"#;

/// Whether dkimpy accepts the first DKIM signature of `message`, looking the key up in the
/// DNS server at `dns` (dnspython, which dkimpy brings). Async: the test DNS server answers
/// from the test's own runtime while dkimpy waits.
pub async fn verifies_via_dns(message: &[u8], dns: std::net::SocketAddr) -> bool {
    verifies_via_dns_at(message, dns, 0).await
}

/// Whether dkimpy accepts the `idx`th DKIM signature of `message` (0 is the first), as
/// [`verifies_via_dns`] does.
pub async fn verifies_via_dns_at(message: &[u8], dns: std::net::SocketAddr, idx: usize) -> bool {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("python3")
        .args([
            "-c",
            VERIFY_VIA_DNS,
            &dns.ip().to_string(),
            &dns.port().to_string(),
            &idx.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}", super::missing_tool("python3", "python3", &e)));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(message).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "dkimpy did not run: apt-get install python3-dkim python3-dnspython, or python3 -m pip install dkimpy dnspython (scripts/test installs them): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pass = String::from_utf8_lossy(&out.stdout).trim() == "pass";
    if !pass {
        eprintln!("dkimpy: {}", String::from_utf8_lossy(&out.stderr));
    }
    pass
}
