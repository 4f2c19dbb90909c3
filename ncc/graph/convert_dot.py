"""Rendering of a :class:`ProgramGraph` as Graphviz DOT text.

Layout: one ``subgraph cluster_<i>`` per function ``i``, labelled with its name, holding the function's
nodes; module-level nodes (the external node, globals) sit outside the clusters. Instructions are boxes,
variables ellipses, constants octagons, the external node a dashed box. Each node's label is its
``text`` (or ``full_text``) and its tooltip its ``full_text``. Control edges are solid black, data edges
blue, call edges green and dashed; an edge is labelled with its position when that is above 0, and a
data edge always.
"""

from __future__ import annotations

import re

from ncc.graph.program_graph import CALL, CONSTANT, CONTROL, DATA, INSTRUCTION, VARIABLE, ProgramGraph

__all__ = ["to_dot", "dot_quote"]

_NODE_STYLE = {
    INSTRUCTION: 'shape=box, style="rounded,filled", fillcolor="#dbe8f6"',
    VARIABLE: 'shape=ellipse, style=filled, fillcolor="#e3f2d9"',
    CONSTANT: 'shape=octagon, style=filled, fillcolor="#fbe7cc"',
}
_EXTERNAL_STYLE = 'shape=box, style="dashed,bold", color="#555555"'
_EDGE_STYLE = {
    CONTROL: 'color="#000000"',
    DATA: 'color="#1f5fbf", fontcolor="#1f5fbf"',
    CALL: 'color="#2e9a3c", fontcolor="#2e9a3c", style=dashed',
}
_CONTROL_CHARS = re.compile(r"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f]")


def dot_quote(text: str) -> str:
    """Quote a string for DOT so that Graphviz shows it as written.

    Backslashes and double quotes are escaped, line breaks become ``\\n`` (a centred line break in a
    label), and other control characters are shown as ``\\xNN``.

    Args:
        text: any string.

    Returns:
        The string in double quotes, safe as a DOT ID, label or tooltip.
    """
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    text = _CONTROL_CHARS.sub(lambda m: f"\\\\x{ord(m.group()):02x}", text)
    return f'"{text}"'


def _node_line(graph: ProgramGraph, i: int, label: str, indent: str) -> str:
    """The DOT statement that declares node ``i``."""
    style = _EXTERNAL_STYLE if i == 0 else _NODE_STYLE[int(graph.node_type[i])]
    text = graph.node_full_text[i] if label == "full_text" else graph.node_text[i]
    return (f"{indent}n{i} [label={dot_quote(text)}, tooltip={dot_quote(graph.node_full_text[i])}, "
            f"{style}];")


def to_dot(graph: ProgramGraph, label: str = "text") -> str:
    """Render a program graph as Graphviz DOT text.

    Args:
        graph: the program graph.
        label: ``"text"`` (opcodes and types, compact) or ``"full_text"`` (whole instructions) as node
            labels; the tooltip is always the full text.

    Returns:
        The DOT source of one ``digraph``, ending in a newline. Node ``i`` has the ID ``n<i>``.

    Raises:
        ValueError: ``label`` is neither ``"text"`` nor ``"full_text"``.
    """
    if label not in ("text", "full_text"):
        raise ValueError(f"label must be 'text' or 'full_text', got {label!r}")
    lines = [
        f"digraph {dot_quote(graph.module_name)} {{",
        f'  graph [label={dot_quote(graph.module_name)}, labelloc=t, fontname="Helvetica", '
        'compound=true, newrank=true];',
        '  node [fontname="Courier", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    functions = graph.node_function.tolist()
    members: list[list[int]] = [[] for _ in graph.function_names]
    for i, f in enumerate(functions):
        if f < 0 or f >= len(members):
            lines.append(_node_line(graph, i, label, "  "))
        else:
            members[f].append(i)
    for f, name in enumerate(graph.function_names):
        lines.append(f"  subgraph cluster_{f} {{")
        lines.append(f'    label={dot_quote(name)}; style="rounded"; color="#888888"; fontname="Helvetica";')
        lines.extend(_node_line(graph, i, label, "    ") for i in members[f])
        lines.append("  }")
    sources, targets = graph.edge_index.tolist()
    for source, target, flow, position in zip(sources, targets, graph.edge_flow.tolist(),
                                              graph.edge_position.tolist()):
        attributes = [_EDGE_STYLE[flow]] if flow in _EDGE_STYLE else []
        if position > 0 or flow == DATA:
            attributes.append(f'label="{position}"')
        lines.append(f"  n{source} -> n{target} [{', '.join(attributes)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
