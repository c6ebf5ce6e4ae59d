#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (fuzz/seeds/<target>/) from the golden vectors of
src/proto/wire.rs and seal.rs, real packets and the config fixtures. Run from anywhere; the
output is checked in, so re-run it only when a golden vector changes."""
import os, shutil, struct

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
out = os.path.join(here, "seeds")
VERSION = 4

def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(bytes(data))

shutil.rmtree(out, ignore_errors=True)

# wire.rs golden frames, one per file and all in one datagram.
wire = {
    "data": [0x01, 0x02, 0x01, 0x02, 0x0a, 0x0b, 0x0c, 0x0d, 0x00, 0x03, 0x45, 0x00, 0xff],
    "install": [0x05, 0x02, 0x01, 0x02, 0x0a, 0x0b, 0x0c, 0x0d, 0x00, 0x03, 0x12, 0x34, 0x45, 0x00],
    "packed": [0x06, 0x02, 0x01, 0x02, 0x0a, 0x0b, 0x0c, 0x0d, 0x00, 0x03, 0x00, 0x41, 0xaa, 0xbb, 0xcc],
    "ack": [0x02, 0x01, 0xff, 0xfe, 0x00, 0x7d, 0x80, 0, 0, 0, 0, 0, 0, 0x01, 0xfe, 0xdc, 0xba, 0x98],
    "probe": [0x03, 0x07, 0xde, 0xad, 0xbe, 0xef, 0x01],
    "linkconfig": [0x04, 0x00, 0x06, 0x00, 0x01, 0x02, 0xac, 0x02, 0x00],
    "linkremoved": [0x04, 0x00, 0x02, 0x01, 0x09],
    "reorderhint": [0x04, 0x00, 0x04, 0x02, 0xc0, 0xb8, 0x02],
    "close": [0x04, 0x00, 0x01, 0x03],
    "linkname": [0x04, 0x00, 0x06, 0x04, 0x01, 0x03, ord("w"), ord("a"), ord("n")],
}
for k, v in wire.items():
    put("wire_decode", k, v)
put("wire_decode", "all", sum(wire.values(), []))

# seal.rs layouts: init (with and without mac2), response, data, cookie reply.
put("seal_open", "init", [VERSION, 1] + [0x11] * 4 + [0x5a] * 112 + [0x33] * 16)
put("seal_open", "init-mac2", [VERSION, 1] + [0x11] * 4 + [0x5a] * 112 + [0x33] * 32)
put("seal_open", "response", [VERSION, 2] + [0, 0, 0, 7] + [0x22] * 4 + [0x5a] * 57 + [0x33] * 16)
put("seal_open", "data", [VERSION, 3] + [0, 0, 0, 7] + [0, 0, 0, 1] + wire["data"] + [0x44] * 16)
put("seal_open", "cookie", [VERSION, 4] + [0x11] * 4 + [0x66] * 12 + [0x77] * 32)

def csum(b):
    if len(b) % 2:
        b = b + b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF

def ipv4(proto, payload, src=(192, 168, 1, 10), dst=(93, 184, 216, 34)):
    h = bytearray(struct.pack("!BBHHHBBH4B4B", 0x45, 0, 20 + len(payload), 0x1234, 0x4000, 64, proto, 0, *src, *dst))
    struct.pack_into("!H", h, 10, csum(bytes(h)))
    return bytes(h) + payload

tcp_syn = struct.pack("!HHIIBBHHH", 40000, 443, 1, 0, 0x80, 0x02, 65535, 0, 0) + bytes(
    [2, 4, 0x05, 0xb4, 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7])
tcp_ack = struct.pack("!HHIIBBHHH", 40000, 443, 2, 2, 0x80, 0x10, 500, 0, 0) + bytes(
    [1, 1, 8, 10, 0, 0, 0, 2, 0, 0, 0, 1]) + b"x" * 100
udp = struct.pack("!HHHH", 5353, 53, 8 + 12, 0) + b"dns-question"
v6 = bytes([0x60, 0, 0, 0]) + struct.pack("!HBB", 8 + 4, 17, 64) + bytes(15) + b"\x01" + bytes(15) + b"\x02" + struct.pack("!HHHH", 1, 2, 12, 0) + b"abcd"
pkts = {"tcp-syn": ipv4(6, tcp_syn), "tcp-ack": ipv4(6, tcp_ack), "udp": ipv4(17, udp), "v6-udp": v6,
        "icmp": ipv4(1, bytes([8, 0, 0, 0, 0, 1, 0, 1]) + b"ping")}
for k, v in pkts.items():
    put("packet", k, v)
    # unpack: [ctx][install length][installed packet][packed bytes]
    put("unpack", k, struct.pack("!HH", 0x0041, len(v)) + v + bytes([0x00, 0x01, 0x02, 0x03]) + b"payload")

# reorder: steps [seq u16][prev u8][len u8][time u8] in and out of order, with timeouts.
steps = [(1, 0, 40, 1), (3, 1, 40, 1), (2, 1, 40, 1), (5, 2, 40, 0x85), (4, 1, 10, 0x3f), (4, 1, 10, 1)]
put("reorder", "steps", b"".join(struct.pack("!HBBB", *s) for s in steps))

fx = os.path.join(root, "tests", "fixtures", "config")
for n in sorted(os.listdir(fx)):
    if n.endswith(".conf"):
        with open(os.path.join(fx, n), "rb") as f:
            put("uci", n, f.read())
with open(os.path.join(root, "openwrt", "files", "braid.config"), "rb") as f:
    put("uci", "braid.config", f.read())
