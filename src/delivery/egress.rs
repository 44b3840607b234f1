//! What receiving mail servers look up about an egress address before they trust mail from
//! it: a PTR record, whose name resolves back to the address (forward-confirmed reverse DNS,
//! FCrDNS), and that name being the one the connection greets with (EHLO). Gmail, Yahoo and
//! Microsoft refuse or junk mail from an address without them. `mailgate doctor` asks this
//! for every egress address and, where DNS falls short, names the records to publish.

use std::net::IpAddr;

use super::dns::{Dns, DnsFailure, reverse_name};

/// Whether DNS says what receivers check about `addr`, which greets with `helo` on relay
/// `relay`: `Ok` says what was confirmed, `Err` what is missing and the exact records
/// (zone-file lines) that fix it.
pub async fn check(dns: &Dns, relay: &str, addr: IpAddr, helo: &str) -> Result<String, String> {
    let helo = helo.trim_end_matches('.').to_ascii_lowercase();
    let ptr_record = format!("{} PTR {helo}.", reverse_name(addr));
    let forward_record = format!(
        "{helo}. {} {addr}",
        if addr.is_ipv4() { "A" } else { "AAAA" }
    );
    let names = dns.ptr_names(addr).await.map_err(|e| {
        format!(
            "could not check the PTR of {addr} ({e}); receivers want `{ptr_record}` and `{forward_record}`"
        )
    })?;
    let helo_resolves = resolves_to(dns, &helo, addr).await?;
    let publish = |records: Vec<&str>| format!("publish `{}`", records.join("` and `"));

    if names.is_empty() {
        let mut records = vec![ptr_record.as_str()];
        if !helo_resolves.confirmed {
            records.push(&forward_record);
        }
        return Err(format!(
            "{addr} has no PTR record: many receivers refuse mail from it; {}",
            publish(records)
        ));
    }
    if names.iter().any(|n| n.eq_ignore_ascii_case(&helo)) {
        return if helo_resolves.confirmed {
            Ok(format!(
                "PTR {helo}, forward-confirmed ({helo} resolves to {addr}), the EHLO name"
            ))
        } else {
            Err(format!(
                "PTR {helo} is not forward-confirmed: {helo} resolves to {}, not {addr}; {}",
                helo_resolves.describe(),
                publish(vec![&forward_record])
            ))
        };
    }
    // The PTR names another host than the one the connection greets with.
    let name = &names[0];
    let theirs = resolves_to(dns, name, addr).await?;
    let mut records = vec![ptr_record.as_str()];
    if !helo_resolves.confirmed {
        records.push(&forward_record);
    }
    let mut detail = format!(
        "the PTR of {addr} is {name} ({}), but connections from it say EHLO {helo}: {} in place of the PTR {name}",
        if theirs.confirmed {
            "forward-confirmed".to_string()
        } else {
            format!(
                "not forward-confirmed: {name} resolves to {}",
                theirs.describe()
            )
        },
        publish(records)
    );
    if theirs.confirmed {
        detail.push_str(&format!(
            ", or set helo = \"{name}\" for {addr} in relays.{relay}.egress"
        ));
    }
    Err(detail)
}

/// What `host`'s A and AAAA records say, against the address they should include.
struct Forward {
    confirmed: bool,
    addrs: Vec<IpAddr>,
}

impl Forward {
    fn describe(&self) -> String {
        if self.addrs.is_empty() {
            "no address".into()
        } else {
            self.addrs
                .iter()
                .map(IpAddr::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    }
}

async fn resolves_to(dns: &Dns, host: &str, addr: IpAddr) -> Result<Forward, String> {
    let addrs = match dns.addresses(host).await {
        Ok(addrs) => addrs,
        Err(DnsFailure::NoSuchDomain(_)) => Vec::new(),
        Err(e @ DnsFailure::Transient(_)) => {
            return Err(format!(
                "could not check that {host} resolves to {addr} ({e})"
            ));
        }
    };
    Ok(Forward {
        confirmed: addrs.contains(&addr),
        addrs,
    })
}
