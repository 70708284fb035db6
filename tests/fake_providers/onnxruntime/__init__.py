"""A FAKE provider list for tests: the real onnxruntime, claiming the execution providers named in
$FARM_FAKE_PROVIDERS (e.g. TensorrtExecutionProvider,QNNExecutionProvider) as available.

This machine has no GPU or NPU. Put this folder first on a board's PYTHONPATH and the agent's
`import onnxruntime` gets this module: `get_available_providers()` lists the fake providers, and
an InferenceSession asked for them runs the model on the real CPU provider while reporting the
first fake one it was asked for as active, with the options it was given. What it tests is
farm's side (which provider was asked for with which options, what the result says), never a
GPU's or NPU's speed.
"""
import os
import sys

_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SELF = sys.modules.pop(__name__)
_PATH = list(sys.path)
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
try:
    import onnxruntime as _real  # the installed onnxruntime
finally:
    sys.path[:] = _PATH
    sys.modules[__name__] = _SELF

FAKE = [p for p in os.environ.get("FARM_FAKE_PROVIDERS", "").split(",") if p]
__version__ = _real.__version__
SessionOptions = _real.SessionOptions


def get_available_providers():
    return FAKE + [p for p in _real.get_available_providers() if p not in FAKE]


class InferenceSession(object):
    def __init__(self, path, sess_options=None, providers=None, provider_options=None):
        providers = list(providers or ["CPUExecutionProvider"])
        options = list(provider_options or [{} for _ in providers])
        self._session = _real.InferenceSession(path, sess_options=sess_options, providers=["CPUExecutionProvider"])
        self._providers = [p for p in providers if p in FAKE] + ["CPUExecutionProvider"]
        self._options = dict((p, dict(o)) for p, o in zip(providers, options) if p in self._providers)

    def get_providers(self):
        return list(self._providers)

    def get_provider_options(self):
        return dict(self._options)

    def get_inputs(self):
        return self._session.get_inputs()

    def get_outputs(self):
        return self._session.get_outputs()

    def run(self, output_names, feeds, run_options=None):
        return self._session.run(output_names, feeds, run_options)
