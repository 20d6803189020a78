"""Checks `rapport graph export` against networkx.

usage: check_export.py EDGE_LIST NODES_CSV GRAPHML
Recomputes PageRank with networkx on the original edge list and compares it with the
exported node table (by user_id), then reads the GraphML export back. Prints a JSON
summary; exits non-zero on a mismatch.
"""
import csv
import json
import sys

import networkx as nx

edges_path, nodes_csv, graphml = sys.argv[1:4]
g = nx.DiGraph()
with open(edges_path) as f:
    for line in f:
        parts = line.split()
        if len(parts) < 2:
            continue
        w = float(parts[2]) if len(parts) > 2 else 1.0
        g.add_edge(parts[0], parts[1], weight=w)
reference = nx.pagerank(g, alpha=0.85, tol=1e-12, max_iter=10000, weight="weight")

with open(nodes_csv) as f:
    rows = list(csv.DictReader(f))
header = list(rows[0].keys())
worst = max(abs(float(r["pagerank"]) - reference[r["user_id"]]) for r in rows)

h = nx.read_graphml(graphml)
pr_graphml = {d["user_id"]: d["pagerank"] for _, d in h.nodes(data=True)}
graphml_worst = max(abs(pr_graphml[r["user_id"]] - float(r["pagerank"])) for r in rows)

out = {
    "header": header,
    "rows": len(rows),
    "reference_nodes": g.number_of_nodes(),
    "pagerank_max_abs_diff": worst,
    "graphml_nodes": h.number_of_nodes(),
    "graphml_edges": h.number_of_edges(),
    "graphml_vs_csv_max_abs_diff": graphml_worst,
}
print(json.dumps(out))
ok = worst < 1e-6 and graphml_worst < 1e-12 and len(rows) == g.number_of_nodes()
sys.exit(0 if ok else 1)
