#!/usr/bin/python3
"""check-include-cycles.py - fail when the include graph of src/ has a cycle.

A module is a .c file and its .h (src/lease.c + src/lease.h = "lease"); a
subsystem's internal header, <m>_int.h or <m>_internal.h, belongs to
module <m> (otherwise it would hide the cycle it carries); any other
header without a .c is a module of its own. Module A depends on module B
when any file of A has `#include "B.h"`. A cycle means two subsystems
that each need the other: the lower one should receive a function table
or a callback at init instead (struct lease_ops, router_set_type_check,
struct policy_lua_provider).

Usage: tests/check-include-cycles.py [DIR ...]   (default: src, and
src/* subfolders if any). Prints every cycle, one per strongly connected
group of modules, with the include lines that close it; exits 1 if there
is one, 0 otherwise.
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
INTERNAL = re.compile(r'^(.+?)_(?:int|internal)$')


def base_of(path):
    return os.path.splitext(os.path.basename(path))[0]


def module_namer(names):
    """Maps a file name to its module, given every base name present."""
    def module_of(path):
        base = base_of(path)
        m = INTERNAL.match(base)
        if m is not None and m.group(1) in names:
            return m.group(1)
        return base
    return module_of


def read_graph(dirs):
    """{module: {dep: "file:line"}} over every .c/.h in dirs."""
    files = [os.path.join(d, name) for d in dirs
             for name in sorted(os.listdir(d)) if name.endswith((".c", ".h"))]
    module_of = module_namer({base_of(f) for f in files})
    graph = {}
    for path in files:
        mod = module_of(path)
        deps = graph.setdefault(mod, {})
        with open(path, encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                m = INCLUDE.match(line)
                if m is None:
                    continue
                dep = module_of(m.group(1))
                if dep != mod:
                    deps.setdefault(dep, "%s:%d" % (path, lineno))
    for deps in list(graph.values()):
        for dep in deps:
            graph.setdefault(dep, {})
    return graph


def strongly_connected(graph):
    """Tarjan's algorithm, iterative; yields groups of 2+ modules."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(root):
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, deps = work[-1]
            advanced = False
            for dep in deps:
                if dep not in index:
                    index[dep] = low[dep] = counter[0]
                    counter[0] += 1
                    stack.append(dep)
                    on_stack.add(dep)
                    work.append((dep, iter(sorted(graph[dep]))))
                    advanced = True
                    break
                if dep in on_stack:
                    low[node] = min(low[node], index[dep])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    out.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def one_cycle(graph, group):
    """A shortest cycle through the group's first module (BFS)."""
    members = set(group)
    start = group[0]
    prev = {start: None}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for dep in sorted(graph[node]):
            if dep not in members:
                continue
            if dep == start:
                path = [node]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return list(reversed(path)) + [start]
            if dep not in prev:
                prev[dep] = node
                queue.append(dep)
    return [start]


def main(argv):
    dirs = argv[1:]
    if not dirs:
        dirs = ["src"] + sorted(
            os.path.join("src", d) for d in os.listdir("src")
            if os.path.isdir(os.path.join("src", d)))
    graph = read_graph(dirs)
    groups = strongly_connected(graph)
    for group in groups:
        cycle = one_cycle(graph, group)
        print("include cycle: " + " -> ".join(cycle))
        for a, b in zip(cycle, cycle[1:]):
            print("    %s includes %s.h" % (graph[a][b], b))
        if len(group) > len(cycle) - 1:
            print("    (all modules in this knot: %s)" % ", ".join(group))
    if groups:
        print("check-include-cycles: %d cycle(s)" % len(groups))
        return 1
    print("check-include-cycles: ok (%d modules)" % len(graph))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
