"""igraph baseline for `rapport bench graph`: the same graphs, the same operations.

usage: igraph_baseline.py EDGES N QUERIES [--betweenness]
EDGES holds `source target` per line (directed); QUERIES one node id per line for the
ego-network timing. Prints one JSON object with seconds per operation.
"""
import json
import resource
import sys
import time

import igraph as ig

edges_path, n, queries_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
out = {"igraph_version": ig.__version__}

t = time.perf_counter()
g = ig.Graph.Read_Edgelist(edges_path, directed=True)
if g.vcount() < n:
    g.add_vertices(n - g.vcount())
out["load_s"] = time.perf_counter() - t

t = time.perf_counter()
pr = g.pagerank(damping=0.85, directed=True, implementation="prpack")
out["pagerank_s"] = time.perf_counter() - t

if "--betweenness" in sys.argv:
    t = time.perf_counter()
    g.betweenness(directed=True)
    out["betweenness_exact_s"] = time.perf_counter() - t

u = g.as_undirected(mode="collapse")
t = time.perf_counter()
c = u.community_multilevel()
out["louvain_s"] = time.perf_counter() - t
out["louvain_modularity"] = c.modularity

t = time.perf_counter()
u.coreness()
out["kcore_s"] = time.perf_counter() - t

with open(queries_path) as f:
    queries = [int(x) for x in f.read().split()]
lat = []
for q in queries:
    t = time.perf_counter()
    u.neighborhood(vertices=q, order=2)
    lat.append(time.perf_counter() - t)
lat.sort()
out["ego2_p50_ms"] = lat[len(lat) // 2] * 1e3
out["ego2_p99_ms"] = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
