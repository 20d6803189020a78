#!/usr/bin/env python3
"""Checks the workspace's declared minimum Rust (`rust-version` in Cargo.toml) against the
locked dependencies: fails when one needs a newer Rust than the workspace declares, or
when the declaration is higher than anything requires (it would then overstate it).

Only one Rust toolchain can be installed here (no `cargo +1.94 check`), so the lock
file's own declarations are the evidence; the toolchain in use must be at least as new.
"""
import json, re, subprocess, sys

def ver(s):
    parts = [int(x) for x in s.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))

meta = json.loads(subprocess.run(
    ["cargo", "metadata", "--format-version", "1", "--locked"],
    check=True, capture_output=True, text=True).stdout)
members = set(meta["workspace_members"])
used = {n["id"] for n in meta["resolve"]["nodes"]}
declared = {p["rust_version"] for p in meta["packages"] if p["id"] in members}
if len(declared) != 1 or None in declared:
    sys.exit(f"msrv: workspace members declare {sorted(map(str, declared))}; want one rust-version")
declared = declared.pop()
need = max((x for x in [(p.get("rust_version") or "0", p["name"], p["version"])
            for p in meta["packages"] if p["id"] in used and p["id"] not in members]),
           key=lambda x: ver(x[0]))
rustc = re.search(r"rustc (\d+\.\d+\.\d+)",
                  subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout)
if ver(need[0]) > ver(declared):
    sys.exit(f"msrv: {need[1]} {need[2]} needs Rust {need[0]}, but Cargo.toml declares {declared}")
if ver(need[0]) < ver(declared):
    sys.exit(f"msrv: Cargo.toml declares {declared}, but the lock file needs only {need[0]} ({need[1]})")
if rustc and ver(rustc.group(1)) < ver(declared):
    sys.exit(f"msrv: this rustc {rustc.group(1)} is older than the declared {declared}")
print(f"msrv: Rust {declared} (set by {need[1]} {need[2]}); building with {rustc.group(1) if rustc else '?'}")
