"""`kinema run`: executes an API-format workflow of Kinema nodes in this process, without ComfyUI.

Like ComfyUI it validates the whole graph first (node types, wiring, widget values), then
runs only what the output nodes need, each node after its inputs.
"""
from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from typing import Any, Optional

from .graph import GraphError, apply_sets, execution_order, is_link, load_graph


@dataclass
class RunResult:
    outputs: dict[str, tuple] = field(default_factory=dict)  # node id -> the node's return values
    ui: dict[str, dict] = field(default_factory=dict)  # output node id -> its "ui" dict (saved files)

    def saved_files(self) -> list[str]:
        """Paths returned by output nodes (e.g. the mp4 of KinemaDecodeToVideo)."""
        return [value for node_id in self.ui for value in self.outputs[node_id] if isinstance(value, str)]


def _node_classes() -> tuple[dict, dict]:
    from ..nodes import DISABLED_NODES, NODE_CLASS_MAPPINGS

    return NODE_CLASS_MAPPINGS, DISABLED_NODES


def _declared_inputs(node_class) -> dict[str, tuple[str, Any, dict]]:
    """name -> (section, type or combo list, options), in declaration order."""
    spec = node_class.INPUT_TYPES()
    declared = {}
    for section in ("required", "optional", "hidden"):
        for name, entry in spec.get(section, {}).items():
            declared[name] = (section, entry if isinstance(entry, str) else entry[0],
                              entry[1] if not isinstance(entry, str) and len(entry) > 1 else {})
    return declared


def _check_widget(where: str, kind, options: dict, value) -> None:
    if isinstance(kind, list):
        if value not in kind:
            shown = ", ".join(map(repr, kind[:12])) + (" ..." if len(kind) > 12 else "")
            hint = "; model files are looked up under the --models folders" if isinstance(value, str) and "." in value else ""
            raise GraphError(f"{where}: {value!r} is not one of the choices ({shown or 'none available'}){hint}")
        return
    expected = {"INT": int, "FLOAT": (int, float), "STRING": str, "BOOLEAN": bool}.get(kind)
    if expected is None:
        raise GraphError(f"{where} takes a {kind} from another node; wire it as [node_id, output_index]")
    if not isinstance(value, expected) or (kind != "BOOLEAN" and isinstance(value, bool)):
        raise GraphError(f"{where}: expected {kind}, got {value!r}")
    if kind in ("INT", "FLOAT"):
        low, high = options.get("min"), options.get("max")
        if (low is not None and value < low) or (high is not None and value > high):
            raise GraphError(f"{where}: {value} is outside [{low}, {high}]")


def validate(graph: dict, classes: dict, disabled: dict) -> list[str]:
    """Checks every node; returns the output nodes to run."""
    outputs = []
    for node_id, node in graph.items():
        class_type = node["class_type"]
        if class_type not in classes:
            reason = disabled.get(class_type)
            raise GraphError(
                f"node {node_id}: {class_type} is disabled here: {reason}" if reason else
                f"node {node_id}: {class_type} is not a Kinema node; `kinema run` runs only Kinema nodes "
                "(use `kinema submit` to run other nodes in ComfyUI)")
        node_class = classes[class_type]
        declared = _declared_inputs(node_class)
        inputs = node.get("inputs", {})
        for name in inputs:
            if name not in declared or declared[name][0] == "hidden":
                raise GraphError(f"node {node_id} ({class_type}) has no input {name!r}; its inputs: "
                                 f"{', '.join(n for n, d in declared.items() if d[0] != 'hidden')}")
        for name, (section, kind, options) in declared.items():
            where = f"node {node_id} ({class_type}) input {name!r}"
            if name not in inputs:
                if section == "required":
                    raise GraphError(f"{where} is missing")
                continue
            value = inputs[name]
            if is_link(value):
                _check_link(graph, classes, where, kind, value)
            else:
                _check_widget(where, kind, options, value)
        if getattr(node_class, "OUTPUT_NODE", False):
            outputs.append(node_id)
    if not outputs:
        raise GraphError("the workflow has no output node (e.g. KinemaDecodeToVideo or KinemaSaveVideo), so "
                         "nothing would be made")
    return outputs


