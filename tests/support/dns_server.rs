//! A tiny authoritative DNS server for tests, on a real UDP socket on loopback: mailgate's
//! resolver (`dns.nameservers`) asks it for MX, A, AAAA, TXT, CNAME and PTR records, and it answers from a
//! zone the test writes: records, NXDOMAIN, SERVFAIL, or NOERROR with nothing (a name that
//! has records of another type). Every question is recorded, so a test can show what was
//! (not) asked.

#![allow(dead_code)]

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
};

use tokio::{net::UdpSocket, task::JoinHandle};

const TYPE_A: u16 = 1;
const TYPE_PTR: u16 = 12;
const TYPE_MX: u16 = 15;
const TYPE_AAAA: u16 = 28;
const TYPE_SOA: u16 = 6;
const TYPE_TXT: u16 = 16;
const TYPE_CNAME: u16 = 5;

#[derive(Clone, Debug)]
enum Rr {
    Mx(u16, String),
    Addr(IpAddr),
    Txt(String),
    Ptr(String),
    Cname(String),
}

#[derive(Default)]
struct Zone {
    records: HashMap<String, Vec<Rr>>,
    nxdomain: Vec<String>,
    /// Names (and the one type, when given) answered with SERVFAIL.
    servfail: Vec<(String, Option<u16>)>,
    /// (name, type) in the order asked.
    asked: Vec<(String, u16)>,
}

pub struct TestDns {
    pub addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    task: JoinHandle<()>,
}

fn norm(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl TestDns {
    /// Listens on 127.0.0.1 on a free UDP port.
    pub async fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind test DNS");
        let addr = socket.local_addr().unwrap();
        let zone = Arc::new(Mutex::new(Zone::default()));
        let task = tokio::spawn(serve(socket, zone.clone()));
        Self { addr, zone, task }
    }

    /// `domain MX preference host` for each pair; `"."` as host is a null MX (RFC 7505).
    pub fn mx(&self, domain: &str, hosts: &[(u16, &str)]) -> &Self {
        let mut zone = self.zone.lock().unwrap();
        let rrs = zone.records.entry(norm(domain)).or_default();
        for (preference, host) in hosts {
            rrs.push(Rr::Mx(*preference, host.to_string()));
        }
        self
    }

    /// A or AAAA records for `name`.
    pub fn addr(&self, name: &str, addrs: &[&str]) -> &Self {
        let mut zone = self.zone.lock().unwrap();
        let rrs = zone.records.entry(norm(name)).or_default();
        for a in addrs {
            rrs.push(Rr::Addr(a.parse().expect("an IP address")));
        }
        self
    }

    /// The TXT record of `name`, in place of any it had (`txt` adds one beside them). TXT
    /// answers have a TTL of 0, so a changed record is seen at once.
    pub fn set_txt(&self, name: &str, text: &str) -> &Self {
        let mut zone = self.zone.lock().unwrap();
        let rrs = zone.records.entry(norm(name)).or_default();
        rrs.retain(|rr| !matches!(rr, Rr::Txt(_)));
        rrs.push(Rr::Txt(text.to_string()));
        self
    }

    /// A PTR record for `ip` (under `in-addr.arpa` or `ip6.arpa`) naming `host`.
    pub fn ptr(&self, ip: &str, host: &str) -> &Self {
        let name = match ip.parse::<IpAddr>().expect("an IP address") {
            IpAddr::V4(v4) => {
                let [a, b, c, d] = v4.octets();
                format!("{d}.{c}.{b}.{a}.in-addr.arpa")
            }
            IpAddr::V6(v6) => {
                let nibbles: Vec<String> = v6
                    .octets()
                    .iter()
                    .rev()
                    .flat_map(|b| [b & 0x0f, b >> 4])
                    .map(|n| format!("{n:x}"))
                    .collect();
                format!("{}.ip6.arpa", nibbles.join("."))
            }
        };
        let mut zone = self.zone.lock().unwrap();
        zone.records
            .entry(name)
            .or_default()
            .push(Rr::Ptr(host.to_string()));
        self
    }

    /// A TXT record for `name` (split into 255-byte strings as DNS carries long ones).
    pub fn txt(&self, name: &str, value: &str) -> &Self {
        let mut zone = self.zone.lock().unwrap();
        zone.records
            .entry(norm(name))
            .or_default()
            .push(Rr::Txt(value.to_string()));
        self
    }

    /// A CNAME record for `name`.
    pub fn cname(&self, name: &str, target: &str) -> &Self {
        let mut zone = self.zone.lock().unwrap();
        zone.records
            .entry(norm(name))
            .or_default()
            .push(Rr::Cname(target.to_string()));
        self
    }

    /// Removes every TXT record of `name` (the name stays, with its other records).
    pub fn remove_txt(&self, name: &str) -> &Self {
        let mut zone = self.zone.lock().unwrap();
        if let Some(rrs) = zone.records.get_mut(&norm(name)) {
            rrs.retain(|rr| !matches!(rr, Rr::Txt(_)));
        }
        self
    }

    /// Stops answering SERVFAIL for `name`.
    pub fn heal(&self, name: &str) -> &Self {
        let name = norm(name);
        self.zone
            .lock()
            .unwrap()
            .servfail
            .retain(|(n, _)| *n != name);
        self
    }

    /// Every question about `name` gets SERVFAIL.
    pub fn servfail(&self, name: &str) -> &Self {
        self.zone.lock().unwrap().servfail.push((norm(name), None));
        self
    }

    /// MX questions about `name` get SERVFAIL; its other records answer as usual.
    pub fn servfail_mx(&self, name: &str) -> &Self {
        self.zone
            .lock()
            .unwrap()
            .servfail
            .push((norm(name), Some(TYPE_MX)));
        self
    }

    /// Every question about `name` gets NXDOMAIN (so does any name not in the zone).
    pub fn nxdomain(&self, name: &str) -> &Self {
        self.zone.lock().unwrap().nxdomain.push(norm(name));
        self
    }

    /// The questions asked about `name`, as record type names (`MX`, `A`, `AAAA`).
    pub fn asked(&self, name: &str) -> Vec<&'static str> {
        let name = norm(name);
        self.zone
            .lock()
            .unwrap()
            .asked
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, t)| match *t {
                TYPE_A => "A",
                TYPE_MX => "MX",
                TYPE_AAAA => "AAAA",
                TYPE_TXT => "TXT",
                TYPE_PTR => "PTR",
                TYPE_CNAME => "CNAME",
                _ => "other",
            })
            .collect()
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(socket: UdpSocket, zone: Arc<Mutex<Zone>>) {
    let mut buf = [0u8; 4096];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        if let Some(reply) = answer(&buf[..n], &zone) {
            let _ = socket.send_to(&reply, peer).await;
        }
    }
}

