"""Re-encodes events with the published Python protobuf runtime's deterministic
serialization, for tests/tests/content_hash.rs: our content hash must be the SHA-256 of
exactly these bytes, so any third party can recompute it (docs/audit.md).

Reads one hex-encoded chaukas.spec.common.v1.Event per line on stdin; writes, per line, the
hex of SerializeToString(deterministic=True) of the parsed event and its SHA-256.
"""

import hashlib
import sys

import chaukas.spec.common.v1.events_pb2 as events


def main() -> None:
    for line in sys.stdin:
        event = events.Event()
        event.ParseFromString(bytes.fromhex(line.strip()))
        canonical = event.SerializeToString(deterministic=True)
        print(canonical.hex(), hashlib.sha256(canonical).hexdigest())


if __name__ == "__main__":
    main()
