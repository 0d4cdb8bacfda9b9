"""Parses a PROV-O JSON-LD document (stdin) with rdflib and prints what the sessions test
checks, as JSON: every triple of the graph as [subject, predicate, object] strings, with
prefixes expanded, so the test checks the RDF meaning and not the JSON-LD spelling."""

import json
import sys

import rdflib

graph = rdflib.Graph()
graph.parse(data=sys.stdin.read(), format="json-ld")
triples = sorted([str(s), str(p), str(o)] for s, p, o in graph)
json.dump(triples, sys.stdout)
