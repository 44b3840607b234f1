//! A DNSSEC-signed zone served by a real authoritative server on loopback, for DANE tests:
//! `ldns-keygen` makes a key-signing and a zone-signing key, `ldns-signzone` signs the zone
//! the test writes, and `nsd` serves it (with any unsigned zones beside it) on `ip`:53. The
//! zone's DNSKEY records are the file for mailgate's `dns.trust_anchors`. Needs ldnsutils and
//! nsd (scripts/lib.sh installs them).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use super::missing_tool;

pub struct SignedZone {
    dir: PathBuf,
    nsd: Child,
    /// The zone's DNSKEY records, for `dns.trust_anchors`.
    pub trust_anchor: PathBuf,
    /// `ip:53`, for `dns.nameservers`.
    pub addr: String,
}

/// A zone file's SOA and NS for `origin`, with `records` (relative or absolute names) after.
fn zone_text(origin: &str, records: &str) -> String {
    format!(
        "$ORIGIN {origin}.\n$TTL 300\n@ IN SOA ns.{origin}. hostmaster.{origin}. 1 3600 600 86400 300\n@ IN NS ns.{origin}.\nns IN A 127.0.0.1\n{records}\n"
    )
}

fn run(program: &str, package: &str, args: &[&str], dir: &Path) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{}", missing_tool(program, package, &e)));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl SignedZone {
    /// Signs `origin` with `records` and serves it, with each of `unsigned` (origin, records)
    /// as is, on `ip`:53. `bogus`: owner names (absolute, with the trailing dot) whose RRSIGs
    /// are corrupted after signing, so that validation fails for them.
    pub async fn start(
        ip: &str,
        origin: &str,
        records: &str,
        bogus: &[&str],
        unsigned: &[(&str, &str)],
    ) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "mailgate-signed-zone-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let zone = dir.join(format!("{origin}.zone"));
        std::fs::write(&zone, zone_text(origin, records)).unwrap();
        let ksk = run(
            "ldns-keygen",
            "ldnsutils",
            &["-a", "ECDSAP256SHA256", "-k", origin],
            &dir,
        );
        let zsk = run(
            "ldns-keygen",
            "ldnsutils",
            &["-a", "ECDSAP256SHA256", origin],
            &dir,
        );
        let zone_name = zone.file_name().unwrap().to_str().unwrap().to_string();
        run(
            "ldns-signzone",
            "ldnsutils",
            &["-o", origin, &zone_name, &zsk, &ksk],
            &dir,
        );
        let signed = dir.join(format!("{zone_name}.signed"));
        if !bogus.is_empty() {
            let text = std::fs::read_to_string(&signed).unwrap();
            let mut out = String::new();
            for line in text.lines() {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let corrupt = fields.len() > 4
                    && bogus.contains(&fields[0])
                    && fields[3] == "RRSIG"
                    && fields[4] != "NSEC";
                if corrupt {
                    // Flip the signature's first character: same length, wrong bytes.
                    let (head, sig) = line.rsplit_once(char::is_whitespace).unwrap();
                    let first = if sig.starts_with('A') { 'B' } else { 'A' };
                    out.push_str(&format!("{head} {first}{}\n", &sig[1..]));
                } else {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            std::fs::write(&signed, out).unwrap();
        }
        // The zone's DNSKEY set (both keys: the validator looks no further up, for a DS,
        // only when every key of the set is an anchor), without ldns's trailing comments.
        let mut anchors = String::new();
        for key in [&ksk, &zsk] {
            let text = std::fs::read_to_string(dir.join(format!("{key}.key"))).unwrap();
            anchors.push_str(text.split(';').next().unwrap().trim());
            anchors.push('\n');
        }
        let trust_anchor = dir.join("trust-anchor.key");
        std::fs::write(&trust_anchor, anchors).unwrap();

        let mut conf = format!(
            "server:\n  ip-address: {ip}@53\n  zonesdir: \"{dir}\"\n  database: \"\"\n  pidfile: \"{dir}/nsd.pid\"\n  username: \"\"\n  chroot: \"\"\n  xfrdfile: \"{dir}/xfrd.state\"\n  zonelistfile: \"{dir}/zone.list\"\n  logfile: \"{dir}/nsd.log\"\n  verbosity: 1\nremote-control:\n  control-enable: no\nzone:\n  name: {origin}\n  zonefile: \"{zone_name}.signed\"\n",
            dir = dir.display()
        );
        for (name, records) in unsigned {
            std::fs::write(dir.join(format!("{name}.zone")), zone_text(name, records)).unwrap();
            conf.push_str(&format!(
                "zone:\n  name: {name}\n  zonefile: \"{name}.zone\"\n"
            ));
        }
        let conf_path = dir.join("nsd.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let nsd = Command::new("nsd")
            .arg("-d")
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}", missing_tool("nsd", "nsd", &e)));
        let zone = Self {
            dir,
            nsd,
            trust_anchor,
            addr: format!("{ip}:53"),
        };
        zone.wait_serving(origin).await;
        zone
    }

    /// Until nsd answers for the zone (it loads it after binding).
    async fn wait_serving(&self, origin: &str) {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        // A query for `origin` SOA: id 1, RD clear, one question.
        let mut q = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in origin.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 6, 0, 1]);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 512];
        while std::time::Instant::now() < deadline {
            let _ = sock.send_to(&q, &self.addr).await;
            if let Ok(Ok((n, _))) =
                tokio::time::timeout(Duration::from_millis(200), sock.recv_from(&mut buf)).await
                // NOERROR with an answer.
                && n > 12
                && buf[3] & 0x0f == 0
                && buf[7] > 0
            {
                return;
            }
        }
        let log = std::fs::read_to_string(self.dir.join("nsd.log")).unwrap_or_default();
        panic!("nsd does not serve {origin} on {}: {log}", self.addr);
    }
}

impl Drop for SignedZone {
    fn drop(&mut self) {
        let _ = self.nsd.kill();
        let _ = self.nsd.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
