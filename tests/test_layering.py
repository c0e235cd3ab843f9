"""core/ and kernels/ are pure torch: they must import with ComfyUI's modules blocked."""
from __future__ import annotations

import subprocess
import sys

BLOCKER = r"""
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'comfy', 'folder_paths', 'server', 'comfy_api', 'comfy_extras'}:
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
import pkgutil, importlib, kinema.core, kinema.kernels
for pkg in (kinema.core, kinema.kernels):
    for mod in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):
        importlib.import_module(mod.name)
assert 'kinema.nodes' not in sys.modules, 'core/kernels imported the node layer'
print('ok')
"""


def test_core_and_kernels_import_without_comfy():
    out = subprocess.run([sys.executable, "-c", BLOCKER], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")
