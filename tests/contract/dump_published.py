"""Writes the descriptors shipped in the published chaukas-spec packages as one
FileDescriptorSet, for crates/proto/tests/contract.rs to compare with our protos.

Run inside the throwaway virtualenv tests/harness/run-all.sh creates from requirements.txt.
"""

import sys

from google.protobuf import descriptor_pb2

import chaukas.spec.client.v1.client_pb2 as client
import chaukas.spec.common.v1.events_pb2 as events
import chaukas.spec.common.v1.query_pb2 as query
import chaukas.spec.server.v1.server_pb2 as server


def main(out_path: str) -> None:
    descriptor_set = descriptor_pb2.FileDescriptorSet()
    for module in (events, query, server, client):
        module.DESCRIPTOR.CopyToProto(descriptor_set.file.add())
    with open(out_path, "wb") as out:
        out.write(descriptor_set.SerializeToString())
    names = ", ".join(f.name for f in descriptor_set.file)
    print(f"wrote {len(descriptor_set.file)} published descriptors ({names}) to {out_path}")


if __name__ == "__main__":
    main(sys.argv[1])