/// The reply to one query, or `None` for something that is not one.
fn answer(query: &[u8], zone: &Mutex<Zone>) -> Option<Vec<u8>> {
    if query.len() < 12 || u16::from_be_bytes([query[4], query[5]]) != 1 {
        return None;
    }
    // The question: labels up to the root, then type and class.
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *query.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(i..i + len)?).to_string());
        i += len;
    }
    let qtype = u16::from_be_bytes([*query.get(i)?, *query.get(i + 1)?]);
    let question = &query[12..i + 4];
    let name = norm(&labels.join("."));

    let mut zone = zone.lock().unwrap();
    zone.asked.push((name.clone(), qtype));
    let failing = zone
        .servfail
        .iter()
        .any(|(n, t)| *n == name && t.is_none_or(|t| t == qtype));
    let (rcode, answers): (u16, Vec<Rr>) = if failing {
        (2, vec![])
    } else if zone.nxdomain.contains(&name) {
        (3, vec![])
    } else {
        match zone.records.get(&name) {
            None => (3, vec![]),
            Some(rrs) => (
                0,
                rrs.iter()
                    .filter(|rr| match rr {
                        Rr::Mx(..) => qtype == TYPE_MX,
                        Rr::Addr(IpAddr::V4(_)) => qtype == TYPE_A,
                        Rr::Addr(IpAddr::V6(_)) => qtype == TYPE_AAAA,
                        Rr::Txt(_) => qtype == TYPE_TXT,
                        Rr::Ptr(_) => qtype == TYPE_PTR,
                        Rr::Cname(_) => qtype == TYPE_CNAME,
                    })
                    .cloned()
                    .collect(),
            ),
        }
    };
    drop(zone);

    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&query[0..2]);
    // QR, AA, RD as asked, RA; the response code.
    let rd = query[2] & 0x01;
    out.push(0x84 | rd);
    out.push(0x80 | rcode as u8);
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    // A negative answer (NXDOMAIN, or NOERROR with nothing) carries the zone's SOA, whose
    // minimum is how long resolvers may cache it (RFC 2308), as real servers do.
    let negative = answers.is_empty() && rcode != 2;
    out.extend_from_slice(&u16::from(negative).to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(question);
    for rr in answers {
        out.extend_from_slice(&[0xc0, 12]); // the question's name
        let ttl: u32 = if matches!(rr, Rr::Txt(_)) { 0 } else { 60 };
        let (rtype, rdata) = match rr {
            Rr::Mx(preference, host) => {
                let mut d = preference.to_be_bytes().to_vec();
                d.extend(encode_name(&host));
                (TYPE_MX, d)
            }
            Rr::Addr(IpAddr::V4(v4)) => (TYPE_A, v4.octets().to_vec()),
            Rr::Addr(IpAddr::V6(v6)) => (TYPE_AAAA, v6.octets().to_vec()),
            Rr::Txt(text) => {
                let mut d = Vec::new();
                for chunk in text.as_bytes().chunks(255) {
                    d.push(chunk.len() as u8);
                    d.extend_from_slice(chunk);
                }
                if text.is_empty() {
                    d.push(0);
                }
                (TYPE_TXT, d)
            }
            Rr::Cname(target) => (TYPE_CNAME, encode_name(&target)),
            Rr::Ptr(host) => (TYPE_PTR, encode_name(&host)),
        };
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes()); // IN
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend(rdata);
    }
    if negative {
        out.extend_from_slice(&[0xc0, 12]);
        let mut rdata = encode_name("ns.test");
        rdata.extend(encode_name("hostmaster.test"));
        for n in [1u32, 3600, 600, 86400, 60] {
            rdata.extend_from_slice(&n.to_be_bytes());
        }
        out.extend_from_slice(&TYPE_SOA.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&60u32.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend(rdata);
    }
    Some(out)
}

fn encode_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}
