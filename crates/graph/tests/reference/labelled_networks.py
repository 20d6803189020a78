"""Labelled networks and networkx's Louvain on them, for the Leiden comparison.

Writes OUT_DIR/<name>.edges ("u v w" per line, each undirected edge once) and
OUT_DIR/<name>.labels (one label per node), and prints one JSON line per network:
{"name", "n", "m", "nx_nmi", "nx_modularity"}, networkx's Louvain averaged over 20 seeds.

Networks: Zachary's karate club (the two factions after the split, as networkx ships
them) and LFR benchmark graphs (networkx's generator; planted communities as labels).
"""

import json
import math
import sys
from collections import Counter

import networkx as nx


def nmi(a, b):
    """Normalised mutual information, arithmetic mean of the entropies (sklearn's default)."""
    n = len(a)
    ca, cb, cab = Counter(a), Counter(b), Counter(zip(a, b))
    h = lambda c: -sum(v / n * math.log(v / n) for v in c.values())
    mi = sum(v / n * math.log(v * n / (ca[x] * cb[y])) for (x, y), v in cab.items())
    ha, hb = h(ca), h(cb)
    if ha == 0 and hb == 0:
        return 1.0
    return mi / ((ha + hb) / 2)


def networks():
    g = nx.karate_club_graph()
    yield "karate", g, [g.nodes[v]["club"] for v in g.nodes]
    # The 78 friendships alone, as most of the literature uses the network.
    h = nx.Graph(g.edges())
    h.add_nodes_from(g.nodes(data=True))
    yield "karate_unweighted", h, [g.nodes[v]["club"] for v in sorted(h.nodes)]
    for seed, (n, mu) in enumerate([(250, 0.1), (500, 0.3), (1000, 0.4)]):
        g = nx.LFR_benchmark_graph(
            n, 3, 1.5, mu, average_degree=8, max_degree=50, min_community=20, max_community=100, seed=seed + 10
        )
        g.remove_edges_from(nx.selfloop_edges(g))
        labels = [min(g.nodes[v]["community"]) for v in g.nodes]
        yield f"lfr_{n}_mu{mu}", g, labels


def main():
    out = sys.argv[1]
    for name, g, labels in networks():
        g = nx.convert_node_labels_to_integers(g, ordering="sorted")
        with open(f"{out}/{name}.edges", "w") as f:
            # Weighted where the network is (networkx's karate club carries the
            # interaction counts of Zachary's paper); 1 otherwise.
            for u, v, w in g.edges(data="weight", default=1):
                f.write(f"{u} {v} {w}\n")
        with open(f"{out}/{name}.labels", "w") as f:
            f.write("\n".join(str(x) for x in labels))
        nmis, qs = [], []
        for seed in range(20):
            comms = nx.community.louvain_communities(g, seed=seed)
            part = [0] * g.number_of_nodes()
            for i, c in enumerate(comms):
                for v in c:
                    part[v] = i
            nmis.append(nmi(labels, part))
            qs.append(nx.community.modularity(g, comms))
        print(json.dumps({
            "name": name, "n": g.number_of_nodes(), "m": g.number_of_edges(),
            "nx_nmi": sum(nmis) / len(nmis), "nx_modularity": sum(qs) / len(qs),
        }))


if __name__ == "__main__":
    main()
