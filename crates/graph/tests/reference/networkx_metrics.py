"""Reference metrics from networkx for the Rust graph tests.

usage: networkx_metrics.py EDGES N PARTITION [--betweenness]
EDGES holds `source target weight` per line (directed, node ids 0..N-1); PARTITION
holds our community id per node, one per line. Prints one JSON object.
"""
import json
import sys

import networkx as nx

edges_path, n, partition_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
want_betweenness = "--betweenness" in sys.argv

g = nx.DiGraph()
g.add_nodes_from(range(n))
with open(edges_path) as f:
    for line in f:
        s, t, w = line.split()
        g.add_edge(int(s), int(t), weight=float(w))

out = {}
out["pagerank"] = [v for _, v in sorted(nx.pagerank(g, alpha=0.85, tol=1e-14, max_iter=10000, weight="weight").items())]
if want_betweenness:
    bc = nx.betweenness_centrality(g, normalized=True, weight=None)
    out["betweenness"] = [bc[i] for i in range(n)]

# Undirected view: {u, v} weighs w(u->v) + w(v->u).
u = nx.Graph()
u.add_nodes_from(range(n))
for a, b, d in g.edges(data=True):
    if u.has_edge(a, b):
        u[a][b]["weight"] += d["weight"]
    else:
        u.add_edge(a, b, weight=d["weight"])
core = nx.core_number(u)
out["core"] = [core[i] for i in range(n)]
communities = nx.community.louvain_communities(u, weight="weight", seed=42)
out["louvain_modularity"] = nx.community.modularity(u, communities, weight="weight")
out["louvain_count"] = len(communities)

with open(partition_path) as f:
    ours = [int(x) for x in f.read().split()]
groups = {}
for node, c in enumerate(ours):
    groups.setdefault(c, set()).add(node)
out["modularity_of_ours"] = nx.community.modularity(u, list(groups.values()), weight="weight")
print(json.dumps(out))
