"""`kinema run`: reading API graphs, --set edits, validation errors (checked before anything runs)."""
from __future__ import annotations

import json

import pytest

from kinema.cli import main
from kinema.cli.graph import GraphError, apply_sets, execution_order, find_node, load_graph
from kinema.cli.run import run_graph
from kinema.nodes import host
from tiny_model_folders import model_root  # noqa: F401  (fixture)
from workflow_cases import WORKFLOW_DIR, api_graph

T2V = "wan21_t2v_1.3b"


def test_load_graph_rejects_ui_format_and_bad_json(tmp_path):
    with pytest.raises(GraphError, match="UI-format workflow; run the API-format file"):
        load_graph(WORKFLOW_DIR / f"{T2V}.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(GraphError, match="not valid JSON"):
        load_graph(bad)
    with pytest.raises(GraphError, match="does not exist"):
        load_graph(tmp_path / "missing.json")


def test_set_by_id_title_and_class_with_typed_values():
    graph = apply_sets(api_graph(T2V), ["6.steps=4", "KinemaSampler.cfg=2.5", "KinemaTextEncode.unload_encoder=false",
                                        "KinemaTextEncode.prompt=a cat = happy", "KinemaSampler.seed=9"])
    sampler = graph[find_node(graph, "KinemaSampler")]["inputs"]
    assert (sampler["steps"], sampler["cfg"], sampler["seed"]) == (4, 2.5, 9)
    encode = graph[find_node(graph, "KinemaTextEncode")]["inputs"]
    assert encode["unload_encoder"] is False and encode["prompt"] == "a cat = happy"
    assert api_graph(T2V)["6"]["inputs"]["steps"] == 30, "the original graph must stay untouched"
    a14b = apply_sets(api_graph("wan22_t2v_a14b"), ["DiT low noise.weight_dtype=bf16"])
    assert a14b[find_node(a14b, "DiT low noise")]["inputs"]["weight_dtype"] == "bf16"


@pytest.mark.parametrize("assignment, message", [
    ("steps=4", "write NODE.INPUT=VALUE"),
    ("KinemaSampler.steps=many", "expected an integer"),
    ("KinemaDiTLoader.model_name=x", None),  # a string: accepted here, checked by validation
    ("Nope.steps=4", "no node 'Nope' in the workflow"),
    ("KinemaSampler.dit=3", "is wired to node 1; set a widget value instead"),
])
def test_set_errors(assignment, message):
    if message is None:
        apply_sets(api_graph(T2V), [assignment])
        return
    with pytest.raises(GraphError, match=message):
        apply_sets(api_graph(T2V), [assignment])


def test_ambiguous_class_name_asks_for_an_id():
    with pytest.raises(GraphError, match="names 2 nodes"):
        apply_sets(api_graph("wan22_t2v_a14b"), ["KinemaDiTLoader.attention=auto"])


def test_execution_order_and_cycles():
    graph = api_graph(T2V)
    order = execution_order(graph, ["7"])
    assert order.index("1") < order.index("6") and order.index("5") < order.index("6") and order[-1] == "7"
    graph["1"]["inputs"]["model_name"] = ["7", 0]
    with pytest.raises(GraphError, match="cycle"):
        execution_order(graph, ["7"])


@pytest.fixture
def models(model_root, tmp_path):
    host.configure(models=[model_root], output=tmp_path)
    yield
    host.configure()


def _edit(graph, node, **inputs):
    graph[node]["inputs"].update(inputs)
    return graph


@pytest.mark.parametrize("make, message", [
    (lambda g: {**g, "9": {"class_type": "SaveImage", "inputs": {}}}, "SaveImage is not a Kinema node"),
    (lambda g: _edit(g, "6", stesp=3), "has no input 'stesp'"),
    (lambda g: {k: v for k, v in g.items() if k != "7"}, "no output node"),
    (lambda g: _edit(g, "6", solver="heun"), "'heun' is not one of the choices"),
    (lambda g: _edit(g, "6", steps=0), "0 is outside"),
    (lambda g: _edit(g, "6", cfg="high"), "expected FLOAT"),
    (lambda g: _edit(g, "6", latent=["1", 0]), "takes LATENT but is wired to a KINEMA_DIT output"),
    (lambda g: _edit(g, "6", latent=["5", 9]), "which has 5 outputs"),
    (lambda g: _edit(g, "6", dit=["42", 0]), "node 42, which is not in the workflow"),
    (lambda g: _edit(g, "1", model_name="missing.safetensors"), "not one of the choices"),
])
def test_validation_errors_come_before_any_work(make, message, models):
    with pytest.raises(GraphError, match=message):
        run_graph(make(api_graph(T2V)))


def test_missing_required_input(models):
    graph = api_graph(T2V)
    del graph["6"]["inputs"]["seed"]
    with pytest.raises(GraphError, match=r"node 6 \(KinemaSampler\) input 'seed' is missing"):
        run_graph(graph)


def test_command_reports_errors_without_a_traceback(tmp_path, model_root, capsys):
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(apply_sets(api_graph(T2V), ["6.solver=heun"])))
    assert main(["run", str(path), "--models", str(model_root), "--output", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("python -m kinema run: error: node 6 (KinemaSampler) input 'solver'") and "Traceback" not in err
