"""API-format workflows (ComfyUI's /prompt JSON): reading, `--set` edits, execution order."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Iterable


class GraphError(ValueError):
    """The workflow file or an edit of it is unusable; the message says what to change."""


def load_graph(path: str | Path) -> dict:
    """Reads an API-format workflow: {node_id: {"class_type": ..., "inputs": {...}}}."""
    path = Path(path)
    try:
        graph = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GraphError(f"workflow file {path} does not exist") from None
    except json.JSONDecodeError as error:
        raise GraphError(f"workflow file {path} is not valid JSON: {error}") from None
    if isinstance(graph, dict) and "nodes" in graph and "links" in graph:
        raise GraphError(f"{path} is a UI-format workflow; run the API-format file instead (workflows/*_api.json, "
                         "or File > Export (API) in ComfyUI)")
    if isinstance(graph, dict) and isinstance(graph.get("prompt"), dict):
        graph = graph["prompt"]  # a saved /prompt request body
    if not isinstance(graph, dict) or not graph:
        raise GraphError(f"{path} holds no workflow: expected an object of nodes {{id: {{class_type, inputs}}}}")
    for node_id, node in graph.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str) \
                or not isinstance(node.get("inputs", {}), dict):
            raise GraphError(f"{path}: node {node_id!r} needs a 'class_type' string and an 'inputs' object")
    return graph


def is_link(value) -> bool:
    """An input wired to another node's output: [source_node_id, output_index]."""
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int))
            and isinstance(value[1], int) and not isinstance(value[1], bool))


def find_node(graph: dict, ref: str) -> str:
    """A node named by id, by title (`_meta.title`) or by class_type when only one node has it."""
    if ref in graph:
        return ref
    for key in ("title", "class_type"):
        matches = [nid for nid, node in graph.items()
                   if (node.get("_meta", {}).get("title") if key == "title" else node["class_type"]) == ref]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise GraphError(f"{ref!r} names {len(matches)} nodes ({', '.join(matches)}); use the node id instead")
    listing = ", ".join(f"{nid} ({node['class_type']})" for nid, node in graph.items())
    raise GraphError(f"no node {ref!r} in the workflow; nodes: {listing}")


def parse_value(text: str, current):
    """A --set value, typed like the value it replaces (JSON when there is none)."""
    if isinstance(current, bool):
        lowered = text.strip().lower()
        if lowered not in ("true", "false", "1", "0", "yes", "no"):
            raise GraphError(f"expected true or false, got {text!r}")
        return lowered in ("true", "1", "yes")
    if isinstance(current, int):
        try:
            return int(text)
        except ValueError:
            raise GraphError(f"expected an integer, got {text!r}") from None
    if isinstance(current, float):
        try:
            return float(text)
        except ValueError:
            raise GraphError(f"expected a number, got {text!r}") from None
    if isinstance(current, str):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_sets(graph: dict, assignments: Iterable[str]) -> dict:
    """A copy of the graph with each `NODE.INPUT=VALUE` applied (NODE: id, title or unique class_type)."""
    graph = copy.deepcopy(graph)
    for assignment in assignments:
        target, sep, text = assignment.partition("=")
        node_ref, dot, input_name = target.rpartition(".")
        if not sep or not dot or not node_ref or not input_name:
            raise GraphError(f"--set {assignment!r}: write NODE.INPUT=VALUE, e.g. --set 3.steps=4 or "
                             "--set KinemaSampler.seed=7")
        node_id = find_node(graph, node_ref)
        inputs = graph[node_id].setdefault("inputs", {})
        if is_link(inputs.get(input_name)):
            raise GraphError(f"--set {assignment!r}: input {input_name!r} of node {node_id} is wired to node "
                             f"{inputs[input_name][0]}; set a widget value instead")
        try:
            inputs[input_name] = parse_value(text, inputs.get(input_name))
        except GraphError as error:
            raise GraphError(f"--set {assignment!r}: {error}") from None
    return graph


def execution_order(graph: dict, targets: Iterable[str]) -> list[str]:
    """The nodes the targets depend on (targets included), each after all of its inputs."""
    order: list[str] = []
    state: dict[str, str] = {}  # node id -> "visiting" | "done"

    def visit(node_id: str, path: tuple[str, ...]) -> None:
        if state.get(node_id) == "done":
            return
        if state.get(node_id) == "visiting":
            raise GraphError(f"the workflow has a cycle: {' -> '.join((*path, node_id))}")
        state[node_id] = "visiting"
        for name, value in graph[node_id].get("inputs", {}).items():
            if is_link(value):
                source = str(value[0])
                if source not in graph:
                    raise GraphError(f"node {node_id} input {name!r} is wired to node {source}, which is not in "
                                     "the workflow")
                visit(source, (*path, node_id))
        state[node_id] = "done"
        order.append(node_id)

    for target in targets:
        visit(target, ())
    return order
