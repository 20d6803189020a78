//! Social network analysis over the relationship graph, as pure functions on a compact
//! in-memory graph ([`Graph`]). No I/O: the application loads edges from the store, builds
//! a [`Graph`] and writes the results back as profile scores.
//!
//! Conventions (documented in docs/graph.md, checked against networkx in tests):
//! - the graph is directed and weighted; parallel edges are summed, self-loops dropped;
//! - PageRank is the standard one (damping 0.85, uniform teleport, dangling mass spread
//!   uniformly), weighted by edge weight;
//! - betweenness follows edge direction over unweighted shortest paths, normalised like
//!   networkx (`1/((n-1)(n-2))`);
//! - communities, k-core, reach and "closeness" use the undirected view, where the
//!   weight of `{u, v}` is `w(u→v) + w(v→u)`.

pub mod betweenness;
pub mod community;
pub mod csr;
pub mod edgelist;
pub mod kcore;
pub mod leiden;
pub mod pagerank;
pub mod paths;
pub mod reach;
pub mod social;

pub use csr::{Graph, NodeId};
