"""Our torch dequantisation of GGUF blocks equals gguf's numpy reference (`gguf.quants.dequantize`)
for every type Kinema reads, bit for bit; and the reader gives the values a file holds, in torch shapes."""
from __future__ import annotations

import gguf
import numpy as np
import pytest
import torch

from kinema.core.checkpoints.gguf_dequant import PLAIN_DTYPES, QUANT_FORMATS, SUPPORTED_TYPE_NAMES
from kinema.core.checkpoints.gguf_reader import read_gguf
from kinema.core.checkpoints.io import CheckpointError, read_state_dict
from kinema.core.checkpoints.gguf_dequant import QuantisedTensor
from tiny_gguf import QUANTISABLE, Q, random_blocks, save

QUANTISED = [f.name for f in QUANT_FORMATS.values()]
ISSUE_TYPES = ("F32", "F16", "BF16", "Q8_0", "Q6_K", "Q5_K", "Q5_0", "Q5_1", "Q4_K", "Q4_0", "Q4_1", "Q3_K", "Q2_K")


def _reference(blocks: np.ndarray, type_name: str) -> torch.Tensor:
    return torch.from_numpy(np.array(gguf.quants.dequantize(blocks, Q[type_name]), dtype=np.float32))


def test_every_listed_type_is_read():
    assert sorted(SUPPORTED_TYPE_NAMES) == sorted(ISSUE_TYPES)


@pytest.mark.parametrize("fmt", QUANT_FORMATS.values(), ids=QUANTISED)
def test_table_matches_ggml(fmt):
    assert Q(fmt.ggml_type).name == fmt.name
    assert gguf.GGML_QUANT_SIZES[Q(fmt.ggml_type)] == (fmt.block_size, fmt.type_size)


@pytest.mark.parametrize("type_name", QUANTISED)
def test_random_blocks_equal_reference(type_name):
    """Every code and scale pattern: random bytes with finite fp16 scales (all K-quants, and the legacy types)."""
    fmt = next(f for f in QUANT_FORMATS.values() if f.name == type_name)
    rng = np.random.default_rng(fmt.ggml_type)
    blocks = random_blocks(type_name, 96, rng, scale=10.0)  # [96, type_size]
    rows = blocks.reshape(6, -1)  # 6 rows of 16 blocks, as a file stores them
    reference = _reference(rows, type_name)  # [6, 16 * block_size]
    ours = fmt.dequantize(torch.from_numpy(rows), tuple(reference.shape))
    assert ours.dtype == torch.float32 and ours.shape == reference.shape
    assert (ours - reference).abs().max().item() == 0.0
    assert torch.equal(fmt.dequantize(torch.from_numpy(rows), tuple(reference.shape), torch.bfloat16),
                       reference.to(torch.bfloat16))
    buffer = torch.full((reference.numel(),), float("nan"))  # a reused workspace: decoded into, in place
    assert torch.equal(fmt.dequantize(torch.from_numpy(rows), tuple(reference.shape), out=buffer), reference)
    assert torch.equal(buffer.view(reference.shape), reference)


@pytest.mark.parametrize("type_name", QUANTISABLE)
def test_quantised_data_equals_reference(type_name):
    """Real quantisations by gguf (the types its Python code can quantise), zeros and outliers included."""
    fmt = next(f for f in QUANT_FORMATS.values() if f.name == type_name)
    g = torch.Generator().manual_seed(3)
    values = torch.randn(8, 256, generator=g) * torch.logspace(-3, 1, 8)[:, None]
    values[0, :40] = 0.0
    encoded = gguf.quants.quantize(values.numpy(), Q[type_name])  # uint8 [8, bytes per row]
    reference = _reference(encoded, type_name)
    assert torch.equal(fmt.dequantize(torch.from_numpy(encoded), (8, 256)), reference)


def test_reader_gives_each_type_in_torch_shape(tmp_path):
    """A file with one tensor per listed type (shapes stored in ggml order): what our reader gives,
    dequantised, equals gguf's reader + numpy dequantize; plain types view the file in their own dtype."""
    rng = np.random.default_rng(0)
    writer = gguf.GGUFWriter(path=None, arch="wan")
    shapes = {}
    for i, type_name in enumerate(ISSUE_TYPES):
        shape = (3, 2, 512) if i % 2 else (4, 512)
        shapes[type_name] = shape
        values = rng.standard_normal(shape).astype(np.float32)
        if type_name in ("F32", "F16", "BF16") or type_name in QUANTISABLE:
            encoded = gguf.quants.quantize(values, Q[type_name])
        else:
            block_size, type_size = gguf.GGML_QUANT_SIZES[Q[type_name]]
            encoded = random_blocks(type_name, values.size // block_size, rng).reshape(
                *shape[:-1], shape[-1] // block_size * type_size)
        writer.add_tensor(f"t.{type_name}", encoded, raw_dtype=Q[type_name])
    path = tmp_path / "types.gguf"
    save(writer, path)

    state = read_gguf(path, "wan")
    reference = {t.name: (t.data, t.tensor_type) for t in gguf.GGUFReader(str(path)).tensors}
    for type_name, shape in shapes.items():
        ours = state[f"t.{type_name}"]
        data, qtype = reference[f"t.{type_name}"]
        expected = torch.from_numpy(np.array(gguf.quants.dequantize(data, qtype), dtype=np.float32))
        if type_name in ("F32", "F16", "BF16"):
            assert isinstance(ours, torch.Tensor) and ours.dtype == PLAIN_DTYPES[int(Q[type_name])][1]
            values = ours.float()
        else:
            assert isinstance(ours, QuantisedTensor) and ours.blocks.dtype == torch.uint8
            values = ours.dequantize()
        assert tuple(values.shape) == shape == tuple(expected.shape)
        assert torch.equal(values, expected), type_name


def test_unsupported_type_is_named(tmp_path):
    writer = gguf.GGUFWriter(path=None, arch="wan")
    writer.add_tensor("w", np.zeros((2, 8), dtype=np.float64), raw_dtype=Q.F64)
    path = tmp_path / "f64.gguf"
    save(writer, path)
    with pytest.raises(CheckpointError, match=r"'w' is stored as F64.*supported: F32, F16, BF16"):
        read_gguf(path, "wan")


def test_gguf_is_read_only_where_asked(tmp_path):
    """Loaders other than the DiT's (VAE, text encoder, LoRA) get a clear refusal, not quantised blocks."""
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF" + bytes(60))
    with pytest.raises(CheckpointError, match="GGUF files for the Wan DiT"):
        read_state_dict(path)
    with pytest.raises(CheckpointError, match="not a readable GGUF file"):
        read_state_dict(path, gguf_architecture="wan")
