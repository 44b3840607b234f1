"""A small authoritative DNS server for bench/direct.sh: each domain named on the command line
gets one MX host, `mx.<domain>`, whose A record is the address given. Other questions about
those names get an empty NOERROR answer, anything else NXDOMAIN, both with an SOA so resolvers
cache the negative answer (RFC 2308), as with real servers. Answers carry a one-hour TTL:
mailgate's resolver asks once per name, and the bench times delivery, not DNS.

Usage: python3 bench/mx_dns.py LISTEN_IP PORT DOMAIN=IP [DOMAIN=IP ...]
"""

import socket
import struct
import sys

A, MX, SOA = 1, 15, 6
TTL = 3600


def encode(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def record(rtype, rdata):
    # The name is the question's (a pointer to offset 12).
    return b"\xc0\x0c" + struct.pack(">HHIH", rtype, 1, TTL, len(rdata)) + rdata


def main():
    listen, port = sys.argv[1], int(sys.argv[2])
    zone = {}  # name -> {type: [rdata]}
    for pair in sys.argv[3:]:
        domain, ip = pair.split("=")
        host = "mx." + domain
        zone[domain.lower()] = {MX: [struct.pack(">H", 10) + encode(host)]}
        zone[host.lower()] = {A: [socket.inet_aton(ip)]}
    soa = encode("ns.bench.test") + encode("hostmaster.bench.test") + struct.pack(">IIIII", 1, 3600, 600, 86400, TTL)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((listen, port))
    while True:
        query, peer = s.recvfrom(4096)
        if len(query) < 12:
            continue
        i, labels = 12, []
        while i < len(query) and query[i]:
            labels.append(query[i + 1 : i + 1 + query[i]].decode(errors="replace"))
            i += 1 + query[i]
        end = i + 5
        if end > len(query):
            continue
        (qtype,) = struct.unpack(">H", query[i + 1 : i + 3])
        name = ".".join(labels).lower()
        rcode, answers = 3, []
        if name in zone:
            rcode, answers = 0, zone[name].get(qtype, [])
        body = b"".join(record(qtype, rdata) for rdata in answers)
        authority = b"" if answers else record(SOA, soa)
        # Same id; QR, AA, RD as asked; RA; the response code; one question.
        flags = struct.pack(">BB", 0x84 | (query[2] & 1), 0x80 | rcode)
        counts = struct.pack(">HHHH", 1, len(answers), 0 if answers else 1, 0)
        s.sendto(query[:2] + flags + counts + query[12:end] + body + authority, peer)


if __name__ == "__main__":
    main()