def _check_link(graph: dict, classes: dict, where: str, kind, link: list) -> None:
    source_id, index = str(link[0]), link[1]
    if source_id not in graph:
        raise GraphError(f"{where} is wired to node {source_id}, which is not in the workflow")
    source = graph[source_id]
    returns = getattr(classes.get(source["class_type"]), "RETURN_TYPES", ())
    if not 0 <= index < len(returns):
        raise GraphError(f"{where} is wired to output {index} of node {source_id} ({source['class_type']}), "
                         f"which has {len(returns)} outputs")
    produced = returns[index]
    if isinstance(kind, str) and not set(produced.split(",")) & set(kind.split(",")):  # "A,B" takes A or B, as ComfyUI
        raise GraphError(f"{where} takes {kind} but is wired to a {produced} output of node {source_id} "
                         f"({source['class_type']})")


def run_graph(graph: dict, log: Optional[logging.Logger] = None) -> RunResult:
    """Validates and executes an API-format graph of Kinema nodes."""
    log = log or logging.getLogger("kinema")
    classes, disabled = _node_classes()
    targets = validate(graph, classes, disabled)
    result = RunResult()
    for node_id in execution_order(graph, targets):
        node = graph[node_id]
        node_class = classes[node["class_type"]]
        declared = _declared_inputs(node_class)
        kwargs = {}
        for name, value in node.get("inputs", {}).items():
            kwargs[name] = result.outputs[str(value[0])][value[1]] if is_link(value) else value
        if "unique_id" in declared and declared["unique_id"][0] == "hidden":
            kwargs["unique_id"] = node_id
        log.info("Kinema: running node %s (%s)", node_id, node["class_type"])
        returned = getattr(node_class(), node_class.FUNCTION)(**kwargs)
        if isinstance(returned, dict):
            if "ui" in returned:
                result.ui[node_id] = returned["ui"]
            returned = returned.get("result", ())
        result.outputs[node_id] = tuple(returned)
    return result


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "run", help="run an API-format workflow of Kinema nodes in this process (no ComfyUI needed)",
        description="Runs an API-format workflow of Kinema nodes in this process and prints the files it wrote.")
    parser.add_argument("workflow", help="API-format workflow JSON, e.g. workflows/wan21_t2v_1.3b_api.json")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="NODE.INPUT=VALUE",
                        help="change an input before running; NODE is an id, a title or a unique class name "
                             "(repeatable), e.g. --set KinemaSampler.steps=20")
    parser.add_argument("--models", action="append", default=[], metavar="DIR",
                        help="folder holding ComfyUI-style model folders (diffusion_models/, text_encoders/, vae/); "
                             "repeatable; default $KINEMA_MODELS or ./models")
    parser.add_argument("--output", metavar="DIR", help="where output files go; default $KINEMA_OUTPUT or ./output")
    parser.add_argument("--input", metavar="DIR", help="where load nodes (KinemaLoadImage, KinemaLoadVideo) find "
                                                       "their files; default $KINEMA_INPUT or ./input")
    parser.add_argument("--parallel", metavar="PLAN",
                        help="split sampling over the processes torchrun started, e.g. ulysses=4,cfg=2 (also ring=N, "
                             "windows=N, fsdp); run as torchrun --nproc-per-node N -m kinema run ... --parallel PLAN. "
                             "Rank 0 writes the outputs")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    graph = apply_sets(load_graph(args.workflow), args.sets)
    if not args.parallel:
        return _run(args, graph, args.output, show=True)
    from .parallel import parallel_run

    with parallel_run(args.parallel) as rank:
        # Every rank runs the whole graph (each loads the models and samples its share of every step);
        # the others write their copies of the outputs into a private folder that is deleted afterwards.
        return _run(args, graph, args.output if rank.output is None else rank.output, show=rank.output is None)


def _run(args: argparse.Namespace, graph: dict, output: Optional[str], show: bool) -> int:
    from ..nodes import host

    host.configure(models=args.models, output=output, input_dir=args.input)
    result = run_graph(graph)
    for path in result.saved_files() if show else ():
        print(path)
    return 0
