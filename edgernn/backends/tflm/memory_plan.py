"""An offline memory plan that makes TFLM's WHILE loops cost the same per step whatever T is.

TFLM's WHILE kernel copies every loop-carried tensor three times a step (op outputs -> body
inputs, body outputs -> op outputs, op outputs -> cond inputs; ``kernels/while.cc``), and a
subgraph cannot name another subgraph's tensor, so the input sequence ``x`` (and a layer's
output sequence) would be copied in full at every step. TFLM's copy helpers skip a copy whose
source and destination are the same memory (``kernel_util.cc``, "Don't copy if the tensors
share memory"), and so does DYNAMIC_UPDATE_SLICE for its operand. So each sequence is made
*one* buffer: the model's ``OfflineMemoryAllocation`` metadata (TFLM's offline planner,
``micro/docs/memory_management.md``) gives its tensor in the main graph, in the cond graph and
in the body graph the same arena offset. Everything else is planned by TFLM as usual, around
these buffers.

Format: int32 ``[version 1, subgraph 0 (unused), N, offset of tensor 0, ..., offset of tensor
N-1]`` over the tensors of all subgraphs concatenated (-1: plan online), offsets multiples of
16. TFLM reads it that way since PR #1195 (2022, checked on the pip runtime by a probe); the
versions of ``micro_allocation_info.cc`` that index the array per subgraph (entry ``i`` for
tensor ``i`` of *every* subgraph) read it correctly too, because :func:`plan_offline`
orders each subgraph's tensors so that both readings give every allocated tensor the same
offset: the shared buffers sit at the same positions in every subgraph, and a position whose
entry belongs to another subgraph holds a tensor TFLM does not allocate (a constant, or an
unused zero-size tensor added for the purpose).

The plan's offsets: each sequence buffer lives from the op that writes it first to the last
op that reads it (main-graph op indices; everything inside a WHILE lies within that op), and
buffers whose lives overlap get disjoint ranges (greedy, largest first), so a stack of layers
reuses two sequence buffers however deep it is.

Without the copy skips (TFLM before mid-2022) the model still computes the same numbers; the
copies (each buffer onto itself) just come back.
"""

from __future__ import annotations

import numpy as np

from .graph import Graph, Program

ALIGN = 16
VERSION = 1
_ITEMSIZE = {"int8": 1, "int16": 2, "int32": 4, "int64": 8, "bool": 1}


def _nbytes(g: Graph, name: str) -> int:
    t = g.tensors[name]
    return int(np.prod(t.shape, dtype=np.int64)) * _ITEMSIZE[t.dtype]


def _allocated(g: Graph, name: str) -> bool:
    """Whether TFLM plans memory for the tensor (not a constant, a variable or zero bytes)."""
    t = g.tensors[name]
    return t.data is None and not t.variable and t.role != "pad" and _nbytes(g, name) > 0


def _groups(prog: Program) -> list[dict[int, list[str]]]:
    """The alias groups merged where they share a tensor: [{graph index: [tensor names]}]. A
    subgraph may hold more than one tensor of a group when their lives follow each other (a
    WHILE's input sequence and its output: one buffer, two tensors, as desktop TF Lite wants)."""
    parent: dict[tuple[int, str], tuple[int, str]] = {}

    def find(a):
        parent.setdefault(a, a)
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for group in prog.alias:
        for m in group[1:]:
            parent[find(m)] = find(group[0])
    merged: dict[tuple, dict[int, list[str]]] = {}
    for m in list(parent):
        gi, name = m
        merged.setdefault(find(m), {}).setdefault(gi, []).append(name)
    out = list(merged.values())
    for grp in out:
        if any(len(names) > 1 for gi, names in grp.items() if gi != 0):
            raise AssertionError(f"two tensors of a loop subgraph in one memory group: {grp}")
    for grp in out:
        if 0 not in grp:
            raise AssertionError(f"memory group without a main-graph tensor: {grp}")
    return out


def _lifetime(main: Graph, name: str) -> tuple[int, int]:
    """First and last main-graph op touching ``name`` (-1: a graph input; len(ops): an output)."""
    users = [i for i, op in enumerate(main.ops) if name in op.inputs or name in op.outputs]
    first = -1 if name in main.inputs else min(users)
    last = len(main.ops) if name in main.outputs else max(users)
    return first, last


def _offsets(prog: Program, groups: list[dict[int, list[str]]]) -> list[int]:
    main = prog.graphs[0]
    sizes = [-(-max(_nbytes(main, n) for n in g[0]) // ALIGN) * ALIGN for g in groups]
    spans = [[_lifetime(main, n) for n in g[0]] for g in groups]
    lives = [(min(a for a, _ in sp), max(b for _, b in sp)) for sp in spans]
    offsets: list[int | None] = [None] * len(groups)
    for k in sorted(range(len(groups)), key=lambda k: (-sizes[k], lives[k])):
        busy = sorted((offsets[j], offsets[j] + sizes[j]) for j in range(len(groups))
                      if offsets[j] is not None and lives[j][0] <= lives[k][1] and lives[k][0] <= lives[j][1])
        off = 0
        for lo, hi in busy:
            if off + sizes[k] <= lo:
                break
            off = max(off, hi)
        offsets[k] = off
    return offsets


def _pad(g: Graph, n: int) -> str:
    return g.add(f"{g.name}/pad{n}", (0,), "int8", role="pad")


def plan_offline(prog: Program) -> list[int]:
    """Give every alias group of ``prog`` one arena offset; reorder each graph's tensors (see
    the module docstring) and return the ``OfflineMemoryAllocation`` entries."""
    groups = _groups(prog)
    offsets = _offsets(prog, groups)
    member = [{name: off for grp, off in zip(groups, offsets) for gi, names in grp.items() if gi == k
               for name in names} for k in range(len(prog.graphs))]
    entries: list[int] = []
    for k, g in enumerate(prog.graphs):
        own: list[int] = []
        if k == 0:  # the main graph: its shared buffers first
            order = sorted(member[0], key=lambda n: list(g.tensors).index(n))
            order += [n for n in g.tensors if n not in member[0]]
            own = [member[0].get(n, -1) for n in order]
        else:
            base = len(entries)
            free = dict(member[k])
            loose = [n for n in g.tensors if n not in free and (_allocated(g, n) or g.tensors[n].variable)]
            fixed = [n for n in g.tensors if n not in free and n not in loose]
            order, pads = [], 0
            while free or loose or fixed:
                want = entries[len(order)] if len(order) < base else own[len(order) - base]
                pick = None
                if want >= 0:
                    pick = next((n for n, off in free.items() if off == want), None)
                    if pick is not None:
                        del free[pick]
                elif loose:
                    pick = loose.pop(0)
                if pick is None and fixed:
                    pick = fixed.pop(0)
                if pick is None:
                    pick = _pad(g, pads)
                    pads += 1
                    if pads > len(entries) + len(g.tensors):
                        raise AssertionError(f"no memory plan for subgraph {g.name}")
                order.append(pick)
                own.append(member[k].get(pick, -1))
        g.tensors = {n: g.tensors[n] for n in order}
        entries += own
    return [VERSION, 0, len(entries)] + entries
