"""TLS as bytes: captures and records in, facts out.

Nothing here touches Docker or the rest of the lab: these modules import
the standard library, dpkt, cryptography, and from labctl only errors (for
the error types) and files (for careful reads of input files).

- constants   the protocol's numbers and names (versions, content types,
              handshake types, alerts, extensions, groups, cipher suites)
- records     the record layer walked over a byte stream, handshake messages
              split out of it, hellos and their extensions read
- analyzer    a pcap -> Observation: flows, DNS, TLS connections
- der         a minimal DER walk of the certificates cryptography refuses
- decrypt     an NSS key log -> plaintext records (TLS 1.3 and 1.2 AEAD)
- stolenkey   a stolen RSA server key against recorded sessions
"""
