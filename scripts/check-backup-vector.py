#!/usr/bin/env python3
"""Rebuilds crates/proto/tests/vectors/backup.json's file from its inputs with Python's hashlib and cryptography:
an implementation of docs/PROTOCOL.md "Backup file" other than ours. Prints "file matches: True"."""
import hashlib
import hmac
import json
import pathlib
import struct

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

v = json.loads((pathlib.Path(__file__).parent.parent / "crates/proto/tests/vectors/backup.json").read_text())
s = v["scrypt"]
salt = bytes.fromhex(s["salt"])
key = hashlib.scrypt(v["passphrase"].encode(), salt=salt, n=s["n"], r=s["r"], p=s["p"], dklen=32)
check = hmac.new(key, b"magpie v1 backup key check", hashlib.sha256).digest()[:16]
log2_n = s["n"].bit_length() - 1
header = b"MAGPIEBK" + struct.pack(">HBBII", 1, 1, log2_n, s["r"], s["p"]) + salt
header += struct.pack(">I", v["segment_bytes"]) + check
ad = struct.pack(">I", 16) + b"magpie v1 backup" + header
payload = bytes.fromhex(v["payload"])
size = v["segment_bytes"]
segments = [payload[i : i + size] for i in range(0, len(payload), size)]
out = header
for i, segment in enumerate(segments):
    nonce = struct.pack(">QI", i, 1 if i == len(segments) - 1 else 0)
    out += AESGCM(key).encrypt(nonce, segment, ad)
print("file matches:", out.hex() == v["file"])
